"""(schema for this change: fill in, or delete this file and relink the chain)

Revision ID: 0490
Revises: 0480
"""

revision = "0490"
down_revision = "0480"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
