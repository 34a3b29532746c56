from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from . import health, lifecycle

# Database hiccups are worth a retry; everything the tasks do is idempotent.
_TRANSIENT = (OperationalError, InterfaceError)


@shared_task(autoretry_for=_TRANSIENT, retry_backoff=True, retry_kwargs={"max_retries": 5})
def carry_out_due_transitions() -> int:
    """Listings past their heads-up and retirements past the listing window."""
    return len(lifecycle.carry_out_due())


@shared_task(autoretry_for=_TRANSIENT, retry_backoff=True, retry_kwargs={"max_retries": 5})
def check_endpoints() -> dict[str, int]:
    return health.check_pool()
