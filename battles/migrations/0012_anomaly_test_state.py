from django.db import migrations

# The incremental anomalous-voter test (battles/anomalies.py, battles/anomaly_state.py) keeps
# what the last run computed in one row, and learns which votes were written since from notes
# that PostgreSQL triggers add as votes are inserted, updated or deleted. Both tables are
# read and written as arrays by that module alone (and the notes by the triggers), so they
# are plain tables, not models.
#
# A note says how a write changed what the test reads: `tested` (+1, -1 or 0) whether the
# vote is one the test reads (anonymous, with a judge, counting or excluded only as
# flagged_user), `counted` whether it is in the population the voters are compared with
# (counting). A write that changes which voter, pair, outcome or time a vote has is noted as
# the old reading leaving and the new one arriving. `imported` is the battle's source (NULL
# when its battle is gone: the "arena" scope then reads every vote again). Notes are written
# only while the state row exists, so a site that never runs the test keeps none.
TABLES = """
CREATE TABLE battles_anomalyteststate (
    id smallint PRIMARY KEY CHECK (id = 1),
    definition text NOT NULL DEFAULT '',
    data bytea,
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- Arrays of integers that do not compress well: stored as they are, not compressed each run.
ALTER TABLE battles_anomalyteststate ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE TABLE battles_anomalyvotenote (
    id bigserial PRIMARY KEY,
    vote_id bigint NOT NULL,
    judge varchar(64) NOT NULL,
    address varchar(32) NOT NULL,
    model_a_id bigint NOT NULL,
    model_b_id bigint NOT NULL,
    winner varchar(16) NOT NULL,
    created_at timestamptz NOT NULL,
    imported boolean,
    tested smallint NOT NULL,
    counted smallint NOT NULL
);
"""

COLUMNS = "vote_id, judge, address, model_a_id, model_b_id, winner, created_at, imported, tested, counted"
TESTED = "({v}.anony AND {v}.judge <> '' AND {v}.excluded_reason IN ('', 'flagged_user'))"
COUNTED = "({v}.anony AND {v}.judge <> '' AND {v}.excluded_reason = '')"
IMPORTED = "(SELECT b.source = 'imported' FROM battles_battle b WHERE b.id = {v}.battle_id)"
READING = "{v}.id, {v}.judge, {v}.address, {v}.model_a_id, {v}.model_b_id, {v}.winner, {v}.created_at, " + IMPORTED
SAME = (
    "(o.judge, o.address, o.model_a_id, o.model_b_id, o.winner, o.created_at, o.battle_id) IS NOT DISTINCT FROM "
    "(n.judge, n.address, n.model_a_id, n.model_b_id, n.winner, n.created_at, n.battle_id)"
)


def _int(condition: str) -> str:
    return f"CASE WHEN {condition} THEN 1 ELSE 0 END"


def _body(statements: list[str]) -> str:
    inserts = "\n".join(f"INSERT INTO battles_anomalyvotenote ({COLUMNS}) {s};" for s in statements)
    return f"""
BEGIN
    IF EXISTS (SELECT 1 FROM battles_anomalyteststate) THEN
{inserts}
    END IF;
    RETURN NULL;
END"""


n_tested, n_counted = TESTED.format(v="n"), COUNTED.format(v="n")
o_tested, o_counted = TESTED.format(v="o"), COUNTED.format(v="o")
FUNCTIONS = {
    "insert": _body([f"SELECT {READING.format(v='n')}, 1, {_int(n_counted)} FROM new_rows n WHERE {n_tested}"]),
    "delete": _body([f"SELECT {READING.format(v='o')}, -1, -{_int(o_counted)} FROM old_rows o WHERE {o_tested}"]),
    "update": _body(
        [
            # The same reading: only whether it is tested or counted changed.
            f"SELECT {READING.format(v='n')}, "
            f"{_int(n_tested)} - {_int(o_tested)}, {_int(n_counted)} - {_int(o_counted)} "
            f"FROM new_rows n JOIN old_rows o ON o.id = n.id WHERE {SAME} "
            f"AND ({_int(n_tested)} <> {_int(o_tested)} OR {_int(n_counted)} <> {_int(o_counted)})",
            # Another reading: the old one leaves, the new one arrives.
            f"SELECT {READING.format(v='o')}, -1, -{_int(o_counted)} "
            f"FROM old_rows o JOIN new_rows n ON o.id = n.id WHERE NOT {SAME} AND {o_tested}",
            f"SELECT {READING.format(v='n')}, 1, {_int(n_counted)} "
            f"FROM new_rows n JOIN old_rows o ON o.id = n.id WHERE NOT {SAME} AND {n_tested}",
        ]
    ),
}
REFERENCING = {
    "insert": "REFERENCING NEW TABLE AS new_rows",
    "delete": "REFERENCING OLD TABLE AS old_rows",
    "update": "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
}


# Emptying the votes table notes nothing row by row: the state goes, and the next run reads
# every vote. (A load with the triggers disabled needs `detect_anomalous_voters --full`.)
TRUNCATED = """
CREATE FUNCTION battles_anomaly_note_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM battles_anomalyteststate;
    DELETE FROM battles_anomalyvotenote;
    RETURN NULL;
END $$;
CREATE TRIGGER battles_anomaly_note_truncate AFTER TRUNCATE ON battles_vote
FOR EACH STATEMENT EXECUTE FUNCTION battles_anomaly_note_truncate();
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # elsewhere every run of the test reads every vote
    schema_editor.execute(TABLES)
    schema_editor.execute(TRUNCATED)
    for event, body in FUNCTIONS.items():
        schema_editor.execute(
            f"CREATE FUNCTION battles_anomaly_note_{event}() RETURNS trigger LANGUAGE plpgsql AS $${body}$$"
        )
        schema_editor.execute(
            f"CREATE TRIGGER battles_anomaly_note_{event} AFTER {event.upper()} ON battles_vote "
            f"{REFERENCING[event]} FOR EACH STATEMENT EXECUTE FUNCTION battles_anomaly_note_{event}()"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for event in [*FUNCTIONS, "truncate"]:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS battles_anomaly_note_{event} ON battles_vote")
        schema_editor.execute(f"DROP FUNCTION IF EXISTS battles_anomaly_note_{event}()")
    schema_editor.execute("DROP TABLE IF EXISTS battles_anomalyvotenote, battles_anomalyteststate")


class Migration(migrations.Migration):
    dependencies = [
        ("battles", "0011_battle_stop_regenerate_share"),
    ]

    operations = [migrations.RunPython(create, drop)]
