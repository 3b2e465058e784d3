"""The ``smsgateway`` command: serve, worker, migrate, clients, openapi."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from smsgateway.clients.commands import register as register_client_commands
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
    from smsgateway.runtime import build_runtime
    from smsgateway.worker import run_workers

    runtime = build_runtime(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await run_workers(runtime, stop)
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
    register_client_commands(client_commands)

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
