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
from dataclasses import dataclass

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


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def public_addresses(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, if all are public; else ``BlockedDestination``."""
    try:
        ipaddress.ip_address(host)
        addresses = [host]
    except ValueError:
        loop = asyncio.get_running_loop()
        try:
            found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
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


def _default_port(url: httpx.URL) -> int:
    return 443 if url.scheme == "https" else 80
