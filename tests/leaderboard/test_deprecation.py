"""Retirement candidates by the same rules for every access kind, and retirements that record their rule."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages

from arenasite import clock
from leaderboard.fairness import percentile_rule, retirement_candidates
from providers.lifecycle import Action, TransitionRefused, transition
from providers.models import ArenaModel, LifecycleEvent, RetirementRule

from ..conftest import make_model
from ..support.runs import publish_ratings

pytestmark = pytest.mark.django_db
S = ArenaModel.Status
OPEN, API = ArenaModel.AccessKind.OPEN_WEIGHTS, ArenaModel.AccessKind.PUBLIC_API


def listed(provider, staff, *, kind=OPEN, days_ago=30, **fields):
    model = make_model(provider, S.LISTED, staff=staff, access_kind=kind, **fields)
    ArenaModel.objects.filter(pk=model.pk).update(listed_at=clock.now() - timedelta(days=days_ago))
    model.refresh_from_db()
    return model


@pytest.fixture
def open_class(provider_a, staff):
    """Five open-weights models 1000..1400 with enough votes: the 10th percentile is 1040."""
    return [listed(provider_a, staff, name=f"open-{r}") for r in (1000, 1100, 1200, 1300, 1400)]


def rate(models, ratings, votes=3000, extra=None):
    return publish_ratings({**{m: (r, votes) for m, r in zip(models, ratings, strict=True)}, **(extra or {})})


def test_a_model_below_the_percentile_of_its_access_kind_is_a_candidate(open_class):
    run = rate(open_class, [1000, 1100, 1200, 1300, 1400])
    thresholds, candidates = percentile_rule(run)
    assert thresholds[OPEN].threshold == pytest.approx(1040) and thresholds[OPEN].models == 5
    assert set(candidates) == {open_class[0].pk}
    assert "below 10th percentile 1040 of the 5 listed open weights models" in candidates[open_class[0].pk].evidence(
        run
    )


def test_a_model_at_the_threshold_is_not_below_it(open_class, settings):
    settings.ARENA_RETIRE_PERCENTILE = 25  # 1100 exactly
    _, candidates = percentile_rule(rate(open_class, [1000, 1100, 1200, 1300, 1400]))
    assert set(candidates) == {open_class[0].pk}


@pytest.mark.parametrize(("votes", "candidate"), [(2999, False), (3000, True)])
def test_the_rule_applies_from_the_minimum_number_of_votes(open_class, provider_b, staff, votes, candidate):
    weak = listed(provider_b, staff, name="weak")
    _, candidates = percentile_rule(rate(open_class, [1000, 1100, 1200, 1300, 1400], extra={weak: (900.0, votes)}))
    assert (weak.pk in candidates) is candidate


def test_each_access_kind_is_compared_with_its_own_class_by_the_same_rule(open_class, provider_b, staff):
    apis = [listed(provider_b, staff, kind=API, name=f"api-{r}") for r in (1500, 1600, 1700)]
    run = rate([*open_class, *apis], [1000, 1100, 1200, 1300, 1400, 1500, 1600, 1700])
    thresholds, candidates = percentile_rule(run)
    # 1500 is below every open-weights model's rating but it is compared with the other APIs only.
    assert thresholds[API].threshold == pytest.approx(1520)
    assert set(candidates) == {open_class[0].pk, apis[0].pk}


def test_a_class_of_one_has_no_one_below_it(provider_a, staff):
    alone = listed(provider_a, staff, kind=API)
    thresholds, candidates = percentile_rule(rate([alone], [800]))
    assert thresholds[API].threshold is None and not candidates


@pytest.mark.parametrize(("days_ago", "candidate"), [(13, False), (14, True)])
def test_a_model_inside_its_listing_window_is_not_a_candidate(open_class, provider_b, staff, days_ago, candidate):
    new = listed(provider_b, staff, days_ago=days_ago, name="new")
    _, candidates = percentile_rule(rate(open_class, [1000, 1100, 1200, 1300, 1400], extra={new: (900.0, 3000)}))
    assert (new.pk in candidates) is candidate


def test_retiring_below_the_percentile_is_checked_and_recorded(open_class, staff):
    rate(open_class, [1000, 1100, 1200, 1300, 1400])
    with pytest.raises(TransitionRefused) as refused:
        transition(
            model_id=open_class[1].pk,
            action=Action.RETIRE,
            actor=staff,
            reason="Weak.",
            rule=RetirementRule.BELOW_PERCENTILE,
        )
    assert refused.value.rule == "rule_not_met"
    transition(
        model_id=open_class[0].pk,
        action=Action.RETIRE,
        actor=staff,
        reason="Weak.",
        rule=RetirementRule.BELOW_PERCENTILE,
    )
    event = open_class[0].events.get(to_status=S.RETIRED)
    assert event.rule == RetirementRule.BELOW_PERCENTILE


def test_offline_candidates_are_listed_with_the_rating_ones(open_class, provider_b, staff):
    offline = listed(provider_b, staff, name="gone", kind=API)
    ArenaModel.objects.filter(pk=offline.pk).update(
        endpoint_offline_since=clock.now() - timedelta(days=20),
        retirement_candidate_since=clock.now(),
        endpoint_last_error="HTTP 503",
    )
    rate(open_class, [1000, 1100, 1200, 1300, 1400])
    found = retirement_candidates()
    assert found[offline.pk][0] == RetirementRule.OFFLINE and "HTTP 503" in found[offline.pk][1]
    assert found[open_class[0].pk][0] == RetirementRule.BELOW_PERCENTILE
    assert len(found) == 2


def test_staff_see_the_candidates_in_admin_and_retire_them_under_their_rule(client, open_class, staff):
    staff.user_permissions.add(Permission.objects.get(codename="view_arenamodel"))
    client.force_login(staff)
    rate(open_class, [1000, 1100, 1200, 1300, 1400])
    url = "/admin/leaderboard/retirementcandidate/"
    html = client.get(url).content.decode()
    assert "open-1000" in html and "open-1100" not in html and "below 10th percentile" in html

    response = client.post(url, {"action": "retire_under_rule", "_selected_action": [open_class[0].pk]})
    assert response.status_code == 302, [str(m) for m in get_messages(response.wsgi_request)]
    event = LifecycleEvent.objects.get(arena_model=open_class[0], to_status=S.RETIRED)
    assert event.rule == RetirementRule.BELOW_PERCENTILE and "below 10th percentile" in event.reason
    assert "open-1000" not in client.get(url).content.decode()  # retired: no longer a candidate
