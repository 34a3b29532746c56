"""Endpoints must be public addresses: the server never calls its own loopback, the private
network behind it, or a cloud metadata service on a provider's say-so (providers/endpoints.py)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from battles.clients import FailureKind, ModelCallFailed, OpenAIChatClient
from providers.endpoints import endpoint_refusal
from providers.health import probe_endpoint
from providers.models import ArenaModel
from tests.support.openai_server import OpenAIServer

from ..conftest import make_model

REFUSED = [
    "http://127.0.0.1:8000/v1",
    "http://localhost/v1",
    "http://api.localhost/v1",
    "http://[::1]:8080/v1",
    "http://10.1.2.3/v1",
    "http://172.16.0.9/v1",
    "http://192.168.1.20/v1",
    "http://169.254.169.254/latest/meta-data",  # cloud metadata
    "http://100.64.0.1/v1",  # carrier-grade NAT
    "http://0.0.0.0/v1",
    "http://[::ffff:127.0.0.1]/v1",  # loopback written as IPv6
    "http://[fd00::1]/v1",
    "http://metadata.google.internal/computeMetadata/v1",
]


@pytest.fixture(autouse=True)
def public_endpoints_only(settings):
    settings.ARENA_ALLOW_PRIVATE_ENDPOINTS = False


@pytest.mark.parametrize("url", REFUSED)
def test_loopback_private_and_metadata_addresses_are_refused(url):
    assert "public address" in endpoint_refusal(url) or "local name" in endpoint_refusal(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://[64:ff9b::7f00:1]/v1",  # NAT64: a translator forwards it to 127.0.0.1
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data",  # NAT64 of the metadata service
        "http://[64:ff9b:1::5db8:d822]/v1",  # local-use NAT64, whatever it embeds
        "http://[2002:7f00:1::]/v1",  # 6to4 through 127.0.0.1
        "http://[2002:c0a8:114::1]/v1",  # 6to4 through 192.168.1.20
        "http://[::ffff:10.1.2.3]/v1",  # IPv4-mapped
        "http://[::ffff:0:7f00:1]/v1",  # IPv4-translated (SIIT)
        "http://[::127.0.0.1]/v1",  # IPv4-compatible (deprecated)
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/v1",  # Teredo
        "http://224.0.0.1/v1",  # multicast, all hosts
        "http://239.255.255.250:1900/",  # multicast (SSDP)
        "http://[ff0e::1]/v1",  # global-scope IPv6 multicast
    ],
)
def test_embedded_ipv4_forms_of_private_addresses_and_multicast_are_refused(url):
    assert "not a public address" in endpoint_refusal(url)


def test_the_refusal_names_the_ipv4_address_an_ipv6_form_leads_to():
    assert "an IPv6 form of 127.0.0.1" in endpoint_refusal("http://[64:ff9b::7f00:1]/v1")


@pytest.mark.parametrize(
    "url",
    [
        "https://93.184.216.34/v1",
        "https://[2606:4700::1111]/v1",
        "https://[64:ff9b::5db8:d822]/v1",  # NAT64 of a public address
        "https://[2002:5db8:d822::1]/v1",  # 6to4 of a public address
        "https://[::ffff:93.184.216.34]/v1",
    ],
)
def test_public_addresses_are_allowed(url):
    assert endpoint_refusal(url) is None


def test_a_name_resolving_to_a_nat64_form_of_loopback_is_refused(monkeypatch):
    import socket

    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, port, **kw: [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("64:ff9b::7f00:1", port, 0, 0))],
    )
    assert "127.0.0.1" in endpoint_refusal("https://models.example.com/v1")


def test_a_name_is_judged_by_the_addresses_it_resolves_to(monkeypatch):
    import socket

    def resolves_to(address):
        return lambda host, port, **kw: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolves_to("10.0.0.7"))
    assert "10.0.0.7" in endpoint_refusal("https://models.example.com/v1")
    monkeypatch.setattr(socket, "getaddrinfo", resolves_to("93.184.216.34"))
    assert endpoint_refusal("https://models.example.com/v1") is None


def test_the_setting_allows_private_endpoints_for_development(settings):
    settings.ARENA_ALLOW_PRIVATE_ENDPOINTS = True
    assert endpoint_refusal("http://127.0.0.1:8000/v1") is None


def test_the_api_refuses_a_private_endpoint_and_stores_nothing(client_a, provider_a):
    response = client_a.post(
        "/api/v1/models/",
        {"provider": provider_a.slug, "name": "sneaky", "endpoint_base_url": "http://169.254.169.254/v1"},
        format="json",
    )
    assert response.status_code == 400
    assert "not a public address" in response.json()["errors"]["endpoint_base_url"][0]
    assert not ArenaModel.objects.filter(name="sneaky").exists()


def test_the_admin_form_refuses_a_private_endpoint(provider_a):
    model = ArenaModel(provider=provider_a, name="sneaky", endpoint_base_url="http://127.0.0.1:6379/")
    with pytest.raises(ValidationError) as refused:
        model.full_clean()
    assert "endpoint_base_url" in refused.value.message_dict


def test_calls_are_checked_again_when_made_and_never_reach_the_address(provider_a, settings):
    with OpenAIServer() as server:
        settings.ARENA_ALLOW_PRIVATE_ENDPOINTS = True
        model = make_model(
            provider_a,
            ArenaModel.Status.LISTED,
            name="was-allowed",
            endpoint_base_url=server.base_url,
            endpoint_model_id="echo",
        )
        settings.ARENA_ALLOW_PRIVATE_ENDPOINTS = False  # e.g. the name was re-pointed since it was saved

        check = probe_endpoint(model)
        assert not check.ok and "not a public address" in check.error
        with pytest.raises(ModelCallFailed) as failed:
            list(
                OpenAIChatClient(base_url=server.base_url, model_id="echo").stream([{"role": "user", "content": "hi"}])
            )
        assert failed.value.kind == FailureKind.CONNECT
        assert server.requests == []
