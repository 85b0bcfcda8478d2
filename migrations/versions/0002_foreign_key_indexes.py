"""foreign key indexes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 14:01:04.592929
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_inbound_email_request_id"), "inbound_email", ["request_id"], unique=False
    )
    op.create_index(
        op.f("ix_service_request_duplicate_of_id"),
        "service_request",
        ["duplicate_of_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_service_request_rule_id"), "service_request", ["rule_id"], unique=False
    )
    op.create_index(
        op.f("ix_service_request_zone_id"), "service_request", ["zone_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_service_request_zone_id"), table_name="service_request")
    op.drop_index(op.f("ix_service_request_rule_id"), table_name="service_request")
    op.drop_index(op.f("ix_service_request_duplicate_of_id"), table_name="service_request")
    op.drop_index(op.f("ix_inbound_email_request_id"), table_name="inbound_email")
