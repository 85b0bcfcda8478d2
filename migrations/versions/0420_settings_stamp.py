"""settings_stamp: one version number for the catalog and the mail settings

Revision ID: 0420
Revises: 0410

The Open311 POST keeps cities, categories and mail settings in process memory for as
long as this number is unchanged. Before, it hashed the row version of every row of
those tables on each POST, a cost that grew with the size of a city's catalog.

Each statement that writes to one of those tables raises the version first (a BEFORE
statement trigger), in its own transaction: the new number becomes visible when, and
only when, the change does. Taken before any row of those tables, the stamp row's lock
orders every writer the same way, so two writers cannot deadlock over it.
"""

import sqlalchemy as sa
from alembic import op

revision = "0420"
down_revision = "0410"
branch_labels = None
depends_on = None

# Constant here: a later migration that stamps another table adds its own trigger.
TABLES = (
    "jurisdiction",
    "service",
    "service_attribute",
    "mail_config",
    "mail_address",
    "message_template",
)


def upgrade() -> None:
    op.create_table(
        "settings_stamp",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_settings_stamp_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settings_stamp")),
    )
    op.execute("INSERT INTO settings_stamp (id, version) VALUES (1, 1)")
    op.execute(
        "CREATE FUNCTION settings_stamp_raise() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        "BEGIN\nUPDATE settings_stamp SET version = version + 1 WHERE id = 1;\n"
        "RETURN NULL;\nEND\n$$"
    )
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER settings_stamp_raise "
            f"BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION settings_stamp_raise()"
        )


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS settings_stamp_raise ON {table}")
    op.execute("DROP FUNCTION IF EXISTS settings_stamp_raise()")
    op.drop_table("settings_stamp")
