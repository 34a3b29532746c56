"""What staff see of a community release in admin before publishing it: how far its build is,
what it left out and why, a sample of its rows, its data card, and what publishing makes public.

Reads only: the release row, its manifest and its files. Building and publishing are in
releases/building.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from arenasite import clock
from battles.models import Battle

from . import building, files
from .models import DataRelease

SAMPLE_ROWS = 10
PROMPT_EXCERPT = 160


@dataclass(frozen=True)
class Progress:
    started_at: datetime
    seconds: int
    candidates: int  # battles the build considers (voted pool battles up to the cutoff no release took)
    written_bytes: int  # of battles.jsonl so far

    def describe(self) -> str:
        minutes, seconds = divmod(self.seconds, 60)
        written = f"{self.written_bytes / 1_000_000:.1f} MB of battles written so far" if self.written_bytes else ""
        return (
            f"Building for {minutes} min {seconds} s, considering about {self.candidates} voted pool battles up to "
            f"the cutoff that no earlier release took" + (f"; {written}" if written else "") + "."
        )


def progress(release: DataRelease, now: datetime | None = None) -> Progress:
    """How far a running build is. The build writes in one transaction, so what other connections
    see is the time it has run, the battles it has to go through and the size of its partial file."""
    now = now or clock.now()
    candidates = Battle.objects.filter(
        in_release_pool=True, created_at__lte=release.cutoff, vote__isnull=False, release_entry__isnull=True
    ).count()
    written = 0
    for partial in building.releases_dir().glob(f".{release.directory_name}.partial-*"):
        jsonl = partial / files.JSONL_NAME
        if jsonl.is_file():
            written += jsonl.stat().st_size
    return Progress(
        started_at=release.created_at,
        seconds=max(0, int((now - release.created_at).total_seconds())),
        candidates=candidates,
        written_bytes=written,
    )


def left_out(manifest: dict) -> list[tuple[str, str, int]]:
    """(group, reason, count) of every battle the release left out, as its manifest records them
    (personal data by kind, and any other group the manifest names)."""
    found = []
    for group, reasons in (manifest.get("excluded") or {}).items():
        label = group.replace("_", " ")
        if isinstance(reasons, dict):
            found += [(label, str(reason), count) for reason, count in reasons.items()]
        elif isinstance(reasons, int):
            found.append((label, "", reasons))
    return found


def sample(release: DataRelease, count: int = SAMPLE_ROWS) -> list[dict]:
    """The first `count` rows of the release's battles.jsonl, shortened for reading."""
    path = building.release_path(release) / files.JSONL_NAME
    if release.state not in (DataRelease.State.BUILT, DataRelease.State.PUBLISHED) or not path.is_file():
        return []
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if len(rows) >= count:
                break
            row = json.loads(line)
            conversation = row.get("conversation_a") or []
            prompt = next((m.get("content", "") for m in conversation if m.get("role") == "user"), "")
            rows.append(
                {
                    "question_id": row.get("question_id"),
                    "model_a": row.get("model_a"),
                    "model_b": row.get("model_b"),
                    "winner": row.get("winner"),
                    "turn": row.get("turn"),
                    "anony": row.get("anony"),
                    "language": row.get("language"),
                    "prompt": prompt if len(prompt) <= PROMPT_EXCERPT else prompt[: PROMPT_EXCERPT - 1] + "…",
                }
            )
    return rows


def data_card(release: DataRelease) -> str:
    path = building.release_path(release) / files.CARD_NAME
    if release.state not in (DataRelease.State.BUILT, DataRelease.State.PUBLISHED) or not path.is_file():
        return ""
    return path.read_text(encoding="utf-8")


@dataclass(frozen=True)
class Publication:
    """What publishing a built release makes public, for its confirmation page."""

    release: DataRelease
    battles: int
    labels: list[tuple[str, int]]  # public model names and "anonymous", with their battle sides
    anonymous_sides: int
    files: list[tuple[str, int]]  # (name, bytes)
    left_out: list[tuple[str, str, int]]


def publication(release: DataRelease) -> Publication:
    manifest = release.manifest or {}
    labels = [(name, count) for name, count in (manifest.get("labels") or {}).items()]
    named = [(name, count) for name, count in labels if name != building.ANONYMOUS]
    sizes = [(name, (manifest.get("files") or {}).get(name, {}).get("bytes", 0)) for name in files.FILE_NAMES]
    return Publication(
        release=release,
        battles=release.battle_count,
        labels=named,
        anonymous_sides=dict(labels).get(building.ANONYMOUS, 0),
        files=sizes,
        left_out=left_out(manifest),
    )
