"""What build_release and build_share print about the files they built, and the --out copy."""

from __future__ import annotations

import shutil
from pathlib import Path

from django.core.management.base import CommandError, OutputWrapper

from releases import files


def output_folder(out: str | None) -> Path | None:
    """The --out folder, refused before anything is built when it names a file."""
    target = Path(out) if out else None
    if target is not None and target.exists() and not target.is_dir():
        raise CommandError(f"--out: {target} exists and is not a directory.")
    return target


def report(stdout: OutputWrapper, built: str, *, rows: int, excluded: int, manifest: dict, source: Path) -> None:
    """`built` ("Release 3 built ..."), then what the files hold, what was left out and why,
    and where the files are."""
    personal_data = manifest["excluded"]["personal_data"]
    stdout.write(
        f"{built}: {rows} battles up to {manifest['cutoff']}, {excluded} left out for personal data "
        f"{personal_data or ''}".rstrip()
    )
    not_counted = manifest["excluded"].get("not_counted") or {}
    stdout.write(
        f"Left out because the leaderboard does not count their vote: {sum(not_counted.values())} "
        f"{not_counted or ''}".rstrip()
    )
    stdout.write(f"Files: {source}")


def copy_files(stdout: OutputWrapper, source: Path, target: Path | None) -> None:
    if target is None:
        return
    target.mkdir(parents=True, exist_ok=True)
    for name in files.FILE_NAMES:
        shutil.copy2(source / name, target / name)
    stdout.write(f"Copied to {target}")
