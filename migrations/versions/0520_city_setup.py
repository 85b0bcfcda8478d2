"""A city set up without SQL: category location mode, default priority and SLA clock,
question defaults, "needs answers", password resets and re-routing jobs

Revision ID: 0520
Revises: 0510

- ``service.location_mode``: 'required' (a pin inside the city), 'optional', or 'none'
  (no place asked, such as an IT help-desk request).
- ``service.default_priority``: the priority of a new request when no rule sets one.
- ``service.sla_clock``: 'business' (the city's business hours; elapsed hours when the
  city has no calendar) or 'calendar' (elapsed hours).
- ``service_attribute.default_value``: taken when a channel that cannot ask (an intake
  e-mail address) files a request; without one the request "needs answers".
- ``service_request.needs_answers``: a required question is unanswered; the dispatcher
  asks the reporter.
- ``password_reset``: one-time, expiring links to set a new password (only a digest of
  the link's secret is kept).
- ``reroute_job``: the worker re-routes a city's open requests after a rule set or a
  zone layer version is published, and records its progress here for the admin page.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0520"
down_revision = "0510"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "service",
        sa.Column("location_mode", sa.String(length=8), server_default="required", nullable=False),
    )
    op.add_column(
        "service",
        sa.Column(
            "default_priority", sa.String(length=16), server_default="normal", nullable=False
        ),
    )
    op.add_column(
        "service",
        sa.Column("sla_clock", sa.String(length=8), server_default="business", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_service_location_mode"),
        "service",
        "location_mode IN ('required', 'optional', 'none')",
    )
    op.create_check_constraint(
        op.f("ck_service_default_priority"),
        "service",
        "default_priority IN ('low', 'normal', 'high', 'urgent')",
    )
    op.create_check_constraint(
        op.f("ck_service_sla_clock"), "service", "sla_clock IN ('business', 'calendar')"
    )
    op.add_column(
        "service_attribute",
        sa.Column("default_value", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.add_column(
        "service_request",
        sa.Column("needs_answers", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.create_table(
        "password_reset",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
            name=op.f("fk_password_reset_user_id_app_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_password_reset")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_password_reset_token_hash")),
    )
    op.create_index(op.f("ix_password_reset_user_id"), "password_reset", ["user_id"])
    op.create_table(
        "reroute_job",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("jurisdiction_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=8), server_default="queued", nullable=False),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.Column("done", sa.Integer(), server_default="0", nullable=False),
        sa.Column("moved", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('rules', 'layer')", name=op.f("ck_reroute_job_kind")),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed')",
            name=op.f("ck_reroute_job_status"),
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdiction.id"],
            name=op.f("fk_reroute_job_jurisdiction_id_jurisdiction"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reroute_job")),
    )
    op.create_index("ix_reroute_job_jurisdiction_id_id", "reroute_job", ["jurisdiction_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_reroute_job_jurisdiction_id_id", table_name="reroute_job")
    op.drop_table("reroute_job")
    op.drop_index(op.f("ix_password_reset_user_id"), table_name="password_reset")
    op.drop_table("password_reset")
    op.drop_column("service_request", "needs_answers")
    op.drop_column("service_attribute", "default_value")
    op.drop_constraint(op.f("ck_service_sla_clock"), "service", type_="check")
    op.drop_constraint(op.f("ck_service_default_priority"), "service", type_="check")
    op.drop_constraint(op.f("ck_service_location_mode"), "service", type_="check")
    op.drop_column("service", "sla_clock")
    op.drop_column("service", "default_priority")
    op.drop_column("service", "location_mode")
