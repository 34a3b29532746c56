from django.db import migrations, models


def store_uncompressed(apps, schema_editor):
    # The columns are integers in their narrowest types already: compressing them on every
    # write (PostgreSQL's default for large values) would cost seconds for little gain.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE leaderboard_keptcolumnspart ALTER COLUMN data SET STORAGE EXTERNAL")


class Migration(migrations.Migration):
    dependencies = [
        ("leaderboard", "0004_counted_vote_changes"),
    ]

    operations = [
        migrations.CreateModel(
            name="KeptColumnsPart",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "definition",
                    models.CharField(help_text="What the columns are; parts of another are not used.", max_length=32),
                ),
                (
                    "first_battle_id",
                    models.BigIntegerField(help_text="The range's first battle id; it spans PART_BATTLES ids."),
                ),
                ("rows", models.PositiveIntegerField()),
                ("layout", models.JSONField(help_text="[[column, numpy type], ...] in the order of data.")),
                ("data", models.BinaryField()),
                ("written_at", models.DateTimeField(db_index=True)),
            ],
        ),
        migrations.RunPython(store_uncompressed, migrations.RunPython.noop),
    ]
