"""The only writes of the transparency app: the hourly record of the expected battle shares."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from arenasite import clock
from battles.arena_pool import load_pool
from battles.sampling import NotEnoughModels

from .models import ExpectedShare, ExpectedShareSnapshot


def snapshot_expected_shares(now: datetime | None = None) -> ExpectedShareSnapshot | None:
    """Record the pool's expected shares for the current hour. Idempotent within the hour:
    returns None when this hour is already recorded.

    A closed arena (fewer than two models to draw) is recorded as a snapshot with no shares:
    nobody was expected to be served in that hour.
    """
    now = now or clock.now()
    hour = now.replace(minute=0, second=0, microsecond=0)
    try:
        shares = load_pool().expected_shares()
    except NotEnoughModels:
        shares = {}
    with transaction.atomic():
        snapshot, created = ExpectedShareSnapshot.objects.get_or_create(taken_at=hour, defaults={"day": hour.date()})
        if not created:
            return None
        ExpectedShare.objects.bulk_create(
            [ExpectedShare(snapshot=snapshot, arena_model=model, share=share) for model, share in shares.items()]
        )
    return snapshot
