from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from battles import anomalies

from . import services


@shared_task(autoretry_for=(OperationalError, InterfaceError), retry_backoff=True, retry_kwargs={"max_retries": 3})
def recompute_ratings() -> int:
    """A new published run from the votes counted so far. A rerun writes a new run and
    publishes it whole, so a redelivered task never leaves a half-written leaderboard.

    The anomalous-voter test runs first, so votes of voters it flags never enter a run."""
    if settings.ARENA_ANOMALY_DETECTION:
        anomalies.detect_anomalous_voters()
    return services.recompute().pk
