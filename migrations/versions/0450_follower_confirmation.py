"""Followers confirm their address; unsubscribing is per kind of message and per city

Revision ID: 0450
Revises: 0440

A follow is stored unconfirmed and a confirmation link is mailed to the address; only
a confirmed follower gets updates. Follows made before this version were already sent
updates, so they count as confirmed from when they were made. ``confirm_sent_at`` says
when the last confirmation went out, so that following again does not mail it again
and again.

An unsubscribe can now name a kind of message (a dispatcher who stops dispatcher alerts
still gets crew assignments) and the city it was asked of. Existing rows name neither,
so they keep meaning what they meant: every kind, from every city.
"""

import sqlalchemy as sa
from alembic import op

revision = "0450"
down_revision = "0440"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("follower", sa.Column("confirmed_at", sa.DateTime(timezone=True)))
    op.add_column("follower", sa.Column("confirm_sent_at", sa.DateTime(timezone=True)))
    op.execute("UPDATE follower SET confirmed_at = created_at")
    op.add_column("mail_unsubscribe", sa.Column("kind", sa.String(32)))
    op.add_column("mail_unsubscribe", sa.Column("jurisdiction_id", sa.Integer()))
    op.create_foreign_key(
        op.f("fk_mail_unsubscribe_jurisdiction_id_jurisdiction"),
        "mail_unsubscribe",
        "jurisdiction",
        ["jurisdiction_id"],
        ["id"],
        ondelete="CASCADE",
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("fk_mail_unsubscribe_jurisdiction_id_jurisdiction"),
        "mail_unsubscribe",
        type_="foreignkey",
    )
    op.drop_column("mail_unsubscribe", "jurisdiction_id")
    op.drop_column("mail_unsubscribe", "kind")
    op.drop_column("follower", "confirm_sent_at")
    op.drop_column("follower", "confirmed_at")
