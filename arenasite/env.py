"""Typed readers for settings that come from the environment.

A variable set in the environment wins; otherwise it is read from the env file, `.env`
beside manage.py when present (the first `make run` writes one with development settings),
or the file named by ENV_FILE (empty: no file). Malformed values fail loudly at start-up
instead of turning into surprising defaults.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from dotenv import dotenv_values

DEFAULT_ENV_FILE = Path(__file__).resolve().parent.parent / ".env"


def _read_env_file() -> dict[str, str]:
    path = os.environ.get("ENV_FILE", str(DEFAULT_ENV_FILE))
    if not path or not Path(path).is_file():
        return {}
    return {name: value for name, value in dotenv_values(path).items() if value is not None}


_FILE_VALUES = _read_env_file()


def _get(name: str) -> str | None:
    return os.environ.get(name, _FILE_VALUES.get(name))


_TRUE = ("1", "true", "True", "yes")
_FALSE = ("0", "false", "False", "no", "")


def env_str(name: str, default: str = "") -> str:
    value = _get(name)
    return default if value is None else value


def env_bool(name: str, default: bool = False) -> bool:
    value = _get(name)
    if value is None:
        return default
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {value!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    """An integer; with `minimum`, at least that."""
    value = _get(name)
    if value is None or value == "":
        number = default
    else:
        try:
            number = int(value)
        except ValueError:
            raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be {minimum} or more, got {number!r}")
    return number


def env_float(
    name: str,
    default: float,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
) -> float:
    """A number; with bounds, a finite one within them (`above`: more than that)."""
    value = _get(name)
    if value is None or value == "":
        number = default
    else:
        try:
            number = float(value)
        except ValueError:
            raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from None
    if minimum is maximum is above is None:
        return number
    finite = math.isfinite(number)
    if above is not None and not (finite and number > above):
        raise ImproperlyConfigured(f"{name} must be above {above:g}, got {number!r}")
    if maximum is not None and not (finite and (minimum is None or minimum <= number) and number <= maximum):
        bounds = f"from {minimum:g} to {maximum:g}" if minimum is not None else f"{maximum:g} or less"
        raise ImproperlyConfigured(f"{name} must be {bounds}, got {number!r}")
    if minimum is not None and not (finite and number >= minimum):
        raise ImproperlyConfigured(f"{name} must be {minimum:g} or more, got {number!r}")
    return number


def env_list(name: str, default: str = "") -> list[str]:
    value = _get(name)
    return [item.strip() for item in (default if value is None else value).split(",") if item.strip()]
