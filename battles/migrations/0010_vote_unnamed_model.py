from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("battles", "0009_endpoint_usage_refusals"),
    ]

    operations = [
        migrations.AlterField(
            model_name="vote",
            name="excluded_reason",
            field=models.CharField(
                blank=True,
                choices=[
                    ("identity_revealed", "An answer or the prompt names a model"),
                    ("identity_probe", "The prompt asks a model who it is"),
                    ("rate_limited", "Over the daily vote limit"),
                    ("flagged_user", "Voter flagged as anomalous"),
                    ("moderation", "Flagged by moderation"),
                    ("error", "An answer failed or was cut off"),
                    ("unnamed_model", "Imported with a model labelled anonymous"),
                ],
                default="",
                max_length=24,
            ),
        ),
    ]
