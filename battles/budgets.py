"""Daily budgets of model endpoints: what each answer costs, and when a model must rest.

Every side of every turn is one call to a model's endpoint, which its provider (or the
operator) pays for. Staff may give a model a budget per UTC day, in calls and in characters
(the conversation sent plus the answer received), in admin (EndpointBudget). Each answer
that ends, however it ends, is counted here (EndpointUsage, one row per model and day);
when a count reaches its budget the row is marked exhausted, and the pool
(battles/arena_pool.py) stops drawing the model until the day ends. Battles already
started finish their answers. This module is the only writer of EndpointUsage.
"""

from __future__ import annotations

import logging

from django.db import connection
from django.db.models import Exists, OuterRef

from arenasite import clock

from .models import EndpointBudget, EndpointUsage

logger = logging.getLogger(__name__)


def record_call(model_id: int, characters: int, *, refused: bool = False, rate_limited: bool = False) -> None:
    """Count one call of `characters` characters against the model's usage of today; `refused`
    (a 400 and the like) and `rate_limited` (a 429) are counted too, being failures of the
    call that leave the endpoint's health record alone (battles/clients/health.py)."""
    now = clock.now()
    today = now.date()
    # One statement, one round trip: every battle's two answers count against the same few
    # rows (one per model and day), so a read-then-update in a transaction would queue the
    # answers of the whole arena behind each other's row locks.
    requests, characters = _count(model_id, today, characters, int(refused), int(rate_limited))
    budget = EndpointBudget.objects.filter(model_id=model_id).values("daily_requests", "daily_characters").first()
    if budget is None:
        return
    over = (budget["daily_requests"] is not None and requests >= budget["daily_requests"]) or (
        budget["daily_characters"] is not None and characters >= budget["daily_characters"]
    )
    marked = 0
    if over:
        marked = EndpointUsage.objects.filter(model_id=model_id, day=today, exhausted_at__isnull=True).update(
            exhausted_at=now
        )
    if marked:
        logger.warning("model %s: today's endpoint budget is used up; it leaves the pool until the day ends", model_id)


def _count(model_id: int, day, characters: int, refused: int, rate_limited: int) -> tuple[int, int]:
    """Add one call to the model's usage of `day` (the row made if missing); its totals after."""
    table = EndpointUsage._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {table} (model_id, day, requests, characters, refused, rate_limited)
                VALUES (%s, %s, 1, %s, %s, %s)
                ON CONFLICT (model_id, day) DO UPDATE SET
                    requests = {table}.requests + 1,
                    characters = {table}.characters + EXCLUDED.characters,
                    refused = {table}.refused + EXCLUDED.refused,
                    rate_limited = {table}.rate_limited + EXCLUDED.rate_limited
                RETURNING requests, characters""",
            [model_id, day, characters, refused, rate_limited],
        )
        return cursor.fetchone()


def exhausted_today() -> Exists:
    """An expression for querysets of models: true when the model's budget ran out today."""
    return Exists(
        EndpointUsage.objects.filter(model=OuterRef("pk"), day=clock.now().date(), exhausted_at__isnull=False)
    )
