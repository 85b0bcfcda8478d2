"""Cities apart: install administrators above city admins, Open311 alias ids per city

An admin with no city administered every city; that is now the explicit role
``install_admin`` (never tied to a city). Other staff with no city worked in every city;
they now belong to the city created first (none is created here when no city exists:
such an account works in the install's default city). ``jurisdiction.open311_ids``
holds the ids besides the slug that name a city in Open311 calls ("lacity.org"), and
``jurisdiction.host`` a host name of the city's own for its pages.

Revision ID: 0470
Revises: 0460
"""

import sqlalchemy as sa
from alembic import op

revision = "0470"
down_revision = "0460"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "jurisdiction",
        sa.Column("open311_ids", sa.ARRAY(sa.Text()), server_default="{}", nullable=False),
    )
    op.add_column("jurisdiction", sa.Column("host", sa.String(length=253), nullable=True))
    op.create_unique_constraint(op.f("uq_jurisdiction_host"), "jurisdiction", ["host"])
    op.drop_constraint(op.f("ck_app_user_role"), "app_user", type_="check")
    op.create_check_constraint(
        op.f("ck_app_user_role"),
        "app_user",
        "role IN ('agent','dispatcher','crew','planner','admin','install_admin')",
    )
    op.execute(
        "UPDATE app_user SET role = 'install_admin' WHERE role = 'admin' AND jurisdiction_id IS NULL"
    )
    op.execute(
        "UPDATE app_user SET jurisdiction_id = "
        "(SELECT id FROM jurisdiction ORDER BY created_at, id LIMIT 1) "
        "WHERE jurisdiction_id IS NULL AND role <> 'install_admin'"
    )
    op.create_check_constraint(
        op.f("ck_app_user_install_admin_no_city"),
        "app_user",
        "role <> 'install_admin' OR jurisdiction_id IS NULL",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_app_user_install_admin_no_city"), "app_user", type_="check")
    op.execute("UPDATE app_user SET role = 'admin' WHERE role = 'install_admin'")
    op.drop_constraint(op.f("ck_app_user_role"), "app_user", type_="check")
    op.create_check_constraint(
        op.f("ck_app_user_role"),
        "app_user",
        "role IN ('agent','dispatcher','crew','planner','admin')",
    )
    op.drop_constraint(op.f("uq_jurisdiction_host"), "jurisdiction", type_="unique")
    op.drop_column("jurisdiction", "host")
    op.drop_column("jurisdiction", "open311_ids")
