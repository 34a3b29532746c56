import json

from django.core.management.base import BaseCommand, CommandError

from arenasite.csv_safe import write_csv
from leaderboard.models import RatingRun
from leaderboard.selectors import CSV_COLUMNS, board


class Command(BaseCommand):
    help = "Print the latest published leaderboard as CSV or JSON."

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=["csv", "json"], default="json")
        parser.add_argument("--category", default="overall")
        parser.add_argument("--all-models", action="store_true", help="include models that are not public")
        parser.add_argument("--include-retired", action="store_true")

    def handle(self, *args, format, category, all_models, include_retired, **options):
        run = RatingRun.objects.latest_published()
        if run is None:
            raise CommandError("No published rating run yet: run recompute_ratings first.")
        known = set(run.ratings.values_list("category", flat=True).distinct())
        if category not in known:
            raise CommandError(f"No category {category!r} in run {run.pk}; known: {', '.join(sorted(known))}.")
        rows = board(run, category, include_retired=include_retired, all_models=all_models)
        if format == "json":
            self.stdout.write(json.dumps(rows, indent=2))
            return
        write_csv(self.stdout, CSV_COLUMNS, rows)
