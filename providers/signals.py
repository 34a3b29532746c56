"""Signals the providers app sends, for the apps above it to react to (they may not be imported here)."""

from django.dispatch import Signal

# Sent by lifecycle.transition() inside its transaction, after a move has been done (not when it is
# only scheduled), with `model` (the ArenaModel, already saved) and `event` (its LifecycleEvent).
# A receiver that raises rolls the whole transition back, so what it writes cannot be missing
# from a transition that happened: leaderboard keeps the rating a model left initial rating with.
transition_done = Signal()
