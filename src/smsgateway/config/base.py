"""What every settings group shares: one ``SMSGW_*`` variable per field, read flat."""

from __future__ import annotations

import json
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, AliasGenerator, BeforeValidator
from pydantic_core import PydanticUseDefault
from pydantic_settings import BaseSettings, SettingsConfigDict


def _known_zone(zone: str) -> str:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{zone!r} is not an IANA time zone") from None
    return zone


def _json_text(value: object) -> object:
    if not isinstance(value, str):
        return value
    try:
        decoded = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if decoded is None:
        raise PydanticUseDefault  # ``null``: as if the variable were not set
    return decoded


Zone = Annotated[str, AfterValidator(_known_zone)]
# Lists and objects are JSON text in the environment. They are decoded here
# (``NoDecode`` + this) rather than by the environment source, so that invalid JSON
# is a validation error naming the variable.
FROM_JSON = BeforeValidator(_json_text)


class Group(BaseSettings):
    # extra="forbid": a flat name left over in Python (``WorkerSettings(worker_poll_seconds=1)``)
    # fails instead of being dropped. Variables are matched case-insensitively; no .env file.
    model_config = SettingsConfigDict(
        validate_by_name=True, validate_by_alias=True, extra="forbid", env_file=None
    )


def variables(prefix: str) -> SettingsConfigDict:
    """Config of a group whose fields are read from ``prefix`` + the field's name."""
    return SettingsConfigDict(
        alias_generator=AliasGenerator(validation_alias=lambda name: f"{prefix}{name}".upper())
    )
