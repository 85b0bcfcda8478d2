"""The whole service loop: conversations, reopening, escalation, crews told of their
work, requests without a place for internal customers, projects, category suggestions

Revision ID: 0560
Revises: 0550

- ``app_user.role`` may be 'requester': an internal customer (a staff member of another
  department) who files requests on the intranet and sees their own.
- ``jurisdiction.reopen_days`` (the reporter's window to say "not fixed") and
  ``digest_hour`` (the local hour of the departments' morning digest).
- ``department.escalation_email`` (the second level of an escalation) and
  ``staff_department.supervisor`` (the first level, and the digest).
- ``service.internal``: a category for staff only (the help desk).
- ``service_request``: the requester, reopen time and count, the reporter's last message,
  the escalation level and time, when the crew got and acknowledged it, its project, and
  the classifier's suggested category with its probability.
- ``faq_article.audience``: 'public' (residents) or 'staff' (the intranet).
- ``escalation_policy``, ``department_digest``, ``project``, ``project_milestone``,
  ``intranet_contact``, ``category_model``.
"""

import geoalchemy2
import sqlalchemy as sa
from alembic import op

revision = "0560"
down_revision = "0550"
branch_labels = None
depends_on = None

ROLES_BEFORE = "role IN ('agent','dispatcher','crew','planner','admin','install_admin')"
ROLES_AFTER = "role IN ('requester','agent','dispatcher','crew','planner','admin','install_admin')"


def upgrade() -> None:
    op.drop_constraint(op.f("ck_app_user_role"), "app_user", type_="check")
    op.create_check_constraint(op.f("ck_app_user_role"), "app_user", ROLES_AFTER)

    op.add_column(
        "jurisdiction",
        sa.Column("reopen_days", sa.Integer(), server_default="14", nullable=False),
    )
    op.add_column(
        "jurisdiction",
        sa.Column("digest_hour", sa.SmallInteger(), server_default="7", nullable=False),
    )
    op.add_column("department", sa.Column("escalation_email", sa.String(length=254), nullable=True))
    op.add_column(
        "staff_department",
        sa.Column("supervisor", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column(
        "service",
        sa.Column("internal", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column(
        "faq_article",
        sa.Column("audience", sa.String(length=8), server_default="public", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_faq_article_audience"), "faq_article", "audience IN ('public', 'staff')"
    )

    op.create_table(
        "project",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("jurisdiction_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="planned", nullable=False),
        sa.Column("target_date", sa.Date(), nullable=True),
        sa.Column(
            "area",
            geoalchemy2.types.Geometry(geometry_type="GEOMETRY", srid=4326, spatial_index=True),
            nullable=True,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("close_message", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('planned', 'active', 'on_hold', 'done', 'cancelled')",
            name=op.f("ck_project_status"),
        ),
        sa.ForeignKeyConstraint(["jurisdiction_id"], ["jurisdiction.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["owner_id"], ["app_user.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["department_id"], ["department.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_project_jurisdiction_id_status", "project", ["jurisdiction_id", "status"])
    op.create_table(
        "project_milestone",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_project_milestone_project_id"), "project_milestone", ["project_id"])

    op.add_column("service_request", sa.Column("requester_id", sa.Integer(), nullable=True))
    op.add_column(
        "service_request", sa.Column("reopened_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "service_request",
        sa.Column("reopen_count", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column(
        "service_request",
        sa.Column("reporter_message_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "service_request",
        sa.Column("escalation_level", sa.SmallInteger(), server_default="0", nullable=False),
    )
    op.add_column(
        "service_request", sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "service_request",
        sa.Column("crew_assigned_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "service_request",
        sa.Column("crew_acknowledged_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column("service_request", sa.Column("project_id", sa.Integer(), nullable=True))
    op.add_column("service_request", sa.Column("suggested_service_id", sa.Integer(), nullable=True))
    op.add_column("service_request", sa.Column("suggestion_confidence", sa.Float(), nullable=True))
    op.create_foreign_key(
        op.f("fk_service_request_requester_id_app_user"),
        "service_request",
        "app_user",
        ["requester_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_foreign_key(
        op.f("fk_service_request_project_id_project"),
        "service_request",
        "project",
        ["project_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_foreign_key(
        op.f("fk_service_request_suggested_service_id_service"),
        "service_request",
        "service",
        ["suggested_service_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index(op.f("ix_service_request_requester_id"), "service_request", ["requester_id"])
    op.create_index(op.f("ix_service_request_project_id"), "service_request", ["project_id"])

    op.create_table(
        "escalation_policy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("jurisdiction_id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=True),
        sa.Column("untriaged_minutes", sa.Integer(), nullable=True),
        sa.Column("when_overdue", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("level2_minutes", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "untriaged_minutes > 0", name=op.f("ck_escalation_policy_untriaged_minutes")
        ),
        sa.CheckConstraint("level2_minutes > 0", name=op.f("ck_escalation_policy_level2_minutes")),
        sa.ForeignKeyConstraint(["jurisdiction_id"], ["jurisdiction.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["service_id"], ["service.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "jurisdiction_id",
            "service_id",
            name=op.f("uq_escalation_policy_jurisdiction_id_service_id"),
            postgresql_nulls_not_distinct=True,
        ),
    )
    op.create_index(
        op.f("ix_escalation_policy_jurisdiction_id"), "escalation_policy", ["jurisdiction_id"]
    )
    op.create_table(
        "department_digest",
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column("sent_on", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(["department_id"], ["department.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("department_id"),
    )
    op.create_table(
        "intranet_contact",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("jurisdiction_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("phone", sa.String(length=50), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["jurisdiction_id"], ["jurisdiction.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_intranet_contact_jurisdiction_id"), "intranet_contact", ["jurisdiction_id"]
    )
    op.create_table(
        "category_model",
        sa.Column("jurisdiction_id", sa.Integer(), nullable=False),
        sa.Column("trained_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model", sa.LargeBinary(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("categories", sa.Integer(), nullable=False),
        sa.Column("top1", sa.Float(), nullable=True),
        sa.Column("top3", sa.Float(), nullable=True),
        sa.Column("baseline", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["jurisdiction_id"], ["jurisdiction.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("jurisdiction_id"),
    )


def downgrade() -> None:
    op.drop_table("category_model")
    op.drop_index(op.f("ix_intranet_contact_jurisdiction_id"), table_name="intranet_contact")
    op.drop_table("intranet_contact")
    op.drop_table("department_digest")
    op.drop_index(op.f("ix_escalation_policy_jurisdiction_id"), table_name="escalation_policy")
    op.drop_table("escalation_policy")
    op.drop_index(op.f("ix_service_request_project_id"), table_name="service_request")
    op.drop_index(op.f("ix_service_request_requester_id"), table_name="service_request")
    for fk in (
        "fk_service_request_suggested_service_id_service",
        "fk_service_request_project_id_project",
        "fk_service_request_requester_id_app_user",
    ):
        op.drop_constraint(op.f(fk), "service_request", type_="foreignkey")
    for column in (
        "suggestion_confidence",
        "suggested_service_id",
        "project_id",
        "crew_acknowledged_at",
        "crew_assigned_at",
        "escalated_at",
        "escalation_level",
        "reporter_message_at",
        "reopen_count",
        "reopened_at",
        "requester_id",
    ):
        op.drop_column("service_request", column)
    op.drop_index(op.f("ix_project_milestone_project_id"), table_name="project_milestone")
    op.drop_table("project_milestone")
    op.drop_index("ix_project_jurisdiction_id_status", table_name="project")
    op.drop_table("project")
    op.drop_constraint(op.f("ck_faq_article_audience"), "faq_article", type_="check")
    op.drop_column("faq_article", "audience")
    op.drop_column("service", "internal")
    op.drop_column("staff_department", "supervisor")
    op.drop_column("department", "escalation_email")
    op.drop_column("jurisdiction", "digest_hour")
    op.drop_column("jurisdiction", "reopen_days")
    op.execute("UPDATE app_user SET role = 'agent' WHERE role = 'requester'")
    op.drop_constraint(op.f("ck_app_user_role"), "app_user", type_="check")
    op.create_check_constraint(op.f("ck_app_user_role"), "app_user", ROLES_BEFORE)
