"""(schema for this change: fill in, or delete this file and relink the chain)

Revision ID: 0500
Revises: 0490
"""

revision = "0500"
down_revision = "0490"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
