"""Moderation: hidden or redacted public text, hidden photos, reports held unpublished

Staff may hide a request's description or replace it with an edited text for the public
(the resident's own words stay in ``description``, for staff), and hide single photos.
A city may hold new reports (from e-mail, or from every channel) out of every public view
until a dispatcher confirms them. A held request is counted on the public map under the
pseudo-status ``held``, which the map leaves out, so the map's stored counts never show it.

Revision ID: 0500
Revises: 0490
"""

import sqlalchemy as sa
from alembic import op

revision = "0500"
down_revision = "0490"
branch_labels = None
depends_on = None

# The map cell triggers of migration 0390, with a held request's status read as 'held'.
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


def _status(held: str) -> str:
    """The request's status as the map counts it: 'held' while it is held."""
    return f"CASE WHEN {held} IS NOT NULL THEN 'held' ELSE {{status}} END"


ROWS = (
    "SELECT jurisdiction_id, service_id, "  # noqa: S608 - constants only
    + _status("held_at").format(status="status")
    + " AS status, location, {sign} AS sign FROM {table}"
)

# Only rows whose city, category, status (held counting as one) or location changed move
# between cells; a routing or priority update adds nothing.
CHANGED = f"""
WITH pairs AS MATERIALIZED (
    SELECT * FROM (
        SELECT o.jurisdiction_id AS oj, o.service_id AS os,
               {_status("o.held_at").format(status="o.status")} AS ost, o.location AS ol,
               n.jurisdiction_id AS nj, n.service_id AS ns,
               {_status("n.held_at").format(status="n.status")} AS nst, n.location AS nl
        FROM old_rows o JOIN new_rows n ON n.id = o.id
    ) p
    WHERE (oj, os, ost) IS DISTINCT FROM (nj, ns, nst) OR ol IS DISTINCT FROM nl
)
SELECT oj AS jurisdiction_id, os AS service_id, ost AS status, ol AS location, -1 AS sign
FROM pairs
UNION ALL
SELECT nj, ns, nst, nl, 1 FROM pairs"""  # noqa: S608

OLD_ROWS = "SELECT jurisdiction_id, service_id, status, location, {sign} AS sign FROM {table}"
OLD_CHANGED = """
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


def _functions(rows: str, changed: str) -> dict[str, str]:
    return {
        "map_cell_count_on_insert": _upsert(rows.format(sign=1, table="new_rows")),
        "map_cell_count_on_delete": _upsert(rows.format(sign=-1, table="old_rows")),
        "map_cell_count_on_update": _upsert(changed),
    }


def _replace_functions(functions: dict[str, str]) -> None:
    for name, body in functions.items():
        op.execute(
            f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"BEGIN\n{body}\nRETURN NULL;\nEND\n$$"
        )


def upgrade() -> None:
    op.add_column(
        "jurisdiction",
        sa.Column("moderation_hold", sa.String(length=8), server_default="none", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_jurisdiction_moderation_hold"),
        "jurisdiction",
        "moderation_hold IN ('none', 'email', 'all')",
    )
    op.add_column("service_request", sa.Column("held_at", sa.DateTime(timezone=True)))
    op.add_column("service_request", sa.Column("description_moderation", sa.String(length=16)))
    op.create_check_constraint(
        op.f("ck_service_request_description_moderation"),
        "service_request",
        "description_moderation IN ('hidden', 'redacted')",
    )
    op.add_column("service_request", sa.Column("public_description", sa.Text()))
    op.add_column("photo", sa.Column("hidden_at", sa.DateTime(timezone=True)))
    # No request is held yet: the stored counts stay right as they are.
    _replace_functions(_functions(ROWS, CHANGED))


def downgrade() -> None:
    # Held requests are counted under their real status again.
    op.execute("UPDATE service_request SET held_at = NULL WHERE held_at IS NOT NULL")
    _replace_functions(_functions(OLD_ROWS, OLD_CHANGED))
    op.drop_column("photo", "hidden_at")
    op.drop_column("service_request", "public_description")
    op.drop_constraint(
        op.f("ck_service_request_description_moderation"), "service_request", type_="check"
    )
    op.drop_column("service_request", "description_moderation")
    op.drop_column("service_request", "held_at")
    op.drop_constraint(op.f("ck_jurisdiction_moderation_hold"), "jurisdiction", type_="check")
    op.drop_column("jurisdiction", "moderation_hold")
