"""The leaderboard's plots as Plotly figures: plain dicts in, plain dicts out, no database.

Every function takes rows that are already public (``selectors.board``) and draws only the
models in them, so a model the board hides cannot reach a plot through the pair counts or
the history, which cover every rated model.

The figures are ``{"data": [...], "layout": {...}}`` dicts for ``Plotly.newPlot``; building
them by hand keeps the page free of the plotly Python package's figure machinery, which
would only validate and serialise the same dicts.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

# Beyond about twenty models the heatmaps' cells get too small to read.
HEATMAP_MODELS = 20
# Plotly's default palette has ten colours: past ten lines, two models share a colour.
HISTORY_MODELS = 10
# How many published runs the rating-over-time plot reaches back.
HISTORY_RUNS = 30

# Red where the row model loses, white at even, blue where it wins.
WIN_FRACTION_COLOURS = [[0.0, "#b2182b"], [0.5, "#f7f7f7"], [1.0, "#2166ac"]]
BATTLE_COUNT_COLOURS = [[0.0, "#f7fbff"], [1.0, "#08306b"]]

# One pair's outcomes as PairCounts stores them: [low id, high id, low's wins, high's wins, ties].
PairOutcome = Sequence[int]
# One point of a model's history: (run published at, model id, rating).
HistoryPoint = tuple[datetime, int, float]


def leaderboard_figures(
    rows: list[dict], pair_counts: Iterable[PairOutcome], history: Iterable[HistoryPoint]
) -> dict[str, dict]:
    """The four plots of one category, keyed by the name the page's plot containers use."""
    pairs = list(pair_counts)
    return {
        "win_fraction": win_fraction_heatmap(rows, pairs),
        "battle_count": battle_count_heatmap(rows, pairs),
        "rating_intervals": rating_intervals(rows),
        "rating_history": rating_history(rows, history),
    }


def top_rows(rows: list[dict], limit: int) -> list[dict]:
    """The `limit` best-rated rows, best first."""
    return sorted(rows, key=lambda row: row["rating"], reverse=True)[:limit]


def history_model_ids(rows: list[dict]) -> list[int]:
    """The models whose history the rating-over-time plot draws, for the query that reads it."""
    return [row["model_id"] for row in top_rows(rows, HISTORY_MODELS)]


def model_labels(rows: list[dict]) -> dict[int, str]:
    """Axis and legend labels by model id.

    Plotly reads a few HTML tags (<b>, <br>, <a href>) in labels and providers choose the
    names, so names are escaped to display exactly as typed. Two models may share a name;
    a categorical axis would draw them as one, so repeats carry their provider.
    """
    seen: dict[str, int] = {}
    for row in rows:
        seen[row["model"]] = seen.get(row["model"], 0) + 1
    labels = {}
    for row in rows:
        label = row["model"] if seen[row["model"]] == 1 else f"{row['model']} ({row['provider']})"
        while label in labels.values():  # same name at the same provider
            label += "*"
        labels[row["model_id"]] = label
    return {model_id: html.escape(label, quote=False) for model_id, label in labels.items()}


def outcomes_by_pair(pair_counts: Iterable[PairOutcome], model_ids: set[int]) -> dict[tuple[int, int], tuple]:
    """(wins, losses, ties) of the first model against the second, both ways round, for pairs
    of the given models only."""
    outcomes = {}
    for low, high, low_wins, high_wins, ties in pair_counts:
        if low in model_ids and high in model_ids:
            outcomes[low, high] = (low_wins, high_wins, ties)
            outcomes[high, low] = (high_wins, low_wins, ties)
    return outcomes


def _grid(rows: list[dict], pair_counts: Iterable[PairOutcome], limit: int, cell):
    """The shown models, their labels, and the z and hover matrices of a heatmap, where
    cell(wins, losses, ties, label_pair, same_model) gives one cell's (z, hover)."""
    shown = top_rows(rows, limit)
    labels = model_labels(shown)
    outcomes = outcomes_by_pair(pair_counts, set(labels))
    z, hover = [], []
    for row in shown:
        cells = [
            cell(
                *outcomes.get((row["model_id"], column["model_id"]), (0, 0, 0)),
                f"{labels[row['model_id']]} vs {labels[column['model_id']]}",
                row is column,
            )
            for column in shown
        ]
        z.append([value for value, _ in cells])
        hover.append([text for _, text in cells])
    return shown, labels, z, hover


def win_fraction_heatmap(rows: list[dict], pair_counts: Iterable[PairOutcome], *, limit: int = HEATMAP_MODELS):
    """Row model's wins over its non-tied battles against the column model.

    FastChat's arena plot uses the same convention (ties left out). Cells with no decided
    battle are empty; the hover text gives the wins, losses and ties behind each cell.
    """

    def cell(wins, losses, ties, pair, same):
        decided = wins + losses
        fraction = round(wins / decided, 4) if decided and not same else None
        won = f"won {fraction:.0%} of non-tied battles<br>" if fraction is not None else ""
        return fraction, f"{pair}<br>{won}{wins} wins, {losses} losses, {ties} ties"

    shown, labels, z, hover = _grid(rows, pair_counts, limit, cell)
    trace = _heatmap(labels, z, hover, colours=WIN_FRACTION_COLOURS, colour_title="row wins")
    trace.update(zmin=0, zmax=1, texttemplate="%{z:.2f}")
    return {"data": [trace], "layout": _heatmap_layout(len(shown))}


def battle_count_heatmap(rows: list[dict], pair_counts: Iterable[PairOutcome], *, limit: int = HEATMAP_MODELS):
    """Counted battles between each pair of models, ties included; symmetric."""

    def cell(wins, losses, ties, pair, same):
        battles = wins + losses + ties
        return (None if same else battles), f"{pair}<br>{battles} battles"

    shown, labels, z, hover = _grid(rows, pair_counts, limit, cell)
    trace = _heatmap(labels, z, hover, colours=BATTLE_COUNT_COLOURS, colour_title="battles")
    # From zero rather than the smallest count, so shading is proportional to battles; plotly.js
    # takes a fixed range only when zmin and zmax are both set.
    most = max((count for z_row in z for count in z_row if count is not None), default=0)
    trace.update(zmin=0, zmax=max(most, 1), texttemplate="%{z}")
    return {"data": [trace], "layout": _heatmap_layout(len(shown))}


def rating_intervals(rows: list[dict]):
    """Each shown model's rating with its bootstrap 95% interval as an asymmetric error bar."""
    shown = top_rows(rows, len(rows))
    labels = model_labels(shown)
    trace = {
        "type": "scatter",
        "mode": "markers",
        "x": [labels[row["model_id"]] for row in shown],
        "y": [row["rating"] for row in shown],
        "error_y": {
            "type": "data",
            "symmetric": False,
            "array": [round(row["ci_upper"] - row["rating"], 2) for row in shown],
            "arrayminus": [round(row["rating"] - row["ci_lower"], 2) for row in shown],
        },
        "text": [
            f"{labels[row['model_id']]}<br>rating {row['rating']:.0f}<br>"
            f"95% interval {row['ci_lower']:.0f} to {row['ci_upper']:.0f}"
            for row in shown
        ],
        "hoverinfo": "text",
    }
    return {
        "data": [trace],
        "layout": {
            "xaxis": {"type": "category", "tickangle": -45, "automargin": True},
            "yaxis": {"title": {"text": "rating (Elo scale)"}},
            "height": 480,
            "margin": {"t": 30},
        },
    }


def rating_history(rows: list[dict], history: Iterable[HistoryPoint], *, limit: int = HISTORY_MODELS):
    """Each of the best `limit` models' rating across the published runs: one line per model.

    `history` may hold any models; only the shown ones are drawn, so the caller's query
    cannot leak a hidden model into the plot.
    """
    shown = top_rows(rows, limit)
    labels = model_labels(shown)
    points: dict[int, list[tuple[datetime, float]]] = {model_id: [] for model_id in labels}
    for published_at, model_id, rating in history:
        if model_id in points:
            points[model_id].append((published_at, rating))
    traces = []
    for row in shown:
        line = sorted(points[row["model_id"]])
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": labels[row["model_id"]],
                "x": [plotly_date(moment) for moment, _ in line],
                "y": [round(rating, 2) for _, rating in line],
                "hovertemplate": "%{x|%Y-%m-%d %H:%M} UTC: %{y:.0f}",
            }
        )
    return {
        "data": traces,
        "layout": {
            "xaxis": {"type": "date", "title": {"text": "run published (UTC)"}},
            "yaxis": {"title": {"text": "rating (Elo scale)"}},
            "height": 480,
            "margin": {"t": 30},
            "hovermode": "closest",
        },
    }


def plotly_date(moment: datetime) -> str:
    """A UTC date string Plotly's date axis reads; it does not parse offsets such as +00:00."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _heatmap(labels: dict[int, str], z: list, hover: list, *, colours: list, colour_title: str) -> dict:
    names = list(labels.values())
    return {
        "type": "heatmap",
        "x": names,
        "y": names,
        "z": z,
        "text": hover,
        "hoverinfo": "text",
        "colorscale": colours,
        "colorbar": {"title": {"text": colour_title}},
        "xgap": 1,
        "ygap": 1,
    }


def _heatmap_layout(models: int) -> dict:
    return {
        "xaxis": {
            "type": "category",
            "side": "top",
            "tickangle": -45,
            "automargin": True,
            "title": {"text": "against"},
        },
        # Best model at the top, as in the table.
        "yaxis": {"type": "category", "autorange": "reversed", "automargin": True},
        "height": max(420, 200 + 32 * models),
        "margin": {"t": 30},
    }
