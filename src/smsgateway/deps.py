"""FastAPI dependencies: the request's session, the calling client, settings."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.clients.models import ApiClient
from smsgateway.clients.service import client_for_key
from smsgateway.config import Settings
from smsgateway.errors import Problem
from smsgateway.runtime import Runtime

_bearer = HTTPBearer(auto_error=False, description="The client's API key")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_settings_dep(runtime: RuntimeDep) -> Settings:
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

_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


async def current_client(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiClient:
    if credentials is None or not credentials.credentials:
        raise Problem(
            401,
            "unauthorized",
            "Missing API key",
            "Send the API key as 'Authorization: Bearer <key>'.",
            headers=_UNAUTHORIZED,
        )
    client = await client_for_key(session, credentials.credentials)
    if client is None:
        raise Problem(401, "unauthorized", "Invalid API key", headers=_UNAUTHORIZED)
    return client


ClientDep = Annotated[ApiClient, Depends(current_client)]


def require_admin(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    expected = runtime.settings.admin_token
    given = credentials.credentials if credentials else ""
    if expected is None or not hmac.compare_digest(
        given.encode(), expected.get_secret_value().encode()
    ):
        raise Problem(401, "unauthorized", "Admin token required", headers=_UNAUTHORIZED)
