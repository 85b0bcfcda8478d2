"""A routing rule may leave the priority to the category (routing_rule.priority NULL)

Revision ID: 0540
Revises: 0530

A rule without a priority gives a new request its category's default priority
(``service.default_priority``), so a city sets "urgent" once on the category instead of
on every rule that routes it. Existing rules keep the priority they name.
"""

import sqlalchemy as sa
from alembic import op

revision = "0540"
down_revision = "0530"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column("routing_rule", "priority", existing_type=sa.String(length=16), nullable=True)


def downgrade() -> None:
    op.execute("UPDATE routing_rule SET priority = 'normal' WHERE priority IS NULL")
    op.alter_column("routing_rule", "priority", existing_type=sa.String(length=16), nullable=False)
