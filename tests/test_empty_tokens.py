"""An empty admin or callback token must never open anything."""

from __future__ import annotations

import httpx
from pydantic import SecretStr

from smsgateway.runtime import Runtime


async def test_an_empty_admin_token_does_not_open_admin_routes(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    runtime.settings.api.admin_token = SecretStr("")
    bare = await http.get("/v1/admin/clients")
    empty = await http.get("/v1/admin/clients", headers={"Authorization": "Bearer "})
    assert bare.status_code == 401
    assert empty.status_code in (401, 403)


async def test_an_empty_callback_token_does_not_open_callbacks(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    runtime.settings.api.callback_token = SecretStr("")
    response = await http.get("/v1/providers/ovh/%20/dlr", params={"id": "1", "dlr": "1"})
    assert response.status_code == 404
