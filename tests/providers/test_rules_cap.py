"""At most ARENA_INITIAL_RATING_CAP models of one provider in initial rating at once, enforced at admission."""

import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import close_old_connections, connection, transaction

from arenasite import clock
from providers.lifecycle import Action, TransitionRefused, carry_out_due, transition
from providers.models import ArenaModel, LifecycleEvent

from ..conftest import make_model

S = ArenaModel.Status


@pytest.fixture(autouse=True)
def production_cap(settings):
    """The test settings raise the cap for other tests' worlds; these test the default."""
    settings.ARENA_INITIAL_RATING_CAP = 3


def admit(model, staff):
    return transition(model_id=model.pk, action=Action.ADMIT, actor=staff)


@pytest.mark.django_db
def test_the_third_model_is_admitted_and_the_fourth_refused_with_a_clear_message(provider_a, staff):
    for n in range(3):
        make_model(provider_a, S.INITIAL_RATING, staff=staff, name=f"testing-{n}")
    fourth = make_model(provider_a, S.SUBMITTED, staff=staff, name="one-too-many")
    events_before = LifecycleEvent.objects.count()

    with pytest.raises(TransitionRefused) as refused:
        admit(fourth, staff)

    assert refused.value.rule == "initial_rating_cap"
    assert "Provider A already has 3 model(s) in initial rating; at most 3" in refused.value.detail
    fourth.refresh_from_db()
    assert fourth.status == S.SUBMITTED and fourth.admitted_at is None
    assert LifecycleEvent.objects.count() == events_before


@pytest.mark.django_db
def test_the_cap_counts_each_provider_alone(provider_a, provider_b, staff):
    for n in range(3):
        make_model(provider_a, S.INITIAL_RATING, staff=staff, name=f"a-{n}")
    other = make_model(provider_b, S.SUBMITTED, staff=staff)
    assert admit(other, staff).model.status == S.INITIAL_RATING


@pytest.mark.django_db
def test_listing_or_withdrawing_frees_a_place(provider_a, staff):
    first = make_model(provider_a, S.INITIAL_RATING, staff=staff, votes=1000)
    second = make_model(provider_a, S.INITIAL_RATING, staff=staff)
    make_model(provider_a, S.INITIAL_RATING, staff=staff)
    waiting = make_model(provider_a, S.SUBMITTED, staff=staff)
    with pytest.raises(TransitionRefused):
        admit(waiting, staff)

    transition(model_id=first.pk, action=Action.PUBLISH, actor=staff)
    assert admit(waiting, staff).changed
    later = make_model(provider_a, S.SUBMITTED, staff=staff)
    with pytest.raises(TransitionRefused):
        admit(later, staff)
    transition(model_id=second.pk, action=Action.WITHDRAW, actor=staff, reason="done testing")
    assert admit(later, staff).changed


@pytest.mark.django_db
def test_a_model_waiting_out_its_heads_up_still_counts(provider_a, staff):
    heads_up = make_model(provider_a, S.INITIAL_RATING, staff=staff, votes=1000, heads_up_requested=True)
    make_model(provider_a, S.INITIAL_RATING, staff=staff)
    make_model(provider_a, S.INITIAL_RATING, staff=staff)
    transition(model_id=heads_up.pk, action=Action.PUBLISH, actor=staff)  # scheduled a day later
    waiting = make_model(provider_a, S.SUBMITTED, staff=staff)
    with pytest.raises(TransitionRefused):
        admit(waiting, staff)
    with time_machine.travel(clock.now() + timedelta(days=1, seconds=1)):
        carry_out_due()
        assert admit(waiting, staff).changed


@pytest.mark.django_db
def test_the_cap_is_a_setting(provider_a, staff, settings):
    settings.ARENA_INITIAL_RATING_CAP = 1
    make_model(provider_a, S.INITIAL_RATING, staff=staff)
    with pytest.raises(TransitionRefused, match="at most 1 may be tested"):
        admit(make_model(provider_a, S.SUBMITTED, staff=staff), staff)


@pytest.mark.django_db
def test_asking_again_for_an_admitted_model_is_not_refused_at_the_cap(provider_a, staff):
    models = [make_model(provider_a, S.INITIAL_RATING, staff=staff) for _ in range(3)]
    assert not admit(models[0], staff).changed


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
def test_two_admissions_at_once_cannot_both_take_the_last_place(provider_a, staff, settings):
    settings.ARENA_INITIAL_RATING_CAP = 1
    first = make_model(provider_a, S.SUBMITTED, staff=staff)
    second = make_model(provider_a, S.SUBMITTED, staff=staff)
    first_done, release = threading.Event(), threading.Event()
    results = {}

    def run(name, fn):
        try:
            results[name] = fn()
        except Exception as exc:  # handed back to the test
            results[name] = exc
        finally:
            close_old_connections()
            connection.close()

    def admit_and_hold():
        with transaction.atomic():
            admit(first, staff)
            first_done.set()
            release.wait(10)  # hold the provider's lock until the second admission is queued behind it

    one = threading.Thread(target=run, args=("first", admit_and_hold))
    one.start()
    assert first_done.wait(10)
    two = threading.Thread(target=run, args=("second", lambda: admit(second, staff)))
    two.start()
    two.join(0.5)
    assert two.is_alive(), "the second admission must wait for the provider's lock"
    release.set()
    one.join(10)
    two.join(10)

    assert not isinstance(results["first"], Exception)
    assert isinstance(results["second"], TransitionRefused) and results["second"].rule == "initial_rating_cap"
    assert ArenaModel.objects.filter(provider=provider_a, status=S.INITIAL_RATING).count() == 1
