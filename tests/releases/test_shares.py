"""Provider early access: agreements, which battles a share holds, labels, the subset
invariant, building, the API, downloads and their log, throttling, admin and commands."""

from __future__ import annotations

import itertools
import json
import random
from datetime import timedelta

import pandas as pd
import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.core.management import call_command, execute_from_command_line
from django.core.management.base import CommandError
from django.db import connections

from arenasite import clock
from battles.models import Battle
from providers.lifecycle import Action, transition
from providers.models import ArenaModel
from releases import building, files, sharing, tasks
from releases.models import DataRelease, DataSharingAgreement, Download, ProviderShare, ReleasedBattle

from ..conftest import make_model
from ..factories import MembershipFactory, UserFactory
from .test_release import build, released_rows, voted_battle

S = ArenaModel.Status
PERSONAL = "Call me on +1 415 555 0132 tomorrow"  # a phone number: left out of every export


@pytest.fixture(autouse=True)
def releases_in_tmp(settings, tmp_path):
    settings.RELEASES_DIR = tmp_path / "releases"


@pytest.fixture
def arena(provider_a, provider_b):
    """Provider A: a listed, an unlisted (initial rating) and a retired model; provider B: two."""
    return {
        "a_listed": make_model(provider_a, S.LISTED, name="a-listed"),
        "a_initial": make_model(provider_a, S.INITIAL_RATING, name="a-initial"),
        "a_retired": make_model(provider_a, S.RETIRED, name="a-retired"),
        "b_listed": make_model(provider_b, S.LISTED, name="b-listed"),
        "b_initial": make_model(provider_b, S.INITIAL_RATING, name="b-secret"),
    }


def approve(provider, member, staff=None) -> DataSharingAgreement:
    agreement, _ = sharing.agreement_accept(provider=provider, user=member)
    return sharing.agreement_decide(agreement_id=agreement.pk, approve=True, by=staff)[0]


@pytest.fixture
def approved_a(provider_a, member_a, staff):
    return approve(provider_a, member_a, staff)


def share_for(provider, user=None) -> ProviderShare:
    return sharing.share_build(sharing.share_request(provider=provider, user=user, enqueue=False).pk)


def shared_rows(share: ProviderShare) -> list[dict]:
    path = sharing.share_file(share, "jsonl")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def shared_ids(share: ProviderShare) -> set[str]:
    return {row["question_id"] for row in shared_rows(share)}


# --- which battles -----------------------------------------------------------------------------


def test_a_share_holds_the_unpublished_voted_pool_battles_with_the_providers_models(arena, approved_a, provider_a):
    a, b = arena["a_listed"], arena["b_listed"]
    published = voted_battle(a, b, days_ago=5)
    building.publish(build(clock.now() - timedelta(days=4)))
    in_built_release = voted_battle(a, b, days_ago=3)
    build(clock.now() - timedelta(days=2, hours=12))  # built, not yet published: not public
    unlisted_pair = voted_battle(arena["a_initial"], arena["b_initial"])
    own_pair = voted_battle(arena["a_initial"], a)
    voted_battle(a, b, in_pool=False)
    voted_battle(a, b, vote=False)
    voted_battle(b, arena["b_initial"])  # another provider's battle

    share = share_for(provider_a)

    assert share.state == ProviderShare.State.READY
    expected = {in_built_release.question_id, unlisted_pair.question_id, own_pair.question_id}
    assert shared_ids(share) == expected
    assert published.question_id not in shared_ids(share)
    assert share.battle_count == 3 and share.manifest["battles"] == 3
    # Nothing outside the pool, whatever else the database holds.
    assert Battle.objects.filter(question_id__in=shared_ids(share), in_release_pool=False).count() == 0


@pytest.mark.parametrize(
    ("side_a", "side_b", "labels"),
    [
        ("a_listed", "b_listed", ("a-listed", "anonymous")),  # the opponent is always anonymous
        ("b_initial", "a_listed", ("anonymous", "a-listed")),
        ("a_initial", "b_listed", ("anonymous", "anonymous")),  # own model not on the leaderboard
        ("a_retired", "b_listed", ("anonymous", "anonymous")),  # retired: no longer on it
        ("a_listed", "a_initial", ("a-listed", "anonymous")),  # both own: each by its own status
        ("a_initial", "a_listed", ("anonymous", "a-listed")),
    ],
)
def test_models_are_labelled_as_the_policy_says(arena, approved_a, provider_a, side_a, side_b, labels):
    voted_battle(arena[side_a], arena[side_b])
    (row,) = shared_rows(share_for(provider_a))
    assert (row["model_a"], row["model_b"]) == labels
    text = json.dumps(row)
    for other in ("b-listed", "b-secret", arena["b_initial"].codename, arena["a_initial"].codename):
        assert other not in text
    assert list(row) == list(files.COLUMNS)


def test_labels_are_those_at_the_time_of_sharing(arena, approved_a, provider_a, staff):
    model = arena["a_initial"]
    voted_battle(model, arena["b_listed"])
    before = share_for(provider_a)
    ArenaModel.objects.filter(pk=model.pk).update(votes_counted=1000)
    transition(model_id=model.pk, action=Action.PUBLISH, actor=staff, reason="enough votes")
    after = share_for(provider_a)

    assert shared_rows(before)[0]["model_a"] == "anonymous"  # the earlier files stay as built
    assert shared_rows(after)[0]["model_a"] == "a-initial"
    assert after.manifest["labels"] == {"a-initial": 1, "anonymous": 1}


def test_personal_data_is_left_out_and_counted(arena, approved_a, provider_a):
    clean = voted_battle(arena["a_listed"], arena["b_listed"])
    voted_battle(arena["a_listed"], arena["b_listed"], answer=PERSONAL)
    share = share_for(provider_a)
    assert shared_ids(share) == {clean.question_id}
    assert share.excluded_count == 1 and share.manifest["excluded"]["personal_data"] == {"phone": 1}
    assert "1: phone" in sharing.share_path(share).joinpath(files.CARD_NAME).read_text()


# --- the subset invariant ------------------------------------------------------------------------


def test_every_shared_battle_is_in_a_later_community_release(arena, provider_a, provider_b, member_a, member_b):
    """Invariant: what a provider received appears in a later community release, or is
    counted there as left out for personal data."""
    approve(provider_a, member_a)
    approve(provider_b, member_b)
    rng = random.Random(7)
    names = list(arena)
    dirty = []
    for _ in range(40):
        side_a, side_b = rng.sample(names, 2)
        personal = rng.random() < 0.15
        battle = voted_battle(
            arena[side_a],
            arena[side_b],
            in_pool=rng.random() < 0.7,
            vote=rng.random() < 0.9,
            answer=PERSONAL if personal else "An answer.",
            days_ago=rng.randint(1, 9),
        )
        if personal and battle.in_release_pool and hasattr(battle, "vote"):
            dirty.append(battle)
    # An earlier release, published before the shares: its battles are never shared.
    first = building.publish(build(clock.now() - timedelta(days=6)))

    shares = [share_for(provider_a), share_for(provider_b)]
    shared = set().union(*(shared_ids(share) for share in shares))
    assert shared and not shared & {row["question_id"] for row in released_rows(first)}

    later = build()
    released = {row["question_id"] for row in released_rows(later)}
    assert shared <= released
    # The battles the shares left out for personal data are counted in the release's manifest.
    left_out = sum(share.excluded_count for share in shares)
    assert left_out > 0
    dirty_later = [b for b in dirty if not ReleasedBattle.objects.filter(battle=b, release=first).exists()]
    assert later.manifest["excluded"]["personal_data"] == {"phone": len(dirty_later)}
    for battle in dirty_later:
        assert ReleasedBattle.objects.get(battle=battle).release == later
        assert battle.question_id not in released and battle.question_id not in shared


def test_a_battle_shared_from_a_discarded_release_goes_into_the_next_one(arena, approved_a, provider_a):
    battle = voted_battle(arena["a_listed"], arena["b_listed"])
    built = build()
    share = share_for(provider_a)
    assert shared_ids(share) == {battle.question_id}
    building.discard(built)
    assert battle.question_id in {row["question_id"] for row in released_rows(build())}


# --- building --------------------------------------------------------------------------------


def test_the_files_are_those_of_a_release_with_a_card_and_checksums(arena, approved_a, provider_a):
    for _ in range(3):
        voted_battle(arena["a_listed"], arena["b_initial"])
    share = share_for(provider_a)
    directory = sharing.share_path(share)
    assert directory == building.releases_dir() / "shares" / f"share-{share.pk}"
    assert sorted(p.name for p in directory.iterdir()) == sorted(files.FILE_NAMES)
    frame = pd.read_parquet(directory / files.PARQUET_NAME)
    assert list(frame.columns) == list(files.COLUMNS) and len(frame) == 3
    manifest = json.loads((directory / files.MANIFEST_NAME).read_text())
    assert manifest == share.manifest and manifest["provider"] == "provider-a"
    for name in (files.JSONL_NAME, files.PARQUET_NAME, files.CLEAN_BATTLE_NAME, files.CARD_NAME):
        summary = files.file_summary(directory / name)
        assert {key: manifest["files"][name][key] for key in summary} == summary
    card = (directory / files.CARD_NAME).read_text()
    assert "Provider A" in card and "always `anonymous`" in card and "3 battles" in card


def test_a_failing_build_leaves_no_files_and_the_share_failed(arena, approved_a, provider_a, monkeypatch):
    for _ in range(5):
        voted_battle(arena["a_listed"], arena["b_listed"])
    monkeypatch.setattr(building, "BATCH", 2)
    real_write = files.ReleaseWriter.write
    calls = itertools.count()

    def write_then_die(self, rows):
        if next(calls) == 1:
            raise OSError("disk full")
        real_write(self, rows)

    monkeypatch.setattr(files.ReleaseWriter, "write", write_then_die)
    share = sharing.share_request(provider=provider_a, user=None, enqueue=False)
    with pytest.raises(OSError, match="disk full"):
        tasks.build_share(share.pk)
    share.refresh_from_db()
    assert share.state == ProviderShare.State.FAILED and "disk full" in share.error
    assert list(sharing.shares_dir().iterdir()) == []
    # A redelivered task finds it failed and leaves it so; a new request builds.
    assert tasks.build_share(share.pk) == share.pk
    monkeypatch.undo()
    assert share_for(provider_a).battle_count == 5


def test_the_task_is_idempotent_and_rebuilds_an_interrupted_share(arena, approved_a, provider_a):
    voted_battle(arena["a_listed"], arena["b_listed"])
    share = sharing.share_request(provider=provider_a, user=None, enqueue=False)
    # A worker died mid-build: the share says building, a partial and a stale directory remain.
    ProviderShare.objects.filter(pk=share.pk).update(state=ProviderShare.State.BUILDING)
    (sharing.shares_dir() / f".share-{share.pk}.partial-dead").mkdir()
    (sharing.shares_dir() / f"share-{share.pk}").mkdir()
    (sharing.shares_dir() / f"share-{share.pk}" / "junk").write_text("half")

    tasks.build_share(share.pk)
    share.refresh_from_db()
    assert share.state == ProviderShare.State.READY and share.battle_count == 1
    assert sorted(p.name for p in sharing.shares_dir().iterdir()) == [f"share-{share.pk}"]
    built_at = share.built_at
    tasks.build_share(share.pk)  # redelivered once more: nothing to do
    share.refresh_from_db()
    assert share.built_at == built_at


def test_a_share_requested_then_revoked_before_the_build_fails_without_files(arena, approved_a, provider_a):
    voted_battle(arena["a_listed"], arena["b_listed"])
    share = sharing.share_request(provider=provider_a, user=None, enqueue=False)
    sharing.agreement_decide(agreement_id=approved_a.pk, approve=False, reason="breach")
    share = sharing.share_build(share.pk)
    assert share.state == ProviderShare.State.FAILED and "revoked (breach)" in share.error
    assert list(sharing.shares_dir().iterdir()) == []


# --- agreements --------------------------------------------------------------------------------


def test_accepting_the_terms_waits_for_staff_and_is_idempotent(client_a, provider_a, member_a):
    terms = client_a.get("/api/v1/agreements/terms/").json()
    assert terms["version"] == "2024-06" and "anonymous" in terms["text"]
    first = client_a.post("/api/v1/agreements/", {}, format="json")
    assert first.status_code == 201
    body = first.json()
    assert body["state"] == "pending" and body["terms_version"] == "2024-06"
    assert body["provider"] == "provider-a" and body["accepted_by"] == "alice@a.example"
    again = client_a.post("/api/v1/agreements/", {"provider": "provider-a"}, format="json")
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    assert DataSharingAgreement.objects.count() == 1


def test_a_decision_records_who_and_when_and_revoked_is_final(provider_a, member_a, staff):
    agreement, _ = sharing.agreement_accept(provider=provider_a, user=member_a)
    decided, changed = sharing.agreement_decide(agreement_id=agreement.pk, approve=True, by=staff, reason="ok")
    assert changed and decided.state == "approved" and decided.decided_by == staff and decided.decided_at
    assert sharing.agreement_decide(agreement_id=agreement.pk, approve=True, by=staff)[1] is False
    revoked, _ = sharing.agreement_decide(agreement_id=agreement.pk, approve=False, by=staff, reason="breach")
    assert revoked.state == "revoked" and revoked.reason == "breach"
    with pytest.raises(sharing.SharingRefused, match="accept the terms again"):
        sharing.agreement_decide(agreement_id=agreement.pk, approve=True, by=staff)
    again, created = sharing.agreement_accept(provider=provider_a, user=member_a)
    assert created and again.pk != agreement.pk and again.state == "pending"


# --- the API -----------------------------------------------------------------------------------


def test_a_member_requests_downloads_and_sees_the_log(
    arena, client_a, client_b, provider_a, member_a, staff, django_capture_on_commit_callbacks
):
    battle = voted_battle(arena["a_listed"], arena["b_listed"])
    client_a.post("/api/v1/agreements/", {}, format="json")
    refused = client_a.post("/api/v1/shares/", {}, format="json")
    assert refused.status_code == 403 and "waiting for approval" in refused.json()["detail"]

    sharing.agreement_decide(agreement_id=DataSharingAgreement.objects.get().pk, approve=True, by=staff)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        created = client_a.post("/api/v1/shares/", {}, format="json")
    assert created.status_code == 201 and created.json()["state"] == "requested"
    assert len(callbacks) == 1  # the build is queued only once the request's transaction commits

    detail = client_a.get(f"/api/v1/shares/{created.json()['id']}/").json()
    assert detail["state"] == "ready" and detail["battle_count"] == 1
    assert detail["requested_by"] == "alice@a.example"
    assert detail["files"]["jsonl"].endswith(f"/api/v1/shares/{detail['id']}/download/?format=jsonl")

    response = client_a.get(f"/api/v1/shares/{detail['id']}/download/", {"format": "jsonl"})
    assert response.status_code == 200
    assert f"arenasite-share-{detail['id']}-battles.jsonl" in response["Content-Disposition"]
    content = b"".join(response.streaming_content)
    assert json.loads(content)["question_id"] == battle.question_id
    parquet = client_a.get(f"/api/v1/shares/{detail['id']}/download/", {"format": "parquet"})
    parquet_bytes = b"".join(parquet.streaming_content)
    assert parquet_bytes.startswith(b"PAR1")

    jsonl_log, parquet_log = Download.objects.order_by("at", "id")
    assert (jsonl_log.user, jsonl_log.provider, jsonl_log.share_id) == (member_a, provider_a, detail["id"])
    assert (jsonl_log.format, jsonl_log.bytes) == ("jsonl", len(content))
    assert (parquet_log.format, parquet_log.bytes) == ("parquet", len(parquet_bytes))
    log = client_a.get("/api/v1/downloads/").json()
    assert [(d["format"], d["bytes"], d["user"]) for d in log["results"]] == [
        ("parquet", len(parquet_bytes), "alice@a.example"),
        ("jsonl", len(content), "alice@a.example"),
    ]
    assert client_b.get("/api/v1/downloads/").json()["results"] == []


def test_a_member_of_several_providers_names_one(arena, provider_a, provider_b, member_a):
    MembershipFactory(provider=provider_b, user=member_a)
    from ..conftest import token_client

    client = token_client(member_a)
    response = client.post("/api/v1/agreements/", {}, format="json")
    assert response.status_code == 400 and "several providers" in response.json()["detail"]
    assert client.post("/api/v1/agreements/", {"provider": "provider-b"}, format="json").status_code == 201
    assert DataSharingAgreement.objects.get().provider == provider_b


def test_a_revoked_agreement_stops_new_shares_and_downloads(arena, client_a, approved_a, provider_a, staff):
    voted_battle(arena["a_listed"], arena["b_listed"])
    share = share_for(provider_a)
    url = f"/api/v1/shares/{share.pk}/download/"
    assert client_a.get(url, {"format": "jsonl"}).status_code == 200
    sharing.agreement_decide(agreement_id=approved_a.pk, approve=False, by=staff, reason="terms breached")

    refused = client_a.post("/api/v1/shares/", {}, format="json")
    assert refused.status_code == 403 and "revoked (terms breached)" in refused.json()["detail"]
    blocked = client_a.get(url, {"format": "jsonl"})
    assert blocked.status_code == 403 and "revoked" in blocked.json()["detail"]
    assert client_a.get(f"/api/v1/agreements/{approved_a.pk}/").json()["reason"] == "terms breached"
    assert Download.objects.count() == 1


def test_new_terms_need_a_new_acceptance(arena, client_a, approved_a, settings):
    settings.DATA_SHARING_TERMS_VERSION = "2025-01"
    refused = client_a.post("/api/v1/shares/", {}, format="json")
    assert refused.status_code == 403
    assert "accepted the data-sharing terms of 2024-06" in refused.json()["detail"]
    assert "2025-01" in refused.json()["detail"]
    accepted = client_a.post("/api/v1/agreements/", {}, format="json").json()
    assert accepted["terms_version"] == "2025-01" and accepted["state"] == "pending"


def test_a_share_not_ready_or_an_unknown_format_is_refused(arena, client_a, approved_a, provider_a):
    share = sharing.share_request(provider=provider_a, user=None, enqueue=False)
    url = f"/api/v1/shares/{share.pk}/download/"
    not_ready = client_a.get(url, {"format": "jsonl"})
    assert not_ready.status_code == 409 and "requested, not ready" in not_ready.json()["detail"]
    sharing.share_build(share.pk)
    unknown = client_a.get(url, {"format": "csv"})
    assert unknown.status_code == 400 and "jsonl, parquet" in unknown.json()["detail"]
    assert client_a.get(url).status_code == 400
    assert client_a.get(url, {"format": "card"}).status_code == 200
    assert not Download.objects.exclude(format="card").exists()


def test_downloads_are_throttled(arena, client_a, approved_a, provider_a, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"downloads": "2/min"}}
    share = share_for(provider_a)
    url = f"/api/v1/shares/{share.pk}/download/"
    assert [client_a.get(url, {"format": "jsonl"}).status_code for _ in range(3)] == [200, 200, 429]
    limited = client_a.get(url, {"format": "parquet"})
    assert limited.status_code == 429 and "throttled" in limited.json()["detail"].lower()
    assert "Retry-After" in limited
    assert client_a.get(f"/api/v1/shares/{share.pk}/").status_code == 200  # only downloads are limited
    assert Download.objects.count() == 2


def test_release_downloads_are_logged_with_their_size(arena, client, member_a):
    voted_battle(arena["a_listed"], arena["b_listed"])
    release = building.publish(build())
    path = building.release_path(release)

    response = client.get(f"/data/releases/{release.pk}/battles.parquet")
    assert response.status_code == 200
    client.head(f"/data/releases/{release.pk}/battles.parquet")  # a HEAD request is not a download
    client.force_login(member_a)
    client.get(f"/data/releases/{release.pk}/manifest.json")

    anonymous, member = Download.objects.order_by("id")
    assert (anonymous.user, anonymous.release, anonymous.format) == (None, release, "parquet")
    assert anonymous.bytes == (path / files.PARQUET_NAME).stat().st_size
    assert (member.user, member.format, member.bytes) == (member_a, "manifest", (path / "manifest.json").stat().st_size)


# --- admin ----------------------------------------------------------------------------------------


@pytest.fixture
def decider(client, staff):
    for codename in ("decide_datasharingagreement", "view_datasharingagreement", "view_providershare"):
        staff.user_permissions.add(Permission.objects.get(codename=codename))
    client.force_login(staff)
    return client


def test_staff_approve_and_revoke_in_admin_with_a_reason(decider, staff, provider_a, member_a):
    agreement, _ = sharing.agreement_accept(provider=provider_a, user=member_a)
    changelist = "/admin/releases/datasharingagreement/"
    confirm = decider.post(changelist, {"action": "approve", "_selected_action": [agreement.pk]})
    assert confirm.status_code == 200 and "Approve data-sharing agreements" in confirm.content.decode()
    agreement.refresh_from_db()
    assert agreement.state == "pending"  # nothing decided before the confirmation

    done = decider.post(
        changelist, {"action": "approve", "_selected_action": [agreement.pk], "confirm": "yes"}, follow=True
    )
    assert f"Agreement {agreement.pk} (Provider A) is approved." in done.content.decode()
    agreement.refresh_from_db()
    assert (agreement.state, agreement.decided_by) == ("approved", staff)

    no_reason = decider.post(changelist, {"action": "revoke", "_selected_action": [agreement.pk], "confirm": "yes"})
    assert "This field is required" in no_reason.content.decode()
    decider.post(
        changelist,
        {"action": "revoke", "_selected_action": [agreement.pk], "confirm": "yes", "reason": "breach"},
        follow=True,
    )
    agreement.refresh_from_db()
    assert (agreement.state, agreement.reason) == ("revoked", "breach")
    # Both decisions stay in the admin history, though the row keeps only the last.
    assert [e.change_message for e in LogEntry.objects.order_by("id")] == ["approved", "revoked: breach"]


def test_staff_without_the_permission_cannot_decide(client, staff_without_permission, provider_a, member_a):
    agreement, _ = sharing.agreement_accept(provider=provider_a, user=member_a)
    staff_without_permission.user_permissions.add(Permission.objects.get(codename="view_datasharingagreement"))
    client.force_login(staff_without_permission)
    page = client.get("/admin/releases/datasharingagreement/").content.decode()
    assert "Approve the selected agreements" not in page
    client.post(
        "/admin/releases/datasharingagreement/",
        {"action": "approve", "_selected_action": [agreement.pk], "confirm": "yes"},
    )
    agreement.refresh_from_db()
    assert agreement.state == "pending"


def test_the_share_admin_links_the_files_and_staff_downloads_stay_out_of_the_providers_log(
    decider, arena, approved_a, provider_a, client_a
):
    voted_battle(arena["a_listed"], arena["b_listed"])
    share = share_for(provider_a)
    page = decider.get(f"/admin/releases/providershare/{share.pk}/change/").content.decode()
    link = f"/api/v1/shares/{share.pk}/download/?format=parquet"
    assert link in page and "sha256" in page
    assert decider.get(link).status_code == 200
    staff_download = Download.objects.get()
    assert staff_download.provider is None and staff_download.share == share
    assert client_a.get("/api/v1/downloads/").json()["results"] == []


# --- commands --------------------------------------------------------------------------------


def test_agreement_and_build_share_from_the_shell(arena, provider_a, member_a, tmp_path, capsys):
    voted_battle(arena["a_listed"], arena["b_listed"])
    call_command("agreement", "provider-a", "--accepted-by", "alice@a.example", "--approve")
    agreement = DataSharingAgreement.objects.get()
    assert (agreement.state, agreement.accepted_by, agreement.decided_by) == ("approved", member_a, None)
    assert "from the shell" in agreement.reason.lower()

    out = tmp_path / "out"
    call_command("build_share", "Provider A", "--out", str(out))  # the name works as well as the slug
    printed = capsys.readouterr().out
    share = ProviderShare.objects.get()
    assert f"Share {share.pk} for Provider A built: 1 battles" in printed
    assert share.requested_by is None and share.state == ProviderShare.State.READY
    assert sorted(p.name for p in out.iterdir()) == sorted(files.FILE_NAMES)
    assert (out / files.JSONL_NAME).read_bytes() == sharing.share_file(share, "jsonl").read_bytes()


def test_build_share_exits_with_1_without_an_approved_agreement(arena, provider_a, member_a, capsys, monkeypatch):
    with pytest.raises(CommandError, match="Provider A has not accepted the data-sharing terms"):
        call_command("build_share", "provider-a")
    call_command("agreement", "provider-a", "--accepted-by", "alice@a.example")  # accepted, not approved
    # run_from_argv closes the connections when done, which would close the test's database.
    monkeypatch.setattr(connections, "close_all", lambda: None)
    with pytest.raises(SystemExit) as exit_info:
        execute_from_command_line(["manage.py", "build_share", "provider-a"])
    assert exit_info.value.code == 1
    assert "waiting for approval" in capsys.readouterr().err
    assert not ProviderShare.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["build_share", "nobody"], "There is no provider 'nobody'"),
        (["agreement", "provider-a", "--accepted-by", "nobody@example.com"], "There is no user"),
        (["agreement", "provider-a", "--accepted-by", "outsider@example.com"], "is not a member of Provider A"),
    ],
)
def test_the_commands_refuse_bad_input_clearly(provider_a, args, message):
    UserFactory(username="outsider@example.com")
    with pytest.raises(CommandError, match=message):
        call_command(*args)
    assert not DataSharingAgreement.objects.exists() and not DataRelease.objects.exists()


def test_the_openapi_schema_describes_the_sharing_endpoints(client):
    paths = client.get("/api/schema/", {"format": "json"}).json()["paths"]
    assert set(paths["/api/v1/agreements/"]) >= {"get", "post"}
    assert set(paths["/api/v1/shares/"]) >= {"get", "post"}
    assert "get" in paths["/api/v1/shares/{id}/"] and "get" in paths["/api/v1/downloads/"]
    download = paths["/api/v1/shares/{id}/download/"]["get"]
    assert set(download["responses"]) >= {"200", "403", "404", "409", "429"}
    (fmt,) = [p for p in download["parameters"] if p["name"] == "format"]
    assert sorted(fmt["schema"]["enum"]) == ["card", "fastchat", "jsonl", "manifest", "parquet"]
