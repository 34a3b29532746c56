"""Imported votes stored their judge as the file gave it (FastChat's unsanitised dumps name
voters by address: `arena_user_10.209.216.199`). Imports now store it keyed like a live
voter, battles.voters.judge_id("import:<judge>"); this keys the votes imported before, so
no address stays stored, a judge is the same voter in files imported before and after, and
a vote imported before is still found under another key (same models, winner, judge and
time) by an import after. A flagged voter who is such a judge is keyed the same way, so
staff decisions stay with the voter. There is no way back: the raw judges are gone.
"""

import hashlib
import hmac

from django.conf import settings
from django.db import migrations
from django.db.models import Case, Value, When

CHUNK = 500


def _key(judge: str) -> str:
    # battles.voters.judge_id(f"import:{judge}") as it is when this migration was written;
    # a migration must not follow later changes of the code it copies.
    return hmac.new(settings.JUDGE_SALT.encode(), f"import:{judge}".encode(), hashlib.sha256).hexdigest()[:32]


def key_imported_judges(apps, schema_editor):
    Vote = apps.get_model("battles", "Vote")
    FlaggedVoter = apps.get_model("battles", "FlaggedVoter")
    imported = Vote.objects.filter(battle__source="imported")
    judges = sorted(set(imported.values_list("judge", flat=True)))
    for start in range(0, len(judges), CHUNK):
        chunk = judges[start : start + CHUNK]
        keyed = Case(*(When(judge=judge, then=Value(_key(judge))) for judge in chunk))
        imported.filter(judge__in=chunk).update(judge=keyed)
        FlaggedVoter.objects.filter(judge__in=chunk).update(judge=keyed)


class Migration(migrations.Migration):
    dependencies = [
        ("battles", "0012_anomaly_test_state"),
    ]

    operations = [
        migrations.RunPython(key_imported_judges, migrations.RunPython.noop, elidable=True),
    ]
