"""The admin audit log (admin_event): who changed a city's set-up, when, and what

Revision ID: 0510
Revises: 0500

Rules, zone layers, users, API keys, templates, the catalogue and the mail and city
settings change through the admin pages and the command line; each change writes one
row here in its own transaction, so a city can tell who changed what and when.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0510"
down_revision = "0500"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "admin_event",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor_label", sa.String(length=200), nullable=False),
        sa.Column("jurisdiction_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=64), nullable=False),
        sa.Column("object_id", sa.String(length=200), nullable=True),
        sa.Column("what", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"],
            ["app_user.id"],
            name=op.f("fk_admin_event_actor_id_app_user"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdiction.id"],
            name=op.f("fk_admin_event_jurisdiction_id_jurisdiction"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_event")),
    )
    op.create_index("ix_admin_event_jurisdiction_id_id", "admin_event", ["jurisdiction_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_admin_event_jurisdiction_id_id", table_name="admin_event")
    op.drop_table("admin_event")
