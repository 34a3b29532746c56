"""No retraction: the rating a model leaves initial rating with is kept; provisional scores after listing."""

from datetime import timedelta

import pytest
import time_machine
from django.core.exceptions import PermissionDenied

from arenasite import clock
from battles.models import Battle, Vote, Winner
from leaderboard import selectors
from leaderboard.fairness import is_provisional, votes_after_listing
from leaderboard.models import KeptRating
from providers.lifecycle import Action, carry_out_due, transition
from providers.models import ArenaModel

from ..conftest import make_model
from ..support.runs import publish_ratings

pytestmark = pytest.mark.django_db
S = ArenaModel.Status


def votes(a, b, n, **fields):
    for _ in range(n):
        battle = Battle.objects.create(question_id=f"q{Battle.objects.count()}", model_a=a, model_b=b)
        Vote.objects.create(battle=battle, model_a=a, model_b=b, winner=Winner.MODEL_A, judge="j", **fields)


def test_listing_keeps_the_rating_of_the_latest_run_and_the_votes_so_far(provider_a, provider_b, staff):
    model = make_model(provider_a, S.INITIAL_RATING, staff=staff, votes=1000)
    rival = make_model(provider_b, S.LISTED, staff=staff)
    votes(model, rival, 3)
    votes(rival, model, 2)
    votes(model, rival, 4, excluded_reason="rate_limited")  # not counted
    publish_ratings({model: (1111.0, 5), rival: 1000.0}, published_at=clock.now() - timedelta(hours=2))
    latest = publish_ratings({model: (1123.0, 5), rival: 1000.0})

    transition(model_id=model.pk, action=Action.PUBLISH, actor=staff)

    kept = KeptRating.objects.get(arena_model=model)
    assert (kept.left_to, kept.run, kept.rating, kept.ci_lower, kept.ci_upper) == (S.LISTED, latest, 1123, 1113, 1133)
    assert (kept.rated_votes, kept.votes_before) == (5, 5)


def test_withdrawal_keeps_the_rating_and_cannot_erase_it(provider_a, member_a, staff):
    model = make_model(provider_a, S.INITIAL_RATING, staff=staff)
    publish_ratings({model: 987.0, make_model(provider_a, S.LISTED, staff=staff): 1000.0})

    transition(model_id=model.pk, action=Action.WITHDRAW, actor=member_a, reason="Not good enough.")

    kept = KeptRating.objects.get(arena_model=model)
    assert (kept.left_to, kept.rating) == (S.WITHDRAWN, 987.0)
    with pytest.raises(PermissionDenied):
        kept.delete()
    with pytest.raises(PermissionDenied):
        KeptRating.objects.filter(arena_model=model).delete()
    with pytest.raises(PermissionDenied):
        KeptRating.objects.filter(arena_model=model).update(rating=2000)
    kept.rating = 2000
    with pytest.raises(PermissionDenied):
        kept.save()


def test_a_model_never_rated_is_kept_as_not_rated(provider_a, member_a, staff):
    model = make_model(provider_a, S.INITIAL_RATING, staff=staff)
    transition(model_id=model.pk, action=Action.WITHDRAW, actor=member_a, reason="Changed our mind.")
    kept = KeptRating.objects.get(arena_model=model)
    assert kept.rating is None and kept.run is None and kept.votes_before == 0


def test_a_listing_waiting_out_the_heads_up_keeps_the_rating_when_it_happens(provider_a, staff):
    model = make_model(provider_a, S.INITIAL_RATING, staff=staff, votes=1000, heads_up_requested=True)
    publish_ratings({model: 1000.0, make_model(provider_a, S.LISTED, staff=staff): 990.0})
    transition(model_id=model.pk, action=Action.PUBLISH, actor=staff)
    assert not KeptRating.objects.filter(arena_model=model).exists()  # only scheduled

    later = clock.now() + timedelta(days=1)
    with time_machine.travel(later, tick=False):
        publish_ratings({model: 1050.0})
        carry_out_due()
    kept = KeptRating.objects.get(arena_model=model)
    assert (kept.left_at, kept.rating) == (later, 1050.0)


def test_models_that_never_were_in_initial_rating_keep_nothing(provider_a, staff):
    model = make_model(provider_a, S.SUBMITTED, staff=staff)
    transition(model_id=model.pk, action=Action.REJECT, actor=staff, reason="Private.")
    assert not KeptRating.objects.exists()


@pytest.mark.parametrize(("after_listing", "provisional"), [(0, True), (1999, True), (2000, False), (2500, False)])
def test_a_listed_score_is_provisional_until_enough_votes_after_listing(provider_a, staff, after_listing, provisional):
    model = make_model(provider_a, S.INITIAL_RATING, staff=staff, votes=1000)
    other = make_model(provider_a, S.LISTED, staff=staff)
    votes(model, other, 7)  # counted before listing
    transition(model_id=model.pk, action=Action.PUBLISH, actor=staff)
    # The rating runs keep votes_counted current; 7 of them were cast before listing.
    ArenaModel.objects.filter(pk=model.pk).update(votes_counted=7 + after_listing)
    run = publish_ratings({model: 1000.0, other: 990.0})

    model = ArenaModel.objects.select_related("kept_rating").get(pk=model.pk)
    assert votes_after_listing(model) == after_listing
    assert is_provisional(model) is provisional
    row = next(row for row in selectors.board(run) if row["model_id"] == model.pk)
    assert row["provisional"] is provisional


def test_the_threshold_is_a_setting(provider_a, staff, settings):
    settings.ARENA_PROVISIONAL_VOTES = 10
    model = make_model(provider_a, S.LISTED, staff=staff)
    ArenaModel.objects.filter(pk=model.pk).update(votes_counted=10)
    assert not is_provisional(ArenaModel.objects.get(pk=model.pk))


def test_the_leaderboard_marks_provisional_scores(client, provider_a, staff):
    firm = make_model(provider_a, S.LISTED, staff=staff, name="firm")
    fresh = make_model(provider_a, S.LISTED, staff=staff, name="fresh")
    ArenaModel.objects.filter(pk=firm.pk).update(votes_counted=5000)
    publish_ratings({firm: 1100.0, fresh: 1000.0})
    html = client.get("/leaderboard/").content.decode()
    assert html.count("(provisional)") == 1
    assert html.index("fresh") < html.index("(provisional)")
