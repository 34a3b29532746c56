"""A proof of work before battles (ALTCHA, self-hosted): it costs a script more than a person.

A voter's browser solves a small proof-of-work challenge (the ALTCHA widget, served by the
site) before its first battle and again every ARENA_CHALLENGE_EVERY battles. A person pays
a fraction of a second of their device's time once in a while, in the background while
they type; a script that clears its cookies to pose as new voters pays it for every battle.
No third-party service is involved: challenges are made and checked here, signed with a
key derived from SECRET_KEY, and each solution is accepted once.

How a client of the JSON API solves one (docs/api.md): GET /api/v1/challenge/ gives an
ALTCHA v2 challenge; find the counter whose PBKDF2 key starts with its `keyPrefix` (the
`altcha` libraries do it: `solve_challenge`), and send the base64 payload (`Payload(
challenge, solution).to_base64()`) as `altcha` when starting the battle, with the same
session cookie from then on.

ARENA_CHALLENGE=0 turns it off (load tests, trusted deployments); production settings have
it on unless said otherwise.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

import altcha
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

from arenasite import clock

# How many more battles the session may start before it must solve a challenge again.
SESSION_KEY = "arena_proof_battles_left"
ALGORITHM = "PBKDF2/SHA-256"
CHALLENGE_LIFETIME = timedelta(minutes=10)


class ChallengeRequired(Exception):
    """No valid solution where one is needed; the message says what to do."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


def _secret() -> str:
    # Its own key, derived from SECRET_KEY: a signature made here is good for nothing else.
    return hashlib.sha256(f"arenasite-altcha:{settings.SECRET_KEY}".encode()).hexdigest()


def new_challenge() -> dict:
    """A signed challenge, as the widget and the `altcha` libraries read it."""
    challenge = altcha.create_challenge(
        algorithm=ALGORITHM,
        cost=settings.ARENA_CHALLENGE_COST,
        expires_at=clock.now() + CHALLENGE_LIFETIME,
        hmac_secret=_secret(),
    )
    return challenge.to_dict()


def needed(request: HttpRequest) -> bool:
    """Whether the next battle of this session needs a solved challenge."""
    return settings.ARENA_CHALLENGE and request.session.get(SESSION_KEY, 0) <= 0


def spend(request: HttpRequest, payload: object) -> None:
    """Count one battle against the session's solved challenge, or check the solution `payload`
    (base64) when one is needed. Raises ChallengeRequired when it is missing, wrong, expired or
    used before."""
    if not settings.ARENA_CHALLENGE:
        return
    left = request.session.get(SESSION_KEY, 0)
    if left > 0:
        request.session[SESSION_KEY] = left - 1
        return
    if not payload or not isinstance(payload, str):
        raise ChallengeRequired(
            "Solve the proof-of-work challenge first: GET /api/v1/challenge/, then send the solution as `altcha`."
        )
    try:
        result = altcha.verify_solution(payload, _secret())
    except Exception:  # a payload that is not even well-formed
        result = None
    if result is None or not result.verified:
        reason = "has expired" if result is not None and result.expired else "is not valid"
        raise ChallengeRequired(f"The proof-of-work solution {reason}; solve a new challenge and try again.")
    # Each solution is good once: its signed challenge is remembered until it would expire anyway.
    challenge = altcha.Payload.from_base64(payload).challenge
    if not cache.add(f"altcha-used:{challenge.signature}", 1, timeout=int(CHALLENGE_LIFETIME.total_seconds()) + 60):
        raise ChallengeRequired("This proof-of-work solution was used already; solve a new challenge.")
    request.session[SESSION_KEY] = settings.ARENA_CHALLENGE_EVERY - 1
