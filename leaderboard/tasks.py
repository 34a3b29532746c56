from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from battles import anomaly_detection

from . import services


@shared_task(autoretry_for=(OperationalError, InterfaceError), retry_backoff=True, retry_kwargs={"max_retries": 3})
def recompute_ratings() -> int:
    """A new published run from the votes counted so far. A rerun writes a new run and
    publishes it whole, so a redelivered task never leaves a half-written leaderboard.

    The anomalous-voter test runs first, so votes of voters it flags never enter a run. It
    goes on from what its last run kept; with detection off that is dropped, so no notes of
    new votes pile up for a run that will not come (the next one reads every vote)."""
    if settings.ARENA_ANOMALY_DETECTION:
        anomaly_detection.detect_anomalous_voters()
    else:
        anomaly_detection.forget_state()
    return services.recompute().pk
