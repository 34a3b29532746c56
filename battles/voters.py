"""Who is voting: the salted judge id stored with battles and votes.

Voters are anonymous by default. An anonymous voter is a random id kept in the Django
session (a cookie), made on the first battle; a logged-in voter (allauth) is the
account. Either way what is stored is an HMAC of that identity with JUDGE_SALT, so a
stored judge id cannot be traced back to an account or a session without the salt, and
no IP address is ever part of it.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid

from django.conf import settings
from django.http import HttpRequest

SESSION_KEY = "arena_voter"


def judge_id(identity: str) -> str:
    """The stored form of a voter's identity: 32 hex characters of HMAC-SHA256."""
    return hmac.new(settings.JUDGE_SALT.encode(), identity.encode(), hashlib.sha256).hexdigest()[:32]


def judge_for(request: HttpRequest, *, create: bool = True) -> str | None:
    """The judge id of the request's voter; None for a new anonymous visitor when not `create`.

    A visitor who only reads (create=False) gets no session, so reading a battle never
    writes one; starting a battle or voting creates it.
    """
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return judge_id(f"user:{user.pk}")
    voter = request.session.get(SESSION_KEY)
    if voter is None:
        if not create:
            return None
        voter = uuid.uuid4().hex
        request.session[SESSION_KEY] = voter
    return judge_id(f"session:{voter}")
