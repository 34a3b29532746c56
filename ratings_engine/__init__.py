"""The rating engine: pure numpy, pandas and scipy (and loops compiled by numba), no Django.

It imports no app of the project, so any of them may use it (the leaderboard's runs, the
review of a flagged voter, the benchmarks), and it is tested and benchmarked alone.

- counts.py: the votes and counts tables it reads, and their checks;
- bradley_terry.py: compute_ratings, the Bradley-Terry ratings with their intervals;
- likelihood.py: the fit on pair counts, and what is done when no finite optimum exists;
- bootstrap.py, resampling.py: the bootstrap's resampled counts and their refits;
- style_control.py: Bradley-Terry with the answers' style as covariates;
- elo.py: the classic sequential Elo.
"""
