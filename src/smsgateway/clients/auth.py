"""The calling client: its API key, IP allowlist and rate limit, as a FastAPI dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials

from smsgateway.clients.network import allowed, request_address
from smsgateway.clients.ratelimit import RateLimiter, retry_after_header
from smsgateway.clients.service import client_for_key, hash_key
from smsgateway.config import Settings
from smsgateway.errors import Problem
from smsgateway.models.clients import ApiClient
from smsgateway.scope import UNAUTHORIZED, SessionDep, bearer, runtime_of


async def _the_request(request: Request) -> Request:
    return request


async def current_client(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
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
            headers=UNAUTHORIZED,
        )
    runtime = runtime_of(request) if request is not None else None
    key_hash = hash_key(credentials.credentials)
    client = runtime.client_cache.get(session, key_hash) if runtime is not None else None
    if client is None:
        client = await client_for_key(session, credentials.credentials)
        if client is None:
            raise Problem(401, "unauthorized", "Invalid API key", headers=UNAUTHORIZED)
        if runtime is not None:
            runtime.client_cache.put(key_hash, client)
    if request is not None and runtime is not None:
        _check_address(request, runtime.settings, client)
        _check_rate(runtime.rate_limiter, runtime.settings, client)
    return client


def _check_address(request: Request, settings: Settings, client: ApiClient) -> None:
    if not client.allowed_ips:
        return
    address = request_address(request, settings.api.trusted_proxies)
    if not allowed(address, client.allowed_ips):
        # The caller's own address helps them fix the allowlist; it is no secret to them.
        raise Problem(
            403,
            "ip-not-allowed",
            "Address not allowed",
            f"This API key may not be used from {address or 'an unknown address'}.",
        )


def _check_rate(limiter: RateLimiter, settings: Settings, client: ApiClient) -> None:
    rate = client.rate_limit_per_second or settings.api.default_rate_limit_per_second
    wait = limiter.take(client.id, rate)
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
