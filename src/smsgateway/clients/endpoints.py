"""Admin API for clients: create, read, change, rotate secrets, credit, disable.

Every route needs the admin token. The token is one shared secret, so who
made a change is taken from the optional ``X-Actor`` header (default
``admin``) and kept on the credit ledger rows it writes.

Secrets are shown once: the API key on creation and on rotate-key, the
webhook signing secret on creation and on rotate-webhook-secret. No read
answers either, so a leaked admin listing leaks no credentials.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query

from smsgateway.clients import service
from smsgateway.clients.schemas import (
    ClientCreate,
    ClientCreated,
    ClientList,
    ClientOut,
    ClientUpdate,
    CreditsChange,
    KeyRotated,
    LedgerEntryOut,
    LedgerPage,
    WebhookSecretRotated,
)
from smsgateway.errors import PROBLEM_JSON
from smsgateway.messages.schemas import MessageList, MessageOut
from smsgateway.messages.service import list_messages
from smsgateway.models.status import Status
from smsgateway.scope import RuntimeDep, SessionDep, require_admin

router = APIRouter(
    prefix="/v1/admin/clients",
    tags=["clients"],
    dependencies=[Depends(require_admin)],
    responses={401: {"description": "Missing or wrong admin token", "content": {PROBLEM_JSON: {}}}},
)

_PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such client", **_PROBLEM}}
_INVALID: dict[int | str, dict[str, Any]] = {
    422: {
        "description": "Invalid field: a sixth allowed IP, a malformed address or CIDR, "
        "a negative quota…",
        **_PROBLEM,
    }
}

ActorHeader = Annotated[
    str | None,
    Header(
        alias="X-Actor",
        max_length=100,
        description="Who makes the change (recorded on ledger rows); default `admin`",
    ),
]


def _actor(value: str | None) -> str:
    return (value or "").strip() or "admin"


@router.post(
    "",
    status_code=201,
    response_model=ClientCreated,
    responses={409: {"description": "Name already used", **_PROBLEM}, **_INVALID},
    summary="Create a client",
)
async def create(
    body: ClientCreate, session: SessionDep, runtime: RuntimeDep, actor: ActorHeader = None
) -> ClientCreated:
    """A new client with its API key and webhook secret, **shown only in this answer**.

    Only the key's SHA-256 is stored. A quota opens the client's ledger with a
    ``grant`` row; no quota means unlimited. A `webhook_url` must be http(s)
    without credentials, and resolve only to public addresses unless
    `SMSGW_WEBHOOK_ALLOW_PRIVATE_NETWORKS` is set (a 422 otherwise).
    """
    await service.check_webhook_url(body.webhook_url, runtime.settings.webhooks)
    created = await service.register_client(session, body, actor=_actor(actor))
    await session.commit()
    return ClientCreated.of_new(created.client, created.api_key)


@router.get("", response_model=ClientList, summary="List clients")
async def list_all(session: SessionDep) -> ClientList:
    """Every client, disabled ones included (see `disabled_at`), oldest first."""
    return ClientList(items=[ClientOut.of(c) for c in await service.list_clients(session)])


@router.get("/{client_id}", response_model=ClientOut, responses=_NOT_FOUND, summary="Get a client")
async def get_one(client_id: str, session: SessionDep) -> ClientOut:
    return ClientOut.of(await service.get_client(session, client_id))


@router.patch(
    "/{client_id}",
    response_model=ClientOut,
    responses={
        **_NOT_FOUND,
        409: {
            "description": "Name already used, or the new quota would take the balance below zero",
            **_PROBLEM,
        },
        **_INVALID,
    },
    summary="Change a client",
)
async def patch(
    client_id: str,
    body: ClientUpdate,
    session: SessionDep,
    runtime: RuntimeDep,
    actor: ActorHeader = None,
) -> ClientOut:
    """Change only the fields given; `null` resets one.

    A new `quota` moves the balance by the difference (an `adjust` ledger
    row); `quota: null` makes the client unlimited; a quota given to an
    unlimited client becomes its balance (a `grant` row). After any change
    the low-credit alert follows the balance: at or above `alert_threshold`
    it is armed again; below it one `quota.low` webhook is sent unless it
    already was for this crossing.
    """
    await service.check_webhook_url(body.webhook_url, runtime.settings.webhooks)
    client = await service.update_client(session, client_id, body, actor=_actor(actor))
    await session.commit()
    runtime.client_cache.clear()
    return ClientOut.of(client)


@router.post(
    "/{client_id}/rotate-key",
    response_model=KeyRotated,
    responses=_NOT_FOUND,
    summary="Replace a client's API key",
)
async def rotate_key(client_id: str, session: SessionDep, runtime: RuntimeDep) -> KeyRotated:
    """A new API key, **shown only in this answer**; the old one stops working at once."""
    client, api_key = await service.rotate_client_key(session, client_id)
    await session.commit()
    runtime.client_cache.clear()
    return KeyRotated(id=client.id, api_key=api_key, key_prefix=client.key_prefix)


@router.post(
    "/{client_id}/rotate-webhook-secret",
    response_model=WebhookSecretRotated,
    responses=_NOT_FOUND,
    summary="Replace a client's webhook signing secret",
)
async def rotate_webhook_secret(
    client_id: str, session: SessionDep, runtime: RuntimeDep
) -> WebhookSecretRotated:
    """A new secret, **shown only in this answer**; every webhook sent from now on,
    retries of earlier events included, is signed with it."""
    client, secret = await service.rotate_webhook_secret(session, client_id)
    await session.commit()
    runtime.client_cache.clear()
    return WebhookSecretRotated(id=client.id, webhook_secret=secret)


@router.post(
    "/{client_id}/credits",
    response_model=ClientOut,
    responses={
        **_NOT_FOUND,
        409: {
            "description": "Removing more credits than are left, or the client is unlimited",
            **_PROBLEM,
        },
        **_INVALID,
    },
    summary="Add or remove credits",
)
async def change_credits(
    client_id: str,
    body: CreditsChange,
    session: SessionDep,
    runtime: RuntimeDep,
    actor: ActorHeader = None,
) -> ClientOut:
    """Add (`delta` > 0) or remove (`delta` < 0) credits, with a reason kept in the ledger.

    The quota (credits granted) moves with the balance.
    """
    client = await service.change_credits(
        session, client_id, body.delta, reason=body.reason, actor=_actor(actor)
    )
    await session.commit()
    runtime.client_cache.clear()
    return ClientOut.of(client)


@router.get(
    "/{client_id}/ledger",
    response_model=LedgerPage,
    responses=_NOT_FOUND,
    summary="A client's credit ledger",
)
async def ledger(
    client_id: str,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=32)] = None,
) -> LedgerPage:
    """Every change of the client's credits, newest first: `grant`, `adjust`, `reserve`
    (a message accepted) and `refund` (a message never billed). The deltas sum to
    `credits_left`."""
    rows, next_cursor = await service.ledger_page(session, client_id, limit=limit, cursor=cursor)
    return LedgerPage(items=[LedgerEntryOut.of(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/{client_id}/messages",
    response_model=MessageList,
    responses=_NOT_FOUND,
    summary="A client's messages",
)
async def messages(
    client_id: str,
    session: SessionDep,
    status: Annotated[Status | None, Query()] = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    booking_id: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> MessageList:
    """The client's messages, newest first, as the client sees them; disabled
    clients' included."""
    await service.get_client(session, client_id)
    rows, next_cursor = await list_messages(
        session,
        client_id,
        status=status.value if status else None,
        tag=tag,
        booking_id=booking_id,
        limit=limit,
        cursor=cursor,
    )
    return MessageList(items=[MessageOut.of(m) for m in rows], next_cursor=next_cursor)


@router.delete(
    "/{client_id}",
    response_model=ClientOut,
    responses=_NOT_FOUND,
    summary="Disable a client",
)
async def disable(client_id: str, session: SessionDep, runtime: RuntimeDep) -> ClientOut:
    """Its API key answers `401` from now on. Nothing is deleted: its messages, ledger
    and webhooks stay, readable here; messages already accepted are still sent.
    Disabling twice is harmless."""
    client = await service.disable_client(session, client_id)
    await session.commit()
    runtime.client_cache.clear()
    runtime.rate_limiter.forget(client.id)
    return ClientOut.of(client)
