# smsgateway: the API and, unless --no-worker, the dispatcher in one process.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY migrations ./migrations
RUN pip install --no-cache-dir build && python -m build --wheel --outdir /dist

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 smsgateway
COPY --from=build /dist/*.whl /tmp/
RUN pip install --no-cache-dir /tmp/*.whl && rm /tmp/*.whl
USER smsgateway
WORKDIR /home/smsgateway
ENV SMSGW_DATABASE_URL=sqlite+aiosqlite:////home/smsgateway/smsgateway.db
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz').status == 200 else 1)"
CMD ["smsgateway", "serve", "--host", "0.0.0.0", "--port", "8000"]
