"""Which endpoint addresses the server may call: public ones only.

Anyone who signs up can create a provider and enter an endpoint URL, and the server then
calls that URL (the portal's test call, health checks, battles). Without a check, that is
a way to make the server reach what only it can reach: its own loopback services, the
private network behind it, a cloud metadata service at 169.254.169.254. So an endpoint
must resolve to global addresses only. The check runs when the URL is saved (a clear
error for the provider) and again right before each call (a name may be re-pointed
after it was saved).

What stays possible is a name that resolves to a public address for the check and to a
private one a moment later (DNS rebinding); production should also deny the web and
worker machines egress to private ranges (docs/security.md).

ARENA_ALLOW_PRIVATE_ENDPOINTS turns the check off, for development and for the test
suite's chat-completions server on loopback.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings


def endpoint_refusal(url: str, *, resolve: bool = True) -> str | None:
    """Why the server must not call `url`, in words for the provider; None when it may.

    A host that does not resolve is not refused here (the call itself will fail and be
    recorded as unreachable); `resolve=False` checks literal addresses and names only.
    """
    if settings.ARENA_ALLOW_PRIVATE_ENDPOINTS:
        return None
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        return f"The endpoint URL is not valid ({exc})."
    if not host:
        return "The endpoint URL has no host."
    host = host.rstrip(".").lower()
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        return f"The endpoint host {host!r} is a local name; use a public address." + _development_hint()
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        addresses = _resolved(host, port or (443 if parts.scheme == "https" else 80)) if resolve else []
    for address in addresses:
        for judged in _judged(address):
            if not _public(judged):
                leads_to = f" (an IPv6 form of {judged})" if judged != address else ""
                return (
                    f"The endpoint {host!r} points to {address}{leads_to}, which is not a public address."
                    + _development_hint()
                )
    return None


def _development_hint() -> str:
    """In development (DEBUG on), the refusal says how to allow a model server on one's own machine."""
    if not settings.DEBUG:
        return ""
    return (
        " For development, ARENA_ALLOW_PRIVATE_ENDPOINTS=1 allows endpoints on this machine and private networks "
        "(never in production)."
    )


# IPv6 ranges that carry an IPv4 address in their low 32 bits and reach it when called:
# NAT64's well-known prefix (RFC 6052; a NAT64 gateway forwards 64:ff9b::7f00:1 to
# 127.0.0.1 on its side), IPv4-compatible (deprecated) and IPv4-translated (SIIT) forms.
_EMBEDS_IPV4_LOW = (
    ipaddress.IPv6Network("64:ff9b::/96"),
    ipaddress.IPv6Network("::/96"),
    ipaddress.IPv6Network("::ffff:0:0:0/96"),
)
# Local-use NAT64 (RFC 8215): a network's own translator, never a public address.
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _public(address: Address) -> bool:
    # Multicast (224.0.0.1, ff0e::1) counts as global in Python, but an endpoint is never a group.
    return address.is_global and not address.is_multicast and address not in _LOCAL_NAT64


def _judged(address: Address) -> list[Address]:
    """The address and every IPv4 address it carries: all of them must be public.

    Python's is_global judges an IPv6 address by its own ranges only: 64:ff9b::7f00:1 (NAT64)
    and 2002:7f00:1:: (6to4) count as global although they lead to 127.0.0.1.
    """
    if isinstance(address, ipaddress.IPv4Address):
        return [address]
    judged: list[Address] = [address]
    if address.ipv4_mapped is not None:
        judged = [address.ipv4_mapped]  # ::ffff:a.b.c.d is a.b.c.d itself
    if address.sixtofour is not None:
        judged.append(address.sixtofour)
    if address.teredo is not None:
        judged.extend(address.teredo)  # (server, client); 2001::/32 is refused on its own too
    if any(address in network for network in _EMBEDS_IPV4_LOW):
        judged.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return judged


def _resolved(host: str, port: int) -> list[Address]:
    try:
        found = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return []
    # The address part may carry an IPv6 zone ("fe80::1%eth0"); the zone is not part of it.
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found]
