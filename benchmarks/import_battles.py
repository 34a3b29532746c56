"""Time `manage.py import_battles` on N synthetic FastChat-format battles, against a plain COPY.

    DATABASE_URL=postgres://arenasite:arenasite@127.0.0.1:5432/arenasite_bench DEBUG=1 \\
        .venv/bin/python benchmarks/import_battles.py --n 200000

Writes a seeded JSON array of battles to a temporary file (one array, as FastChat does, so
the streaming reader is what is measured) and imports it against the configured database
in a child process, which prints wall time, rows/s, the child's processor time and its
peak memory (ru_maxrss). The battles have no question_id, so every row also pays for the
content hash.

The floor is a plain COPY of the same rows into a table of the same shape: the battles the
import wrote are copied out (not timed) and copied into `bench_floor_battle`, made `LIKE`
the battles table with its indexes and constraints, in one transaction; the import's
rows/s is printed as a share of the floor's. With --reimport the same file is imported
again (every row skipped). Afterwards the benchmark's battles, votes and style rows are
deleted again (unless --keep), so runs repeat; the models it created stay, with their
lifecycle events, and later runs reuse them. It refuses a database whose name does not
contain "bench" unless --force.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = [f"bench-model-{i:02d}" for i in range(24)]
WINNERS = ["model_a", "model_b", "tie", "tie (bothbad)"]
LANGUAGES = ["English"] * 8 + ["Chinese", "German", "Spanish", "unknown"]
FLOOR_TABLE = "bench_floor_battle"


def generate(path: Path, n: int, seed: int) -> None:
    """N battles shaped like FastChat's clean battle data, streamed to `path`."""
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz      "
    text = "".join(rng.choice(alphabet) for _ in range(100_000))

    def words(low: int, high: int) -> str:
        size = rng.randint(low, high)
        start = rng.randrange(len(text) - size)
        return text[start : start + size]

    start = 1_682_000_000.0
    with open(path, "w", encoding="utf-8") as f:
        f.write("[")
        for i in range(n):
            model_a, model_b = rng.sample(MODELS, 2)
            conversation_a, conversation_b = [], []
            for _ in range(1 if rng.random() < 0.8 else rng.randint(2, 3)):
                question = {"role": "user", "content": words(20, 300)}
                conversation_a += [question, {"role": "assistant", "content": words(50, 800)}]
                conversation_b += [question, {"role": "assistant", "content": words(50, 800)}]
            row = {
                "model_a": model_a,
                "model_b": model_b,
                "winner": rng.choice(WINNERS),
                "judge": f"arena_user_{rng.randrange(n // 3 + 1)}",
                "conversation_a": conversation_a,
                "conversation_b": conversation_b,
                "turn": len(conversation_a) // 2,
                "anony": rng.random() < 0.9,
                "language": rng.choice(LANGUAGES),
                "tstamp": round(start + i * 3.7 + rng.random(), 4),
            }
            f.write(("," if i else "") + "\n" + json.dumps(row))
        f.write("\n]\n")


# The child: Django set up first, so the figures are the command's own, not the interpreter's start.
CHILD = """
import json, os, sys, time
from io import StringIO
import django
django.setup()
from django.core.management import call_command
out = StringIO()
began = time.perf_counter()
workers = int(sys.argv[3]) if sys.argv[3] else None
call_command("import_battles", sys.argv[1], batch_size=int(sys.argv[2]), workers=workers, stdout=out)
print(out.getvalue(), end="")
print(json.dumps({"wall": time.perf_counter() - began}))
"""


def run_import(path: Path, batch_size: int, workers: int | None) -> dict:
    """`manage.py import_battles` in a child process: its output, wall time, processor time and peak memory."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(batch_size), str(workers or "")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # the lifecycle log of the models a first run creates
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        sys.exit(f"import_battles failed:\n{out}")
    out, _, timing = out.rstrip().rpartition("\n")
    return {
        "out": out,
        "wall": json.loads(timing)["wall"],
        "cpu": usage.ru_utime + usage.ru_stime,  # the child's, Django's start included
        "maxrss_mb": usage.ru_maxrss / 1024,  # kilobytes on Linux
    }


def copy_floor(connection, first_new_id: int, battle_table: str, tmp: Path) -> dict:
    """A plain COPY of the battles the import wrote into a table of the same shape, timed."""
    dump = tmp / "floor.copy"
    raw = connection.connection  # psycopg's connection, for COPY
    with raw.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {FLOOR_TABLE}")
        cursor.execute(f"CREATE TABLE {FLOOR_TABLE} (LIKE {battle_table} INCLUDING ALL)")
        with (
            dump.open("wb") as f,
            cursor.copy(f"COPY (SELECT * FROM {battle_table} WHERE id >= {first_new_id}) TO STDOUT") as copy,
        ):
            for data in copy:
                f.write(data)
    raw.commit()
    began = time.perf_counter()
    with raw.cursor() as cursor, raw.transaction():
        with dump.open("rb") as f, cursor.copy(f"COPY {FLOOR_TABLE} FROM STDIN") as copy:
            while data := f.read(1 << 20):
                copy.write(data)
        cursor.execute(f"SELECT count(*) FROM {FLOOR_TABLE}")
        (rows,) = cursor.fetchone()
    wall = time.perf_counter() - began
    with raw.cursor() as cursor:
        cursor.execute(f"DROP TABLE {FLOOR_TABLE}")
    raw.commit()
    dump.unlink()
    return {"rows": rows, "wall": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000, help="battles to generate (default 200000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--workers", type=int, help="import_battles --workers (default: the command's)")
    parser.add_argument("--reimport", action="store_true", help="also time importing the same file again")
    parser.add_argument("--keep", action="store_true", help="leave the imported battles in the database")
    parser.add_argument("--force", action="store_true", help="run against a database not named *bench*")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "arenasite.settings")
    os.environ.setdefault("SECRET_KEY", "benchmark-only-secret")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Max

    from battles.models import Battle, BattleStyle, Vote

    name = str(connection.settings_dict["NAME"])
    print(f"database: {connection.vendor} {name}")
    if connection.vendor != "postgresql":
        sys.exit("Refusing: the floor is PostgreSQL's COPY; set DATABASE_URL to a PostgreSQL database.")
    if "bench" not in name and not args.force:
        sys.exit("Refusing: the database name does not contain 'bench' (pass --force to run anyway).")
    call_command("migrate", verbosity=0, interactive=False)
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")

    with tempfile.TemporaryDirectory(prefix="arena-bench-") as tmp:
        path = Path(tmp) / "clean_battle.json"
        began = time.perf_counter()
        generate(path, args.n, args.seed)
        print(f"generated {args.n} battles, {path.stat().st_size / 1e6:.0f} MB, in {time.perf_counter() - began:.1f} s")

        first_new_id = (Battle.objects.aggregate(last=Max("id"))["last"] or 0) + 1
        try:
            first = run_import(path, args.batch_size, args.workers)
            print(first["out"])
            print(
                f"import: {first['wall']:.1f} s wall, {args.n / first['wall']:,.0f} rows/s; "
                f"child {first['cpu']:.1f} s of processor, peak memory {first['maxrss_mb']:.0f} MB"
            )
            floor = copy_floor(connection, first_new_id, Battle._meta.db_table, Path(tmp))
            floor_rate = floor["rows"] / floor["wall"]
            print(
                f"floor, plain COPY of the same {floor['rows']} battles into a table like {Battle._meta.db_table}: "
                f"{floor['wall']:.1f} s, {floor_rate:,.0f} rows/s"
            )
            print(f"import / floor: {args.n / first['wall'] / floor_rate:.2f} of COPY's rows/s")
            if args.reimport:
                again = run_import(path, args.batch_size, args.workers)
                print(again["out"])
                print(
                    f"re-import: {again['wall']:.1f} s wall, {args.n / again['wall']:,.0f} rows/s; "
                    f"child {again['cpu']:.1f} s of processor, peak memory {again['maxrss_mb']:.0f} MB"
                )
        finally:
            if not args.keep:
                # Raw SQL: the ORM's cascade would load every battle to delete it.
                with connection.cursor() as cursor:
                    cursor.execute(f"DELETE FROM {Vote._meta.db_table} WHERE battle_id >= %s", [first_new_id])
                    cursor.execute(f"DELETE FROM {BattleStyle._meta.db_table} WHERE battle_id >= %s", [first_new_id])
                    cursor.execute(f"DELETE FROM {Battle._meta.db_table} WHERE id >= %s", [first_new_id])
    print(f"load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
