"""Provider early access: data-sharing agreements and shares.

The policy ("Sharing data with the model providers"): upon request, a provider gets early
access to a subset of the data later shared with the community, the battles with its own
models' answers; the opponent is labelled "anonymous", and the provider's own model is
labelled "anonymous" too if it is not on the leaderboard at the time of sharing.

Here that is:
- an agreement: a provider member accepts the current terms (DATA_SHARING_TERMS_VERSION);
  staff approve or revoke it. Shares are requested and downloaded only while the provider
  has an approved agreement on the current terms (`refusal`).
- a share: the release-pool, voted battles with one of the provider's models that no
  published release holds yet (`share_battles`), written with the release writer
  (building.write_export, which leaves out conversations with personal data) into
  releases_dir()/shares/share-<id>/, atomically: a temporary directory renamed when complete.

Every battle in a share is in the release pool and not yet published, so the next
community releases take it (or count it as left out for personal data): what a provider
received is a subset of what the community receives later. tests/releases/test_shares.py
checks that invariant.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.db.models import Q, QuerySet
from django.template.loader import render_to_string

from arenasite import clock
from battles.models import Battle
from providers.models import ArenaModel, Provider

from . import files
from .building import ANONYMOUS, export_counts, releases_dir, remove_partials, write_export
from .models import DataRelease, DataSharingAgreement, ProviderShare

logger = logging.getLogger(__name__)

Agreement = DataSharingAgreement


class SharingRefused(Exception):
    """Not allowed now; the message says why, in words fit for the provider."""


# --- agreements ------------------------------------------------------------------------------


def terms_version() -> str:
    return settings.DATA_SHARING_TERMS_VERSION


def terms_text() -> str:
    """The terms a provider accepts (templates/releases/sharing_terms.md), as Markdown."""
    return render_to_string(
        "releases/sharing_terms.md",
        {"version": terms_version(), "pool_percent": round(settings.RELEASE_POOL_FRACTION * 100)},
    )


def active_agreement(provider: Provider) -> DataSharingAgreement | None:
    """The provider's approved agreement on the current terms, if any."""
    return (
        Agreement.objects.filter(provider=provider, state=Agreement.State.APPROVED, terms_version=terms_version())
        .order_by("-accepted_at", "-id")
        .first()
    )


def refusal(provider: Provider) -> str | None:
    """Why `provider` may not request or download shares now; None when it may."""
    if active_agreement(provider) is not None:
        return None
    latest = Agreement.objects.filter(provider=provider).order_by("-accepted_at", "-id").first()
    accept = "accept them with POST /api/v1/agreements/"
    if latest is None:
        return f"{provider.name} has not accepted the data-sharing terms ({terms_version()}); {accept}."
    if latest.terms_version != terms_version():
        return (
            f"{provider.name} accepted the data-sharing terms of {latest.terms_version}, but the current terms "
            f"are {terms_version()}; {accept}."
        )
    if latest.state == Agreement.State.PENDING:
        return f"The data-sharing agreement of {provider.name} is waiting for approval by the arena's staff."
    reason = f" ({latest.reason})" if latest.reason else ""
    return f"The data-sharing agreement of {provider.name} was revoked{reason}; no data is shared."


def agreement_accept(*, provider: Provider, user) -> tuple[DataSharingAgreement, bool]:
    """Record that `user` accepted the current terms for `provider`; it then waits for staff.

    The caller checks that `user` may act for `provider`. Idempotent: while an agreement on
    the same terms is pending or approved, that one is returned (created False).
    """
    open_states = [Agreement.State.PENDING, Agreement.State.APPROVED]
    version = terms_version()
    existing = Agreement.objects.filter(provider=provider, terms_version=version, state__in=open_states).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            return Agreement.objects.create(provider=provider, terms_version=version, accepted_by=user), True
    except IntegrityError:
        # A concurrent acceptance won the unique constraint; it is the same acceptance.
        return Agreement.objects.get(provider=provider, terms_version=version, state__in=open_states), False


def agreement_decide(
    *, agreement_id: int, approve: bool, by=None, reason: str = ""
) -> tuple[DataSharingAgreement, bool]:
    """Approve a pending agreement, or revoke a pending or approved one; records who and when.

    Idempotent: a decision the agreement already carries changes nothing (changed False).
    Raises SharingRefused for approving a revoked agreement (the provider accepts the terms
    again instead) or one on terms that are no longer current.
    """
    with transaction.atomic():
        # Locked, so a revocation and a share request (which locks it too) do not interleave.
        agreement = Agreement.objects.select_for_update().get(pk=agreement_id)
        target = Agreement.State.APPROVED if approve else Agreement.State.REVOKED
        if agreement.state == target:
            return agreement, False
        if approve and agreement.state == Agreement.State.REVOKED:
            raise SharingRefused(f"Agreement {agreement.pk} was revoked; the provider has to accept the terms again.")
        if approve and agreement.terms_version != terms_version():
            raise SharingRefused(
                f"Agreement {agreement.pk} is on the terms of {agreement.terms_version}, but the current terms "
                f"are {terms_version()}; the provider has to accept those."
            )
        agreement.state = target
        agreement.decided_by = by
        agreement.decided_at = clock.now()
        agreement.reason = reason
        agreement.save(update_fields=["state", "decided_by", "decided_at", "reason"])
    logger.info("agreement %s %s by %s", agreement.pk, target, by or "the shell")
    return agreement, True


# --- shares ----------------------------------------------------------------------------------


def share_battles(provider: Provider, cutoff: datetime) -> QuerySet[Battle]:
    """The battles a share of `provider` holds: voted, in the release pool, created up to
    `cutoff`, with one of the provider's models, and in no published release.

    A battle in a release that is built but not published yet is still shared: it is not
    public until the release is. Nothing outside the pool is ever selected.
    """
    own = ArenaModel.objects.filter(provider=provider).values("pk")
    return (
        Battle.objects.filter(in_release_pool=True, created_at__lte=cutoff, vote__isnull=False)
        .filter(Q(model_a__in=own) | Q(model_b__in=own))
        .exclude(release_entry__release__state=DataRelease.State.PUBLISHED)
    )


def share_labels(provider: Provider) -> Callable[[int, int], tuple[str, str]]:
    """(model_a_id, model_b_id) -> the labels in a share, read now (at the time of sharing).

    The provider's own model: its public name if it is listed now, else "anonymous". Any
    other model: "anonymous". A battle between two of the provider's models labels each by
    its own status.
    """
    own = {
        pk: (name if status == ArenaModel.Status.LISTED else ANONYMOUS)
        for pk, name, status in ArenaModel.objects.filter(provider=provider).values_list("pk", "name", "status")
    }
    return lambda a, b: (own.get(a, ANONYMOUS), own.get(b, ANONYMOUS))


def shares_dir() -> Path:
    path = releases_dir() / "shares"
    path.mkdir(parents=True, exist_ok=True)
    return path


def share_path(share: ProviderShare) -> Path:
    return shares_dir() / share.directory_name


def share_request(*, provider: Provider, user, enqueue: bool = True) -> ProviderShare:
    """A new share in state `requested`; with `enqueue`, the build_share task builds it
    after the transaction commits (so the worker sees the row).

    The caller checks that `user` may act for `provider`. Raises SharingRefused when the
    provider has no approved agreement on the current terms.
    """
    from .tasks import build_share  # the task module imports this one

    with transaction.atomic():
        agreement = active_agreement(provider)
        if agreement is not None:
            # Hold the agreement while the share is recorded: a revocation waits for us.
            agreement = Agreement.objects.select_for_update().get(pk=agreement.pk)
        if agreement is None or agreement.state != Agreement.State.APPROVED:
            raise SharingRefused(refusal(provider) or "No approved data-sharing agreement.")
        share = ProviderShare.objects.create(provider=provider, requested_by=user, agreement=agreement)
        if enqueue:
            transaction.on_commit(lambda: _enqueue_build(build_share, share.pk))
    return share


def _enqueue_build(task, share_id: int) -> None:
    # The request is answered whether or not the broker is reachable: the share row is
    # committed in state `requested`, and build_waiting_shares builds what was not queued.
    try:
        task.delay(share_id)
    except Exception:
        logger.warning("share %s: the build could not be queued; the next sweep builds it", share_id, exc_info=True)


def waiting_shares(older_than: timedelta) -> QuerySet[ProviderShare]:
    """Shares requested more than `older_than` ago whose build never started (a lost enqueue)."""
    return ProviderShare.objects.filter(
        state=ProviderShare.State.REQUESTED, requested_at__lt=clock.now() - older_than
    ).order_by("requested_at", "pk")


def share_build(share_id: int) -> ProviderShare:
    """Write the share's files and mark it `ready`; on any error it ends `failed` with no files.

    Idempotent, for a task redelivered under CELERY_TASK_ACKS_LATE: a share already ready
    or failed is returned as it is; one still requested or building is built again from the
    start (what an interrupted attempt left is removed first). A share whose provider lost
    its approved agreement in the meantime fails without files.
    """
    share = ProviderShare.objects.select_related("provider", "agreement").get(pk=share_id)
    if share.state in (ProviderShare.State.READY, ProviderShare.State.FAILED):
        return share
    why_not = refusal(share.provider)
    if why_not is not None:
        _fail(share, why_not)
        share.refresh_from_db()
        return share
    ProviderShare.objects.filter(pk=share.pk).update(state=ProviderShare.State.BUILDING)
    _remove_partials(share)
    partial = shares_dir() / f".{share.directory_name}.partial-{uuid.uuid4().hex[:8]}"
    final = share_path(share)
    partial.mkdir()
    try:
        cutoff = clock.now()
        summary = write_export(share_battles(share.provider, cutoff), partial, label=share_labels(share.provider))
        built_at = clock.now()
        manifest = _manifest(share, summary, cutoff, built_at)
        files.finish_directory(partial, final, card=_card(share, manifest), manifest=manifest)
        files.sync_directory(final.parent)
        ProviderShare.objects.filter(pk=share.pk).update(
            state=ProviderShare.State.READY,
            built_at=built_at,
            battle_count=summary["rows"],
            excluded_count=sum(summary["excluded"].values()),
            manifest=manifest,
            error="",
        )
    except (OperationalError, InterfaceError):
        # The database went away: leave the share `building` for the task's retry.
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(final, ignore_errors=True)
        raise
    except BaseException as exc:
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(final, ignore_errors=True)
        _fail(share, f"{type(exc).__name__}: {exc}")
        logger.exception("share %s: build failed", share.pk)
        raise
    share.refresh_from_db()
    logger.info(
        "share %s for %s built: %s battles, %s left out",
        share.pk,
        share.provider.slug,
        share.battle_count,
        share.excluded_count,
    )
    return share


def share_file(share: ProviderShare, fmt: str) -> Path:
    return share_path(share) / files.FORMAT_FILES[fmt]


def _fail(share: ProviderShare, error: str) -> None:
    ProviderShare.objects.filter(pk=share.pk).exclude(state=ProviderShare.State.READY).update(
        state=ProviderShare.State.FAILED, error=error
    )


def _manifest(share: ProviderShare, summary: dict, cutoff: datetime, built_at: datetime) -> dict:
    return {
        "share": share.pk,
        "provider": share.provider.slug,
        "schema": "chatbot_arena_conversations",
        "terms_version": share.agreement.terms_version,
        "cutoff": cutoff.isoformat(),
        "built_at": built_at.isoformat(),
        **export_counts(summary),
    }


def _card(share: ProviderShare, manifest: dict) -> str:
    return render_to_string(
        "releases/share_card.md",
        {"share": share, "manifest": manifest, "pool_percent": round(settings.RELEASE_POOL_FRACTION * 100)},
    )


def _remove_partials(share: ProviderShare) -> None:
    remove_partials(shares_dir(), share.directory_name)
