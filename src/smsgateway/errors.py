"""RFC 9457 problem details for every error the API answers.

Each problem has a stable ``type`` URI (``https://smsgateway.dev/problems/<slug>``),
a short ``title``, a ``detail`` for humans and, for validation problems, an
``errors`` list naming each field that failed. Bodies never echo secrets or
phone numbers.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import unquote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from smsgateway.numbers import mask

PROBLEM_BASE = "https://smsgateway.dev/problems/"
PROBLEM_JSON = "application/problem+json"

log = logging.getLogger(__name__)


class Problem(Exception):
    """An error the API reports as ``application/problem+json``."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.headers = headers
        self.extra = extra

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.slug,
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


# Path parameters that are secrets (the provider callbacks' token): shown as
# ``{token}`` wherever a path is echoed in a problem or written to a log.
_SECRET_PATH_PARAMS = frozenset({"token"})


_PHONE_SEGMENT = re.compile(r"^(\+|%2B)?\d{6,}$", re.IGNORECASE)
_TOKEN_SEGMENT = re.compile(r"^[A-Za-z0-9_\-.~%]{24,}$")
_ID_SEGMENT = re.compile(r"^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$")


# A number spelled with separators: "+33 6 11…", "06.11…", "+33(0)6…", "+33-611-…".
_SPELLED_NUMBER = re.compile(r"^[+0(][\d\s().\-/]+$")


def redact_segment(segment: str) -> str:
    """A path segment as logs and answers may show it: numbers masked, tokens hidden."""
    if _PHONE_SEGMENT.match(segment):
        return mask(unquote(segment))
    spelled = unquote(segment).strip()
    digits = "".join(ch for ch in spelled.replace("(0)", "") if ch.isdigit())
    if len(digits) >= 6 and _SPELLED_NUMBER.match(spelled):
        return mask(("+" if spelled.startswith("+") else "") + digits)
    if _TOKEN_SEGMENT.match(segment) and not _ID_SEGMENT.match(segment):
        return "{redacted}"
    return segment


def safe_path(request: Request) -> str:
    """The request path fit for logs and problem bodies (never a query string).

    A matched route shows its secret parameters by name (``{token}``) and
    phone numbers masked; an unmatched path (a typo, a trailing slash) is
    redacted segment by segment, and the segment after ``/v1/providers/<name>/``
    is always taken for the callback token.
    """
    route = request.scope.get("route")
    template = getattr(route, "path_format", None)
    if isinstance(template, str):
        shown = {
            k: "{" + k + "}" if k in _SECRET_PATH_PARAMS else redact_segment(str(v))
            for k, v in request.path_params.items()
        }
        try:
            return template.format_map(shown)
        except (KeyError, IndexError, ValueError):
            return template
    return redact_path(request.scope.get("path", ""))


def redact_path(path: str) -> str:
    """An unmatched path, redacted (see ``safe_path``)."""
    segments = path.split("/")
    for n, segment in enumerate(segments):
        if n == 4 and segments[1:3] == ["v1", "providers"]:
            segments[n] = "{token}"
        else:
            segments[n] = redact_segment(segment)
    return "/".join(segments)


def problem_response(problem: Problem, request: Request | None = None) -> JSONResponse:
    instance = safe_path(request) if request is not None else None
    return JSONResponse(
        problem.body(instance),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


_STATUS_SLUGS = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Missing or invalid credentials"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    408: ("request-timeout", "Request timeout"),
    409: ("conflict", "Conflict"),
    413: ("payload-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("validation-error", "Request validation failed"),
    429: ("too-many-requests", "Too many requests"),
}


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ())]
        # Values are not echoed back: they may hold phone numbers.
        errors.append({"field": ".".join(loc), "message": err.get("msg", "invalid")})
    return errors


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _field_errors(exc)
        fields = ", ".join(e["field"] for e in errors[:5])
        problem = Problem(
            422,
            "validation-error",
            "Request validation failed",
            f"Invalid or missing: {fields}" if fields else None,
            errors=errors,
        )
        return problem_response(problem, request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug, title = _STATUS_SLUGS.get(exc.status_code, ("error", "Error"))
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
        headers = dict(exc.headers) if exc.headers else None
        return problem_response(
            Problem(exc.status_code, slug, title, detail, headers=headers), request
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, safe_path(request))
        problem = Problem(500, "internal-error", "Internal error", "The error was logged.")
        return problem_response(problem, request)
