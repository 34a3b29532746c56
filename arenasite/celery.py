import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "arenasite.settings")
# The rating engine's linear algebra is small and batched; multi-threaded BLAS only fights
# the other processes (web, a second worker) for the two cores. Set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

app = Celery("arenasite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
