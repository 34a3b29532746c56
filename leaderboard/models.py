from __future__ import annotations

from django.db import models
from django.utils import timezone

from arenasite.append_only import AppendOnlyModel
from providers.models import ArenaModel


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


class KeptRating(AppendOnlyModel):
    """The rating a model had when it left initial rating (listed or withdrawn). Append-only.

    Written in the transaction of the transition itself (leaderboard/fairness.py reacts to
    providers' transition_done signal), so a model cannot leave initial rating without it, and
    nothing the provider does afterwards (withdrawing, asking again) changes or removes it.
    The public registry shows it; for a model never listed only once its delay has passed.
    """

    arena_model = models.OneToOneField(
        "providers.ArenaModel", models.PROTECT, primary_key=True, related_name="kept_rating"
    )
    left_at = models.DateTimeField(help_text="When the model left initial rating.")
    left_to = models.CharField(max_length=16, help_text="listed or withdrawn")
    run = models.ForeignKey(
        RatingRun,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The published run the rating comes from; empty when the model was never rated.",
    )
    rating = models.FloatField(null=True, blank=True, help_text="Overall rating in that run.")
    ci_lower = models.FloatField(null=True, blank=True)
    ci_upper = models.FloatField(null=True, blank=True)
    rated_votes = models.PositiveIntegerField(null=True, blank=True, help_text="Votes behind the rating.")
    votes_before = models.PositiveIntegerField(
        default=0,
        help_text="Counted votes cast up to the moment it left; votes after listing are counted from here.",
    )

    class Meta:
        ordering = ["-left_at"]

    def __str__(self) -> str:
        rating = "not rated" if self.rating is None else f"{self.rating:.0f}"
        return f"{self.arena_model_id} left initial rating for {self.left_to}: {rating}"


class RetirementCandidate(ArenaModel):
    """Listed models that meet a retirement rule (leaderboard/fairness.py), listed for staff in admin.

    A proxy: the rating rule needs the ratings, which the providers app cannot read."""

    class Meta:
        proxy = True
        verbose_name = "retirement candidate"


class CountedVoteChange(models.Model):
    """A battle whose vote, row or style was written, noted by PostgreSQL triggers (migration
    0004): the rating run's kept columns (leaderboard/kept_columns.py) re-read those battles
    instead of every vote. `xid` is the writing transaction's id, so a run can tell which
    changes it may not have seen yet; `noted_at` lets old notes be pruned."""

    battle_id = models.BigIntegerField()
    xid = models.BigIntegerField(db_index=True, help_text="The writing transaction (pg_current_xact_id).")
    noted_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"battle {self.battle_id} changed (transaction {self.xid})"


class KeptColumnsPart(models.Model):
    """Part of the counted votes' columns as a rating run read them, kept for the next run
    (leaderboard/kept_columns.py): the votes of one range of battle ids, each column as a
    little-endian array in `data` (names and types in `layout`). Written once and never
    changed: a run refers to the parts it used (its parameters' kept_columns), and the next
    writes new parts only for the ranges that changed. In the database, so a run on any
    worker machine can start from them."""

    definition = models.CharField(max_length=32, help_text="What the columns are; parts of another are not used.")
    first_battle_id = models.BigIntegerField(help_text="The range's first battle id; it spans PART_BATTLES ids.")
    rows = models.PositiveIntegerField()
    layout = models.JSONField(help_text="[[column, numpy type], ...] in the order of data.")
    data = models.BinaryField()
    written_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"kept columns of battles from {self.first_battle_id} ({self.rows} votes)"
