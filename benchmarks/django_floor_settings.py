"""Settings of the Django floor (benchmarks/django_floor.py): the project's, every URL routed there."""

from arenasite.settings import *  # noqa: F403  (the same middleware, sessions, DRF and database)

ROOT_URLCONF = "django_floor"
