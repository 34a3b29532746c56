"""Arenasite settings, all from the environment.

With nothing set, the site runs on one machine with no servers: SQLite in var/ and a
Celery broker kept on disk. DATABASE_URL switches to PostgreSQL, CELERY_BROKER_URL to
Redis. Every variable is listed in .env.example.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

# The public dataset's moderation categories: a module of plain names, importing nothing.
from battles import moderation_categories

from .client_address import validate_trusted_proxies
from .env import env_bool, env_float, env_int, env_list, env_str
from .rates import parse_rates

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))  # its folders are made at start-up (arenasite/apps.py)

DEBUG = env_bool("DEBUG")
SECRET_KEY = env_str("SECRET_KEY", "dev-insecure-secret-key-change-me" if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
SITE_URL = env_str("SITE_URL", f"http://127.0.0.1:{env_int('PORT', 8000)}")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_htmx",
    "arenasite",
    "providers",
    "battles",
    "leaderboard",
    "releases",
    "transparency",
    "portal",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    # Before anything reads the URL: a NUL would reach PostgreSQL and end as a 500.
    "arenasite.encoding.NulInUrlMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "arenasite.encoding.Utf8FormBodyMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "arenasite.audit.AuditContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "arenasite.mfa.StaffMFAMiddleware",
]

ROOT_URLCONF = "arenasite.urls"
WSGI_APPLICATION = "arenasite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite by default so a fresh clone runs; production and CI set DATABASE_URL=postgres://...
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("DB_CONN_MAX_AGE", 0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share the file: wait for locks instead of failing at once.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
# A pool of PostgreSQL connections per process (psycopg_pool), for the site under an ASGI
# server: there each request's blocking code runs on a thread of its own, so a connection kept
# per thread (DB_CONN_MAX_AGE) is not reused, and without a pool every request, stream read and
# answer write opens a database session (a process start for PostgreSQL). 0: no pool.
DB_POOL_MAX_SIZE = env_int("DB_POOL_MAX_SIZE", 0)
if DB_POOL_MAX_SIZE and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps the connections
    # Checking each connection as it leaves the pool costs a round trip per request; the pool
    # already drops a connection that broke while in use when it is given back.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": min(2, DB_POOL_MAX_SIZE),
        "max_size": DB_POOL_MAX_SIZE,
        "timeout": env_float("DB_POOL_TIMEOUT", 10.0),
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    # First: staff whose powers are withheld for want of a second factor have no permission at all.
    "arenasite.mfa.StaffFactorBackend",
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve straight from the app folders in development, so no collectstatic step is needed.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

# Accounts: email login through allauth, optional TOTP second factor.
LOGIN_REDIRECT_URL = "/"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
# Sign-up must not tell whether an address has an account. allauth can hide it only when an
# address is confirmed before its account is used: sign-up then always ends on "we sent you
# a mail" (a new account: the confirmation link; an existing one: a note to its owner that
# someone tried), and signing in with an unconfirmed address sends the link again. With
# "optional" or "none" a taken address is refused on the form, which reveals it.
ACCOUNT_EMAIL_VERIFICATION = env_str("ACCOUNT_EMAIL_VERIFICATION", "mandatory")
if ACCOUNT_EMAIL_VERIFICATION not in ("mandatory", "optional", "none"):
    raise ImproperlyConfigured(
        f"ACCOUNT_EMAIL_VERIFICATION must be mandatory, optional or none, got {ACCOUNT_EMAIL_VERIFICATION!r}"
    )
ACCOUNT_PREVENT_ENUMERATION = True
# Confirming in the browser that signed up signs the new account in (another browser must log in).
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_ADAPTER = "arenasite.accounts.AccountAdapter"
# Confirming a signed-in user again (before a second factor is added or removed, say) takes the
# password or a second factor, never a code mailed to the account: a stolen session together
# with the mailbox must not be enough.
ACCOUNT_REAUTHENTICATION_METHODS = ["password", "mfa"]
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = env_str("MFA_TOTP_ISSUER", "Arenasite")
# With it on (the default when DEBUG is off), staff powers count only for a session that signed
# in with the second factor, or an API token issued from one; anywhere else (admin, API, portal,
# pages) a staff member acts as an ordinary account (arenasite/mfa.py). The admin's own login form
# is replaced by allauth's (arenasite/urls.py), which asks for the code.
ARENA_STAFF_REQUIRE_MFA = env_bool("ARENA_STAFF_REQUIRE_MFA", not DEBUG)
# API tokens of staff expire this many days after they are issued; provider members' tokens do not.
ARENA_STAFF_TOKEN_DAYS = env_int("ARENA_STAFF_TOKEN_DAYS", 30, minimum=1)
# Login throttling (allauth, counted in the cache): failed logins per IP and per account. The
# next failed attempt beyond either limit is refused without checking the password.
ACCOUNT_RATE_LIMITS = {"login_failed": env_str("ACCOUNT_LOGIN_FAILED_RATE", "10/m/ip,5/5m/key")}
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "arenasite@localhost")

# REST API
# Share downloads per user (DRF's rate syntax: requests/second|minute|hour|day).
DATA_DOWNLOAD_RATE = env_str("DATA_DOWNLOAD_RATE", "60/hour")
if not re.fullmatch(r"\d+/(s|sec|second|m|min|minute|h|hour|d|day)", DATA_DOWNLOAD_RATE):
    raise ImproperlyConfigured(f"DATA_DOWNLOAD_RATE must be requests per period, like 60/hour: {DATA_DOWNLOAD_RATE!r}")
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "providers.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "arenasite.api.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["arenasite.api.JSONParser"],
    # Scoped throttles (views set `throttle_scope`): file downloads of provider shares.
    "DEFAULT_THROTTLE_RATES": {"downloads": DATA_DOWNLOAD_RATE},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Arenasite API",
    "DESCRIPTION": "Providers register models and follow their lifecycle; staff run admission.",
    "VERSION": "1.0.0",
    "SCHEMA_PATH_PREFIX": "/api/v1/",
    "SERVE_INCLUDE_SCHEMA": False,
    # The sidecar ships Swagger UI with the package, so the docs page works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Request bodies get components of their own (ArenaModelRequest...), without the read-only
    # fields, so a generated client does not have to send what the server sets.
    "COMPONENT_SPLIT_REQUEST": True,
    # The 401 of every operation that requires authentication, declared from the views' classes.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "arenasite.openapi.declare_unauthorised",
    ],
    "ENUM_NAME_OVERRIDES": {
        "LifecycleStatusEnum": "providers.models.LifecycleStatus",
        "AccessKindEnum": "providers.models.AccessKind",
        "BattleAnswerStateEnum": "battles.models.Battle.AnswerState",
    },
}

# Celery. The default broker keeps messages in folders under var/, so web, worker and beat
# run as separate processes on one machine with no server; production sets redis://...
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / env_str("CELERY_BROKER_DIR", "broker")  # made at start-up (arenasite/apps.py)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_TASK_ACKS_LATE = True  # redelivered if a worker dies mid-task, so every task is idempotent
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = TIME_ZONE
# The schedule below is the default; beat copies it into django-celery-beat's tables,
# where staff can pause or re-time each entry in admin.
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    "carry-out-due-transitions": {
        "task": "providers.tasks.carry_out_due_transitions",
        "schedule": crontab(minute="*/5"),
    },
    "check-endpoints": {
        "task": "providers.tasks.check_endpoints",
        "schedule": crontab(minute="*/15"),
    },
    "recompute-ratings": {
        "task": "leaderboard.tasks.recompute_ratings",
        "schedule": crontab(minute=5),  # hh:05 every hour
    },
    "build-waiting-shares": {
        "task": "releases.tasks.build_waiting_shares",
        "schedule": crontab(minute="*/5"),
    },
    "snapshot-expected-shares": {
        "task": "transparency.tasks.snapshot_expected_shares",
        "schedule": crontab(minute=30),  # hh:30 every hour
    },
}

# Endpoint API keys are encrypted at rest with Fernet. ENDPOINT_KEY_ENCRYPTION_KEYS is a
# comma-separated list: the first key encrypts, all of them decrypt, so keys can be rotated.
# Without it a key is derived from SECRET_KEY.
ENDPOINT_KEY_ENCRYPTION_KEYS = env_list("ENDPOINT_KEY_ENCRYPTION_KEYS") or [
    base64.urlsafe_b64encode(hashlib.sha256(f"endpoint-keys:{SECRET_KEY}".encode()).digest()).decode()
]

# Policy (the arena policy's numbers, adjustable per deployment).
ARENA_LISTING_MIN_VOTES = env_int("ARENA_LISTING_MIN_VOTES", 1000)
ARENA_MIN_LISTED_DAYS = env_int("ARENA_MIN_LISTED_DAYS", 14)
ARENA_HEADS_UP_DAYS = env_int("ARENA_HEADS_UP_DAYS", 1)
ARENA_OFFLINE_RETIREMENT_DAYS = env_int("ARENA_OFFLINE_RETIREMENT_DAYS", 7)
ARENA_HEALTH_CHECK_TIMEOUT = env_int("ARENA_HEALTH_CHECK_TIMEOUT", 10)
# Endpoints must resolve to public addresses (providers/endpoints.py); development may allow
# loopback and private ones, e.g. for a model server on the same machine.
ARENA_ALLOW_PRIVATE_ENDPOINTS = env_bool("ARENA_ALLOW_PRIVATE_ENDPOINTS", False)
# Fairness rules (docs/lifecycle.md, docs/transparency.md). At most CAP models of one provider
# in initial rating at once. A never-listed model's kept rating becomes public DELAY days
# after its withdrawal or the listing of a model of its family. A listed score is provisional
# until PROVISIONAL_VOTES counted votes were collected after listing. A listed model with at
# least RETIRE_MIN_VOTES votes rated below the RETIRE_PERCENTILE-th percentile of listed models
# of its access kind is a retirement candidate.
ARENA_INITIAL_RATING_CAP = env_int("ARENA_INITIAL_RATING_CAP", 3, minimum=1)
ARENA_RETRACTION_DELAY_DAYS = env_int("ARENA_RETRACTION_DELAY_DAYS", 30, minimum=0)
ARENA_PROVISIONAL_VOTES = env_int("ARENA_PROVISIONAL_VOTES", 2000, minimum=0)
ARENA_RETIRE_PERCENTILE = env_float("ARENA_RETIRE_PERCENTILE", 10.0, minimum=0, maximum=100)
ARENA_RETIRE_MIN_VOTES = env_int("ARENA_RETIRE_MIN_VOTES", 3000, minimum=0)
# The leaderboard shows a model as rated in a category once it has MIN_MODEL_VOTES counted votes
# there, and a category once it has MIN_CATEGORY_VOTES; below, the page says how many more are
# needed. LMArena shows a model after a few hundred votes (its intervals are then some tens of
# points wide); a category needs enough votes for several models to pass that.
ARENA_LEADERBOARD_MIN_MODEL_VOTES = env_int("ARENA_LEADERBOARD_MIN_MODEL_VOTES", 300, minimum=0)
ARENA_LEADERBOARD_MIN_CATEGORY_VOTES = env_int("ARENA_LEADERBOARD_MIN_CATEGORY_VOTES", 1000, minimum=0)

# Pair sampling (battles/sampling.py). A model in initial rating is drawn BOOST times as
# often as its weight says until it has BOOST_VOTES counted votes, so a new model gathers
# the votes for its rating quickly. A model with battle targets, when drawn first, meets
# one of them with probability TARGET_SHARE and any other pool model otherwise.
ARENA_NEW_MODEL_BOOST = env_float("ARENA_NEW_MODEL_BOOST", 5.0, above=0)
ARENA_NEW_MODEL_BOOST_VOTES = env_int("ARENA_NEW_MODEL_BOOST_VOTES", 3000, minimum=0)
ARENA_BATTLE_TARGET_SHARE = env_float("ARENA_BATTLE_TARGET_SHARE", 0.5, minimum=0, maximum=1)

# Model calls in battles (battles/clients.py). Seconds unless named otherwise. The first-token
# wait covers connecting, sending and the first answer text of one attempt; the chunk wait is the
# longest silence allowed after it (keep-alive comments do not count as chunks); the total
# bounds one answer. Retries (with doubling, jittered backoff) happen only before any text
# is shown. CONCURRENCY is per endpoint and per web process.
ARENA_MODEL_CONNECT_TIMEOUT = env_float("ARENA_MODEL_CONNECT_TIMEOUT", 5.0, above=0)
ARENA_MODEL_FIRST_TOKEN_TIMEOUT = env_float("ARENA_MODEL_FIRST_TOKEN_TIMEOUT", 30.0, above=0)
ARENA_MODEL_CHUNK_TIMEOUT = env_float("ARENA_MODEL_CHUNK_TIMEOUT", 15.0, above=0)
ARENA_MODEL_TOTAL_TIMEOUT = env_float("ARENA_MODEL_TOTAL_TIMEOUT", 300.0, above=0)
ARENA_MODEL_RETRIES = env_int("ARENA_MODEL_RETRIES", 2, minimum=0)
ARENA_MODEL_RETRY_BACKOFF = env_float("ARENA_MODEL_RETRY_BACKOFF", 0.5, minimum=0)
ARENA_MODEL_CONCURRENCY = env_int("ARENA_MODEL_CONCURRENCY", 8, minimum=1)
ARENA_MODEL_MAX_ANSWER_CHARS = env_int("ARENA_MODEL_MAX_ANSWER_CHARS", 20000, minimum=1)
ARENA_DEMO_CHUNK_DELAY = env_float("ARENA_DEMO_CHUNK_DELAY", 0.02, minimum=0)

# The voting arena: at most MAX_TURNS user turns per battle, prompts of at most
# MAX_PROMPT_CHARS characters. Answers are produced on ANSWER_THREADS background threads
# per web process, written to the battle row once when they end and checkpointed at most
# every ANSWER_SAVE_INTERVAL seconds while they stream in (viewers get every piece from the
# stream log below, not from the row).
# A voter's votes beyond VOTER_DAILY_VOTES in one UTC day are kept but excluded
# (`rate_limited`; 0: no limit). IDENTITY_WORDS are proposed as identity terms, beside the
# pool's names, for staff to approve in admin (docs/integrity.md, "Identity terms").
ARENA_MAX_TURNS = env_int("ARENA_MAX_TURNS", 5, minimum=1)
ARENA_MAX_PROMPT_CHARS = env_int("ARENA_MAX_PROMPT_CHARS", 8000, minimum=1)
# Threads for the answers' database writes (battles/answering.py); the answers themselves are
# tasks on one event loop per process and hold no thread.
ARENA_ANSWER_DB_THREADS = env_int("ARENA_ANSWER_DB_THREADS", 4, minimum=1)
ARENA_ANSWER_SAVE_INTERVAL = env_float("ARENA_ANSWER_SAVE_INTERVAL", 2.0, minimum=0)
ARENA_VOTER_DAILY_VOTES = env_int("ARENA_VOTER_DAILY_VOTES", 100, minimum=0)
# The answers' stream log (battles/stream_log.py, GET /api/v1/battles/{id}/stream/): Redis Streams
# when STREAM_REDIS_URL (else a redis:// broker or cache URL) names a Redis, so any web process
# serves any viewer; otherwise in-process, with viewers on other processes reading the row's
# checkpoints every STREAM_POLL_INTERVAL seconds. A turn's log is kept STREAM_KEEP_SECONDS after
# its last piece; a reader that hears nothing for STREAM_IDLE_CHECK_SECONDS checks the row.
ARENA_STREAM_REDIS_URL = env_str("ARENA_STREAM_REDIS_URL") or next(
    (url for url in (CELERY_BROKER_URL, env_str("CACHE_URL")) if url.startswith(("redis://", "rediss://"))), ""
)
ARENA_STREAM_KEEP_SECONDS = env_int("ARENA_STREAM_KEEP_SECONDS", 3600, minimum=1)
ARENA_STREAM_POLL_INTERVAL = env_float("ARENA_STREAM_POLL_INTERVAL", 1.0, above=0)
ARENA_STREAM_IDLE_CHECK_SECONDS = env_float("ARENA_STREAM_IDLE_CHECK_SECONDS", 10.0, above=0)
if ARENA_STREAM_REDIS_URL and not ARENA_STREAM_REDIS_URL.startswith(("redis://", "rediss://")):
    raise ImproperlyConfigured(f"ARENA_STREAM_REDIS_URL must be a redis:// URL, got {ARENA_STREAM_REDIS_URL!r}")
# Proposed as identity terms; those set when migration battles/0007 ran were approved by it.
ARENA_IDENTITY_WORDS = env_list("ARENA_IDENTITY_WORDS")
# Vote integrity (docs/integrity.md). NETWORK_DAILY_VOTES caps the votes of one /24 or /48
# network per UTC day (`rate_limited`; 0: no limit). The anomalous-voter test flags a voter
# whose running evidence reaches 1/ALPHA; ANOMALY_DETECTION runs it before every rating
# recomputation. Defaults chosen from benchmarks/rigging.py.
ARENA_NETWORK_DAILY_VOTES = env_int("ARENA_NETWORK_DAILY_VOTES", 1000, minimum=0)
ARENA_ANOMALY_ALPHA = env_float("ARENA_ANOMALY_ALPHA", 0.02)
ARENA_ANOMALY_DETECTION = env_bool("ARENA_ANOMALY_DETECTION", True)
# Which votes the anomalous-voter test reads: "all" (imported history is tested too, and can
# be flagged) or "arena" (only votes cast on this site; imported votes keep their data set's
# own judgement).
ARENA_ANOMALY_TEST_SCOPE = env_str("ARENA_ANOMALY_TEST_SCOPE", "all")
if ARENA_ANOMALY_TEST_SCOPE not in ("all", "arena"):
    raise ImproperlyConfigured(f'ARENA_ANOMALY_TEST_SCOPE must be "all" or "arena", got {ARENA_ANOMALY_TEST_SCOPE!r}')
if not 0 < ARENA_ANOMALY_ALPHA < 1:
    raise ImproperlyConfigured(f"ARENA_ANOMALY_ALPHA must be between 0 and 1, got {ARENA_ANOMALY_ALPHA!r}")

# The front door (docs/security.md, "Limits"). The client address is REMOTE_ADDR, or behind the
# proxies listed here (addresses or CIDR networks; empty: none trusted) the forwarded client.
try:
    ARENA_TRUSTED_PROXIES = validate_trusted_proxies(env_list("ARENA_TRUSTED_PROXIES"))
except ValueError as _error:
    raise ImproperlyConfigured(str(_error)) from None
# Votes counted per UTC day, beyond which they are stored but excluded (`rate_limited`); 0: no cap.
# An anonymous voter counts against its session's cap (ARENA_VOTER_DAILY_VOTES) and its client
# address's (IPv4 address, IPv6 /64), which fresh cookies share; a signed-in voter against its
# account's. Every vote also counts against its network's (/24, /48: ARENA_NETWORK_DAILY_VOTES)
# and, on IPv6, its /32's.
ARENA_ADDRESS_DAILY_VOTES = env_int("ARENA_ADDRESS_DAILY_VOTES", 100, minimum=0)
ARENA_ACCOUNT_DAILY_VOTES = env_int("ARENA_ACCOUNT_DAILY_VOTES", 200, minimum=0)
ARENA_WIDE_NETWORK_DAILY_VOTES = env_int("ARENA_WIDE_NETWORK_DAILY_VOTES", 5000, minimum=0)
# Battles started plus turns added (each costs two model calls), per voter, per client address
# and per network: comma-separated N/period (s, m, h, d), every one of which must hold; empty:
# no limit. A refused start answers 429 with Retry-After and stores nothing.
ARENA_BATTLE_RATE_VOTER = env_str("ARENA_BATTLE_RATE_VOTER", "6/m,60/h,300/d")
ARENA_BATTLE_RATE_ADDRESS = env_str("ARENA_BATTLE_RATE_ADDRESS", "10/m,120/h,600/d")
ARENA_BATTLE_RATE_NETWORK = env_str("ARENA_BATTLE_RATE_NETWORK", "60/m,1200/h,6000/d")
# Battles still being answered at once, per voter and per client address (0: no limit). This is
# also what keeps one client from filling the answering threads that every voter shares.
ARENA_BATTLES_IN_FLIGHT_VOTER = env_int("ARENA_BATTLES_IN_FLIGHT_VOTER", 2, minimum=0)
ARENA_BATTLES_IN_FLIGHT_ADDRESS = env_int("ARENA_BATTLES_IN_FLIGHT_ADDRESS", 4, minimum=0)
# A proof-of-work challenge (ALTCHA, battles/challenge.py) before a session's first battle and
# again every ARENA_CHALLENGE_EVERY battles; COST is the PBKDF2 iterations of each try (about
# 128 tries on average). On unless DEBUG; ARENA_CHALLENGE=0 for load tests and trusted deployments.
ARENA_CHALLENGE = env_bool("ARENA_CHALLENGE", not DEBUG)
ARENA_CHALLENGE_EVERY = env_int("ARENA_CHALLENGE_EVERY", 20, minimum=1)
ARENA_CHALLENGE_COST = env_int("ARENA_CHALLENGE_COST", 5000, minimum=1)
for _name in ("ARENA_BATTLE_RATE_VOTER", "ARENA_BATTLE_RATE_ADDRESS", "ARENA_BATTLE_RATE_NETWORK"):
    try:
        parse_rates(globals()[_name])
    except ValueError as _error:
        raise ImproperlyConfigured(f"{_name}: {_error}") from None

# Ratings
ARENA_BOOTSTRAP_ROUNDS = env_int("ARENA_BOOTSTRAP_ROUNDS", 1000)
ARENA_BOOTSTRAP_SEED = env_int("ARENA_BOOTSTRAP_SEED", 42)
ARENA_RATING_ANCHOR_MODEL = env_str("ARENA_RATING_ANCHOR_MODEL")  # public name; empty: centre at 1000
ARENA_RATING_ANCHOR_RATING = env_float("ARENA_RATING_ANCHOR_RATING", 1000.0)
ARENA_LONG_PROMPT_CHARS = env_int("ARENA_LONG_PROMPT_CHARS", 500)
ARENA_LANGUAGE_CATEGORIES = env_list("ARENA_LANGUAGE_CATEGORIES", "English,Chinese")
# Categories beyond overall/multi-turn/long prompts/languages: at most N counted votes per
# voter per day (0: no such category), style control where answers carry text, and on
# request the votes with high-frequency duplicate prompts down-sampled.
ARENA_JUDGE_DAILY_CAP = env_int("ARENA_JUDGE_DAILY_CAP", 20)
ARENA_STYLE_CONTROL = env_bool("ARENA_STYLE_CONTROL", True)
ARENA_DEDUP_PROMPTS = env_bool("ARENA_DEDUP_PROMPTS", False)
# High-frequency duplicate prompts down-sampled in every category, as the arena does (then
# the separate "deduplicated" category is not computed: it would equal the overall one).
ARENA_DEDUP_EVERY_CATEGORY = env_bool("ARENA_DEDUP_EVERY_CATEGORY", True)
ARENA_DEDUP_PERCENTILE = env_float("ARENA_DEDUP_PERCENTILE", 99.99)
ARENA_ONLINE_ELO_K = env_float("ARENA_ONLINE_ELO_K", 4.0)

# Moderation of battles (battles/moderation.py). With an API key each battle turn goes to
# an OpenAI-compatible moderations endpoint (URL is its base, TIMEOUT in seconds); without
# one a local list of phrases flags it and nothing leaves the machine. TERMS adds
# comma-separated "category=phrase" items to that list's built-in phrases.
ARENA_MODERATION_API_KEY = env_str("ARENA_MODERATION_API_KEY")
ARENA_MODERATION_URL = env_str("ARENA_MODERATION_URL", "https://api.openai.com/v1")
ARENA_MODERATION_MODEL = env_str("ARENA_MODERATION_MODEL", "omni-moderation-latest")
ARENA_MODERATION_TIMEOUT = env_float("ARENA_MODERATION_TIMEOUT", 10.0, above=0)
if not ARENA_MODERATION_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(
        f"ARENA_MODERATION_URL must start with http:// or https://, got {ARENA_MODERATION_URL!r}"
    )
if not ARENA_MODERATION_MODEL:
    raise ImproperlyConfigured("ARENA_MODERATION_MODEL must not be empty")
ARENA_MODERATION_TERMS: dict[str, list[str]] = {}
for _item in env_list("ARENA_MODERATION_TERMS"):
    _category, _equals, _phrase = (part.strip() for part in _item.partition("="))
    if not (_equals and _category and _phrase):
        raise ImproperlyConfigured(f"ARENA_MODERATION_TERMS items must be category=phrase, got {_item!r}")
    if _category not in moderation_categories.CATEGORIES:
        raise ImproperlyConfigured(
            f"ARENA_MODERATION_TERMS: unknown category {_category!r} in {_item!r}; "
            f"known: {', '.join(moderation_categories.CATEGORIES)}"
        )
    ARENA_MODERATION_TERMS.setdefault(_category, []).append(_phrase)

# Data sharing: the share of battles promised to community releases, and the secret salt
# that assigns each battle to the pool (derived from SECRET_KEY when unset). Changing the
# salt would move battles in or out of the pool, so it is fixed for a deployment.
RELEASE_POOL_FRACTION = env_float("RELEASE_POOL_FRACTION", 0.2)
RELEASE_POOL_SALT = env_str("RELEASE_POOL_SALT") or hashlib.sha256(f"release-pool:{SECRET_KEY}".encode()).hexdigest()
# Where release and share files are written (a directory per release, moved into place
# only when complete).
RELEASES_DIR = Path(env_str("RELEASES_DIR", str(VAR_DIR / "releases")))
# Provider early access: the version of the data-sharing terms (templates/releases/
# sharing_terms.md) providers accept. Change it with the text: shares then need an
# agreement on the new terms.
DATA_SHARING_TERMS_VERSION = env_str("DATA_SHARING_TERMS_VERSION", "2024-06")
# The judge id stored with a vote is a salted hash of the voter's identity.
JUDGE_SALT = env_str("JUDGE_SALT") or hashlib.sha256(f"judge:{SECRET_KEY}".encode()).hexdigest()

# Security headers (docs/security.md). SecurityMiddleware sends nosniff, the referrer policy,
# the opener policy and, over HTTPS, HSTS; XFrameOptionsMiddleware forbids framing; django-csp
# sends the Content-Security-Policy below.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# HTTPS is on whenever DEBUG is off: redirect to https, Secure-only cookies, HSTS for a year.
# HTTPS=0 turns it off for a server on plain HTTP (a load test on loopback). Behind a proxy that
# ends TLS, SECURE_PROXY_SSL_HEADER=1 trusts its X-Forwarded-Proto (the proxy must overwrite it).
HTTPS = env_bool("HTTPS", not DEBUG)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000) if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
if not SECURE_HSTS_PRELOAD:
    # Preloading binds the whole domain and its subdomains to HTTPS in browsers for months and is
    # slow to undo: each deployment opts in (SECURE_HSTS_PRELOAD=1), so the check's nudge is silenced.
    SILENCED_SYSTEM_CHECKS = ["security.W021"]
if env_bool("SECURE_PROXY_SSL_HEADER"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
# No inline scripts anywhere (scripts are static files; data goes in json_script elements),
# so script-src needs no nonce and no 'unsafe-inline'. Styles allow inline: plotly.js and
# Swagger UI write style elements at run time, and CSS cannot run code.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# The cache holds counters every web process must share (the login throttle, the battle and
# test-call limits, DRF's download throttle) and the cached leaderboard. CACHE_URL=redis://...
# keeps it in Redis; without it, in a table of the site's database (arenasite/cache.py), which
# every process and host shares too, never in one process's memory, where each gunicorn
# worker would count on its own. The table is made by migrate.
CACHE_URL = env_str("CACHE_URL")
if CACHE_URL:
    if not CACHE_URL.startswith(("redis://", "rediss://")):
        raise ImproperlyConfigured(f"CACHE_URL must be a redis:// or rediss:// URL, got {CACHE_URL!r}")
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CACHE_URL,
            # One pool for the process, not one per request (arenasite/cache.py).
            "OPTIONS": {"pool_class": "arenasite.cache.SharedConnectionPool"},
        }
    }
    # Every request reads its session; with a cache all processes share, it is read from
    # there and written through to the database. (Not with one process's memory: another
    # process would keep serving a session that was changed or ended elsewhere.)
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
else:
    # Sessions stay in their own table: reading them through a cache that is itself the
    # database would only add a query. MAX_ENTRIES: counters of a day's clients, not 300.
    CACHES = {
        "default": {
            "BACKEND": "arenasite.cache.DatabaseCache",
            "LOCATION": "arenasite_cache",
            "OPTIONS": {"MAX_ENTRIES": 20000},
        }
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
