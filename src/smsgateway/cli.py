"""The ``smsgateway`` command: serve, worker, migrate, clients, openapi."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smsgateway.clients.commands import register as register_client_commands
from smsgateway.config import Settings, get_settings

if TYPE_CHECKING:
    from fastapi import FastAPI


def _configure_logging(settings: Settings) -> None:
    from smsgateway.observability.logging import configure_logging

    configure_logging(settings.log.level, settings.log.format)


# With --workers N uvicorn starts N processes that import the app by name: these
# factories build it there, logging included (a new process has no configuration).
def api_app() -> FastAPI:
    """The API alone (``serve --no-worker --workers N``)."""
    from smsgateway.app import create_app

    settings = get_settings()
    _configure_logging(settings)
    return create_app(settings)


def api_and_worker_app() -> FastAPI:
    """The API with a dispatcher in each process (``serve --workers N``)."""
    from smsgateway.app import create_app

    settings = get_settings()
    _configure_logging(settings)
    return create_app(settings, run_worker=True)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from smsgateway.app import create_app
    from smsgateway.migrate import upgrade

    upgrade(settings.database.url)
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "log_level": settings.log.level.lower(),
        # Our logging (configured in main) stays; uvicorn's access log is replaced by ours.
        "log_config": None,
        "access_log": False,
        "proxy_headers": False,
        # uvloop and httptools when installed (uvicorn[standard]); asyncio and h11 otherwise.
        "loop": "auto",
        "http": "auto",
    }
    if args.workers > 1:
        # Each process counts its own metrics; they add them up through these files.
        with tempfile.TemporaryDirectory(prefix="smsgw-metrics-") as metrics_dir:
            os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", metrics_dir)
            factory = "api_app" if args.no_worker else "api_and_worker_app"
            uvicorn.run(f"smsgateway.cli:{factory}", factory=True, workers=args.workers, **options)
        return 0
    started = _run_until_stopped(create_app(settings, run_worker=not args.no_worker), options)
    # As with uvicorn.run: a server that never started (port taken, lifespan failed) is 3.
    return 0 if started else 3


def _run_until_stopped(app: FastAPI, options: dict[str, Any]) -> bool:
    """Serve ``app`` until SIGTERM or SIGINT; whether the server had started.

    A signal shuts the server down gracefully: requests in flight finish and the
    lifespan stops the dispatcher, which finishes or releases what it holds.
    uvicorn then raises the signal again, so the process would end "killed by
    SIGTERM"; here a shutdown that was asked for and went well exits 0.
    """
    import uvicorn

    class StopOnSignalServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            stops = (signal.SIGINT, signal.SIGTERM)
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in stops}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    server = StopOnSignalServer(uvicorn.Config(app, **options))
    server.run()
    return server.started


# The exit code of a worker whose loops stalled: its supervisor should restart it.
EXIT_STALLED = 3


async def _run_worker(settings: Settings) -> int:
    from smsgateway.runtime import build_runtime
    from smsgateway.worker import run_workers

    runtime = build_runtime(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    metrics_server = None
    if settings.metrics.worker_port is not None:
        from smsgateway.observability.metrics import serve_worker_metrics

        metrics_server = serve_worker_metrics(
            runtime, settings.metrics.worker_host, settings.metrics.worker_port
        )
    try:
        stalled = await run_workers(runtime, stop, watchdog=True)
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
        await runtime.aclose()
    return EXIT_STALLED if stalled else 0


def _worker(_args: argparse.Namespace, settings: Settings) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        return asyncio.run(_run_worker(settings))
    return uvloop.run(_run_worker(settings))


def _migrate(_args: argparse.Namespace, settings: Settings) -> int:
    from smsgateway.migrate import upgrade

    upgrade(settings.database.url)
    print("database is up to date")
    return 0


def _openapi(args: argparse.Namespace, settings: Settings) -> int:
    from smsgateway.openapi import write_openapi

    path = write_openapi(Path(args.output))
    print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smsgateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the API (and the dispatcher)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--no-worker", action="store_true", help="do not run the dispatcher here")
    serve.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("WEB_CONCURRENCY", "1")),
        help="API processes sharing the port (default: $WEB_CONCURRENCY or 1)",
    )
    serve.set_defaults(handler=_serve)

    worker = commands.add_parser("worker", help="run only the dispatcher")
    worker.set_defaults(handler=_worker)

    migrate = commands.add_parser("migrate", help="apply pending database migrations")
    migrate.set_defaults(handler=_migrate)

    clients = commands.add_parser("clients", help="manage API clients")
    client_commands = clients.add_subparsers(dest="clients_command", required=True)
    register_client_commands(client_commands)

    openapi = commands.add_parser("openapi", help="write the OpenAPI description")
    openapi.add_argument("--output", default="openapi.yaml")
    openapi.set_defaults(handler=_openapi)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    _configure_logging(settings)
    code: int = args.handler(args, settings)
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
