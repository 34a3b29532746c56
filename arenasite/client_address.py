"""The client's address: who connected, or behind trusted proxies, who they say connected to them.

REMOTE_ADDR is the peer of the TCP connection. Behind a reverse proxy that is the proxy;
the proxy appends the address it saw to X-Forwarded-For. Any client can write that header
too, so it is read only when the peer is one of ARENA_TRUSTED_PROXIES, and then from the
right: each hop that is itself a trusted proxy is skipped, and the first address that is
not is the client. Whatever a client wrote further left is never believed.

(django-ipware was considered: it matches proxies by text prefix, not by network, and
cannot say "10.0.0.0/8 and fd00::/8", so the walk is written out here with `ipaddress`.)
"""

from __future__ import annotations

import ipaddress
from functools import cache
from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:
    from django.http import HttpRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CACHE_ATTRIBUTE = "_arena_client_address"


@cache
def _trusted_networks(configured: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in configured)


def parse_address(text: str) -> IPAddress | None:
    """An address as the header or REMOTE_ADDR may write it, or None: an IPv4 address written as
    IPv6 (::ffff:192.0.2.1) is the IPv4 one; "[2001:db8::1]:443" and "192.0.2.1:80" lose the port."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _trusted(ip: IPAddress) -> bool:
    return any(
        ip.version == net.version and ip in net for net in _trusted_networks(tuple(settings.ARENA_TRUSTED_PROXIES))
    )


def client_address(request: HttpRequest) -> IPAddress | None:
    """The client's address for this request (kept on the request), or None when unknown."""
    if hasattr(request, _CACHE_ATTRIBUTE):
        return getattr(request, _CACHE_ATTRIBUTE)
    address = parse_address(request.META.get("REMOTE_ADDR", ""))
    if address is not None and _trusted(address):
        for hop in reversed(request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")):
            hop_address = parse_address(hop)
            if hop_address is None:
                break  # garbage from here on was written by someone we do not trust
            address = hop_address
            if not _trusted(hop_address):
                break
    setattr(request, _CACHE_ATTRIBUTE, address)
    return address


def validate_trusted_proxies(items: list[str]) -> list[str]:
    """The setting's items, or ValueError naming the one that is not an address or network."""
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"ARENA_TRUSTED_PROXIES: {item!r} is not an address or network (CIDR)") from None
    return items
