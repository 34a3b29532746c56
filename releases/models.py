from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class DataRelease(models.Model):
    """A community release: the release-pool battles voted up to `cutoff` that no earlier
    release took, as files in the public dataset's schema (releases/building.py).

    Built, then reviewed in admin, then published by staff; only published releases are
    public. Each battle is in at most one release (`ReleasedBattle`), including the battles
    a release left out for personal data, so nothing is reconsidered or published twice.
    """

    class State(models.TextChoices):
        BUILDING = "building", "Building"
        BUILT = "built", "Built, awaiting review"
        PUBLISHED = "published", "Published"
        FAILED = "failed", "Failed"
        DISCARDED = "discarded", "Discarded"

    cutoff = models.DateTimeField(help_text="Battles created up to this moment are considered.")
    state = models.CharField(max_length=10, choices=State, default=State.BUILDING)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    heartbeat_at = models.DateTimeField(
        default=timezone.now, editable=False, help_text="Last sign of life of the build; a stale one was interrupted."
    )
    built_at = models.DateTimeField(null=True, blank=True, editable=False)
    published_at = models.DateTimeField(null=True, blank=True, editable=False)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, editable=False, related_name="+"
    )
    battle_count = models.PositiveIntegerField(default=0, editable=False, help_text="Battles in the files.")
    excluded_count = models.PositiveIntegerField(default=0, editable=False, help_text="Left out for personal data.")
    manifest = models.JSONField(default=dict, blank=True, editable=False)
    error = models.TextField(blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("publish_datarelease", "Can publish or discard data releases")]
        constraints = [
            # The row of a running build is its lock: a second build at the same time is refused.
            models.UniqueConstraint(fields=["state"], condition=Q(state="building"), name="one_release_building"),
        ]

    def __str__(self) -> str:
        return f"release {self.pk} (cutoff {self.cutoff:%Y-%m-%d})"

    @property
    def directory_name(self) -> str:
        return f"release-{self.pk}"


class ReleasedBattle(models.Model):
    """Which release took a battle; `excluded_reason` says why it is not in the files."""

    battle = models.OneToOneField("battles.Battle", models.CASCADE, primary_key=True, related_name="release_entry")
    release = models.ForeignKey(DataRelease, models.CASCADE, related_name="entries")
    excluded_reason = models.CharField(max_length=32, blank=True, help_text="Personal data found, by kind.")

    class Meta:
        indexes = [models.Index(fields=["release", "excluded_reason"], name="releasedbattle_by_release")]

    def __str__(self) -> str:
        return f"battle {self.battle_id} in release {self.release_id}"


class DataSharingAgreement(models.Model):
    """A provider's acceptance of the data-sharing terms, and staff's decision on it.

    A provider member accepts the current terms (DATA_SHARING_TERMS_VERSION) for their
    provider; the agreement waits for staff, who approve or revoke it (releases/sharing.py,
    admin or `manage.py agreement`). Shares can be requested and downloaded while the
    provider has an approved agreement on the current terms. A revoked agreement stays as
    the record; accepting again makes a new one.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending, awaiting staff"
        APPROVED = "approved", "Approved"
        REVOKED = "revoked", "Revoked"

    provider = models.ForeignKey("providers.Provider", models.PROTECT, related_name="data_sharing_agreements")
    terms_version = models.CharField(max_length=32, help_text="DATA_SHARING_TERMS_VERSION when it was accepted.")
    accepted_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="+")
    accepted_at = models.DateTimeField(default=timezone.now, editable=False)
    state = models.CharField(max_length=10, choices=State, default=State.PENDING, editable=False)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.PROTECT,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
        help_text="Empty when decided from the shell.",
    )
    decided_at = models.DateTimeField(null=True, blank=True, editable=False)
    reason = models.TextField(blank=True, editable=False, help_text="Why it was approved or revoked.")

    class Meta:
        ordering = ["-accepted_at", "-id"]
        permissions = [("decide_datasharingagreement", "Can approve or revoke data-sharing agreements")]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=["pending", "approved", "revoked"]), name="datasharingagreement_state_valid"
            ),
            # Accepting the same terms twice returns the agreement already there (releases/sharing.py).
            models.UniqueConstraint(
                fields=["provider", "terms_version"],
                condition=Q(state__in=["pending", "approved"]),
                name="one_open_agreement_per_terms",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider} data-sharing agreement ({self.terms_version}, {self.state})"


class ProviderShare(models.Model):
    """Early data for one provider: the release-pool battles not yet in a published release
    in which one of its models took part, labelled as the policy says (releases/sharing.py).

    Requested through the API (or built by `build_share`), built by a Celery task into
    releases_dir()/shares/share-<id>/, with the same files as a community release.
    """

    class State(models.TextChoices):
        REQUESTED = "requested", "Requested"
        BUILDING = "building", "Building"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    provider = models.ForeignKey("providers.Provider", models.PROTECT, related_name="data_shares")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty when built from the shell.",
    )
    agreement = models.ForeignKey(DataSharingAgreement, models.PROTECT, related_name="shares")
    state = models.CharField(max_length=10, choices=State, default=State.REQUESTED, editable=False)
    requested_at = models.DateTimeField(default=timezone.now, editable=False)
    built_at = models.DateTimeField(null=True, blank=True, editable=False)
    battle_count = models.PositiveIntegerField(default=0, editable=False, help_text="Battles in the files.")
    excluded_count = models.PositiveIntegerField(default=0, editable=False, help_text="Left out for personal data.")
    manifest = models.JSONField(default=dict, blank=True, editable=False)
    error = models.TextField(blank=True, editable=False)

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [models.Index(fields=["provider", "requested_at"], name="providershare_by_provider")]

    def __str__(self) -> str:
        return f"share {self.pk} for {self.provider}"

    @property
    def directory_name(self) -> str:
        return f"share-{self.pk}"


class Download(models.Model):
    """One file served: a share's (through the API) or a release's (from /data/). Append-only.

    `provider` is the provider the downloader acted for, so a provider's log holds its
    members' downloads and not staff reading its share.
    """

    class Format(models.TextChoices):
        JSONL = "jsonl", "JSON Lines"
        PARQUET = "parquet", "Parquet"
        FASTCHAT = "fastchat", "FastChat clean battle JSON"
        MANIFEST = "manifest", "Manifest"
        CARD = "card", "Data card"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+")
    provider = models.ForeignKey(
        "providers.Provider", models.SET_NULL, null=True, blank=True, related_name="data_downloads"
    )
    share = models.ForeignKey(ProviderShare, models.SET_NULL, null=True, blank=True, related_name="downloads")
    release = models.ForeignKey(DataRelease, models.SET_NULL, null=True, blank=True, related_name="downloads")
    format = models.CharField(max_length=10, choices=Format)
    bytes = models.PositiveBigIntegerField(help_text="Size of the file served.")
    at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["provider", "at"], name="download_by_provider")]

    def __str__(self) -> str:
        what = f"share {self.share_id}" if self.share_id else f"release {self.release_id}"
        return f"{self.format} of {what} at {self.at:%Y-%m-%d %H:%M}"
