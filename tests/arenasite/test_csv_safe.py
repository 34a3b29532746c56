"""arenasite.csv_safe: the one way the site writes CSV, with no cell a spreadsheet would run."""

import csv
from datetime import date
from io import StringIO

import pytest

from arenasite.csv_safe import safe_cell, write_csv


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1+2", "@SUM(A1)", "\t=1", "\r=1"])
def test_text_that_starts_a_formula_gets_a_leading_apostrophe(text):
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["plain", "a=b", "", None, -3.5, 0, 1200, True, date(2025, 1, 2)])
def test_other_values_are_written_as_they_are(value):
    assert safe_cell(value) == value


def test_write_csv_writes_the_columns_in_order_and_ignores_other_keys():
    out = StringIO()
    write_csv(out, ["name", "score"], [{"name": "=evil()", "score": -2.5, "extra": "dropped"}, {"name": "ok"}])
    assert list(csv.reader(StringIO(out.getvalue()))) == [["name", "score"], ["'=evil()", "-2.5"], ["ok", ""]]
