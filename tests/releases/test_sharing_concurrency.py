"""A revocation and a share request at once: the agreement's row lock orders them.

SQLite has no row locks (select_for_update is a no-op there), so these run on PostgreSQL.
"""

import threading

import pytest
from django.db import close_old_connections, connection, transaction

from releases import sharing
from releases.models import DataSharingAgreement, ProviderShare

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL"),
]


@pytest.fixture(autouse=True)
def releases_in_tmp(settings, tmp_path):
    settings.RELEASES_DIR = tmp_path / "releases"


def run_in_thread(fn):
    result = {}

    def target():
        try:
            result["value"] = fn()
        except Exception as exc:  # handed back to the test
            result["error"] = exc
        finally:
            close_old_connections()
            connection.close()

    thread = threading.Thread(target=target)
    thread.start()
    return thread, result


def test_a_revocation_waits_for_a_share_request_in_flight_and_the_build_then_fails(provider_a, member_a, staff):
    agreement, _ = sharing.agreement_accept(provider=provider_a, user=member_a)
    sharing.agreement_decide(agreement_id=agreement.pk, approve=True, by=staff)
    requested, release = threading.Event(), threading.Event()

    def request_and_hold():
        with transaction.atomic():
            share = sharing.share_request(provider=provider_a, user=member_a, enqueue=False)
            requested.set()
            release.wait(10)  # keep the agreement locked until the revocation is queued behind it
        return share

    first, first_result = run_in_thread(request_and_hold)
    assert requested.wait(10)
    second, second_result = run_in_thread(
        lambda: sharing.agreement_decide(agreement_id=agreement.pk, approve=False, by=staff, reason="breach")
    )
    second.join(0.5)
    assert second.is_alive(), "the revocation must wait for the share request's lock"
    release.set()
    first.join(10)
    second.join(10)

    assert "error" not in first_result and "error" not in second_result
    assert DataSharingAgreement.objects.get().state == DataSharingAgreement.State.REVOKED
    share = sharing.share_build(first_result["value"].pk)
    assert share.state == ProviderShare.State.FAILED and "revoked" in share.error
    with pytest.raises(sharing.SharingRefused, match="revoked"):
        sharing.share_request(provider=provider_a, user=member_a, enqueue=False)
