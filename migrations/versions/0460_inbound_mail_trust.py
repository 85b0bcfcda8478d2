"""Inbound mail is trusted only when the city's gateway vouches for its sender

Revision ID: 0460
Revises: 0450

Anyone can write any From: line, so a reply that names a request's reference in its
subject no longer joins that request on its word alone:

- ``inbound_email.sender_auth``: what the city's mail gateway said about the sender
  (``pass``, ``fail``, or ``none`` when no trusted ``Authentication-Results`` header
  spoke), ``sender_standing``: who the sender is to the request a reply names
  (reporter, follower, staff or stranger), ``raw``: the message as received, for staff,
  now that the published text drops quoted mail and signatures;
- ``inbound_email.mail_address_id`` and ``answered``: which intake address a message
  came to and whether it was answered, so that auto-replies are capped per intake address
  (``mail_config.address_reply_limit_per_hour``) as well as per sender;
- ``mail_config.trusted_authserv_id``: the gateway's authserv-id, the only one whose
  verdicts are believed;
- ``photo.public``: false for a photo that came with mail from an unverified sender. It
  stays with the request for staff and is never served publicly. Existing photos were
  public and stay so.
"""

import sqlalchemy as sa
from alembic import op

revision = "0460"
down_revision = "0450"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("inbound_email", sa.Column("sender_auth", sa.String(8)))
    op.add_column("inbound_email", sa.Column("sender_standing", sa.String(16)))
    op.add_column("inbound_email", sa.Column("raw", sa.LargeBinary()))
    op.add_column(
        "inbound_email",
        sa.Column(
            "mail_address_id",
            sa.Integer(),
            sa.ForeignKey(
                "mail_address.id",
                ondelete="SET NULL",
                name=op.f("fk_inbound_email_mail_address_id_mail_address"),
            ),
        ),
    )
    op.add_column(
        "inbound_email",
        sa.Column("answered", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_check_constraint(
        op.f("ck_inbound_email_sender_auth"),
        "inbound_email",
        "sender_auth IN ('pass','fail','none')",
    )
    op.create_check_constraint(
        op.f("ck_inbound_email_sender_standing"),
        "inbound_email",
        "sender_standing IN ('reporter','follower','staff','stranger')",
    )
    # The per-address hourly cap counts an address's recent answered messages.
    op.create_index(
        "ix_inbound_email_address_received",
        "inbound_email",
        ["mail_address_id", "received_at"],
    )
    op.add_column(
        "mail_config",
        sa.Column(
            "address_reply_limit_per_hour",
            sa.Integer(),
            nullable=False,
            server_default=sa.text("200"),
        ),
    )
    op.add_column("mail_config", sa.Column("trusted_authserv_id", sa.String(255)))
    op.add_column(
        "photo", sa.Column("public", sa.Boolean(), nullable=False, server_default=sa.true())
    )


def downgrade() -> None:
    op.drop_column("photo", "public")
    op.drop_column("mail_config", "trusted_authserv_id")
    op.drop_column("mail_config", "address_reply_limit_per_hour")
    op.drop_index("ix_inbound_email_address_received", table_name="inbound_email")
    op.drop_constraint(op.f("ck_inbound_email_sender_standing"), "inbound_email")
    op.drop_constraint(op.f("ck_inbound_email_sender_auth"), "inbound_email")
    op.drop_column("inbound_email", "answered")
    op.drop_column("inbound_email", "mail_address_id")
    op.drop_column("inbound_email", "raw")
    op.drop_column("inbound_email", "sender_standing")
    op.drop_column("inbound_email", "sender_auth")
