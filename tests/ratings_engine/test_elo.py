"""The sequential Elo, as FastChat computes it."""

import numpy as np
import pandas as pd
import pytest

from ratings_engine.elo import online_elo


def test_it_runs_fastchats_sequential_elo():
    battles = pd.DataFrame(
        [("A", "B", "model_a"), ("A", "B", "tie"), ("C", "A", "model_a")], columns=["model_a", "model_b", "winner"]
    )
    first = online_elo(battles.iloc[:1])
    assert first.to_dict() == pytest.approx({"A": 1002, "B": 998})

    # By hand, with FastChat's formulas: A 1002 v B 998 tie, then C 1000 beats A.
    ea = 1 / (1 + 10 ** ((998 - 1002) / 400))
    a, b = 1002 + 4 * (0.5 - ea), 998 + 4 * (0.5 - (1 - ea))
    ec = 1 / (1 + 10 ** ((a - 1000) / 400))
    expected = {"A": a - 4 * (1 - ec), "B": b, "C": 1000 + 4 * (1 - ec)}
    r = online_elo(battles)
    assert r.to_dict() == pytest.approx(expected, abs=1e-12)
    assert list(r.index) == sorted(expected, key=expected.get, reverse=True)
    assert online_elo(battles, k=32).loc["C"] > r.loc["C"]


def test_online_elo_continued_from_earlier_ratings_equals_one_pass():
    rng = np.random.default_rng(5)
    battles = pd.DataFrame(
        {
            "model_a": rng.choice(list("ABCD"), 300),
            "model_b": rng.choice(list("EFG"), 300),
            "winner": rng.choice(["model_a", "model_b", "tie", "tie (bothbad)"], 300),
        }
    )
    whole = online_elo(battles)
    continued = online_elo(battles.iloc[120:], initial=online_elo(battles.iloc[:120]).to_dict())
    assert continued.to_dict() == pytest.approx(whole.to_dict(), abs=1e-9)
    assert online_elo(battles.iloc[:0], initial={"A": 1010.0}).to_dict() == {"A": 1010.0}
