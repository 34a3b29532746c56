"""Counts tables for the engine's tests: written by hand, or drawn from known true ratings."""

import numpy as np
import pandas as pd


def counts(*rows):
    """counts(("A", "B", "model_a", 2), ...) -> a counts frame."""
    return pd.DataFrame(rows, columns=["model_a", "model_b", "winner", "n"])


def simulate(rng, elo, votes_per_pair, tie_rate):
    """Counts for every pair of models with true ratings `elo`. Ties are drawn so that the
    expected score stays sigmoid(d): P(win) = sigmoid(d) - t/2, P(tie) = t, P(loss) =
    1 - sigmoid(d) - t/2 (t is lowered for pairs too uneven to allow it). Then the
    Bradley-Terry fit with ties as half wins estimates the true ratings, whatever the tie rate."""
    names = [f"m{k}" for k in range(len(elo))]
    rows = []
    for a in range(len(elo)):
        for b in range(a + 1, len(elo)):
            p = 1 / (1 + 10 ** ((elo[b] - elo[a]) / 400))
            n = votes_per_pair if np.isscalar(votes_per_pair) else votes_per_pair[a, b]
            t = min(tie_rate, 1.5 * min(p, 1 - p))
            wins, ties, losses = rng.multinomial(n, [p - t / 2, t, 1 - p - t / 2])
            # Half the pairs are stored the other way round, as the arena shows them in either order.
            if rng.random() < 0.5:
                rows += [(names[a], names[b], "model_a", wins), (names[a], names[b], "model_b", losses)]
            else:
                rows += [(names[b], names[a], "model_b", wins), (names[b], names[a], "model_a", losses)]
            rows.append((names[a], names[b], rng.choice(["tie", "tie (bothbad)"]), ties))
    return counts(*rows), pd.Series(elo - np.mean(elo) + 1000, index=names)
