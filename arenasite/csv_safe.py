"""Every CSV the site writes goes through here, so no cell can run as a spreadsheet formula.

Providers choose their names, licences and model names, and those land in the leaderboard's
CSV (the API's format=csv and export_leaderboard). Excel, LibreOffice and Google Sheets
read a cell that starts with "=", "+", "-" or "@" as a formula (`=HYPERLINK(...)` becomes
a link to anywhere, older Excel runs `=cmd|...` through DDE), and a leading tab or carriage
return can hide such a start from a naive check. So a text cell with one of those first
characters gets a leading apostrophe, as OWASP recommends: spreadsheets show the text as
typed and the apostrophe tells a reader of the raw file it was escaped.

Numbers, dates, booleans and empty values are written as they are: their text is a plain
number or word (a negative rating stays a number a spreadsheet can sort), never a formula.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """The value as a spreadsheet may read it: text that would start a formula gets a leading "'"."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def write_csv(out: IO[str], columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """A header of `columns`, then one line per row with those keys (others ignored), every cell made safe."""
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([safe_cell(row.get(column)) for column in columns])
