"""allauth's adapter: the parts of sign-in that follow Arenasite's own rules."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from .client_address import client_address


class AccountAdapter(DefaultAccountAdapter):
    def get_client_ip(self, request: HttpRequest) -> str:
        # The login throttle counts per client address as the arena's limits do: behind trusted
        # proxies, the forwarded client; a forwarded header from anyone else is ignored.
        address = client_address(request)
        if address is None:
            raise PermissionDenied("Unable to determine the client's address")
        return str(address)
