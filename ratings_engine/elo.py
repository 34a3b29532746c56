"""The classic sequential Elo (FastChat's compute_elo), kept to compare with Bradley-Terry."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from .counts import SCORES, check_columns, check_winners


def online_elo(
    battles: pd.DataFrame,
    *,
    k: float = 4,
    scale: float = 400,
    base: float = 10,
    init: float = 1000,
    initial: Mapping[str, float] | None = None,
) -> pd.Series:
    """battles in time order (columns model_a, model_b, winner); FastChat's compute_elo; returns rating per model.

    Order-dependent by design: this is the classic sequential Elo that Chatbot Arena
    published before it moved to Bradley-Terry, kept to compare against. The formulas are
    FastChat's, term for term, so the numbers match its output. ``initial`` continues from
    ratings computed on earlier votes: Elo over all votes equals Elo over the later ones
    started from the ratings after the earlier ones.
    """
    check_columns(battles, ["model_a", "model_b", "winner"])
    check_winners(battles["winner"])
    rating: dict[str, float] = {str(name): float(value) for name, value in (initial or {}).items()}
    # Codes and plain lists: this loop is sequential by nature and runs once per vote.
    sides = np.concatenate([battles["model_a"].to_numpy(dtype=object), battles["model_b"].to_numpy(dtype=object)])
    names, codes = np.unique(sides.astype(str), return_inverse=True)
    names = names.tolist()
    values = [rating.get(name, init) for name in names]
    n = len(battles)
    scores = battles["winner"].map(SCORES).tolist()
    for i, j, sa in zip(codes[:n].tolist(), codes[n:].tolist(), scores, strict=True):
        ra, rb = values[i], values[j]
        ea = 1 / (1 + base ** ((rb - ra) / scale))
        eb = 1 / (1 + base ** ((ra - rb) / scale))
        values[i] = ra + k * (sa - ea)
        values[j] = rb + k * (1 - sa - eb)
    rating.update(zip(names, values, strict=True))
    series = pd.Series(rating, name="rating", dtype=float)
    series.index.name = "model"
    return series.sort_values(ascending=False, kind="mergesort")
