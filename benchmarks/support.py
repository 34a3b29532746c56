"""What the benchmark scripts share: progress lines and their dedicated PostgreSQL database.

Standard library only at import: ratings.py also runs under the peers' interpreter."""

from __future__ import annotations

import sys
import time


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def ensure_database(database_url: str) -> None:
    """Create the benchmark database if it is missing (as the URL's role, which needs CREATEDB)."""
    from urllib.parse import urlsplit

    import psycopg
    from psycopg import sql

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if "bench" not in name:
        raise SystemExit(f"refusing database {name!r}: its name must contain 'bench' (the benchmark empties it)")
    server = dict(host=parts.hostname, port=parts.port or 5432, user=parts.username, password=parts.password)
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as connection:
        if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            progress(f"creating database {name}")
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
