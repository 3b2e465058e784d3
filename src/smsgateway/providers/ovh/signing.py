"""OVHcloud API endpoints and the application-key request signature."""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

# Same values as ``ovh.client.ENDPOINTS`` in the official ``ovh`` package (1.2.0); the
# test suite compares them so a drift is caught.
ENDPOINTS: dict[str, str] = {
    "ovh-eu": "https://eu.api.ovh.com/1.0",
    "ovh-ca": "https://ca.api.ovh.com/1.0",
    "ovh-us": "https://api.us.ovhcloud.com/1.0",
}


def resolve_endpoint(name_or_url: str) -> str:
    """Return the API base URL for a known endpoint name or an http(s) base URL.

    ``"ovh-eu"`` gives ``"https://eu.api.ovh.com/1.0"``; a URL such as
    ``"http://127.0.0.1:9000/1.0"`` (a local fake of the API) is returned without
    its trailing slash. Anything else raises ``ValueError``.
    """
    candidate = name_or_url.strip()
    if candidate in ENDPOINTS:
        return ENDPOINTS[candidate]
    known = ", ".join(sorted(ENDPOINTS))
    try:
        parts = urlsplit(candidate)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:  # e.g. a non-numeric or out-of-range port
        port_ok = False
        parts = None
    if (
        parts is None
        or not port_ok
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        # Credentials in the URL would be logged with it; OVH never uses them.
        or parts.username is not None
        or any(ch.isspace() for ch in candidate)
    ):
        raise ValueError(
            f"unknown OVH endpoint {name_or_url[:80]!r}: use one of {known} "
            "or an http(s) base URL such as http://127.0.0.1:9000/1.0"
        )
    return candidate.rstrip("/")


def sign(
    secret: str,
    consumer_key: str,
    method: str,
    url: str,
    body: bytes | str,
    timestamp: int,
) -> str:
    """Compute ``X-Ovh-Signature`` for one request.

    ``"$1$" + sha1_hex(secret+"+"+consumer_key+"+"+METHOD+"+"+url+"+"+body+"+"+timestamp)``
    where ``url`` is the full URL including its query string and ``body`` the exact
    bytes sent (empty for no body), both exactly as they go on the wire.
    """
    body_bytes = body.encode("utf-8") if isinstance(body, str) else body
    digest = hashlib.sha1(usedforsecurity=False)
    # Hashing bytes (not a decoded str) keeps the signature exact for any body encoding.
    digest.update(
        "+".join((secret, consumer_key, method.upper(), url, "")).encode("utf-8")
        + body_bytes
        + f"+{timestamp}".encode("ascii")
    )
    return "$1$" + digest.hexdigest()
