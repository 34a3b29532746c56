from django.core.management.base import BaseCommand, CommandError

from releases import sharing

from ._built import copy_files, output_folder, report
from ._provider import provider_named


class Command(BaseCommand):
    help = (
        "Build a share for a provider now: the release-pool battles with its models not yet in a published "
        "release, labelled as the data-sharing policy says. Needs an approved data-sharing agreement."
    )

    def add_arguments(self, parser):
        parser.add_argument("provider", help="the provider's slug (or name)")
        parser.add_argument("--out", help="also copy the share's files into this directory")

    def handle(self, *args, provider, out, **options):
        provider = provider_named(provider)
        target = output_folder(out)
        try:
            share = sharing.share_request(provider=provider, user=None, enqueue=False)
        except sharing.SharingRefused as exc:
            raise CommandError(str(exc)) from exc
        try:
            share = sharing.share_build(share.pk)
        except Exception as exc:
            raise CommandError(f"Share {share.pk} failed ({type(exc).__name__}: {exc}); no files were kept.") from exc
        if share.state != share.State.READY:
            raise CommandError(f"Share {share.pk} failed: {share.error}")
        source = sharing.share_path(share)
        built = f"Share {share.pk} for {provider.name} built"
        report(
            self.stdout,
            built,
            rows=share.battle_count,
            excluded=share.excluded_count,
            manifest=share.manifest,
            source=source,
        )
        copy_files(self.stdout, source, target)
