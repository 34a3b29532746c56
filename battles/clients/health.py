"""A battle's model call, kept on the model's endpoint health record.

The same fields the lifecycle health checks keep (providers/health.py): a failure that
says the endpoint is down marks it offline, a complete answer clears it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator

from arenasite import clock
from providers import health
from providers.models import ArenaModel

from .base import ModelCallFailed

logger = logging.getLogger(__name__)


def recording_outcome(model: ArenaModel, chunks: Iterator[str]) -> Iterator[str]:
    try:
        yield from chunks
    except ModelCallFailed as exc:
        record_failure(model, exc)
        raise
    record_success(model)


async def arecording_outcome(model: ArenaModel, chunks: AsyncIterator[str]) -> AsyncIterator[str]:
    """recording_outcome for an answer on an event loop: the health writes run on a thread."""
    try:
        async for piece in chunks:
            yield piece
    except ModelCallFailed as exc:
        await asyncio.to_thread(record_failure, model, exc)
        raise
    if _failure_on_record(model):
        await asyncio.to_thread(record_success, model)


def _failure_on_record(model: ArenaModel) -> bool:
    return model.endpoint_offline_since is not None or bool(model.endpoint_last_error)


def record_failure(model: ArenaModel, error: ModelCallFailed) -> ArenaModel:
    """Keep a failed battle call on the model like a failed health check, so the lifecycle
    tasks see it (offline since, last error, retirement candidate)."""
    if not error.counts_against_endpoint:
        # Reported, not recorded: the endpoint stays healthy and in the pool. The daily usage
        # counts refusals and 429s (battles/budgets.py), so staff see a model that is often
        # rate limited or given conversations too long for it.
        logger.warning("battle: %s did not answer this request (endpoint health unchanged): %s", model.name, error)
        return model
    logger.warning("battle: %s endpoint failed: %s", model.name, error)
    return health.record_check(model, health.CheckResult(ok=False, error=f"In a battle: {error}"), clock.now())


def record_success(model: ArenaModel) -> ArenaModel:
    """Clear a recorded failure after a complete answer, as a passing health check would.

    A model with nothing on record is not written: one write per answer would make the
    pool's busiest rows the hottest rows in the database. The instance may be a little
    stale (loaded when the battle started); the next health check corrects any miss.
    """
    if not _failure_on_record(model):
        return model
    return health.record_check(model, health.CheckResult(ok=True), clock.now())
