"""Settings read from the environment with their bounds (arenasite/env.py): a value out of
bounds stops the start with a sentence naming the variable, the bound and the value."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from arenasite.env import env_float, env_int


@pytest.mark.parametrize(
    ("value", "bounds", "message"),
    [
        ("-1", {"minimum": 0}, "X must be 0 or more, got -1"),
        ("0", {"minimum": 1}, "X must be 1 or more, got 0"),
        ("1.5", {}, "X must be an integer, got '1.5'"),
    ],
)
def test_an_integer_out_of_its_bounds_stops_the_start(monkeypatch, value, bounds, message):
    monkeypatch.setenv("X", value)
    with pytest.raises(ImproperlyConfigured, match=f"^{message}$"):
        env_int("X", 3, **bounds)


@pytest.mark.parametrize(
    ("value", "bounds", "message"),
    [
        ("0", {"above": 0}, "X must be above 0, got 0.0"),
        ("inf", {"above": 0}, "X must be above 0, got inf"),
        ("nan", {"minimum": 0}, "X must be 0 or more, got nan"),
        ("-0.5", {"minimum": 0}, "X must be 0 or more, got -0.5"),
        ("101", {"minimum": 0, "maximum": 100}, "X must be from 0 to 100, got 101.0"),
        ("-1", {"minimum": 0, "maximum": 1}, "X must be from 0 to 1, got -1.0"),
        ("soon", {"above": 0}, "X must be a number, got 'soon'"),
    ],
)
def test_a_number_out_of_its_bounds_stops_the_start(monkeypatch, value, bounds, message):
    monkeypatch.setenv("X", value)
    with pytest.raises(ImproperlyConfigured, match=f"^{message}$"):
        env_float("X", 1.0, **bounds)


def test_values_within_bounds_and_defaults_are_read_as_they_are(monkeypatch):
    monkeypatch.delenv("X", raising=False)
    assert env_int("X", 3, minimum=1) == 3 and env_float("X", 0.5, minimum=0, maximum=1) == 0.5
    monkeypatch.setenv("X", "0")
    assert env_int("X", 3, minimum=0) == 0 and env_float("X", 1.0, minimum=0) == 0.0
    monkeypatch.setenv("X", "inf")
    assert env_float("X", 1.0) == float("inf")  # no bounds, no check
