"""What the provider portal changes, as plain functions its views call.

The rules are the providers app's, called rather than copied, as the REST API calls them: a
model is registered and edited by `providers.registration` (who may, the name rules of
providers.names, http(s) endpoints the server may call, nothing once the model left the arena;
a change of access or endpoint of a model in the pool waits for staff), transitions go through
`providers.lifecycle`, agreements and shares through `releases.sharing`. What only the
portal does lives here: creating a provider (its creator becomes its admin), the one test
call to an endpoint, and issuing and revoking the caller's own API tokens.

The caller (a view) has checked that the user is a member of the provider concerned.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from arenasite import clock
from battles.clients import CallLimits, DemoClient, FailureKind, ModelCallFailed, OpenAIChatClient
from providers import changes, registration
from providers.lifecycle import TransitionRefused
from providers.models import ApiToken, ArenaModel, Membership, Provider

# The test call: one question, one answer, no retry; at most this many calls per user and
# minute, since each one holds a web worker for up to ARENA_HEALTH_CHECK_TIMEOUT seconds.
TEST_PROMPT = "Say hello in one short sentence."
TEST_ANSWER_CHARS = 2000
TEST_CALLS_PER_MINUTE = 6


class InvalidInput(Exception):
    """Bad input or a refused change; `errors` maps form field names ("__all__" for the
    form as a whole) to messages fit to show next to the field."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("; ".join(message for messages in errors.values() for message in messages))


# --- providers -------------------------------------------------------------------------------


def provider_create(*, user, name: str, website: str = "") -> Provider:
    """A new provider with `user` as its admin. Refuses a name (or its slug) already taken,
    in any letter case, as `manage.py create_provider` does.

    Anyone with an account may create a provider: it only lets them register models, and
    nothing they register enters the arena before staff admit it.
    """
    name = name.strip()
    slug = slugify(name)
    if not slug:
        raise InvalidInput({"name": ["A provider needs a name with at least one letter or digit."]})
    taken = InvalidInput({"name": [f"A provider named {name!r} already exists."]})
    if Provider.objects.filter(name__iexact=name).exists() or Provider.objects.filter(slug=slug).exists():
        raise taken
    try:
        with transaction.atomic():
            provider = Provider.objects.create(
                name=name, slug=slug, website=website, contact_name=user.get_full_name(), contact_email=user.email
            )
            Membership.objects.create(provider=provider, user=user, role=Membership.Role.ADMIN)
    except IntegrityError:
        raise taken from None  # created by someone else between the check and the insert
    return provider


# --- models ----------------------------------------------------------------------------------


def _form_errors(exc: registration.InvalidFields) -> InvalidInput:
    # The portal's pages name the provider in the URL: a refusal about it belongs to the form as a whole.
    errors: dict[str, list[str]] = {}
    for field, messages in exc.errors.items():
        errors.setdefault("__all__" if field == "provider" else field, []).extend(messages)
    return InvalidInput(errors)


def model_register(*, provider: Provider, user, data: dict[str, Any]) -> ArenaModel:
    """A new draft model of `provider` (providers.registration, as POST /api/v1/models/)."""
    try:
        return registration.model_register(provider=provider, user=user, values=data)
    except registration.InvalidFields as exc:
        raise _form_errors(exc) from None
    except registration.EditRefused as exc:
        raise InvalidInput({"__all__": [str(exc)]}) from None


def model_update(*, model_id: int, user, data: dict[str, Any]) -> changes.EditOutcome:
    """Change some fields of a model (providers.registration, as PATCH /api/v1/models/{id}/).
    Only the fields in `data` are written; for a model in the pool, a new access kind or
    endpoint becomes a request for staff. A refusal by a rule of the model's state (it left
    the arena, a change already waits) comes as an error of the form as a whole."""
    try:
        return registration.model_update(model_id=model_id, user=user, values=data)
    except registration.InvalidFields as exc:
        raise _form_errors(exc) from None
    except registration.EditRefused as exc:
        raise InvalidInput({"__all__": [str(exc)]}) from None
    except TransitionRefused as exc:
        raise InvalidInput({"__all__": [exc.detail]}) from None


def change_withdraw(*, model_id: int, user) -> None:
    """Withdraw the model's pending change of access or endpoint (providers.registration)."""
    try:
        registration.change_withdraw(model_id=model_id, user=user)
    except (registration.EditRefused, TransitionRefused) as exc:
        raise InvalidInput({"__all__": [str(exc)]}) from None


# --- the test call ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TestAnswer:
    ok: bool
    answer: str = ""
    error: str = ""
    truncated: bool = False

    __test__ = False  # a result, not a pytest test class


def endpoint_test_allowed(user_id: int) -> bool:
    """Count one test call for the user in the current minute; False once over the limit."""
    key = f"portal:test-call:{user_id}:{int(clock.now().timestamp() // 60)}"
    cache.add(key, 0, timeout=120)
    try:
        return cache.incr(key) <= TEST_CALLS_PER_MINUTE
    except ValueError:  # expired between add and incr: this is the first call of the minute
        cache.set(key, 1, timeout=120)
        return True


def endpoint_test(model: ArenaModel) -> TestAnswer:
    """One chat-completions call with the battle client, no retry, bounded by the health
    check's timeout. The result is shown to the provider and not recorded on the model's
    endpoint health: the scheduled checks and the battles keep that record, and a test
    the provider runs at a moment of their choosing should not clear it."""
    if model.is_demo:
        client: Any = DemoClient(model.name, chunk_delay=0)
    elif model.has_endpoint:
        seconds = float(settings.ARENA_HEALTH_CHECK_TIMEOUT)
        limits = dataclasses.replace(
            CallLimits.from_settings(),
            retries=0,
            total_timeout=seconds,
            first_token_timeout=min(seconds, settings.ARENA_MODEL_FIRST_TOKEN_TIMEOUT),
            max_answer_chars=TEST_ANSWER_CHARS,
        )
        try:
            client = OpenAIChatClient(
                base_url=model.endpoint_base_url,
                model_id=model.endpoint_model_id,
                api_key=model.endpoint_api_key,
                limits=limits,
                temperature=model.temperature,
            )
        except ValueError as exc:
            return TestAnswer(ok=False, error=str(exc))
    else:
        return TestAnswer(ok=False, error="The model has no endpoint yet: give its base URL and model id first.")
    pieces: list[str] = []
    try:
        for piece in client.stream([{"role": "user", "content": TEST_PROMPT}]):
            pieces.append(piece)
    except ModelCallFailed as exc:
        if exc.kind == FailureKind.TOO_LONG:
            return TestAnswer(ok=True, answer="".join(pieces), truncated=True)
        return TestAnswer(ok=False, error=f"{exc.user_message} {exc.detail}")
    answer = "".join(pieces)
    if not answer.strip():
        return TestAnswer(ok=False, error="The endpoint answered with an empty text.")
    return TestAnswer(ok=True, answer=answer)


# --- API tokens ------------------------------------------------------------------------------


def token_issue(*, user, name: str, second_factor: bool = False) -> tuple[ApiToken, str]:
    """A new token acting as `user`, and its plaintext, which is shown once and never stored.
    `second_factor`: the session asking signed in with one; staff get a token only then
    (ApiTokenManager.issue raises TokenRefused)."""
    return ApiToken.objects.issue(user=user, name=name.strip(), second_factor=second_factor)


def token_revoke(*, user, token_id: int) -> bool:
    """Revoke one of `user`'s own tokens. Final, and idempotent: False if it was already revoked."""
    with transaction.atomic():
        token = ApiToken.objects.select_for_update().filter(pk=token_id, user=user).first()
        return token is not None and token.revoke()
