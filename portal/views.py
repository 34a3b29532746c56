"""The provider portal: provider members do in a browser what the REST API offers.

Every page needs a login (allauth). A provider's pages live under /portal/<slug>/ and
answer 404 to anyone who is not one of its members, as does a model asked for under a
provider it does not belong to, so ids and slugs leak nothing. Writes are POST forms that
redirect when done; bad input re-renders the page with the errors (400), a refusal by a
policy rule shows the rule's sentence (409), and nothing changes in either case.

The views are thin: who may see and act (providers.access), the lifecycle
(providers.lifecycle), the model's fields (providers.registration, through
portal/services.py) and data sharing (releases.sharing) decide.
"""

from __future__ import annotations

from dataclasses import asdict
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from arenasite.mfa import session_used_second_factor
from providers import access, changes, lifecycle
from providers.lifecycle import MOVES, PROVIDER_ACTIONS, REASON_REQUIRED, Action, TransitionRefused
from providers.models import ApiToken, ArenaModel, Membership, TokenRefused
from releases import files, sharing
from releases.models import DataSharingAgreement, Download, ProviderShare

from . import selectors, services
from .forms import AcceptTermsForm, ArenaModelForm, HeadsUpForm, ProviderForm, ReasonForm, TokenForm
from .services import InvalidInput

GET_OR_POST = ["GET", "HEAD", "POST"]


def _membership(request: HttpRequest, slug: str) -> Membership:
    membership = access.membership_in(request.user, slug)
    if membership is None:
        raise Http404("No such provider of yours.")
    return membership


def _model(membership: Membership, pk: int) -> ArenaModel:
    return get_object_or_404(ArenaModel.objects.select_related("provider"), pk=pk, provider=membership.provider)


def _add_errors(form: Form, exc: InvalidInput) -> None:
    for field, field_errors in exc.errors.items():
        for message in field_errors:
            form.add_error(field if field in form.fields else None, message)


def _layout(request: HttpRequest, membership: Membership | None, **context) -> dict:
    return {
        "membership": membership,
        "provider": membership.provider if membership else None,
        "memberships": selectors.memberships_of(request.user),
        **context,
    }


# --- start: which provider -------------------------------------------------------------------


@login_required
@require_safe
def home(request):
    """A member of one provider goes to its dashboard; anyone else chooses or creates one."""
    memberships = list(selectors.memberships_of(request.user))
    if len(memberships) == 1:
        return redirect("portal:dashboard", slug=memberships[0].provider.slug)
    return render(request, "portal/home.html", _layout(request, None))


@login_required
@require_http_methods(GET_OR_POST)
def provider_new(request):
    form = ProviderForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                provider = services.provider_create(user=request.user, **form.cleaned_data)
            except InvalidInput as exc:
                _add_errors(form, exc)
            else:
                messages.success(request, f"{provider.name} is created, and you are its admin.")
                return redirect("portal:dashboard", slug=provider.slug)
    return render(request, "portal/provider_new.html", _layout(request, None, form=form), status=status)


# --- a provider's models ---------------------------------------------------------------------


@login_required
@require_safe
def dashboard(request, slug: str):
    membership = _membership(request, slug)
    models = membership.provider.models.order_by("-created_at", "-pk")
    context = _layout(
        request,
        membership,
        rows=[(model, selectors.next_step(model)) for model in models],
        agreement=selectors.latest_agreement(membership.provider),
        terms_version=sharing.terms_version(),
        in_initial_rating=sum(model.status == ArenaModel.Status.INITIAL_RATING for model in models),
        initial_rating_cap=getattr(settings, "ARENA_INITIAL_RATING_CAP", None),
    )
    return render(request, "portal/dashboard.html", context)


@login_required
@require_http_methods(GET_OR_POST)
def model_new(request, slug: str):
    membership = _membership(request, slug)
    form = ArenaModelForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                model = services.model_register(
                    provider=membership.provider, user=request.user, data=form.model_values()
                )
            except InvalidInput as exc:
                _add_errors(form, exc)
            else:
                messages.success(request, f"{model.name} is registered as a draft (codename {model.codename}).")
                return redirect("portal:model", slug=slug, pk=model.pk)
    context = _layout(request, membership, form=form, title="Register a model")
    return render(request, "portal/model_form.html", context, status=status)


@login_required
@require_http_methods(GET_OR_POST)
def model_edit(request, slug: str, pk: int):
    membership = _membership(request, slug)
    model = _model(membership, pk)
    form = ArenaModelForm(request.POST or None, instance=model)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                outcome = services.model_update(model_id=model.pk, user=request.user, data=form.model_values())
            except InvalidInput as exc:
                _add_errors(form, exc)
                status = 409 if "__all__" in exc.errors else 400
            else:
                messages.success(request, outcome.describe())
                return redirect("portal:model", slug=slug, pk=model.pk)
    context = _layout(request, membership, form=form, model=model, title=f"Edit {model.name}")
    return render(request, "portal/model_form.html", context, status=status)


def _test_session_key(model: ArenaModel) -> str:
    return f"portal-test-answer-{model.pk}"


def _model_page(
    request, membership: Membership, model: ArenaModel, *, status: int = 200, problem: str = "", failed=None
) -> HttpResponse:
    """The model's page; `failed` is (action, bound form) of a transition that did not pass."""
    actions = []
    for action in Action:
        if action in PROVIDER_ACTIONS and model.status in MOVES[action][0]:
            form = failed[1] if failed and failed[0] == action else ReasonForm(auto_id=f"id_{action.value}_%s")
            actions.append({"action": action, "form": form, "reason_required": action in REASON_REQUIRED})
    if failed and failed[0] not in [item["action"] for item in actions]:
        # The model moved on (another member, staff): its form is gone, so say why at the top.
        problem = problem or " ".join(message for errors in failed[1].errors.values() for message in errors)
    context = _layout(
        request,
        membership,
        model=model,
        next_step=selectors.next_step(model),
        history=selectors.history(model, request.user),
        ratings=selectors.private_ratings(model),
        actions=actions,
        editable=model.status not in ArenaModel.TERMINAL_STATUSES,
        heads_up_form=HeadsUpForm(initial={"heads_up_requested": not model.heads_up_requested}),
        pending_change=changes.pending_change(model),
        test_answer=request.session.pop(_test_session_key(model), None),
        problem=problem,
        min_listed_days=settings.ARENA_MIN_LISTED_DAYS,
        retraction_delay_days=getattr(settings, "ARENA_RETRACTION_DELAY_DAYS", None),
        heads_up_days=settings.ARENA_HEADS_UP_DAYS,
    )
    return render(request, "portal/model.html", context, status=status)


@login_required
@require_safe
def model_detail(request, slug: str, pk: int):
    membership = _membership(request, slug)
    return _model_page(request, membership, _model(membership, pk))


@login_required
@require_POST
def model_transition(request, slug: str, pk: int, action: str):
    """Submit, withdraw or ask to retire a model: the provider's own lifecycle actions."""
    if action not in PROVIDER_ACTIONS:
        raise Http404("No such action.")
    membership = _membership(request, slug)
    model = _model(membership, pk)
    action = Action(action)
    form = ReasonForm(request.POST, auto_id=f"id_{action.value}_%s")
    if not form.is_valid():
        return _model_page(request, membership, model, status=400, failed=(action, form))
    if not access.may_transition(request.user, model, action):
        raise PermissionDenied
    try:
        outcome = lifecycle.transition(
            model_id=model.pk, action=action, actor=request.user, reason=form.cleaned_data["reason"]
        )
    except TransitionRefused as exc:
        form.add_error(None, exc.detail)
        model.refresh_from_db()
        return _model_page(request, membership, model, status=409, failed=(action, form))
    messages.success(request, outcome.describe())
    return redirect("portal:model", slug=slug, pk=model.pk)


@login_required
@require_POST
def model_change_withdraw(request, slug: str, pk: int):
    """Withdraw the pending change of access or endpoint; the approved values stay in use."""
    membership = _membership(request, slug)
    model = _model(membership, pk)
    try:
        services.change_withdraw(model_id=model.pk, user=request.user)
    except InvalidInput as exc:
        return _model_page(request, membership, model, status=409, problem=str(exc))
    messages.success(request, "The change request is withdrawn; the model is served as approved.")
    return redirect("portal:model", slug=slug, pk=model.pk)


@login_required
@require_POST
def model_heads_up(request, slug: str, pk: int):
    """Ask for (or cancel) the one day's notice before listing."""
    membership = _membership(request, slug)
    model = _model(membership, pk)
    form = HeadsUpForm(request.POST)
    form.is_valid()  # a missing box is False: cancelling the request
    try:
        model = services.model_update(
            model_id=model.pk, user=request.user, data={"heads_up_requested": form.cleaned_data["heads_up_requested"]}
        ).model
    except InvalidInput as exc:
        return _model_page(request, membership, model, status=409, problem=str(exc))
    if model.heads_up_requested:
        messages.success(
            request,
            f"Heads-up requested: listing will take effect {settings.ARENA_HEADS_UP_DAYS} day(s) after staff decide.",
        )
    else:
        messages.success(request, "Heads-up cancelled: listing takes effect when staff decide.")
    return redirect("portal:model", slug=slug, pk=model.pk)


@login_required
@require_POST
def model_test(request, slug: str, pk: int):
    """One call to the model's endpoint; the answer (or the error) is shown on the model's page."""
    membership = _membership(request, slug)
    model = _model(membership, pk)
    if not services.endpoint_test_allowed(request.user.pk):
        problem = f"At most {services.TEST_CALLS_PER_MINUTE} test calls a minute; try again shortly."
        return _model_page(request, membership, model, status=429, problem=problem)
    answer = services.endpoint_test(model)
    request.session[_test_session_key(model)] = asdict(answer)
    return redirect(reverse("portal:model", kwargs={"slug": slug, "pk": model.pk}) + "#test")


# --- data access -----------------------------------------------------------------------------


def _data_page(request, membership: Membership, *, accept_form=None, status: int = 200, problem: str = ""):
    provider = membership.provider
    version = sharing.terms_version()
    agreement = selectors.latest_agreement(provider)
    open_on_current = (
        agreement is not None
        and agreement.terms_version == version
        and agreement.state != DataSharingAgreement.State.REVOKED
    )
    shares = list(selectors.shares_of(provider)[:50])
    for share in shares:
        # The page's table reads the download links from the share itself.
        share.links = (  # type: ignore[attr-defined]
            {
                fmt: reverse("share-download", args=[share.pk]) + "?" + urlencode({"format": fmt})
                for fmt in files.FORMAT_FILES
            }
            if share.state == ProviderShare.State.READY
            else {}
        )
    context = _layout(
        request,
        membership,
        terms_version=version,
        terms_text=sharing.terms_text(),
        agreement=agreement,
        may_share=sharing.active_agreement(provider) is not None,
        accept_form=None if open_on_current else accept_form or AcceptTermsForm(current_version=version),
        shares=shares,
        in_progress=any(s.state in (ProviderShare.State.REQUESTED, ProviderShare.State.BUILDING) for s in shares),
        downloads=Download.objects.filter(provider=provider).select_related("user").order_by("-at", "-id")[:20],
        problem=problem,
    )
    return render(request, "portal/data.html", context, status=status)


@login_required
@require_safe
def data(request, slug: str):
    return _data_page(request, _membership(request, slug))


@login_required
@require_POST
def agreement_accept(request, slug: str):
    membership = _membership(request, slug)
    form = AcceptTermsForm(request.POST, current_version=sharing.terms_version())
    if not form.is_valid():
        return _data_page(request, membership, accept_form=form, status=400)
    agreement, created = sharing.agreement_accept(provider=membership.provider, user=request.user)
    if created:
        messages.success(request, f"Terms {agreement.terms_version} accepted; the arena's staff will review them.")
    else:
        messages.info(request, f"The terms {agreement.terms_version} were already accepted ({agreement.state}).")
    return redirect("portal:data", slug=slug)


@login_required
@require_POST
def share_request(request, slug: str):
    membership = _membership(request, slug)
    try:
        share = sharing.share_request(provider=membership.provider, user=request.user)
    except sharing.SharingRefused as exc:
        return _data_page(request, membership, status=403, problem=str(exc))
    messages.success(request, f"Share {share.pk} requested; it is built in the background.")
    return redirect("portal:data", slug=slug)


# --- API tokens (the user's own) -------------------------------------------------------------


def _tokens_page(request, *, form=None, new_token: str = "", status: int = 200) -> HttpResponse:
    memberships = selectors.memberships_of(request.user)
    context = {
        "membership": None,
        "memberships": memberships,
        "form": form or TokenForm(),
        "tokens": ApiToken.objects.filter(user=request.user).order_by("-created_at", "-id"),
        "new_token": new_token,
        "may_issue": memberships.exists(),
        "staff_token_days": settings.ARENA_STAFF_TOKEN_DAYS,
    }
    response = render(request, "portal/tokens.html", context, status=status)
    if new_token:
        add_never_cache_headers(response)  # the plaintext must not stay in any cache
    return response


@login_required
@require_http_methods(GET_OR_POST)
def tokens(request):
    """The user's own API tokens: a token acts as its user, for every provider they belong to."""
    if request.method != "POST":
        return _tokens_page(request)
    if not selectors.memberships_of(request.user).exists():
        raise PermissionDenied("API tokens are for provider members.")
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _tokens_page(request, form=form, status=400)
    try:
        _, raw = services.token_issue(
            user=request.user,
            name=form.cleaned_data["name"],
            second_factor=session_used_second_factor(request, request.user),
        )
    except TokenRefused as exc:
        form.add_error(None, str(exc))
        return _tokens_page(request, form=form, status=403)
    # Rendered, not redirected: the plaintext exists only in this one response.
    return _tokens_page(request, new_token=raw)


@login_required
@require_POST
def token_revoke(request, pk: int):
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    if services.token_revoke(user=request.user, token_id=token.pk):
        messages.success(request, f"Token {token.name} is revoked.")
    else:
        messages.info(request, f"Token {token.name} was already revoked.")
    return redirect("portal:tokens")
