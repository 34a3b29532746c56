from django.core.management.base import BaseCommand, CommandError

from releases import building
from releases.dates import parse_cutoff

from ._built import copy_files, output_folder, report


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
        target = output_folder(out)
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
        source = building.release_path(release)
        built = f"Release {release.pk} built (not yet published)"
        report(
            self.stdout,
            built,
            rows=release.battle_count,
            excluded=release.excluded_count,
            manifest=release.manifest,
            source=source,
        )
        copy_files(self.stdout, source, target)
        self.stdout.write(f"Review it in admin, then: python manage.py publish_release {release.pk}")
