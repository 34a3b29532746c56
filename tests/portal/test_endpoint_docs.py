"""docs/portal.md says what the endpoint-address check does, and the code does what it says."""

from __future__ import annotations

import re

import pytest
from django.conf import settings

from providers.endpoints import endpoint_refusal


def the_test_call_section() -> str:
    text = (settings.BASE_DIR / "docs" / "portal.md").read_text(encoding="utf-8")
    return text.split("## The test call", 1)[1].split("\n## ", 1)[0]


def test_the_portal_docs_say_private_addresses_are_refused_and_point_to_the_check():
    section = " ".join(the_test_call_section().split())
    assert "not refused" not in section
    assert "an address on the arena's own network is refused" in section
    assert "providers/endpoints.py" in section and "security.md#endpoint-addresses" in section


def test_every_address_the_portal_docs_call_refused_is_refused(settings):
    settings.ARENA_ALLOW_PRIVATE_ENDPOINTS = False
    urls = re.findall(r"`(https?://[^`]+)`", the_test_call_section())
    assert len(urls) >= 10
    allowed = [url for url in urls if endpoint_refusal(url) is None]
    assert not allowed, f"docs/portal.md calls these refused, but the check lets them through: {allowed}"


@pytest.mark.parametrize("doc", ["portal.md", "security.md"])
def test_the_docs_name_the_setting_that_turns_the_check_off(doc):
    assert "ARENA_ALLOW_PRIVATE_ENDPOINTS" in (settings.BASE_DIR / "docs" / doc).read_text(encoding="utf-8")
