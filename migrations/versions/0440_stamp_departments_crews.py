"""Departments and crews raise the settings stamp too

Revision ID: 0440
Revises: 0430

Routing keeps each city's published rules, departments and crews in process memory. It
told a changed set of departments and crews by counting them, and their highest ids, on
every routing read: a join of both tables for each new request, which missed an edit
that kept the count (a crew moved to another department, a renamed code). With the
trigger of migration 0420 on both tables, every committed change to them gives a new
settings stamp, which routing reads instead: one row by its key.
"""

from alembic import op

revision = "0440"
down_revision = "0430"
branch_labels = None
depends_on = None

TABLES = ("department", "crew")


def upgrade() -> None:
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER settings_stamp_raise "
            f"BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION settings_stamp_raise()"
        )


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS settings_stamp_raise ON {table}")
