"""The model lifecycle: every transition goes through transition() below.

draft -> submitted -> initial_rating -> listed -> retired
             |              |
          rejected      withdrawn

Admin actions, the REST API, the `transition` command and the Celery tasks all call
transition(); it checks the policy, locks the row, changes the state and appends a
LifecycleEvent in one transaction. A refusal raises TransitionRefused naming the rule.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeAlias

from django.conf import settings
from django.db import IntegrityError, models, transaction

from arenasite import clock

from . import names
from .models import ArenaModel, LifecycleEvent, Provider, RetirementRule
from .signals import transition_done

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)
Status = ArenaModel.Status


class Action(models.TextChoices):
    SUBMIT = "submit", "Submit for admission"
    ADMIT = "admit", "Admit to initial rating"
    REJECT = "reject", "Reject"
    PUBLISH = "publish", "Publish on the leaderboard"
    WITHDRAW = "withdraw", "Withdraw"
    REQUEST_RETIREMENT = "request-retirement", "Request retirement"
    RETIRE = "retire", "Retire"


class Entry(models.TextChoices):
    """Ways into the arena other than admission. Not actions anyone can ask transition() for:
    each has its service below, the only code that records it."""

    IMPORT = "import", "Imported with arena data"


# Who may ask for what. Staff (with the transition permission) may do every action.
PROVIDER_ACTIONS = frozenset({Action.SUBMIT, Action.WITHDRAW, Action.REQUEST_RETIREMENT})
STAFF_ACTIONS = frozenset({Action.ADMIT, Action.REJECT, Action.PUBLISH, Action.RETIRE})

# Where each action starts and where it leads.
MOVES: dict[str, tuple[tuple[str, ...], str]] = {
    Action.SUBMIT: ((Status.DRAFT,), Status.SUBMITTED),
    Action.ADMIT: ((Status.SUBMITTED,), Status.INITIAL_RATING),
    Action.REJECT: ((Status.SUBMITTED,), Status.REJECTED),
    Action.PUBLISH: ((Status.INITIAL_RATING,), Status.LISTED),
    Action.WITHDRAW: ((Status.INITIAL_RATING,), Status.WITHDRAWN),
    Action.REQUEST_RETIREMENT: ((Status.LISTED,), Status.RETIRED),
    Action.RETIRE: ((Status.LISTED,), Status.RETIRED),
}

# The rule each retirement is made under, recorded on its event. A provider's request is its
# own rule; staff name the rule they apply (a staff decision when none of the rules is met).
RETIREMENT_ACTIONS = frozenset({Action.REQUEST_RETIREMENT, Action.RETIRE})
STAFF_RETIREMENT_RULES = frozenset(
    {RetirementRule.OFFLINE, RetirementRule.BELOW_PERCENTILE, RetirementRule.STAFF_DECISION}
)

# Checks of retirement rules that need data this app cannot read (ratings live in leaderboard,
# above it). An app registers a check with register_rule_check(); it returns None when the rule
# applies to the model, or a sentence saying why not.
RuleCheck = Callable[[ArenaModel, datetime], "str | None"]
_RULE_CHECKS: dict[str, RuleCheck] = {}


def register_rule_check(rule: str, check: RuleCheck) -> None:
    _RULE_CHECKS[rule] = check


# Decisions that take a model out of the arena, or refuse it, are explained on the record.
REASON_REQUIRED = frozenset({Action.REJECT, Action.WITHDRAW, Action.REQUEST_RETIREMENT, Action.RETIRE})
REASON_MAX_LENGTH = 2000


class TransitionRefused(Exception):
    """A transition the policy does not allow. `rule` is a stable code, `detail` a sentence."""

    def __init__(self, rule: str, detail: str):
        super().__init__(detail)
        self.rule = rule
        self.detail = detail


@dataclass(frozen=True)
class Outcome:
    model: ArenaModel
    event: LifecycleEvent | None  # None when nothing needed doing
    scheduled: bool = False

    @property
    def changed(self) -> bool:
        return self.event is not None

    def describe(self) -> str:
        if self.event is None:
            model = self.model
            if model.status == Status.LISTED and model.retire_after is not None:
                return f"{model.name}: nothing to do, its retirement is already scheduled for {_at(model.retire_after)}"
            if model.status == Status.INITIAL_RATING and model.list_after is not None:
                return f"{model.name}: nothing to do, its listing is already scheduled for {_at(model.list_after)}"
            return f"{model.name}: nothing to do, already {model.get_status_display().lower()}"
        if self.scheduled:
            return f"{self.model.name}: {self.event.action} scheduled for {_at(self.event.effective_at)}"
        return f"{self.model.name}: now {self.model.get_status_display().lower()}"

    def foretell(self) -> str:
        """The outcome as it would be, for a confirmation page (preview())."""
        if self.event is None:
            what = self.describe().split(": ", 1)[1]
            return what[0].upper() + what[1:] + "."
        if self.scheduled:
            return f"Scheduled for {_at(self.event.effective_at)}, not done now."
        return f"Done now: {self.model.get_status_display().lower()}."


def _at(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def transition(*, model_id: int, action: str, actor: User | None = None, reason: str = "", rule: str = "") -> Outcome:
    """Apply `action` to one model under the policy.

    Idempotent: asking again for what is already done or already scheduled changes
    nothing and returns an Outcome without an event. `actor` None means the system
    (the scheduler carrying out an earlier decision). `rule` is the retirement rule a
    staff retirement is made under (RetirementRule; default: a staff decision); a
    provider's request is recorded as `provider_request`, and the same request made by staff
    (not a member of the provider) as `staff_decision`, so the public line names who decided.
    """
    if action not in MOVES:
        raise TransitionRefused("unknown_action", f"Unknown action {action!r}; known: {', '.join(Action.values)}.")
    reason = reason.strip()
    if len(reason) > REASON_MAX_LENGTH:
        raise TransitionRefused("reason_too_long", f"The reason is limited to {REASON_MAX_LENGTH} characters.")
    rule = _retirement_rule(action, rule)

    with transaction.atomic():
        # The row lock makes concurrent decisions on one model queue up: the second
        # one sees the first one's result and is judged against it.
        model = ArenaModel.objects.select_for_update().get(pk=model_id)
        now = clock.now()
        rule = _decider_rule(model, action, actor, rule)
        handler = _HANDLERS.get(action, _move)
        outcome = handler(model, action, actor, reason, now, rule)
        if outcome.event is not None and not outcome.scheduled:
            transition_done.send(sender=ArenaModel, model=outcome.model, event=outcome.event)
        return outcome


def preview(*, model_id: int, action: str, actor: User | None = None, rule: str = "") -> str:
    """What transition() would do to one model now, as a sentence for a confirmation page:
    done, scheduled (and for when), nothing to do, or refused (with the rule and why).

    The transition is run and rolled back, so the answer is the policy's own, not a copy of it.
    """
    try:
        with transaction.atomic():
            model = ArenaModel.objects.select_for_update().get(pk=model_id)
            rule = _decider_rule(model, action, actor, _retirement_rule(action, rule))
            # A reason is asked on the same page; the preview assumes one is given.
            outcome = _HANDLERS.get(action, _move)(model, action, actor, "(preview)", clock.now(), rule)
            answer = outcome.foretell()
            transaction.set_rollback(True)
    except TransitionRefused as exc:
        return f"Refused ({exc.rule}): {exc.detail}"
    return answer


def _decider_rule(model: ArenaModel, action: str, actor: User | None, rule: str) -> str:
    """A retirement request made by staff rather than by a member of the model's provider is
    recorded, and shown publicly, as a staff decision: the public line names who decided."""
    if action == Action.REQUEST_RETIREMENT and not (
        actor is not None and model.provider.memberships.filter(user=actor).exists()
    ):
        return RetirementRule.STAFF_DECISION
    return rule


def _retirement_rule(action: str, rule: str) -> str:
    """The rule to record: empty for moves that are not retirements."""
    if action not in RETIREMENT_ACTIONS:
        if rule:
            raise TransitionRefused("rule_not_applicable", f"'{action}' is not a retirement; it takes no rule.")
        return ""
    if action == Action.REQUEST_RETIREMENT:
        return RetirementRule.PROVIDER_REQUEST
    rule = rule or RetirementRule.STAFF_DECISION
    if rule not in STAFF_RETIREMENT_RULES:
        known = ", ".join(sorted(STAFF_RETIREMENT_RULES))
        raise TransitionRefused("unknown_rule", f"Unknown retirement rule {rule!r}; known: {known}.")
    return rule


def _check_rule(model: ArenaModel, rule: str, now: datetime) -> None:
    """A retirement under a rule is done only if the rule applies to the model now."""
    if rule == RetirementRule.OFFLINE:
        if model.retirement_candidate_since is None:
            raise TransitionRefused(
                "rule_not_met",
                f"{model.name} is not a retirement candidate for being offline: that needs its endpoint to fail "
                f"for {settings.ARENA_OFFLINE_RETIREMENT_DAYS} days after its listing window.",
            )
    elif rule in _RULE_CHECKS:
        why_not = _RULE_CHECKS[rule](model, now)
        if why_not:
            raise TransitionRefused("rule_not_met", why_not)


def _check_initial_rating_cap(model: ArenaModel) -> None:
    """At most ARENA_INITIAL_RATING_CAP models of one provider in initial rating at once.

    Several admissions for one provider can run at once, each holding only its own model's
    lock, so the count is taken under a lock on the provider's row: the second admission
    waits for the first and counts its model.
    """
    Provider.objects.select_for_update().filter(pk=model.provider_id).first()
    cap = settings.ARENA_INITIAL_RATING_CAP
    testing = ArenaModel.objects.filter(provider_id=model.provider_id, status=Status.INITIAL_RATING).count()
    if testing >= cap:
        raise TransitionRefused(
            "initial_rating_cap",
            f"{model.provider.name} already has {testing} model(s) in initial rating; at most {cap} may be "
            f"tested at once. Admit {model.name} when one of them is listed or withdrawn.",
        )


def _check_common(model: ArenaModel, action: str, reason: str) -> None:
    sources, target = MOVES[action]
    if model.status not in sources:
        if action == Action.WITHDRAW and model.status == Status.LISTED:
            raise TransitionRefused(
                "listed_cannot_withdraw",
                f"{model.name} is listed: a listed model cannot be withdrawn, only retired, "
                f"and it stays in the arena for at least {settings.ARENA_MIN_LISTED_DAYS} days after listing.",
            )
        expected = " or ".join(Status(s).label.lower() for s in sources)
        raise TransitionRefused(
            "invalid_state",
            f"'{action}' applies to a model that is {expected}; {model.name} is {model.get_status_display().lower()}.",
        )
    if action in REASON_REQUIRED and not reason:
        raise TransitionRefused("reason_required", f"'{action}' needs a reason for the public record.")


def _already_there(model: ArenaModel, action: str) -> bool:
    return model.status == MOVES[action][1]


def _move(model: ArenaModel, action: str, actor: User | None, reason: str, now: datetime, rule: str) -> Outcome:
    if _already_there(model, action):
        return Outcome(model, None)
    _check_common(model, action, reason)
    if action == Action.ADMIT and model.access_kind == ArenaModel.AccessKind.PRIVATE:
        raise TransitionRefused(
            "third_party_access",
            f"Only models that third parties can reach (open weights, a public API or a public service) "
            f"may be admitted; {model.name} is private. Change its access kind once it is public.",
        )
    if action == Action.ADMIT:
        _check_initial_rating_cap(model)
    if action == Action.WITHDRAW:
        model.list_after = None  # a provider may pull out during the heads-up day too
    return _record(model, action, actor, reason, now, to=MOVES[action][1])


def _publish(model: ArenaModel, action: str, actor: User | None, reason: str, now: datetime, rule: str) -> Outcome:
    if _already_there(model, action):
        return Outcome(model, None)
    _check_common(model, action, reason)
    if model.list_after is not None:
        if now < model.list_after:
            return Outcome(model, None)  # already decided, waiting out the heads-up
        # The decision was taken and checked when it was scheduled; carry it out, unless another
        # model has taken the public name meanwhile.
        _check_public_name(model)
        model.list_after = None
        return _list(model, action, actor, reason or "Listing after the heads-up period.", now)
    minimum = settings.ARENA_LISTING_MIN_VOTES
    if model.votes_counted < minimum:
        raise TransitionRefused(
            "listing_min_votes",
            f"Listing needs at least {minimum} counted votes to rate the model; "
            f"{model.name} has {model.votes_counted}.",
        )
    _check_public_name(model)
    if model.heads_up_requested:
        model.list_after = now + timedelta(days=settings.ARENA_HEADS_UP_DAYS)
        return _record(model, action, actor, reason, now, to=Status.LISTED, effective_at=model.list_after)
    return _list(model, action, actor, reason, now)


def _check_public_name(model: ArenaModel) -> None:
    """Public names are unique among public models only (providers/names.py), so two providers
    may hold one name on hidden models; the first listed keeps it."""
    clash = names.public_name_clash(model)
    if clash is not None:
        raise TransitionRefused(
            "name_taken",
            f"Another public model ({clash.provider.name}'s) is already named {clash.name!r}; "
            f"{model.name} ({model.codename}) needs a new public name before it is listed. Staff rename it in "
            "admin, with the provider.",
        )


def _list(model: ArenaModel, action: str, actor: User | None, reason: str, now: datetime) -> Outcome:
    try:
        # A savepoint: the unique index on public names refuses a listing that raced another
        # one of the same name, and the refusal must leave the transaction usable.
        with transaction.atomic():
            return _record(model, action, actor, reason, now, to=Status.LISTED)
    except IntegrityError:
        model.status, model.listed_at = Status.INITIAL_RATING, None
        _check_public_name(model)
        raise


def _retire(model: ArenaModel, action: str, actor: User | None, reason: str, now: datetime, rule: str) -> Outcome:
    if _already_there(model, action):
        return Outcome(model, None)
    carrying_out = model.retire_after is not None and now >= model.retire_after and not reason
    if carrying_out:
        # Carrying out an earlier request: its reason and rule go on the record again; the
        # rule was checked when the request was made.
        scheduled = _scheduled_retirement(model)
        reason = (scheduled.reason if scheduled else "") or "Scheduled retirement."
        rule = (scheduled.rule if scheduled else "") or rule
    _check_common(model, action, reason)
    window_end = model.listing_window_ends_at
    if window_end is not None and now < window_end:
        if model.retire_after is not None:
            return Outcome(model, None)  # already scheduled for the end of the window
        _check_rule(model, rule, now)
        # Policy: a listed model stays at least N days. An earlier request is kept and
        # carried out when the window closes; it is neither refused nor done early.
        model.retire_after = window_end
        return _record(model, action, actor, reason, now, to=Status.RETIRED, effective_at=window_end, rule=rule)
    if not carrying_out:
        _check_rule(model, rule, now)
    model.retire_after = None
    return _record(model, action, actor, reason, now, to=Status.RETIRED, rule=rule)


def _scheduled_retirement(model: ArenaModel) -> LifecycleEvent | None:
    return model.events.filter(kind=LifecycleEvent.Kind.SCHEDULED, to_status=Status.RETIRED).last()


# What carries out an action, when it is more than a move from one state to the next.
Handler: TypeAlias = Callable[[ArenaModel, str, "User | None", str, datetime, str], Outcome]
_HANDLERS: dict[str, Handler] = {Action.PUBLISH: _publish, Action.RETIRE: _retire, Action.REQUEST_RETIREMENT: _retire}

_DATE_FIELDS: dict[str, str] = {
    Status.SUBMITTED: "submitted_at",
    Status.INITIAL_RATING: "admitted_at",
    Status.LISTED: "listed_at",
    Status.RETIRED: "retired_at",
    Status.WITHDRAWN: "withdrawn_at",
}


_LIFECYCLE_FIELDS = ["status", "status_changed_at", "list_after", "retire_after", *_DATE_FIELDS.values()]


def _record(
    model: ArenaModel,
    action: str,
    actor: User | None,
    reason: str,
    now: datetime,
    *,
    to: str,
    effective_at: datetime | None = None,
    rule: str = "",
) -> Outcome:
    scheduled = effective_at is not None
    event = LifecycleEvent.objects.create(
        arena_model=model,
        action=action,
        kind=LifecycleEvent.Kind.SCHEDULED if scheduled else LifecycleEvent.Kind.DONE,
        from_status=model.status,
        to_status=to,
        actor=actor,
        reason=reason,
        rule=rule,
        effective_at=effective_at or now,
        created_at=now,
    )
    if not scheduled:
        model.status = to
        model.status_changed_at = now
        if to in _DATE_FIELDS:
            setattr(model, _DATE_FIELDS[to], now)
    # Only the lifecycle columns: a health check may be writing the endpoint columns meanwhile.
    model.save(update_fields=_LIFECYCLE_FIELDS)
    logger.info("lifecycle: %s %s (%s) by %s", model.name, action, event.kind, actor or "scheduler")
    return Outcome(model, event, scheduled=scheduled)


def import_listed(*, provider: Provider, name: str, listed_at: datetime, reason: str) -> ArenaModel:
    """Create a model that public arena data shows in battles, as listed, with its `import` event.

    The battles name it, so it is public from the start: it skips admission and initial
    rating, which is why only the import command calls this. Its name meets the rules any
    public name meets (providers/names.py), else TransitionRefused(`name_refused`).
    `listed_at` is when the data first shows it; the event records when it was imported.
    Not idempotent: the importer reuses the models it finds by name and calls this for the rest.
    """
    refusal = names.name_refusal(name, provider=provider)
    if refusal:
        raise TransitionRefused("name_refused", refusal)
    with transaction.atomic():
        now = clock.now()
        model = ArenaModel.objects.create(
            provider=provider,
            name=name,
            access_kind=ArenaModel.AccessKind.PUBLIC_API,
            status=Status.DRAFT,
            status_changed_at=now,
            created_at=now,
        )
        outcome = _record(model, Entry.IMPORT, None, reason, now, to=Status.LISTED)
        transition_done.send(sender=ArenaModel, model=model, event=outcome.event)
        # Listed from its first battle in the data, not from the day it was imported.
        model.listed_at = listed_at
        model.save(update_fields=["listed_at"])
    return model


def backdate_import(model: ArenaModel, listed_at: datetime) -> None:
    """Move an imported model's listing back to an earlier battle found later in the data."""
    if model.listed_at is not None and listed_at < model.listed_at:
        model.listed_at = listed_at
        ArenaModel.objects.filter(pk=model.pk, events__action=Entry.IMPORT).update(listed_at=listed_at)


def carry_out_due(now: datetime | None = None) -> list[Outcome]:
    """Carry out scheduled listings and retirements whose time has come. Safe to run twice."""
    now = now or clock.now()
    due = [
        (pk, Action.PUBLISH)
        for pk in ArenaModel.objects.filter(status=Status.INITIAL_RATING, list_after__lte=now).values_list(
            "pk", flat=True
        )
    ] + [
        (pk, Action.RETIRE)
        for pk in ArenaModel.objects.filter(status=Status.LISTED, retire_after__lte=now).values_list("pk", flat=True)
    ]
    outcomes = []
    for pk, action in due:
        try:
            outcome = transition(model_id=pk, action=action, actor=None)
        except TransitionRefused as exc:  # the state moved on since the query; nothing is due
            logger.info("lifecycle: scheduled %s of model %s skipped: %s", action, pk, exc.detail)
            continue
        if outcome.changed:
            outcomes.append(outcome)
    return outcomes
