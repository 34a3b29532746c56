"""Second factors: staff can be required to use TOTP before they reach the admin.

Everyone with an account (voters, provider members, staff) can add a TOTP authenticator
and recovery codes at /accounts/2fa/ (allauth.mfa); once added, allauth asks for a code at
every login. ARENA_STAFF_REQUIRE_MFA makes it compulsory for staff: a staff session
without TOTP is sent to the set-up page instead of the admin.
"""

from __future__ import annotations

from allauth.mfa.models import Authenticator
from django.conf import settings
from django.contrib import messages
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.http import urlencode


def has_totp(user) -> bool:
    return Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()


class StaffMFAMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if settings.ARENA_STAFF_REQUIRE_MFA and self._needs_totp(request):
            messages.warning(request, "Staff accounts need a second factor: set up an authenticator app to continue.")
            setup = reverse("mfa_activate_totp")
            return HttpResponseRedirect(f"{setup}?{urlencode({'next': request.get_full_path()})}")
        return self.get_response(request)

    @staticmethod
    def _needs_totp(request) -> bool:
        user = getattr(request, "user", None)
        return (
            user is not None
            and user.is_authenticated
            and user.is_staff
            and request.path.startswith(reverse("admin:index"))
            and not has_totp(user)
        )
