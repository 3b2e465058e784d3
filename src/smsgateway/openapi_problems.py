"""The problem answers every operation can give, written into the OpenAPI document.

Routes document their own problems (``404``, ``409``...) with an empty
``application/problem+json`` entry. This fills those entries with the ``Problem``
schema, replaces FastAPI's default ``422`` (a JSON ``HTTPValidationError`` the app
never sends) with the problem it does send, and adds the answers that come from
the layers around the routes rather than from the routes themselves:

- ``503`` for every operation that uses the database (it may be unreachable, or a
  transaction may have been rolled back by a conflict; nothing was stored);
- ``400`` (unreadable body) and ``413`` (body over the size limit) for every
  operation with a request body, and ``400`` for a ``cursor`` it did not give;
- ``401``, ``403`` (address not allowed) and ``429`` (rate limit) for every
  operation called with a client's API key.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from smsgateway.errors import PROBLEM_JSON


def _problem_content() -> dict[str, Any]:
    # A new dict each time: shared ones would be written as YAML aliases.
    return {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}


PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; some problems add fields of their own.",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "description": "Stable URI naming the problem"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "The request path"},
        "errors": {
            "type": "array",
            "description": "For validation problems: each field that failed",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "additionalProperties": True,
}

_NO_DATABASE = frozenset({"/healthz", "/metrics"})
_COMMON = {
    "400": "The request body cannot be read",
    "400 cursor": "The `cursor` is not one this API gave: use a page's `next_cursor`",
    "401": "Missing or invalid credentials",
    "403": "This API key may not be used from this address",
    "413": "The request body is over the size limit of this path",
    "429": "Over the client's rate limit; retry after `Retry-After` seconds",
    "429 guessing": "Too many wrong tokens from this address this minute; retry after "
    "`Retry-After` seconds",
    "408": "A part of the request body did not come within the read timeout",
    "503": "The database is unavailable, or the request conflicted with another one: "
    "nothing was stored; retry after `Retry-After` seconds",
}


def describe_problems(document: dict[str, Any]) -> dict[str, Any]:
    """Complete ``document``'s problem answers in place (idempotent); returns it."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = copy.deepcopy(PROBLEM_SCHEMA)
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            if isinstance(operation, dict) and "responses" in operation:
                _describe_operation(path, operation)
    for unused in ("HTTPValidationError", "ValidationError"):
        if unused in schemas and f"#/components/schemas/{unused}" not in str(document["paths"]):
            del schemas[unused]
    return document


def _describe_operation(path: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation["responses"]
    for code, response in responses.items():
        content = response.get("content", {})
        if code == "422" and "HTTPValidationError" in str(content.get("application/json")):
            # FastAPI's default; the app answers validation errors as problems.
            response["content"] = _problem_content()
            response["description"] = "The request is invalid; `errors` names each field"
        elif PROBLEM_JSON in content and not content[PROBLEM_JSON].get("schema"):
            # New dicts: the route's own ``responses`` may be shared module constants.
            response["content"] = {**content, **_problem_content()}
    added: list[str] = []
    if path not in _NO_DATABASE:
        added.append("503")
    if "requestBody" in operation:
        added += ["400", "408", "413"]
    if any(p.get("name") == "cursor" for p in operation.get("parameters", [])):
        added.append("400 cursor")
    if operation.get("security"):
        added.append("401")
        if not path.startswith("/v1/admin/"):  # the admin token has no allowlist or rate
            added += ["403", "429"]
    if path.startswith(("/v1/admin/", "/v1/providers/")):
        added.append("429 guessing")  # see smsgateway.guessing
    for name in added:
        code = name.split()[0]
        responses.setdefault(code, {"description": _COMMON[name], "content": _problem_content()})


def install(app: FastAPI) -> None:
    """Have ``app.openapi()`` (``/openapi.json``, ``/docs``) describe the problems."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        return describe_problems(build())

    app.openapi = openapi  # type: ignore[method-assign]
