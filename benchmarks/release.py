"""Release benchmark: building a community release from battles in PostgreSQL.

    .venv/bin/python benchmarks/release.py                    # 1M battles, the 20% pool released
    .venv/bin/python benchmarks/release.py --battles 1000000 --pool-fraction 1.0   # every battle released

It loads seeded synthetic battles with their conversations and votes into a dedicated
database (COPY; reported, not timed; reused when the same data is already there), then, each
in a fresh process on the same data, measures wall time and peak memory of:

* ours: ``releases.building.build()``, from the rows to the finished release: the
  server-side cursor over the pool's voted battles, the personal-data check of every
  conversation, the labels, JSONL and Parquet written batch by batch, the manifest and data
  card, the atomic move into place, and the record of every battle taken;
* pandas, all in memory (a peer): the same battles read with ``pandas.read_sql`` over
  psycopg in one go, labelled, and written with ``DataFrame.to_json(lines=True)`` and
  ``DataFrame.to_parquet``; no personal-data check, no bookkeeping. This is how a one-off
  export script is usually written.

"peak MiB" is the process's peak resident set (VmHWM) at the end, interpreter and libraries
included: the figure a worker's memory limit would have to allow.

Synthetic conversations: 1-3 turns, prompts of 5-80 words and answers of 40-400 words drawn
from a vocabulary, some markdown and code, and 1% of battles carrying an e-mail address, a
phone number or a card number, so the personal-data check finds something to leave out.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from support import ensure_database, progress

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://arenasite:arenasite@127.0.0.1:5432/arenasite_bench_release"
WORDS = (
    "the of and to in is that for it as with was on be by this are or from at an which but not have has "
    "model answer question data time system value function code result example number list string table "
    "rate vote arena prompt language python error file user memory speed test build release policy "
    "because however therefore first second finally short long simple clear better worse both each"
).split()
PII = ("Write to m.keller{n}@mailbox.org today.", "Call +1 415 555 {n:04d} after six.", "Card 4111 1111 1111 1111.")


def _peak_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _environment(database_url: str, pool_fraction: float, releases_dir: str) -> dict:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE="arenasite.settings",
        DEBUG="0",
        SECRET_KEY=env.get("SECRET_KEY") or "benchmark-only-secret-key",
        LOG_LEVEL="WARNING",
        RELEASE_POOL_FRACTION=str(pool_fraction),
        RELEASES_DIR=releases_dir,
    )
    return env


def _setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def _sentence(rng, low: int, high: int) -> str:
    return " ".join(rng.choice(WORDS, size=int(rng.integers(low, high)))).capitalize() + "."


def _answer(rng) -> str:
    text = _sentence(rng, 40, 400)
    roll = rng.random()
    if roll < 0.3:
        text = "**Summary.** " + text + "\n\n- " + _sentence(rng, 5, 20) + "\n- " + _sentence(rng, 5, 20)
    elif roll < 0.4:
        text += "\n\n```python\ndef f(x):\n    return x * 2  # version 1.2.3\n```"
    return text


def load(battles: int, seed: int) -> dict:
    """Fill the benchmark database (models by the ORM, battles and votes by COPY)."""
    import numpy as np
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection, transaction

    from battles.release_pool import in_release_pool
    from providers.models import ArenaModel, Provider

    fingerprint = hashlib.sha256(
        f"release-bench:{battles}:{seed}:{settings.RELEASE_POOL_FRACTION}".encode()
    ).hexdigest()
    call_command("migrate", verbosity=0, interactive=False)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_dataset (fingerprint text NOT NULL)")
        cursor.execute("SELECT fingerprint FROM bench_dataset")
        stored = cursor.fetchone()
    if stored and stored[0] == fingerprint:
        progress("database already holds this data set: not reloading")
    else:
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(
                "TRUNCATE releases_releasedbattle, releases_datarelease, battles_battlestyle, battles_vote, "
                "battles_battle, providers_lifecycleevent, providers_arenamodel, providers_provider, bench_dataset "
                "RESTART IDENTITY CASCADE"
            )
        rng = np.random.default_rng(seed)
        provider = Provider.objects.create(name="Bench provider", slug="bench-provider")
        now = time.time()
        from datetime import UTC, datetime

        listed_at = datetime.fromtimestamp(now - 400 * 86400, tz=UTC)
        models = ArenaModel.objects.bulk_create(
            [
                ArenaModel(
                    provider=provider,
                    name=f"bench-model-{k}",
                    codename=f"bench-{k:03d}",
                    status=ArenaModel.Status.LISTED if k % 5 else ArenaModel.Status.WITHDRAWN,
                    listed_at=listed_at if k % 5 else None,
                )
                for k in range(40)
            ]
        )
        ids = [m.pk for m in models]
        raw = connection.connection
        chunk = 50_000
        with transaction.atomic(), raw.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role = replica")
            for begin in range(0, battles, chunk):
                end = min(battles, begin + chunk)
                progress(f"COPY battles {begin:,}-{end:,}")
                battle_lines, vote_lines = [], []
                for n in range(begin + 1, end + 1):
                    qid = f"bench-r{n}"
                    a, b = rng.choice(len(ids), size=2, replace=False)
                    turns = int(rng.choice([1, 1, 1, 2, 3]))
                    conv_a, conv_b = [], []
                    for t in range(turns):
                        prompt = _sentence(rng, 5, 80)
                        if t == 0 and rng.random() < 0.01:
                            prompt += " " + PII[n % 3].format(n=n % 10000)
                        conv_a += [{"role": "user", "content": prompt}, {"role": "assistant", "content": _answer(rng)}]
                        conv_b += [{"role": "user", "content": prompt}, {"role": "assistant", "content": _answer(rng)}]
                    created = datetime.fromtimestamp(now - 300 * 86400 * (1 - n / battles) - 3600, tz=UTC)
                    pool = in_release_pool(
                        qid, salt=settings.RELEASE_POOL_SALT, fraction=settings.RELEASE_POOL_FRACTION
                    )
                    battle_lines.append(
                        "\t".join(
                            [
                                str(n),
                                qid,
                                str(ids[a]),
                                str(ids[b]),
                                "t",
                                "arena",
                                "English",
                                str(turns),
                                str(len(conv_a[0]["content"])),
                                _copy_text(json.dumps(conv_a)),
                                _copy_text(json.dumps(conv_b)),
                                "t" if pool else "f",
                                created.isoformat(),
                                "[]",  # discarded: no regenerated answers
                            ]
                        )
                    )
                    winner = ("model_a", "model_b", "tie", "tie (bothbad)")[int(rng.integers(4))]
                    vote_lines.append(
                        f"{n}\t{n}\t{ids[a]}\t{ids[b]}\tt\t{winner}\tjudge-{int(rng.integers(50_000))}\t\t{created.isoformat()}"
                    )
                with cursor.copy(
                    "COPY battles_battle (id, question_id, model_a_id, model_b_id, anony, source, language, turn, "
                    "prompt_chars, conversation_a, conversation_b, in_release_pool, created_at, discarded) FROM STDIN"
                ) as copy:
                    copy.write("\n".join(battle_lines) + "\n")
                with cursor.copy(
                    "COPY battles_vote (id, battle_id, model_a_id, model_b_id, anony, winner, judge, excluded_reason, "
                    "created_at) FROM STDIN"
                ) as copy:
                    copy.write("\n".join(vote_lines) + "\n")
            for table in ("battles_battle", "battles_vote"):
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
            cursor.execute("INSERT INTO bench_dataset VALUES (%s)", [fingerprint])
        with connection.cursor() as cursor:
            for table in ("battles_battle", "battles_vote"):
                cursor.execute(f"VACUUM (ANALYZE) {table}")
        progress(f"loaded {battles:,} battles in {time.perf_counter() - started:.0f} s")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FILTER (WHERE in_release_pool), count(*) FROM battles_battle")
        pool, total = cursor.fetchone()
    return {"pool": pool, "total": total}


def _copy_text(text: str) -> str:
    # COPY's text format: backslash, tab and newline are escaped.
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def worker_ours() -> dict:
    from django.db import connection

    from arenasite import clock
    from releases import building

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE releases_releasedbattle, releases_datarelease RESTART IDENTITY CASCADE")
    started = time.perf_counter()
    release = building.build(building.start_release(clock.now()))
    wall = time.perf_counter() - started
    sizes = {name: info["bytes"] for name, info in release.manifest["files"].items()}
    return {
        "wall": wall,
        "peak_mib": _peak_mib(),
        "rows": release.battle_count,
        "excluded": release.excluded_count,
        "sizes": sizes,
    }


def worker_pandas(out: str) -> dict:
    import pandas as pd
    from django.db import connection

    from releases.building import public_judge, public_labels

    started = time.perf_counter()
    labels = public_labels()
    query = (
        "SELECT b.question_id, b.model_a_id, b.model_b_id, v.winner, v.judge, b.conversation_a, b.conversation_b, "
        "b.turn, b.anony, b.language, extract(epoch from v.created_at) AS tstamp, b.openai_moderation, "
        "b.toxic_chat_tag FROM battles_battle b JOIN battles_vote v ON v.battle_id = b.id "
        "WHERE b.in_release_pool ORDER BY b.id"
    )
    connection.ensure_connection()
    frame = pd.read_sql(query, connection.connection)
    frame["model_a"] = frame.pop("model_a_id").map(labels)
    frame["model_b"] = frame.pop("model_b_id").map(labels)
    frame["judge"] = frame["judge"].map(public_judge)
    frame["tstamp"] = frame["tstamp"].astype(float)
    frame = frame[
        [
            "question_id",
            "model_a",
            "model_b",
            "winner",
            "judge",
            "conversation_a",
            "conversation_b",
            "turn",
            "anony",
            "language",
            "tstamp",
            "openai_moderation",
            "toxic_chat_tag",
        ]
    ]
    frame.to_json(Path(out) / "battles.jsonl", orient="records", lines=True, force_ascii=False)
    frame.to_parquet(Path(out) / "battles.parquet", compression="zstd")
    return {"wall": time.perf_counter() - started, "peak_mib": _peak_mib(), "rows": len(frame)}


def run_worker(kind: str, env: dict, *extra: str) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--worker", kind, *extra], env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"worker {kind} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--battles", type=int, default=1_000_000)
    parser.add_argument("--pool-fraction", type=float, default=0.2, help="share of battles in the release pool")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        _setup_django()
        result = worker_ours() if args.worker == "ours" else worker_pandas(args.out)
        print(json.dumps(result))
        return 0

    import tempfile

    ensure_database(args.database_url)
    with tempfile.TemporaryDirectory(prefix="release-bench-") as scratch:
        env = _environment(args.database_url, args.pool_fraction, str(Path(scratch) / "releases"))
        os.environ.update(env)
        _setup_django()
        counts = load(args.battles, args.seed)
        progress(f"{counts['total']:,} battles, {counts['pool']:,} in the release pool")
        progress("ours: building the release")
        ours = run_worker("ours", env)
        rows = [("ours: build()", ours)]
        if not args.skip_peer:
            progress("pandas: reading everything, then writing")
            peer_out = Path(scratch) / "pandas"
            peer_out.mkdir()
            rows.append(("pandas, all in memory", run_worker("pandas", env, "--out", str(peer_out))))

    print()
    print(f"Release of {counts['pool']:,} pool battles out of {counts['total']:,} (PostgreSQL, 2 cores)")
    print()
    print("| method                 | battles written | left out | wall s | peak MiB | time vs ours | memory vs ours |")
    print("|------------------------|-----------------|----------|--------|----------|--------------|----------------|")
    for name, result in rows:
        print(
            f"| {name:<22} | {result['rows']:>15,} | {result.get('excluded', '-')!s:>8} | {result['wall']:>6.1f} | "
            f"{result['peak_mib']:>8.0f} | {result['wall'] / ours['wall']:>11.2f}x | "
            f"{result['peak_mib'] / ours['peak_mib']:>13.2f}x |"
        )
    print()
    print("ours, file sizes (bytes):", ", ".join(f"{k} {v:,}" for k, v in ours["sizes"].items()))
    print(
        f"targets: wall under 60 s ({'met' if ours['wall'] < 60 else 'NOT met'}), "
        f"peak under 500 MB ({'met' if ours['peak_mib'] < 500 else 'NOT met'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
