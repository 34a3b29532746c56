from datetime import timedelta

from celery import shared_task
from django.db import InterfaceError, OperationalError

from arenasite import clock

from . import building, sharing
from .dates import parse_cutoff
from .models import DataRelease, ProviderShare


@shared_task(autoretry_for=(OperationalError, InterfaceError), retry_backoff=True, retry_kwargs={"max_retries": 3})
def build_release(cutoff: str | None = None, release_id: int | None = None) -> int:
    """Build a release (cutoff: ISO date or date-time; default now). Given `release_id`, a
    release still `building` (this task, redelivered after its worker died) is built again
    from the start, so the task is idempotent."""
    if release_id is not None:
        release = DataRelease.objects.get(pk=release_id)
        if release.state != DataRelease.State.BUILDING:
            return release.pk
    else:
        release = building.start_release(parse_cutoff(cutoff) if cutoff else clock.now())
    return building.build(release).pk


# A share reads a provider's part of the unreleased pool; give it more than the default
# five minutes. On the soft limit the build fails cleanly (no files, share `failed`).
@shared_task(
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    retry_kwargs={"max_retries": 3},
    soft_time_limit=30 * 60,
    time_limit=31 * 60,
)
def build_share(share_id: int) -> int:
    """Build a requested share (releases/sharing.py `share_build`). Idempotent: a redelivered
    task finds the share ready or failed and stops, or still building and builds it again
    from the start; a database error leaves it building for the retry."""
    return sharing.share_build(share_id).pk


# A share whose build was never queued (the broker was down when it was requested) waits
# this long before the sweep builds it; a queued build normally starts within seconds.
SHARE_QUEUE_GRACE = timedelta(minutes=10)


@shared_task(
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    retry_kwargs={"max_retries": 3},
    soft_time_limit=60 * 60,
    time_limit=61 * 60,
)
def build_waiting_shares() -> list[int]:
    """Build the shares still `requested` after the grace period (beat runs this every few
    minutes), so derived work catches up once the broker is back. Building a share twice is
    harmless: share_build returns a share already ready as it is."""
    built = []
    for share in sharing.waiting_shares(SHARE_QUEUE_GRACE):
        # Claimed first, so two sweeps (or a late queued build) do not both start it.
        claimed = ProviderShare.objects.filter(pk=share.pk, state=ProviderShare.State.REQUESTED).update(
            state=ProviderShare.State.BUILDING
        )
        if claimed:
            built.append(sharing.share_build(share.pk).pk)
    return built
