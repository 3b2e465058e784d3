"""The smsgateway command, run as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from smsgateway.clients.service import hash_key
from smsgateway.models.clients import ApiClient
from smsgateway.runtime import Runtime


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own command
        [sys.executable, "-m", "smsgateway", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_migrate_creates_the_schema_on_a_fresh_database(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    result = _run("migrate", env={"SMSGW_DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout
    again = _run("migrate", env={"SMSGW_DATABASE_URL": url})
    assert again.returncode == 0


async def test_clients_create_prints_the_key_once_and_stores_only_its_hash(
    database_url: str, runtime: Runtime
) -> None:
    result = _run(
        "clients",
        "create",
        "--name",
        "shop",
        "--quota",
        "500",
        env={"SMSGW_DATABASE_URL": database_url},
    )
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    api_key = created["api_key"]
    assert api_key.startswith("sgw_") and len(api_key) > 40
    assert "not shown again" in result.stderr
    async with runtime.sessionmaker() as session:
        client = await session.scalar(select(ApiClient).where(ApiClient.name == "shop"))
    assert client is not None
    assert client.id == created["id"]
    assert client.quota == 500
    assert client.key_hash == hash_key(api_key)
    stored = {str(getattr(client, column.key)) for column in ApiClient.__table__.columns}
    assert api_key not in stored

    duplicate = _run(
        "clients", "create", "--name", "shop", env={"SMSGW_DATABASE_URL": database_url}
    )
    assert duplicate.returncode == 1
    assert "already exists" in duplicate.stderr


@pytest.mark.parametrize("quota", ["-5", "lots"])
def test_clients_create_refuses_a_bad_quota(tmp_path: Path, quota: str) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'q.db'}"
    result = _run(
        "clients", "create", "--name", "x", "--quota", quota, env={"SMSGW_DATABASE_URL": url}
    )
    assert result.returncode == 2
    assert "--quota" in result.stderr
