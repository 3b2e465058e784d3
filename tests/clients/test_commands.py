"""``smsgateway clients …`` run as a real process against the test database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from smsgateway.clients.service import client_for_key, hash_key
from smsgateway.credits.ledger import ledger_sum
from smsgateway.models.clients import ApiClient, CreditEntry
from smsgateway.runtime import Runtime


def _run(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own command
        [sys.executable, "-m", "smsgateway", "clients", *args],
        env={
            **os.environ,
            "SMSGW_DATABASE_URL": database_url,
            # shop.test never resolves: the address check is tests/webhooks/test_outbound.py.
            "SMSGW_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def test_create_list_show_update_credits_rotate_disable(
    database_url: str, runtime: Runtime
) -> None:
    created = _json(
        _run(
            database_url,
            "create",
            "--name", "shop",
            "--quota", "100",
            "--alert-threshold", "10",
            "--allowed-ip", "203.0.113.7",
            "--allowed-ip", "2001:db8::/32",
            "--rate-limit", "5",
            "--webhook-url", "https://shop.test/hooks",
        )
    )  # fmt: skip
    client_id, api_key = created["id"], created["api_key"]
    assert created["credits_left"] == 100 and created["alert_threshold"] == 10
    assert created["allowed_ips"] == ["203.0.113.7", "2001:db8::/32"]
    assert created["rate_limit_per_second"] == 5
    assert created["webhook_secret"]

    listed = _json(_run(database_url, "list"))["items"]
    assert [c["id"] for c in listed] == [client_id]
    shown = _json(_run(database_url, "show", client_id))
    assert shown["name"] == "shop" and "api_key" not in shown

    updated = _json(
        _run(
            database_url, "update", client_id,
            "--name", "shop-eu",
            "--quota", "150",
            "--alert-threshold", "none",
            "--clear-allowed-ips",
            "--rate-limit", "default",
        )
    )  # fmt: skip
    assert updated["name"] == "shop-eu"
    assert (updated["quota"], updated["credits_left"]) == (150, 150)
    assert updated["alert_threshold"] is None and updated["allowed_ips"] == []
    assert updated["rate_limit_per_second"] is None
    assert updated["webhook_url"] == "https://shop.test/hooks"

    credited = _json(
        _run(database_url, "credits", client_id, "--delta", "-20", "--reason", "moved to b",
             "--actor", "ops@example")
    )  # fmt: skip
    assert credited["credits_left"] == 130
    ledger = _json(_run(database_url, "ledger", client_id))["items"]
    assert (ledger[0]["delta"], ledger[0]["reason"], ledger[0]["actor"]) == (
        -20, "moved to b", "ops@example"
    )  # fmt: skip

    rotated = _run(database_url, "rotate-key", client_id)
    new_key = _json(rotated)["api_key"]
    assert "not shown again" in rotated.stderr
    secret = _json(_run(database_url, "rotate-webhook-secret", client_id))["webhook_secret"]
    assert secret != created["webhook_secret"]

    async with runtime.sessionmaker() as session:
        assert await client_for_key(session, api_key) is None
        client = await client_for_key(session, new_key)
        assert client is not None and client.key_hash == hash_key(new_key)
        assert client.webhook_secret == secret
        assert client.balance == await ledger_sum(session, client_id) == Decimal(130)
        rows = (await session.scalars(select(CreditEntry.kind).order_by(CreditEntry.id))).all()
        assert rows == ["grant", "adjust", "adjust"]

    disabled = _json(_run(database_url, "disable", client_id))
    assert disabled["disabled_at"] is not None
    async with runtime.sessionmaker() as session:
        assert await client_for_key(session, new_key) is None
        assert await session.get(ApiClient, client_id) is not None


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (("show", "nope"), 1, "No client 'nope'"),
        (("update", "nope", "--name", "x"), 1, "No client 'nope'"),
        (("rotate-key", "nope"), 1, "No client"),
        (("disable", "nope"), 1, "No client"),
        (("credits", "nope", "--delta", "5", "--reason", "x"), 1, "No client"),
        (("create", "--name", "x", "--allowed-ip", "10.0.0.1/24"), 2, "--allowed-ip"),
        (("create", "--name", "x", "--allowed-ip", "10.0.0.0/33"), 2, "not a valid CIDR"),
        (("create", "--name", "x", "--rate-limit", "0"), 2, "--rate-limit"),
        (("create", "--name", "x", "--webhook-url", "nope"), 2, "--webhook-url"),
        (("create", "--name", "x", "--alert-threshold", "-1"), 2, "--alert-threshold"),
    ],
)
def test_errors_go_to_stderr_with_an_exit_code(
    database_url: str, args: tuple[str, ...], code: int, words: str
) -> None:
    result = _run(database_url, *args)
    assert result.returncode == code, result.stderr
    assert words in result.stderr
    assert result.stdout == ""


async def test_conflicts_exit_1(database_url: str, runtime: Runtime) -> None:
    client_id = _json(_run(database_url, "create", "--name", "shop", "--quota", "5"))["id"]
    _json(_run(database_url, "create", "--name", "other"))
    taken = _run(database_url, "update", client_id, "--name", "other")
    assert taken.returncode == 1 and "already exists" in taken.stderr
    too_much = _run(database_url, "credits", client_id, "--delta", "-6", "--reason", "x")
    assert too_much.returncode == 1 and "5 are left" in too_much.stderr
    zero = _run(database_url, "credits", client_id, "--delta", "0", "--reason", "x")
    assert zero.returncode == 2 and "--delta" in zero.stderr
    six = [arg for i in range(6) for arg in ("--allowed-ip", f"192.0.2.{i}")]
    too_many = _run(database_url, "update", client_id, *six)
    assert too_many.returncode == 2 and "at most 5" in too_many.stderr
    nothing = _run(database_url, "update", client_id)
    assert nothing.returncode == 2
    async with runtime.sessionmaker() as session:
        client = await session.get(ApiClient, client_id)
        assert client is not None and client.name == "shop" and client.balance == 5
