from django.db import migrations, models

# Statement-level triggers with transition tables: one INSERT ... SELECT per statement, so a
# bulk import or a bulk exclusion notes its battles in one step rather than one per row. A
# battle's or style's write counts only once the battle has a vote (before that, answering
# rewrites them many times and no rating reads them).
NOTE = """
CREATE FUNCTION leaderboard_note_{name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO leaderboard_countedvotechange (battle_id, xid, noted_at)
    SELECT DISTINCT changed.{column}, pg_current_xact_id()::text::bigint, now()
    FROM changed {condition};
    RETURN NULL;
END $$;
"""
VOTED = "WHERE EXISTS (SELECT 1 FROM battles_vote WHERE battles_vote.battle_id = changed.{column})"
TRIGGER = """
CREATE TRIGGER leaderboard_note_{name}_{event} AFTER {event} ON {table}
REFERENCING {side} TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION leaderboard_note_{name}();
"""
WATCHED = [
    # (name, table, the battle id column, only battles with a vote, events)
    ("vote", "battles_vote", "battle_id", False, ["insert", "update", "delete"]),
    ("battle", "battles_battle", "id", True, ["update"]),
    ("style", "battles_battlestyle", "battle_id", True, ["insert", "update", "delete"]),
]


def create_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # elsewhere the rating run reads every vote each time
    for name, table, column, voted, events in WATCHED:
        condition = VOTED.format(column=column) if voted else ""
        schema_editor.execute(NOTE.format(name=name, column=column, condition=condition))
        for event in events:
            side = "OLD" if event == "delete" else "NEW"
            schema_editor.execute(TRIGGER.format(name=name, event=event, table=table, side=side))


def drop_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, table, _column, _voted, events in WATCHED:
        for event in events:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS leaderboard_note_{name}_{event} ON {table}")
        schema_editor.execute(f"DROP FUNCTION IF EXISTS leaderboard_note_{name}()")


class Migration(migrations.Migration):
    dependencies = [
        ("battles", "0005_vote_integrity"),
        ("leaderboard", "0003_kept_ratings_and_candidates"),
    ]

    operations = [
        migrations.CreateModel(
            name="CountedVoteChange",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("battle_id", models.BigIntegerField()),
                (
                    "xid",
                    models.BigIntegerField(db_index=True, help_text="The writing transaction (pg_current_xact_id)."),
                ),
                ("noted_at", models.DateTimeField(db_index=True)),
            ],
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
