"""(schema for this change: fill in, or delete this file and relink the chain)

Revision ID: 0510
Revises: 0500
"""

revision = "0510"
down_revision = "0500"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
