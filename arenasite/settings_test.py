"""Test settings: the real settings with a fixed secret, fast hashing and eager tasks.

DATABASE_URL and CELERY_BROKER_URL still apply, so CI runs the suite on PostgreSQL and Redis.
"""

import os

# The suite runs on its own settings, never on a developer's .env (written by `make run`).
os.environ.setdefault("ENV_FILE", "")
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
os.environ.setdefault("CELERY_BROKER_DIR", "test-broker")
# The test client and the live server speak plain HTTP; production settings keep HTTPS on.
os.environ.setdefault("HTTPS", "0")
# Staff in most tests sign in with force_login and tokens from the fixtures, with no second factor;
# tests/arenasite/test_mfa.py turns the requirement on (production settings have it on).
os.environ.setdefault("ARENA_STAFF_REQUIRE_MFA", "0")
# The suite's chat-completions server listens on loopback (tests/support/openai_server.py).
os.environ.setdefault("ARENA_ALLOW_PRIVATE_ENDPOINTS", "1")
# Test worlds start many battles from one client in a moment; the limits' own tests
# (tests/battles/test_limits.py) set them back.
for _name in ("ARENA_BATTLE_RATE_VOTER", "ARENA_BATTLE_RATE_ADDRESS", "ARENA_BATTLE_RATE_NETWORK"):
    os.environ.setdefault(_name, "")
for _name in ("ARENA_BATTLES_IN_FLIGHT_VOTER", "ARENA_BATTLES_IN_FLIGHT_ADDRESS"):
    os.environ.setdefault(_name, "0")
# Test worlds rate models on a handful of votes; the leaderboard's minimums have their own
# tests (tests/leaderboard/test_minimum_votes.py), which set them back.
os.environ.setdefault("ARENA_LEADERBOARD_MIN_MODEL_VOTES", "0")
os.environ.setdefault("ARENA_LEADERBOARD_MIN_CATEGORY_VOTES", "0")
# Clients in tests do not solve proof-of-work challenges; tests/battles/test_challenge.py does.
os.environ.setdefault("ARENA_CHALLENGE", "0")

from .settings import *  # noqa: E402,F403
from .settings import CACHE_URL, DATABASES, VAR_DIR  # noqa: E402

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
if not CACHE_URL:
    # The suite runs in one process, and tests without the database count in the cache too:
    # one process's memory. The site itself shares a database table between its processes
    # (arenasite/cache.py), which tests/arenasite/test_shared_cache.py runs across processes.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Test worlds put many models of one provider in initial rating at once; the admission cap's
# own tests (tests/providers/test_rules_cap.py) set it back to the production default.
ARENA_INITIAL_RATING_CAP = 50

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, so a real worker process started by a test sees the same data.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
