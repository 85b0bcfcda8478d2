"""Retention periods per city, and photo originals that can be removed

Revision ID: 0490
Revises: 0480

A city keeps residents' contact data, private answers, inbound mail and photo originals
for a set number of days after a request is closed (NULL: kept). ``last_enforced_at``
lets several workers agree that the daily run for a city is done. A photo whose private
original was removed (by retention or an erasure) keeps its row and its public copies;
``original_removed_at`` says the original file is gone.
"""

import sqlalchemy as sa
from alembic import op

revision = "0490"
down_revision = "0480"
branch_labels = None
depends_on = None

PERIODS = ("contact_days", "answers_days", "raw_mail_days", "originals_days")


def upgrade() -> None:
    op.create_table(
        "retention_policy",
        sa.Column("jurisdiction_id", sa.Integer(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=True) for name in PERIODS),
        sa.Column("last_enforced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=True),
        *(
            sa.CheckConstraint(f"{name} > 0", name=op.f(f"ck_retention_policy_{name}"))
            for name in PERIODS
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdiction.id"],
            name=op.f("fk_retention_policy_jurisdiction_id_jurisdiction"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("jurisdiction_id", name=op.f("pk_retention_policy")),
    )
    op.add_column("photo", sa.Column("original_removed_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("photo", "original_removed_at")
    op.drop_table("retention_policy")
