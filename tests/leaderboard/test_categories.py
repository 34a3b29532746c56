"""The categories of a run beyond the plain subsets, the online Elo column and the pair counts."""

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from django.db import connection

from battles.models import Battle, BattleStyle, Vote, Winner
from leaderboard import counting, postgres_votes, services, votes
from leaderboard.models import ModelRating, PairCounts
from ratings_engine.elo import online_elo

from ..conftest import make_model
from .test_recompute import arena, vote  # noqa: F401  (arena is a fixture)

pytestmark = pytest.mark.django_db
DAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def add_vote(a, b, winner, *, judge="j", at=DAY, prompt="", answers=("", "")):
    number = Battle.objects.count()

    def conversation(answer):
        user = [{"role": "user", "content": prompt or f"prompt {number}"}]
        return user + ([{"role": "assistant", "content": answer}] if answer else [])

    battle = Battle.objects.create(
        question_id=f"x{number:05d}",
        model_a=a,
        model_b=b,
        created_at=at,
        conversation_a=conversation(answers[0]),
        conversation_b=conversation(answers[1]),
    )
    BattleStyle.store([battle], inserted=True)  # as the answer loop does when a turn closes
    return Vote.objects.create(battle=battle, model_a=a, model_b=b, winner=winner, judge=judge, created_at=at)


def votes_in(run, category):
    return dict(ModelRating.objects.filter(run=run, category=category).values_list("arena_model__name", "votes"))


def test_a_heavy_voter_counts_at_most_the_cap_per_day(settings, provider_a):
    settings.ARENA_JUDGE_DAILY_CAP = 3
    a, b = make_model(provider_a, name="a"), make_model(provider_a, name="b")
    for i in range(10):  # one voter, ten votes on the first day ...
        add_vote(a, b, Winner.MODEL_A, judge="heavy", at=DAY + timedelta(minutes=i))
    for i in range(2):  # ... two the next day, and two other voters
        add_vote(a, b, Winner.MODEL_B, judge="heavy", at=DAY + timedelta(days=1, minutes=i))
    add_vote(a, b, Winner.MODEL_B, judge="other")
    add_vote(a, b, Winner.TIE, judge="third")
    run = services.recompute(bootstrap_rounds=0)
    assert votes_in(run, "overall") == {"a": 14, "b": 14}
    assert votes_in(run, "per_voter_cap") == {"a": 3 + 2 + 2, "b": 7}
    assert run.parameters["per_voter_daily_cap"] == 3


def test_no_cap_category_when_the_cap_is_zero(settings, arena):  # noqa: F811
    settings.ARENA_JUDGE_DAILY_CAP = 0
    run = services.recompute(bootstrap_rounds=0)
    assert "per_voter_cap" not in set(run.ratings.values_list("category", flat=True))


def test_flooded_prompts_are_down_sampled_on_request(settings, provider_a):
    settings.ARENA_DEDUP_PERCENTILE = 50
    settings.ARENA_DEDUP_EVERY_CATEGORY = False  # the category on its own (test_dedup.py: in every category)
    a, b, c = (make_model(provider_a, name=name) for name in "abc")
    for i in range(12):  # the same prompt twelve times, in different spellings
        add_vote(a, b, Winner.MODEL_A, prompt="What is  the answer?" if i % 2 else "what is the answer?")
    for i in range(6):  # six prompts asked twice each
        add_vote(b, c, Winner.MODEL_A, prompt=f"unique {i}")
        add_vote(a, c, Winner.MODEL_B, prompt=f"unique {i}")
    add_vote(a, c, Winner.TIE)
    plain = services.recompute(bootstrap_rounds=0)
    assert "deduplicated" not in set(plain.ratings.values_list("category", flat=True))
    run = services.recompute(bootstrap_rounds=0, dedup=True)
    # Prompt counts: 12, six of 2, one of 1 -> the median is 2, so the flooded prompt keeps 2 votes.
    assert votes_in(run, "overall") == {"a": 12 + 6 + 1, "b": 12 + 6, "c": 13}
    assert votes_in(run, "deduplicated") == {"a": 2 + 6 + 1, "b": 2 + 6, "c": 13}


def test_style_control_is_rated_from_the_battles_that_carry_answers(provider_a):
    a, b, c = (make_model(provider_a, name=name) for name in "abc")
    long, short = "word " * 80, "word"
    for i in range(30):
        add_vote(a, b, [Winner.MODEL_A, Winner.MODEL_B][i % 3 == 0], answers=(long, short))
        add_vote(b, c, [Winner.MODEL_A, Winner.MODEL_B][i % 2], answers=(short, long))
        add_vote(c, a, Winner.TIE, answers=(long, long))
    add_vote(a, c, Winner.MODEL_A)  # no answer text: in the plain categories only
    run = services.recompute(bootstrap_rounds=0)
    assert votes_in(run, "style_control") == {"a": 60, "b": 60, "c": 60}
    assert votes_in(run, "overall")["a"] == 61
    coefficients = run.parameters["style_coefficients"]["style_control"]
    assert set(coefficients) == {"tokens"}


def test_no_style_category_without_answer_text(arena):  # noqa: F811
    run = services.recompute(bootstrap_rounds=0)
    assert "style_control" not in set(run.ratings.values_list("category", flat=True))


def test_online_elo_continues_across_runs_and_matches_one_pass(settings, provider_a):
    a, b, c = (make_model(provider_a, name=name) for name in "abc")
    outcomes = [Winner.MODEL_A, Winner.TIE, Winner.MODEL_B, Winner.MODEL_A, Winner.TIE_BOTHBAD]
    for i in range(20):
        add_vote([a, b, c][i % 3], [b, c, a][i % 3], outcomes[i % 5], at=DAY + timedelta(minutes=i))
    services.recompute(bootstrap_rounds=0)
    for i in range(20, 35):
        add_vote([a, b, c][i % 3], [c, a, b][i % 3], outcomes[i % 4], at=DAY + timedelta(minutes=i))
    run = services.recompute(bootstrap_rounds=0)

    ordered = Vote.objects.order_by("created_at", "id").values_list("model_a__name", "model_b__name", "winner")
    expected = online_elo(pd.DataFrame(list(ordered), columns=["model_a", "model_b", "winner"]))
    stored = dict(
        ModelRating.objects.filter(run=run, category="overall").values_list("arena_model__name", "online_elo")
    )
    assert stored == pytest.approx(expected.to_dict(), abs=1e-9)
    assert run.online_elo_state["last_vote_id"] == Vote.objects.latest("id").pk
    assert not ModelRating.objects.filter(run=run).exclude(category="overall").exclude(online_elo=None).exists()

    # A change of K starts again from the first vote.
    settings.ARENA_ONLINE_ELO_K = 32
    spread = lambda run: max(run.online_elo_state["ratings"].values()) - min(run.online_elo_state["ratings"].values())  # noqa: E731
    assert spread(services.recompute(bootstrap_rounds=0)) > 3 * spread(run)


def test_a_run_keeps_the_pair_counts_behind_each_category(arena):  # noqa: F811
    run = services.recompute(bootstrap_rounds=0)
    strong, middle, weak = arena["strong"].pk, arena["middle"].pk, arena["weak"].pk
    rows = {
        (low, high): (lw, hw, t) for low, high, lw, hw, t in PairCounts.objects.get(run=run, category="overall").counts
    }
    # strong v middle: 30-10; middle v weak: 30 + 10 tie, and weak beat middle 10 times as model_a.
    assert rows[tuple(sorted((strong, middle)))] == ((30, 10, 0) if strong < middle else (10, 30, 0))
    low_is_middle = middle < weak
    assert rows[tuple(sorted((middle, weak)))] == ((30, 10, 10) if low_is_middle else (10, 30, 10))
    assert set(PairCounts.objects.filter(run=run).values_list("category", flat=True)) == set(
        run.ratings.values_list("category", flat=True)
    )


def test_the_command_adds_the_deduplicated_category_and_replays_elo_on_request(arena):  # noqa: F811
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("recompute_ratings", "--bootstrap", "0", "--dedup", "--rebuild-elo", stdout=out)
    assert "deduplicated:" in out.getvalue()


def test_the_page_names_categories_and_shows_online_elo(arena, client):  # noqa: F811
    services.recompute(bootstrap_rounds=0)
    page = client.get("/leaderboard/").content.decode()
    assert "Online Elo" in page and ">English</option>" in page and ">Overall</option>" in page
    assert "Online Elo" not in client.get("/leaderboard/?category=lang_english").content.decode()
    row = client.get("/api/v1/leaderboard/").json()["results"][0]
    assert row["online_elo"] is not None


def test_voters_whose_keys_collide_are_still_capped_apart(settings, provider_a):
    # On PostgreSQL the voter key is a 32-bit hash: two voters may share it. Groups over the cap
    # by key are only candidates, ranked again by the real voter, so neither loses a vote to it.
    a, b = make_model(provider_a, name="a"), make_model(provider_a, name="b")
    for i in range(5):
        add_vote(a, b, Winner.MODEL_A, judge="heavy", at=DAY + timedelta(minutes=i))
    for judge in ("light", "other"):
        for i in range(2):
            add_vote(a, b, Winner.MODEL_B, judge=judge, at=DAY + timedelta(minutes=10 + i))
    columns = votes.VoteColumns(votes.read_columns(everything()), ())
    expected = counting.over_daily_cap_mask(columns, cap=3)
    columns.arrays["judge_key"] = columns["judge_key"] * 0  # every voter on one key
    collided = counting.over_daily_cap_mask(columns, cap=3)
    assert (collided == expected).all()
    over = set(columns["id"][collided].tolist())
    assert over == set(Vote.objects.filter(judge="heavy").order_by("id").values_list("id", flat=True)[3:])


def everything(languages=("English", "Chinese")) -> votes.Selection:
    return votes.Selection(Vote.objects.order_by("-id").values_list("id", flat=True)[0], languages)


@pytest.fixture
def mixed_votes(provider_a):
    a, b, c = (make_model(provider_a, name=name) for name in "abc")
    for i in range(40):
        add_vote(a, b, [Winner.MODEL_A, Winner.TIE][i % 2], judge=f"j{i % 3}", answers=("word " * (i + 1), "word"))
        add_vote(c, a, Winner.MODEL_B, judge="j9", at=DAY + timedelta(days=i % 2))
    first = list(Battle.objects.order_by("id").values_list("id", flat=True)[:20])
    Battle.objects.filter(pk__in=first[:10]).update(turn=3, language="Chinese")
    Battle.objects.filter(pk__in=first[5:15]).update(prompt_chars=2**31 - 1)  # the largest there can be


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the parallel read is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_the_votes_read_on_two_connections_are_the_votes_read_on_one(monkeypatch, mixed_votes):
    one = votes.read_columns(everything())
    monkeypatch.setattr(postgres_votes, "PARALLEL_READ_VOTES", 1)
    two = votes.read_columns(everything())
    assert set(one) == set(two) == set(votes.VOTE_COLUMNS) and len(one["id"]) == 80
    for name in one:
        assert (one[name] == two[name]).all(), name
    assert one["has_style"].sum() == 40  # the votes with answers


@pytest.mark.skipif(connection.vendor != "postgresql", reason="compares PostgreSQL's fast path with the rows")
def test_the_fast_path_reads_what_the_orm_reads(mixed_votes):
    fast = votes.read_columns(everything())
    rows = votes._columns_from_rows(everything())
    for name in votes.VOTE_COLUMNS:
        if name == "judge_key":  # a hash on one side, a number per voter on the other: the same groups
            assert (pd.factorize(fast[name])[0] == pd.factorize(rows[name])[0]).all()
        else:
            assert (fast[name] == rows[name]).all(), name
    assert (fast["language"] == 2).sum() == 10 and (fast["turn"] == 3).sum() == 10
    assert (fast["prompt_chars"] == 2**31 - 1).sum() == 10
