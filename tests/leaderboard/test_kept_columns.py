"""A run starts from the columns the run before kept in the database and re-reads only what was
written since (leaderboard/kept_columns.py); whatever changed, it rates exactly what a full
read rates, on whichever machine it runs."""

import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction

from arenasite import clock
from battles.models import Battle, BattleStyle, ExclusionReason, Vote, Winner
from leaderboard import kept_columns, services
from leaderboard.models import CountedVoteChange, KeptColumnsPart, ModelRating, RatingRun

from ..conftest import make_model
from ..support.processes import ROOT, django_environment
from .test_categories import DAY, add_vote

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the changes are noted by PostgreSQL triggers"),
    # Committed transactions, as in production: a change is "since" a run by transaction ids.
    pytest.mark.django_db(transaction=True),
]


def table(run):
    rows = ModelRating.objects.filter(run=run).values_list(
        "category", "arena_model_id", "rating", "ci_lower", "ci_upper", "sandwich_lower", "votes"
    )
    return {(category, model): rest for category, model, *rest in rows}


def recompute_and_compare():
    """A run on the kept columns, and a full read right after: the same tables to the bit."""
    kept = services.recompute(bootstrap_rounds=20, seed=3)
    full = services.recompute(bootstrap_rounds=20, seed=3, full_read=True)
    assert table(kept) == table(full)
    # The full read kept its columns too; the next run starts from them, as it would from the first.
    return kept


def parts(run):
    return [part_id for _, part_id in run.parameters["kept_columns"]["parts"]]


@pytest.fixture
def voted(provider_a):
    a, b, c = (make_model(provider_a, name=name) for name in "abc")
    for i in range(12):
        add_vote(a, b, [Winner.MODEL_A, Winner.TIE, Winner.MODEL_B][i % 3], judge=f"j{i % 4}", answers=("x " * i, "y"))
        add_vote(b, c, Winner.MODEL_A, judge="k", at=DAY + timedelta(hours=i))
        add_vote(c, a, Winner.MODEL_B, judge="m", prompt="long " * 200)
    return a, b, c


def test_the_first_run_reads_every_vote_and_the_next_only_new_ones(voted):
    a, b, _ = voted
    first = services.recompute(bootstrap_rounds=20, seed=3)
    assert first.parameters["kept_columns"]["read"] == first.parameters["kept_columns"]["rows"] == 36
    assert KeptColumnsPart.objects.filter(pk__in=parts(first)).count() == len(parts(first)) == 1
    unchanged = services.recompute(bootstrap_rounds=20, seed=3)
    assert unchanged.parameters["kept_columns"]["read"] == 0
    assert parts(unchanged) == parts(first)  # nothing written again
    assert table(unchanged) == table(first)

    add_vote(a, b, Winner.MODEL_B, judge="new")
    add_vote(b, a, Winner.MODEL_B, judge="new")
    run = recompute_and_compare()
    assert run.parameters["kept_columns"]["read"] == 2 and run.vote_count == first.vote_count + 2


def test_excluded_restored_and_deleted_votes_are_read_again(voted):
    first = services.recompute(bootstrap_rounds=20, seed=3)
    some = list(Vote.objects.order_by("id").values_list("id", flat=True)[:5])
    Vote.objects.filter(id__in=some).update(excluded_reason=ExclusionReason.FLAGGED_USER)
    run = recompute_and_compare()
    assert run.vote_count == first.vote_count - 5 and run.parameters["kept_columns"]["read"] == 0  # only taken out

    Vote.objects.filter(id__in=some[:2]).update(excluded_reason="")
    run = recompute_and_compare()
    assert run.vote_count == first.vote_count - 3 and run.parameters["kept_columns"]["read"] == 2

    Battle.objects.filter(vote__id=some[0]).delete()
    assert recompute_and_compare().vote_count == first.vote_count - 4


def another_transaction_commits() -> None:
    def commit():
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_current_xact_id()")  # takes a transaction id, then commits
        finally:
            connection.close()

    thread = threading.Thread(target=commit)
    thread.start()
    thread.join()


def test_a_change_in_the_transaction_of_the_run_before_is_read_again(voted):
    """A transaction sees its own writes in its own snapshot, whenever they were made: a run
    inside a larger transaction followed by a staff decision in the same one (as the suite's
    tests do) must still re-read what the decision changed."""
    a, b, _ = voted
    some = list(Vote.objects.order_by("id").values_list("id", flat=True)[:3])
    with transaction.atomic():
        add_vote(a, b, Winner.MODEL_A, judge="new")  # the transaction has written before its first run
        another_transaction_commits()  # so this one's id is below the snapshot's horizon, as on a busy server
        first = services.recompute(bootstrap_rounds=20, seed=3)
        Vote.objects.filter(id__in=some).update(excluded_reason=ExclusionReason.FLAGGED_USER)
        excluded = services.recompute(bootstrap_rounds=20, seed=3)
        Vote.objects.filter(id__in=some).update(excluded_reason="")
        restored = services.recompute(bootstrap_rounds=20, seed=3)
    assert excluded.vote_count == first.vote_count - 3
    # The three restored votes, and the vote this transaction wrote before the first run.
    assert restored.vote_count == first.vote_count and restored.parameters["kept_columns"]["read"] == 4
    assert table(restored) == table(first)


def test_edited_battles_and_styles_are_read_again(voted):
    first = services.recompute(bootstrap_rounds=20, seed=3)
    english = ModelRating.objects.filter(run=first, category="lang_english").count()
    battle = Battle.objects.filter(vote__isnull=False).order_by("id").first()
    Battle.objects.filter(pk=battle.pk).update(language="English", turn=3)
    battle.refresh_from_db()
    battle.conversation_a = [*battle.conversation_a, {"role": "assistant", "content": "# Title\n- a\n- b"}]
    battle.save()
    BattleStyle.store([battle])  # the style row is written again
    run = recompute_and_compare()
    assert run.parameters["kept_columns"]["read"] == 1
    assert ModelRating.objects.filter(run=run, category="lang_english").count() > english


def test_writes_to_a_battle_without_a_vote_are_not_noted(provider_a):
    a, b = make_model(provider_a, name="a"), make_model(provider_a, name="b")
    battle = Battle.objects.create(question_id="q1", model_a=a, model_b=b)
    battle.turn = 2
    battle.save()  # the battle row and its style row
    assert not CountedVoteChange.objects.exists()
    Vote.objects.create(battle=battle, model_a=a, model_b=b, winner=Winner.TIE, judge="j")
    battle.save()
    assert list(CountedVoteChange.objects.values_list("battle_id", flat=True).distinct()) == [battle.pk]


@pytest.mark.parametrize(
    "change",
    ["languages", "missing part", "too old", "large change"],
)
def test_the_kept_columns_are_not_used_when_they_cannot_be_trusted(voted, settings, change):
    first = services.recompute(bootstrap_rounds=20, seed=3)
    pointer = first.parameters["kept_columns"]
    if change == "languages":  # the language codes in the columns refer to other languages
        settings.ARENA_LANGUAGE_CATEGORIES = ["English", "Russian"]
    elif change == "missing part":
        KeptColumnsPart.objects.filter(pk__in=parts(first)).delete()
    elif change == "too old":
        taken = clock.now() - kept_columns.MAX_AGE - timedelta(minutes=1)
        RatingRun.objects.filter(pk=first.pk).update(
            parameters={**first.parameters, "kept_columns": {**pointer, "taken_at": taken.isoformat()}}
        )
    else:
        Vote.objects.filter(id__in=list(Vote.objects.values_list("id", flat=True)[:10])).update(judge="renamed")
    run = services.recompute(bootstrap_rounds=20, seed=3)
    assert run.parameters["kept_columns"]["read"] == run.parameters["kept_columns"]["rows"] == 36
    assert set(parts(run)).isdisjoint(parts(first))


def test_a_change_of_categories_alone_keeps_using_the_columns(voted, settings):
    services.recompute(bootstrap_rounds=20, seed=3)
    settings.ARENA_JUDGE_DAILY_CAP = 2
    settings.ARENA_LONG_PROMPT_CHARS = 50
    run = recompute_and_compare()
    assert run.parameters["kept_columns"]["read"] == 0


def test_parts_no_recent_run_refers_to_and_old_notes_are_pruned(voted, settings):
    settings.CELERY_TASK_TIME_LIMIT = 0  # no run can be alive: only what the latest runs use stays
    runs = []
    for _ in range(kept_columns.RUNS_KEPT + 2):
        Vote.objects.filter(pk=Vote.objects.order_by("id").values_list("id", flat=True)[0]).update(judge="again")
        runs.append(services.recompute(bootstrap_rounds=0))
    used = {part for run in runs[-kept_columns.RUNS_KEPT :] for part in parts(run)}
    assert set(KeptColumnsPart.objects.values_list("pk", flat=True)) == used
    assert len(used) == kept_columns.RUNS_KEPT  # one part each: every run changed the one part there is
    CountedVoteChange.objects.update(noted_at=clock.now() - kept_columns.NOTES_KEPT - timedelta(minutes=1))
    services.recompute(bootstrap_rounds=0)
    assert not CountedVoteChange.objects.exists()


def test_a_run_whose_columns_cannot_be_written_is_still_published(voted, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("no space left on device")

    monkeypatch.setattr(kept_columns, "write_parts", refuse)
    run = services.recompute(bootstrap_rounds=20, seed=3)
    assert run.state == RatingRun.State.PUBLISHED and run.parameters["kept_columns"] is None
    monkeypatch.undo()
    assert services.recompute(bootstrap_rounds=20, seed=3).parameters["kept_columns"]["read"] == 36


def test_only_the_parts_whose_battles_changed_are_written_again(voted, monkeypatch):
    monkeypatch.setattr(kept_columns, "PART_BATTLES", 8)
    first = services.recompute(bootstrap_rounds=20, seed=3)
    assert len(parts(first)) > 3
    oldest = Vote.objects.order_by("id").first()
    Vote.objects.filter(pk=oldest.pk).update(excluded_reason=ExclusionReason.FLAGGED_USER)
    a, b, _ = voted
    add_vote(a, b, Winner.MODEL_A, judge="new")
    run = recompute_and_compare()
    # The first part (an excluded vote) and the last (a new battle) are new; the rest are the same.
    assert set(parts(first)[1:-1]) <= set(parts(run))
    assert parts(run)[0] not in parts(first) and parts(run)[-1] not in parts(first)


# A worker on another machine: its own process, its own files, the same database.
OTHER_WORKER = """
import django
django.setup()
from leaderboard import services
run = services.recompute(bootstrap_rounds=20, seed=3)
print(run.pk)
"""


def test_a_worker_on_another_machine_starts_from_the_columns_kept_in_the_database(voted, tmp_path):
    first = services.recompute(bootstrap_rounds=20, seed=3)
    a, b, _ = voted
    add_vote(a, b, Winner.MODEL_B, judge="elsewhere")
    other = tmp_path / "other-machine"
    env = django_environment(VAR_DIR=str(other))
    done = subprocess.run(
        [sys.executable, "-c", OTHER_WORKER], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run = RatingRun.objects.get(pk=int(done.stdout.split()[-1]))
    assert run.parameters["kept_columns"]["read"] == 1 and run.vote_count == first.vote_count + 1
    full = services.recompute(bootstrap_rounds=20, seed=3, full_read=True)
    assert table(run) == table(full)


def test_new_votes_between_old_ones_are_slotted_in_battle_order(voted):
    a, b, c = voted
    waiting = Battle.objects.create(question_id="voted-late", model_a=a, model_b=c)
    add_vote(b, c, Winner.MODEL_B, judge="after")  # a later battle, voted before the first run
    services.recompute(bootstrap_rounds=20, seed=3)
    Vote.objects.create(battle=waiting, model_a=a, model_b=c, winner=Winner.TIE, judge="late")
    add_vote(b, a, Winner.MODEL_A, judge="newest")
    run = recompute_and_compare()  # the same rows in the same order as a full read
    assert run.parameters["kept_columns"]["read"] == 2
