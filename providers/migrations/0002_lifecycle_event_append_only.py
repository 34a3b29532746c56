"""Make the lifecycle log append-only in the database itself on PostgreSQL.

The model refuses updates and deletes too, but a trigger also stops raw SQL and bulk
queries. TRUNCATE (used only by test teardown) is not a row operation and still works.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION providers_lifecycleevent_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'providers_lifecycleevent is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER providers_lifecycleevent_append_only
    BEFORE UPDATE OR DELETE ON providers_lifecycleevent
    FOR EACH ROW EXECUTE FUNCTION providers_lifecycleevent_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS providers_lifecycleevent_append_only ON providers_lifecycleevent;
DROP FUNCTION IF EXISTS providers_lifecycleevent_append_only();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("providers", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
