"""/transparency/: served against predicted shares per provider and day, variants tested, early data
received (counts only), retirements by rule and the policy log; nothing of a model under codename."""

from datetime import date, datetime, timedelta

import pytest
import time_machine
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test.utils import CaptureQueriesContext

from arenasite import clock
from battles.models import SamplingShare
from providers import lifecycle
from providers.models import ArenaModel
from releases.models import DataSharingAgreement, Download, ProviderShare
from transparency import selectors, services
from transparency.models import ExpectedShare, ExpectedShareSnapshot, PolicyChange

from ..conftest import make_model
from ..factories import ProviderFactory

pytestmark = pytest.mark.django_db
S = ArenaModel.Status
NOON = datetime(2026, 3, 10, 12, 0, tzinfo=clock.now().tzinfo)
TODAY = NOON.date()


def served(day: date, counts: dict):
    SamplingShare.objects.bulk_create(SamplingShare(day=day, arena_model=m, battles=n) for m, n in counts.items())


def predicted(day: date, hour: int, shares: dict):
    taken = datetime(day.year, day.month, day.day, hour, tzinfo=NOON.tzinfo)
    snapshot = ExpectedShareSnapshot.objects.create(taken_at=taken, day=day)
    ExpectedShare.objects.bulk_create(
        ExpectedShare(snapshot=snapshot, arena_model=m, share=s) for m, s in shares.items()
    )


@pytest.fixture
def arena(provider_a, provider_b, staff):
    models = {
        "a1": make_model(provider_a, S.LISTED, staff=staff, name="a-one"),
        "a2": make_model(provider_a, S.LISTED, staff=staff, name="a-two"),
        "b1": make_model(provider_b, S.LISTED, staff=staff, name="b-one"),
        "secret": make_model(provider_b, S.INITIAL_RATING, staff=staff, name="b-secret"),
    }
    # Listed before the day the page is read on (a provider counts only its public models).
    ArenaModel.objects.filter(listed_at__isnull=False).update(listed_at=min(clock.now(), NOON) - timedelta(days=1))
    return models


def by_provider(summaries):
    return {s.key: s for s in summaries}


def test_served_and_predicted_shares_per_provider_and_day(arena):
    # 10 battles: A's models appear 12 times, B's 8, of 20 appearances.
    served(TODAY, {arena["a1"]: 7, arena["a2"]: 5, arena["b1"]: 3, arena["secret"]: 5})
    # Two snapshots: A predicted (1.0 + 1.4) / 2 / 2 = 0.6 of the appearances.
    predicted(TODAY, 1, {arena["a1"]: 0.5, arena["a2"]: 0.5, arena["b1"]: 0.5, arena["secret"]: 0.5})
    predicted(TODAY, 2, {arena["a1"]: 0.7, arena["a2"]: 0.7, arena["b1"]: 0.6})

    summaries = by_provider(selectors.provider_summaries(TODAY))

    a_today, b_today = summaries["provider-a"].days[-1], summaries["provider-b"].days[-1]
    assert (a_today.day, a_today.battles, a_today.day_total) == (TODAY, 12, 20)
    assert a_today.served == pytest.approx(0.6) and a_today.expected == pytest.approx(0.6)
    # B's model in initial rating is not public: its 5 appearances and its predicted share are
    # counted with every provider's hidden models, not with B.
    assert b_today.served == pytest.approx(0.15) and b_today.expected == pytest.approx(0.275)
    hidden = summaries[selectors.HIDDEN_KEY].days[-1]
    assert hidden.served == pytest.approx(0.25) and hidden.expected == pytest.approx(0.125)
    yesterday = summaries["provider-a"].days[-2]
    assert yesterday.served is None and yesterday.expected is None  # no battles, no snapshot
    assert len(summaries["provider-a"].days) == selectors.DAYS


def test_a_provider_served_less_than_predicted_shows_the_gap(arena):
    served(TODAY, {arena["a1"]: 1, arena["b1"]: 9, arena["secret"]: 10})
    predicted(TODAY, 1, {arena["a1"]: 1.0, arena["b1"]: 1.0})
    summary = by_provider(selectors.provider_summaries(TODAY))["provider-a"]
    assert summary.served_total == pytest.approx(0.05) and summary.expected_total == pytest.approx(0.5)


def test_variants_tested_and_early_access_counts(arena, provider_a, provider_b, member_a, staff, settings):
    make_model(provider_a, S.WITHDRAWN, staff=staff)
    make_model(provider_a, S.DRAFT, staff=staff)  # never tested
    make_model(provider_a, S.REJECTED, staff=staff)  # never tested
    agreement = DataSharingAgreement.objects.create(provider=provider_a, terms_version="t", accepted_by=member_a)
    ready = ProviderShare.objects.create(provider=provider_a, agreement=agreement, state="ready", battle_count=40)
    ProviderShare.objects.create(provider=provider_a, agreement=agreement, state="ready", battle_count=2)
    ProviderShare.objects.create(provider=provider_a, agreement=agreement, state="failed", battle_count=99)
    Download.objects.bulk_create(
        Download(user=member_a, provider=provider_a, share=ready, format="jsonl", bytes=10) for _ in range(3)
    )
    Download.objects.create(user=None, provider=None, release=None, format="jsonl", bytes=10)  # a release download

    summaries = by_provider(selectors.provider_summaries(TODAY))

    a, b = summaries["provider-a"], summaries["provider-b"]
    assert (a.variants, a.shares, a.shared_battles, a.downloads) == (2, 2, 42, 3)
    assert (b.variants, b.shares, b.shared_battles, b.downloads) == (1, 0, 0, 0)
    # A's withdrawal is public only after the delay, B's model in initial rating when listed.
    hidden = summaries[selectors.HIDDEN_KEY]
    assert (hidden.provider, hidden.variants, hidden.shares, hidden.downloads) == (None, 2, 0, 0)
    later = clock.now() + timedelta(days=settings.ARENA_RETRACTION_DELAY_DAYS, hours=1)
    assert by_provider(selectors.provider_summaries(TODAY, now=later))["provider-a"].variants == 3


def test_the_page_shows_providers_and_never_a_model(client, arena):
    served(TODAY, {arena["a1"]: 3, arena["secret"]: 3})
    PolicyChange.objects.create(
        title="Cap lowered",
        setting="ARENA_INITIAL_RATING_CAP",
        old_value="5",
        new_value="3",
        description="Fewer private variants.",
    )
    with time_machine.travel(NOON, tick=False):
        html = client.get("/transparency/").content.decode()
    for shown in (
        "Provider A",
        "Provider B",
        "Cap lowered",
        "ARENA_INITIAL_RATING_CAP",
        "Fewer private variants.",
        "transparency/plots.js",
        "transparency-figures",
    ):
        assert shown in html
    for model in arena.values():
        assert model.name not in html and model.codename not in html


def test_the_page_reads_in_a_constant_number_of_queries(client, arena, staff, django_assert_max_num_queries):
    def more_providers(n):
        for _ in range(n):
            provider = ProviderFactory()
            model = make_model(provider, S.LISTED, staff=staff)
            served(TODAY - timedelta(days=ArenaModel.objects.count() % 20), {model: 4, arena["a1"]: 4})
            predicted(TODAY - timedelta(days=ArenaModel.objects.count() % 20), 3, {model: 1.0})

    more_providers(1)
    with time_machine.travel(NOON, tick=False), CaptureQueriesContext(connection) as few:
        client.get("/transparency/")
    more_providers(3)
    with time_machine.travel(NOON, tick=False), CaptureQueriesContext(connection) as more:
        client.get("/transparency/")
    assert len(more.captured_queries) == len(few.captured_queries)
    with time_machine.travel(NOON, tick=False), django_assert_max_num_queries(9):
        client.get("/transparency/")


def test_the_policy_log_is_append_only():
    change = PolicyChange.objects.create(title="Delay set", setting="ARENA_RETRACTION_DELAY_DAYS", new_value="30")
    change.title = "rewritten"
    with pytest.raises(PermissionDenied):
        change.save()
    with pytest.raises(PermissionDenied):
        change.delete()
    with pytest.raises(PermissionDenied):
        PolicyChange.objects.update(title="rewritten")
    with pytest.raises(PermissionDenied):
        PolicyChange.objects.all().delete()


def test_staff_record_policy_changes_in_admin_and_cannot_edit_them(admin_client, admin_user):
    response = admin_client.post(
        "/admin/transparency/policychange/add/",
        {
            "effective_at_0": "2026-03-01",
            "effective_at_1": "00:00:00",
            "title": "Provisional threshold",
            "setting": "ARENA_PROVISIONAL_VOTES",
            "old_value": "",
            "new_value": "2000",
            "description": "New rule.",
        },
    )
    assert response.status_code == 302
    change = PolicyChange.objects.get()
    assert change.recorded_by == admin_user
    page = admin_client.get(f"/admin/transparency/policychange/{change.pk}/change/").content.decode()
    assert 'name="title"' not in page  # read-only
    assert (
        admin_client.post(f"/admin/transparency/policychange/{change.pk}/delete/", {"post": "yes"}).status_code == 403
    )


def test_a_snapshot_records_the_pools_expected_shares_once_an_hour(provider_a, provider_b, staff):
    demo = [make_model(p, S.LISTED, staff=staff, is_demo=True) for p in (provider_a, provider_a, provider_b)]
    make_model(provider_b, S.LISTED, staff=staff)  # no endpoint, not drawn
    with time_machine.travel(NOON + timedelta(minutes=30), tick=False):
        snapshot = services.snapshot_expected_shares()
        assert services.snapshot_expected_shares() is None  # a redelivered task records nothing new
    assert snapshot.taken_at == NOON and snapshot.day == TODAY
    shares = dict(snapshot.shares.values_list("arena_model_id", "share"))
    assert set(shares) == {m.pk for m in demo}
    assert sum(shares.values()) == pytest.approx(2.0)


def test_a_closed_arena_is_recorded_as_a_snapshot_without_shares(provider_a, staff):
    make_model(provider_a, S.LISTED, staff=staff, is_demo=True)  # one model: no battle possible
    with time_machine.travel(NOON, tick=False):
        snapshot = services.snapshot_expected_shares()
    assert snapshot is not None and not snapshot.shares.exists()


def test_a_provider_whose_first_model_enters_the_blind_test_is_not_shown_until_the_model_is_public(
    client, arena, staff, settings
):
    newcomer = ProviderFactory(name="Stealth Labs", slug="stealth")
    secret = make_model(newcomer, S.INITIAL_RATING, staff=staff, name="stealth-one")
    served(TODAY, {arena["a1"]: 6, secret: 6})
    predicted(TODAY, 1, {arena["a1"]: 1.0, secret: 1.0})

    with time_machine.travel(NOON, tick=False):
        html = client.get("/transparency/").content.decode()
    assert "Stealth Labs" not in html and "stealth" not in html
    assert secret.codename not in html and secret.name not in html
    assert selectors.HIDDEN_LABEL in html  # its battles are there, under no provider

    # Withdrawn, it is public after the delay, with its battles and its place among the variants.
    withdrawn = clock.now()
    with time_machine.travel(withdrawn, tick=False):
        lifecycle.transition(model_id=secret.pk, action="withdraw", actor=staff, reason="not ready")
    just_before = withdrawn + timedelta(days=settings.ARENA_RETRACTION_DELAY_DAYS) - timedelta(minutes=1)
    assert "stealth" not in by_provider(selectors.provider_summaries(TODAY, now=just_before))
    after = by_provider(selectors.provider_summaries(TODAY, now=just_before + timedelta(minutes=2)))
    assert after["stealth"].variants == 1 and after["stealth"].days[-1].served == pytest.approx(0.5)
    assert after[selectors.HIDDEN_KEY].variants == 1  # B's model still in initial rating


def test_a_listed_providers_figures_do_not_move_when_its_new_model_enters_the_blind_test(arena, staff):
    served(TODAY, {arena["a1"]: 4, arena["b1"]: 4})
    providers = ("provider-a", "provider-b")
    summaries = by_provider(selectors.provider_summaries(TODAY))
    before = {key: (summaries[key].variants, summaries[key].days[-1].battles) for key in providers}

    newcomer = make_model(arena["a1"].provider, S.INITIAL_RATING, staff=staff, name="a-new")
    served(TODAY, {newcomer: 4})
    after = by_provider(selectors.provider_summaries(TODAY))

    assert {key: (after[key].variants, after[key].days[-1].battles) for key in providers} == before
    assert after[selectors.HIDDEN_KEY].variants == 2  # the newcomer and B's secret, together
