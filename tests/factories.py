"""Rows a test needs before it starts, made in one call each.

Each factory writes its rows in a transaction of its own and returns what a test
goes on to use (an API client's id and auth headers, the stored row). Everything
else a test does goes through the public API, as a user would.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from smsgateway.clients.service import create_client
from smsgateway.db import utcnow
from smsgateway.models.clients import ApiClient
from smsgateway.models.phones import NumberState
from smsgateway.runtime import Runtime
from tests.helpers import bearer

Credits = Decimal | int | str


@dataclass(frozen=True)
class MadeClient:
    """An API client as a test holds it: its id, its key (shown once) and its headers."""

    row: ApiClient
    api_key: str

    @property
    def id(self) -> str:
        return self.row.id

    @property
    def auth(self) -> dict[str, str]:
        return bearer(self.api_key)


def _credits(value: Credits | None) -> Decimal | None:
    return None if value is None else Decimal(value)


async def make_client(
    runtime: Runtime,
    name: str = "shop",
    *,
    quota: Credits | None = None,
    alert_threshold: Credits | None = None,
    allowed_ips: list[str] | None = None,
    webhook_url: str | None = None,
    rate_limit_per_second: float | None = None,
) -> MadeClient:
    """A new API client, made as the admin API makes one (``quota`` None: unlimited)."""
    async with runtime.sessionmaker() as session, session.begin():
        created = await create_client(
            session,
            name=name,
            quota=_credits(quota),
            alert_threshold=_credits(alert_threshold),
            allowed_ips=allowed_ips,
            webhook_url=webhook_url,
            rate_limit_per_second=rate_limit_per_second,
        )
    return MadeClient(row=created.client, api_key=created.api_key)


async def make_number_state(
    runtime: Runtime, number: str, *, opted_out: bool = False, suspended: bool = False
) -> NumberState:
    """A number's state as a STOP (``opted_out``) or the marketplace (``suspended``) left it."""
    now = utcnow()
    state = NumberState(
        number=number,
        opted_out_at=now if opted_out else None,
        suspended_at=now if suspended else None,
        updated_at=now,
    )
    async with runtime.sessionmaker() as session, session.begin():
        session.add(state)
    return state
