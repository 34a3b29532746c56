"""Who may do what, everywhere: every API endpoint, site page and admin page against every
persona, each cell asserted. ROWS below is the matrix; docs/reliability.md shows it as a
table (`python -m tests.arenasite.permission_table`).

Personas: anonymous; a voter (an account with no provider); a member of another provider
(B); a member and an admin of provider A, which owns the objects a row is about; staff
without any permission; staff with the permissions of the row (STAFF_PERMISSIONS). API
calls carry a bearer token, pages a session, as real users would.

Another provider's objects are "not found" (404), never "forbidden", so ids do not leak;
list rows also assert which objects each persona sees. A URL pattern, an OpenAPI operation
or an admin model without a row fails test_every_endpoint_has_a_row, so a new endpoint
cannot be added without deciding who may use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
import yaml
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.db import transaction
from django.test import override_settings
from django.urls import get_resolver, resolve
from django.urls.resolvers import URLPattern, URLResolver
from rest_framework.test import APIClient

from arenasite import clock
from battles.voters import SESSION_KEY, judge_id
from leaderboard import plotly_js
from providers import changes
from providers.models import ApiToken, ArenaModel, Membership
from releases import building, sharing
from releases.models import DataSharingAgreement, Download

from ..conftest import make_model
from ..factories import MembershipFactory, ProviderFactory, UserFactory
from ..leaderboard.test_plots import publish_run
from ..releases.test_release import build, voted_battle

S = ArenaModel.Status
PERSONAS = ("anonymous", "voter", "other_member", "member", "provider_admin", "staff_without", "staff_with")
PERSONA_LABELS = {
    "anonymous": "anonymous",
    "voter": "voter",
    "other_member": "other provider's member",
    "member": "provider member",
    "provider_admin": "provider admin",
    "staff_without": "staff without permission",
    "staff_with": "staff with permission",
}
# What "staff with permission" holds: the view permission of every model in the admin, plus
# these. Staff without permission hold none.
STAFF_PERMISSIONS = (
    "transition_arenamodel",
    "change_arenamodel",
    "decide_datasharingagreement",
    "review_identityterm",
    "add_datarelease",
    "publish_datarelease",
)


@dataclass(frozen=True)
class Row:
    """One endpoint (or one case of it) and the status each persona gets, in PERSONAS order.

    `path` may name objects of the world in braces ({a_draft}); {own_battle} is a battle the
    persona started itself. `visible` (lists) names the objects each persona sees.
    """

    area: str
    what: str
    method: str
    path: str
    expected: tuple[int, ...]
    data: dict | None = None
    visible: tuple[frozenset[str], ...] | None = None
    note: str = ""


def every(status: int) -> tuple[int, ...]:
    return (status,) * len(PERSONAS)


def cells(anonymous, voter, other_member, member, provider_admin, staff_without, staff_with) -> tuple[int, ...]:
    return (anonymous, voter, other_member, member, provider_admin, staff_without, staff_with)


def sees(*per_persona: str) -> tuple[frozenset[str], ...]:
    return tuple(frozenset(names.split()) for names in per_persona)


# Statuses: 200/201 done, 204 no content, 302 sent elsewhere (a login page, or away from a
# page a signed-in user does not need), 400 refused input, 401 no credentials, 403 not
# allowed, 404 not found (hidden), 405 method not allowed.
STAFF_ONLY = cells(404, 404, 404, 404, 404, 404, 200)
OWNERS = cells(404, 404, 404, 200, 200, 404, 200)
OWNERS_WRITE = cells(401, 404, 404, 200, 200, 404, 200)
OWNERS_ONLY_WRITE_STAFF_DECIDES = cells(401, 404, 404, 403, 403, 404, 200)
SIGNED_IN = cells(302, 200, 200, 200, 200, 200, 200)
MEMBERS_PAGE = cells(302, 404, 404, 200, 200, 404, 404)
MEMBERS_POST = cells(302, 404, 404, 302, 302, 404, 404)
NO_FACTOR_YET = cells(302, 404, 404, 404, 404, 404, 404)  # signed in, but nothing to show without a factor
SIGNED_OUT_ONLY = cells(200, 302, 302, 302, 302, 302, 302)
ADMIN_MODEL = cells(302, 302, 302, 302, 302, 403, 200)
MEMBERS_API = cells(401, 200, 200, 200, 200, 200, 200)
MEMBERS_CREATE = cells(401, 400, 400, 201, 201, 400, 400)
PUBLIC_MODELS = "a_listed b_listed"


def own_only(kind: str) -> tuple[frozenset[str], ...]:
    """A provider-scoped list: members see their provider's rows, staff with permission all."""
    a, b = f"{kind}_a", f"{kind}_b"
    return sees("", "", b, a, a, "", f"{a} {b}")


ROWS: list[Row] = [
    # --- provider API: models and their lifecycle --------------------------------------------------
    Row(
        "models API",
        "list models",
        "get",
        "/api/v1/models/",
        every(200),
        visible=sees(
            PUBLIC_MODELS,
            PUBLIC_MODELS,
            f"{PUBLIC_MODELS} b_draft",
            f"{PUBLIC_MODELS} a_draft a_submitted a_initial",
            f"{PUBLIC_MODELS} a_draft a_submitted a_initial",
            PUBLIC_MODELS,
            f"{PUBLIC_MODELS} a_draft a_submitted a_initial b_draft",
        ),
        note="listed models for everyone; a provider's own models for its members",
    ),
    Row(
        "models API",
        "register a model",
        "post",
        "/api/v1/models/",
        MEMBERS_CREATE,
        data={"name": "matrix-new", "access_kind": "open_weights", "provider": "provider-a"},
        note="for a provider of the caller's",
    ),
    Row("models API", "read a listed model", "get", "/api/v1/models/{a_listed}/", every(200)),
    Row("models API", "read a draft", "get", "/api/v1/models/{a_draft}/", OWNERS),
    Row(
        "models API", "edit a draft", "patch", "/api/v1/models/{a_draft}/", OWNERS_WRITE, data={"description": "edited"}
    ),
    Row("models API", "lifecycle log of a draft", "get", "/api/v1/models/{a_draft}/events/", OWNERS),
    Row("models API", "submit a draft", "post", "/api/v1/models/{a_draft}/submit/", OWNERS_WRITE),
    Row(
        "models API",
        "withdraw from initial rating",
        "post",
        "/api/v1/models/{a_initial}/withdraw/",
        OWNERS_WRITE,
        data={"reason": "matrix"},
    ),
    Row(
        "models API",
        "request retirement",
        "post",
        "/api/v1/models/{a_listed}/request-retirement/",
        OWNERS_WRITE,
        data={"reason": "matrix"},
    ),
    Row("models API", "admit", "post", "/api/v1/models/{a_submitted}/admit/", OWNERS_ONLY_WRITE_STAFF_DECIDES),
    Row(
        "models API",
        "reject",
        "post",
        "/api/v1/models/{a_submitted}/reject/",
        OWNERS_ONLY_WRITE_STAFF_DECIDES,
        data={"reason": "matrix"},
    ),
    Row("models API", "publish", "post", "/api/v1/models/{a_initial}/publish/", OWNERS_ONLY_WRITE_STAFF_DECIDES),
    Row(
        "models API",
        "retire",
        "post",
        "/api/v1/models/{a_listed}/retire/",
        OWNERS_ONLY_WRITE_STAFF_DECIDES,
        data={"reason": "matrix"},
    ),
    Row(
        "models API",
        "private ratings of a model",
        "get",
        "/api/v1/models/{a_initial}/rating/",
        cells(401, 404, 404, 200, 200, 404, 200),
    ),
    Row(
        "models API",
        "withdraw a pending endpoint change",
        "post",
        "/api/v1/models/{a_initial}/withdraw-change/",
        OWNERS_WRITE,
        note="staff with permission: those who may change models",
    ),
    # --- battle API: a battle is its voter's ---------------------------------------------------------
    Row("battle API", "a proof-of-work challenge", "get", "/api/v1/challenge/", every(200)),
    Row("battle API", "start a battle", "post", "/api/v1/battles/", every(201), data={"prompt": "Hello?"}),
    Row("battle API", "read one's own battle", "get", "/api/v1/battles/{own_battle}/", every(200)),
    Row("battle API", "read another voter's battle", "get", "/api/v1/battles/{stranger_battle}/", every(404)),
    Row("battle API", "stream one's own battle's answers", "get", "/api/v1/battles/{own_battle}/stream/", every(200)),
    Row(
        "battle API",
        "stream another voter's battle's answers",
        "get",
        "/api/v1/battles/{stranger_battle}/stream/",
        every(404),
    ),
    Row(
        "battle API",
        "add a turn to one's own battle",
        "post",
        "/api/v1/battles/{own_battle}/turns/",
        every(200),
        data={"prompt": "And then?"},
    ),
    Row(
        "battle API",
        "add a turn to another's battle",
        "post",
        "/api/v1/battles/{stranger_battle}/turns/",
        every(404),
        data={"prompt": "And then?"},
    ),
    Row(
        "battle API",
        "vote on one's own battle",
        "post",
        "/api/v1/battles/{own_battle}/vote/",
        every(200),
        data={"winner": "tie"},
    ),
    Row(
        "battle API",
        "vote on another's battle",
        "post",
        "/api/v1/battles/{stranger_battle}/vote/",
        every(404),
        data={"winner": "tie"},
    ),
    Row(
        "battle API",
        "stop one's own battle's answers",
        "post",
        "/api/v1/battles/{own_battle}/stop/",
        every(409),
        data={},
        note="the battle's own voter; 409 here because its answers are complete",
    ),
    Row(
        "battle API",
        "stop another's battle's answers",
        "post",
        "/api/v1/battles/{stranger_battle}/stop/",
        every(404),
        data={},
    ),
    Row(
        "battle API",
        "regenerate one's own battle's answers",
        "post",
        "/api/v1/battles/{own_battle}/regenerate/",
        every(200),
        data={},
    ),
    Row(
        "battle API",
        "regenerate another's battle's answers",
        "post",
        "/api/v1/battles/{stranger_battle}/regenerate/",
        every(404),
        data={},
    ),
    Row("leaderboard API", "leaderboard", "get", "/api/v1/leaderboard/", every(200)),
    # --- releases, agreements, shares, downloads ----------------------------------------------------
    Row("data API", "published releases", "get", "/api/v1/releases/", every(200)),
    Row("data API", "a published release", "get", "/api/v1/releases/{published}/", every(200)),
    Row("data API", "a built, unpublished release", "get", "/api/v1/releases/{built}/", every(404)),
    Row("data API", "data-sharing terms", "get", "/api/v1/agreements/terms/", every(200)),
    Row("data API", "agreements", "get", "/api/v1/agreements/", MEMBERS_API, visible=own_only("agreement")),
    Row(
        "data API",
        "an agreement of A",
        "get",
        "/api/v1/agreements/{agreement_a}/",
        cells(401, 404, 404, 200, 200, 404, 200),
    ),
    Row(
        "data API",
        "accept the terms for A",
        "post",
        "/api/v1/agreements/",
        cells(401, 400, 400, 200, 200, 400, 400),
        data={"provider": "provider-a"},
        note="already accepted: 200",
    ),
    Row("data API", "shares", "get", "/api/v1/shares/", MEMBERS_API, visible=own_only("share")),
    Row("data API", "a share of A", "get", "/api/v1/shares/{share_a}/", cells(401, 404, 404, 200, 200, 404, 200)),
    Row(
        "data API", "request a share for A", "post", "/api/v1/shares/", MEMBERS_CREATE, data={"provider": "provider-a"}
    ),
    Row(
        "data API",
        "download a share of A",
        "get",
        "/api/v1/shares/{share_a}/download/?format=jsonl",
        cells(401, 404, 404, 200, 200, 404, 200),
    ),
    Row("data API", "download log", "get", "/api/v1/downloads/", MEMBERS_API, visible=own_only("download")),
    # --- site pages --------------------------------------------------------------------------------
    Row("pages", "home", "get", "/", every(200)),
    Row("pages", "health check", "get", "/healthz", every(200)),
    Row("pages", "OpenAPI schema", "get", "/api/schema/", every(200)),
    Row("pages", "API docs", "get", "/api/docs/", every(200)),
    Row("pages", "unknown API path", "get", "/api/v1/nothing-here/", every(404)),
    Row("pages", "leaderboard", "get", "/leaderboard/", every(200)),
    Row("pages", "leaderboard plots", "get", "/leaderboard/plots/", every(200)),
    Row("pages", "plotly.js", "get", "{plotly_js}", every(200)),
    Row("pages", "arena", "get", "/arena/", every(200)),
    Row("pages", "ask in the arena", "post", "/arena/", every(302), data={"prompt": "Hello?"}),
    Row("pages", "side by side", "get", "/arena/side-by-side/", every(200)),
    Row(
        "pages",
        "ask side by side",
        "post",
        "/arena/side-by-side/",
        every(302),
        data={"prompt": "Hello?", "model_a": "a-listed", "model_b": "b-listed"},
    ),
    Row("pages", "one's own battle", "get", "/arena/battles/{own_battle}/", every(200)),
    Row("pages", "another voter's battle", "get", "/arena/battles/{stranger_battle}/", every(404)),
    Row(
        "pages",
        "a turn in one's own battle",
        "post",
        "/arena/battles/{own_battle}/turns/",
        every(302),
        data={"prompt": "And then?"},
    ),
    Row(
        "pages",
        "a turn in another's battle",
        "post",
        "/arena/battles/{stranger_battle}/turns/",
        every(404),
        data={"prompt": "And then?"},
    ),
    Row(
        "pages",
        "vote in one's own battle",
        "post",
        "/arena/battles/{own_battle}/vote/",
        every(302),
        data={"winner": "tie"},
    ),
    Row(
        "pages",
        "vote in another's battle",
        "post",
        "/arena/battles/{stranger_battle}/vote/",
        every(404),
        data={"winner": "tie"},
    ),
    Row(
        "pages",
        "stop one's own battle's answers",
        "post",
        "/arena/battles/{own_battle}/stop/",
        every(409),
        data={},
        note="the battle's own voter; 409 (the page with the reason) because its answers are complete",
    ),
    Row(
        "pages",
        "stop another's battle's answers",
        "post",
        "/arena/battles/{stranger_battle}/stop/",
        every(404),
        data={},
    ),
    Row("pages", "regenerate one's own battle", "post", "/arena/battles/{own_battle}/regenerate/", every(302), data={}),
    Row(
        "pages",
        "regenerate another's battle",
        "post",
        "/arena/battles/{stranger_battle}/regenerate/",
        every(404),
        data={},
    ),
    Row(
        "pages",
        "share one's own battle",
        "post",
        "/arena/battles/{own_battle}/share/",
        every(302),
        data={},
        note="back to the history; shared only once voted",
    ),
    Row("pages", "share another's battle", "post", "/arena/battles/{stranger_battle}/share/", every(404), data={}),
    Row("pages", "revoke one's own battle's link", "post", "/arena/battles/{own_battle}/unshare/", every(302), data={}),
    Row(
        "pages",
        "revoke another's battle's link",
        "post",
        "/arena/battles/{stranger_battle}/unshare/",
        every(404),
        data={},
    ),
    Row("pages", "one's own battles", "get", "/arena/history/", every(200), note="each persona sees only its own"),
    Row(
        "pages",
        "a battle its voter shared",
        "get",
        "/arena/shared/{share_token}/",
        every(200),
        note="anyone holding the link, until the voter revokes it",
    ),
    Row("pages", "a battle by an unknown or revoked link", "get", "/arena/shared/{revoked_token}/", every(404)),
    Row("pages", "data releases", "get", "/data/", every(200)),
    Row("pages", "a published release file", "get", "/data/releases/{published}/battles.jsonl", every(200)),
    Row(
        "pages",
        "a built release file",
        "get",
        "/data/releases/{built}/manifest.json",
        STAFF_ONLY,
        note="staff review a release before publishing it",
    ),
    Row("pages", "model registry", "get", "/models/", every(200)),
    Row("pages", "a listed model's card", "get", "/models/{a_listed}/", every(200)),
    Row(
        "pages",
        "the card of a model in initial rating",
        "get",
        "/models/{a_initial}/",
        every(404),
        note="cards are public pages: none before the model is public, for its provider and staff too",
    ),
    Row("pages", "transparency report", "get", "/transparency/", every(200)),
    # --- provider portal: a provider's pages are its members' only ----------------------------------
    Row(
        "portal",
        "portal home",
        "get",
        "/portal/",
        cells(302, 200, 302, 302, 302, 200, 200),
        note="a member is sent on to their provider's dashboard",
    ),
    Row("portal", "register a provider", "get", "/portal/new-provider/", SIGNED_IN),
    Row("portal", "one's API tokens", "get", "/portal/tokens/", SIGNED_IN),
    Row(
        "portal",
        "revoke the member's token",
        "post",
        "/portal/tokens/{member_token}/revoke/",
        cells(302, 404, 404, 302, 404, 404, 404),
        data={},
        note="a token is its owner's alone",
    ),
    Row("portal", "provider dashboard", "get", "/portal/providers/provider-a/", MEMBERS_PAGE),
    Row("portal", "new model form", "get", "/portal/providers/provider-a/models/new/", MEMBERS_PAGE),
    Row("portal", "a draft", "get", "/portal/providers/provider-a/models/{a_draft}/", MEMBERS_PAGE),
    Row(
        "portal",
        "another provider's model under A",
        "get",
        "/portal/providers/provider-a/models/{b_draft}/",
        cells(302, 404, 404, 404, 404, 404, 404),
    ),
    Row("portal", "edit a draft", "get", "/portal/providers/provider-a/models/{a_draft}/edit/", MEMBERS_PAGE),
    Row(
        "portal",
        "test the endpoint",
        "post",
        "/portal/providers/provider-a/models/{a_draft}/test/",
        MEMBERS_POST,
        data={},
    ),
    Row(
        "portal",
        "ask for a heads-up",
        "post",
        "/portal/providers/provider-a/models/{a_draft}/heads-up/",
        MEMBERS_POST,
        data={},
    ),
    Row(
        "portal",
        "withdraw a pending endpoint change",
        "post",
        "/portal/providers/provider-a/models/{a_initial}/change/withdraw/",
        MEMBERS_POST,
        data={},
    ),
    Row(
        "portal",
        "submit a draft",
        "post",
        "/portal/providers/provider-a/models/{a_draft}/submit/",
        MEMBERS_POST,
        data={"reason": ""},
    ),
    Row("portal", "data sharing", "get", "/portal/providers/provider-a/data/", MEMBERS_PAGE),
    Row(
        "portal",
        "accept the terms",
        "post",
        "/portal/providers/provider-a/data/accept/",
        MEMBERS_POST,
        data={"accept": "on", "version": "{terms_version}"},
    ),
    Row("portal", "request a share", "post", "/portal/providers/provider-a/data/shares/", MEMBERS_POST, data={}),
    # --- accounts (allauth) -------------------------------------------------------------------------
    Row("accounts", "log in", "get", "/accounts/login/", SIGNED_OUT_ONLY),
    Row("accounts", "sign up", "get", "/accounts/signup/", SIGNED_OUT_ONLY),
    Row("accounts", "log out", "get", "/accounts/logout/", cells(302, 200, 200, 200, 200, 200, 200)),
    Row("accounts", "inactive account", "get", "/accounts/inactive/", every(200)),
    Row("accounts", "confirm the password again", "get", "/accounts/reauthenticate/", SIGNED_IN),
    Row(
        "accounts",
        "confirm again by an emailed code",
        "get",
        "/accounts/reauthenticate/code/",
        cells(302, 403, 403, 403, 403, 403, 403),
        note="off: only the password or a second factor confirms a signed-in user again",
    ),
    Row(
        "accounts",
        "enter the emailed code",
        "get",
        "/accounts/reauthenticate/code/confirm/",
        cells(302, 403, 403, 403, 403, 403, 403),
        note="off, as above",
    ),
    Row("accounts", "email addresses", "get", "/accounts/email/", SIGNED_IN),
    Row("accounts", "confirmation sent", "get", "/accounts/confirm-email/", every(200)),
    Row("accounts", "confirm an email (bad key)", "get", "/accounts/confirm-email/bad-key/", every(200)),
    Row("accounts", "change password", "get", "/accounts/password/change/", SIGNED_IN),
    Row(
        "accounts",
        "set a password",
        "get",
        "/accounts/password/set/",
        cells(302, 302, 302, 302, 302, 302, 302),
        note="every persona has a password, so it is sent to change it",
    ),
    Row("accounts", "reset password", "get", "/accounts/password/reset/", every(200)),
    Row("accounts", "reset sent", "get", "/accounts/password/reset/done/", every(200)),
    Row("accounts", "reset link (bad key)", "get", "/accounts/password/reset/key/1-bad-key/", every(200)),
    Row("accounts", "reset done", "get", "/accounts/password/reset/key/done/", every(200)),
    Row(
        "accounts",
        "confirm a login code",
        "get",
        "/accounts/login/code/confirm/",
        every(302),
        note="only inside a login by code",
    ),
    Row("accounts", "second factors", "get", "/accounts/2fa/", SIGNED_IN),
    Row(
        "accounts",
        "second-factor step of a login",
        "get",
        "/accounts/2fa/authenticate/",
        every(302),
        note="only inside a login that asked for it",
    ),
    Row(
        "accounts",
        "second factor again",
        "get",
        "/accounts/2fa/reauthenticate/",
        every(302),
        note="only for a user who has a second factor",
    ),
    Row(
        "accounts",
        "set up TOTP",
        "get",
        "/accounts/2fa/totp/activate/",
        every(302),
        note="signed in: asks for the password again first (test_mfa.py goes on from there)",
    ),
    Row(
        "accounts",
        "remove TOTP",
        "get",
        "/accounts/2fa/totp/deactivate/",
        NO_FACTOR_YET,
        note="only for a user who has TOTP",
    ),
    Row(
        "accounts",
        "recovery codes",
        "get",
        "/accounts/2fa/recovery-codes/",
        NO_FACTOR_YET,
        note="only for a user who has a second factor",
    ),
    Row("accounts", "new recovery codes", "get", "/accounts/2fa/recovery-codes/generate/", every(302)),
    Row("accounts", "download recovery codes", "get", "/accounts/2fa/recovery-codes/download/", NO_FACTOR_YET),
    # --- admin --------------------------------------------------------------------------------------
    Row("admin", "admin index", "get", "/admin/", cells(302, 302, 302, 302, 302, 200, 200)),
    Row(
        "admin",
        "admin login",
        "get",
        "/admin/login/",
        cells(302, 403, 403, 403, 403, 302, 302),
        note="allauth's login form; a signed-in non-staff user is refused",
    ),
    Row(
        "admin",
        "revoke A's agreement",
        "post",
        "/admin/releases/datasharingagreement/",
        cells(302, 302, 302, 302, 302, 403, 302),
        note="staff with permission: done, back to the list",
        data={"action": "revoke", "_selected_action": "{agreement_a}", "confirm": "yes", "reason": "matrix"},
    ),
    Row(
        "admin",
        "the form to build a community release",
        "get",
        "/admin/releases/datarelease/build/",
        cells(302, 302, 302, 302, 302, 403, 200),
        note="staff with permission: who may add releases",
    ),
    Row(
        "admin",
        "build a community release",
        "post",
        "/admin/releases/datarelease/build/",
        cells(302, 302, 302, 302, 302, 403, 302),
        data={"cutoff": "2020-01-01"},
        note="staff with permission: built by a Celery task, then to the release's page",
    ),
    Row(
        "admin",
        "the page confirming a release's publication",
        "get",
        "/admin/releases/datarelease/{built}/publish/",
        cells(302, 302, 302, 302, 302, 403, 200),
        note="staff with permission: who may publish releases",
    ),
    Row(
        "admin",
        "publish a built release",
        "post",
        "/admin/releases/datarelease/{built}/publish/",
        cells(302, 302, 302, 302, 302, 403, 302),
        data={"confirm": "yes", "reason": "matrix"},
        note="staff with permission: published, back to its page",
    ),
    Row(
        "admin",
        "publish a built release from the list",
        "post",
        "/admin/releases/datarelease/",
        cells(302, 302, 302, 302, 302, 403, 302),
        data={"action": "publish", "_selected_action": "{built}", "confirm": "yes", "reason": "matrix"},
        note="without confirm: the confirmation page",
    ),
    Row(
        "admin",
        "approve an access or endpoint change",
        "post",
        "/admin/providers/changerequest/",
        cells(302, 302, 302, 302, 302, 403, 302),
        note="staff with permission: approved (the rules checked again), back to the list",
        data={"action": "approve", "_selected_action": "{change_a}", "confirm": "yes", "reason": ""},
    ),
    Row(
        "admin",
        "add an audit event",
        "get",
        "/admin/arenasite/auditevent/add/",
        cells(302, 302, 302, 302, 302, 403, 403),
        note="nobody adds, edits or deletes audit events",
    ),
    Row(
        "admin",
        "change an audit event",
        "post",
        "/admin/arenasite/auditevent/{audit_event}/change/",
        cells(302, 302, 302, 302, 302, 403, 403),
        data={"summary": "rewritten"},
    ),
    Row(
        "admin",
        "delete an audit event",
        "post",
        "/admin/arenasite/auditevent/{audit_event}/delete/",
        cells(302, 302, 302, 302, 302, 403, 403),
        data={"post": "yes"},
    ),
    Row(
        "admin",
        "propose identity terms from the pool",
        "post",
        "/admin/battles/identityterm/propose/",
        cells(302, 302, 302, 302, 302, 403, 302),
        data={},
        note="staff with permission: proposed, back to the list",
    ),
    Row(
        "admin",
        "approve an identity term",
        "post",
        "/admin/battles/identityterm/",
        cells(302, 302, 302, 302, 302, 403, 302),
        data={"action": "approve", "_selected_action": "{identity_term}"},
    ),
    Row(
        "admin",
        "preview the votes an identity term would exclude",
        "post",
        "/admin/battles/identityterm/",
        cells(302, 302, 302, 302, 302, 403, 200),
        data={"action": "preview", "_selected_action": "{identity_term}"},
    ),
    Row(
        "admin",
        "re-judge votes by identity terms",
        "post",
        "/admin/battles/identityterm/",
        cells(302, 302, 302, 302, 302, 403, 302),
        data={
            "action": "rejudge",
            "_selected_action": "{identity_term}",
            "confirm": "yes",
            "reason": "matrix",
            "days": "30",
        },
        note="staff with permission: re-judged and logged, back to the list",
    ),
]
# Every model registered in the admin: its list needs staff with its view permission.
ROWS += [
    Row(
        "admin",
        f"{model._meta.verbose_name_plural}",
        "get",
        f"/admin/{model._meta.app_label}/{model._meta.model_name}/",
        ADMIN_MODEL,
    )
    for model in sorted(admin.site._registry, key=lambda m: m._meta.label)
]


@dataclass
class World:
    ids: dict[str, str]
    users: dict[str, object]
    tokens: dict[str, str]
    battles: dict[str, str]


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory):
    """Built once for the module inside a transaction that is rolled back at the end; each
    test runs in a savepoint within it, so a cell's writes never reach the next cell."""
    settings_override = override_settings(RELEASES_DIR=tmp_path_factory.mktemp("releases"))
    settings_override.enable()
    with django_db_blocker.unblock(), transaction.atomic():
        yield _build_world()
        transaction.set_rollback(True)
    settings_override.disable()


def _build_world() -> World:
    provider_a = ProviderFactory(name="Provider A", slug="provider-a")
    provider_b = ProviderFactory(name="Provider B", slug="provider-b")
    users = {
        "anonymous": None,
        "voter": UserFactory(username="voter@example.com"),
        "other_member": MembershipFactory(provider=provider_b, user=UserFactory(username="bob@b.example")).user,
        "member": MembershipFactory(provider=provider_a, user=UserFactory(username="alice@a.example")).user,
        "provider_admin": MembershipFactory(
            provider=provider_a, user=UserFactory(username="ada@a.example"), role=Membership.Role.ADMIN
        ).user,
        "staff_without": UserFactory(username="intern@arenasite.example", staff=True),
        "staff_with": UserFactory(username="staff@arenasite.example", staff=True),
    }
    view_permissions = [f"view_{model._meta.model_name}" for model in admin.site._registry]
    users["staff_with"].user_permissions.add(
        *Permission.objects.filter(codename__in=[*view_permissions, *STAFF_PERMISSIONS])
    )
    models = {
        "a_draft": make_model(provider_a, S.DRAFT, name="a-draft"),
        "a_submitted": make_model(provider_a, S.SUBMITTED, name="a-submitted"),
        "a_initial": make_model(provider_a, S.INITIAL_RATING, votes=1000, name="a-initial", is_demo=True),
        "a_listed": make_model(provider_a, S.LISTED, name="a-listed", is_demo=True),
        "b_draft": make_model(provider_b, S.DRAFT, name="b-draft"),
        "b_listed": make_model(provider_b, S.LISTED, name="b-listed", is_demo=True),
    }
    publish_run([models["a_listed"], models["b_listed"]], published_at=clock.now())
    publish_run([models["a_initial"]], published_at=clock.now(), status=S.INITIAL_RATING)

    ids = {name: str(model.pk) for name, model in models.items()}
    pending = changes.model_edit(
        model_id=models["a_initial"].pk, actor=users["member"], values={"endpoint_model_id": "matrix-swap"}
    )
    ids["change_a"] = str(pending.change.pk)
    voted_battle(models["a_listed"], models["b_listed"], days_ago=5)
    published = building.publish(build(clock.now() - timedelta(days=4)))
    voted_battle(models["a_listed"], models["b_listed"], days_ago=1)
    built = build()
    ids |= {"published": str(published.pk), "built": str(built.pk)}
    for name, provider, member in (("a", provider_a, users["member"]), ("b", provider_b, users["other_member"])):
        agreement, _ = sharing.agreement_accept(provider=provider, user=member)
        sharing.agreement_decide(agreement_id=agreement.pk, approve=True)
        share = sharing.share_build(sharing.share_request(provider=provider, user=member, enqueue=False).pk)
        download = Download.objects.create(user=member, provider=provider, share=share, format="jsonl", bytes=10)
        ids |= {
            f"agreement_{name}": str(agreement.pk),
            f"share_{name}": str(share.pk),
            f"download_{name}": str(download.pk),
        }

    # A battle of each persona (a visitor without an account is known by a session), and one of a stranger's.
    battles = {}
    for persona, user in users.items():
        judge = judge_id(f"user:{user.pk}") if user is not None else judge_id("session:matrix-visitor")
        battles[persona] = _battle(models, judge)
    ids["stranger_battle"] = _battle(models, judge_id("session:someone-else"))
    shared = voted_battle(models["a_listed"], models["b_listed"], days_ago=0)
    shared.share_token = "matrix-shared-link-0123456789abcdef"
    shared.save(update_fields=["share_token"])
    ids |= {"share_token": shared.share_token, "revoked_token": "matrix-revoked-link-0123456789abcdef"}
    ids["plotly_js"] = plotly_js.url()
    ids["terms_version"] = sharing.terms_version()

    from arenasite.models import AuditEvent

    ids["audit_event"] = str(AuditEvent.objects.order_by("pk").values_list("pk", flat=True).first())
    from battles.models import IdentityTerm

    ids["identity_term"] = str(IdentityTerm.objects.create(term="matrix-term-7b").pk)
    tokens = {persona: ApiToken.objects.issue(user=user, name="matrix")[1] for persona, user in users.items() if user}
    ids["member_token"] = str(ApiToken.objects.get(user=users["member"]).pk)
    return World(ids=ids, users=users, tokens=tokens, battles=battles)


def _battle(models, judge: str) -> str:
    battle = voted_battle(models["a_listed"], models["b_listed"], days_ago=0, vote=False)
    battle.judge = judge
    battle.save(update_fields=["judge"])
    return battle.question_id


def client_for(world: World, persona: str) -> APIClient:
    """A bearer token for the API and a session for pages and admin."""
    client = APIClient()
    user = world.users[persona]
    if user is None:
        session = client.session
        session[SESSION_KEY] = "matrix-visitor"
        session.save()
        client.cookies["sessionid"] = session.session_key
    else:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {world.tokens[persona]}")
        client.force_login(user)
    return client


CELLS = [(row, persona) for row in ROWS for persona in PERSONAS]


@pytest.mark.parametrize(
    ("row", "persona"), CELLS, ids=[f"{row.method} {row.path} [{row.what}] {persona}" for row, persona in CELLS]
)
def test_permission_matrix(db, world, row: Row, persona: str):
    column = PERSONAS.index(persona)
    client = client_for(world, persona)
    values = {**world.ids, "own_battle": world.battles[persona]}
    url = row.path.format(**values)
    if row.data is None:
        response = getattr(client, row.method)(url)
    elif not url.startswith("/api/"):  # a page's form
        data = {key: value.format(**values) for key, value in row.data.items()}
        response = client.post(url, data)
    else:
        response = getattr(client, row.method)(url, row.data, format="json")

    assert response.status_code == row.expected[column], (
        f"{persona} {row.method.upper()} {url}: {response.status_code}, expected {row.expected[column]}"
    )
    if row.visible is not None and response.status_code == 200:
        seen = {str(item["id"]) for item in response.json()["results"]}
        assert seen == {world.ids[name] for name in row.visible[column]}
    if url.startswith("/api/v1/") and response.status_code in (400, 401, 403, 404):
        assert "detail" in response.json()  # API errors are JSON with a sentence


def test_nothing_happens_to_a_row_refused(db, world):
    """A refused write changes nothing: the model stays a draft, the agreement approved."""
    draft = world.ids["a_draft"]
    for persona in ("anonymous", "voter", "other_member", "staff_without"):
        client = client_for(world, persona)
        client.post(f"/api/v1/models/{draft}/submit/", {}, format="json")
        client.patch(f"/api/v1/models/{draft}/", {"description": "edited"}, format="json")
        client.post(
            "/admin/releases/datasharingagreement/",
            {"action": "revoke", "_selected_action": world.ids["agreement_a"], "confirm": "yes", "reason": "x"},
        )
    model = ArenaModel.objects.get(pk=draft)
    assert (model.status, model.description) == (S.DRAFT, "")
    assert DataSharingAgreement.objects.get(pk=world.ids["agreement_a"]).state == "approved"


# --- coverage: a new endpoint without a row fails ---------------------------------------------------


def _route(path: str) -> str:
    return resolve(path.split("?")[0]).view_name


def _view_names(resolver, namespaces=()):
    """(route, view name) of every URL pattern, named as resolve() names them."""
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            inner = (*namespaces, pattern.namespace) if pattern.namespace else namespaces
            for route, name in _view_names(pattern, inner):
                yield str(pattern.pattern) + route, name
        elif isinstance(pattern, URLPattern):
            if pattern.name:
                name = ":".join((*namespaces, pattern.name))
            else:
                name = f"{pattern.callback.__module__}.{pattern.callback.__qualname__}"
            yield str(pattern.pattern), name


def _covered(world) -> set[tuple[str, str]]:
    values = {**world.ids, "own_battle": world.battles["member"]}
    return {(_route(row.path.format(**values)), row.method) for row in ROWS}


def test_every_url_has_a_row(db, world):
    covered = {route for route, _ in _covered(world)}
    missing = [
        f"{route} ({name})"
        for route, name in _view_names(get_resolver())
        # The admin's own views are covered model by model (test_every_admin_model_has_a_row).
        if not route.startswith("admin/") and name not in covered
    ]
    assert not missing, "URLs without a row in the permission matrix:\n" + "\n".join(missing)


def test_every_api_operation_has_a_row(db, world, client):
    schema = yaml.safe_load(client.get("/api/schema/").content)
    covered = _covered(world)
    missing = []
    for path, operations in schema["paths"].items():
        concrete = path.replace("{id}", "1").replace("{battle_id}", "x")
        for method in operations:
            if method in ("get", "post", "put", "patch", "delete") and (_route(concrete), method) not in covered:
                missing.append(f"{method.upper()} {path}")
    assert not missing, "API operations without a row in the permission matrix:\n" + "\n".join(missing)


def test_every_admin_model_has_a_row():
    paths = {row.path for row in ROWS if row.area == "admin"}
    missing = [
        model._meta.label
        for model in admin.site._registry
        if f"/admin/{model._meta.app_label}/{model._meta.model_name}/" not in paths
    ]
    assert not missing


def test_the_docs_carry_the_current_matrix():
    from django.conf import settings

    from .permission_table import render

    docs = (settings.BASE_DIR / "docs" / "reliability.md").read_text(encoding="utf-8")
    assert render() in docs, "regenerate docs/reliability.md: python -m tests.arenasite.permission_table"
