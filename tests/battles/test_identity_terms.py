"""Identity terms are decided by staff: a name alone never excludes votes, a common word is
refused, the preview counts what a term would exclude, and re-judging moves votes both ways,
logged in the audit log and followed by the next rating run."""

from __future__ import annotations

import importlib
import itertools
from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import override_settings

from arenasite import clock
from arenasite.models import AuditEvent
from battles.arena import cast_vote
from battles.identity_terms import (
    Proposal,
    TermRefused,
    identity_term_add,
    identity_term_decide,
    identity_term_preview,
    identity_terms_propose,
    identity_votes_rejudge,
)
from battles.models import Battle, FlaggedVoter, IdentityTerm, Vote
from battles.voters import Voter
from providers.models import ArenaModel

from ..conftest import make_model
from ..factories import ProviderFactory, UserFactory

S = ArenaModel.Status
pytestmark = pytest.mark.django_db

_ids = itertools.count()
PLAIN = "Binary search halves the range each step."


@pytest.fixture(autouse=True)
def no_terms(db):
    """Each test starts with no term: the upgrade's terms (migration 0007) are not assumed."""
    IdentityTerm.objects.all().delete()


@pytest.fixture
def pool():
    provider = ProviderFactory(name="Northwind Research", slug="northwind")
    return [make_model(provider, S.LISTED, name=f"northwind-{n}", is_demo=True) for n in ("small", "large")]


@pytest.fixture
def reviewer(db):
    user = UserFactory(username="terms@arenasite.example", staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["review_identityterm", "view_identityterm"]))
    return user


def battle_naming(answer: str, models, *, prompt: str = "Explain binary search.", at=None, failed=False) -> Battle:
    a, b = models
    asked = {"role": "user", "content": prompt}
    return Battle.objects.create(
        question_id=f"t{next(_ids):05d}",
        model_a=a,
        model_b=b,
        conversation_a=[asked, {"role": "assistant", "content": answer}],
        conversation_b=[asked, {"role": "assistant", "content": PLAIN}],
        status=Battle.Status.FAILED if failed else Battle.Status.READY,
        created_at=at or clock.now(),
    )


def cast(answer: str, models, judge: str = "voter", **battle) -> Vote:
    return cast_vote(battle_naming(answer, models, **battle), "model_a", Voter(judge))[0]


def stored(answer: str, models, *, reason: str = "", judge: str = "voter", at=None, **battle) -> Vote:
    """A vote as an earlier judgement left it."""
    at = at or clock.now()
    found = battle_naming(answer, models, at=at, **battle)
    a, b = models
    return Vote.objects.create(
        battle=found, model_a=a, model_b=b, winner="model_a", judge=judge, excluded_reason=reason, created_at=at
    )


def approve(term: str, actor=None) -> IdentityTerm:
    found = IdentityTerm.objects.filter(term=term).first() or identity_term_add(term=term, actor=actor)
    return identity_term_decide(term_id=found.pk, approve=True, actor=actor)


# --- a name alone excludes nothing ------------------------------------------------------------------


def test_a_provider_named_after_a_common_word_excludes_no_votes(pool):
    before = [cast("Let's walk through it.", pool, judge=f"v{i}").excluded_reason for i in range(10)]
    let = ProviderFactory(name="Let", slug="let")
    admitted = make_model(let, S.INITIAL_RATING, name="helpful-tutor-7b", is_demo=True)
    after = [cast("Let's walk through it.", (admitted, pool[0]), judge=f"w{i}").excluded_reason for i in range(10)]
    assert before == after == [""] * 10
    refused = IdentityTerm.objects.get(term="let")
    assert refused.state == IdentityTerm.State.REFUSED and "common English word" in refused.note


def test_a_model_admitted_to_the_pool_has_its_names_proposed_and_none_approved(pool):
    small = pool[0]
    proposed = dict(IdentityTerm.objects.values_list("term", "state"))
    assert {"northwind-small", "northwind-large", small.codename, "northwind research", "northwind"} <= set(proposed)
    assert set(proposed.values()) == {IdentityTerm.State.PROPOSED}
    assert cast("I am northwind-small, made by Northwind Research.", pool).excluded_reason == ""


def test_an_approved_term_excludes_the_votes_that_name_it_and_only_while_approved(pool, reviewer):
    term = approve("northwind-large", actor=reviewer)
    assert cast("As NorthWind-Large, I would halve the range.", pool).excluded_reason == "identity_revealed"
    assert cast("A northwind-larger answer.", pool).excluded_reason == ""  # whole words only
    identity_term_decide(term_id=term.pk, approve=False, actor=reviewer)
    assert cast("As northwind-large, I would halve the range.", pool).excluded_reason == ""
    logged = AuditEvent.objects.filter(action=AuditEvent.Action.IDENTITY_TERM).order_by("id")
    assert [(e.actor, e.details["state"]) for e in logged] == [
        (reviewer, ["proposed", "approved"]),
        (reviewer, ["approved", "refused"]),
    ]


# --- common words ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("term", "message"),
    [
        ("Let", "is a common English word"),
        ("Ｌｅｔ.", "is a common English word"),  # full-width letters and a full stop are the same word
        ("google", "is a common English word"),
        ("let me", "made only of very common English words"),
        ("42", "has no letter"),
        ('say "hi"', "cannot hold quotation marks"),
    ],
)
def test_a_term_that_is_a_common_word_is_refused_with_a_clear_error(staff, term, message):
    with pytest.raises(TermRefused, match=message):
        identity_term_add(term=term, actor=staff)
    assert not IdentityTerm.objects.exists()


def test_a_proposed_common_word_is_recorded_refused_and_cannot_be_approved(staff):
    identity_terms_propose([Proposal("The", IdentityTerm.Source.PROVIDER_NAME), Proposal("orca-7b", "model_name")])
    the = IdentityTerm.objects.get(term="the")
    assert the.state == IdentityTerm.State.REFUSED and "common English word" in the.note
    with pytest.raises(TermRefused, match="common English word"):
        identity_term_decide(term_id=the.pk, approve=True, actor=staff)
    assert IdentityTerm.objects.get(term="the").state == IdentityTerm.State.REFUSED
    assert IdentityTerm.objects.get(term="orca-7b").state == IdentityTerm.State.PROPOSED
    # Proposing again changes nothing: a refused term stays refused.
    assert identity_terms_propose([Proposal("the", "provider_slug")]) == 0


def test_staff_adding_a_common_word_in_admin_see_why_and_nothing_is_stored(client, reviewer):
    client.force_login(reviewer)
    response = client.post("/admin/battles/identityterm/add/", {"term": "Let", "note": ""})
    assert response.status_code == 200
    assert "is a common English word" in response.content.decode()
    assert not IdentityTerm.objects.exists()
    response = client.post("/admin/battles/identityterm/add/", {"term": "Orca-7B", "note": "an alias"})
    assert response.status_code == 302
    added = IdentityTerm.objects.get()
    assert (added.term, added.state, added.source) == ("orca-7b", "proposed", "staff")


def test_approving_in_admin_needs_the_review_permission(client, reviewer, staff_without_permission):
    term = identity_term_add(term="orca-7b", actor=reviewer)
    data = {"action": "approve", "_selected_action": [term.pk]}
    client.force_login(staff_without_permission)
    assert client.post("/admin/battles/identityterm/", data).status_code == 403
    assert IdentityTerm.objects.get().state == "proposed"
    client.force_login(reviewer)
    assert client.post("/admin/battles/identityterm/", data).status_code == 302
    assert IdentityTerm.objects.get().state == "approved"
    assert IdentityTerm.objects.get().decided_by == reviewer


def test_the_propose_button_proposes_the_pools_names_and_the_setting_words(client, pool, reviewer):
    IdentityTerm.objects.all().delete()
    client.force_login(reviewer)
    with override_settings(ARENA_IDENTITY_WORDS=["Orca", "the"]):
        response = client.post("/admin/battles/identityterm/propose/")
    assert response.status_code == 302
    states = dict(IdentityTerm.objects.values_list("term", "state"))
    assert states["northwind-small"] == states["orca"] == "proposed" and states["the"] == "refused"
    assert client.get("/admin/battles/identityterm/propose/").status_code == 405


# --- preview -------------------------------------------------------------------------------------------


def test_the_preview_counts_the_recent_votes_a_term_would_exclude(pool, client, reviewer):
    stored("Trained as ORCA-7B.", pool)  # counts now
    stored("orca-7b here.", pool, judge="other")  # counts now
    stored("Hi", pool, prompt="Are you orca-7b?", reason="identity_probe")  # excluded already, still named
    stored("orca-7bx is not it, nor is megaorca-7b.", pool)  # not the whole term
    stored("orca-7b failed midway", pool, failed=True, reason="error")  # failed answers never count
    stored("orca-7b long ago.", pool, at=clock.now() - timedelta(days=31))  # not recent
    stored(PLAIN, pool)
    [preview] = identity_term_preview(["Orca-7B"])
    assert (preview.term, preview.would_exclude, preview.counting, preview.recent) == ("orca-7b", 3, 2, 6)
    assert identity_term_preview(["northwind-small"])[0].would_exclude == 0

    term = identity_term_add(term="orca-7b", actor=reviewer)
    client.force_login(reviewer)
    page = client.post("/admin/battles/identityterm/", {"action": "preview", "_selected_action": [term.pk]})
    assert page.status_code == 200
    text = page.content.decode()
    assert "<td>orca-7b</td><td>Proposed, awaiting a decision</td><td>3</td><td>50.0%</td>" in text
    change = client.get(f"/admin/battles/identityterm/{term.pk}/change/").content.decode()
    assert "3 of 6 (50.0%); 2 of them count now" in change


# --- re-judging ------------------------------------------------------------------------------------------


@pytest.fixture
def judged(pool):
    """Votes as the old rule left them (every pool name excluded), and some that count."""
    FlaggedVoter.objects.create(judge="flagged", votes_tested=20, statistic=80.0, direction="against", alpha=0.02)
    votes = {
        "let": stored("Let's begin.", pool, reason="identity_revealed"),
        "let_probe": stored("Let's begin.", pool, prompt="Who are you?", reason="identity_revealed"),
        "let_flagged": stored("Let's begin.", pool, reason="identity_revealed", judge="flagged"),
        "let_and_orca": stored("Let's begin, says orca-7b.", pool, reason="identity_revealed"),
        "let_old": stored("Let's begin.", pool, reason="identity_revealed", at=clock.now() - timedelta(days=60)),
        "orca": stored("I am orca-7b.", pool),
        "orca_capped": stored("I am orca-7b.", pool, reason="rate_limited"),
        "plain": stored(PLAIN, pool),
    }
    return votes


def reasons(votes) -> dict[str, str]:
    return {name: Vote.objects.get(pk=vote.pk).excluded_reason for name, vote in votes.items()}


def test_re_judging_lifts_exclusions_that_no_longer_hold_and_excludes_new_matches(judged, staff):
    identity_terms_propose([Proposal("Let", "provider_name")])  # refused: a common word
    approve("orca-7b", actor=staff)
    done = identity_votes_rejudge(
        terms=["let", "orca-7b"], since=clock.now() - timedelta(days=30), actor=staff, reason="Provider 'Let'."
    )
    assert reasons(judged) == {
        "let": "",  # counts again
        "let_probe": "identity_probe",  # the next reason its battle shows
        "let_flagged": "flagged_user",  # its voter is under a flag
        "let_and_orca": "identity_revealed",  # an approved term still names it
        "let_old": "identity_revealed",  # before the window
        "orca": "identity_revealed",  # newly excluded
        "orca_capped": "rate_limited",  # excluded for another reason: kept
        "plain": "",
    }
    assert (done.excluded, done.lifted, done.counting_again) == (1, 3, 1)
    assert done.other_reasons == {"flagged_user": 1, "identity_probe": 1}

    event = AuditEvent.objects.get(action=AuditEvent.Action.VOTES_REJUDGED)
    assert event.pk == done.event_id and event.actor == staff
    assert {k: event.details[k] for k in ("terms", "excluded", "lifted", "counting_again", "other_reasons")} == {
        "terms": ["let", "orca-7b"],
        "excluded": 1,
        "lifted": 3,
        "counting_again": 1,
        "other_reasons": {"flagged_user": 1, "identity_probe": 1},
    }
    assert event.details["reason"] == "Provider 'Let'."

    again = identity_votes_rejudge(terms=["let", "orca-7b"], since=None, actor=staff)
    assert (again.excluded, again.lifted) == (0, 1)  # only the vote before the window was left
    assert reasons(judged)["let_old"] == ""
    assert identity_votes_rejudge(terms=None, since=None, actor=staff).lifted == 0  # idempotent


def test_re_judging_every_exclusion_reads_votes_whatever_term_they_named(pool, staff):
    retired_name = stored("I am northwind-old.", pool, reason="identity_revealed")  # a name no term holds
    named = stored("I am orca-7b.", pool)
    approve("orca-7b", actor=staff)
    assert identity_votes_rejudge(terms=[], since=None, actor=staff).lifted == 0
    done = identity_votes_rejudge(terms=None, since=None, actor=staff)
    assert (done.excluded, done.lifted) == (1, 1)
    assert Vote.objects.get(pk=retired_name.pk).excluded_reason == ""
    assert Vote.objects.get(pk=named.pk).excluded_reason == "identity_revealed"
    assert AuditEvent.objects.filter(action="votes_rejudged").first().details["terms"] is None


def test_the_admin_action_re_judges_after_asking_for_a_reason(judged, client, reviewer):
    identity_terms_propose([Proposal("Let", "provider_name")])
    let = IdentityTerm.objects.get(term="let")
    client.force_login(reviewer)
    data = {"action": "rejudge", "_selected_action": [let.pk]}
    page = client.post("/admin/battles/identityterm/", data)
    assert page.status_code == 200 and "Re-judge" in page.content.decode()
    assert reasons(judged)["let"] == "identity_revealed"  # nothing yet
    response = client.post("/admin/battles/identityterm/", {**data, "confirm": "yes", "reason": "Let", "days": "30"})
    assert response.status_code == 302
    after = reasons(judged)
    assert after["let"] == after["let_and_orca"] == ""  # no term is approved here
    assert after["let_old"] == "identity_revealed"
    event = AuditEvent.objects.get(action="votes_rejudged")
    assert event.actor == reviewer and event.details["lifted"] == 4 and event.details["excluded"] == 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="changed votes are noted by PostgreSQL triggers")
@pytest.mark.django_db(transaction=True)
def test_a_re_judged_vote_is_counted_by_the_next_rating_run(pool, staff):
    from leaderboard import services
    from leaderboard.models import CountedVoteChange

    for i in range(20):  # enough that four changed votes are patched into the kept columns
        stored(PLAIN, pool, judge=f"j{i}")
    lifted = [stored("Let's begin.", pool, reason="identity_revealed", judge=f"k{i}") for i in range(3)]
    named = stored("I am orca-7b.", pool, judge="m")
    first = services.recompute(bootstrap_rounds=0)
    assert first.vote_count == 21

    identity_terms_propose([Proposal("Let", "provider_name")])
    approve("orca-7b", actor=staff)
    identity_votes_rejudge(terms=["let", "orca-7b"], since=None, actor=staff)
    # The change notes name the re-judged battles, so a run patching its kept columns reads them again.
    noted = set(CountedVoteChange.objects.values_list("battle_id", flat=True))
    assert {vote.battle_id for vote in [*lifted, named]} <= noted
    run = services.recompute(bootstrap_rounds=0)
    assert run.vote_count == 21 + len(lifted) - 1
    assert Vote.objects.get(pk=named.pk).excluded_reason == "identity_revealed"


# --- the upgrade ------------------------------------------------------------------------------------------


def test_the_upgrade_approves_the_pools_names_and_the_word_list_and_refuses_common_words(pool):
    IdentityTerm.objects.all().delete()
    let = make_model(ProviderFactory(name="Let", slug="let"), S.INITIAL_RATING, name="helpful-tutor-7b")
    gone = make_model(pool[0].provider, S.RETIRED, name="northwind-old", family="northwind")
    IdentityTerm.objects.all().delete()
    migration = importlib.import_module("battles.migrations.0007_identity_terms")
    with override_settings(ARENA_IDENTITY_WORDS=["orca"]):
        migration.seed_identity_terms(apps, None)
    states = dict(IdentityTerm.objects.values_list("term", "state"))
    approved = {"northwind-small", "northwind-large", pool[0].codename, "northwind research", "helpful-tutor-7b"}
    assert {term for term in approved | {"claude", "gpt-4", "orca", let.codename}} <= {
        term for term, state in states.items() if state == "approved"
    }
    assert states["let"] == states["google"] == states["palm"] == "refused"  # common words
    assert states["northwind"] == states["northwind-old"] == states[gone.codename] == "proposed"
    assert IdentityTerm.objects.get(term="let").decided_by is None
