"""service_request.reassigned_at: a dispatcher's reassignment survives bulk re-routing

Revision ID: 0410
Revises: 0400
"""

import sqlalchemy as sa
from alembic import op

revision = "0410"
down_revision = "0400"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "service_request", sa.Column("reassigned_at", sa.DateTime(timezone=True), nullable=True)
    )
    # Requests reassigned before this column existed: their last reassignment, unless a
    # later one-by-one routing (a "routed" event) replaced it.
    op.execute(
        """
        UPDATE service_request r SET reassigned_at = e.at
        FROM (
            SELECT request_id, max(at) AS at FROM request_event
            WHERE kind = 'reassigned' GROUP BY request_id
        ) e
        WHERE e.request_id = r.id AND (r.routed_at IS NULL OR r.routed_at <= e.at)
        """
    )


def downgrade() -> None:
    op.drop_column("service_request", "reassigned_at")
