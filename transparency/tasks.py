from celery import shared_task
from django.db import InterfaceError, OperationalError

from . import services


@shared_task(autoretry_for=(OperationalError, InterfaceError), retry_backoff=True, retry_kwargs={"max_retries": 3})
def snapshot_expected_shares() -> bool:
    """Hourly: the expected battle shares, for the served-against-expected plots. Safe to run twice."""
    return services.snapshot_expected_shares() is not None
