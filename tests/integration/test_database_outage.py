"""The database goes away while requests arrive: a clear 503, nothing half-written, and the
service comes back by itself.

A real HTTP server on loopback (pytest-django's live server) answers voters while the
test database is cut off the way a restart looks to the site: every open session is
terminated and new connections are refused (`ALLOW_CONNECTIONS false`), for that database
only, so the rest of the cluster is untouched. Then connections are allowed again.
"""

from __future__ import annotations

import threading
import time
import urllib.error

import psycopg
import pytest
from django.db import connection
from django.db.models import Sum
from django.test import override_settings
from psycopg import sql

from battles.models import Battle, SamplingShare, Vote
from providers.models import ArenaModel

from ..conftest import make_model
from ..factories import ProviderFactory
from ..support.http import PROMPT, Voter

pytestmark = [pytest.mark.django_db(transaction=True)]

FAST = {"ARENA_DEMO_CHUNK_DELAY": 0.0, "ARENA_ANSWER_SAVE_INTERVAL": 0.0}


@pytest.fixture
def outage():
    """cut() and restore() the test database, as a restart looks from the site."""
    if connection.vendor != "postgresql":
        pytest.skip("cuts a PostgreSQL database off")
    db = connection.settings_dict
    name = sql.Identifier(db["NAME"])
    admin = psycopg.connect(
        dbname="postgres",
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"],
        password=db["PASSWORD"],
        autocommit=True,
    )

    def cut() -> None:
        admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(name))
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [db["NAME"]],
        )

    def restore() -> None:
        admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(name))
        try:
            connection.close()  # this thread's session was terminated too; the next query reconnects
        except Exception:  # noqa: BLE001 (closing a connection the server already dropped)
            pass

    try:
        yield cut, restore
    finally:
        restore()
        admin.close()


@pytest.fixture
def pool():
    provider = ProviderFactory(name="Northwind Research", slug="northwind")
    return [make_model(provider, ArenaModel.Status.LISTED, name=f"northwind-{n}", is_demo=True) for n in "ab"]


def test_requests_get_a_clear_503_while_the_database_is_away_and_succeed_after(live_server, pool, outage):
    cut, restore = outage
    voter = Voter(live_server.url)
    with override_settings(**FAST):
        battle_id = voter.battle_answered()

        cut()
        status, body, headers = voter.call(f"/api/v1/battles/{battle_id}/vote/", {"winner": "model_a"})
        assert status == 503 and headers["Retry-After"] == "5"
        assert "database" in body["detail"] and "nothing was saved" in body["detail"]
        assert voter.call("/api/v1/battles/", {"prompt": PROMPT})[0] == 503
        status, page, headers = voter.call("/arena/")
        assert status == 503 and "Briefly unavailable" in page and headers["Retry-After"] == "5"
        assert voter.call("/healthz")[0] == 503

        restore()
        # The same vote sent again: the first attempt wrote nothing, this one is stored once.
        status, body, _ = voter.call(f"/api/v1/battles/{battle_id}/vote/", {"winner": "model_a"})
    assert (
        status == 200
        and body["winner"] == "model_a"
        and {body["model_a"], body["model_b"]}
        == {
            "northwind-a",
            "northwind-b",
        }
    )
    assert Vote.objects.filter(battle__question_id=battle_id).count() == 1


def test_voters_sending_requests_through_an_outage_see_201_or_503_and_nothing_is_half_written(
    live_server, pool, outage
):
    cut, restore = outage
    voters = [Voter(live_server.url) for _ in range(4)]
    answers: list[tuple[int, str | None]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def keep_creating(voter: Voter) -> None:
        while not stop.is_set():
            try:
                status, body, _ = voter.call("/api/v1/battles/", {"prompt": PROMPT})
            except (urllib.error.URLError, ConnectionError) as exc:  # no answer at all: a failure of the test
                status, body = 0, repr(exc)
            with lock:
                answers.append((status, body["id"] if status == 201 else None))

    with override_settings(**FAST):
        for voter in voters:
            voter.battle_answered()  # each voter has its session before the outage
        threads = [threading.Thread(target=keep_creating, args=(v,)) for v in voters]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        cut()
        time.sleep(1.5)
        restore()
        time.sleep(1.0)
        stop.set()
        for thread in threads:
            thread.join(30)

    statuses = [status for status, _ in answers]
    assert set(statuses) <= {201, 503}, sorted(set(statuses))
    assert 503 in statuses, "no request arrived during the outage"
    last_answers = statuses[-len(voters) :]
    assert set(last_answers) == {201}, "the service did not come back by itself"

    acknowledged = {battle_id for status, battle_id in answers if status == 201}
    stored = set(Battle.objects.values_list("question_id", flat=True))
    assert acknowledged <= stored
    # Each stored battle is whole: its served pair was counted in the same transaction.
    served = SamplingShare.objects.aggregate(total=Sum("battles"))["total"]
    assert served == 2 * Battle.objects.filter(anony=True).count()
