"""Followers confirm their address before anything is sent to them

Revision ID: 0450
Revises: 0440

A follow is stored unconfirmed and a confirmation link is mailed to the address; only
a confirmed follower gets updates. Follows made before this version were already sent
updates, so they count as confirmed from when they were made.
"""

import sqlalchemy as sa
from alembic import op

revision = "0450"
down_revision = "0440"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("follower", sa.Column("confirmed_at", sa.DateTime(timezone=True)))
    op.execute("UPDATE follower SET confirmed_at = created_at")


def downgrade() -> None:
    op.drop_column("follower", "confirmed_at")
