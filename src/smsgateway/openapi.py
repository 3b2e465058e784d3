"""The committed ``openapi.yaml``: generated from the app, checked for drift by a test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from smsgateway.config import DatabaseSettings, Settings


def openapi_document() -> dict[str, Any]:
    from smsgateway.app import create_app

    # Built from defaults only, so the document never depends on the environment.
    app = create_app(Settings(database=DatabaseSettings(url="sqlite+aiosqlite://")))
    return app.openapi()


def render_openapi() -> str:
    return yaml.safe_dump(openapi_document(), sort_keys=False, allow_unicode=True, width=100)


def write_openapi(path: Path) -> Path:
    path.write_text(render_openapi(), encoding="utf-8")
    return path
