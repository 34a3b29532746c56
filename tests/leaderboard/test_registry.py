"""/models/: every model that entered the arena, and nothing of one under codename before its delay."""

from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from arenasite import clock
from providers.lifecycle import Action, transition
from providers.models import ArenaModel

from ..conftest import make_model
from ..support.runs import publish_ratings

pytestmark = pytest.mark.django_db
S = ArenaModel.Status
DELAY = timedelta(days=30)


def page(client) -> str:
    response = client.get("/models/")
    assert response.status_code == 200
    return response.content.decode()


def secrets_of(model) -> list[str]:
    return [model.name, model.codename]


def assert_hidden(html, model):
    for secret in secrets_of(model):
        assert secret not in html


def test_a_model_in_initial_rating_is_not_public(client, provider_a, staff):
    testing = make_model(provider_a, S.INITIAL_RATING, staff=staff, name="secret-variant")
    publish_ratings({testing: 1234.0, make_model(provider_a, S.LISTED, staff=staff): 1000.0})
    html = page(client)
    assert_hidden(html, testing)
    assert "1234" not in html


def test_models_that_never_entered_the_arena_are_not_listed(client, provider_a, staff):
    hidden = [make_model(provider_a, status, staff=staff) for status in (S.DRAFT, S.SUBMITTED, S.REJECTED)]
    html = page(client)
    for model in hidden:
        assert_hidden(html, model)


def test_a_withdrawn_model_becomes_public_exactly_when_its_delay_is_over(client, provider_a, member_a, staff):
    model = make_model(provider_a, S.INITIAL_RATING, staff=staff, name="quietly-dropped")
    publish_ratings({model: 1234.0, make_model(provider_a, S.LISTED, staff=staff): 1000.0})
    transition(model_id=model.pk, action=Action.WITHDRAW, actor=member_a, reason="It lost to our other one.")
    model.refresh_from_db()

    with time_machine.travel(model.withdrawn_at + DELAY - timedelta(seconds=1), tick=False):
        html = page(client)
        assert_hidden(html, model)
        assert "1234" not in html and "It lost to our other one." not in html
    with time_machine.travel(model.withdrawn_at + DELAY, tick=False):
        html = page(client)
    for shown in [*secrets_of(model), "1234", "It lost to our other one.", "Withdrawn"]:
        assert shown in html


def test_the_delay_is_a_setting(client, provider_a, member_a, staff, settings):
    settings.ARENA_RETRACTION_DELAY_DAYS = 0
    model = make_model(provider_a, S.INITIAL_RATING, staff=staff, name="shown-at-once")
    transition(model_id=model.pk, action=Action.WITHDRAW, actor=member_a, reason="Done.")
    assert model.name in page(client)


def test_listing_one_variant_makes_the_family_public_after_the_delay(client, provider_a, provider_b, staff):
    best = make_model(provider_a, S.INITIAL_RATING, staff=staff, name="line-v2", family="line", votes=1000)
    parked = make_model(provider_a, S.INITIAL_RATING, staff=staff, name="line-v1", family="line")
    other_family = make_model(provider_a, S.INITIAL_RATING, staff=staff, name="other-v1", family="other")
    same_name_elsewhere = make_model(provider_b, S.INITIAL_RATING, staff=staff, name="b-line", family="line")
    publish_ratings({best: 1300.0, parked: 1111.0, other_family: 1050.0, same_name_elsewhere: 1060.0})
    transition(model_id=best.pk, action=Action.PUBLISH, actor=staff)
    best.refresh_from_db()

    with time_machine.travel(best.listed_at + DELAY - timedelta(seconds=1), tick=False):
        html = page(client)
        assert best.name in html  # listed: public at once, with the rating it left initial rating with
        assert "1300" in html
        for model in (parked, other_family, same_name_elsewhere):
            assert_hidden(html, model)
    with time_machine.travel(best.listed_at + DELAY, tick=False):
        html = page(client)
    # Still in initial rating, so no rating was kept yet: the current one is shown.
    assert parked.name in html and "1111" in html and "still in initial rating" in html
    for model in (other_family, same_name_elsewhere):
        assert_hidden(html, model)


def test_a_variant_admitted_after_its_family_was_listed_waits_its_own_delay(client, provider_a, staff):
    listed = make_model(provider_a, S.LISTED, staff=staff, family="line")
    listed_at = clock.now() - timedelta(days=100)
    ArenaModel.objects.filter(pk=listed.pk).update(listed_at=listed_at)
    late = make_model(provider_a, S.INITIAL_RATING, staff=staff, name="line-v9", family="line")
    assert_hidden(page(client), late)
    with time_machine.travel(late.admitted_at + DELAY, tick=False):
        assert late.name in page(client)


def test_a_retired_model_shows_its_history_and_the_rule_it_was_retired_under(client, provider_a, staff):
    model = make_model(provider_a, S.LISTED, staff=staff, name="old-timer", licence="MIT")
    ArenaModel.objects.filter(pk=model.pk).update(listed_at=clock.now() - timedelta(days=40))
    transition(model_id=model.pk, action=Action.RETIRE, actor=staff, reason="Licence revoked upstream.")
    html = page(client)
    for shown in (
        "old-timer",
        "MIT",
        "Open weights",
        "Staff decision (explained in the reason)",
        "Licence revoked upstream.",
        "publish",
        "retire",
    ):
        assert shown in html
    assert staff.username not in html  # who decided stays internal


def test_the_page_reads_in_a_constant_number_of_queries(
    client, provider_a, provider_b, staff, settings, django_assert_max_num_queries
):
    settings.ARENA_INITIAL_RATING_CAP = 100

    def add_models(n):
        for i in range(n):
            listed = make_model(provider_a, S.LISTED, staff=staff, family=f"f{ArenaModel.objects.count()}")
            dropped = make_model(provider_b, S.INITIAL_RATING, staff=staff)
            transition(model_id=dropped.pk, action=Action.WITHDRAW, actor=staff, reason=f"dropped {i}")
            testing = make_model(provider_b, S.INITIAL_RATING, staff=staff, family="b")
            publish_ratings({listed: 1000.0 + i, testing: 990.0})
        make_model(provider_b, S.LISTED, staff=staff, family="b")

    add_models(1)
    later = clock.now() + DELAY + timedelta(days=1)
    with time_machine.travel(later, tick=False), CaptureQueriesContext(connection) as few:
        page(client)
    add_models(2)
    with time_machine.travel(later, tick=False), CaptureQueriesContext(connection) as more:
        html = page(client)
    assert "still in initial rating" in html and "dropped 1" in html  # every kind of row is on the page
    assert len(more.captured_queries) == len(few.captured_queries)
    with time_machine.travel(later, tick=False), django_assert_max_num_queries(5):
        page(client)
