from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from arenasite.append_only import AppendOnlyModel


class PolicyChange(AppendOnlyModel):
    """A published change of the arena's policy or of one of its settings, recorded by staff.

    Append-only: the log is what the public reads to know which rules applied when; a mistake
    is corrected by a new entry, not by editing an old one. Settings come from the environment
    and are not versioned anywhere else, so staff record the change here when they deploy it.
    """

    effective_at = models.DateTimeField(default=timezone.now, help_text="When the change took effect.")
    title = models.CharField(max_length=200)
    setting = models.CharField(
        max_length=64, blank=True, help_text="The setting changed, e.g. ARENA_INITIAL_RATING_CAP; empty for text."
    )
    old_value = models.CharField(max_length=200, blank=True)
    new_value = models.CharField(max_length=200, blank=True)
    description = models.TextField(max_length=5000, blank=True, help_text="Why, in a few sentences. Public.")
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, null=True, blank=True, editable=False, related_name="+"
    )
    recorded_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-effective_at", "-id"]

    def __str__(self) -> str:
        return f"{self.effective_at:%Y-%m-%d}: {self.title}"


class ExpectedShareSnapshot(models.Model):
    """The pool's expected battle shares at one hour (battles.arena_pool.ArenaPool.expected_shares).

    The shares depend on the pool at each moment (who is in it, weights, boosts, targets), and
    no table keeps that history, so it is recorded hourly; a day's expected share is the mean
    of its snapshots. One snapshot per hour: a task run twice in an hour records nothing new.
    """

    taken_at = models.DateTimeField(unique=True, help_text="The hour, truncated.")
    day = models.DateField(db_index=True)

    class Meta:
        ordering = ["-taken_at"]

    def __str__(self) -> str:
        return f"expected shares at {self.taken_at:%Y-%m-%d %H:%M}"


class ExpectedShare(models.Model):
    """One model's probability of taking part in a battle drawn at the snapshot (shares add up to 2)."""

    snapshot = models.ForeignKey(ExpectedShareSnapshot, models.CASCADE, related_name="shares")
    arena_model = models.ForeignKey("providers.ArenaModel", models.PROTECT, related_name="+")
    share = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["snapshot", "arena_model"], name="expectedshare_one_per_model"),
        ]

    def __str__(self) -> str:
        return f"{self.arena_model_id}: {self.share:.4f}"
