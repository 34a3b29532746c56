"""The leaderboard plots: figures built from stored runs, shown only for public models."""

import gzip
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from arenasite import clock
from battles.models import Battle, Vote, Winner
from leaderboard import plotly_js, plots, selectors, services
from leaderboard.models import ModelRating, PairCounts, RatingRun
from providers.models import ArenaModel

from ..conftest import make_model

S = ArenaModel.Status


def row(model_id, model, rating, *, lower=None, upper=None, provider="P"):
    """A board row as selectors.board returns it, with only what the plots read."""
    return {
        "model_id": model_id,
        "model": model,
        "provider": provider,
        "rating": rating,
        "ci_lower": rating - 10 if lower is None else lower,
        "ci_upper": rating + 10 if upper is None else upper,
    }


# Given out of order: the plots sort best first themselves.
ROWS = [row(3, "gamma", 900.0), row(1, "alpha", 1100.0), row(2, "beta", 1000.0)]
# alpha-beta: 6 wins for alpha, 2 for beta, 4 ties; beta-gamma: 3, 1 and no tie; alpha never met gamma.
PAIRS = [[1, 2, 6, 2, 4], [2, 3, 3, 1, 0]]


def z(figure):
    return figure["data"][0]["z"]


# Pure figure builders


def test_the_win_fraction_is_the_row_models_share_of_its_non_tied_battles():
    figure = plots.win_fraction_heatmap(ROWS, PAIRS)
    trace = figure["data"][0]
    assert trace["x"] == trace["y"] == ["alpha", "beta", "gamma"]
    assert z(figure) == [
        [None, 0.75, None],  # alpha beat beta 6 of 8 decided; never met gamma
        [0.25, None, 0.75],
        [None, 0.25, None],
    ]
    assert "won 75% of non-tied battles" in trace["text"][0][1]
    assert "6 wins, 2 losses, 4 ties" in trace["text"][0][1]
    assert (trace["zmin"], trace["zmax"]) == (0, 1)
    assert figure["layout"]["yaxis"]["autorange"] == "reversed", "best model at the top, as in the table"


def test_a_pair_with_only_ties_has_no_win_fraction():
    figure = plots.win_fraction_heatmap(ROWS[1:], [[1, 2, 0, 0, 5]])
    assert z(figure) == [[None, None], [None, None]]
    assert "0 wins, 0 losses, 5 ties" in figure["data"][0]["text"][0][1]


def test_the_battle_count_is_symmetric_and_counts_ties():
    figure = plots.battle_count_heatmap(ROWS, PAIRS)
    assert z(figure) == [
        [None, 12, 0],
        [12, None, 4],
        [0, 4, None],
    ]
    assert (figure["data"][0]["zmin"], figure["data"][0]["zmax"]) == (0, 12)


def test_pairs_with_a_model_not_shown_leave_no_trace():
    hidden = 99
    pairs = [*PAIRS, [1, hidden, 500, 0, 0], [2, hidden, 0, 700, 3]]
    assert plots.win_fraction_heatmap(ROWS, pairs) == plots.win_fraction_heatmap(ROWS, PAIRS)
    assert plots.battle_count_heatmap(ROWS, pairs) == plots.battle_count_heatmap(ROWS, PAIRS)


def test_the_heatmaps_show_the_best_rated_models_only():
    many = [row(pk, f"model-{pk}", 1000.0 + pk) for pk in range(1, 31)]
    labels = plots.win_fraction_heatmap(many, [])["data"][0]["y"]
    assert len(labels) == plots.HEATMAP_MODELS == 20
    assert labels[0] == "model-30" and labels[-1] == "model-11"
    assert plots.battle_count_heatmap(many, [], limit=5)["data"][0]["y"] == [f"model-{pk}" for pk in range(30, 25, -1)]


def test_interval_bars_run_from_the_lower_to_the_upper_bound():
    rows = [row(1, "alpha", 1000.0, lower=980.0, upper=1030.5), row(2, "beta", 950.0, lower=900.0, upper=951.0)]
    trace = plots.rating_intervals(rows)["data"][0]
    assert trace["x"] == ["alpha", "beta"]
    assert trace["y"] == [1000.0, 950.0]
    assert trace["error_y"]["symmetric"] is False
    assert trace["error_y"]["array"] == [30.5, 1.0]
    assert trace["error_y"]["arrayminus"] == [20.0, 50.0]


def test_the_history_draws_one_line_per_shown_model_in_time_order():
    day = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    history = [
        (day + timedelta(days=1), 1, 1110.0),
        (day, 1, 1090.0),
        (day, 2, 1000.0),
        (day, 99, 1500.0),  # not shown: must not be drawn
    ]
    traces = plots.rating_history(ROWS, history)["data"]
    assert [trace["name"] for trace in traces] == ["alpha", "beta", "gamma"]
    assert traces[0]["x"] == ["2026-03-01 12:00:00", "2026-03-02 12:00:00"]
    assert traces[0]["y"] == [1090.0, 1110.0]
    assert traces[2]["x"] == traces[2]["y"] == []
    assert "1500" not in json.dumps(traces)


def test_the_history_follows_the_best_rated_models():
    many = [row(pk, f"model-{pk}", 1000.0 + pk) for pk in range(1, 31)]
    assert plots.history_model_ids(many) == list(range(30, 30 - plots.HISTORY_MODELS, -1))
    assert len(plots.rating_history(many, [])["data"]) == plots.HISTORY_MODELS


def test_names_are_escaped_for_plotly_and_repeated_names_stay_apart():
    rows = [row(1, "<b>bold</b> & co", 1100.0), row(2, "twin", 1000.0, provider="A"), row(3, "twin", 900.0)]
    assert plots.model_labels(rows) == {1: "&lt;b&gt;bold&lt;/b&gt; &amp; co", 2: "twin (A)", 3: "twin (P)"}


def test_no_rows_give_empty_figures():
    figures = plots.leaderboard_figures([], [], [])
    assert set(figures) == {"win_fraction", "battle_count", "rating_intervals", "rating_history"}
    assert z(figures["win_fraction"]) == [] and figures["rating_history"]["data"] == []


# The page


def figures_in(response) -> dict:
    page = response.content.decode()
    match = re.search(r'<script id="leaderboard-figures" type="application/json">(.*?)</script>', page, re.S)
    assert match, "the figures are embedded with json_script"
    return json.loads(match.group(1))


def vote(a, b, winner, n):
    for _ in range(n):
        battle = Battle.objects.create(
            question_id=f"q{Battle.objects.count()}",
            model_a=a,
            model_b=b,
            anony=True,
            turn=1,
            language="English",
            prompt_chars=10,
        )
        Vote.objects.create(battle=battle, model_a=a, model_b=b, anony=True, winner=winner, judge="j")


@pytest.fixture
def arena(provider_a, provider_b):
    strong = make_model(provider_a, S.LISTED, name="strong")
    middle = make_model(provider_b, S.LISTED, name="middle")
    weak = make_model(provider_a, S.LISTED, name="weak")
    secret = make_model(provider_b, S.INITIAL_RATING, name="secret-model")
    vote(strong, middle, Winner.MODEL_A, 30)
    vote(strong, middle, Winner.MODEL_B, 10)
    vote(middle, weak, Winner.MODEL_A, 30)
    vote(middle, weak, Winner.TIE, 10)
    vote(strong, weak, Winner.MODEL_A, 20)
    vote(secret, weak, Winner.MODEL_A, 15)
    vote(secret, strong, Winner.TIE_BOTHBAD, 15)
    return {"strong": strong, "middle": middle, "weak": weak, "secret": secret}


@pytest.mark.django_db
def test_the_plots_page_shows_the_stored_runs_figures(arena, client):
    services.recompute(bootstrap_rounds=10)
    response = client.get("/leaderboard/plots/")
    assert response.status_code == 200
    figures = figures_in(response)
    assert figures["win_fraction"]["data"][0]["y"] == ["strong", "middle", "weak"]
    assert figures["win_fraction"]["data"][0]["z"][0][1] == 0.75  # strong beat middle 30 of 40
    assert figures["battle_count"]["data"][0]["z"][0] == [None, 40, 20]
    assert figures["battle_count"]["data"][0]["z"][1][2] == 40, "ties are battles too"
    assert [trace["name"] for trace in figures["rating_history"]["data"]] == ["strong", "middle", "weak"]
    assert plotly_js.url() in response.content.decode()


@pytest.mark.django_db
def test_a_model_in_initial_rating_is_in_no_plot(arena, client):
    services.recompute(bootstrap_rounds=10)
    secret = arena["secret"]
    for query in ("", "?retired=1", "?category=lang_english"):
        response = client.get(f"/leaderboard/plots/{query}")
        page = response.content.decode()
        assert "secret-model" not in page and secret.codename not in page
        figures = figures_in(response)
        # Its battles (15 against weak, 15 against strong) are not in the counts either.
        counts = figures["battle_count"]["data"][0]["z"]
        assert counts[0][2] == 20 and sum(count or 0 for line in counts for count in line) == 2 * (40 + 40 + 20)
        assert len(figures["rating_intervals"]["data"][0]["x"]) == 3


@pytest.mark.django_db
def test_the_plots_follow_the_category_and_retired_filters(arena, client):
    services.recompute(bootstrap_rounds=10)
    ArenaModel.objects.filter(pk=arena["weak"].pk).update(status=S.RETIRED)
    shown = lambda query: figures_in(client.get(f"/leaderboard/plots/{query}"))["win_fraction"]["data"][0]["y"]  # noqa: E731
    assert shown("") == ["strong", "middle"]
    assert shown("?retired=1") == ["strong", "middle", "weak"]
    assert shown("?category=nope") == ["strong", "middle"], "an unknown category falls back to overall"
    table = client.get("/leaderboard/?category=lang_english&retired=1").content.decode()
    assert 'href="/leaderboard/plots/?category=lang_english&amp;retired=1"' in table


@pytest.mark.django_db
def test_a_name_with_markup_cannot_escape_the_figure_json(provider_a, client):
    name = "<script>alert(1)</script>"
    hostile, plain = make_model(provider_a, S.LISTED, name=name), make_model(provider_a, S.LISTED, name="plain")
    vote(hostile, plain, Winner.MODEL_A, 5)
    vote(hostile, plain, Winner.MODEL_B, 5)
    services.recompute(bootstrap_rounds=10)
    response = client.get("/leaderboard/plots/")
    assert name not in response.content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in figures_in(response)["win_fraction"]["data"][0]["y"]


@pytest.mark.django_db
def test_without_a_run_the_page_says_so(client):
    response = client.get("/leaderboard/plots/")
    assert response.status_code == 200 and "No published ratings yet" in response.content.decode()


# History and query counts, from runs written directly so there can be many


def publish_run(models, *, published_at, status=S.LISTED, category="overall"):
    """A published run rating `models` best first, with a battle between each neighbouring pair."""
    run = RatingRun.objects.create(state=RatingRun.State.PUBLISHED, cutoff=published_at, published_at=published_at)
    ModelRating.objects.bulk_create(
        ModelRating(
            run=run,
            category=category,
            arena_model=model,
            model_status=status,
            rating=1200.0 - 10 * i,
            ci_lower=1190.0 - 10 * i,
            ci_upper=1210.0 - 10 * i,
            sandwich_lower=0,
            sandwich_upper=0,
            rank=i + 1,
            votes=100,
        )
        for i, model in enumerate(models)
    )
    pairs = [sorted([a.pk, b.pk]) + [3, 2, 1] for a, b in zip(models, models[1:], strict=False)]
    PairCounts.objects.create(run=run, category=category, counts=pairs)
    return run


@pytest.mark.django_db
def test_the_history_leaves_out_runs_before_a_model_was_listed(provider_a):
    model = make_model(provider_a, S.LISTED, name="grown-up")
    start = clock.now() - timedelta(days=10)
    publish_run([model], published_at=start, status=S.INITIAL_RATING)
    publish_run([model], published_at=start + timedelta(days=1))
    publish_run([model], published_at=start + timedelta(days=2), status=S.RETIRED)
    history = selectors.rating_history("overall", [model.pk], runs=plots.HISTORY_RUNS)
    assert [published_at for published_at, _, _ in history] == [start + timedelta(days=1), start + timedelta(days=2)]


@pytest.mark.django_db
def test_the_history_reaches_back_a_fixed_number_of_runs(provider_a):
    model = make_model(provider_a, S.LISTED)
    start = clock.now() - timedelta(days=10)
    for day in range(5):
        publish_run([model], published_at=start + timedelta(days=day))
    RatingRun.objects.create(state=RatingRun.State.FAILED, cutoff=start, published_at=None)
    history = selectors.rating_history("overall", [model.pk], runs=3)
    assert [published_at for published_at, _, _ in history] == [start + timedelta(days=d) for d in (2, 3, 4)]


@pytest.mark.django_db
def test_the_plots_page_runs_the_same_queries_for_more_models_and_runs(provider_a, client, django_assert_num_queries):
    start = clock.now() - timedelta(days=40)
    few = [make_model(provider_a, S.LISTED) for _ in range(2)]
    publish_run(few, published_at=start)
    with CaptureQueriesContext(connection) as small:
        figures_in(client.get("/leaderboard/plots/"))
    # The run, its categories, the board, the pair counts, the history.
    assert len(small) == 5, [query["sql"] for query in small.captured_queries]

    many = few + [make_model(provider_a, S.LISTED) for _ in range(23)]
    for day in range(1, 8):
        publish_run(many, published_at=start + timedelta(days=day))
    with django_assert_num_queries(len(small)):
        figures = figures_in(client.get("/leaderboard/plots/"))
    assert len(figures["win_fraction"]["data"][0]["y"]) == plots.HEATMAP_MODELS
    assert len(figures["rating_intervals"]["data"][0]["x"]) == 25
    assert [len(trace["x"]) for trace in figures["rating_history"]["data"]] == [8, 8] + [7] * 8


# plotly.js, served by the site


@pytest.mark.django_db
def test_plotly_js_is_served_locally_with_long_cache_headers(client):
    url = plotly_js.url()
    assert url.startswith("/leaderboard/plotly-")
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert "public" in response["Cache-Control"] and "max-age=31536000" in response["Cache-Control"]
    assert response["ETag"] == f'"{plotly_js.fingerprint()}"'
    body = b"".join(response.streaming_content)
    response.close()
    assert body.startswith(b"/**\n* plotly.js v") and body == plotly_js.path().read_bytes()

    again = client.get(url, HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304 and "max-age=31536000" in again["Cache-Control"]


@pytest.mark.django_db
def test_plotly_js_is_gzipped_for_browsers_that_accept_it(client):
    response = client.get(plotly_js.url(), HTTP_ACCEPT_ENCODING="gzip, deflate, br")
    assert response["Content-Encoding"] == "gzip" and "Accept-Encoding" in response["Vary"]
    assert response["ETag"] == f'"{plotly_js.fingerprint()}-gzip"'
    assert gzip.decompress(response.content) == plotly_js.path().read_bytes()


@pytest.mark.django_db
def test_an_outdated_plotly_js_url_leads_to_the_current_one(client):
    response = client.get("/leaderboard/plotly-000000000000.min.js")
    assert response.status_code == 302 and response["Location"] == plotly_js.url()
    assert "max-age=31536000" not in response.get("Cache-Control", "")
