"""The committed openapi.yaml is exactly what the app describes."""

from __future__ import annotations

from pathlib import Path

import yaml

from smsgateway.openapi import openapi_document, render_openapi

COMMITTED = Path(__file__).resolve().parents[1] / "openapi.yaml"


def test_committed_openapi_matches_the_app() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render_openapi(), (
        "openapi.yaml is out of date: run `smsgateway openapi` and commit the result"
    )


def test_openapi_describes_the_public_contract() -> None:
    document = openapi_document()
    paths = document["paths"]
    for path, method in [
        ("/v1/booking-events", "post"),
        ("/v1/messages", "post"),
        ("/v1/messages", "get"),
        ("/v1/messages/{message_id}", "get"),
        ("/v1/messages/{message_id}", "delete"),
        ("/v1/campaigns", "post"),
        ("/v1/campaigns", "get"),
        ("/v1/campaigns/{campaign_id}", "get"),
        ("/v1/campaigns/{campaign_id}/cancel", "post"),
        ("/v1/providers/ovh/{token}/dlr", "get"),
        ("/v1/providers/ovh/{token}/dlr", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    ]:
        assert method in paths[path], f"{method.upper()} {path} is not documented"
    assert (
        "application/problem+json"
        in paths["/v1/booking-events"]["post"]["responses"]["409"]["content"]
    )
    campaign_body = paths["/v1/campaigns"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(campaign_body)
    assert yaml.safe_load(COMMITTED.read_text(encoding="utf-8"))["info"]["title"] == "smsgateway"
