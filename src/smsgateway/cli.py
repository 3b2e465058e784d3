"""The ``smsgateway`` command: serve, worker, migrate, clients, openapi."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

from smsgateway.config import Settings, get_settings


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from smsgateway.app import create_app
    from smsgateway.migrate import upgrade

    upgrade(settings.database_url)
    app = create_app(settings, run_worker=not args.no_worker)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=settings.log_level.lower(),
        proxy_headers=False,
    )
    return 0


async def _run_worker(settings: Settings) -> None:
    from smsgateway.messages.dispatcher import Dispatcher
    from smsgateway.runtime import build_runtime

    runtime = build_runtime(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await Dispatcher(runtime).run(stop)
    finally:
        await runtime.aclose()


def _worker(_args: argparse.Namespace, settings: Settings) -> int:
    asyncio.run(_run_worker(settings))
    return 0


def _migrate(_args: argparse.Namespace, settings: Settings) -> int:
    from smsgateway.migrate import upgrade

    upgrade(settings.database_url)
    print("database is up to date")
    return 0


async def _create_client(
    settings: Settings, name: str, quota: Decimal | None, webhook_url: str | None
) -> dict[str, str]:
    from smsgateway.clients.service import create_client
    from smsgateway.db import create_engine, session_factory

    engine = create_engine(settings.database_url)
    try:
        async with session_factory(engine)() as session, session.begin():
            created = await create_client(session, name=name, quota=quota, webhook_url=webhook_url)
            return {"id": created.client.id, "name": name, "api_key": created.api_key}
    finally:
        await engine.dispose()


def _clients_create(args: argparse.Namespace, settings: Settings) -> int:
    from smsgateway.migrate import upgrade

    quota: Decimal | None = None
    if args.quota is not None:
        try:
            quota = Decimal(args.quota)
        except InvalidOperation:
            print("error: --quota must be a number of credits", file=sys.stderr)
            return 2
        if quota < 0:
            print("error: --quota cannot be negative", file=sys.stderr)
            return 2
    upgrade(settings.database_url)
    from sqlalchemy.exc import IntegrityError

    try:
        created = asyncio.run(_create_client(settings, args.name, quota, args.webhook_url))
    except IntegrityError:
        print(f"error: a client named {args.name!r} already exists", file=sys.stderr)
        return 1
    print(json.dumps(created, indent=2))
    print("Store the api_key now: it is not shown again.", file=sys.stderr)
    return 0


def _openapi(args: argparse.Namespace, settings: Settings) -> int:
    from smsgateway.openapi import write_openapi

    path = write_openapi(Path(args.output))
    print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smsgateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the API (and the dispatcher)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--no-worker", action="store_true", help="do not run the dispatcher here")
    serve.set_defaults(handler=_serve)

    worker = commands.add_parser("worker", help="run only the dispatcher")
    worker.set_defaults(handler=_worker)

    migrate = commands.add_parser("migrate", help="apply pending database migrations")
    migrate.set_defaults(handler=_migrate)

    clients = commands.add_parser("clients", help="manage API clients")
    client_commands = clients.add_subparsers(dest="clients_command", required=True)
    create = client_commands.add_parser("create", help="create a client and print its API key")
    create.add_argument("--name", required=True)
    create.add_argument("--quota", default=None, help="credits (default: unlimited)")
    create.add_argument("--webhook-url", default=None)
    create.set_defaults(handler=_clients_create)

    openapi = commands.add_parser("openapi", help="write the OpenAPI description")
    openapi.add_argument("--output", default="openapi.yaml")
    openapi.set_defaults(handler=_openapi)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    _configure_logging(settings)
    code: int = args.handler(args, settings)
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
