"""Webhook signatures: HMAC-SHA256 over ``<timestamp>.<body>``.

Header ``Smsgw-Signature: t=<unix seconds>,v1=<hex digest>``. The receiver
recomputes the digest with its webhook secret, compares in constant time,
and rejects timestamps too far from its clock (replays).
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "Smsgw-Signature"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(secret: str, header: str, body: bytes, *, now: int, tolerance: int = 300) -> bool:
    """What a receiver does: parse the header, check freshness and the digest."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
        given = fields["v1"]
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(given, signature(secret, timestamp, body))
