"""Two staff acting at once on one model: the row lock lets only one decision through.

SQLite has no row locks (select_for_update is a no-op there), so these run on PostgreSQL.
"""

import threading

import pytest
from django.db import close_old_connections, connection, transaction

from providers.lifecycle import Action, TransitionRefused, transition
from providers.models import ArenaModel, LifecycleEvent

from ..conftest import make_model

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL"),
]


def run_in_thread(fn):
    result = {}

    def target():
        try:
            result["value"] = fn()
        except Exception as exc:  # handed back to the test
            result["error"] = exc
        finally:
            close_old_connections()
            connection.close()

    thread = threading.Thread(target=target)
    thread.start()
    return thread, result


def test_a_second_decision_waits_for_the_first_and_is_judged_against_it(provider_a, staff):
    model = make_model(provider_a, ArenaModel.Status.SUBMITTED)
    first_done, release = threading.Event(), threading.Event()

    def admit_and_hold():
        with transaction.atomic():
            transition(model_id=model.pk, action=Action.ADMIT, actor=staff, reason="first")
            first_done.set()
            release.wait(10)  # keep the row locked until the other thread is queued behind it

    first, first_result = run_in_thread(admit_and_hold)
    assert first_done.wait(10)
    second, second_result = run_in_thread(
        lambda: transition(model_id=model.pk, action=Action.REJECT, actor=staff, reason="second")
    )
    second.join(0.5)
    assert second.is_alive(), "the second transition must wait for the row lock"
    release.set()
    first.join(10)
    second.join(10)

    assert "error" not in first_result
    assert isinstance(second_result.get("error"), TransitionRefused)
    assert second_result["error"].rule == "invalid_state"
    model.refresh_from_db()
    assert model.status == ArenaModel.Status.INITIAL_RATING
    assert list(model.events.values_list("action", flat=True)) == ["submit", "admit"]


def test_many_racing_clicks_write_one_event(provider_a, staff):
    model = make_model(provider_a, ArenaModel.Status.SUBMITTED)
    barrier = threading.Barrier(6)

    def click(action):
        def go():
            barrier.wait(5)
            return transition(model_id=model.pk, action=action, actor=staff, reason="race")

        return go

    threads = [run_in_thread(click(Action.ADMIT if i % 2 else Action.REJECT)) for i in range(6)]
    for thread, _ in threads:
        thread.join(10)
    changed = [r["value"] for _, r in threads if "value" in r and r["value"].changed]
    refusals = [r["error"] for _, r in threads if "error" in r]
    assert len(changed) == 1
    assert all(isinstance(error, TransitionRefused) for error in refusals)
    assert LifecycleEvent.objects.filter(arena_model=model).exclude(action="submit").count() == 1
