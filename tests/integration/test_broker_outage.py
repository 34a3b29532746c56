"""The broker down while people vote: votes are taken and stored, requests that queue work
are still answered, and the work is done once the broker is back.

The site runs under gunicorn with the production settings (tasks queued, never run in the
request) and a broker address where nothing listens. The Celery worker of the
`celery_worker_process` fixture stands for the broker's return: it runs on the real one.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from arenasite import clock
from battles.models import Vote
from providers.models import ApiToken, ArenaModel
from releases import sharing, tasks
from releases.models import ProviderShare

from ..conftest import make_model
from ..support.http import Voter
from ..support.processes import site_process
from .conftest import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

DEAD_BROKER = "redis://127.0.0.1:9/0"  # the discard port: nothing listens there


@pytest.fixture(autouse=True)
def releases_in_tmp(settings, tmp_path, monkeypatch):
    # The site, the worker and this test write and read the same folder.
    monkeypatch.setenv("RELEASES_DIR", str(tmp_path / "releases"))
    settings.RELEASES_DIR = tmp_path / "releases"


def test_votes_and_share_requests_are_taken_while_the_broker_is_down_and_the_work_is_done_after(
    provider_a, provider_b, member_a, staff, tmp_path, celery_worker_process
):
    make_model(provider_a, ArenaModel.Status.LISTED, name="a-listed", is_demo=True)
    make_model(provider_b, ArenaModel.Status.LISTED, name="b-listed", is_demo=True)
    agreement, _ = sharing.agreement_accept(provider=provider_a, user=member_a)
    sharing.agreement_decide(agreement_id=agreement.pk, approve=True, by=staff)
    _, token = ApiToken.objects.issue(user=member_a, name="outage test")

    fast = {"ARENA_DEMO_CHUNK_DELAY": "0", "ARENA_ANSWER_SAVE_INTERVAL": "0"}
    with site_process(tmp_path / "site.log", CELERY_BROKER_URL=DEAD_BROKER, **fast) as url:
        status, health, _ = Voter(url).call("/healthz")
        assert status == 503 and not health["broker"]["ok"] and health["database"]["ok"]

        voter = Voter(url)
        battle_id = voter.battle_answered()
        status, vote, _ = voter.call(f"/api/v1/battles/{battle_id}/vote/", {"winner": "tie"})
        assert status == 200 and vote["winner"] == "tie"

        status, share, _ = Voter(url, token).call("/api/v1/shares/", {"provider": provider_a.slug})
        assert status == 201 and share["state"] == "requested"

    assert Vote.objects.get(battle__question_id=battle_id).winner == "tie"
    waiting = ProviderShare.objects.get(pk=share["id"])
    assert waiting.state == ProviderShare.State.REQUESTED  # its build could not be queued

    # The broker is back (the worker's); the next sweep, past the grace period, builds it.
    ProviderShare.objects.filter(pk=waiting.pk).update(
        requested_at=clock.now() - tasks.SHARE_QUEUE_GRACE - timedelta(minutes=1)
    )
    celery_worker_process("releases.tasks.build_waiting_shares")
    assert wait_for(lambda: ProviderShare.objects.get(pk=waiting.pk).state == ProviderShare.State.READY), (
        "the sweep did not build the waiting share"
    )
    assert sharing.share_file(ProviderShare.objects.get(pk=waiting.pk), "jsonl").exists()


def test_the_sweep_leaves_recent_and_started_shares_alone(provider_a, member_a, staff):
    agreement, _ = sharing.agreement_accept(provider=provider_a, user=member_a)
    sharing.agreement_decide(agreement_id=agreement.pk, approve=True, by=staff)
    old = sharing.share_request(provider=provider_a, user=member_a, enqueue=False)
    recent = sharing.share_request(provider=provider_a, user=member_a, enqueue=False)
    started = sharing.share_request(provider=provider_a, user=member_a, enqueue=False)
    long_ago = clock.now() - tasks.SHARE_QUEUE_GRACE - timedelta(minutes=1)
    ProviderShare.objects.filter(pk__in=[old.pk, started.pk]).update(requested_at=long_ago)
    ProviderShare.objects.filter(pk=started.pk).update(state=ProviderShare.State.BUILDING)

    assert tasks.build_waiting_shares() == [old.pk]
    states = dict(ProviderShare.objects.values_list("pk", "state"))
    assert states == {old.pk: "ready", recent.pk: "requested", started.pk: "building"}
