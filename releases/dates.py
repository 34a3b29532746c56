"""Reading a cutoff from the command line."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from django.utils.dateparse import parse_datetime


def parse_cutoff(text: str) -> datetime:
    """A date (the whole day, UTC, is included) or an ISO date-time (UTC when no offset).

    Raises ValueError with a readable message.
    """
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        return datetime.combine(day, time.max, tzinfo=UTC)
    try:
        moment = parse_datetime(text)
    except ValueError:
        moment = None
    if moment is None:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD) or an ISO date-time")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
