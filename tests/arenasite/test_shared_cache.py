"""Without CACHE_URL the site's cache is a database table every process shares
(arenasite/cache.py), so the login throttle and the other limits count across all web
processes instead of once per process. The suite itself runs on one process's memory
(arenasite/settings_test.py); these tests switch to the site's own default and run
other processes with the production settings on the same database."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from django.conf import settings
from django.core.cache import cache
from django.core.management import call_command

from ..factories import UserFactory
from ..support.processes import ROOT, django_environment

PASSWORD = "correct horse battery staple"
DATABASE_CACHE = {
    "default": {
        "BACKEND": "arenasite.cache.DatabaseCache",
        "LOCATION": "arenasite_cache",
        "OPTIONS": {"MAX_ENTRIES": 20000},
    }
}


def in_another_process(code: str, **env: str) -> subprocess.Popen:
    """A separate Python process on the production settings and this test's database."""
    script = "import django; django.setup()\nfrom django.test.utils import setup_test_environment\n"
    script += "setup_test_environment()\n" + code
    environment = django_environment(**{"CACHE_URL": "", "DEBUG": "0", **env})
    return subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def finished(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err.decode()[-3000:]
    return out.decode()


@pytest.fixture
def database_cache(transactional_db, settings):
    """This process on the site's default cache; committed, so other processes see its rows."""
    settings.CACHES = DATABASE_CACHE
    call_command("createcachetable", verbosity=0)
    cache.clear()
    yield
    cache.clear()  # a transactional test's flush empties the models' tables only


@pytest.mark.parametrize(
    "cache_url,backend",
    [
        ("", "arenasite.cache.DatabaseCache"),
        ("redis://127.0.0.1:6379/5", "django.core.cache.backends.redis.RedisCache"),
    ],
)
def test_the_site_caches_in_the_database_without_cache_url_and_in_redis_with_it(cache_url, backend):
    code = "from django.conf import settings; print(settings.CACHES['default']['BACKEND'])"
    assert finished(in_another_process(code, CACHE_URL=cache_url)).strip() == backend


def test_migrate_creates_the_cache_table_when_the_cache_is_the_database(database_cache):
    code = (
        "from django.core.management import call_command; from django.db import connection\n"
        "with connection.cursor() as cursor: cursor.execute('DROP TABLE arenasite_cache')\n"
        "call_command('migrate', verbosity=0)\n"
        "print('arenasite_cache' in connection.introspection.table_names())\n"
    )
    assert finished(in_another_process(code)).strip() == "True"


def test_failed_logins_in_another_process_count_towards_the_limit_here(database_cache, client):
    email = f"target-{uuid.uuid4().hex[:8]}@example.com"
    UserFactory(username=email)
    code = (
        "from django.test import Client\n"
        "client = Client()\n"
        "for attempt in range(5):\n"
        f"    response = client.post('/accounts/login/', {{'login': {email!r}, 'password': f'guess-{{attempt}}'}})\n"
        "    assert response.status_code == 200, response.status_code\n"
        "    assert not response.wsgi_request.user.is_authenticated\n"
        "print('five failed')\n"
    )
    assert "five failed" in finished(in_another_process(code))
    response = client.post("/accounts/login/", {"login": email, "password": PASSWORD})
    assert not response.wsgi_request.user.is_authenticated
    assert "Too many failed login attempts" in response.content.decode()


def test_two_processes_counting_at_once_lose_no_count(database_cache):
    key = f"shared-counter-{uuid.uuid4().hex}"
    cache.set(key, 0, timeout=600)
    code = f"from django.core.cache import cache\nfor _ in range(150):\n    cache.incr({key!r})\n"
    processes = [in_another_process(code) for _ in range(2)]
    for process in processes:
        finished(process)
    assert cache.get(key) == 300


def test_incr_of_a_missing_or_expired_key_raises_as_in_djangos_caches(database_cache):
    with pytest.raises(ValueError):
        cache.incr(f"missing-{uuid.uuid4().hex}")
    cache.set("short-lived", 1, timeout=-1)
    with pytest.raises(ValueError):
        cache.incr("short-lived")
    cache.set("counter", 5)
    assert cache.incr("counter", 3) == 8 and cache.decr("counter") == 7 and cache.get("counter") == 7


def redis_url() -> str | None:
    for url in (settings.ARENA_STREAM_REDIS_URL, settings.CELERY_BROKER_URL):
        if url.startswith("redis://"):
            return url
    return None


def test_requests_on_a_redis_cache_reuse_the_process_connections():
    """Django makes a cache object per thread and per async context (so per ASGI request);
    each must not open a connection of its own."""
    url = redis_url()
    if url is None:
        pytest.skip("no Redis configured (CELERY_BROKER_URL or ARENA_STREAM_REDIS_URL)")
    code = (
        "import threading\n"
        "from django.core.cache import caches\n"
        "import redis\n"
        f"server = redis.Redis.from_url({url!r})\n"
        "before = server.info('stats')['total_connections_received']\n"
        "def request(n):\n"
        "    cache = caches.create_connection('default')  # what a new thread or context gets\n"
        "    cache.set(f'request-{n}', n)\n"
        "    assert cache.get(f'request-{n}') == n\n"
        "for n in range(40):\n"
        "    thread = threading.Thread(target=request, args=(n,))\n"
        "    thread.start(); thread.join()\n"
        "print(server.info('stats')['total_connections_received'] - before)\n"
    )
    opened = int(finished(in_another_process(code, CACHE_URL=url)).strip())
    assert opened <= 2, f"{opened} Redis connections opened for 40 requests"
