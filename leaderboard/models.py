from __future__ import annotations

from django.db import models
from django.utils import timezone


class RatingRunQuerySet(models.QuerySet):
    def published(self) -> RatingRunQuerySet:
        return self.filter(state=RatingRun.State.PUBLISHED)

    def latest_published(self) -> RatingRun | None:
        return self.published().order_by("-published_at", "-id").first()


class RatingRun(models.Model):
    """One recomputation of every category. Written while `running`, then published in one
    step: the leaderboard only ever reads a complete run, so a run that fails or is killed
    halfway leaves the previous one in place."""

    class State(models.TextChoices):
        RUNNING = "running", "Running"
        PUBLISHED = "published", "Published"
        FAILED = "failed", "Failed"

    state = models.CharField(max_length=10, choices=State, default=State.RUNNING, db_index=True)
    method = models.CharField(max_length=40, default="bradley-terry")
    parameters = models.JSONField(default=dict, blank=True)
    cutoff = models.DateTimeField(help_text="Votes cast up to this moment are counted.")
    last_vote_id = models.BigIntegerField(default=0)
    vote_count = models.PositiveIntegerField(default=0, help_text="Counted votes in the overall category.")
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    online_elo_state = models.JSONField(
        default=dict,
        blank=True,
        help_text="Online Elo after the last vote this run saw; the next run continues from it.",
    )

    objects = RatingRunQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"rating run {self.pk} ({self.state}, {self.cutoff:%Y-%m-%d %H:%M})"


class ModelRating(models.Model):
    """A model's rating in one category of one run."""

    run = models.ForeignKey(RatingRun, models.CASCADE, related_name="ratings")
    category = models.CharField(max_length=40)
    arena_model = models.ForeignKey("providers.ArenaModel", models.PROTECT, related_name="ratings")
    model_status = models.CharField(max_length=16, help_text="The model's lifecycle state when the run was made.")
    rating = models.FloatField()
    ci_lower = models.FloatField(help_text="Bootstrap 95% interval.")
    ci_upper = models.FloatField()
    sandwich_lower = models.FloatField(help_text="Robust (sandwich) 95% interval.")
    sandwich_upper = models.FloatField()
    rank = models.PositiveIntegerField()
    votes = models.PositiveIntegerField()
    online_elo = models.FloatField(null=True, blank=True, help_text="Sequential Elo (K=4) in vote order; overall only.")

    class Meta:
        ordering = ["run", "category", "-rating"]
        constraints = [
            models.UniqueConstraint(fields=["run", "category", "arena_model"], name="modelrating_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.arena_model_id} {self.category}: {self.rating:.1f}"


class PairCounts(models.Model):
    """The outcome counts per pair of models behind one category of a run, for the win-fraction
    and battle-count plots: ``counts`` is a list of [model_a_id, model_b_id, a_wins, b_wins, ties]
    with model_a_id < model_b_id. Kept apart from the run so reading a run does not load it."""

    run = models.ForeignKey(RatingRun, models.CASCADE, related_name="pair_counts")
    category = models.CharField(max_length=40)
    counts = models.JSONField(default=list)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "category"], name="paircounts_unique")]

    def __str__(self) -> str:
        return f"pair counts of {self.category} in run {self.run_id}"
