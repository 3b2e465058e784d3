"""Where a request comes from, and whether a client's IP allowlist lets it in.

The address that counts is the TCP peer. ``X-Forwarded-For`` is only believed
when the peer is one of ``SMSGW_TRUSTED_PROXIES``: anyone can write that
header, so trusting it from everywhere would let a caller pick the address
the allowlist sees. Behind trusted proxies the header is read from the right
(each proxy appends the address it saw), skipping our own proxies, and the
first address no trusted proxy wrote is the client. Entries further left were
written by the caller and are never believed.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Sequence
from functools import lru_cache

from starlette.requests import Request

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_ALLOWED_IPS = 5


def normalise_entry(entry: str) -> str:
    """An allowlist entry in canonical form: an address, or a network in CIDR form.

    Raises ``ValueError`` with a message fit for the caller. A range with host
    bits set (``10.0.0.1/24``) is refused rather than silently widened to
    ``10.0.0.0/24``: it usually means a typo in the prefix or in the address,
    and guessing would open the allowlist wider than intended.
    """
    text = entry.strip()
    if not text:
        raise ValueError("an allowed IP cannot be empty")
    if "/" not in text:
        try:
            return str(_unmapped(ipaddress.ip_address(text)))
        except ValueError:
            raise ValueError(f"{text!r} is not an IPv4 or IPv6 address") from None
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError:
        try:
            widened = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(f"{text!r} is not a valid CIDR range") from None
        raise ValueError(
            f"{text!r} has host bits set: write {widened} for the range, or the address alone"
        ) from None
    if network.num_addresses == 1:
        return str(network.network_address)
    return str(network)


def parse_address(text: str) -> IPAddress | None:
    """An address as a proxy may write it (``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``), or None."""
    value = text.strip().strip('"')
    if value.startswith("["):
        value = value[1:].split("]", 1)[0]
    elif value.count(":") == 1:  # IPv4 with a port; a bare IPv6 has several colons
        value = value.split(":", 1)[0]
    try:
        return _unmapped(ipaddress.ip_address(value))
    except ValueError:
        return None


def _unmapped(address: IPAddress) -> IPAddress:
    """``::ffff:203.0.113.7`` is 203.0.113.7 (dual-stack sockets report IPv4 peers so)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@lru_cache(maxsize=32)
def _networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """Parsed once per distinct list; a bad entry is logged and skipped (it trusts nothing)."""
    networks: list[IPNetwork] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            log.warning("ignoring %r: not an IP address or CIDR range", entry)
    return tuple(networks)


def _within(address: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    # ``in`` is simply False across IP versions, so mixed lists need no special case.
    return any(address in network for network in networks)


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted_proxies: Sequence[str]
) -> IPAddress | None:
    """The caller's address: the peer, or what trusted proxies say about it.

    ``forwarded_for`` is every ``X-Forwarded-For`` header line, in order. None
    when the address cannot be read (an allowlist then refuses the request).
    """
    address = parse_address(peer) if peer else None
    if address is None:
        return None
    proxies = _networks(tuple(trusted_proxies))
    if not proxies or not _within(address, proxies):
        return address
    hops = [hop for line in forwarded_for for hop in line.split(",") if hop.strip()]
    for hop in reversed(hops):
        hop_address = parse_address(hop)
        if hop_address is None:
            return None  # a garbled chain: believe nothing to its left
        address = hop_address
        if not _within(address, proxies):
            return address
    # Every hop is one of our proxies: the leftmost is as close to the caller as we know.
    return address


def request_address(request: Request, trusted_proxies: Sequence[str]) -> IPAddress | None:
    peer = request.client.host if request.client else None
    return client_address(peer, request.headers.getlist("x-forwarded-for"), trusted_proxies)


def allowed(address: IPAddress | str | None, allowlist: Sequence[str]) -> bool:
    """True when ``allowlist`` is empty or ``address`` is in one of its entries."""
    if not allowlist:
        return True
    if isinstance(address, str):
        address = parse_address(address)
    if address is None:
        return False
    return _within(address, _networks(tuple(allowlist)))
