"""Every lifecycle rule, each refusal, idempotency, and the 14-day arithmetic."""

from datetime import timedelta

import pytest
import time_machine
from django.core.exceptions import PermissionDenied
from django.db import connection

from arenasite import clock
from providers.lifecycle import Action, TransitionRefused, carry_out_due, transition
from providers.models import ArenaModel, LifecycleEvent

from ..conftest import make_model

pytestmark = pytest.mark.django_db
S = ArenaModel.Status


def refused(model, action, *, actor=None, reason="because") -> TransitionRefused:
    before = (model.status, LifecycleEvent.objects.count())
    with pytest.raises(TransitionRefused) as info:
        transition(model_id=model.pk, action=action, actor=actor, reason=reason)
    model.refresh_from_db()
    assert (model.status, LifecycleEvent.objects.count()) == before, "a refusal must change nothing"
    return info.value


def test_it_walks_the_happy_path_and_logs_every_step(provider_a, staff):
    model = make_model(provider_a, votes=1200)
    for action, status in [
        (Action.SUBMIT, S.SUBMITTED),
        (Action.ADMIT, S.INITIAL_RATING),
        (Action.PUBLISH, S.LISTED),
    ]:
        outcome = transition(model_id=model.pk, action=action, actor=staff, reason=f"{action} it")
        assert outcome.changed and not outcome.scheduled
        assert outcome.model.status == status
    model.refresh_from_db()
    assert model.submitted_at <= model.admitted_at <= model.listed_at
    events = list(model.events.values_list("action", "from_status", "to_status", "actor", "reason"))
    assert events == [
        ("submit", "draft", "submitted", staff.pk, "submit it"),
        ("admit", "submitted", "initial_rating", staff.pk, "admit it"),
        ("publish", "initial_rating", "listed", staff.pk, "publish it"),
    ]


def test_it_refuses_to_admit_a_private_model(provider_a, staff):
    model = make_model(provider_a, S.SUBMITTED, access_kind=ArenaModel.AccessKind.PRIVATE)
    error = refused(model, Action.ADMIT, actor=staff)
    assert error.rule == "third_party_access"
    assert "private" in error.detail


def test_a_private_model_that_becomes_public_may_be_admitted(provider_a, staff):
    model = make_model(provider_a, S.SUBMITTED, access_kind=ArenaModel.AccessKind.PRIVATE)
    refused(model, Action.ADMIT, actor=staff)
    ArenaModel.objects.filter(pk=model.pk).update(access_kind=ArenaModel.AccessKind.PUBLIC_API)
    assert transition(model_id=model.pk, action=Action.ADMIT, actor=staff).model.status == S.INITIAL_RATING


@pytest.mark.parametrize("votes, allowed", [(999, False), (1000, True)])
def test_listing_needs_the_minimum_of_counted_votes(provider_a, staff, votes, allowed):
    model = make_model(provider_a, S.INITIAL_RATING, votes=votes)
    if allowed:
        assert transition(model_id=model.pk, action=Action.PUBLISH, actor=staff).model.status == S.LISTED
    else:
        error = refused(model, Action.PUBLISH, actor=staff)
        assert error.rule == "listing_min_votes"
        assert "1000" in error.detail and "999" in error.detail


def test_the_vote_minimum_is_a_setting(provider_a, staff, settings):
    settings.ARENA_LISTING_MIN_VOTES = 50
    model = make_model(provider_a, S.INITIAL_RATING, votes=50)
    assert transition(model_id=model.pk, action=Action.PUBLISH, actor=staff).model.status == S.LISTED


def test_a_heads_up_delays_listing_by_one_day(provider_a, staff):
    model = make_model(provider_a, S.INITIAL_RATING, votes=2000, heads_up_requested=True)
    decided = clock.now()
    with time_machine.travel(decided, tick=False):
        outcome = transition(model_id=model.pk, action=Action.PUBLISH, actor=staff, reason="rated")
    assert outcome.scheduled
    assert outcome.model.status == S.INITIAL_RATING
    assert outcome.model.list_after == decided + timedelta(days=1)
    assert outcome.event.kind == LifecycleEvent.Kind.SCHEDULED

    with time_machine.travel(decided + timedelta(hours=23, minutes=59), tick=False):
        assert carry_out_due() == []
        # Asking again while waiting is a no-op, not a second decision.
        assert not transition(model_id=model.pk, action=Action.PUBLISH, actor=staff).changed
    with time_machine.travel(decided + timedelta(days=1), tick=False):
        [done] = carry_out_due()
        assert carry_out_due() == [], "running the task twice changes nothing more"
    model.refresh_from_db()
    assert model.status == S.LISTED
    assert model.listed_at == decided + timedelta(days=1)
    assert model.list_after is None
    assert done.event.actor is None


def test_a_provider_may_withdraw_during_the_heads_up_day(provider_a, staff, member_a):
    model = make_model(provider_a, S.INITIAL_RATING, votes=2000, heads_up_requested=True)
    transition(model_id=model.pk, action=Action.PUBLISH, actor=staff)
    transition(model_id=model.pk, action=Action.WITHDRAW, actor=member_a, reason="not ready")
    with time_machine.travel(clock.now() + timedelta(days=2)):
        assert carry_out_due() == []
    model.refresh_from_db()
    assert model.status == S.WITHDRAWN and model.list_after is None and model.listed_at is None


def test_a_listed_model_cannot_be_withdrawn(provider_a, member_a):
    model = make_model(provider_a, S.LISTED)
    error = refused(model, Action.WITHDRAW, actor=member_a)
    assert error.rule == "listed_cannot_withdraw"
    assert "retired" in error.detail


@pytest.mark.parametrize(
    "status, action",
    [
        (S.DRAFT, Action.ADMIT),
        (S.DRAFT, Action.PUBLISH),
        (S.SUBMITTED, Action.PUBLISH),
        (S.SUBMITTED, Action.WITHDRAW),
        (S.INITIAL_RATING, Action.RETIRE),
        (S.INITIAL_RATING, Action.REJECT),
        (S.REJECTED, Action.ADMIT),
        (S.WITHDRAWN, Action.PUBLISH),
        (S.RETIRED, Action.PUBLISH),
        (S.LISTED, Action.SUBMIT),
    ],
)
def test_it_refuses_moves_outside_the_graph(provider_a, staff, status, action):
    model = make_model(provider_a, status, votes=5000)
    error = refused(model, action, actor=staff)
    assert error.rule == "invalid_state"
    assert model.get_status_display().lower() in error.detail


@pytest.mark.parametrize("action", [Action.REJECT, Action.WITHDRAW, Action.RETIRE, Action.REQUEST_RETIREMENT])
def test_removals_need_a_reason(provider_a, staff, action):
    status = {Action.REJECT: S.SUBMITTED, Action.WITHDRAW: S.INITIAL_RATING}.get(action, S.LISTED)
    model = make_model(provider_a, status)
    assert refused(model, action, actor=staff, reason="   ").rule == "reason_required"


def test_it_refuses_unknown_actions_and_overlong_reasons(provider_a, staff):
    model = make_model(provider_a, S.SUBMITTED)
    assert refused(model, "explode", actor=staff).rule == "unknown_action"
    assert refused(model, Action.ADMIT, actor=staff, reason="x" * 2001).rule == "reason_too_long"


def test_asking_for_the_current_state_again_changes_nothing(provider_a, staff):
    model = make_model(provider_a, S.INITIAL_RATING)
    count = LifecycleEvent.objects.count()
    outcome = transition(model_id=model.pk, action=Action.ADMIT, actor=staff)
    assert not outcome.changed and outcome.model.status == S.INITIAL_RATING
    assert LifecycleEvent.objects.count() == count


class TestTheFourteenDayRule:
    """A listed model stays at least 14 days; earlier retirement is scheduled, not refused."""

    @pytest.fixture
    def listed(self, provider_a, staff):
        model = make_model(provider_a, S.LISTED, staff=staff)
        return model

    @pytest.mark.parametrize("action", [Action.RETIRE, Action.REQUEST_RETIREMENT])
    def test_an_early_retirement_is_scheduled_for_the_end_of_the_window(self, listed, staff, action):
        window_end = listed.listed_at + timedelta(days=14)
        with time_machine.travel(window_end - timedelta(seconds=1), tick=False):
            outcome = transition(model_id=listed.pk, action=action, actor=staff, reason="superseded")
        assert outcome.scheduled
        assert outcome.model.status == S.LISTED
        assert outcome.model.retire_after == window_end
        assert outcome.event.effective_at == window_end
        assert outcome.event.kind == LifecycleEvent.Kind.SCHEDULED

    def test_retirement_at_the_end_of_the_window_happens_at_once(self, listed, staff):
        with time_machine.travel(listed.listed_at + timedelta(days=14), tick=False):
            outcome = transition(model_id=listed.pk, action=Action.RETIRE, actor=staff, reason="old")
        assert not outcome.scheduled and outcome.model.status == S.RETIRED
        assert outcome.model.retired_at == listed.listed_at + timedelta(days=14)

    def test_the_scheduler_carries_out_the_retirement_exactly_when_due(self, listed, member_a):
        window_end = listed.listed_at + timedelta(days=14)
        transition(model_id=listed.pk, action=Action.REQUEST_RETIREMENT, actor=member_a, reason="new version")
        with time_machine.travel(window_end - timedelta(microseconds=1), tick=False):
            assert carry_out_due() == []
        with time_machine.travel(window_end, tick=False):
            [outcome] = carry_out_due()
            assert carry_out_due() == []
        assert outcome.model.status == S.RETIRED
        assert outcome.model.retired_at == window_end
        assert outcome.model.retire_after is None
        assert outcome.event.actor is None
        assert outcome.event.reason == "new version"

    def test_asking_twice_keeps_one_schedule(self, listed, staff):
        transition(model_id=listed.pk, action=Action.RETIRE, actor=staff, reason="a")
        again = transition(model_id=listed.pk, action=Action.RETIRE, actor=staff, reason="b")
        assert not again.changed
        assert listed.events.filter(kind=LifecycleEvent.Kind.SCHEDULED).count() == 1

    def test_the_window_length_is_a_setting(self, listed, staff, settings):
        settings.ARENA_MIN_LISTED_DAYS = 3
        outcome = transition(model_id=listed.pk, action=Action.RETIRE, actor=staff, reason="x")
        assert outcome.model.retire_after == listed.listed_at + timedelta(days=3)


def test_events_cannot_be_edited_or_deleted(provider_a, staff):
    model = make_model(provider_a, S.SUBMITTED)
    event = model.events.get()
    event.reason = "rewritten"
    with pytest.raises(PermissionDenied):
        event.save()
    with pytest.raises(PermissionDenied):
        event.delete()
    with pytest.raises(PermissionDenied):
        LifecycleEvent.objects.filter(pk=event.pk).update(reason="rewritten")
    with pytest.raises(PermissionDenied):
        LifecycleEvent.objects.all().delete()
    assert LifecycleEvent.objects.get(pk=event.pk).reason == "set-up"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger is PostgreSQL's")
def test_the_database_refuses_raw_updates_of_events(provider_a):
    from django.db import DatabaseError, transaction

    model = make_model(provider_a, S.SUBMITTED)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE providers_lifecycleevent SET reason = 'x' WHERE arena_model_id = %s", [model.pk])
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM providers_lifecycleevent WHERE arena_model_id = %s", [model.pk])
