"""numbers in paths spelled the way people write them reach logs and problems."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.observability.test_logging import Lines, json_lines  # noqa: F401


@pytest.mark.parametrize(
    "spelled",
    [
        "+33 6 11 22 33 44",
        "+33.6.11.22.33.44",
        "+33-611-223-344",
        "+33(0)611223344",
    ],
)
async def test_a_number_with_separators_in_the_path_is_masked(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    json_lines: Lines,  # noqa: F811
    spelled: str,
) -> None:
    # /v1/phones/{number} accepts these (phonenumbers reads separators); the path
    # must be masked as for +33611223344.
    answer = await http.patch(f"/v1/phones/{spelled}", json={"status": "suspended"}, headers=auth)
    assert answer.status_code in (404, 422), answer.text
    # (the test client's own httpx line aside)
    server = [line for line in json_lines.all() if not line["logger"].startswith("httpx")]
    [access] = [line for line in server if line["logger"] == "smsgateway.access"]
    assert access["path"] == "/v1/phones/+336******44"
    assert spelled not in json.dumps(server)
    assert spelled not in answer.json().get("instance", "")
