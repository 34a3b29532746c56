"""The client's address: REMOTE_ADDR, or behind trusted proxies the forwarded client, never a
header an untrusted peer wrote."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.test import RequestFactory, override_settings

from arenasite.client_address import client_address, validate_trusted_proxies
from tests.support.processes import ROOT


def address_of(remote: str, forwarded: str | None = None) -> str | None:
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    found = client_address(RequestFactory().get("/", **extra))
    return None if found is None else str(found)


def test_with_no_trusted_proxy_the_peer_is_the_client_and_a_forwarded_header_is_ignored():
    assert address_of("203.0.113.5") == "203.0.113.5"
    assert address_of("203.0.113.5", "198.51.100.7") == "203.0.113.5"


@override_settings(ARENA_TRUSTED_PROXIES=["127.0.0.1/32"])
def test_behind_a_trusted_proxy_the_client_is_the_address_it_appended():
    assert address_of("127.0.0.1", "198.51.100.7") == "198.51.100.7"
    # What the client wrote itself (left of what the proxy appended) is never believed.
    assert address_of("127.0.0.1", "1.2.3.4, 198.51.100.7") == "198.51.100.7"


@override_settings(ARENA_TRUSTED_PROXIES=["127.0.0.1/32"])
def test_a_forwarded_header_from_an_untrusted_peer_is_ignored():
    assert address_of("203.0.113.5", "198.51.100.7") == "203.0.113.5"


@override_settings(ARENA_TRUSTED_PROXIES=["10.0.0.0/8", "fd00::/8"])
def test_a_chain_of_trusted_proxies_is_walked_from_the_right():
    assert address_of("10.0.0.2", "198.51.100.7, 10.1.1.1, fd00::3") == "198.51.100.7"
    # Every hop trusted: the leftmost one is the best that is known.
    assert address_of("10.0.0.2", "10.9.9.9") == "10.9.9.9"
    # Garbage stops the walk at the last address that was read.
    assert address_of("10.0.0.2", "198.51.100.7, not-an-address") == "10.0.0.2"


@override_settings(ARENA_TRUSTED_PROXIES=["127.0.0.1/32"])
def test_ports_brackets_and_ipv4_written_as_ipv6_are_understood():
    assert address_of("127.0.0.1", "[2001:db8::5]:443") == "2001:db8::5"
    assert address_of("127.0.0.1", "198.51.100.7:5555") == "198.51.100.7"
    assert address_of("::ffff:127.0.0.1", "::ffff:198.51.100.7") == "198.51.100.7"


def test_no_address_at_all_is_none():
    assert address_of("") is None


def test_the_setting_refuses_what_is_not_an_address_or_network():
    assert validate_trusted_proxies(["127.0.0.1", "10.0.0.0/8", "::1"]) == ["127.0.0.1", "10.0.0.0/8", "::1"]
    with pytest.raises(ValueError, match="'proxy.example'"):
        validate_trusted_proxies(["proxy.example"])


def test_a_malformed_setting_stops_the_site_at_start_up():
    env = {**os.environ, "ENV_FILE": "", "DEBUG": "1", "ARENA_TRUSTED_PROXIES": "10.0.0.0/8, nonsense"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "ARENA_TRUSTED_PROXIES: 'nonsense' is not an address or network" in result.stderr
