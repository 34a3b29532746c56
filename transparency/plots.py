"""The transparency page's plots as Plotly figure dicts (no database), drawn by plotly.js served
offline by the leaderboard app. One small plot per provider, on the same axes, so a reader
compares each provider's served share (bars) with the share its weights predict (line)."""

from __future__ import annotations

from .selectors import ProviderSummary

SERVED_COLOUR = "#1f5fbf"
EXPECTED_COLOUR = "#b2182b"


def provider_share_figure(summary: ProviderSummary, *, top: float) -> dict:
    days = [d.day.isoformat() for d in summary.days]
    served = [None if d.served is None else round(d.served, 4) for d in summary.days]
    expected = [None if d.expected is None else round(d.expected, 4) for d in summary.days]
    return {
        "data": [
            {
                "type": "bar",
                "name": "served",
                "x": days,
                "y": served,
                "marker": {"color": SERVED_COLOUR},
                "customdata": [d.battles for d in summary.days],
                "hovertemplate": "%{x}: served %{y:.1%} (%{customdata} appearances)<extra></extra>",
            },
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "predicted by the weights",
                "x": days,
                "y": expected,
                "line": {"color": EXPECTED_COLOUR, "dash": "dot"},
                "hovertemplate": "%{x}: predicted %{y:.1%}<extra></extra>",
            },
        ],
        "layout": {
            "height": 220,
            "margin": {"t": 10, "b": 40, "l": 50, "r": 10},
            "xaxis": {"type": "date"},
            # The same scale for every provider, so the plots compare at a glance.
            "yaxis": {"tickformat": ".0%", "range": [0, top], "title": {"text": "share of battles"}},
            "showlegend": False,
            "bargap": 0.15,
        },
    }


def share_figures(summaries: list[ProviderSummary]) -> dict[str, dict]:
    """Figures keyed by the provider's slug, or selectors.HIDDEN_KEY (the page's plot containers use it)."""
    values = [
        value
        for summary in summaries
        for day in summary.days
        for value in (day.served, day.expected)
        if value is not None
    ]
    top = min(1.0, max(values, default=0.1) * 1.1) or 0.1
    return {summary.key: provider_share_figure(summary, top=top) for summary in summaries}
