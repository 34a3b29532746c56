"""Deterministic assignment of battles to the community release pool.

A keyed hash of the battle's question id, compared with the pool fraction: the same
battle always lands on the same side, and nobody without the salt can predict it.
"""

from __future__ import annotations

import hashlib
import hmac


def in_release_pool(question_id: str, *, salt: str, fraction: float) -> bool:
    digest = hmac.new(salt.encode(), question_id.encode(), hashlib.sha256).digest()
    # The first 8 bytes as a number in [0, 1).
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction
