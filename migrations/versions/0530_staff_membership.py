"""Staff membership: placeholder, filled in with the membership tables

Revision ID: 0530
Revises: 0520
"""

revision = "0530"
down_revision = "0520"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
