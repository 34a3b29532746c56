"""The incremental anomalous-voter test decides as the test on every vote does: seeded
histories grow, staff decide, votes are excluded, moved and deleted, and after each step the
kept state's evidence for every voter is compared with integrity.sequential_test on every
vote. Also the scope setting (imported votes tested or not) and the fall-backs to a full run."""

from __future__ import annotations

import itertools
import math
from datetime import timedelta

import numpy as np
import pytest
from django.db import connection
from django.test import override_settings

from arenasite import clock
from battles import anomaly_detection, anomaly_review, anomaly_state, anomaly_votes, integrity
from battles.models import Battle, FlaggedVoter, Vote
from leaderboard.tasks import recompute_ratings
from providers.models import ArenaModel

from ..conftest import make_model

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the state is kept on PostgreSQL only"),
]

_ids = itertools.count()
START = clock.now() - timedelta(days=30)
WINNERS = ["model_b", "tie", "model_a"]  # by level, from model_a's side


@pytest.fixture
def models(provider_a):
    return [make_model(provider_a, ArenaModel.Status.LISTED, name=f"model-{k}", is_demo=True) for k in range(4)]


class History:
    """Votes written straight to the tables, as imports and the arena store them."""

    def __init__(self, models, seed: int):
        self.models = models
        self.rng = np.random.default_rng(seed)
        self.strength = np.array([1.2, 0.5, 0.0, -0.6])
        self.minute = 0

    def votes(self, judge: str, n: int, *, address: str = "", style: str = "honest", source: str = "arena"):
        battles, votes = [], []
        for _ in range(n):
            i, j = self.rng.choice(len(self.models), size=2, replace=False)
            if style == "contrarian":  # the weaker model wins, whichever side it is on
                level = 2 if self.strength[i] < self.strength[j] else 0
            else:
                p = 1 / (1 + math.exp(self.strength[j] - self.strength[i]))
                level = 1 if self.rng.random() < 0.25 else (2 if self.rng.random() < p else 0)
            a, b = self.models[i], self.models[j]
            self.minute += int(self.rng.integers(0, 2))  # some votes share a moment: the id orders them
            battle = Battle(question_id=f"inc{next(_ids)}", model_a=a, model_b=b, judge=judge, source=source)
            battles.append(battle)
            votes.append(
                Vote(
                    battle=battle,
                    model_a=a,
                    model_b=b,
                    winner=WINNERS[level],
                    judge=judge,
                    address=address,
                    created_at=START + timedelta(minutes=self.minute),
                )
            )
        Battle.objects.bulk_create(battles)
        Vote.objects.bulk_create(votes)

    def population(self, prefix: str, voters: int, *, low: int = 5, high: int = 130):
        for k in range(voters):
            self.votes(f"{prefix}{k}", int(self.rng.integers(low, high)))

    def sessions(self, prefix: str, address: str, count: int, *, style: str = "honest"):
        """Sessions of one to three votes from one address: too short to test alone."""
        for k in range(count):
            self.votes(f"{prefix}{k}", int(self.rng.integers(1, 4)), address=address, style=style)


def reference() -> dict[str, tuple[int, float, float]]:
    """Every tested voter's (votes, log_up, log_down) from the test on every vote."""
    voters, model_a, model_b, level, counted = anomaly_detection._read_votes()
    if not len(voters):
        return {}
    codes, labels = integrity.codes(voters)
    result = integrity.sequential_test(
        codes, model_a, model_b, level, population=counted, alpha=0.5, min_votes=5, max_votes=100
    )
    return {
        str(labels[c]): (int(n), float(up), float(down))
        for c, n, up, down in zip(result.voters, result.votes, result.log_up, result.log_down, strict=True)
    }


def assert_same_as_full_test(*, incremental: bool = True) -> dict[str, tuple[int, float, float]]:
    found, was_incremental, _ = anomaly_detection._evidence(full=False)
    assert was_incremental == incremental
    kept = {
        str(label): (int(n), float(up), float(down))
        for label, n, up, down in zip(found.labels, found.votes, found.log_up, found.log_down, strict=True)
    }
    expected = reference()
    assert sorted(kept) == sorted(expected)
    for label, (votes, up, down) in expected.items():
        assert kept[label][0] == votes, label
        assert kept[label][1] == pytest.approx(up, abs=1e-9), label
        assert kept[label][2] == pytest.approx(down, abs=1e-9), label
    return kept


def flagged_rows(report) -> list[tuple]:
    return [(r.judge, r.votes, float(f"{r.statistic:.9g}"), r.direction, r.state) for r in report.flagged]


def assert_report_is_the_full_reports(report) -> None:
    """The run's report is the one a run on every vote gives. (A run that excluded votes has
    changed the population since: the next run, which excludes nothing more, is compared.)"""
    while report.votes_excluded:
        report = anomaly_detection.detect_anomalous_voters()
    assert report.incremental
    again = anomaly_detection.detect_anomalous_voters(full=True)
    assert not again.incremental
    assert flagged_rows(report) == flagged_rows(again)
    assert report.tested == again.tested


@pytest.fixture
def history(models):
    h = History(models, seed=7)
    h.population("honest-", 40)
    h.votes("heavy-0", 160)
    h.votes("heavy-1", 120)
    h.votes("contrarian-0", 12, style="contrarian")
    h.votes("contrarian-1", 40, style="contrarian")
    h.sessions("script-", "a" * 32, 12, style="contrarian")
    h.sessions("household-", "b" * 32, 5)
    h.votes("no-address", 3)
    return h


def test_the_first_run_reads_every_vote_and_the_next_only_the_new_ones(history):
    first = anomaly_detection.detect_anomalous_voters()
    assert not first.incremental
    assert first.votes_read == anomaly_votes.tested_votes().count()
    assert {"contrarian-1", "address:" + "a" * 32} <= {r.judge for r in first.flagged}
    # The next run reads the notes of the votes the first one excluded; then there is nothing.
    assert anomaly_detection.detect_anomalous_voters().incremental
    nothing = anomaly_detection.detect_anomalous_voters()
    assert nothing.incremental and nothing.votes_read == 0
    assert {r.judge for r in nothing.flagged} == {r.judge for r in first.flagged}
    history.votes("honest-3", 4)
    some = anomaly_detection.detect_anomalous_voters()
    assert some.incremental
    assert some.votes_read < 150  # the four notes and that voter's own votes, not all of them
    assert_report_is_the_full_reports(some)


def test_growing_histories_decide_as_the_full_test(history):
    anomaly_detection.detect_anomalous_voters()
    assert_same_as_full_test()
    for step in range(4):
        history.population(f"late-{step}-", 6, low=1, high=20)  # new voters, some too short to test
        for k in range(0, 40, 3):
            history.votes(f"honest-{k}", int(history.rng.integers(1, 15)))  # some past their 100th vote
        history.votes("heavy-0", 30)  # after its first 100: counted in place, not read again
        history.votes("contrarian-0", 3, style="contrarian")
        history.sessions(f"script-{step}-", "a" * 32, 3, style="contrarian")
        history.sessions(f"visit-{step}-", "c" * 32, 2)
        history.votes("household-0", 5)  # a short session reaching the minimum leaves its address
        assert_same_as_full_test()
        report = anomaly_detection.detect_anomalous_voters()
        assert report.incremental
    assert_report_is_the_full_reports(report)


def test_staff_decisions_and_exclusions_decide_as_the_full_test(history, staff):
    anomaly_detection.detect_anomalous_voters()
    flagged = {v.judge: v for v in FlaggedVoter.objects.all()}
    assert "contrarian-1" in flagged
    anomaly_review.flagged_voter_decide(
        voter_id=flagged["contrarian-1"].pk, decision="clear", actor=staff, reason="a taste, not a script"
    )
    assert_same_as_full_test()  # its votes count again, in the pairs' counts too
    address = flagged["address:" + "a" * 32]
    anomaly_review.flagged_voter_decide(voter_id=address.pk, decision="ban", actor=staff, reason="one script")
    history.votes("contrarian-1", 20, style="contrarian")
    history.sessions("script-late-", "a" * 32, 4, style="contrarian")
    report = anomaly_detection.detect_anomalous_voters()
    assert report.incremental
    assert "contrarian-1" not in {r.judge for r in report.flagged}  # cleared: never flagged again
    assert_same_as_full_test()
    # Old votes excluded for another reason leave the test; lifted ones come back.
    old = list(Vote.objects.filter(judge__in=["honest-1", "heavy-1"]).order_by("id").values_list("pk", flat=True)[:8])
    Vote.objects.filter(pk__in=old).update(excluded_reason="identity_revealed")
    assert_same_as_full_test()
    Vote.objects.filter(pk__in=old[:3]).update(excluded_reason="")
    assert_same_as_full_test()
    anomaly_review.flagged_voter_decide(
        voter_id=flagged["contrarian-1"].pk, decision="confirm", actor=staff, reason="no"
    )
    report = anomaly_detection.detect_anomalous_voters()
    assert report.incremental
    assert_report_is_the_full_reports(report)


def test_votes_moved_or_deleted_decide_as_the_full_test(history):
    anomaly_detection.detect_anomalous_voters()
    # A session's votes turn out to come from the script's address; a voter's battles are deleted.
    Vote.objects.filter(judge__startswith="household-").update(address="a" * 32)
    assert_same_as_full_test()
    Battle.objects.filter(pk__in=Vote.objects.filter(judge="honest-2").values("battle_id")).delete()
    Battle.objects.filter(pk__in=Vote.objects.filter(judge="heavy-0").order_by("id").values("battle_id")[:5]).delete()
    assert_same_as_full_test()
    Vote.objects.filter(judge="honest-4").update(judge="honest-5")  # two sessions found to be one account
    assert_same_as_full_test()


def test_a_voter_who_cast_nothing_new_can_still_cross_as_the_population_moves(models):
    """The reason every voter's evidence is computed again: a voter's p-values are against the
    population as it is now, so new votes of others move the evidence of one who cast none."""
    h = History(models, seed=3)
    h.population("honest-", 15, low=20, high=40)
    h.votes("quiet", 30, style="contrarian")
    anomaly_detection.detect_anomalous_voters()
    before = assert_same_as_full_test()["quiet"]
    h.population("later-", 30, low=20, high=40)
    after = assert_same_as_full_test()["quiet"]
    assert after[1:] != before[1:]


def test_a_missing_or_unreadable_state_falls_back_to_a_full_run(history):
    anomaly_detection.detect_anomalous_voters()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE battles_anomalyteststate SET data = 'not arrays'::bytea")
    history.votes("honest-0", 3)
    assert_same_as_full_test(incremental=False)
    assert_same_as_full_test()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM battles_anomalyteststate")
    history.votes("honest-0", 3)  # not noted: there is no state
    assert_same_as_full_test(incremental=False)
    # Counts that disagree with the votes are found out too.
    with connection.cursor() as cursor:
        cursor.execute("SELECT data FROM battles_anomalyteststate")
        state = anomaly_state.loads(bytes(cursor.fetchone()[0]))
        state.pair_counts[:] = 0
        cursor.execute("UPDATE battles_anomalyteststate SET data = %s", [anomaly_state.dumps(state)])
    history.votes("honest-0", 3)
    assert_same_as_full_test(incremental=False)


def test_with_detection_off_the_state_is_dropped_and_no_notes_are_kept(history):
    anomaly_detection.detect_anomalous_voters()
    with override_settings(ARENA_ANOMALY_DETECTION=False):
        recompute_ratings()
    history.votes("honest-0", 3)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM battles_anomalyteststate")
        assert cursor.fetchone()[0] == 0
        cursor.execute("SELECT count(*) FROM battles_anomalyvotenote")
        assert cursor.fetchone()[0] == 0
    assert not anomaly_detection.detect_anomalous_voters().incremental


# --- the scope: imported votes tested or not ----------------------------------------------------


@pytest.fixture
def imported_history(models):
    h = History(models, seed=11)
    h.population("honest-", 20)
    h.votes("contrarian", 15, style="contrarian")
    for k in range(20):
        h.votes(f"imported-{k}", int(h.rng.integers(5, 40)), source="imported")
    h.votes("imported-contrarian", 15, style="contrarian", source="imported")
    return h


def test_by_default_imported_voters_are_tested_and_can_be_flagged(imported_history):
    report = anomaly_detection.detect_anomalous_voters()
    assert {"contrarian", "imported-contrarian"} <= {r.judge for r in report.flagged}
    assert report.tested == 20 + 1 + 20 + 1
    assert set(Vote.objects.filter(judge="imported-contrarian").values_list("excluded_reason", flat=True)) == {
        "flagged_user"
    }


@override_settings(ARENA_ANOMALY_TEST_SCOPE="arena")
def test_with_the_arena_scope_imported_votes_are_neither_tested_nor_compared_with(imported_history):
    report = anomaly_detection.detect_anomalous_voters()
    assert "contrarian" in {r.judge for r in report.flagged}
    assert "imported-contrarian" not in {r.judge for r in report.flagged}
    assert report.tested == 20 + 1
    assert set(Vote.objects.filter(judge="imported-contrarian").values_list("excluded_reason", flat=True)) == {""}
    # The reference is the arena's own votes: the evidence is what the test on them alone gives.
    assert_same_as_full_test()
    imported_history.votes("imported-contrarian", 10, style="contrarian", source="imported")
    imported_history.votes("contrarian", 5, style="contrarian")
    imported_history.population("later-", 5)
    kept = assert_same_as_full_test()
    assert not any(label.startswith("imported-") for label in kept)


def test_changing_the_scope_reads_every_vote_once(imported_history):
    anomaly_detection.detect_anomalous_voters()
    with override_settings(ARENA_ANOMALY_TEST_SCOPE="arena"):
        assert not anomaly_detection.detect_anomalous_voters().incremental
        assert anomaly_detection.detect_anomalous_voters().incremental
    assert not anomaly_detection.detect_anomalous_voters().incremental


@pytest.mark.django_db(transaction=True)
def test_a_run_on_its_own_transaction_keeps_the_state_for_the_next(models):
    """Outside a caller's transaction a run reads notes and votes in one snapshot and holds
    the run lock; the next run goes on from what it kept."""
    h = History(models, seed=5)
    h.population("honest-", 10)
    h.votes("contrarian", 15, style="contrarian")
    assert not anomaly_detection.detect_anomalous_voters().incremental
    h.votes("contrarian", 5, style="contrarian")
    h.population("later-", 3)
    report = anomaly_detection.detect_anomalous_voters()
    assert report.incremental
    assert "contrarian" in {r.judge for r in report.flagged}
    assert_same_as_full_test()


def test_emptying_the_votes_table_drops_the_state(history):
    anomaly_detection.detect_anomalous_voters()
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no checks left pending in the test's transaction
        cursor.execute("TRUNCATE battles_vote CASCADE")
        cursor.execute("SELECT count(*) FROM battles_anomalyteststate")
        assert cursor.fetchone()[0] == 0
    report = anomaly_detection.detect_anomalous_voters()
    assert not report.incremental and report.tested == 0


def test_only_the_new_votes_and_the_voters_whose_first_votes_they_change_are_read(history):
    anomaly_detection.detect_anomalous_voters()
    anomaly_detection.detect_anomalous_voters()  # takes in the votes the first run excluded
    assert not FlaggedVoter.objects.filter(judge__in=["heavy-1", "honest-3", "honest-5"]).exists()
    history.votes("heavy-1", 30)  # past its first 100: counted in place
    report = anomaly_detection.detect_anomalous_voters()
    assert report.incremental and report.votes_read == 30
    assert Vote.objects.filter(judge="honest-3").count() < 100
    history.votes("honest-3", 2)  # all its votes are kept: the new ones are appended
    report = anomaly_detection.detect_anomalous_voters()
    assert report.incremental and report.votes_read == 2
    before = Vote.objects.filter(judge="honest-5").count()
    old = Vote.objects.filter(judge="honest-5").order_by("created_at", "id").first()
    Vote.objects.filter(pk=old.pk).update(excluded_reason="identity_revealed")  # its first votes change
    report = anomaly_detection.detect_anomalous_voters()
    assert report.incremental and report.votes_read == 1 + before - 1
    assert_report_is_the_full_reports(report)


def test_a_state_with_no_tested_voter_yet_goes_on_as_voters_reach_the_minimum(models):
    h = History(models, seed=13)
    h.votes("first", 3)
    h.votes("second", 2, address="d" * 32)
    assert anomaly_detection.detect_anomalous_voters().tested == 0
    h.votes("first", 3)
    h.votes("third", 4, address="d" * 32)
    kept = assert_same_as_full_test()
    assert sorted(kept) == ["address:" + "d" * 32, "first"]
