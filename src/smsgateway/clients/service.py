"""Creating, administering and authenticating API clients."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway import sealing
from smsgateway.clients.schemas import ClientCreate, ClientUpdate
from smsgateway.config import WebhookSettings
from smsgateway.credits import alert, ledger
from smsgateway.db import utcnow
from smsgateway.errors import Problem
from smsgateway.models.clients import ApiClient, CreditEntry
from smsgateway.webhooks.outbound import check_destination

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
    alert_threshold: Decimal | None = None,
    allowed_ips: list[str] | None = None,
    webhook_url: str | None = None,
    rate_limit_per_second: float | None = None,
    actor: str | None = None,
    allowed_countries: list[str] | None = None,
) -> NewClient:
    """A new client; its opening quota is the ledger's first row."""
    api_key = generate_key()
    client = ApiClient(
        name=name,
        key_hash=hash_key(api_key),
        key_prefix=api_key[:10],
        quota=quota,
        balance=quota,
        alert_threshold=alert_threshold,
        allowed_ips=list(allowed_ips or []),
        allowed_countries=allowed_countries,
        rate_limit_per_second=rate_limit_per_second,
        webhook_url=webhook_url,
        webhook_secret=secrets.token_hex(32),
        created_at=utcnow(),
    )
    session.add(client)
    await session.flush()
    if quota is not None:
        session.add(ledger.open_account(client.id, quota, actor=actor))
        await session.flush()
    return NewClient(client=client, api_key=api_key)


async def rotate_key(session: AsyncSession, client: ApiClient) -> str:
    """A new key for ``client``; the old one stops working when this commits."""
    api_key = generate_key()
    client.key_hash = hash_key(api_key)
    client.key_prefix = api_key[:10]
    client.updated_at = utcnow()
    await session.flush()
    return api_key


async def client_for_key(session: AsyncSession, api_key: str) -> ApiClient | None:
    """The active client owning ``api_key``, or None.

    Lookup is by hash, so no stored secret is ever compared byte by byte.
    """
    found = await session.scalar(select(ApiClient).where(ApiClient.key_hash == hash_key(api_key)))
    if found is None or found.disabled_at is not None:
        return None
    return found


# --- Administration: shared by the admin API and the ``smsgateway clients`` command.


async def get_client(session: AsyncSession, client_id: str) -> ApiClient:
    """The client ``client_id`` (disabled ones included), or a 404 problem."""
    client = await session.get(ApiClient, client_id)
    if client is None:
        raise _not_found(client_id)
    return client


async def lock_client(session: AsyncSession, client_id: str) -> ApiClient:
    """The client, read after taking its row's write lock for this transaction.

    The write comes first so that what is read next cannot change before the
    commit: on PostgreSQL the row lock queues ``credits.reservations.reserve`` behind us,
    and SQLite holds its single write lock from here on (reading first and
    writing later could also fail there once another writer has committed).
    """
    touched = await session.scalar(
        update(ApiClient)
        .where(ApiClient.id == client_id)
        .values(updated_at=utcnow())
        .returning(ApiClient.id)
        .execution_options(synchronize_session=False)
    )
    if touched is None:
        raise _not_found(client_id)
    client = await session.get(ApiClient, client_id, populate_existing=True)
    assert client is not None
    return client


def _not_found(client_id: str) -> Problem:
    return Problem(404, "client-not-found", "Client not found", f"No client {client_id!r}.")


def _name_taken(name: str) -> Problem:
    return Problem(
        409, "client-name-taken", "Name already used", f"A client named {name!r} already exists."
    )


async def _ensure_name_free(session: AsyncSession, name: str, *, but: str | None = None) -> None:
    query = select(ApiClient.id).where(ApiClient.name == name)
    if but is not None:
        query = query.where(ApiClient.id != but)
    if await session.scalar(query) is not None:
        raise _name_taken(name)


async def list_clients(session: AsyncSession) -> list[ApiClient]:
    """Every client, oldest first (a gateway has a handful, so no paging)."""
    rows = await session.scalars(select(ApiClient).order_by(ApiClient.created_at, ApiClient.id))
    return list(rows.all())


async def check_webhook_url(url: object | None, settings: WebhookSettings) -> None:
    """A 422 problem when webhooks may not go to ``url`` (see ``webhooks.outbound``)."""
    if url is None:
        return
    try:
        await check_destination(str(url), allow_private=settings.allow_private_networks)
    except ValueError as exc:
        raise Problem(
            422,
            "webhook-url-not-allowed",
            "Webhook URL not allowed",
            f"'webhook_url' {exc}.",
            errors=[{"field": "body.webhook_url", "message": str(exc)}],
        ) from None


async def register_client(
    session: AsyncSession, data: ClientCreate, *, actor: str | None
) -> NewClient:
    """``create_client`` from a validated request; a taken name is a 409 problem."""
    await _ensure_name_free(session, data.name)
    try:
        return await create_client(
            session,
            name=data.name,
            quota=data.quota,
            alert_threshold=data.alert_threshold,
            allowed_ips=data.allowed_ips,
            webhook_url=str(data.webhook_url) if data.webhook_url is not None else None,
            rate_limit_per_second=data.rate_limit_per_second,
            actor=actor,
            allowed_countries=data.allowed_countries,
        )
    except IntegrityError as exc:  # the same name created at the same moment
        raise _name_taken(data.name) from exc


async def update_client(
    session: AsyncSession, client_id: str, data: ClientUpdate, *, actor: str | None
) -> ApiClient:
    """Apply the fields given in ``data``; see ``ledger.set_quota`` for what a new quota does."""
    client = await lock_client(session, client_id)
    changes = data.changes()
    quota_given = "quota" in changes
    new_quota: Decimal | None = changes.pop("quota", None)
    if "name" in changes and changes["name"] != client.name:
        await _ensure_name_free(session, changes["name"], but=client.id)
    for name, value in changes.items():
        setattr(client, name, value)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise _name_taken(str(changes.get("name"))) from exc
    if quota_given:
        await ledger.set_quota(session, client, new_quota, actor=actor)
    await alert.sync(session, client.id)
    await session.refresh(client)
    return client


async def change_credits(
    session: AsyncSession, client_id: str, delta: Decimal, *, reason: str, actor: str | None
) -> ApiClient:
    """Add or remove credits (``ledger.change_credits``: 409 for an unlimited client)."""
    client = await lock_client(session, client_id)
    await ledger.change_credits(session, client, delta, reason=reason, actor=actor)
    await session.refresh(client)
    return client


async def disable_client(session: AsyncSession, client_id: str) -> ApiClient:
    """Stop the client's key from working; its messages and ledger are kept."""
    client = await lock_client(session, client_id)
    if client.disabled_at is None:
        client.disabled_at = utcnow()
        await session.flush()
    return client


async def rotate_client_key(session: AsyncSession, client_id: str) -> tuple[ApiClient, str]:
    client = await lock_client(session, client_id)
    return client, await rotate_key(session, client)


async def rotate_webhook_secret(session: AsyncSession, client_id: str) -> tuple[ApiClient, str]:
    """A new signing secret; webhooks sent from now on (retries included) use it."""
    client = await lock_client(session, client_id)
    client.webhook_secret = secrets.token_hex(32)
    await session.flush()
    return client, client.webhook_secret


async def ledger_page(
    session: AsyncSession, client_id: str, *, limit: int, cursor: str | None
) -> tuple[list[CreditEntry], str | None]:
    """The client's ledger, newest first, ``limit`` rows after ``cursor``."""
    await get_client(session, client_id)
    return await ledger.ledger_page(session, client_id, limit=limit, cursor=cursor)


async def reseal_secrets(session: AsyncSession) -> int:
    """Seal every webhook secret with the first key of ``SMSGW_SECRET_KEY``; how many changed.

    Secrets stored before a key was set are sealed; those sealed with an older
    key are sealed again, so that key can then be dropped.
    """
    stored = (
        await session.execute(
            text("SELECT id, webhook_secret FROM api_clients WHERE webhook_secret IS NOT NULL")
        )
    ).all()
    changed = 0
    for client_id, raw in stored:
        if sealing.is_sealed_with_first_key(raw):
            continue
        await session.execute(
            update(ApiClient)
            .where(ApiClient.id == client_id)
            .values(webhook_secret=sealing.unseal(raw))
        )
        changed += 1
    return changed
