"""Rates written as settings: "6/m,60/h,300/d" means at most 6 a minute, 60 an hour and 300 a day.

Pure parsing, no Django: settings validate with it at start-up, the limiters count with it.
"""

from __future__ import annotations

from dataclasses import dataclass

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: int

    def __str__(self) -> str:
        unit = {seconds: name for name, seconds in PERIODS.items()}[self.seconds]
        return f"{self.count}/{unit}"


def parse_rates(text: str) -> tuple[Rate, ...]:
    """The rates of a comma-separated list; () for an empty one. ValueError says what is wrong."""
    rates = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        count, _, period = item.partition("/")
        if not count.isdigit() or period not in PERIODS:
            raise ValueError(f"{item!r} is not a rate such as 10/m (a count, then s, m, h or d)")
        rates.append(Rate(int(count), PERIODS[period]))
    return tuple(rates)
