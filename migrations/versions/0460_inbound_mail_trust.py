"""(schema for this change: fill in, or delete this file and relink the chain)

Revision ID: 0460
Revises: 0450
"""

revision = "0460"
down_revision = "0450"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
