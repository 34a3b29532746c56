"""Flagging anomalous voters on the database, the command and task, the admin review, and
that excluded votes never enter a rating run."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import override_settings

from arenasite import clock
from battles import anomaly_detection, anomaly_review
from battles.arena import cast_vote
from battles.models import Battle, FlaggedVoter, Vote, VoterDecision
from battles.voters import Voter
from leaderboard.models import ModelRating, RatingRun
from leaderboard.tasks import recompute_ratings
from providers.models import ArenaModel

from ..conftest import make_model
from ..factories import UserFactory

S = ArenaModel.Status
pytestmark = pytest.mark.django_db

_ids = itertools.count()
HONEST = [f"honest-{n:02d}" for n in range(30)]
RIGGER = "rigger-0001"
# Of every 10 votes between the strong and the weak model: 7 for the strong one, 1 tie, 2 for the weak.
CROWD = ["strong"] * 7 + ["tie"] + ["weak"] * 2


@pytest.fixture
def models(provider_a):
    return {
        "strong": make_model(provider_a, S.LISTED, name="strong-model", is_demo=True),
        "weak": make_model(provider_a, S.LISTED, name="weak-model", is_demo=True),
        "third": make_model(provider_a, S.LISTED, name="third-model", is_demo=True),
    }


def add_votes(models, judge: str, outcomes: list[str], *, reason: str = "", anony: bool = True, start=None):
    """Votes between the strong and the weak model, sides alternating, one minute apart."""
    start = start or clock.now() - timedelta(hours=1)
    battles, votes = [], []
    for i, outcome in enumerate(outcomes):
        a, b = (models["strong"], models["weak"]) if i % 2 == 0 else (models["weak"], models["strong"])
        winner = "tie" if outcome == "tie" else ("model_a" if models[outcome] == a else "model_b")
        battle = Battle(question_id=f"q{next(_ids)}", model_a=a, model_b=b, anony=anony, judge=judge)
        battles.append(battle)
        votes.append(
            Vote(
                battle=battle,
                model_a=a,
                model_b=b,
                anony=anony,
                winner=winner,
                judge=judge,
                excluded_reason=reason,
                created_at=start + timedelta(minutes=i),
            )
        )
    Battle.objects.bulk_create(battles)
    Vote.objects.bulk_create(votes)


@pytest.fixture
def arena_votes(models):
    """30 honest voters voting like the crowd, and one voter who always picks the weak model."""
    for judge in HONEST:
        add_votes(models, judge, CROWD * 2)
    add_votes(models, RIGGER, ["weak"] * 15)
    # One of the rigger's votes was already excluded for another reason: it must keep it.
    first = Vote.objects.filter(judge=RIGGER).order_by("id").first()
    Vote.objects.filter(pk=first.pk).update(excluded_reason="identity_revealed")
    return models


def reasons(judge: str) -> list[str]:
    return list(Vote.objects.filter(judge=judge).order_by("id").values_list("excluded_reason", flat=True))


# --- detection ------------------------------------------------------------------------------


def test_the_contrarian_voter_is_flagged_and_the_honest_ones_are_not(arena_votes):
    report = anomaly_detection.detect_anomalous_voters()
    assert report.tested == 31
    assert [row.judge for row in report.flagged] == [RIGGER]
    voter = FlaggedVoter.objects.get()
    assert voter.judge == RIGGER and voter.state == "flagged" and voter.direction == "against"
    assert voter.votes_tested == 14 and voter.statistic >= 1 / voter.alpha
    # Every counting vote is excluded; the one excluded for another reason keeps its reason.
    assert reasons(RIGGER) == ["identity_revealed"] + ["flagged_user"] * 14
    assert set(Vote.objects.exclude(judge=RIGGER).values_list("excluded_reason", flat=True)) == {""}


def test_detection_is_idempotent_and_catches_votes_cast_since(arena_votes):
    anomaly_detection.detect_anomalous_voters()
    again = anomaly_detection.detect_anomalous_voters()
    assert again.votes_excluded == 0 and [row.new for row in again.flagged] == [False]
    assert FlaggedVoter.objects.count() == 1
    add_votes(arena_votes, RIGGER, ["strong"] * 3, start=clock.now())
    assert anomaly_detection.detect_anomalous_voters().votes_excluded == 3
    assert set(reasons(RIGGER)[1:]) == {"flagged_user"}


def test_imported_voters_are_tested_too(arena_votes):
    Battle.objects.filter(judge=RIGGER).update(source=Battle.Source.IMPORTED)
    assert [row.judge for row in anomaly_detection.detect_anomalous_voters().flagged] == [RIGGER]


def test_side_by_side_votes_are_not_tested(models):
    for judge in HONEST:
        add_votes(models, judge, CROWD * 2)
    add_votes(models, RIGGER, ["weak"] * 15, anony=False)
    assert anomaly_detection.detect_anomalous_voters().flagged == []


def test_alpha_is_a_setting(arena_votes):
    with override_settings(ARENA_ANOMALY_ALPHA=1e-30):
        assert anomaly_detection.detect_anomalous_voters().flagged == []


def test_the_command_prints_the_flagged_voters(arena_votes, capsys):
    call_command("detect_anomalous_voters")
    out = capsys.readouterr()
    judge, votes, statistic = out.out.strip().split("\t")
    assert judge == RIGGER and votes == "14" and float(statistic) >= 50
    assert "31 voter(s) tested, 1 over 1/alpha = 50" in out.err
    call_command("detect_anomalous_voters", "--json")
    (row,) = json.loads(capsys.readouterr().out)
    assert row["judge"] == RIGGER and row["votes"] == 14 and row["new"] is False and row["state"] == "flagged"


def test_the_command_prints_nothing_when_nobody_is_flagged(models, capsys):
    call_command("detect_anomalous_voters", "--json")
    assert json.loads(capsys.readouterr().out) == []


# --- ratings never see excluded votes -------------------------------------------------------


@override_settings(ARENA_BOOTSTRAP_ROUNDS=0, ARENA_STYLE_CONTROL=False)
def test_the_rating_task_runs_detection_first_and_excluded_votes_never_enter_a_run(arena_votes, models):
    # Votes excluded for every other reason, and side-by-side votes: none may be counted either.
    for reason in ("identity_revealed", "identity_probe", "rate_limited", "moderation", "error"):
        add_votes(models, f"other-{reason}", ["weak"] * 3, reason=reason)
    add_votes(models, "side-by-side", ["weak"] * 3, anony=False)
    run = RatingRun.objects.get(pk=recompute_ratings.delay().get())
    honest_votes = len(HONEST) * len(CROWD) * 2
    assert run.vote_count == honest_votes
    overall = ModelRating.objects.filter(run=run, category="overall")
    assert {r.arena_model_id: r.votes for r in overall} == {
        models["strong"].pk: honest_votes,
        models["weak"].pk: honest_votes,
    }


@override_settings(ARENA_BOOTSTRAP_ROUNDS=0, ARENA_STYLE_CONTROL=False, ARENA_ANOMALY_DETECTION=False)
def test_without_detection_the_rating_task_counts_the_contrarian(arena_votes):
    run = RatingRun.objects.get(pk=recompute_ratings.delay().get())
    assert run.vote_count == len(HONEST) * len(CROWD) * 2 + 14
    assert not FlaggedVoter.objects.exists()


# --- decisions --------------------------------------------------------------------------------


@pytest.fixture
def flagged(arena_votes):
    anomaly_detection.detect_anomalous_voters()
    return FlaggedVoter.objects.get()


def test_clearing_restores_only_the_flagged_votes_and_the_voter_is_not_flagged_again(flagged, staff):
    logged = anomaly_review.flagged_voter_decide(
        voter_id=flagged.pk, decision="clear", actor=staff, reason="A real fan."
    )
    assert (logged.from_state, logged.to_state, logged.actor, logged.votes_changed) == ("flagged", "cleared", staff, 14)
    assert reasons(RIGGER) == ["identity_revealed"] + [""] * 14
    assert anomaly_detection.detect_anomalous_voters().flagged == []
    assert reasons(RIGGER) == ["identity_revealed"] + [""] * 14
    flagged.refresh_from_db()
    assert flagged.state == "cleared" and flagged.decided_at == logged.created_at


def test_confirming_keeps_the_votes_excluded(flagged, staff):
    logged = anomaly_review.flagged_voter_decide(
        voter_id=flagged.pk, decision="confirm", actor=staff, reason="Pattern."
    )
    assert logged.votes_changed == 0
    assert set(reasons(RIGGER)[1:]) == {"flagged_user"}


def test_a_cleared_voter_confirmed_later_is_excluded_again(flagged, staff):
    anomaly_review.flagged_voter_decide(voter_id=flagged.pk, decision="clear", actor=staff, reason="Looked fine.")
    logged = anomaly_review.flagged_voter_decide(
        voter_id=flagged.pk, decision="confirm", actor=staff, reason="It was not."
    )
    assert logged.votes_changed == 14 and set(reasons(RIGGER)[1:]) == {"flagged_user"}
    assert list(flagged.decisions.values_list("decision", flat=True)) == ["confirm", "clear"]


def test_a_banned_voters_next_vote_is_excluded_as_it_arrives(flagged, staff, models):
    anomaly_review.flagged_voter_decide(voter_id=flagged.pk, decision="ban", actor=staff, reason="Sockpuppet ring.")
    battle = Battle.objects.create(question_id="after-ban", model_a=models["strong"], model_b=models["third"])
    vote, _ = cast_vote(battle, "model_b", Voter(RIGGER))
    assert vote.excluded_reason == "flagged_user"
    # Another voter's vote on the same kind of battle counts.
    other = Battle.objects.create(question_id="other", model_a=models["strong"], model_b=models["third"])
    assert cast_vote(other, "model_b", Voter(HONEST[0]))[0].excluded_reason == ""


@pytest.mark.parametrize(
    "decision, reason, message",
    [("confirm", "  ", "Say why"), ("delete", "why", "Unknown decision"), ("clear", None, "Say why")],
)
def test_a_bad_decision_changes_nothing(flagged, staff, decision, reason, message):
    with pytest.raises(anomaly_review.DecisionError, match=message):
        anomaly_review.flagged_voter_decide(voter_id=flagged.pk, decision=decision, actor=staff, reason=reason)
    assert not VoterDecision.objects.exists()
    assert set(reasons(RIGGER)[1:]) == {"flagged_user"}


def test_deciding_the_current_state_again_is_refused(flagged, staff):
    anomaly_review.flagged_voter_decide(voter_id=flagged.pk, decision="ban", actor=staff, reason="Ring.")
    with pytest.raises(anomaly_review.DecisionError, match="already"):
        anomaly_review.flagged_voter_decide(voter_id=flagged.pk, decision="ban", actor=staff, reason="Ring, again.")
    assert VoterDecision.objects.count() == 1


@override_settings(ARENA_BOOTSTRAP_ROUNDS=0, ARENA_STYLE_CONTROL=False, ARENA_ANOMALY_DETECTION=True)
def test_the_next_recomputation_reflects_a_decision(flagged, staff):
    before = RatingRun.objects.get(pk=recompute_ratings.delay().get()).vote_count
    anomaly_review.flagged_voter_decide(voter_id=flagged.pk, decision="clear", actor=staff, reason="A real fan.")
    after = RatingRun.objects.get(pk=recompute_ratings.delay().get()).vote_count
    assert after == before + 14


def test_the_effect_of_removing_the_voter_on_each_models_rating(flagged, models):
    effect = {row.model: row for row in anomaly_review.rating_effect(flagged)}
    assert set(effect) == {"strong-model", "weak-model"}
    weak = effect["weak-model"]
    assert weak.votes == 14 and weak.with_voter > weak.without_voter and weak.change > 0
    assert effect["strong-model"].change == pytest.approx(-weak.change)


# --- admin review ---------------------------------------------------------------------------


@pytest.fixture
def reviewer(db):
    user = UserFactory(username="reviewer@arenasite.example", staff=True)
    user.user_permissions.add(
        Permission.objects.get(codename="review_flaggedvoter"), Permission.objects.get(codename="view_flaggedvoter")
    )
    return user


def test_the_review_page_shows_the_evidence_the_votes_and_the_effect(client, reviewer, flagged):
    client.force_login(reviewer)
    listing = client.get("/admin/battles/flaggedvoter/").content.decode()
    assert RIGGER[:16] in listing and "Flagged, awaiting review" in listing
    page = client.get(f"/admin/battles/flaggedvoter/{flagged.pk}/change/").content.decode()
    assert "weak-model" in page and "strong-model" in page  # the effect table
    assert page.count("flagged_user") == 14 and "identity_revealed" in page  # the votes
    assert "threshold 50" in page
    assert f"/admin/battles/flaggedvoter/{flagged.pk}/decide/clear/" in page


def test_a_decision_in_admin_asks_for_the_reason_then_logs_who_and_why(client, reviewer, flagged):
    client.force_login(reviewer)
    url = f"/admin/battles/flaggedvoter/{flagged.pk}/decide/clear/"
    assert "Reason" in client.get(url).content.decode()
    refused = client.post(url, {"confirm": "yes", "reason": ""})
    assert refused.status_code == 200 and "This field is required" in refused.content.decode()
    assert set(reasons(RIGGER)[1:]) == {"flagged_user"}
    done = client.post(url, {"confirm": "yes", "reason": "Votes look like a real preference."}, follow=True)
    assert "now cleared" in done.content.decode()
    logged = VoterDecision.objects.get()
    assert (logged.actor, logged.reason, logged.decision) == (reviewer, "Votes look like a real preference.", "clear")
    assert reasons(RIGGER) == ["identity_revealed"] + [""] * 14


def test_the_changelist_action_bans_the_selected_voters(client, reviewer, flagged):
    client.force_login(reviewer)
    form = {"action": "ban", "_selected_action": [flagged.pk]}
    asked = client.post("/admin/battles/flaggedvoter/", form)
    assert asked.status_code == 200 and "give the reason" in asked.content.decode()
    client.post("/admin/battles/flaggedvoter/", {**form, "confirm": "yes", "reason": "Ring of accounts."})
    flagged.refresh_from_db()
    assert flagged.state == "banned" and VoterDecision.objects.get().actor == reviewer


def test_staff_without_the_review_permission_can_neither_see_nor_decide(client, staff_without_permission, flagged):
    client.force_login(staff_without_permission)
    assert client.get("/admin/battles/flaggedvoter/").status_code == 403
    response = client.post(
        f"/admin/battles/flaggedvoter/{flagged.pk}/decide/ban/", {"confirm": "yes", "reason": "Because."}
    )
    assert response.status_code == 403
    assert not VoterDecision.objects.exists()


def test_flagged_voters_cannot_be_edited_or_deleted_in_admin(admin_client, flagged):
    response = admin_client.post(f"/admin/battles/flaggedvoter/{flagged.pk}/change/", {"state": "cleared"})
    assert response.status_code == 403
    assert admin_client.post(f"/admin/battles/flaggedvoter/{flagged.pk}/delete/").status_code == 403
    flagged.refresh_from_db()
    assert flagged.state == "flagged"


# --- short sessions tested together per client address ----------------------------------------------

ADDRESS = "a" * 32  # an address id, as battles/voters.py stores it


def add_cookie_clearing_votes(models, address: str, outcomes: list[str], prefix: str) -> list[str]:
    """One vote per fresh session, all from one client address: each session is too short to test."""
    judges = [f"{prefix}-{n}" for n in range(len(outcomes))]
    for judge, outcome in zip(judges, outcomes, strict=True):
        add_votes(models, judge, [outcome])
    Vote.objects.filter(judge__in=judges).update(address=address)
    return judges


def test_a_voter_who_clears_cookies_before_every_vote_is_tested_and_flagged_by_address(arena_votes):
    judges = add_cookie_clearing_votes(arena_votes, ADDRESS, ["weak"] * 15, "fresh")
    honest = add_cookie_clearing_votes(arena_votes, "b" * 32, CROWD, "household")
    report = anomaly_detection.detect_anomalous_voters()
    assert sorted(row.judge for row in report.flagged) == sorted([RIGGER, f"address:{ADDRESS}"])
    assert set(Vote.objects.filter(judge__in=judges).values_list("excluded_reason", flat=True)) == {"flagged_user"}
    assert set(Vote.objects.filter(judge__in=honest).values_list("excluded_reason", flat=True)) == {""}
    # The honest voters with enough votes of their own are judged as before.
    assert report.tested == 31 + 2


def test_staff_review_an_address_like_a_voter_and_a_ban_excludes_its_next_fresh_session(arena_votes, models):
    add_cookie_clearing_votes(arena_votes, ADDRESS, ["weak"] * 15, "fresh")
    anomaly_detection.detect_anomalous_voters()
    flagged = FlaggedVoter.objects.get(judge=f"address:{ADDRESS}")
    assert anomaly_review.voter_votes(flagged).count() == 15
    anomaly_review.flagged_voter_decide(
        voter_id=flagged.pk, decision="ban", actor=None, reason="one script, many cookies"
    )
    battle = Battle.objects.create(
        question_id="q-after-ban",
        model_a=models["strong"],
        model_b=models["weak"],
        turn=1,
        conversation_a=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}],
        conversation_b=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey."}],
    )
    vote, _ = cast_vote(battle, "model_b", Voter("brand-new-session", address=ADDRESS))
    assert vote.excluded_reason == "flagged_user"
    cleared = anomaly_review.flagged_voter_decide(voter_id=flagged.pk, decision="clear", actor=None, reason="checked")
    assert cleared.votes_changed == 16
