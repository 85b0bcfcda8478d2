"""(schema for this change: fill in, or delete this file and relink the chain)

Revision ID: 0480
Revises: 0470
"""

revision = "0480"
down_revision = "0470"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
