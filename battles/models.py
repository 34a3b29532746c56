from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .release_pool import in_release_pool
from .style import conversation_prompt_hash, style_columns


class Winner(models.TextChoices):
    MODEL_A = "model_a", "A is better"
    MODEL_B = "model_b", "B is better"
    TIE = "tie", "Tie"
    TIE_BOTHBAD = "tie (bothbad)", "Both are bad"


class ExclusionReason(models.TextChoices):
    """Why a stored vote does not count for ratings. The empty string means it counts."""

    IDENTITY_REVEALED = "identity_revealed", "An answer or the prompt names a model"
    IDENTITY_PROBE = "identity_probe", "The prompt asks a model who it is"
    RATE_LIMITED = "rate_limited", "Over the daily vote limit"
    FLAGGED_USER = "flagged_user", "Voter flagged as anomalous"
    MODERATION = "moderation", "Flagged by moderation"
    ERROR = "error", "An answer failed or was cut off"
    # Imported data that labels a model `anonymous` (a release's never-listed models, a
    # share's opponents): kept, but which model it was is unknown, so it is never rated.
    UNNAMED_MODEL = "unnamed_model", "Imported with a model labelled anonymous"
    STOPPED = "stopped", "The voter stopped an answer before it was complete"


class Battle(models.Model):
    """Two models answering the same user turns, in the shape of the public arena dataset.

    `conversation_a` / `conversation_b` are lists of {"role", "content"} messages, as in
    the `chatbot_arena_conversations` dataset, so exports write them as they are. While a
    turn is being answered, the last assistant message of each side grows as the text
    arrives (battles/answering.py); `status` says when the turn is over.
    """

    class Source(models.TextChoices):
        ARENA = "arena", "Voted here"
        IMPORTED = "imported", "Imported"

    class Status(models.TextChoices):
        ANSWERING = "answering", "Answering"
        READY = "ready", "Both answers complete"
        FAILED = "failed", "A model could not answer"

    class AnswerState(models.TextChoices):
        ANSWERING = "answering", "Answering"
        DONE = "done", "Complete"
        CUT = "cut", "Cut off at the length limit"
        STOPPED = "stopped", "Stopped by the voter"
        FAILED = "failed", "Failed"

    question_id = models.CharField(max_length=64, unique=True)
    model_a = models.ForeignKey("providers.ArenaModel", models.PROTECT, related_name="+")
    model_b = models.ForeignKey("providers.ArenaModel", models.PROTECT, related_name="+")
    anony = models.BooleanField(default=True, help_text="Names hidden until the vote; only these count.")
    source = models.CharField(max_length=10, choices=Source, default=Source.ARENA)
    language = models.CharField(max_length=32, blank=True)
    turn = models.PositiveSmallIntegerField(default=0, help_text="Number of user turns.")
    prompt_chars = models.PositiveIntegerField(default=0, help_text="Length of the first user prompt.")
    prompt_hash = models.CharField(
        max_length=32,
        blank=True,
        db_default="",
        db_index=True,
        editable=False,
        help_text="Finds the same first prompt asked again (case and white space ignored).",
    )
    conversation_a = models.JSONField(default=list, blank=True)
    conversation_b = models.JSONField(default=list, blank=True)
    openai_moderation = models.JSONField(null=True, blank=True)
    toxic_chat_tag = models.JSONField(null=True, blank=True)
    in_release_pool = models.BooleanField(
        default=False, editable=False, help_text="Assigned once, at creation, from a keyed hash of the question id."
    )
    judge = models.CharField(
        max_length=64,
        blank=True,
        db_default="",
        help_text="The voter who started it, as a salted hash (battles/voters.py).",
    )
    address = models.CharField(
        max_length=32,
        blank=True,
        db_default="",
        editable=False,
        help_text="The client address (IPv4, IPv6 /64) that started it, as a salted hash, for battles in flight.",
    )
    status = models.CharField(max_length=10, choices=Status, default=Status.READY, db_default=Status.READY)
    state_a = models.CharField(max_length=10, choices=AnswerState, default=AnswerState.DONE, db_default="done")
    state_b = models.CharField(max_length=10, choices=AnswerState, default=AnswerState.DONE, db_default="done")
    failure = models.CharField(max_length=300, blank=True, db_default="", help_text="What the voter was told.")
    turn_started_at = models.DateTimeField(null=True, blank=True, help_text="When the latest turn was asked.")
    attempt = models.PositiveSmallIntegerField(
        default=1,
        db_default=1,
        help_text="Which answers of the latest turn these are: 1, then one more per regenerate.",
    )
    discarded = models.JSONField(
        default=list,
        blank=True,
        help_text="Answers replaced by a regenerate before the vote, oldest first: "
        '{"turn", "attempt", "answer_a", "answer_b", "state_a", "state_b", "discarded_at"}. Never exported.',
    )
    stop_requested_at = models.DateTimeField(
        null=True, blank=True, help_text="When the voter asked to stop the latest turn's answers."
    )
    share_token = models.CharField(
        max_length=64,
        unique=True,
        null=True,
        blank=True,
        default=None,
        editable=False,
        help_text="The secret of the battle's public link, while its voter shares it.",
    )
    shared_at = models.DateTimeField(null=True, blank=True, help_text="When the voter shared it (empty: not shared).")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=~Q(model_a=models.F("model_b")), name="battle_two_different_models"),
        ]
        indexes = [
            # Battles still being answered, per voter and per client address (battles/limits.py).
            models.Index(fields=["judge"], name="battle_answering_judge", condition=Q(status="answering")),
            models.Index(
                fields=["address"], name="battle_answering_address", condition=Q(status="answering") & ~Q(address="")
            ),
        ]

    def __str__(self) -> str:
        return f"battle {self.question_id}"

    def save(self, *args, **kwargs):
        # The battle's own derived columns. Its style row (BattleStyle.store) is written by whoever
        # writes its answers: the answer loop as a turn closes, an import, the demo seeder.
        if self._state.adding:
            self.in_release_pool = Battle.pool_for(self.question_id)
        self.prompt_hash = conversation_prompt_hash(self.conversation_a)
        super().save(*args, **kwargs)

    @property
    def complete(self) -> bool:
        """Both answers of the latest turn are in (one may be cut at the length limit)."""
        return self.status == self.Status.READY

    @property
    def answers_cut_or_failed(self) -> bool:
        return self.status == self.Status.FAILED or self.AnswerState.CUT in (self.state_a, self.state_b)

    @property
    def stopped(self) -> bool:
        """The voter stopped an answer of the latest turn (a later turn is refused after a stop)."""
        return self.AnswerState.STOPPED in (self.state_a, self.state_b)

    @classmethod
    def answers_exclusion(cls, status: str, state_a: str, state_b: str) -> str:
        """Why the latest turn's answers keep a vote from counting, or "": a failed or cut
        answer is `error`, one the voter stopped is `stopped` (not a fault of the model)."""
        if status == cls.Status.FAILED or cls.AnswerState.CUT in (state_a, state_b):
            return ExclusionReason.ERROR
        if cls.AnswerState.STOPPED in (state_a, state_b):
            return ExclusionReason.STOPPED
        return ""

    @staticmethod
    def attempts_per_turn(turn: int, discarded: list | None) -> list[int]:
        """For each user turn, which attempt's answers the conversations hold (1 unless
        regenerated): the answers the vote judged. Exports publish it as `voted_attempt`."""
        attempts = [1] * turn
        for entry in discarded or []:
            index = entry.get("turn", 0) - 1
            if 0 <= index < len(attempts):
                attempts[index] = max(attempts[index], entry.get("attempt", 0) + 1)
        return attempts

    @staticmethod
    def pool_for(question_id: str) -> bool:
        """The release-pool assignment of a new battle; bulk inserts call this too."""
        return in_release_pool(question_id, salt=settings.RELEASE_POOL_SALT, fraction=settings.RELEASE_POOL_FRACTION)


class BattleStyle(models.Model):
    """Length and markdown of both answers (battles/style.py), for style-controlled ratings.

    Kept beside the battle rather than parsed from the conversations at every
    recomputation; only battles whose conversations carry both answers have one.
    """

    battle = models.OneToOneField(Battle, models.CASCADE, primary_key=True, related_name="style")
    tokens_a = models.PositiveIntegerField()
    tokens_b = models.PositiveIntegerField()
    headers_a = models.PositiveIntegerField()
    headers_b = models.PositiveIntegerField()
    list_items_a = models.PositiveIntegerField()
    list_items_b = models.PositiveIntegerField()
    bold_a = models.PositiveIntegerField()
    bold_b = models.PositiveIntegerField()

    def __str__(self) -> str:
        return f"style of battle {self.battle_id}"

    @classmethod
    def store(cls, battles, *, inserted: bool = False) -> None:
        """Create or refresh the style rows of saved battles (none for a battle missing an answer).

        `inserted`: the battles were just inserted, so there is no stale style row to delete.
        """
        rows, without = [], []
        for battle in battles:
            columns = style_columns(battle.conversation_a, battle.conversation_b)
            if columns is None:
                without.append(battle.pk)
            else:
                rows.append(cls(battle_id=battle.pk, **columns))
        if without and not inserted:
            cls.objects.filter(battle_id__in=without).delete()
        if rows:
            fields = [f.name for f in cls._meta.concrete_fields if not f.primary_key]
            cls.objects.bulk_create(rows, update_conflicts=True, unique_fields=["battle"], update_fields=fields)


class Vote(models.Model):
    """One vote per battle. Stored first, judged after: an excluded vote keeps its row.

    The battle's models and `anony` are copied here, because ratings aggregate millions
    of votes by (model_a, model_b, winner) and a join for every recomputation costs more
    than three immutable columns.
    """

    battle = models.OneToOneField(Battle, models.CASCADE, related_name="vote")
    model_a = models.ForeignKey("providers.ArenaModel", models.PROTECT, related_name="+")
    model_b = models.ForeignKey("providers.ArenaModel", models.PROTECT, related_name="+")
    anony = models.BooleanField(default=True)
    winner = models.CharField(max_length=16, choices=Winner)
    judge = models.CharField(max_length=64, db_index=True, help_text="A salted hash, never a raw address.")
    network = models.CharField(
        max_length=32,
        blank=True,
        db_default="",
        help_text="The client's network (/24 or /48) as a salted hash, for the per-network daily cap.",
    )
    address = models.CharField(
        max_length=32,
        blank=True,
        db_default="",
        help_text="An anonymous voter's client address (IPv4, IPv6 /64) as a salted hash, for the per-address cap.",
    )
    wide_network = models.CharField(
        max_length=32,
        blank=True,
        db_default="",
        help_text="The client's IPv6 /32 as a salted hash, for the coarse IPv6 cap.",
    )
    excluded_reason = models.CharField(max_length=24, choices=ExclusionReason, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(winner__in=Winner.values), name="vote_winner_valid"),
        ]
        indexes = [
            # The rating pass: counted anonymous votes by pair and outcome.
            models.Index(
                fields=["model_a", "model_b", "winner"],
                name="vote_counted_pairs",
                condition=Q(anony=True, excluded_reason=""),
            ),
            # The per-network daily cap counts a network's votes of the day as each vote arrives.
            models.Index(fields=["network", "created_at"], name="vote_network_day", condition=~Q(network="")),
            models.Index(fields=["address", "created_at"], name="vote_address_day", condition=~Q(address="")),
            models.Index(
                fields=["wide_network", "created_at"], name="vote_wide_network_day", condition=~Q(wide_network="")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.winner} on {self.battle_id}"

    @property
    def counts(self) -> bool:
        return self.anony and not self.excluded_reason


class SamplingShare(models.Model):
    """How many anonymous battles each model was served on one day, for the published shares.

    One row per (day, model), counted up as battles are created (battles/arena_pool.py
    `record_served`). The day's battle count is half the sum of its rows, since every
    battle has two models; a model's served share is its count over that.
    """

    day = models.DateField()
    arena_model = models.ForeignKey("providers.ArenaModel", models.PROTECT, related_name="sampling_shares")
    battles = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "arena_model"], name="samplingshare_one_row_per_day_and_model"),
        ]

    def __str__(self) -> str:
        return f"{self.arena_model_id} on {self.day}: {self.battles} battle(s)"


class VoterState(models.TextChoices):
    FLAGGED = "flagged", "Flagged, awaiting review"
    CONFIRMED = "confirmed", "Confirmed: votes stay excluded"
    CLEARED = "cleared", "Cleared: votes restored"
    BANNED = "banned", "Banned: votes excluded, later ones as they arrive"


class FlaggedVoter(models.Model):
    """A voter the sequential test (battles/integrity.py) flagged, and what staff decided.

    While flagged, confirmed or banned, every counted vote of the voter is excluded with
    `flagged_user` (each detection run excludes the votes cast since; a banned voter's
    votes are excluded as they arrive). A cleared voter's votes count again, and the test
    does not flag them again: the review overrides the test. The state changes only
    through battles/anomaly_review.py `flagged_voter_decide`, which logs a VoterDecision.
    """

    State = VoterState
    # States in which the voter's votes do not count.
    EXCLUDING = (VoterState.FLAGGED, VoterState.CONFIRMED, VoterState.BANNED)

    judge = models.CharField(max_length=64, unique=True)
    state = models.CharField(max_length=10, choices=VoterState, default=VoterState.FLAGGED, db_index=True)
    votes_tested = models.PositiveIntegerField(help_text="Votes the test read (the voter's first 100).")
    statistic = models.FloatField(help_text="The largest running product of evidence reached; flagged at 1/alpha.")
    direction = models.CharField(
        max_length=8, help_text="'against': sides with the less preferred model; 'with': with the crowd, too often."
    )
    alpha = models.FloatField()
    flagged_at = models.DateTimeField(default=timezone.now)
    tested_at = models.DateTimeField(default=timezone.now, help_text="The latest detection run that tested the voter.")
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(state__in=VoterState.values), name="flaggedvoter_state_valid"),
        ]
        permissions = [("review_flaggedvoter", "Can confirm, clear or ban flagged voters")]

    def __str__(self) -> str:
        return f"voter {self.judge[:12]}… ({self.state})"


class VoterDecision(models.Model):
    """Append-only log of review decisions on flagged voters: who, when, why, and what changed."""

    class Decision(models.TextChoices):
        CONFIRM = "confirm", "Confirm"
        CLEAR = "clear", "Clear"
        BAN = "ban", "Ban"

    voter = models.ForeignKey(FlaggedVoter, models.CASCADE, related_name="decisions")
    decision = models.CharField(max_length=8, choices=Decision)
    from_state = models.CharField(max_length=10, choices=VoterState)
    to_state = models.CharField(max_length=10, choices=VoterState)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+")
    reason = models.TextField()
    votes_changed = models.PositiveIntegerField(default=0, help_text="Votes excluded or restored by the decision.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.decision} {self.voter_id} by {self.actor_id}"


class IdentityTerm(models.Model):
    """A word or phrase that gives a model away: a vote on a battle whose prompt or answers
    name an approved term is kept but does not count (`identity_revealed`).

    Terms are proposed from the pool's names (battles/identity_terms.py) or added by staff,
    and only staff approve them: a provider chooses its own name, so a name must not become
    a term by itself. A common English word is never approved (battles/identity.py
    `term_refusal`); a proposal that is one is refused as it is made, with the reason in
    `note`. States change only through battles/identity_terms.py, which logs each decision
    in the audit log.
    """

    class State(models.TextChoices):
        PROPOSED = "proposed", "Proposed, awaiting a decision"
        APPROVED = "approved", "Approved: excludes votes"
        REFUSED = "refused", "Refused"

    class Source(models.TextChoices):
        PROVIDER_NAME = "provider_name", "Provider name"
        PROVIDER_SLUG = "provider_slug", "Provider slug"
        MODEL_NAME = "model_name", "Model name"
        CODENAME = "codename", "Codename"
        FAMILY = "family", "Model family"
        ENDPOINT_MODEL_ID = "endpoint_model_id", "Endpoint model id"
        WORD_LIST = "word_list", "FastChat's word list"
        SETTING = "setting", "ARENA_IDENTITY_WORDS"
        STAFF = "staff", "Added by staff"

    term = models.CharField(
        max_length=100, unique=True, help_text="Case-folded; matched as a whole word or phrase, in any case."
    )
    state = models.CharField(max_length=10, choices=State, default=State.PROPOSED, db_index=True)
    source = models.CharField(max_length=20, choices=Source, default=Source.STAFF)
    provider = models.ForeignKey(
        "providers.Provider", models.SET_NULL, null=True, blank=True, related_name="+", help_text="Whom it identifies."
    )
    arena_model = models.ForeignKey(
        "providers.ArenaModel",
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="model",
        help_text="The model it identifies, if one.",
    )
    note = models.CharField(max_length=500, blank=True, help_text="Why it was refused, or what staff noted.")
    proposed_at = models.DateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Who approved or refused it; empty for a refusal made by the common-word rule.",
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["term"]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=["proposed", "approved", "refused"]), name="identityterm_state_valid"
            ),
        ]
        permissions = [("review_identityterm", "Can approve or refuse identity terms and re-judge votes")]

    def __str__(self) -> str:
        return self.term


class EndpointBudget(models.Model):
    """What staff allow one model's endpoint to cost per UTC day. Past either figure the model
    leaves the battle pool until the day ends (battles/budgets.py)."""

    model = models.OneToOneField("providers.ArenaModel", models.CASCADE, related_name="+")
    daily_requests = models.PositiveIntegerField(
        null=True, blank=True, help_text="Model calls per UTC day (one per side and turn); empty: no limit."
    )
    daily_characters = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="Characters sent and received per UTC day (conversation plus answer); empty: no limit.",
    )

    class Meta:
        verbose_name = "endpoint budget"

    def __str__(self) -> str:
        return f"budget of {self.model}"


class EndpointUsage(models.Model):
    """One model's endpoint use on one UTC day, counted as each answer ends."""

    model = models.ForeignKey("providers.ArenaModel", models.CASCADE, related_name="+")
    day = models.DateField()
    requests = models.PositiveIntegerField(default=0)
    characters = models.PositiveBigIntegerField(default=0)
    refused = models.PositiveIntegerField(
        default=0, help_text="Calls the endpoint refused as bad requests (400, 413, 422: e.g. past its context window)."
    )
    rate_limited = models.PositiveIntegerField(default=0, help_text="Calls still answered 429 after the retries.")
    exhausted_at = models.DateTimeField(
        null=True, blank=True, help_text="When the day's budget ran out and the model left the pool."
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "day"], name="endpoint_usage_one_row_per_day")]
        verbose_name = "endpoint usage"
        verbose_name_plural = "endpoint usage"

    def __str__(self) -> str:
        return f"{self.model} on {self.day}"
