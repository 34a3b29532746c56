from django.core.management.base import BaseCommand, CommandError

from releases import building
from releases.models import DataRelease


class Command(BaseCommand):
    help = "Publish a built community release: it appears on /data/ and in the API."

    def add_arguments(self, parser):
        parser.add_argument("release_id", type=int)

    def handle(self, *args, release_id, **options):
        release = DataRelease.objects.filter(pk=release_id).first()
        if release is None:
            raise CommandError(f"There is no release {release_id}.")
        try:
            release = building.publish(release)
        except building.ReleaseRefused as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Release {release.pk} is published ({release.battle_count} battles).")
