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
        return f"The endpoint host {host!r} is a local name; use a public address."
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        addresses = _resolved(host, port or (443 if parts.scheme == "https" else 80)) if resolve else []
    for address in addresses:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not address.is_global:
            return f"The endpoint {host!r} points to {address}, which is not a public address."
    return None


def _resolved(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        found = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return []
    # The address part may carry an IPv6 zone ("fe80::1%eth0"); the zone is not part of it.
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in found]
