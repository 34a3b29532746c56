import shutil
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from releases import files, sharing

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
        target = Path(out) if out else None
        if target is not None and target.exists() and not target.is_dir():
            raise CommandError(f"--out: {target} exists and is not a directory.")
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
        excluded = share.manifest["excluded"]["personal_data"]
        self.stdout.write(
            f"Share {share.pk} for {provider.name} built: {share.battle_count} battles up to "
            f"{share.manifest['cutoff']}, {share.excluded_count} left out for personal data {excluded or ''}".rstrip()
        )
        not_counted = share.manifest["excluded"].get("not_counted") or {}
        self.stdout.write(
            f"Left out because the leaderboard does not count their vote: {sum(not_counted.values())} "
            f"{not_counted or ''}".rstrip()
        )
        source = sharing.share_path(share)
        self.stdout.write(f"Files: {source}")
        if target is not None:
            target.mkdir(parents=True, exist_ok=True)
            for name in files.FILE_NAMES:
                shutil.copy2(source / name, target / name)
            self.stdout.write(f"Copied to {target}")
