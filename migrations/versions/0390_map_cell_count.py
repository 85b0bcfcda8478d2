"""map_cell_count: request counts per map grid cell, kept by statement-level triggers

Revision ID: 0390
Revises: 0100
"""

import sqlalchemy as sa
from alembic import op

revision = "0390"
down_revision = "0100"
branch_labels = None
depends_on = None

# Every change is an upsert of signed deltas per cell (level L cells are 90 / 2^L degrees,
# see spatial/map_cells.py; levels 12, 14 and 16). Cells that empty out keep a row with n = 0: the rows stay
# bounded by the (cell, category, status) combinations ever seen, and no trigger has to
# scan the table for rows to delete.
DELTAS = """
WITH moves AS ({moves}),
delta AS (
    SELECT r.jurisdiction_id, l.level,
           floor(ST_X(r.location) / (90.0::float8 / (1 << l.level)))::int AS gx,
           floor(ST_Y(r.location) / (90.0::float8 / (1 << l.level)))::int AS gy,
           r.service_id, r.status, sum(r.sign)::int AS n,
           sum(r.sign * ST_X(r.location)) AS sum_lon, sum(r.sign * ST_Y(r.location)) AS sum_lat
    FROM moves r CROSS JOIN (VALUES (12), (14), (16)) AS l(level)
    WHERE r.location IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5, 6
)
"""

UPSERT = """
INSERT INTO map_cell_count AS m
    (jurisdiction_id, level, gx, gy, service_id, status, n, sum_lon, sum_lat)
SELECT * FROM delta WHERE n <> 0 OR sum_lon <> 0 OR sum_lat <> 0
ORDER BY 1, 2, 3, 4, 5, 6
ON CONFLICT (jurisdiction_id, level, gx, gy, service_id, status) DO UPDATE
SET n = m.n + EXCLUDED.n,
    sum_lon = m.sum_lon + EXCLUDED.sum_lon,
    sum_lat = m.sum_lat + EXCLUDED.sum_lat;
"""


def _upsert(moves: str) -> str:
    return DELTAS.format(moves=moves) + UPSERT


ROWS = "SELECT jurisdiction_id, service_id, status, location, {sign} AS sign FROM {table}"

# Only rows whose city, category, status or location changed move between cells; a
# routing or priority update adds nothing.
CHANGED = """
WITH pairs AS MATERIALIZED (
    SELECT o.jurisdiction_id AS oj, o.service_id AS os, o.status AS ost, o.location AS ol,
           n.jurisdiction_id AS nj, n.service_id AS ns, n.status AS nst, n.location AS nl
    FROM old_rows o JOIN new_rows n ON n.id = o.id
    WHERE (o.jurisdiction_id, o.service_id, o.status)
              IS DISTINCT FROM (n.jurisdiction_id, n.service_id, n.status)
       OR o.location IS DISTINCT FROM n.location
)
SELECT oj AS jurisdiction_id, os AS service_id, ost AS status, ol AS location, -1 AS sign
FROM pairs
UNION ALL
SELECT nj, ns, nst, nl, 1 FROM pairs"""

FUNCTIONS = {
    "map_cell_count_on_insert": _upsert(ROWS.format(sign=1, table="new_rows")),
    "map_cell_count_on_delete": _upsert(ROWS.format(sign=-1, table="old_rows")),
    "map_cell_count_on_update": _upsert(CHANGED),
    "map_cell_count_on_truncate": "DELETE FROM map_cell_count;",
}

TRIGGERS = {
    "map_cell_count_insert": (
        "AFTER INSERT",
        "REFERENCING NEW TABLE AS new_rows",
        "map_cell_count_on_insert",
    ),
    "map_cell_count_delete": (
        "AFTER DELETE",
        "REFERENCING OLD TABLE AS old_rows",
        "map_cell_count_on_delete",
    ),
    "map_cell_count_update": (
        "AFTER UPDATE",
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
        "map_cell_count_on_update",
    ),
    "map_cell_count_truncate": ("AFTER TRUNCATE", "", "map_cell_count_on_truncate"),
}


def upgrade() -> None:
    op.create_table(
        "map_cell_count",
        sa.Column("jurisdiction_id", sa.Integer(), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("gx", sa.Integer(), nullable=False),
        sa.Column("gy", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("sum_lon", sa.Float(), nullable=False),
        sa.Column("sum_lat", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdiction.id"],
            name=op.f("fk_map_cell_count_jurisdiction_id_jurisdiction"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["service.id"],
            name=op.f("fk_map_cell_count_service_id_service"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "jurisdiction_id",
            "level",
            "gx",
            "gy",
            "service_id",
            "status",
            name=op.f("pk_map_cell_count"),
        ),
    )
    op.create_index(
        op.f("ix_map_cell_count_service_id"), "map_cell_count", ["service_id"], unique=False
    )
    for name, body in FUNCTIONS.items():
        op.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"BEGIN\n{body}\nRETURN NULL;\nEND\n$$"
        )
    for name, (when, referencing, function) in TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER {name} {when} ON service_request {referencing} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        )
    # Requests that exist already (an upgraded installation).
    op.execute(_upsert(ROWS.format(sign=1, table="service_request")))


def downgrade() -> None:
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON service_request")
    for name in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    op.drop_index(op.f("ix_map_cell_count_service_id"), table_name="map_cell_count")
    op.drop_table("map_cell_count")
