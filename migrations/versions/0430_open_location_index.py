"""A GiST index of open requests' locations, for the duplicate search

Revision ID: 0430
Revises: 0420

A new report looks for open requests of its category near its pin. Through the GiST
index of every request's location it fetched each request in the search box, closed
ones included (most of a city's history), to keep the open ones.
"""

from alembic import op

revision = "0430"
down_revision = "0420"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX ix_service_request_open_location ON service_request USING gist "
        "(location) WHERE status IN ('new', 'acknowledged', 'in_progress')"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_service_request_open_location")
