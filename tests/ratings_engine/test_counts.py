"""The votes frame counted into the counts table the fit reads."""

import numpy as np
import pandas as pd

from ratings_engine import counts
from ratings_engine.bradley_terry import compute_ratings
from ratings_engine.counts import aggregate


def test_it_aggregates_votes_into_counts_that_rate_the_same():
    battles = pd.DataFrame(
        [
            ("A", "B", "model_a"),
            ("A", "B", "model_a"),
            ("B", "A", "tie"),
            ("A", "B", "model_b"),
            ("B", "C", "model_a"),
            ("C", "B", "model_a"),
            ("C", "B", "tie (bothbad)"),
        ],
        columns=["model_a", "model_b", "winner"],
    )
    aggregated = aggregate(battles)
    assert list(aggregated.columns) == ["model_a", "model_b", "winner", "n"]
    assert aggregated["n"].sum() == 7
    assert aggregated.set_index(["model_a", "model_b", "winner"])["n"][("A", "B", "model_a")] == 2
    assert list(aggregate(battles.iloc[:0]).columns) == ["model_a", "model_b", "winner", "n"]
    table = compute_ratings(aggregated, bootstrap_rounds=0)
    assert table.total_votes == 7
    assert table.ratings["votes"].to_dict() == {"A": 4, "B": 7, "C": 3}


def test_aggregate_counts_the_same_with_the_dense_and_the_sparse_count(monkeypatch):
    rng = np.random.default_rng(8)
    battles = pd.DataFrame(
        {
            "model_a": rng.choice(list("ABCDE"), 500),
            "model_b": rng.choice(list("VWXYZ"), 500),
            "winner": rng.choice(list(counts.SCORES), 500),
        }
    )
    expected = battles.groupby(["model_a", "model_b", "winner"]).size().rename("n")
    for limit in (counts.DENSE_COUNT_LIMIT, 0):
        monkeypatch.setattr(counts, "DENSE_COUNT_LIMIT", limit)
        counted = aggregate(battles).set_index(["model_a", "model_b", "winner"])["n"].sort_index()
        assert counted.equals(expected)
