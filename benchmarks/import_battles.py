"""Time `manage.py import_battles` on N synthetic FastChat-format battles.

    DATABASE_URL=postgres://arenasite:arenasite@127.0.0.1:5432/arenasite_bench DEBUG=1 \\
        .venv/bin/python benchmarks/import_battles.py --n 1000000

Writes a seeded JSON array of battles to a temporary file (one array, as FastChat does, so
the streaming ijson reader is what is measured), imports it against the configured database
and prints wall time and rows/s. The battles have no question_id, so every row also pays for
the content hash. Afterwards the benchmark's battles and votes are deleted again (unless
--keep), so runs repeat; the models it created stay, with their lifecycle events, and later
runs reuse them. It refuses a database whose name does not contain "bench" unless --force.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from io import StringIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = [f"bench-model-{i:02d}" for i in range(24)]
WINNERS = ["model_a", "model_b", "tie", "tie (bothbad)"]
LANGUAGES = ["English"] * 8 + ["Chinese", "German", "Spanish", "unknown"]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000, help="battles to generate (default 200000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=5000)
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
    if "bench" not in name and not args.force:
        sys.exit("Refusing: the database name does not contain 'bench' (pass --force to run anyway).")
    call_command("migrate", verbosity=0, interactive=False)

    with tempfile.TemporaryDirectory(prefix="arena-bench-") as tmp:
        path = Path(tmp) / "clean_battle.json"
        began = time.perf_counter()
        generate(path, args.n, args.seed)
        print(f"generated {args.n} battles, {path.stat().st_size / 1e6:.0f} MB, in {time.perf_counter() - began:.1f} s")

        first_new_id = (Battle.objects.aggregate(last=Max("id"))["last"] or 0) + 1
        runs = ["import", "re-import"] if args.reimport else ["import"]
        try:
            for label in runs:
                out = StringIO()
                began = time.perf_counter()
                call_command("import_battles", str(path), batch_size=args.batch_size, stdout=out)
                wall = time.perf_counter() - began
                print(out.getvalue().rstrip())
                print(f"{label}: {wall:.1f} s wall, {args.n / wall:,.0f} rows/s")
        finally:
            if not args.keep:
                # Raw SQL: the ORM's cascade would load every battle to delete it.
                with connection.cursor() as cursor:
                    cursor.execute(f"DELETE FROM {Vote._meta.db_table} WHERE battle_id >= %s", [first_new_id])
                    cursor.execute(f"DELETE FROM {BattleStyle._meta.db_table} WHERE battle_id >= %s", [first_new_id])
                    cursor.execute(f"DELETE FROM {Battle._meta.db_table} WHERE id >= %s", [first_new_id])
    # ru_maxrss is in kilobytes on Linux.
    print(f"peak memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
