"""Secrets at rest: webhook secrets are stored sealed with ``SMSGW_SECRET_KEY``.

``SMSGW_SECRET_KEY`` is one or more Fernet keys (``cryptography``: AES-128-CBC
and HMAC-SHA256), separated by commas. The first seals; every one opens, so
keys can be rotated without downtime: put the new key first, restart, run
``smsgateway clients reseal-secrets`` (every secret sealed again with the new
key), then drop the old key. A sealed value is stored as ``fernet:<token>``.

Without a key, secrets are stored as they are (a warning says so at start-up):
the default for a local run. A value stored before a key was set is still
read, and sealed on ``reseal-secrets``. The ``Sealed`` column type seals on
write and opens on read, so the rest of the code only sees the secret.
"""

from __future__ import annotations

import logging
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import String
from sqlalchemy.types import TypeDecorator

log = logging.getLogger(__name__)

PREFIX = "fernet:"


class SealedUnreadable(Exception):
    """A sealed value that no configured key opens (or no key is configured)."""


class _Keys:
    fernet: MultiFernet | None = None


def parse_keys(raw: str | None) -> list[str]:
    """The keys of ``SMSGW_SECRET_KEY``; a ``ValueError`` naming a malformed one."""
    keys = [key.strip() for key in (raw or "").split(",") if key.strip()]
    for n, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            raise ValueError(
                f"SMSGW_SECRET_KEY: key {n} is not a Fernet key (32 url-safe base64-encoded"
                " bytes; make one with python -c 'from cryptography.fernet import Fernet;"
                " print(Fernet.generate_key().decode())')"
            ) from None
    return keys


def configure(raw: str | None) -> None:
    """Use the keys of ``SMSGW_SECRET_KEY`` (None or empty: store secrets as they are)."""
    keys = parse_keys(raw)
    _Keys.fernet = MultiFernet([Fernet(key) for key in keys]) if keys else None


def seal(plain: str) -> str:
    fernet = _Keys.fernet
    if fernet is None:
        return plain
    return PREFIX + fernet.encrypt(plain.encode()).decode("ascii")


def unseal(stored: str) -> str:
    if not stored.startswith(PREFIX):
        return stored  # stored before a key was set
    fernet = _Keys.fernet
    if fernet is None:
        raise SealedUnreadable("a sealed secret, and SMSGW_SECRET_KEY is not set")
    try:
        return fernet.decrypt(stored.removeprefix(PREFIX).encode()).decode()
    except InvalidToken:
        raise SealedUnreadable("no key of SMSGW_SECRET_KEY opens a stored secret") from None


def is_sealed_with_first_key(stored: str) -> bool:
    """Whether ``stored`` is sealed with the key that seals now (nothing to reseal)."""
    fernet = _Keys.fernet
    if fernet is None or not stored.startswith(PREFIX):
        return fernet is None
    first = fernet._fernets[0]
    try:
        first.decrypt(stored.removeprefix(PREFIX).encode())
    except InvalidToken:
        return False
    return True


class Sealed(TypeDecorator[str]):
    """A text column whose value is sealed in the database (see the module's text)."""

    impl = String(255)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else seal(str(value))

    def process_result_value(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else unseal(str(value))
