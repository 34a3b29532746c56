"""Import public arena battles (FastChat clean battle JSON, or the chatbot_arena_conversations
schema as JSON Lines or Parquet) as imported battles with their votes.

All or nothing: the whole file is imported in one transaction, so a malformed row anywhere
refuses the file and leaves no battle, vote, model or provider behind. Idempotent: a battle
is keyed by its question_id (or a content hash stored as one), and keys already present are
skipped, and so is a battle already present under another key: the same models, winner,
judge and time (FastChat writes one dump in two modes, one with question ids and one
without, so the second would otherwise count every vote twice). Rows are read and written
in batches, so memory does not grow with the file.

A model labelled `anonymous` (as releases and shares label models they do not name) is
not a model of its own: such a row is stored against a stand-in of the "imported"
provider (one for each side, never in battles) and its vote is excluded as
`unnamed_model`, so it is kept and never rated. Message keys other than role and content
(FastChat's `num_tokens`) are dropped (battles/importing.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, reset_queries, transaction
from django.db.models import F, Max

from battles import importing
from battles.importing import ImportFormatError, ImportRow
from battles.models import Battle, BattleStyle, ExclusionReason, Vote
from battles.style import conversation_prompt_hash
from providers import lifecycle
from providers.models import ArenaModel, Provider

DEFAULT_BATCH_SIZE = 5000
IMPORTED_PROVIDER = "imported"
ALREADY_IMPORTED = "already imported"
DUPLICATE_IN_FILE = "duplicate in file"
SAME_VOTE = "already imported under another key (same models, winner, judge and time)"
# The stand-ins for a model labelled anonymous, one for each side (a battle's two models differ).
UNNAMED_NAMES = {"a": "anonymous (model A)", "b": "anonymous (model B)"}


@dataclass
class ImportResult:
    read: int = 0
    added: int = 0
    skipped: Counter = field(default_factory=Counter)
    models_created: list[str] = field(default_factory=list)
    batches: int = 0
    unnamed: int = 0  # rows added with a model labelled anonymous: kept, never rated

    def summary(self, source: str, fmt: str) -> list[str]:
        lines = [f"{source} ({fmt}): {self.read} rows read, {self.added} added, {sum(self.skipped.values())} skipped."]
        lines += [f"  skipped: {reason}: {count}" for reason, count in sorted(self.skipped.items())]
        if self.unnamed:
            lines.append(
                f"  kept but never rated: {self.unnamed} battle(s) with a model labelled {importing.ANONYMOUS!r} "
                f"(vote excluded as {ExclusionReason.UNNAMED_MODEL.value})"
            )
        if self.models_created:
            lines.append(
                f'  created {len(self.models_created)} listed model(s) under provider "{IMPORTED_PROVIDER}": '
                + ", ".join(self.models_created)
            )
        return lines


class Command(BaseCommand):
    help = "Import arena battles from a FastChat JSON array or a chatbot_arena_conversations JSONL/Parquet file."

    def add_arguments(self, parser):
        parser.add_argument("path", help="the file to import")
        parser.add_argument(
            "--format",
            choices=importing.FORMAT_CHOICES,
            default="auto",
            help="fastchat: one JSON array; hf: JSON Lines or Parquet; auto (default): from extension and content",
        )
        parser.add_argument(
            "--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help=f"rows per insert (default {DEFAULT_BATCH_SIZE})"
        )

    def handle(self, *args, path, format, batch_size, **options):
        source = Path(path)
        if not source.is_file():
            raise CommandError(f"{path}: no such file.")
        if batch_size < 1:
            raise CommandError("--batch-size must be 1 or more.")
        try:
            fmt = importing.detect_format(source, format)
            rows = importing.read_rows(source, fmt, batch_size=batch_size)
            with transaction.atomic():
                result = import_rows(rows, source_name=source.name, batch_size=batch_size)
        except ImportFormatError as exc:
            raise CommandError(f"{source.name}: {exc}. Nothing was imported.") from exc
        except OSError as exc:
            raise CommandError(f"{source.name}: cannot read the file ({exc}). Nothing was imported.") from exc
        for line in result.summary(source.name, fmt):
            self.stdout.write(line)


def import_rows(rows: Iterable[ImportRow], *, source_name: str, batch_size: int = DEFAULT_BATCH_SIZE) -> ImportResult:
    """Insert new battles and votes batch by batch. Call inside transaction.atomic(): a failure
    part-way leaves earlier batches written until the transaction rolls back."""
    result = ImportResult()
    models = _ModelResolver(source_name=source_name)
    # Battles above this id were added by this import, so finding a key among them means
    # the file holds it twice; this keeps the in-file check in the database, not in memory.
    first_new_id = (Battle.objects.aggregate(last=Max("id"))["last"] or 0) + 1
    for batch in _batches(rows, batch_size):
        result.read += len(batch)
        result.batches += 1
        fresh = _drop_known(batch, first_new_id, result.skipped)
        fresh = _drop_same_votes(fresh, result.skipped)
        if fresh:
            models.resolve(fresh)
            _insert(fresh, models)
            result.added += len(fresh)
            result.unnamed += sum(_unnamed(row) for row in fresh)
        # DEBUG keeps every query's SQL; with batches of conversations that is gigabytes by the end.
        reset_queries()
    result.models_created = models.finish()
    return result


def _batches(rows: Iterable[ImportRow], size: int) -> Iterator[list[ImportRow]]:
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch


def _drop_known(batch: list[ImportRow], first_new_id: int, skipped: Counter) -> list[ImportRow]:
    keys = list({row.question_id for row in batch})
    # SQLite caps the parameters of one query; PostgreSQL takes the whole batch at once.
    step = connection.features.max_query_params or len(keys)
    existing: dict[str, int] = {}
    for start in range(0, len(keys), step):
        chunk = keys[start : start + step]
        existing.update(Battle.objects.filter(question_id__in=chunk).values_list("question_id", "id"))
    fresh, seen = [], set()
    for row in batch:
        key = row.question_id
        if key in seen:
            skipped[DUPLICATE_IN_FILE] += 1
        elif key in existing:
            skipped[DUPLICATE_IN_FILE if existing[key] >= first_new_id else ALREADY_IMPORTED] += 1
        else:
            seen.add(key)
            fresh.append(row)
    return fresh


def _unnamed(row: ImportRow) -> bool:
    return importing.ANONYMOUS in (row.model_a, row.model_b)


def _signature(model_a: str, model_b: str, winner: str, judge: str, created_at: datetime) -> tuple:
    return (model_a, model_b, winner, judge, created_at)


def _drop_same_votes(batch: list[ImportRow], skipped: Counter) -> list[ImportRow]:
    """Leave out rows whose vote is already stored under another key (or earlier in the
    batch): the same models, winner, judge and time."""
    if not batch:
        return batch
    judges = {row.judge for row in batch}
    times = {row.created_at for row in batch}
    stored = Vote.objects.filter(judge__in=judges, created_at__in=times).values_list(
        "model_a__name", "model_b__name", "winner", "judge", "created_at"
    )
    stand_ins = set(UNNAMED_NAMES.values())
    seen = {
        _signature(*(importing.ANONYMOUS if name in stand_ins else name for name in (a, b)), winner, judge, at)
        for a, b, winner, judge, at in stored.iterator()
    }
    fresh = []
    for row in batch:
        signature = _signature(row.model_a, row.model_b, row.winner, row.judge, row.created_at)
        if signature in seen:
            skipped[SAME_VOTE] += 1
            continue
        seen.add(signature)
        fresh.append(row)
    return fresh


def _insert(rows: list[ImportRow], models: _ModelResolver) -> None:
    battles = Battle.objects.bulk_create(
        [
            Battle(
                question_id=row.question_id,
                model_a_id=models.id_of(row.model_a, "a"),
                model_b_id=models.id_of(row.model_b, "b"),
                anony=row.anony,
                source=Battle.Source.IMPORTED,
                language=row.language,
                turn=row.turn,
                prompt_chars=row.prompt_chars,
                prompt_hash=conversation_prompt_hash(row.conversation_a),
                conversation_a=row.conversation_a,
                conversation_b=row.conversation_b,
                openai_moderation=row.openai_moderation,
                toxic_chat_tag=row.toxic_chat_tag,
                # bulk_create skips save(), which assigns the pool for single battles.
                in_release_pool=Battle.pool_for(row.question_id),
                created_at=row.created_at,
            )
            for row in rows
        ]
    )
    BattleStyle.store(battles)
    Vote.objects.bulk_create(
        [
            Vote(
                battle_id=battle.pk,
                model_a_id=battle.model_a_id,
                model_b_id=battle.model_b_id,
                anony=row.anony,
                winner=row.winner,
                judge=row.judge,
                excluded_reason=ExclusionReason.UNNAMED_MODEL if _unnamed(row) else "",
                created_at=row.created_at,
            )
            for battle, row in zip(battles, rows, strict=True)
        ]
    )


class _ModelResolver:
    """Model names to ids. Names not in the arena become listed models of the "imported"
    provider, through the lifecycle (providers.lifecycle.import_listed), which checks each name
    like any other public name; a refused name refuses the file at its first row."""

    def __init__(self, *, source_name: str):
        self.source_name = source_name
        self.ids: dict[str, int] = {}
        self.unnamed_ids: dict[str, int] = {}  # side ("a", "b") -> the stand-in for `anonymous`
        self.provider: Provider | None = None
        # Models created by this import, and the earliest tstamp seen of each.
        self.created: dict[str, ArenaModel] = {}
        self.earliest: dict[str, datetime] = {}

    def resolve(self, rows: list[ImportRow]) -> dict[str, int]:
        unknown = {row.model_a for row in rows} | {row.model_b for row in rows}
        unknown.difference_update(self.ids)
        unknown.discard(importing.ANONYMOUS)
        if unknown:
            # Names are unique among public models, not among hidden ones of different providers;
            # a public model wins, then the oldest, so the same file always lands on the same model.
            found = ArenaModel.objects.filter(name__in=unknown).order_by(F("listed_at").asc(nulls_last=True), "pk")
            for name, pk in found.values_list("name", "id"):
                self.ids.setdefault(name, pk)
            for name in sorted(unknown.difference(self.ids)):
                self.earliest[name] = min(row.created_at for row in rows if name in (row.model_a, row.model_b))
                self._create(name, first=next(row for row in rows if name in (row.model_a, row.model_b)))
        if self.earliest:
            for row in rows:
                for name in (row.model_a, row.model_b):
                    if name in self.earliest and row.created_at < self.earliest[name]:
                        self.earliest[name] = row.created_at
        return self.ids

    def id_of(self, name: str, side: str) -> int:
        """The model id for `name` on `side` ("a" or "b"): `anonymous` is the side's stand-in."""
        if name != importing.ANONYMOUS:
            return self.ids[name]
        if side not in self.unnamed_ids:
            provider = self._provider()
            name = UNNAMED_NAMES[side]
            model = ArenaModel.objects.filter(provider=provider, name=name).first()
            if model is None:
                # Not a model that enters the arena (no lifecycle, never in battles): a draft
                # that holds the imported battles whose model the data does not name.
                model = ArenaModel.objects.create(
                    provider=provider,
                    name=name,
                    access_kind=ArenaModel.AccessKind.PUBLIC_API,
                    status=ArenaModel.Status.DRAFT,
                    description=(
                        "Stands for the models imported data labels anonymous. Never in battles; "
                        "its votes are excluded as unnamed_model and never rated."
                    ),
                )
            self.unnamed_ids[side] = model.pk
        return self.unnamed_ids[side]

    def finish(self) -> list[str]:
        """Move listed_at back where a later batch held an earlier battle; return the created names."""
        for name, model in self.created.items():
            lifecycle.backdate_import(model, self.earliest[name])
        return sorted(self.created)

    def _provider(self) -> Provider:
        if self.provider is None:
            self.provider = (
                Provider.objects.filter(slug=IMPORTED_PROVIDER).first()
                or Provider.objects.filter(name=IMPORTED_PROVIDER).first()
                or Provider.objects.create(name=IMPORTED_PROVIDER, slug=IMPORTED_PROVIDER)
            )
        return self.provider

    def _create(self, name: str, *, first: ImportRow) -> None:
        try:
            model = lifecycle.import_listed(
                provider=self._provider(),
                name=name,
                listed_at=self.earliest[name],
                reason=f"Imported with arena data from {self.source_name}",
            )
        except lifecycle.TransitionRefused as exc:
            field = "model_a" if first.model_a == name else "model_b"
            raise ImportFormatError(f"{field} {name!r} cannot be a model's name: {exc.detail}", first.where) from None
        self.ids[name] = model.pk
        self.created[name] = model
