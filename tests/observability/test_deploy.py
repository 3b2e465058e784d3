"""The deployment files: alerts name series /metrics really has; compose's shape holds.

(``promtool check rules deploy/alerts.yml`` and ``docker compose config`` check the
syntax where those tools exist; these checks need neither.)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import yaml

from smsgateway.observability.provider import instrument
from smsgateway.providers.base import OutgoingJob
from smsgateway.providers.fake import FakeProvider
from smsgateway.runtime import Runtime
from tests.conftest import ADMIN_TOKEN

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK_ANCHORS = {"observability-and-runbook", "queue-growing", "provider-failing", "credits-low"}


def load(path: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / path).read_text())
    return loaded


async def test_every_alert_uses_series_that_metrics_exposes(
    observed: Runtime, provider: FakeProvider, http: httpx.AsyncClient
) -> None:
    # A provider call and a callback, so the labelled process series have samples.
    await instrument(observed.provider, observed.metrics).send(
        OutgoingJob(text="x", receivers=["+33611223344"], tag="sgwdeploy")
    )
    await http.get("/v1/providers/ovh/wrong-token/dlr")
    text = (await http.get("/metrics", headers=ADMIN)).text
    # Samples, and families still without samples (a counter nothing incremented yet).
    exposed = set(re.findall(r"^(?:# HELP )?(smsgw_\w+)", text, re.MULTILINE))
    rules = [rule for group in load("deploy/alerts.yml")["groups"] for rule in group["rules"]]
    assert len(rules) >= 8
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        anchor = rule["annotations"]["runbook"].split("#", 1)[1]
        assert anchor in RUNBOOK_ANCHORS, rule["alert"]
        for name in re.findall(r"\bsmsgw_\w+", rule["expr"]):
            assert name in exposed, f"{rule['alert']} uses {name}, not exposed"
    readme = (ROOT / "README.md").read_text()
    for heading in (
        "## Observability and runbook",
        "#### Queue growing",
        "#### Provider failing",
        "#### Credits low",
    ):
        assert heading in readme


def test_compose_runs_two_api_replicas_and_workers_on_one_postgres() -> None:
    services = load("compose.yaml")["services"]
    assert {"postgres", "migrate", "api", "worker"} <= set(services)
    api, worker, migrate = services["api"], services["worker"], services["migrate"]
    assert api["deploy"]["replicas"] == 2
    assert api["command"][:2] == ["smsgateway", "serve"] and "--no-worker" in api["command"]
    assert worker["command"] == ["smsgateway", "worker"]
    assert migrate["command"] == ["smsgateway", "migrate"]
    for service in (api, worker):
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert service["environment"]["SMSGW_DATABASE_URL"].startswith("postgresql+asyncpg://")
        assert "@postgres:5432/" in service["environment"]["SMSGW_DATABASE_URL"]
    assert worker["environment"]["SMSGW_WORKER_METRICS_PORT"] == "9100"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_prometheus_scrapes_api_and_workers_and_loads_the_alerts() -> None:
    config = load("deploy/prometheus.yml")
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    ports = {job["job_name"]: job["dns_sd_configs"][0]["port"] for job in config["scrape_configs"]}
    assert ports == {"smsgateway-api": 8000, "smsgateway-worker": 9100}
    [api] = [job for job in config["scrape_configs"] if job["job_name"] == "smsgateway-api"]
    assert api["authorization"]["credentials_file"] == "/prometheus/metrics_token"
    prometheus = load("compose.yaml")["services"]["prometheus"]
    assert "/prometheus/metrics_token" in prometheus["command"][0]
    assert "SMSGW_METRICS_TOKEN" in load("compose.yaml")["x-smsgateway"]["environment"]
