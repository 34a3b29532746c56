import pytest

from battles.models import Battle, Vote, Winner
from battles.release_pool import in_release_pool
from providers.models import ArenaModel

from ..conftest import make_model


def test_the_assignment_is_deterministic_and_keyed():
    ids = [f"q{i}" for i in range(2000)]
    first = [in_release_pool(q, salt="s1", fraction=0.2) for q in ids]
    assert first == [in_release_pool(q, salt="s1", fraction=0.2) for q in ids]
    assert first != [in_release_pool(q, salt="s2", fraction=0.2) for q in ids]


def test_about_a_fifth_of_battles_land_in_the_pool():
    share = sum(in_release_pool(f"q{i}", salt="s", fraction=0.2) for i in range(20000)) / 20000
    assert 0.19 < share < 0.21  # binomial sd is 0.0028: this is a 3.5-sigma band


@pytest.mark.django_db
def test_a_battle_is_assigned_once_at_creation(provider_a, settings):
    a = make_model(provider_a, ArenaModel.Status.LISTED)
    b = make_model(provider_a, ArenaModel.Status.LISTED)
    battles = [Battle.objects.create(question_id=f"q{i}", model_a=a, model_b=b) for i in range(200)]
    assigned = [battle.in_release_pool for battle in battles]
    assert assigned == [Battle.pool_for(f"q{i}") for i in range(200)]
    assert 0 < sum(assigned) < 200
    settings.RELEASE_POOL_FRACTION = 1.0
    for battle in battles:
        battle.save()
    assert [Battle.objects.get(pk=b.pk).in_release_pool for b in battles] == assigned


@pytest.mark.django_db
def test_a_battle_has_at_most_one_vote(provider_a):
    from django.db import IntegrityError, transaction

    a = make_model(provider_a, ArenaModel.Status.LISTED)
    b = make_model(provider_a, ArenaModel.Status.LISTED)
    battle = Battle.objects.create(question_id="q", model_a=a, model_b=b)
    Vote.objects.create(battle=battle, model_a=a, model_b=b, winner=Winner.TIE, judge="j")
    with pytest.raises(IntegrityError), transaction.atomic():
        Vote.objects.create(battle=battle, model_a=a, model_b=b, winner=Winner.MODEL_A, judge="j")
