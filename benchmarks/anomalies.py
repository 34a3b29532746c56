"""The hourly anomalous-voter test: reading every vote against going on from the kept state.

    .venv/bin/python benchmarks/anomalies.py                          # 1M votes, 1% of them new
    .venv/bin/python benchmarks/anomalies.py --votes 3000000 --new 30000

Seeded synthetic votes as benchmarks/rigging.py makes them (30 models, 120,000 voters with
heavy-tailed activity and personal tastes, a few contrarian accounts), on a dedicated
PostgreSQL database (its name must contain "bench": the script empties it). The votes but
the newest `--new` are loaded with COPY (not timed); then, in this order:

* every vote, as before: the tested votes read and integrity.sequential_test on them (what
  each hourly run cost before the state was kept);
* full run: `detect_anomalous_voters(full=True)`, which reads every vote and keeps the state;
* the newest votes arrive (COPY with the triggers on, so they are noted; not timed);
* floor: reading only those new votes' columns from the database, the least any run that
  looks at them must do;
* incremental: `detect_anomalous_voters()`, as the hourly task runs it.

Then it checks that the incremental run flagged exactly the voters the test on every vote
flags, and prints the table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from support import ensure_database, progress

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://arenasite:arenasite@127.0.0.1:5432/arenasite_bench_anomalies"
CONTRARIANS = 20  # accounts of 60 votes that always pick the weaker model


def setup_django(database_url: str) -> None:
    os.environ.update(
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE="arenasite.settings",
        DEBUG="0",
        SECRET_KEY=os.environ.get("SECRET_KEY") or "benchmark-only-secret-key",
        LOG_LEVEL="WARNING",
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def generate(votes: int, seed: int) -> pd.DataFrame:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import rigging

    rng = np.random.default_rng(seed)
    strength = rng.normal(1000, 80, rigging.MODELS) / rigging.ELO
    honest = rigging.honest_votes(rng, votes - CONTRARIANS * 60, strength, 50.0)
    n = CONTRARIANS * 60
    a, b = rigging.random_pairs(rng, n)
    contrarian = rigging.Votes(
        rigging.HONEST_VOTERS + np.arange(n) // 60,
        np.zeros(n, dtype=np.int64),
        a,
        b,
        np.where(strength[a] < strength[b], 2, 0),
        rng.uniform(0, rigging.DAYS, n),
    )
    every = rigging.Votes.join(honest, contrarian)
    order = np.argsort(every.day, kind="stable")
    every = every.take(order)
    return pd.DataFrame(
        {
            "judge": np.char.add("judge-", every.voter.astype(str)),
            "a": every.a,
            "b": every.b,
            "winner": rigging.WINNERS[every.level],
            "created": pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(every.day, unit="D"),
        }
    )


def load(frame: pd.DataFrame, first_id: int, model_pk: np.ndarray, *, noted: bool) -> None:
    """Battles and votes by COPY, ids from first_id; with `noted`, as the site writes them
    (the triggers note them), else as a restore would (no triggers, no foreign-key checks)."""
    from django.db import connection, transaction

    n = len(frame)
    ids = np.arange(first_id, first_id + n)
    stamp = frame["created"].dt.strftime("%Y-%m-%d %H:%M:%S.%f+00").to_numpy()
    model_a, model_b = model_pk[frame["a"].to_numpy()], model_pk[frame["b"].to_numpy()]
    battles = pd.DataFrame(
        {
            "id": ids,
            "question_id": np.char.add("bench-a", ids.astype(str)),
            "model_a_id": model_a,
            "model_b_id": model_b,
            "anony": "t",
            "source": "arena",
            "language": "",
            "turn": 1,
            "prompt_chars": 0,
            "conversation_a": "[]",
            "conversation_b": "[]",
            "discarded": "[]",
            "in_release_pool": "f",
            "created_at": stamp,
        }
    )
    votes = pd.DataFrame(
        {
            "id": ids,
            "battle_id": ids,
            "model_a_id": model_a,
            "model_b_id": model_b,
            "anony": "t",
            "winner": frame["winner"].to_numpy(),
            "judge": frame["judge"].to_numpy(),
            "excluded_reason": "",
            "created_at": stamp,
        }
    )
    raw = connection.connection
    with transaction.atomic(), raw.cursor() as cursor:
        if not noted:
            cursor.execute("SET LOCAL session_replication_role = replica")
        for table, rows in (("battles_battle", battles), ("battles_vote", votes)):
            with cursor.copy(f"COPY {table} ({', '.join(rows.columns)}) FROM STDIN") as copy:
                for begin in range(0, n, 250_000):
                    copy.write(rows.iloc[begin : begin + 250_000].to_csv(sep="\t", header=False, index=False))
        for table in ("battles_battle", "battles_vote"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")


def timed(label: str, function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    seconds = time.perf_counter() - started
    progress(f"{label}: {seconds:.2f} s")
    return result, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--votes", type=int, default=1_000_000, help="all votes, the new ones included")
    parser.add_argument("--new", type=int, default=None, help="votes cast since the last run (default: 1%%)")
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    args = parser.parse_args(argv)
    new = args.new if args.new is not None else args.votes // 100

    ensure_database(args.database_url)
    setup_django(args.database_url)
    from django.core.management import call_command
    from django.db import connection

    from battles import anomaly_detection, integrity
    from providers.models import ArenaModel, Provider

    call_command("migrate", verbosity=0, interactive=False)
    progress(f"generating {args.votes:,} votes")
    frame = generate(args.votes, args.seed)
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE battles_vote, battles_battle, battles_flaggedvoter, battles_voterdecision, "
            "providers_lifecycleevent, providers_arenamodel, providers_provider RESTART IDENTITY CASCADE"
        )
    provider = Provider.objects.create(name="Bench provider", slug="bench-provider")
    models = ArenaModel.objects.bulk_create(
        [ArenaModel(provider=provider, name=f"bench-{k}", codename=f"bench-{k:03d}") for k in range(30)]
    )
    model_pk = np.array([m.pk for m in models])
    old, fresh = frame.iloc[: len(frame) - new], frame.iloc[len(frame) - new :]
    progress(f"COPY {len(old):,} votes (not timed)")
    load(old, 1, model_pk, noted=False)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) battles_vote")
        cursor.execute("VACUUM (ANALYZE) battles_battle")

    def every_vote():
        voters, a, b, level, counted = anomaly_detection._read_votes()
        codes, labels = integrity.codes(voters)
        return labels, integrity.sequential_test(codes, a, b, level, population=counted, alpha=0.02)

    _, before = timed("every vote, read and tested as before", every_vote)
    full, full_seconds = timed("full run (keeps the state)", anomaly_detection.detect_anomalous_voters, full=True)
    # The votes it excluded are noted: the next hourly run takes them in.
    anomaly_detection.detect_anomalous_voters()
    last_id = len(old)
    progress(f"COPY {new:,} new votes (noted by the triggers; not timed)")
    load(fresh, last_id + 1, model_pk, noted=True)
    from battles.models import Vote

    floor, floor_seconds = timed(
        "floor: reading only the new votes", anomaly_detection._columns, Vote.objects.filter(id__gt=last_id)
    )
    report, incremental_seconds = timed("incremental run", anomaly_detection.detect_anomalous_voters)
    assert report.incremental

    labels, result = every_vote()
    expected = {str(labels[c]) for c, flag in zip(result.voters, result.flagged, strict=True) if flag}
    got = {row.judge for row in report.flagged}
    with connection.cursor() as cursor:
        cursor.execute("SELECT octet_length(data) FROM battles_anomalyteststate")
        state_bytes = cursor.fetchone()[0]

    print()
    print(f"{args.votes:,} votes, {new:,} new since the last run; {report.tested:,} voters tested")
    print("| run | seconds | votes read |")
    print("|---|---:|---:|")
    print(f"| every vote read and tested (before) | {before:.2f} | {len(frame) - new:,} |")
    print(f"| full run, keeping the state | {full_seconds:.2f} | {full.votes_read:,} |")
    print(f"| floor: reading only the new votes | {floor_seconds:.2f} | {len(floor['id']):,} |")
    print(f"| incremental run | {incremental_seconds:.2f} | {report.votes_read:,} |")
    print(f"kept state: {state_bytes / 2**20:.1f} MiB; flagged {len(got)}, on every vote {len(expected)}")
    print("same voters flagged" if got == expected else f"DIFFERENT: {sorted(got ^ expected)[:10]}")
    return 0 if got == expected else 1


if __name__ == "__main__":
    sys.exit(main())
