"""Typed readers for settings that come from the environment.

A variable set in the environment wins; otherwise it is read from the env file, `.env`
beside manage.py when present (the first `make run` writes one with development settings),
or the file named by ENV_FILE (empty: no file). Malformed values fail loudly at start-up
instead of turning into surprising defaults.
"""

from __future__ import annotations

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


def env_int(name: str, default: int) -> int:
    value = _get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None


def env_float(name: str, default: float) -> float:
    value = _get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from None


def env_list(name: str, default: str = "") -> list[str]:
    value = _get(name)
    return [item.strip() for item in (default if value is None else value).split(",") if item.strip()]
