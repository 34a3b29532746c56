from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from arenasite.mfa import withhold_staff_powers

from ..models import ApiToken, TokenExpired

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from rest_framework.request import Request


class ApiTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer arena_<prefix>_<secret>`; only a digest of the secret is stored.

    The request acts as the token's user, without staff powers where the token may not carry
    them (ApiToken.staff_powers_withheld): the same withholding as a session without a second
    factor, so every permission check answers as for an ordinary account."""

    keyword = b"bearer"

    def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None
        if len(parts) != 2:
            raise AuthenticationFailed("Malformed Authorization header; expected 'Bearer <token>'.")
        try:
            raw = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise AuthenticationFailed("Invalid token.") from None
        try:
            token = ApiToken.objects.verify(raw)
        except TokenExpired as exc:
            raise AuthenticationFailed(str(exc)) from None
        if token is None:
            raise AuthenticationFailed("Invalid or revoked token.")
        if reason := token.staff_powers_withheld():
            withhold_staff_powers(token.user, reason)
        # One write a minute at most, so busy clients do not turn reads into writes.
        now = timezone.now()
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = ApiTokenAuthentication
    name = "ApiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "arena_<prefix>_<secret>"}
