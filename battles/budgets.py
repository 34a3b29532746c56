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

from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q

from arenasite import clock

from .models import EndpointBudget, EndpointUsage

logger = logging.getLogger(__name__)


def record_call(model_id: int, characters: int, *, refused: bool = False, rate_limited: bool = False) -> None:
    """Count one call of `characters` characters against the model's usage of today; `refused`
    (a 400 and the like) and `rate_limited` (a 429) are counted too, being failures of the
    call that leave the endpoint's health record alone (battles/clients/health.py)."""
    now = clock.now()
    today = now.date()
    with transaction.atomic():
        EndpointUsage.objects.get_or_create(model_id=model_id, day=today)
        EndpointUsage.objects.filter(model_id=model_id, day=today).update(
            requests=F("requests") + 1,
            characters=F("characters") + characters,
            refused=F("refused") + int(refused),
            rate_limited=F("rate_limited") + int(rate_limited),
        )
        budget = EndpointBudget.objects.filter(model_id=model_id).first()
        if budget is None:
            return
        over = Q()
        if budget.daily_requests is not None:
            over |= Q(requests__gte=budget.daily_requests)
        if budget.daily_characters is not None:
            over |= Q(characters__gte=budget.daily_characters)
        if not over:
            return
        marked = EndpointUsage.objects.filter(over, model_id=model_id, day=today, exhausted_at__isnull=True).update(
            exhausted_at=now
        )
    if marked:
        logger.warning("model %s: today's endpoint budget is used up; it leaves the pool until the day ends", model_id)


def exhausted_today() -> Exists:
    """An expression for querysets of models: true when the model's budget ran out today."""
    return Exists(
        EndpointUsage.objects.filter(model=OuterRef("pk"), day=clock.now().date(), exhausted_at__isnull=False)
    )
