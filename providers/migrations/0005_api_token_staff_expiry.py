from datetime import timedelta

from django.conf import settings
from django.db import migrations, models
from django.utils import timezone


def mark_staff_tokens(apps, schema_editor):
    """Tokens already held by staff become staff tokens: they expire one lifetime from now and,
    issued with no second factor on record, carry no staff powers while ARENA_STAFF_REQUIRE_MFA
    is on."""
    ApiToken = apps.get_model("providers", "ApiToken")
    expires_at = timezone.now() + timedelta(days=settings.ARENA_STAFF_TOKEN_DAYS)
    ApiToken.objects.filter(models.Q(user__is_staff=True) | models.Q(user__is_superuser=True)).update(
        staff=True, expires_at=expires_at
    )


class Migration(migrations.Migration):
    dependencies = [
        ("providers", "0004_fairness_rules"),
    ]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="expires_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="apitoken",
            name="second_factor",
            field=models.BooleanField(
                default=False, editable=False, help_text="Issued from a session signed in with a second factor."
            ),
        ),
        migrations.AddField(
            model_name="apitoken",
            name="staff",
            field=models.BooleanField(default=False, editable=False, help_text="Issued to staff: it expires."),
        ),
        migrations.RunPython(mark_staff_tokens, migrations.RunPython.noop),
    ]
