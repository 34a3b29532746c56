"""Second factors, and the staff powers that need one.

Everyone with an account (voters, provider members, staff) can add a TOTP authenticator
and recovery codes at /accounts/2fa/ (allauth.mfa); once added, allauth asks for a code at
every login.

ARENA_STAFF_REQUIRE_MFA (on by default when DEBUG is off) makes a verified second factor the
condition of every staff power. It is applied to the user each request acts as, not to
paths, so no page or endpoint can forget it: a staff member whose session did not sign in
with a second factor, or whose API token was not issued from such a session, is *withheld*.
On that request's user object is_staff and is_superuser read False and every permission
check answers no (StaffFactorBackend), so the admin, the API by session or token, the
portal and the site's pages treat them as an account without staff powers. The flags in
the database are untouched: saving such a user writes the real ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from allauth.account.authentication import get_authentication_records
from allauth.mfa.models import Authenticator
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.backends import BaseBackend, ModelBackend
from django.contrib.auth.middleware import get_user
from django.core import checks
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.functional import SimpleLazyObject
from django.utils.http import urlencode

# The attribute a withheld user object carries (a Withheld); the session key of the one notice.
WITHHELD_ATTRIBUTE = "staff_powers_withheld"
NOTICE_SESSION_KEY = "arena_staff_factor_notice"

NO_FACTOR = (
    "Staff permissions need a second factor and this account has none: set up an authenticator app "
    "at /accounts/2fa/totp/activate/ and they apply from then on."
)
SESSION_WITHOUT_FACTOR = (
    "Staff permissions need a sign-in with the second factor: confirm a code from your authenticator "
    "app at /accounts/2fa/reauthenticate/ (or sign in again with it)."
)
TOKEN_WITHOUT_FACTOR = (
    "Staff permissions through an API token need a token issued while signed in with a second factor: "
    "issue a new one at /admin/providers/apitoken/add/ (or /portal/tokens/)."
)
TOKEN_NOT_FOR_STAFF = (
    "This token was issued before its account became staff, so it acts without staff permissions: "
    "issue a new one at /admin/providers/apitoken/add/ (or /portal/tokens/)."
)


def has_totp(user) -> bool:
    return Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()


# --- withholding staff powers ------------------------------------------------------------------


@dataclass(frozen=True)
class Withheld:
    """The real flags of a withheld user, and the sentence that says why and what to do."""

    is_staff: bool
    is_superuser: bool
    reason: str


def withhold_staff_powers(user, reason: str) -> None:
    """Make this user object act without staff powers for the rest of the request."""
    if getattr(user, WITHHELD_ATTRIBUTE, None) is not None:
        return
    setattr(user, WITHHELD_ATTRIBUTE, Withheld(user.is_staff, user.is_superuser, reason))
    user.is_staff = user.is_superuser = False


def withheld_reason(user) -> str:
    """Why this user's staff powers are withheld on this request; empty when they are not."""
    withheld = getattr(user, WITHHELD_ATTRIBUTE, None)
    return withheld.reason if withheld is not None else ""


def holds_staff_role(user) -> bool:
    """Staff or superuser in the database, whether or not this request may use the powers."""
    return getattr(user, WITHHELD_ATTRIBUTE, None) is not None or user.is_staff or user.is_superuser


def keep_real_flags_on_save(sender, instance, **kwargs):
    """pre_save: a withheld user is saved with its real flags (a password change, say), so
    withholding never reaches the database."""
    withheld = getattr(instance, WITHHELD_ATTRIBUTE, None)
    if withheld is not None:
        instance.is_staff, instance.is_superuser = withheld.is_staff, withheld.is_superuser


def withhold_again_after_save(sender, instance, **kwargs):
    """post_save: and goes on acting without them for the rest of the request."""
    if getattr(instance, WITHHELD_ATTRIBUTE, None) is not None:
        instance.is_staff = instance.is_superuser = False


class StaffFactorBackend(BaseBackend):
    """First in AUTHENTICATION_BACKENDS: a withheld user has no permission at all. Raising
    PermissionDenied stops Django asking the backends after it (and is_superuser already
    reads False, so User.has_perm does not answer yes on its own)."""

    def has_perm(self, user_obj, perm, obj=None):
        if getattr(user_obj, WITHHELD_ATTRIBUTE, None) is not None:
            raise PermissionDenied
        return False

    def has_module_perms(self, user_obj, app_label):
        return self.has_perm(user_obj, app_label)

    def get_user(self, user_id):
        # It authenticates nobody, but being first it is the one Client.force_login names.
        return ModelBackend().get_user(user_id)


# --- sessions ----------------------------------------------------------------------------------


def session_used_second_factor(request, user) -> bool:
    """Whether this session proved the user's second factor, and the user still has one: allauth
    records each authentication step in the session, and its login (or a confirmation since,
    /accounts/2fa/reauthenticate/) took a TOTP or recovery code. Setting up an authenticator
    is not such a step: staff confirm a code once more before their powers apply."""
    if getattr(request, "session", None) is None or not user.is_authenticated:
        return False
    records = get_authentication_records(request, user)
    return any(record.get("method") == "mfa" for record in records) and has_totp(user)


def session_user(request):
    """request.user under the requirement: staff powers withheld unless the session proved the factor."""
    user = get_user(request)
    if (
        settings.ARENA_STAFF_REQUIRE_MFA
        and user.is_authenticated
        and (user.is_staff or user.is_superuser)
        and not session_used_second_factor(request, user)
    ):
        withhold_staff_powers(user, SESSION_WITHOUT_FACTOR if has_totp(user) else NO_FACTOR)
    return user


class StaffMFAMiddleware:
    """After AuthenticationMiddleware: the session's user as session_user() sees it, for every
    view (DRF's session authentication reads the same object). A withheld staff member who opens
    the admin is sent to set up the factor, or to confirm it; elsewhere they are told once."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not settings.ARENA_STAFF_REQUIRE_MFA:
            return self.get_response(request)
        request.user = SimpleLazyObject(partial(session_user, request))
        request.auser = partial(sync_to_async(session_user), request)
        reason = withheld_reason(request.user) if self._may_concern_staff(request) else ""
        if reason and request.path.startswith(reverse("admin:index")):
            messages.warning(request, reason)
            page = "mfa_reauthenticate" if reason == SESSION_WITHOUT_FACTOR else "mfa_activate_totp"
            return HttpResponseRedirect(f"{reverse(page)}?{urlencode({'next': request.get_full_path()})}")
        if reason and request.method == "GET" and not request.session.get(NOTICE_SESSION_KEY):
            # Pages are told once a session; API answers carry the reason in their "detail".
            request.session[NOTICE_SESSION_KEY] = True
            messages.warning(request, reason)
        return self.get_response(request)

    @staticmethod
    def _may_concern_staff(request) -> bool:
        """Signed-in page or admin requests: the API, static files and visitors cost no user lookup."""
        session = getattr(request, "session", {})
        return SESSION_KEY in session and not request.path.startswith(("/api/", "/static/", "/accounts/"))


# --- deployment check --------------------------------------------------------------------------


@checks.register(checks.Tags.security, deploy=True)
def check_staff_require_mfa(app_configs, **kwargs):
    if settings.ARENA_STAFF_REQUIRE_MFA:
        return []
    return [
        checks.Warning(
            "ARENA_STAFF_REQUIRE_MFA is off: staff permissions (admin, API, portal) work with a password alone.",
            hint="Unset it (on by default when DEBUG is off) or set ARENA_STAFF_REQUIRE_MFA=1.",
            id="arenasite.mfa.W001",
        )
    ]
