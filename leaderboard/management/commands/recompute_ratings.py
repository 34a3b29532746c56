import argparse

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from battles import anomaly_detection
from leaderboard import services


class Command(BaseCommand):
    help = "Recompute every rating category now and publish the run (what the periodic task does)."

    def add_arguments(self, parser):
        parser.add_argument("--bootstrap", type=int, help="bootstrap rounds (default: ARENA_BOOTSTRAP_ROUNDS)")
        parser.add_argument("--seed", type=int, help="bootstrap seed (default: ARENA_BOOTSTRAP_SEED)")
        parser.add_argument(
            "--dedup",
            action=argparse.BooleanOptionalAction,
            help="add the category with high-frequency duplicate prompts down-sampled (default: ARENA_DEDUP_PROMPTS)",
        )
        parser.add_argument(
            "--rebuild-elo", action="store_true", help="replay the online Elo from the first vote instead of continuing"
        )
        parser.add_argument(
            "--full-read",
            action="store_true",
            help="read every counted vote instead of starting from the columns the previous run kept",
        )

    def handle(self, *args, bootstrap, seed, dedup, rebuild_elo, full_read, **options):
        if bootstrap is not None and bootstrap < 0:
            raise CommandError("--bootstrap must be 0 or more.")
        if settings.ARENA_ANOMALY_DETECTION:  # as the periodic task does: flagged voters' votes never enter a run
            flagged = anomaly_detection.detect_anomalous_voters().flagged
            self.stdout.write(f"Anomalous voters: {len(flagged)} flagged ({sum(r.new for r in flagged)} new).")
        run = services.recompute(
            bootstrap_rounds=bootstrap, seed=seed, dedup=dedup, rebuild_elo=rebuild_elo, full_read=full_read
        )
        by_category = {}
        for category in run.ratings.values_list("category", flat=True):
            by_category[category] = by_category.get(category, 0) + 1
        self.stdout.write(
            f"Run {run.pk} published: {run.vote_count} counted votes, "
            f"{run.parameters['bootstrap_rounds']} bootstrap rounds, {run.duration_seconds:.2f} s."
        )
        for category, count in by_category.items():
            self.stdout.write(f"  {category}: {count} models")
        for category, left_out in run.parameters.get("unrated", {}).items():
            self.stdout.write(f"  {category}: not comparable with the rest, unrated: {left_out}")
