"""Import public arena battles (FastChat clean battle JSON, or the chatbot_arena_conversations
schema as JSON Lines or Parquet) as imported battles with their votes.

The whole file in one transaction, so a malformed row anywhere refuses it and nothing is
imported. Reading is battles/importing.py; writing (COPY into staging tables, merged into
the real ones; what is skipped and why; judges keyed like live voters) is
battles/import_writer.py.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from battles import import_writer, importing
from battles.importing import ImportFormatError


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
            "--batch-size",
            type=int,
            default=import_writer.DEFAULT_BATCH_SIZE,
            help=f"rows per batch (default {import_writer.DEFAULT_BATCH_SIZE})",
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=None,
            help="processes that check and prepare rows (default: 1 for files under "
            f"{import_writer.PARALLEL_FROM_BYTES >> 20} MB or on fewer than 4 cores, else one per core "
            f"past two, up to {import_writer.MAX_WORKERS})",
        )

    def handle(self, *args, path, format, batch_size, workers, **options):
        source = Path(path)
        if not source.is_file():
            raise CommandError(f"{path}: no such file.")
        if batch_size < 1:
            raise CommandError("--batch-size must be 1 or more.")
        if workers is not None and workers < 1:
            raise CommandError("--workers must be 1 or more.")
        try:
            fmt = importing.detect_format(source, format)
            with transaction.atomic():
                result = import_writer.import_file(source, fmt, batch_size=batch_size, workers=workers)
        except ImportFormatError as exc:
            raise CommandError(f"{source.name}: {exc}. Nothing was imported.") from exc
        except OSError as exc:
            raise CommandError(f"{source.name}: cannot read the file ({exc}). Nothing was imported.") from exc
        for line in result.summary(source.name, fmt):
            self.stdout.write(line)
