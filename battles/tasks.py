from celery import shared_task
from django.db import InterfaceError, OperationalError

from . import anomaly_detection


@shared_task(autoretry_for=(OperationalError, InterfaceError), retry_backoff=True, retry_kwargs={"max_retries": 3})
def detect_anomalous_voters() -> int:
    """Run the anomalous-voter test and exclude flagged voters' votes; the number flagged.
    Idempotent, so a redelivered task changes nothing more. The rating task runs it first."""
    return len(anomaly_detection.detect_anomalous_voters().flagged)
