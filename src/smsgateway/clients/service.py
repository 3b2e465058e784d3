"""Creating clients and checking their API keys."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.clients.models import ApiClient

KEY_PREFIX = "sgw_"


def hash_key(api_key: str) -> str:
    """SHA-256 of the key: keys are 256-bit random, so a fast hash is enough."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class NewClient:
    client: ApiClient
    api_key: str  # shown once, never stored


async def create_client(
    session: AsyncSession,
    *,
    name: str,
    quota: Decimal | None = None,
    webhook_url: str | None = None,
) -> NewClient:
    api_key = generate_key()
    client = ApiClient(
        name=name,
        key_hash=hash_key(api_key),
        key_prefix=api_key[:10],
        quota=quota,
        webhook_url=webhook_url,
        allowed_ips=[],
    )
    session.add(client)
    await session.flush()
    return NewClient(client=client, api_key=api_key)


async def client_for_key(session: AsyncSession, api_key: str) -> ApiClient | None:
    """The active client owning ``api_key``, or None.

    Lookup is by hash, so no stored secret is ever compared byte by byte.
    """
    found = await session.scalar(select(ApiClient).where(ApiClient.key_hash == hash_key(api_key)))
    if found is None or found.disabled_at is not None:
        return None
    return found
