"""What starting a battle costs: limits on new battles and turns, before anything is stored.

Every battle start and every added turn makes two paid model calls, so a script that can
start battles freely drains the operator's budget and fills the answer loop that all
voters share. Two kinds of limit stop it, both checked before the battle is written:

- rates (ARENA_BATTLE_RATE_*): starts plus turns per voter, per client address and per
  network, each as fixed windows counted in the shared cache. A request is counted in every
  window only when it passes all of them, so refused requests use up nothing;
- battles in flight (ARENA_BATTLES_IN_FLIGHT_*): battles still being answered, per voter and
  per client address, read from the database. At most a couple per voter, and a few per
  address, so one client holds at most a few of the answers in the loop however fast it asks:
  this is the per-client fairness of the answering pool.

A refusal is LimitReached, with a sentence for the voter and the seconds after which trying
again can succeed (the API's Retry-After).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from arenasite import clock
from arenasite.rates import Rate, parse_rates

from .answering import stuck_after
from .models import Battle
from .voters import Voter

# What each scope is called in a refusal.
_WHO = {"voter": "You have", "address": "Your address has", "network": "Your network has"}
_PERIOD_WORDS = {1: "second", 60: "minute", 3600: "hour", 86400: "day"}
# How long to wait for a battle in flight to be answered before trying again.
IN_FLIGHT_RETRY_SECONDS = 5


class LimitReached(Exception):
    def __init__(self, message: str, retry_after: int):
        self.message = message
        self.retry_after = max(1, retry_after)
        super().__init__(message)


@dataclass(frozen=True)
class _Window:
    key: str
    rate: Rate
    resets_in: float


def _windows(scope: str, ident: str, rates: tuple[Rate, ...], now: float) -> list[_Window]:
    windows = []
    for rate in rates:
        index = int(now // rate.seconds)
        key = f"arena-rate:{scope}:{rate}:{ident}:{index}"
        windows.append(_Window(key, rate, (index + 1) * rate.seconds - now))
    return windows


def _rates_for(voter: Voter) -> list[tuple[str, str, tuple[Rate, ...]]]:
    return [
        ("voter", voter.judge, parse_rates(settings.ARENA_BATTLE_RATE_VOTER)),
        ("address", voter.address, parse_rates(settings.ARENA_BATTLE_RATE_ADDRESS)),
        ("network", voter.network, parse_rates(settings.ARENA_BATTLE_RATE_NETWORK)),
    ]


def take_battle_rate(voter: Voter, now: float | None = None) -> None:
    """Count one start or turn against the voter's, address's and network's rates, or raise
    LimitReached and count nothing."""
    now = time.time() if now is None else now
    windows = [
        (scope, window)
        for scope, ident, rates in _rates_for(voter)
        if ident
        for window in _windows(scope, ident, rates, now)
    ]
    # A flood is refused on one read of every window, before anything is counted: refusing
    # must cost a script's requests as little of the site as possible.
    used = cache.get_many([window.key for _, window in windows])
    for scope, window in windows:
        if used.get(window.key, 0) >= window.rate.count:
            _refuse(scope, window)
    counted: list[str] = []
    for scope, window in windows:
        # A window's counter lives a little longer than the window, then the cache drops it.
        cache.add(window.key, 0, timeout=window.rate.seconds + 60)
        try:
            count = cache.incr(window.key)
        except ValueError:  # dropped between add and incr
            cache.set(window.key, 1, timeout=window.rate.seconds + 60)
            count = 1
        counted.append(window.key)
        if count > window.rate.count:  # another request took the last one meanwhile
            _uncount(counted)
            _refuse(scope, window)


def _refuse(scope: str, window: _Window) -> None:
    period = _PERIOD_WORDS[window.rate.seconds]
    raise LimitReached(
        f"{_WHO[scope]} started {window.rate.count} battles or turns this {period}, the most "
        f"allowed; try again in {_wait_words(window.resets_in)}.",
        retry_after=math.ceil(window.resets_in),
    )


def _uncount(keys: list[str]) -> None:
    for key in keys:
        try:
            cache.decr(key)
        except ValueError:
            pass


def _wait_words(seconds: float) -> str:
    seconds = math.ceil(seconds)
    if seconds < 120:
        return f"{seconds} seconds"
    if seconds < 7200:
        return f"{math.ceil(seconds / 60)} minutes"
    return f"{math.ceil(seconds / 3600)} hours"


def check_in_flight(voter: Voter) -> None:
    """Refuse a new battle while the voter, or its client address, already has as many battles
    being answered as allowed. Battles stuck past any possible answer do not count."""
    recent = clock.now() - stuck_after()
    answering = Battle.objects.filter(status=Battle.Status.ANSWERING, turn_started_at__gte=recent)
    limit = settings.ARENA_BATTLES_IN_FLIGHT_VOTER
    if limit and answering.filter(judge=voter.judge).count() >= limit:
        raise LimitReached(
            f"You already have {limit} battles being answered; wait for their answers, then start another.",
            retry_after=IN_FLIGHT_RETRY_SECONDS,
        )
    limit = settings.ARENA_BATTLES_IN_FLIGHT_ADDRESS
    if limit and voter.address and answering.filter(address=voter.address).count() >= limit:
        raise LimitReached(
            f"Your address already has {limit} battles being answered; wait for their answers, then start another.",
            retry_after=IN_FLIGHT_RETRY_SECONDS,
        )
