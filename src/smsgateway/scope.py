"""Request-scoped FastAPI dependencies: the runtime, its settings, the session, the admin token.

They import no domain package, so every domain's endpoints can use them
(``clients.auth`` builds the calling client on top of them)."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.config import Settings
from smsgateway.errors import Problem
from smsgateway.runtime import Runtime

bearer = HTTPBearer(auto_error=False, description="The client's API key")


# Dependencies are ``async def`` even when they do not await: FastAPI runs a plain
# ``def`` dependency in a worker thread, a hop each request would pay for nothing.


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_runtime(request: Request) -> Runtime:
    return runtime_of(request)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_settings_dep(runtime: RuntimeDep) -> Settings:
    return runtime.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    """One session per request: committed when the handler succeeds, else rolled back.

    Handlers that answer 202 commit explicitly before answering, so an
    acknowledged write is durable before the client hears about it.
    """
    async with runtime.sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


SessionDep = Annotated[AsyncSession, Depends(get_session)]

UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


def check_admin(runtime: Runtime, credentials: HTTPAuthorizationCredentials | None) -> None:
    """Refuse (401) anything but the admin token."""
    expected = (
        runtime.settings.api.admin_token.get_secret_value()
        if runtime.settings.api.admin_token
        else ""
    )
    given = credentials.credentials if credentials else ""
    # An unset or empty token never matches: an empty one must not open admin routes.
    if not expected or not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Problem(401, "unauthorized", "Admin token required", headers=UNAUTHORIZED)


async def require_admin(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """The admin token, or a 401 problem."""
    check_admin(runtime, credentials)
