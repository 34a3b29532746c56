"""A model's card (/models/<id>/): its rating history drawn as a small SVG on the server.

No script and no plotting library: the card is a plain page that works without JavaScript,
and the drawing is a line through the run-by-run ratings over the band of their 95% intervals.
"""

from __future__ import annotations

from dataclasses import dataclass

# Runs a card reaches back: with a run a day, two months.
HISTORY_RUNS = 60

WIDTH, HEIGHT = 640, 200
# Room for the rating labels on the left and the dates below.
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 30


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    published_at: object
    rating: float
    ci_lower: float
    ci_upper: float


@dataclass(frozen=True)
class HistoryChart:
    width: int
    height: int
    left: int  # where the plot starts, after the rating labels
    line: str  # polyline points
    band: str  # polygon points: the 95% interval
    points: list[Point]
    y_ticks: list[tuple[float, float]]  # (y, rating)
    x_labels: list[tuple[float, str, object]]  # (x, text-anchor, date)
    low: float
    high: float


def history_chart(history: list[dict]) -> HistoryChart | None:
    """The chart of model_history()'s rows (oldest first); None without any."""
    if not history:
        return None
    low = min(h["ci_lower"] for h in history)
    high = max(h["ci_upper"] for h in history)
    if high - low < 20:  # a flat history still gets a readable scale
        middle = (high + low) / 2
        low, high = middle - 10, middle + 10
    span_y = high - low
    start, end = history[0]["published_at"], history[-1]["published_at"]
    span_x = (end - start).total_seconds()
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x_of(moment) -> float:
        if span_x <= 0:
            return LEFT + plot_w / 2
        return round(LEFT + plot_w * (moment - start).total_seconds() / span_x, 1)

    def y_of(rating: float) -> float:
        return round(TOP + plot_h * (high - rating) / span_y, 1)

    points = [
        Point(x_of(h["published_at"]), y_of(h["rating"]), h["published_at"], h["rating"], h["ci_lower"], h["ci_upper"])
        for h in history
    ]
    upper = [f"{p.x},{y_of(p.ci_upper)}" for p in points]
    lower = [f"{p.x},{y_of(p.ci_lower)}" for p in reversed(points)]
    if len(points) == 1:  # a band needs a width: one run is drawn as a short bar
        p = points[0]
        upper = [f"{p.x - 6},{y_of(p.ci_upper)}", f"{p.x + 6},{y_of(p.ci_upper)}"]
        lower = [f"{p.x + 6},{y_of(p.ci_lower)}", f"{p.x - 6},{y_of(p.ci_lower)}"]
    x_labels = [(points[0].x, "start" if len(points) > 1 else "middle", start)]
    if len(points) > 1:
        x_labels.append((points[-1].x, "end", end))
    return HistoryChart(
        width=WIDTH,
        height=HEIGHT,
        left=LEFT,
        line=" ".join(f"{p.x},{p.y}" for p in points),
        band=" ".join(upper + lower),
        points=points,
        y_ticks=[(y_of(high), high), (y_of(low), low)],
        x_labels=x_labels,
        low=min(h["rating"] for h in history),
        high=max(h["rating"] for h in history),
    )
