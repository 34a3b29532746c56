import json

from django.core.management.base import BaseCommand

from battles import anomaly_detection


class Command(BaseCommand):
    help = (
        "Run the anomalous-voter test now: flag voters whose votes stray too far from everyone else's, "
        "exclude their votes, and print the voters over the threshold (judge id, votes tested, statistic)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print a JSON list instead of one voter a line")
        parser.add_argument(
            "--full",
            action="store_true",
            help="read every vote instead of going on from what the last run kept (which it then replaces)",
        )

    def handle(self, *args, **options):
        report = anomaly_detection.detect_anomalous_voters(full=options["full"])
        if options["json"]:
            rows = [
                {
                    "judge": r.judge,
                    "votes": r.votes,
                    "statistic": r.statistic,
                    "direction": r.direction,
                    "state": r.state,
                    "new": r.new,
                }
                for r in report.flagged
            ]
            self.stdout.write(json.dumps(rows))
            return
        for row in report.flagged:
            self.stdout.write(f"{row.judge}\t{row.votes}\t{row.statistic:.4g}")
        self.stderr.write(
            f"{report.tested} voter(s) tested, {len(report.flagged)} over 1/alpha = {1 / report.alpha:g}, "
            f"{sum(row.new for row in report.flagged)} newly flagged, {report.votes_excluded} vote(s) excluded; "
            f"{report.votes_read} vote(s) read{' since the last run' if report.incremental else ''}."
        )
