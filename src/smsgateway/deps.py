"""FastAPI dependencies: the request's session, the calling client, settings."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.clients.network import allowed, request_address
from smsgateway.clients.ratelimit import retry_after_header
from smsgateway.clients.service import client_for_key, hash_key
from smsgateway.config import Settings
from smsgateway.errors import Problem
from smsgateway.models.clients import ApiClient
from smsgateway.runtime import Runtime

_bearer = HTTPBearer(auto_error=False, description="The client's API key")


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

_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


async def _the_request(request: Request) -> Request:
    return request


async def current_client(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    request: Annotated[Request | None, Depends(_the_request)] = None,
) -> ApiClient:
    """The client owning the bearer key, once its IP allowlist and rate limit let it in.

    Checks, in order: a key of an active client (else 401), the caller's
    address against the client's allowlist (else 403; a refused caller spends
    none of the client's rate), then the client's rate limit (else 429 with
    ``Retry-After``). FastAPI always passes ``request``; code calling this
    directly without it gets the key check only.
    """
    if credentials is None or not credentials.credentials:
        raise Problem(
            401,
            "unauthorized",
            "Missing API key",
            "Send the API key as 'Authorization: Bearer <key>'.",
            headers=_UNAUTHORIZED,
        )
    runtime = runtime_of(request) if request is not None else None
    key_hash = hash_key(credentials.credentials)
    client = runtime.client_cache.get(session, key_hash) if runtime is not None else None
    if client is None:
        client = await client_for_key(session, credentials.credentials)
        if client is None:
            raise Problem(401, "unauthorized", "Invalid API key", headers=_UNAUTHORIZED)
        if runtime is not None:
            runtime.client_cache.put(key_hash, client)
    if request is not None and runtime is not None:
        _check_address(request, runtime, client)
        _check_rate(runtime, client)
    return client


def _check_address(request: Request, runtime: Runtime, client: ApiClient) -> None:
    if not client.allowed_ips:
        return
    address = request_address(request, runtime.settings.trusted_proxies)
    if not allowed(address, client.allowed_ips):
        # The caller's own address helps them fix the allowlist; it is no secret to them.
        raise Problem(
            403,
            "ip-not-allowed",
            "Address not allowed",
            f"This API key may not be used from {address or 'an unknown address'}.",
        )


def _check_rate(runtime: Runtime, client: ApiClient) -> None:
    rate = client.rate_limit_per_second or runtime.settings.default_rate_limit_per_second
    wait = runtime.rate_limiter.take(client.id, rate)
    if wait is not None:
        retry_after = retry_after_header(wait)
        raise Problem(
            429,
            "rate-limited",
            "Too many requests",
            f"This client may make {rate:g} requests a second; retry in {retry_after} s.",
            headers={"Retry-After": retry_after},
        )


ClientDep = Annotated[ApiClient, Depends(current_client)]


def check_admin(runtime: Runtime, credentials: HTTPAuthorizationCredentials | None) -> None:
    """Refuse (401) anything but the admin token."""
    expected = (
        runtime.settings.admin_token.get_secret_value() if runtime.settings.admin_token else ""
    )
    given = credentials.credentials if credentials else ""
    # An unset or empty token never matches: an empty one must not open admin routes.
    if not expected or not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Problem(401, "unauthorized", "Admin token required", headers=_UNAUTHORIZED)


async def require_admin(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """The admin token, or a 401 problem."""
    check_admin(runtime, credentials)
