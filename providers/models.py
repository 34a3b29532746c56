from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower
from django.utils import timezone

from arenasite.append_only import AppendOnlyModel
from arenasite.fields import EncryptedTextField

from . import access

# visible_to() below answers with it; the leaderboard's API still imports it from this module.
from .access import sees_every_model
from .endpoints import endpoint_refusal

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class Provider(models.Model):
    """An organisation that brings models to the arena."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    website = models.URLField(blank=True)
    contact_name = models.CharField(max_length=100, blank=True)
    contact_email = models.EmailField(blank=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="providers")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        MEMBER = "member", "Member"
        ADMIN = "admin", "Admin"

    provider = models.ForeignKey(Provider, models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["provider", "user"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} ({self.role}) at {self.provider}"


TOKEN_PREFIX = "arena"


def _digest(secret: str) -> str:
    # Tokens carry 256 random bits, so a plain SHA-256 is enough; no slow hash is needed.
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenRefused(Exception):
    """An API token that may not be issued; the message says why and what to do."""


class TokenExpired(Exception):
    """A real token past its expiry: it answers like an invalid one, with a sentence of its own."""

    def __init__(self, expires_at: datetime):
        super().__init__(f"This token expired at {expires_at:%Y-%m-%d %H:%M} UTC; issue a new one.")


class ApiTokenManager(models.Manager["ApiToken"]):
    def refusal(self, *, user: User, second_factor: bool) -> str:
        """Why a token for `user` may not be issued, or "". A token for staff carries their staff
        powers, so with ARENA_STAFF_REQUIRE_MFA on it is issued only from a session signed in
        with a second factor (`second_factor`) and for a user who has one."""
        from arenasite.mfa import has_totp, holds_staff_role

        if not (settings.ARENA_STAFF_REQUIRE_MFA and holds_staff_role(user)):
            return ""
        if not has_totp(user):
            return (
                f"{user.get_username()} is staff without a second factor: a token acting as staff needs one. "
                "Set up an authenticator app at /accounts/2fa/totp/activate/ first."
            )
        if not second_factor:
            return (
                "A token acting as staff is issued only while signed in with a second factor: "
                "confirm a code from your authenticator app at /accounts/2fa/reauthenticate/, then try again."
            )
        return ""

    def issue(self, *, user: User, name: str, second_factor: bool = False) -> tuple[ApiToken, str]:
        """Create a token and return it with its plaintext, which is never stored or shown again.

        `second_factor`: the request issuing it comes from a session that signed in with one
        (arenasite.mfa.session_used_second_factor). A token for staff expires after
        ARENA_STAFF_TOKEN_DAYS; raises TokenRefused where refusal() says no."""
        from arenasite.mfa import holds_staff_role

        if problem := self.refusal(user=user, second_factor=second_factor):
            raise TokenRefused(problem)
        staff = holds_staff_role(user)
        prefix = secrets.token_hex(4)
        secret = secrets.token_urlsafe(32)
        token = self.create(
            user=user,
            name=name,
            prefix=prefix,
            digest=_digest(secret),
            staff=staff,
            second_factor=second_factor,
            expires_at=timezone.now() + timedelta(days=settings.ARENA_STAFF_TOKEN_DAYS) if staff else None,
        )
        return token, f"{TOKEN_PREFIX}_{prefix}_{secret}"

    def verify(self, raw: str) -> ApiToken | None:
        """The live token `raw` names, or None; raises TokenExpired for one past its expiry."""
        parts = raw.split("_", 2)
        if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
            return None
        token = self.select_related("user").filter(prefix=parts[1], revoked_at__isnull=True).first()
        if token is None or not hmac.compare_digest(token.digest, _digest(parts[2])):
            return None
        if not token.user.is_active:
            return None
        if token.expired and token.expires_at is not None:
            raise TokenExpired(token.expires_at)
        return token


class ApiToken(models.Model):
    """A bearer token for the REST API; it acts with the permissions of its user."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=8, unique=True, editable=False)
    digest = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)
    staff = models.BooleanField(default=False, editable=False, help_text="Issued to staff: it expires.")
    second_factor = models.BooleanField(
        default=False, editable=False, help_text="Issued from a session signed in with a second factor."
    )
    expires_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiTokenManager()

    class Meta:
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({TOKEN_PREFIX}_{self.prefix}_…)"

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    def staff_powers_withheld(self) -> str:
        """Why requests with this token act without its user's staff powers, or "" if they do not
        (or the user has none): a token issued before its user became staff never carries them,
        and with ARENA_STAFF_REQUIRE_MFA on only a token issued with a second factor does."""
        from arenasite import mfa

        if not mfa.holds_staff_role(self.user):
            return ""
        if not self.staff:
            return mfa.TOKEN_NOT_FOR_STAFF
        if settings.ARENA_STAFF_REQUIRE_MFA and not (self.second_factor and mfa.has_totp(self.user)):
            return mfa.TOKEN_WITHOUT_FACTOR
        return ""

    def revoke(self) -> bool:
        """Revoke the token for good; False if it already was.

        Saved row by row through save(), never a queryset update(): post_save is what the
        audit log records a revocation from."""
        if self.revoked_at is not None:
            return False
        self.revoked_at = timezone.now()
        self.save(update_fields=["revoked_at"])
        return True


class ArenaModelQuerySet(models.QuerySet["ArenaModel"]):
    def visible_to(self, user: access.Person) -> ArenaModelQuerySet:
        """Listed models for everyone; all of a provider's models for its members; everything for
        staff who may see models (sees_every_model)."""
        if sees_every_model(user):
            return self.all()
        public = Q(status=ArenaModel.Status.LISTED)
        if not user.is_authenticated:
            return self.filter(public)
        return self.filter(public | Q(provider__memberships__user=user)).distinct()

    def in_pool(self) -> ArenaModelQuerySet:
        """Models that battles may sample: in the blind test or on the leaderboard."""
        return self.filter(status__in=ArenaModel.POOL_STATUSES)

    def offline_in_listing_window(self, now: datetime) -> ArenaModelQuerySet:
        """Listed models whose endpoint fails while the policy promises they stay reachable."""
        window_start = now - timedelta(days=settings.ARENA_MIN_LISTED_DAYS)
        return self.filter(
            status=ArenaModel.Status.LISTED, listed_at__gt=window_start, endpoint_offline_since__isnull=False
        )


# The sampling temperatures a model's endpoint may be called with (ArenaModel.temperature).
TEMPERATURE_MIN = 0.1
TEMPERATURE_MAX = 2.0


class LifecycleStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Submitted"
    INITIAL_RATING = "initial_rating", "Initial rating"
    LISTED = "listed", "Listed"
    RETIRED = "retired", "Retired"
    REJECTED = "rejected", "Rejected"
    WITHDRAWN = "withdrawn", "Withdrawn"


class AccessKind(models.TextChoices):
    OPEN_WEIGHTS = "open_weights", "Open weights"
    PUBLIC_API = "public_api", "Public API"
    PUBLIC_SERVICE = "public_service", "Public service"
    PRIVATE = "private", "Private"


class ArenaModel(models.Model):
    Status = LifecycleStatus
    AccessKind = AccessKind

    POOL_STATUSES = (LifecycleStatus.INITIAL_RATING, LifecycleStatus.LISTED)
    # Out of the arena for good: no transition leaves these, and no one edits such a model.
    TERMINAL_STATUSES = (LifecycleStatus.RETIRED, LifecycleStatus.REJECTED, LifecycleStatus.WITHDRAWN)

    provider = models.ForeignKey(Provider, models.PROTECT, related_name="models")
    # Unique within the provider and among public models only (providers/names.py): a name
    # held by another provider's hidden model is not "taken", so registering reveals nothing.
    name = models.CharField("public name", max_length=100)
    codename = models.CharField(
        max_length=40, unique=True, editable=False, help_text="Shown instead of the name while the model is not public."
    )
    access_kind = models.CharField(max_length=16, choices=AccessKind, default=AccessKind.OPEN_WEIGHTS)
    licence = models.CharField(max_length=100, blank=True)
    family = models.CharField(
        max_length=100,
        blank=True,
        db_index=True,
        help_text="Variants of one model line share a family (set by staff, e.g. at admission). When the "
        "provider lists one of them, the kept ratings of the others become public after "
        "ARENA_RETRACTION_DELAY_DAYS. Empty: the model is a family of its own.",
    )
    description = models.TextField(max_length=5000, blank=True)
    knowledge_cutoff = models.DateField(null=True, blank=True)
    heads_up_requested = models.BooleanField(
        default=False, help_text="The provider asked for one day's notice: listing waits a day after the decision."
    )
    is_demo = models.BooleanField(default=False, help_text="Answered by the local demo backend, not an endpoint.")
    sampling_weight = models.FloatField(
        default=1.0,
        help_text="Weight in the draw of anonymous battles, above 0 (default 1; a higher weight means more "
        "battles, though not proportionally more). A model in initial rating is drawn with "
        "ARENA_NEW_MODEL_BOOST times this until it has ARENA_NEW_MODEL_BOOST_VOTES counted votes.",
    )
    battle_targets = models.ManyToManyField(
        "self",
        symmetrical=False,
        blank=True,
        related_name="targeted_by",
        help_text="Preferred opponents: when this model is drawn first, its opponent comes from these (those in "
        "the battle pool) with probability ARENA_BATTLE_TARGET_SHARE.",
    )

    status = models.CharField(
        max_length=16, choices=LifecycleStatus, default=LifecycleStatus.DRAFT, editable=False, db_index=True
    )
    status_changed_at = models.DateTimeField(default=timezone.now, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    submitted_at = models.DateTimeField(null=True, blank=True, editable=False)
    admitted_at = models.DateTimeField(null=True, blank=True, editable=False)
    list_after = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="A staff decision to list, waiting out the heads-up."
    )
    listed_at = models.DateTimeField(null=True, blank=True, editable=False)
    retire_after = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="A retirement asked for inside the listing window."
    )
    retired_at = models.DateTimeField(null=True, blank=True, editable=False)
    withdrawn_at = models.DateTimeField(null=True, blank=True, editable=False)
    votes_counted = models.PositiveIntegerField(
        default=0, editable=False, help_text="Votes that count for ratings, kept up to date by the rating runs."
    )

    endpoint_base_url = models.URLField(
        "endpoint base URL", blank=True, help_text="OpenAI-compatible, e.g. https://api.example.com/v1"
    )
    endpoint_model_id = models.CharField("endpoint model id", max_length=200, blank=True)
    endpoint_api_key = EncryptedTextField("endpoint API key", blank=True, max_length=1000)
    # Sent with every battle call. A replayed prompt must not get the same answer back: one that
    # does names the model before the vote to anyone who saw it revealed once. So greedy
    # decoding (0) is refused; empty leaves the endpoint's own default, which is usually to sample.
    temperature = models.FloatField(
        "sampling temperature",
        null=True,
        blank=True,
        validators=[MinValueValidator(TEMPERATURE_MIN), MaxValueValidator(TEMPERATURE_MAX)],
        help_text=f"Sent as the temperature of each chat-completions request, {TEMPERATURE_MIN} to "
        f"{TEMPERATURE_MAX}; empty: the endpoint's default. Set it when the endpoint's default is greedy, "
        "so the same prompt gets a different answer each time.",
    )
    endpoint_last_checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    endpoint_last_ok_at = models.DateTimeField(null=True, blank=True, editable=False)
    endpoint_offline_since = models.DateTimeField(null=True, blank=True, editable=False)
    endpoint_last_error = models.CharField(max_length=500, blank=True, editable=False)
    retirement_candidate_since = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="Offline for too long after its listing window."
    )

    objects = ArenaModelQuerySet.as_manager()

    class Meta:
        verbose_name = "model"
        ordering = ["name"]
        permissions = [("transition_arenamodel", "Can move models through their lifecycle")]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=LifecycleStatus.values), name="arenamodel_status_valid"),
            models.CheckConstraint(condition=Q(access_kind__in=AccessKind.values), name="arenamodel_access_kind_valid"),
            models.CheckConstraint(
                condition=Q(temperature__isnull=True)
                | Q(temperature__gte=TEMPERATURE_MIN, temperature__lte=TEMPERATURE_MAX),
                name="arenamodel_temperature_range",
            ),
            models.UniqueConstraint(
                F("provider"),
                Lower("name"),
                name="arenamodel_name_unique_per_provider",
                violation_error_message="The provider already has a model with this public name.",
            ),
            models.UniqueConstraint(
                Lower("name"),
                condition=Q(listed_at__isnull=False),
                name="arenamodel_public_name_unique",
                violation_error_message="A public model already has this public name.",
            ),
            models.CheckConstraint(
                condition=Q(sampling_weight__gt=0),
                name="arenamodel_sampling_weight_positive",
                violation_error_message="The sampling weight must be above 0; retire or withdraw a model to "
                "stop sampling it.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.codename:
            self.codename = new_codename()
        super().save(*args, **kwargs)

    def clean(self) -> None:
        # The admin's form calls this; the API's serializer makes the same check itself.
        super().clean()
        refusal = endpoint_refusal(self.endpoint_base_url) if self.endpoint_base_url else None
        if refusal:
            raise ValidationError({"endpoint_base_url": refusal})

    @property
    def is_public(self) -> bool:
        """Whether the public name may be shown (it is or has been on the leaderboard)."""
        return self.listed_at is not None

    @property
    def display_name(self) -> str:
        return self.name if self.is_public else self.codename

    @property
    def listing_window_ends_at(self) -> datetime | None:
        if self.listed_at is None:
            return None
        return self.listed_at + timedelta(days=settings.ARENA_MIN_LISTED_DAYS)

    @property
    def has_endpoint(self) -> bool:
        return bool(self.endpoint_base_url and self.endpoint_model_id)


_ADJECTIVES = (
    "amber azure brisk calm coral crimson dusky ember fern frosty golden hazel indigo ivory jade "
    "lunar misty olive pearl quiet rapid rustic sable silver solar teal velvet vivid willow zesty"
).split()
_NOUNS = (
    "badger bison condor crane dingo falcon ferret gecko heron ibex jackal kestrel koala lemur lynx "
    "marten moose newt ocelot otter panda puffin quail raven robin salmon tapir turtle walrus yak"
).split()


def new_codename() -> str:
    while True:
        name = f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{secrets.randbelow(100):02d}"
        # Names shaped like codenames are refused (providers/names.py); one older than that rule
        # must not meet a codename equal to it either.
        taken = Q(codename=name) | Q(name__iexact=name)
        if not ArenaModel.objects.filter(taken).exists():
            return name


class RetirementRule(models.TextChoices):
    """The rule a retirement was made under, recorded on its event and shown publicly."""

    PROVIDER_REQUEST = "provider_request", "Requested by the provider"
    OFFLINE = "offline", "Offline too long after its listing window"
    BELOW_PERCENTILE = "below_percentile", "Rated below the published percentile of its access kind"
    STAFF_DECISION = "staff_decision", "Staff decision (explained in the reason)"


class LifecycleEvent(AppendOnlyModel):
    """One step in a model's life: who, when, from, to, why. Append-only.

    `kind` tells a transition that happened from a decision scheduled to take effect
    later (a retirement inside the listing window, a listing waiting out a heads-up).
    """

    class Kind(models.TextChoices):
        DONE = "done", "Done"
        SCHEDULED = "scheduled", "Scheduled"

    arena_model = models.ForeignKey(ArenaModel, models.PROTECT, related_name="events")
    action = models.CharField(max_length=24)
    kind = models.CharField(max_length=10, choices=Kind, default=Kind.DONE)
    from_status = models.CharField(max_length=16, choices=LifecycleStatus)
    to_status = models.CharField(max_length=16, choices=LifecycleStatus)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty when the scheduler carried out an earlier decision.",
    )
    reason = models.TextField(blank=True)
    rule = models.CharField(
        max_length=24, choices=RetirementRule, blank=True, help_text="For retirements: the rule applied."
    )
    effective_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["arena_model", "created_at"])]

    def __str__(self) -> str:
        verb = "scheduled" if self.kind == self.Kind.SCHEDULED else "moved"
        return f"{self.arena_model_id}: {self.action} {verb} {self.from_status} → {self.to_status}"


class ChangeRequest(models.Model):
    """A provider's request to change what answers behind a model in the pool.

    For a model in initial rating or listed, a change of access kind, endpoint address or
    endpoint model id is not applied when asked: it waits here for staff (providers/changes.py).
    Until approved, the model keeps being served with its approved values; battles and health
    checks never read this table. An API key sent with the request belongs to the new endpoint
    and waits with it; it is wiped when the request is decided or withdrawn.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Waiting for staff"
        APPROVED = "approved", "Approved"
        REFUSED = "refused", "Refused"
        WITHDRAWN = "withdrawn", "Withdrawn"

    arena_model = models.ForeignKey(ArenaModel, models.PROTECT, related_name="change_requests")
    state = models.CharField(max_length=10, choices=State, default=State.PENDING, editable=False, db_index=True)
    access_kind = models.CharField(max_length=16, choices=AccessKind, editable=False)
    endpoint_base_url = models.URLField("endpoint base URL", blank=True, editable=False)
    endpoint_model_id = models.CharField("endpoint model id", max_length=200, blank=True, editable=False)
    endpoint_api_key = EncryptedTextField("endpoint API key", blank=True, max_length=1000, editable=False)
    replaces_api_key = models.BooleanField(
        default=False, editable=False, help_text="The request carries an API key for the new endpoint."
    )
    previous = models.JSONField(
        default=dict, editable=False, help_text="The approved values when the request was made."
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )
    requested_at = models.DateTimeField(default=timezone.now, editable=False)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )
    decided_at = models.DateTimeField(null=True, blank=True, editable=False)
    decision_reason = models.TextField(blank=True, editable=False)

    class Meta:
        verbose_name = "access or endpoint change"
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["arena_model"],
                condition=Q(state="pending"),
                name="changerequest_one_pending_per_model",
            ),
            models.CheckConstraint(
                condition=Q(state__in=["pending", "approved", "refused", "withdrawn"]),
                name="changerequest_state_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.arena_model}: {self.describe()}"

    def requested_values(self) -> dict[str, str]:
        return {
            "access_kind": self.access_kind,
            "endpoint_base_url": self.endpoint_base_url,
            "endpoint_model_id": self.endpoint_model_id,
        }

    def describe(self) -> str:
        """The change in words, old → new, without the key: for the logs and the pages."""
        labels = {"access_kind": "access", "endpoint_base_url": "endpoint", "endpoint_model_id": "model id"}
        parts = [
            f"{labels[field]} {self.previous.get(field) or '(none)'} → {value or '(none)'}"
            for field, value in self.requested_values().items()
            if value != self.previous.get(field)
        ]
        if self.replaces_api_key:
            parts.append("with a new API key")
        return "; ".join(parts) or "no change"
