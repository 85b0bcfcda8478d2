"""(schema for this change: fill in, or delete this file and relink the chain)

Revision ID: 0470
Revises: 0460
"""

revision = "0470"
down_revision = "0460"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
