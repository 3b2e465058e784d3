"""Where a webhook may go: http(s) without credentials, and only to public addresses.

A webhook URL is the one thing a client makes the gateway connect to, so it
must not reach what only the gateway can reach (its database, a cloud
metadata service, the admin port of a neighbour). Unless
``SMSGW_WEBHOOK_ALLOW_PRIVATE_NETWORKS`` is set, every address the URL's host
resolves to must be public: not loopback, private, link-local, shared,
multicast or reserved.

It is checked twice. When the URL is saved, ``check_destination`` answers a
``ValueError`` (a 422 for the API, an error for the CLI). On every delivery,
``pin`` resolves the host again, checks every address, and sends the request
to one of them with the URL's own ``Host`` and TLS server name: the address
checked is the address connected to, so a DNS answer that changes in between
(rebinding) cannot turn a public name into an internal address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx


class BlockedDestination(Exception):
    """The URL's host resolves to an address webhooks may not go to (or to none)."""


def check_syntax(url: str) -> str:
    """``url`` if it is ``http(s)://host…`` without user or password, else a ``ValueError``."""
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https"):
        raise ValueError("must be an http or https URL")
    if parsed.userinfo:
        raise ValueError("must not hold a user name or password")
    if not parsed.host:
        raise ValueError("must name a host")
    return url


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_public(address: str) -> bool:
    """Public, and so is any IPv4 address it carries (mapped, NAT64, 6to4, Teredo)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        carried = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
        if ip in _NAT64:
            carried.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if any(inner is not None and not is_public(str(inner)) for inner in carried):
            return False
    return ip.is_global and not ip.is_multicast


async def public_addresses(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, if all are public; else ``BlockedDestination``."""
    try:
        ipaddress.ip_address(host)
        addresses = [host]
    except ValueError:
        try:
            found = await _resolve(host, port)
        except (OSError, UnicodeError):
            raise BlockedDestination("the host name does not resolve") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
    if not addresses:
        raise BlockedDestination("the host name does not resolve")
    if not all(is_public(address) for address in addresses):
        raise BlockedDestination("the host is on a loopback, private or reserved network")
    return addresses


async def check_destination(url: str, *, allow_private: bool) -> None:
    """A ``ValueError`` naming why webhooks may not go to ``url``."""
    check_syntax(url)
    if allow_private:
        return
    parsed = httpx.URL(url)
    try:
        await public_addresses(parsed.host, parsed.port or _default_port(parsed))
    except BlockedDestination as exc:
        raise ValueError(str(exc)) from None


@dataclass(frozen=True, slots=True)
class Pinned:
    """A request's URL with its host replaced by a checked address, and what keeps it whole."""

    url: httpx.URL
    headers: dict[str, str]
    extensions: dict[str, str]


async def pin(url: str, *, allow_private: bool) -> Pinned:
    """Where a delivery to ``url`` goes (see the module's text); or ``BlockedDestination``."""
    parsed = httpx.URL(url)
    if allow_private:
        return Pinned(parsed, {}, {})
    port = parsed.port or _default_port(parsed)
    address = (await public_addresses(parsed.host, port))[0]
    host_header = parsed.netloc.decode("ascii")
    extensions = {"sni_hostname": parsed.host} if parsed.scheme == "https" else {}
    return Pinned(parsed.copy_with(host=address), {"Host": host_header}, extensions)


# Webhook names are resolved on threads of their own, never the event loop's shared
# pool, and one lookup per name at a time: a client whose name server never answers
# holds one of these threads (until the resolver gives up), not everyone's.
_RESOLVER = ThreadPoolExecutor(max_workers=16, thread_name_prefix="webhook-dns")
_in_flight: dict[tuple[int, str, int], asyncio.Future[list[Any]]] = {}


async def _resolve(host: str, port: int) -> list[Any]:
    loop = asyncio.get_running_loop()
    key = (id(loop), host, port)
    pending = _in_flight.get(key)
    if pending is None:
        pending = loop.run_in_executor(
            _RESOLVER, partial(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
        )
        _in_flight[key] = pending
        pending.add_done_callback(lambda _: _in_flight.pop(key, None))
    # Shielded: a delivery cut by its deadline leaves the lookup to the others waiting.
    return await asyncio.shield(pending)


def _default_port(url: httpx.URL) -> int:
    return 443 if url.scheme == "https" else 80
