"""Staff membership: a user in any number of crews and departments

Revision ID: 0530
Revises: 0520

- ``staff_crew(user_id, crew_id)``: the crews a user works in (a crew member sees the
  crew's work; crew assignment mail goes to the crew's active members).
- ``staff_department(user_id, department_id)``: the departments a user works for (their
  internal notes; a dispatcher or agent in departments works those departments' requests
  and the central queue).
- The single ``app_user.crew_id`` and ``app_user.department_id`` move into these tables
  and are dropped. A downgrade keeps one crew and one department per user (the lowest id).
"""

import sqlalchemy as sa
from alembic import op

revision = "0530"
down_revision = "0520"
branch_labels = None
depends_on = None

# (table, column, referred table)
LINKS = (("staff_crew", "crew_id", "crew"), ("staff_department", "department_id", "department"))
COPY_IN = {
    "staff_crew": "INSERT INTO staff_crew (user_id, crew_id) "
    "SELECT id, crew_id FROM app_user WHERE crew_id IS NOT NULL",
    "staff_department": "INSERT INTO staff_department (user_id, department_id) "
    "SELECT id, department_id FROM app_user WHERE department_id IS NOT NULL",
}
COPY_OUT = {
    "staff_crew": "UPDATE app_user u SET crew_id = m.first FROM "
    "(SELECT user_id, min(crew_id) AS first FROM staff_crew GROUP BY user_id) m "
    "WHERE m.user_id = u.id",
    "staff_department": "UPDATE app_user u SET department_id = m.first FROM "
    "(SELECT user_id, min(department_id) AS first FROM staff_department GROUP BY user_id) m "
    "WHERE m.user_id = u.id",
}


def upgrade() -> None:
    for table, column, referred in LINKS:
        op.create_table(
            table,
            sa.Column("user_id", sa.Integer(), nullable=False),
            sa.Column(column, sa.Integer(), nullable=False),
            sa.ForeignKeyConstraint(
                ["user_id"],
                ["app_user.id"],
                name=op.f(f"fk_{table}_user_id_app_user"),
                ondelete="CASCADE",
            ),
            sa.ForeignKeyConstraint(
                [column],
                [f"{referred}.id"],
                name=op.f(f"fk_{table}_{column}_{referred}"),
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("user_id", column, name=op.f(f"pk_{table}")),
        )
        op.create_index(op.f(f"ix_{table}_{column}"), table, [column], unique=False)
        op.execute(COPY_IN[table])
        op.drop_column("app_user", column)


def downgrade() -> None:
    for table, column, referred in LINKS:
        op.add_column("app_user", sa.Column(column, sa.Integer(), nullable=True))
        op.create_foreign_key(
            op.f(f"fk_app_user_{column}_{referred}"),
            "app_user",
            referred,
            [column],
            ["id"],
            ondelete="SET NULL",
        )
        op.execute(COPY_OUT[table])
        op.drop_index(op.f(f"ix_{table}_{column}"), table_name=table)
        op.drop_table(table)
