"""mail: intake addresses, mail settings, message templates, survey tokens,
unsubscribes, FAQ articles

Revision ID: 0100
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0100"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mail_config",
        sa.Column("jurisdiction_id", sa.Integer(), nullable=False),
        sa.Column("dispatch_email", sa.String(length=254), nullable=True),
        sa.Column("from_address", sa.String(length=254), nullable=True),
        sa.Column("reply_limit_per_hour", sa.Integer(), nullable=False),
        sa.Column("accept_limit_per_hour", sa.Integer(), nullable=False),
        sa.Column("link_secret", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdiction.id"],
            name=op.f("fk_mail_config_jurisdiction_id_jurisdiction"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("jurisdiction_id", name=op.f("pk_mail_config")),
    )
    op.create_table(
        "message_template",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("jurisdiction_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdiction.id"],
            name=op.f("fk_message_template_jurisdiction_id_jurisdiction"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_template")),
        sa.UniqueConstraint(
            "jurisdiction_id", "kind", name=op.f("uq_message_template_jurisdiction_id_kind")
        ),
    )
    op.create_index(
        op.f("ix_message_template_jurisdiction_id"),
        "message_template",
        ["jurisdiction_id"],
        unique=False,
    )
    op.create_table(
        "faq_article",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("jurisdiction_id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("topic", sa.String(length=100), nullable=True),
        sa.Column("service_id", sa.Integer(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("published", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdiction.id"],
            name=op.f("fk_faq_article_jurisdiction_id_jurisdiction"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["service.id"],
            name=op.f("fk_faq_article_service_id_service"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_faq_article")),
        sa.UniqueConstraint(
            "jurisdiction_id", "slug", name=op.f("uq_faq_article_jurisdiction_id_slug")
        ),
    )
    op.create_index(
        op.f("ix_faq_article_jurisdiction_id"), "faq_article", ["jurisdiction_id"], unique=False
    )
    op.create_index(op.f("ix_faq_article_service_id"), "faq_article", ["service_id"], unique=False)
    op.create_table(
        "mail_address",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("jurisdiction_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=254), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["department.id"],
            name=op.f("fk_mail_address_department_id_department"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdiction.id"],
            name=op.f("fk_mail_address_jurisdiction_id_jurisdiction"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["service.id"],
            name=op.f("fk_mail_address_service_id_service"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_address")),
        sa.UniqueConstraint("address", name=op.f("uq_mail_address_address")),
    )
    op.create_index(
        op.f("ix_mail_address_department_id"), "mail_address", ["department_id"], unique=False
    )
    op.create_index(
        op.f("ix_mail_address_jurisdiction_id"), "mail_address", ["jurisdiction_id"], unique=False
    )
    op.create_index(
        op.f("ix_mail_address_service_id"), "mail_address", ["service_id"], unique=False
    )
    op.create_table(
        "mail_unsubscribe",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("request_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["service_request.id"],
            name=op.f("fk_mail_unsubscribe_request_id_service_request"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_unsubscribe")),
    )
    op.create_index(op.f("ix_mail_unsubscribe_email"), "mail_unsubscribe", ["email"], unique=False)
    op.create_index(
        op.f("ix_mail_unsubscribe_request_id"), "mail_unsubscribe", ["request_id"], unique=False
    )
    op.create_table(
        "survey_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.BigInteger(), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["service_request.id"],
            name=op.f("fk_survey_token_request_id_service_request"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_token")),
        sa.UniqueConstraint("nonce", name=op.f("uq_survey_token_nonce")),
    )
    op.create_index(
        op.f("ix_survey_token_request_id"), "survey_token", ["request_id"], unique=False
    )
    op.create_index(
        "ix_inbound_email_sender_received",
        "inbound_email",
        ["mail_from", "received_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_inbound_email_sender_received", table_name="inbound_email")
    op.drop_index(op.f("ix_survey_token_request_id"), table_name="survey_token")
    op.drop_table("survey_token")
    op.drop_index(op.f("ix_mail_unsubscribe_request_id"), table_name="mail_unsubscribe")
    op.drop_index(op.f("ix_mail_unsubscribe_email"), table_name="mail_unsubscribe")
    op.drop_table("mail_unsubscribe")
    op.drop_index(op.f("ix_mail_address_service_id"), table_name="mail_address")
    op.drop_index(op.f("ix_mail_address_jurisdiction_id"), table_name="mail_address")
    op.drop_index(op.f("ix_mail_address_department_id"), table_name="mail_address")
    op.drop_table("mail_address")
    op.drop_index(op.f("ix_faq_article_service_id"), table_name="faq_article")
    op.drop_index(op.f("ix_faq_article_jurisdiction_id"), table_name="faq_article")
    op.drop_table("faq_article")
    op.drop_index(op.f("ix_message_template_jurisdiction_id"), table_name="message_template")
    op.drop_table("message_template")
    op.drop_table("mail_config")
