from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def backfill_withdrawn_at(apps, schema_editor):
    """Withdrawn models get the date of their withdrawal from the lifecycle log."""
    ArenaModel = apps.get_model("providers", "ArenaModel")
    LifecycleEvent = apps.get_model("providers", "LifecycleEvent")
    withdrawal = (
        LifecycleEvent.objects.filter(arena_model=OuterRef("pk"), to_status="withdrawn", kind="done")
        .order_by("-created_at")
        .values("created_at")[:1]
    )
    ArenaModel.objects.filter(status="withdrawn", withdrawn_at__isnull=True).update(withdrawn_at=Subquery(withdrawal))


class Migration(migrations.Migration):
    dependencies = [
        ("providers", "0003_sampling_weights_and_shares"),
    ]

    operations = [
        migrations.AddField(
            model_name="arenamodel",
            name="family",
            field=models.CharField(
                blank=True,
                db_index=True,
                help_text="Variants of one model line share a family (set by staff, e.g. at admission). When the provider lists one of them, the kept ratings of the others become public after ARENA_RETRACTION_DELAY_DAYS. Empty: the model is a family of its own.",
                max_length=100,
            ),
        ),
        migrations.AddField(
            model_name="arenamodel",
            name="withdrawn_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="lifecycleevent",
            name="rule",
            field=models.CharField(
                blank=True,
                choices=[
                    ("provider_request", "Requested by the provider"),
                    ("offline", "Offline too long after its listing window"),
                    ("below_percentile", "Rated below the published percentile of its access kind"),
                    ("staff_decision", "Staff decision (explained in the reason)"),
                ],
                help_text="For retirements: the rule applied.",
                max_length=24,
            ),
        ),
        migrations.RunPython(backfill_withdrawn_at, migrations.RunPython.noop),
    ]
