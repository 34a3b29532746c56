import shutil
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from releases import building, files
from releases.dates import parse_cutoff


class Command(BaseCommand):
    help = "Build a community release of the release-pool battles voted up to a cutoff (published separately)."

    def add_arguments(self, parser):
        parser.add_argument("--cutoff", required=True, help="YYYY-MM-DD (the whole day, UTC) or an ISO date-time")
        parser.add_argument("--out", help="also copy the release's files into this directory")

    def handle(self, *args, cutoff, out, **options):
        try:
            moment = parse_cutoff(cutoff)
        except ValueError as exc:
            raise CommandError(f"--cutoff: {exc}.") from exc
        target = Path(out) if out else None
        if target is not None and target.exists() and not target.is_dir():
            raise CommandError(f"--out: {target} exists and is not a directory.")
        try:
            release = building.start_release(moment)
        except building.ReleaseRefused as exc:
            raise CommandError(str(exc)) from exc
        try:
            release = building.build(release)
        except building.ReleaseRefused as exc:
            raise CommandError(str(exc)) from exc
        except Exception as exc:
            # The release is marked failed with the same reason; no files and no battle are kept.
            raise CommandError(
                f"Release {release.pk} failed ({type(exc).__name__}: {exc}); no files were kept and no battle "
                "was taken."
            ) from exc
        manifest = release.manifest
        not_counted = manifest["excluded"].get("not_counted") or {}
        self.stdout.write(
            f"Release {release.pk} built (not yet published): {release.battle_count} battles up to "
            f"{manifest['cutoff']}, {release.excluded_count} left out for personal data "
            f"{manifest['excluded']['personal_data'] or ''}".rstrip()
        )
        self.stdout.write(
            f"Left out because the leaderboard does not count their vote: {sum(not_counted.values())} "
            f"{not_counted or ''}".rstrip()
        )
        source = building.release_path(release)
        self.stdout.write(f"Files: {source}")
        if target is not None:
            target.mkdir(parents=True, exist_ok=True)
            for name in files.FILE_NAMES:
                shutil.copy2(source / name, target / name)
            self.stdout.write(f"Copied to {target}")
        self.stdout.write(f"Review it in admin, then: python manage.py publish_release {release.pk}")
