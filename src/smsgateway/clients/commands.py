"""``smsgateway clients …``: the admin clients API from the command line.

Each command validates its options with the API's own schemas, runs the same
service function as the API in one transaction, and prints the API's answer
as JSON. Errors go to stderr: exit code 1 for an unknown client or a conflict
(a taken name, credits that would go below zero), 2 for bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.config import Settings

Answer = TypeVar("Answer", bound=BaseModel)
Work = Callable[[AsyncSession], Awaitable[BaseModel]]

DEFAULT_ACTOR = "cli"

# Schema fields as the options that set them, so errors name what the user typed.
_OPTIONS = {
    "name": "--name",
    "quota": "--quota",
    "alert_threshold": "--alert-threshold",
    "allowed_ips": "--allowed-ip",
    "allowed_countries": "--allowed-country",
    "webhook_url": "--webhook-url",
    "rate_limit_per_second": "--rate-limit",
    "delta": "--delta",
    "reason": "--reason",
}


def _validated(schema: type[Answer], values: dict[str, Any]) -> Answer | None:
    """``values`` through ``schema``, or None after printing what is wrong."""
    try:
        return schema.model_validate(values)
    except ValidationError as exc:
        for error in exc.errors():
            loc = error.get("loc", ())
            option = _OPTIONS.get(str(loc[0]), str(loc[0])) if loc else "input"
            print(f"error: {option}: {error['msg']}", file=sys.stderr)
        return None


async def _in_transaction(settings: Settings, work: Work) -> BaseModel:
    from smsgateway import sealing
    from smsgateway.db import create_engine, session_factory

    key = settings.api.secret_key
    sealing.configure(key.get_secret_value() if key else None)
    engine = create_engine(settings.database.url)
    try:
        async with session_factory(engine)() as session, session.begin():
            return await work(session)
    finally:
        await engine.dispose()


def _run(settings: Settings, work: Work, *, secret_shown: bool = False) -> int:
    from smsgateway.errors import Problem
    from smsgateway.migrate import upgrade

    upgrade(settings.database.url)
    try:
        answer = asyncio.run(_in_transaction(settings, work))
    except Problem as problem:
        print(f"error: {problem.detail or problem.title}", file=sys.stderr)
        return 1 if problem.status in (404, 409) else 2
    print(json.dumps(answer.model_dump(mode="json", by_alias=True), indent=2))
    if secret_shown:
        print("Store the secret now: it is not shown again.", file=sys.stderr)
    return 0


def _countries(given: list[str] | None) -> list[str] | None:
    """``--allowed-country`` values, upper case; None (the server's list) for none or 'default'."""
    if not given or [c.strip().lower() for c in given] == ["default"]:
        return None
    return [c.strip().upper() for c in given]


def _setting(value: str | None, *, empty: tuple[str, ...]) -> str | None:
    """An option value, with the words that reset a field (``none``, ``unlimited``) as None."""
    if value is None or value.strip().lower() in empty:
        return None
    return value


def _create(args: argparse.Namespace, settings: Settings) -> int:
    from smsgateway.clients.schemas import ClientCreate, ClientCreated
    from smsgateway.clients.service import check_webhook_url, register_client

    values: dict[str, Any] = {
        "name": args.name,
        "quota": _setting(args.quota, empty=("unlimited",)),
        "alert_threshold": args.alert_threshold,
        "allowed_ips": args.allowed_ip or [],
        "allowed_countries": _countries(args.allowed_country),
        "webhook_url": args.webhook_url,
        "rate_limit_per_second": args.rate_limit,
    }
    data = _validated(ClientCreate, values)
    if data is None:
        return 2

    async def work(session: AsyncSession) -> BaseModel:
        await check_webhook_url(data.webhook_url, settings.webhooks)
        created = await register_client(session, data, actor=args.actor)
        return ClientCreated.of_new(created.client, created.api_key)

    code = _run(settings, work)
    if code == 0:
        print("Store the api_key now: it is not shown again.", file=sys.stderr)
    return code


def _list(_args: argparse.Namespace, settings: Settings) -> int:
    from smsgateway.clients.schemas import ClientList, ClientOut
    from smsgateway.clients.service import list_clients

    async def work(session: AsyncSession) -> BaseModel:
        return ClientList(items=[ClientOut.of(c) for c in await list_clients(session)])

    return _run(settings, work)


def _show(args: argparse.Namespace, settings: Settings) -> int:
    from smsgateway.clients.schemas import ClientOut
    from smsgateway.clients.service import get_client

    async def work(session: AsyncSession) -> BaseModel:
        return ClientOut.of(await get_client(session, args.id))

    return _run(settings, work)


def _update(args: argparse.Namespace, settings: Settings) -> int:
    from smsgateway.clients.schemas import ClientOut, ClientUpdate
    from smsgateway.clients.service import check_webhook_url, update_client

    values: dict[str, Any] = {}
    if args.name is not None:
        values["name"] = args.name
    if args.quota is not None:
        values["quota"] = _setting(args.quota, empty=("unlimited",))
    if args.alert_threshold is not None:
        values["alert_threshold"] = _setting(args.alert_threshold, empty=("none",))
    if args.clear_allowed_ips:
        values["allowed_ips"] = []
    elif args.allowed_ip:
        values["allowed_ips"] = args.allowed_ip
    if args.allowed_country is not None:
        values["allowed_countries"] = _countries(args.allowed_country)
    if args.webhook_url is not None:
        values["webhook_url"] = _setting(args.webhook_url, empty=("none",))
    if args.rate_limit is not None:
        values["rate_limit_per_second"] = _setting(args.rate_limit, empty=("default",))
    if not values:
        print("error: nothing to change (see --help)", file=sys.stderr)
        return 2
    data = _validated(ClientUpdate, values)
    if data is None:
        return 2

    async def work(session: AsyncSession) -> BaseModel:
        await check_webhook_url(data.webhook_url, settings.webhooks)
        return ClientOut.of(await update_client(session, args.id, data, actor=args.actor))

    return _run(settings, work)


def _rotate_key(args: argparse.Namespace, settings: Settings) -> int:
    from smsgateway.clients.schemas import KeyRotated
    from smsgateway.clients.service import rotate_client_key

    async def work(session: AsyncSession) -> BaseModel:
        client, api_key = await rotate_client_key(session, args.id)
        return KeyRotated(id=client.id, api_key=api_key, key_prefix=client.key_prefix)

    return _run(settings, work, secret_shown=True)


def _rotate_webhook_secret(args: argparse.Namespace, settings: Settings) -> int:
    from smsgateway.clients.schemas import WebhookSecretRotated
    from smsgateway.clients.service import rotate_webhook_secret

    async def work(session: AsyncSession) -> BaseModel:
        client, secret = await rotate_webhook_secret(session, args.id)
        return WebhookSecretRotated(id=client.id, webhook_secret=secret)

    return _run(settings, work, secret_shown=True)


def _credits(args: argparse.Namespace, settings: Settings) -> int:
    from smsgateway.clients.schemas import ClientOut, CreditsChange
    from smsgateway.clients.service import change_credits

    data = _validated(CreditsChange, {"delta": args.delta, "reason": args.reason})
    if data is None:
        return 2

    async def work(session: AsyncSession) -> BaseModel:
        client = await change_credits(
            session, args.id, data.delta, reason=data.reason, actor=args.actor
        )
        return ClientOut.of(client)

    return _run(settings, work)


def _ledger(args: argparse.Namespace, settings: Settings) -> int:
    from smsgateway.clients.schemas import LedgerEntryOut, LedgerPage
    from smsgateway.clients.service import ledger_page

    async def work(session: AsyncSession) -> BaseModel:
        rows, cursor = await ledger_page(session, args.id, limit=args.limit, cursor=None)
        return LedgerPage(items=[LedgerEntryOut.of(r) for r in rows], next_cursor=cursor)

    return _run(settings, work)


def _disable(args: argparse.Namespace, settings: Settings) -> int:
    from smsgateway.clients.schemas import ClientOut
    from smsgateway.clients.service import disable_client

    async def work(session: AsyncSession) -> BaseModel:
        return ClientOut.of(await disable_client(session, args.id))

    return _run(settings, work)


def _reseal(_args: argparse.Namespace, settings: Settings) -> int:
    from smsgateway.clients.schemas import Resealed
    from smsgateway.clients.service import reseal_secrets

    async def work(session: AsyncSession) -> BaseModel:
        return Resealed(resealed=await reseal_secrets(session))

    return _run(settings, work)


def _settings_options(parser: argparse.ArgumentParser, *, update: bool) -> None:
    reset = " ('{}' resets it)" if update else ""
    parser.add_argument(
        "--quota", default=None, help="credits granted, or 'unlimited' (the default)"
    )
    parser.add_argument(
        "--alert-threshold",
        default=None,
        help="send quota.low below this many credits" + reset.format("none"),
    )
    parser.add_argument(
        "--allowed-ip",
        action="append",
        default=None,
        metavar="IP_OR_CIDR",
        help="an address or CIDR range the client may call from (repeat, at most 5)"
        + (": replaces the list" if update else ""),
    )
    parser.add_argument(
        "--allowed-country",
        action="append",
        default=None,
        metavar="ISO",
        help="a country (FR, BE…) the client may text (repeat; 'default' for the server's list)"
        + (": replaces the list" if update else ""),
    )
    parser.add_argument("--webhook-url", default=None, help="http(s) URL" + reset.format("none"))
    parser.add_argument(
        "--rate-limit",
        default=None,
        metavar="PER_SECOND",
        help="requests a second" + reset.format("default"),
    )
    parser.add_argument(
        "--actor", default=DEFAULT_ACTOR, help="who does this, for the credit ledger"
    )


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``clients`` subcommands to the ``smsgateway clients`` parser."""
    create = commands.add_parser("create", help="create a client and print its API key once")
    create.add_argument("--name", required=True)
    _settings_options(create, update=False)
    create.set_defaults(handler=_create)

    listing = commands.add_parser("list", help="list clients")
    listing.set_defaults(handler=_list)

    show = commands.add_parser("show", help="show one client")
    show.add_argument("id")
    show.set_defaults(handler=_show)

    update = commands.add_parser("update", help="change a client's settings")
    update.add_argument("id")
    update.add_argument("--name", default=None)
    _settings_options(update, update=True)
    update.add_argument(
        "--clear-allowed-ips", action="store_true", help="let the client call from anywhere"
    )
    update.set_defaults(handler=_update)

    rotate = commands.add_parser("rotate-key", help="replace the API key (the old one stops)")
    rotate.add_argument("id")
    rotate.set_defaults(handler=_rotate_key)

    rotate_secret = commands.add_parser(
        "rotate-webhook-secret", help="replace the webhook signing secret"
    )
    rotate_secret.add_argument("id")
    rotate_secret.set_defaults(handler=_rotate_webhook_secret)

    credit = commands.add_parser("credits", help="add (or, negative, remove) credits")
    credit.add_argument("id")
    credit.add_argument("--delta", required=True, help="credits to add; negative removes")
    credit.add_argument("--reason", required=True, help="kept in the credit ledger")
    credit.add_argument("--actor", default=DEFAULT_ACTOR)
    credit.set_defaults(handler=_credits)

    ledger = commands.add_parser("ledger", help="the client's credit ledger, newest first")
    ledger.add_argument("id")
    ledger.add_argument("--limit", type=int, default=100)
    ledger.set_defaults(handler=_ledger)

    disable = commands.add_parser("disable", help="disable a client (its key stops working)")
    disable.add_argument("id")
    disable.set_defaults(handler=_disable)

    reseal = commands.add_parser(
        "reseal-secrets",
        help="seal every webhook secret with the first key of SMSGW_SECRET_KEY (key rotation)",
    )
    reseal.set_defaults(handler=_reseal)
