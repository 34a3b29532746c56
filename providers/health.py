"""Endpoint health checks for models in the battle pool.

A check is one real chat-completions call with a one-token answer. Its result is kept
on the model: when the endpoint went offline, the last error, and whether it has become
a retirement candidate (offline for too long after its listing window).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from django.conf import settings

from arenasite import clock

from .endpoints import endpoint_refusal
from .models import ArenaModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    error: str = ""


def probe_endpoint(model: ArenaModel, *, timeout: float | None = None) -> CheckResult:
    """Ask the endpoint for a one-token answer; any failure is reported, never raised."""
    if model.is_demo:
        return CheckResult(ok=True)  # the local demo backend needs no network
    if not model.has_endpoint:
        return CheckResult(ok=False, error="No endpoint configured.")
    refusal = endpoint_refusal(model.endpoint_base_url)
    if refusal:
        return CheckResult(ok=False, error=refusal)
    url = model.endpoint_base_url.rstrip("/") + "/chat/completions"
    headers = {"Authorization": f"Bearer {model.endpoint_api_key}"} if model.endpoint_api_key else {}
    body = {
        "model": model.endpoint_model_id,
        "messages": [{"role": "user", "content": "ping"}],
        "max_tokens": 1,
        "stream": False,
    }
    try:
        response = httpx.post(url, json=body, headers=headers, timeout=timeout or settings.ARENA_HEALTH_CHECK_TIMEOUT)
    except httpx.HTTPError as exc:
        return CheckResult(ok=False, error=f"{type(exc).__name__}: {exc}"[:500])
    if response.status_code != 200:
        return CheckResult(ok=False, error=f"HTTP {response.status_code}: {response.text[:200]}")
    try:
        choices = response.json()["choices"]
        if not isinstance(choices, list) or not choices:
            raise ValueError("no choices")
    except (ValueError, KeyError, TypeError) as exc:
        return CheckResult(ok=False, error=f"Not a chat-completions answer ({exc}).")
    return CheckResult(ok=True)


def record_check(model: ArenaModel, result: CheckResult, now: datetime) -> ArenaModel:
    """Store one check's result and re-derive the candidate flag. Idempotent for a given result."""
    model.endpoint_last_checked_at = now
    if result.ok:
        model.endpoint_last_ok_at = now
        model.endpoint_offline_since = None
        model.endpoint_last_error = ""
        model.retirement_candidate_since = None
    else:
        model.endpoint_offline_since = model.endpoint_offline_since or now
        model.endpoint_last_error = result.error[:500]
        model.retirement_candidate_since = retirement_candidate_since(model)
    model.save(
        update_fields=[
            "endpoint_last_checked_at",
            "endpoint_last_ok_at",
            "endpoint_offline_since",
            "endpoint_last_error",
            "retirement_candidate_since",
        ]
    )
    return model


def retirement_candidate_since(model: ArenaModel) -> datetime | None:
    """When an offline listed model became a retirement candidate, if it has.

    Offline time inside the listing window does not count: the grace period starts at
    the later of going offline and the end of the window.
    """
    if model.status != ArenaModel.Status.LISTED or model.endpoint_offline_since is None:
        return None
    window_end = model.listing_window_ends_at
    if window_end is None:  # a listed model has a listing date; one that lost it is no candidate
        return None
    start = max(model.endpoint_offline_since, window_end)
    candidate_at = start + timedelta(days=settings.ARENA_OFFLINE_RETIREMENT_DAYS)
    return candidate_at if candidate_at <= clock.now() else None


def check_pool(now: datetime | None = None) -> dict[str, int]:
    """Check every model in the pool; report listed models offline inside their window."""
    now = now or clock.now()
    counts = {"checked": 0, "ok": 0, "failed": 0}
    # Models without an endpoint (imported history) have nothing to check.
    checkable = ArenaModel.objects.in_pool().exclude(is_demo=False, endpoint_base_url="")
    for model in checkable.order_by("pk"):
        result = probe_endpoint(model)
        record_check(model, result, now)
        counts["checked"] += 1
        counts["ok" if result.ok else "failed"] += 1
        if not result.ok:
            logger.warning("health: %s endpoint failed: %s", model.name, result.error)
    for model in ArenaModel.objects.offline_in_listing_window(now):
        logger.error(
            "health: %s is listed and offline inside its %d-day window (offline since %s)",
            model.name,
            settings.ARENA_MIN_LISTED_DAYS,
            model.endpoint_offline_since,
        )
    return counts
