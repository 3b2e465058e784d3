"""Property-based tests of the whole API against the committed ``openapi.yaml``.

Schemathesis generates requests for every operation the document describes, valid
and invalid ones, and calls the app in process with a valid API key (the admin token
for admin operations) and, for half the provider callbacks, the right callback token.
Every answer must be something other than a 5xx, with a status code and a body the
document describes.

The number of examples per operation is bounded (``SMSGW_SCHEMATHESIS_EXAMPLES``, 25 by
default) and the run is derandomized, so CI runs the same requests every time.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from smsgateway.app import create_app
from smsgateway.clients.service import create_client
from smsgateway.config import ApiSettings, DatabaseSettings, Settings, VerificationSettings
from smsgateway.db import session_factory
from smsgateway.models import Base
from tests.conftest import ADMIN_TOKEN, CALLBACK_TOKEN

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "openapi.yaml"
EXAMPLES = int(os.environ.get("SMSGW_SCHEMATHESIS_EXAMPLES", "25"))

schema = schemathesis.openapi.from_path(SCHEMA_PATH)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


async def _new_api_key(database_url: str) -> str:
    engine = create_async_engine(database_url)
    try:
        async with session_factory(engine)() as session, session.begin():
            created = await create_client(session, name="schemathesis")
        return created.api_key
    finally:
        await engine.dispose()


async def _empty(database_url: str) -> None:
    engine = create_async_engine(database_url)
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    try:
        async with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                await connection.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))
            else:
                for table in tables:
                    await connection.execute(text(f"DELETE FROM {table}"))  # noqa: S608
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def api(database_url: str) -> Iterator[dict[str, Any]]:
    """The app (its lifespan runs on schemathesis' own event loop) and a client's key."""
    app = create_app(
        Settings(
            database=DatabaseSettings(url=database_url),
            api=ApiSettings(
                admin_token=ADMIN_TOKEN,  # type: ignore[arg-type]
                callback_token=CALLBACK_TOKEN,  # type: ignore[arg-type]
                # Wrong tokens come by the hundred here: the 429 they would earn is
                # documented, but would stop the exploration.
                auth_failures_per_minute=0,
            ),
            verification=VerificationSettings(required=False),
        )
    )
    api_key = asyncio.run(_new_api_key(database_url))
    try:
        yield {"app": app, "api_key": api_key}
    finally:
        from schemathesis.python import asgi

        # Ends the app's lifespan (its engine) before the tables are emptied.
        shutdown = getattr(asgi, "shutdown_lifespans", None)
        if shutdown is not None:
            shutdown()
        asyncio.run(_empty(database_url))


def _is_admin(case: Any) -> bool:
    path: str = case.operation.path
    method: str = case.operation.method.upper()
    return path.startswith("/v1/admin/") or (path.startswith("/v1/templates/") and method != "GET")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_is_documented_and_none_is_a_server_error(
    case: Any, api: dict[str, Any]
) -> None:
    token = ADMIN_TOKEN if _is_admin(case) else api["api_key"]
    if "token" in (case.path_parameters or {}) and len(str(case.path_parameters["token"])) % 2:
        case.path_parameters["token"] = CALLBACK_TOKEN  # reach the callbacks' logic too
    case.call_and_validate(
        app=api["app"], headers={"Authorization": f"Bearer {token}"}, checks=CHECKS
    )
