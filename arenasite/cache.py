"""The cache every process shares when no Redis is configured: a table in the site's database.

The cache holds counters that only work when all web processes see the same ones: the login
throttle (allauth), the battle and test-call limits, DRF's download throttle. One process's
memory (Django's default) gives each gunicorn worker counters of its own, so N workers allow
N times every limit. Without CACHE_URL the site therefore keeps its cache in PostgreSQL, which
every process and every host of a deployment already shares; with CACHE_URL=redis://... Redis
does the job, faster.

Django's DatabaseCache adds one thing here: `incr` (and `decr`, which calls it) is atomic. The
stock one reads the value and writes it back, so two processes counting at once lose a count;
here the row is locked while it is read and written.

With Redis, every cache object of the process shares one connection pool (SharedConnectionPool).
"""

from __future__ import annotations

import base64
import pickle
import threading

import redis
from django.core.cache.backends.db import DatabaseCache as DjangoDatabaseCache
from django.db import connections, models, router, transaction
from django.utils.timezone import now

# The table of the cache without CACHE_URL (its LOCATION in settings.CACHES).
TABLE = "arenasite_cache"


class DatabaseCache(DjangoDatabaseCache):
    def incr(self, key, delta=1, version=None):
        cache_key = self.make_and_validate_key(key, version=version)
        db = router.db_for_write(self.cache_model_class)
        connection = connections[db]
        quote = connection.ops.quote_name
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        with transaction.atomic(using=db), connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {quote('value')}, {quote('expires')} FROM {quote(self._table)} "
                f"WHERE {quote('cache_key')} = %s{lock}",
                [cache_key],
            )
            row = cursor.fetchone()
            if row is None or self._expired(row[1], connection):
                raise ValueError(f"Key '{key}' not found")
            value = pickle.loads(base64.b64decode(connection.ops.process_clob(row[0]).encode())) + delta
            encoded = base64.b64encode(pickle.dumps(value, self.pickle_protocol)).decode("latin1")
            cursor.execute(
                f"UPDATE {quote(self._table)} SET {quote('value')} = %s WHERE {quote('cache_key')} = %s",
                [encoded, cache_key],
            )
        return value

    @staticmethod
    def _expired(expires, connection) -> bool:
        # The same conversion Django's get() applies: aware or naive, as the database returns it.
        expression = models.Expression(output_field=models.DateTimeField())
        for converter in connection.ops.get_db_converters(expression) + expression.get_db_converters(connection):
            expires = converter(expires, expression, connection)
        return expires < now()


def create_cache_table(sender, using="default", **kwargs):
    """After every migrate: the cache's table, made if missing, whether or not CACHE_URL is set
    now, so the site and any process started without CACHE_URL find it (the test suite's
    other processes, a deployment that drops Redis later)."""
    from django.core.management import call_command

    call_command("createcachetable", TABLE, database=using, verbosity=0)


class SharedConnectionPool(redis.ConnectionPool):
    """One Redis connection pool per URL and options for the whole process.

    Django keeps a cache object per thread and per async context, and its Redis backend makes
    a connection pool per cache object: under ASGI every request runs in a context of its own,
    so every request opened a new TCP connection to Redis (and dropped it to the garbage
    collector), which cost the web processes more than the session read it was made for. Set
    as the Redis cache's `pool_class`, every cache object reuses this pool's connections.
    redis-py resets a pool in a forked child on first use, so workers forked by gunicorn open
    their own.
    """

    _shared: dict[tuple, redis.ConnectionPool] = {}
    _lock = threading.Lock()

    @classmethod
    def from_url(cls, url, **kwargs):
        key = (url, tuple(sorted((name, repr(value)) for name, value in kwargs.items())))
        with cls._lock:
            pool = cls._shared.get(key)
            if pool is None:
                pool = cls._shared[key] = super().from_url(url, **kwargs)
        return pool
