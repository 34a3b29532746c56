"""Building a community release from the database, and publishing it.

A build streams the release-pool battles voted up to the cutoff that no earlier release
took (a server-side cursor, a batch at a time), leaves out those with personal data
(releases/personal_data.py), labels the models as the policy says, and writes the files
(releases/files.py) into a temporary directory. Only when every file is complete is the
directory moved to its final name, and the battles recorded as taken, in the same
transaction that marks the release built. A build that dies halfway leaves no release
files and no battle taken; its release row is found stale and marked failed by the next
build (`expire_interrupted`).

Whether a build is still running cannot be read from its rows: it writes them in one
transaction, which no other connection sees until it ends. On PostgreSQL a build holds a
session-level advisory lock on its release for its whole life (`_build_lock`); the
database drops it when the build's process or connection dies, so another process tests
it with pg_try_advisory_lock and knows at once whether the build is alive.

Publishing is a separate, deliberate step by staff (admin action or `publish_release`).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import logging
import shutil
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, reset_queries, transaction
from django.db.models import QuerySet
from django.template.loader import render_to_string

from arenasite import clock
from battles.models import Battle, Vote
from leaderboard import categories
from providers.models import ArenaModel

from . import files
from .models import DataRelease, ReleasedBattle
from .personal_data import find_personal_data

logger = logging.getLogger(__name__)

ANONYMOUS = "anonymous"
BATCH = 2000
# A release `building` whose build holds no lock (on SQLite: any) and that started, or was
# queued, this long ago is no longer being built. The wait covers a release queued for a
# worker that has not taken it yet: no lock is held until its build starts.
STALE_AFTER = timedelta(minutes=10)
# Namespace of the advisory lock a build holds (battles/arena.py uses 7001-7004,
# battles/identity_terms.py 7010); the release's id is the second key.
_BUILD_LOCK = 7020


class ReleaseRefused(Exception):
    """The release cannot be built or published now; the message says why."""


def releases_dir() -> Path:
    path = Path(settings.RELEASES_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def release_path(release: DataRelease) -> Path:
    return releases_dir() / release.directory_name


def public_labels() -> dict[int, str]:
    """Model id -> label: the public name if the model is or has been listed, else "anonymous"."""
    return {
        pk: (name if listed_at is not None else ANONYMOUS)
        for pk, name, listed_at in ArenaModel.objects.values_list("pk", "name", "listed_at")
    }


def public_judge(judge: str) -> str:
    """The voter as published: a second keyed hash of the stored judge id, stable across
    releases (a voter's votes can be followed) but not the id used inside the arena."""
    digest = hmac.new(settings.JUDGE_SALT.encode(), f"release:{judge}".encode(), hashlib.sha256).hexdigest()
    return f"arena_user_{digest[:16]}"


def expire_interrupted(now: datetime | None = None) -> list[DataRelease]:
    """Mark the releases whose build is dead as failed, and remove what their build left.

    Dead: still `building`, started (or queued) more than STALE_AFTER ago, and, on
    PostgreSQL, no process holds its build lock. A release whose build is alive, however
    long it has run, is left alone with its files; files are removed only for a release
    this call itself moved from `building` to `failed`, so a build that ended meanwhile
    keeps its directory.
    """
    now = now or clock.now()
    expired = []
    for release in DataRelease.objects.filter(state=DataRelease.State.BUILDING, heartbeat_at__lt=now - STALE_AFTER):
        with _build_lock(release.pk) as held:
            if not held:
                continue  # its build is running in another process
            marked = DataRelease.objects.filter(pk=release.pk, state=DataRelease.State.BUILDING).update(
                state=DataRelease.State.FAILED, error="The build was interrupted (its process is gone)."
            )
            if marked:
                remove_partials(releases_dir(), release.directory_name)
                expired.append(release)
    return expired


@contextmanager
def _build_lock(release_id: int) -> Iterator[bool]:
    """Take the build lock of a release if no one holds it; yields whether it is held.

    PostgreSQL: a session-level advisory lock, tied to no transaction, so other connections
    see it while the build's transaction is open, and the database releases it when the
    holder's process or connection dies. Elsewhere (SQLite, one writer at a time) there is
    no such lock and the caller always gets True: the release's age is the only sign.
    """
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_BUILD_LOCK, release_id])
        held = cursor.fetchone()[0]
    try:
        yield held
    finally:
        if held:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_BUILD_LOCK, release_id])


def start_release(cutoff: datetime) -> DataRelease:
    """A new release row in state `building`, which is the lock against a second build."""
    expire_interrupted()
    now = clock.now()
    if cutoff.date() > now.date():
        raise ReleaseRefused(f"The cutoff {cutoff:%Y-%m-%d %H:%M} is in the future.")
    # "Up to today" means up to now: a battle voted later today belongs to the next release.
    cutoff = min(cutoff, now)
    try:
        with transaction.atomic():
            return DataRelease.objects.create(cutoff=cutoff)
    except IntegrityError:
        running = DataRelease.objects.filter(state=DataRelease.State.BUILDING).first()
        raise ReleaseRefused(
            f"Another release is being built (release {running.pk if running else '?'}); try again when it is done."
        ) from None


def build(release: DataRelease) -> DataRelease:
    """Write the release's files and take its battles; the release ends `built` or `failed`.

    Safe to run again for a release still `building` whose build died (a redelivered
    task): what the previous attempt left is removed first. Refused while another process
    is building it.
    """
    with _build_lock(release.pk) as held:
        if not held:
            raise ReleaseRefused(f"Release {release.pk} is being built by another process.")
        release.refresh_from_db()
        if release.state != DataRelease.State.BUILDING:
            raise ReleaseRefused(f"Release {release.pk} is {release.get_state_display().lower()}, not building.")
        # Committed before the build's transaction opens, for SQLite (where it is the only
        # sign of life) and for a release queued long ago whose build starts only now.
        DataRelease.objects.filter(pk=release.pk).update(heartbeat_at=clock.now())
        _build(release)
    release.refresh_from_db()
    logger.info("release %s built: %s battles, %s left out", release.pk, release.battle_count, release.excluded_count)
    return release


def _build(release: DataRelease) -> None:
    """The build proper, run under the release's build lock."""
    _remove_partials(release)
    partial = releases_dir() / f".{release.directory_name}.partial-{uuid.uuid4().hex[:8]}"
    final = release_path(release)
    partial.mkdir()
    moved = False
    try:
        with transaction.atomic():
            summary = _write_battles(release, partial)
            built_at = clock.now()
            manifest = _manifest(release, summary, built_at)
            files.finish_directory(partial, final, card=_card(release, manifest), manifest=manifest)
            moved = True
            files.sync_directory(final.parent)
            DataRelease.objects.filter(pk=release.pk).update(
                state=DataRelease.State.BUILT,
                built_at=built_at,
                battle_count=summary["rows"],
                excluded_count=sum(summary["excluded"].values()),
                manifest=manifest,
            )
    except BaseException as exc:
        shutil.rmtree(partial, ignore_errors=True)
        # The final directory goes only if this build put it there and the release is still
        # `building`, so never the files of a release that some other path marked built.
        failed = 0
        try:
            failed = DataRelease.objects.filter(pk=release.pk, state=DataRelease.State.BUILDING).update(
                state=DataRelease.State.FAILED, error=f"{type(exc).__name__}: {exc}"
            )
        except DatabaseError:
            logger.warning("release %s: not marked failed; the next build will", release.pk, exc_info=True)
        if moved and failed:
            shutil.rmtree(final, ignore_errors=True)
        logger.exception("release %s: build failed", release.pk)
        raise


def _write_battles(release: DataRelease, directory: Path) -> dict:
    labels = public_labels()
    candidates = Battle.objects.filter(
        in_release_pool=True, created_at__lte=release.cutoff, vote__isnull=False, release_entry__isnull=True
    )

    # No heartbeat per batch: written in the build's transaction, no other connection would
    # see it, and the row lock it takes would make the next build's expire_interrupted wait.
    def take(batch: list[tuple[int, str]]) -> None:
        record_taken(release, batch)

    return write_export(candidates, directory, label=lambda a, b: (labels[a], labels[b]), after_batch=take)


def record_taken(release: DataRelease, batch: list[tuple[int, str]]) -> None:
    """Insert the ReleasedBattle rows of a batch of (battle id, reason)."""
    if connection.vendor == "postgresql":
        # Two arrays in one statement: a release takes hundreds of thousands of battles, and
        # building a model instance for each row costs more than the insert itself.
        ids, reasons = zip(*batch, strict=True) if batch else ((), ())
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {ReleasedBattle._meta.db_table} (battle_id, release_id, excluded_reason) "
                "SELECT unnest(%s::bigint[]), %s, unnest(%s::text[])",
                [list(ids), release.pk, list(reasons)],
            )
        return
    ReleasedBattle.objects.bulk_create(
        [ReleasedBattle(battle_id=pk, release=release, excluded_reason=reason) for pk, reason in batch],
        batch_size=BATCH,
    )


EXPORT_FIELDS = (
    "pk",
    "question_id",
    "model_a_id",
    "model_b_id",
    "vote__winner",
    "vote__judge",
    "conversation_a",
    "conversation_b",
    "turn",
    "anony",
    "language",
    "vote__created_at",
    "openai_moderation",
    "toxic_chat_tag",
    "vote__excluded_reason",
    # The answers a regenerate replaced: only their turn and attempt are read from them, to
    # say which answers were voted; the discarded text itself is never exported.
    "discarded",
    # For the clean battle file only: its tags, and the answers' tokens as counted when the
    # battle was stored (none for a battle without both answers).
    "vote__id",
    "prompt_hash",
    "prompt_chars",
    "style__tokens_a",
    "style__tokens_b",
)
_EXCLUDED_REASON = EXPORT_FIELDS.index("vote__excluded_reason")
# How a battle whose vote the leaderboard does not count is recorded as taken (ReleasedBattle).
NOT_COUNTED_PREFIX = "not_counted:"
# The clean battle file's category_tag holds Arenasite's own categories under this name
# (FastChat's are labels by a model, "criteria_v0.1" and so on, which the arena does not make).
CATEGORY_TAG = "arenasite_v1"


def write_export(
    battles: QuerySet[Battle],
    directory: Path,
    *,
    label: Callable[[int, int], tuple[str, str]],
    after_batch: Callable[[list[tuple[int, str]]], None] | None = None,
) -> dict:
    """Write the voted `battles` (in id order) to JSONL and Parquet in `directory`, leaving
    out those whose vote the leaderboard does not count (an exclusion reason: a flagged
    voter, a revealed identity, ...) and those with personal data; the shared core of
    releases and provider shares. Side-by-side votes (`anony` false) with no exclusion
    reason are written, marked by `anony`.

    `label(model_a_id, model_b_id)` gives the two published model labels. After each batch,
    `after_batch` gets (battle id, reason or "") for every battle of it: the personal-data
    kind, or NOT_COUNTED_PREFIX and the vote's exclusion reason.
    Returns the counts and file checksums for the manifest.
    """
    writer = files.ReleaseWriter(directory)
    tags = _CleanBattleTags(*duplicate_prompts(settings.ARENA_DEDUP_PERCENTILE), settings.ARENA_LONG_PROMPT_CHARS)
    tally = _Tally()
    rows_of = battles.order_by("pk").values_list(*EXPORT_FIELDS)
    try:
        # A server-side cursor on PostgreSQL: one batch in memory at a time.
        for batch in _batched(rows_of.iterator(chunk_size=BATCH), BATCH):
            rows, handled = _export_batch(batch, label, tags, tally)
            writer.write(rows)
            if after_batch is not None:
                after_batch(handled)
            reset_queries()  # DEBUG keeps every query's SQL; over a million battles that is gigabytes
    except BaseException:
        writer.abort()
        raise
    return {
        "rows": writer.rows,
        "excluded": dict(tally.excluded),
        "not_counted": dict(tally.not_counted),
        "models": dict(tally.models),
        "files": writer.close(),
    }


@dataclass(frozen=True)
class _CleanBattleTags:
    """What FastChat's tags in clean_battle.json are decided by, read once per export."""

    flooded: frozenset[str]  # hashes of prompts asked far more often than others
    dropped: frozenset[int]  # the votes on those prompts beyond the leaderboard's share
    long_prompt: int  # characters from which a first prompt is long


@dataclass
class _Tally:
    """The manifest's counts, kept across batches."""

    excluded: Counter[str] = field(default_factory=Counter)  # by personal-data kind
    not_counted: Counter[str] = field(default_factory=Counter)  # by the vote's exclusion reason
    models: Counter[str] = field(default_factory=Counter)  # rows by published model label


def _export_batch(
    batch: list[tuple], label: Callable[[int, int], tuple[str, str]], tags: _CleanBattleTags, tally: _Tally
) -> tuple[list[dict], list[tuple[int, str]]]:
    """The rows of `batch` to write, and (battle id, reason or "") for each of its battles."""
    rows, handled = [], []
    for row in batch:
        pk, _qid, a, b, _winner, _judge, conv_a, conv_b = row[:8]
        why = row[_EXCLUDED_REASON]
        if why:
            handled.append((pk, NOT_COUNTED_PREFIX + why))
            tally.not_counted[why] += 1
            continue
        reason = find_personal_data(_texts(conv_a, conv_b)) or ""
        handled.append((pk, reason))
        if reason:
            tally.excluded[reason] += 1
            continue
        label_a, label_b = label(a, b)
        tally.models[label_a] += 1
        tally.models[label_b] += 1
        rows.append(_export_row(row, label_a, label_b, tags))
    return rows, handled


def _export_row(row: tuple, label_a: str, label_b: str, tags: _CleanBattleTags) -> dict:
    """One battle (a row of EXPORT_FIELDS) in the release files' schema, its models labelled."""
    _pk, qid, _a, _b, winner, judge, conv_a, conv_b, turn, anony, language, voted_at, mod, toxic, _why = row[:15]
    discarded, vote_id, prompt_hash, prompt_chars, tokens_a, tokens_b = row[15:]
    return {
        "question_id": qid,
        "model_a": label_a,
        "model_b": label_b,
        "winner": winner,
        "judge": public_judge(judge),
        "conversation_a": conv_a,
        "conversation_b": conv_b,
        "turn": turn,
        "anony": anony,
        "language": language,
        "tstamp": voted_at.timestamp(),
        "openai_moderation": files.moderation_in_schema(mod),
        "toxic_chat_tag": files.toxic_chat_in_schema(toxic),
        "voted_attempt": Battle.attempts_per_turn(turn, discarded),
        # FastChat's tags, for clean_battle.json only (files.clean_battle_row).
        "dedup_tag": {"high_freq": prompt_hash in tags.flooded, "sampled": vote_id not in tags.dropped},
        "category_tag": {CATEGORY_TAG: {"multi_turn": turn > 1, "long_prompt": prompt_chars >= tags.long_prompt}},
        "answer_tokens": None if tokens_a is None else (tokens_a, tokens_b),
    }


def duplicate_prompts(percentile: float) -> tuple[frozenset[str], frozenset[int]]:
    """The leaderboard's rule for prompts asked far more often than others, applied to the
    counted votes as they are now: a first prompt asked in more of them than the
    `percentile` of prompt counts is flooded, and only that many of its votes, the first by
    question id (which are random), are kept. Returns (the flooded prompts' hashes, the ids
    of their votes not kept): FastChat's dedup_tag `high_freq` and `sampled` of each row.

    The leaderboard's own rule (leaderboard.categories.flooded_prompts)."""
    votes = Vote.objects.filter(anony=True, excluded_reason="")
    flooded, dropped = categories.flooded_prompts(votes, percentile=percentile)
    return frozenset(flooded), frozenset(dropped)


def _batched(iterable, size: int):
    iterator = iter(iterable)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _texts(conv_a: list, conv_b: list) -> list[str]:
    # The prompts are the same on both sides: read them once.
    return [m["content"] for m in conv_a] + [m["content"] for m in conv_b if m.get("role") != "user"]


def _manifest(release: DataRelease, summary: dict, built_at: datetime) -> dict:
    previous = (
        DataRelease.objects.filter(state=DataRelease.State.PUBLISHED, cutoff__lt=release.cutoff)
        .order_by("-cutoff")
        .values_list("pk", flat=True)
        .first()
    )
    return {
        "release": release.pk,
        "schema": "chatbot_arena_conversations",
        "cutoff": release.cutoff.isoformat(),
        "built_at": built_at.isoformat(),
        "previous_release": previous,
        "pool_fraction": settings.RELEASE_POOL_FRACTION,
        **export_counts(summary),
    }


def export_counts(summary: dict) -> dict:
    """The part of a manifest that says what an export (a release or a share) holds.

    `excluded.not_counted` gives, per exclusion reason (battles.models.ExclusionReason), the
    battles left out because the leaderboard does not count their vote; `excluded.personal_data`
    those left out for personal data, per kind."""
    not_counted = summary.get("not_counted", {})
    return {
        "battles": summary["rows"],
        "considered": summary["rows"] + sum(summary["excluded"].values()) + sum(not_counted.values()),
        "excluded": {
            "not_counted": dict(sorted(not_counted.items())),
            "personal_data": dict(sorted(summary["excluded"].items())),
        },
        "labels": dict(sorted(summary["models"].items(), key=lambda kv: (-kv[1], kv[0]))),
        "files": summary["files"],
    }


def _card(release: DataRelease, manifest: dict) -> str:
    return render_to_string(
        "releases/data_card.md",
        {"release": release, "manifest": manifest, "pool_percent": round(settings.RELEASE_POOL_FRACTION * 100)},
    )


def _remove_partials(release: DataRelease) -> None:
    finished = release.state in (DataRelease.State.BUILT, DataRelease.State.PUBLISHED)
    remove_partials(releases_dir(), release.directory_name, keep_final=finished)


def remove_partials(base: Path, name: str, *, keep_final: bool = False) -> None:
    """Remove what earlier attempts at the export `name` left in `base`: temporary directories,
    and unless `keep_final`, the finished one too (a build that starts again starts clean)."""
    for path in base.glob(f".{name}.partial-*"):
        shutil.rmtree(path, ignore_errors=True)
    if not keep_final:
        shutil.rmtree(base / name, ignore_errors=True)


def publish(release: DataRelease, *, by=None) -> DataRelease:
    """Make a built release public."""
    with transaction.atomic():
        locked = DataRelease.objects.select_for_update().get(pk=release.pk)
        if locked.state == DataRelease.State.PUBLISHED:
            return locked
        if locked.state != DataRelease.State.BUILT:
            raise ReleaseRefused(
                f"Release {locked.pk} is {locked.get_state_display().lower()}; only a built release can be published."
            )
        if not release_path(locked).is_dir():
            raise ReleaseRefused(f"The files of release {locked.pk} are missing; discard it and build again.")
        locked.state = DataRelease.State.PUBLISHED
        locked.published_at = clock.now()
        locked.published_by = by
        locked.save(update_fields=["state", "published_at", "published_by"])
    return locked


def discard(release: DataRelease) -> DataRelease:
    """Drop a built (unpublished) release: its battles go back to wait for the next one."""
    with transaction.atomic():
        locked = DataRelease.objects.select_for_update().get(pk=release.pk)
        if locked.state == DataRelease.State.PUBLISHED:
            raise ReleaseRefused(f"Release {locked.pk} is published; a published release stays published.")
        if locked.state == DataRelease.State.BUILDING:
            raise ReleaseRefused(f"Release {locked.pk} is still being built.")
        ReleasedBattle.objects.filter(release=locked).delete()
        locked.state = DataRelease.State.DISCARDED
        locked.save(update_fields=["state"])
    shutil.rmtree(release_path(locked), ignore_errors=True)
    return locked
