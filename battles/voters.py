"""Who is voting: the salted judge id stored with battles and votes.

Voters are anonymous by default. An anonymous voter is a random id kept in the Django
session (a cookie), made on the first battle; a logged-in voter (allauth) is the
account. Either way what is stored is an HMAC of that identity with JUDGE_SALT, so a
stored judge id cannot be traced back to an account or a session without the salt, and
no IP address is ever part of it.

The per-network daily cap needs to know which votes come from one network. The client's
address is cut to its network prefix (/24 for IPv4, /48 for IPv6: what one household,
office or server usually holds) and only an HMAC of that prefix is stored, never the
address nor the prefix itself.

Clearing cookies makes a new session, so an anonymous voter's caps are also counted per
client address (the IPv4 address, the IPv6 /64 one device or home is given) and per
network, with a coarser IPv6 cap on the /32 a provider hands out, since one /32 holds
65,536 /48s. The client address is REMOTE_ADDR, or the forwarded client behind trusted
proxies (arenasite/client_address.py).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest

from arenasite.client_address import client_address

SESSION_KEY = "arena_voter"


def judge_id(identity: str) -> str:
    """The stored form of a voter's identity: 32 hex characters of HMAC-SHA256."""
    return hmac.new(settings.JUDGE_SALT.encode(), identity.encode(), hashlib.sha256).hexdigest()[:32]


def judge_for(request: HttpRequest, *, create: bool = True) -> str | None:
    """The judge id of the request's voter; None for a new anonymous visitor when not `create`.

    A visitor who only reads (create=False) gets no session, so reading a battle never
    writes one; starting a battle or voting creates it.
    """
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return judge_id(f"user:{user.pk}")
    voter = request.session.get(SESSION_KEY)
    if voter is None:
        if not create:
            return None
        voter = uuid.uuid4().hex
        request.session[SESSION_KEY] = voter
    return judge_id(f"session:{voter}")


def forget_new_voter(request: HttpRequest) -> None:
    """Undo the anonymous voter judge_for just made, when the request that made it is refused:
    a refused request stores nothing, not even a session (a flood with fresh cookies would
    otherwise write one session row per refused request)."""
    if request.session.session_key is None:
        request.session.pop(SESSION_KEY, None)


IPV4_PREFIX = 24
IPV6_PREFIX = 48
# One client address: an IPv4 address, or the /64 an IPv6 device or home is given.
IPV6_ADDRESS_PREFIX = 64
# The coarser IPv6 cap: the /32 a provider is allocated.
IPV6_WIDE_PREFIX = 32


# The name the anomalous-voter test gives one client address's short sessions, tested together
# (battles/anomaly_detection.py); staff review and ban it like any voter.
ADDRESS_VOTER = "address:"


@dataclass(frozen=True)
class Voter:
    """Who is voting, as stored and as counted: the judge id and the client's address, network
    and (IPv6) wide network as salted hashes, "" where unknown."""

    judge: str
    signed_in: bool = False
    address: str = ""
    network: str = ""
    wide_network: str = ""


def voter_for(request: HttpRequest, *, create: bool = True) -> Voter | None:
    """The request's voter with its client address; None for a new anonymous visitor when not `create`."""
    judge = judge_for(request, create=create)
    if judge is None:
        return None
    ip = client_address(request)
    text = str(ip) if ip is not None else ""
    user = getattr(request, "user", None)
    return Voter(
        judge=judge,
        signed_in=bool(user is not None and user.is_authenticated),
        address=address_id(text),
        network=network_id(text),
        wide_network=wide_network_id(text),
    )


def network_prefix(address: str) -> str | None:
    """The /24 (IPv4) or /48 (IPv6) network of an address, as text; None when it is not an address.

    An IPv4 address written as IPv6 (::ffff:192.0.2.1) is the IPv4 one, so a dual-stack
    proxy does not give one network two names.
    """
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = IPV4_PREFIX if ip.version == 4 else IPV6_PREFIX
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


# Addresses that name no client network: loopback and the private ranges. A vote from one
# means the site sits behind a proxy that did not pass the client's address on, or on an
# internal network; counting all of them as one network would cap everybody together.
_NO_CLIENT_NETWORK = [
    ipaddress.ip_network(n)
    for n in ("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "::1/128", "fc00::/7", "fe80::/10")
]


def _prefix_id(kind: str, address: str, ipv4_prefix: int | None, ipv6_prefix: int) -> str:
    """An HMAC of the address cut to the prefix for its version; "" when it is not an address,
    names no client network (loopback, private), or (ipv4_prefix None) is IPv4."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return ""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = ipv4_prefix if ip.version == 4 else ipv6_prefix
    if prefix is None:
        return ""
    network = ipaddress.ip_network(f"{ip}/{prefix}", strict=False)
    if not _names_a_client_network(network):
        return ""
    return hmac.new(settings.JUDGE_SALT.encode(), f"{kind}:{network}".encode(), hashlib.sha256).hexdigest()[:32]


def network_id(address: str) -> str:
    """The stored form of the client's network (/24, /48): 32 hex characters of HMAC-SHA256, or ""
    when unknown (not an address, or a loopback or private one)."""
    return _prefix_id("network", address, IPV4_PREFIX, IPV6_PREFIX)


def address_id(address: str) -> str:
    """The stored form of the client's address (IPv4 /32, IPv6 /64), as network_id."""
    return _prefix_id("address", address, 32, IPV6_ADDRESS_PREFIX)


def wide_network_id(address: str) -> str:
    """The stored form of the client's IPv6 /32; "" for IPv4, where the /24 is already coarse."""
    return _prefix_id("wide", address, None, IPV6_WIDE_PREFIX)


def network_for(request: HttpRequest) -> str:
    """The request's network id, from its client address (arenasite/client_address.py)."""
    ip = client_address(request)
    return network_id(str(ip)) if ip is not None else ""


def _names_a_client_network(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    return not any(network.version == n.version and network.overlaps(n) for n in _NO_CLIENT_NETWORK)
