"""No double booking, guaranteed by PostgreSQL: two active bookings of one room, or of one
person, can never overlap in time, whatever the application does (concurrent enrolments,
rescheduling, admin edits). SQLite (the embedded default of `make run`) has no exclusion
constraints; there the services' checks and SQLite's single writer apply."""

from django.db import migrations

CONSTRAINTS = [
    ("scheduling_roombooking", "room_id", "room_booking_no_overlap"),
    ("scheduling_staffbooking", "user_id", "staff_booking_no_overlap"),
]


def add(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    for table, column, name in CONSTRAINTS:
        schema_editor.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {name} EXCLUDE USING gist "
            f"({column} WITH =, tstzrange(begin, until, '[)') WITH &&) WHERE (active)"
        )


def remove(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, _, name in CONSTRAINTS:
        schema_editor.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("scheduling", "0001_initial")]
    operations = [migrations.RunPython(add, remove)]
