"""What the engine reads: votes (model_a, model_b, winner) and their counts per outcome (n)."""

from __future__ import annotations

import numpy as np
import pandas as pd

# The score of model_a for each winner value.
SCORES: dict[str, float] = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5, "tie (bothbad)": 0.5}
# aggregate() counts in a dense array up to this many (model A, model B, winner) combinations.
DENSE_COUNT_LIMIT = 50_000_000


def aggregate(battles: pd.DataFrame) -> pd.DataFrame:
    """Per-vote frame (columns model_a, model_b, winner) -> counts frame (model_a, model_b, winner, n)."""
    check_columns(battles, ["model_a", "model_b", "winner"])
    check_winners(battles["winner"])
    if battles.empty:
        return pd.DataFrame({"model_a": [], "model_b": [], "winner": [], "n": np.array([], dtype=np.int64)})
    # Code each column, then count the combined codes in one bincount: a groupby on three
    # string columns costs several times more at millions of votes. Row order does not
    # matter to the engine, which sorts the models itself.
    codes, names = zip(*(pd.factorize(battles[column]) for column in ("model_a", "model_b", "winner")), strict=True)
    na, nb, nw = (len(n) for n in names)
    key = (codes[0].astype(np.int64) * nb + codes[1]) * nw + codes[2]
    if na * nb * nw <= DENSE_COUNT_LIMIT:
        n = np.bincount(key, minlength=na * nb * nw)
        key = np.flatnonzero(n)
        n = n[key]
    else:  # thousands of models: too many combinations for a dense count
        key, n = np.unique(key, return_counts=True)
    a, rest = np.divmod(key, nb * nw)
    b, w = np.divmod(rest, nw)
    return pd.DataFrame(
        {
            "model_a": np.asarray(names[0], dtype=object)[a],
            "model_b": np.asarray(names[1], dtype=object)[b],
            "winner": np.asarray(names[2], dtype=object)[w],
            "n": n.astype(np.int64),
        }
    )


def check_columns(frame: pd.DataFrame, columns: list[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"missing columns: {', '.join(missing)}")


def check_winners(winners: pd.Series) -> None:
    bad = sorted({str(w) for w in pd.unique(winners) if w not in SCORES})
    if bad:
        raise ValueError(f"unknown winner value(s): {', '.join(repr(w) for w in bad)}; expected one of {list(SCORES)}")
