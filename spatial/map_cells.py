"""Request counts per map grid cell, kept current by triggers, for the low-zoom city map.

At city zoom the public map shows counts per grid cell, not pins. Counting a million
requests per map move takes half a second even on a narrow table (measured: 270-600 ms
on this class of machine), so the counts are kept ready in ``map_cell_count``: one row per
(city, grid level, cell, category, status) with the number of requests and the sums of
their coordinates (for the clusters' centre of mass).

Statement-level triggers on ``service_request`` (migration 0390) keep it exact inside the
writing transaction: ``INSERT``/``COPY`` add, ``DELETE`` subtracts, ``UPDATE`` moves the
rows whose city, category, status or location changed, ``TRUNCATE`` empties it. They work
on transition tables, so a 50,000-row ``COPY`` costs one grouped upsert, not 50,000.

Grid cells are aligned squares in degrees: level ``L`` has cells of ``90 / 2**L`` degrees,
about 64 screen pixels at zoom ``L``; the cell of a coarser level ``Z`` is the level-``L``
cell shifted right by ``L - Z`` bits, so one table serves every zoom up to ``L``.
"""

from __future__ import annotations

import math

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

from spatial.models import Base

LEVELS = (12, 14, 16)
# The status a held request (records.moderation) is counted under (migration 0500): the
# public map leaves these cells out, so a held request shows nowhere on it.
HELD_STATUS = "held"


def cell_size(level: int) -> float:
    """Side of a level's grid cell in degrees (a power-of-two fraction: exact in floats)."""
    return 90.0 / 2**level


def cell_of(lon: float, lat: float, level: int) -> tuple[int, int]:
    """The (gx, gy) cell of a point at ``level``; the same formula the triggers use."""
    size = cell_size(level)
    return math.floor(lon / size), math.floor(lat / size)


def cluster_level(zoom: int) -> int:
    """The grid level of the clusters shown at ``zoom``: about 64 px cells, but never finer
    than the finest stored level (at zoom 17 the cells are 128 px)."""
    return min(zoom, LEVELS[-1])


def level_for_zoom(zoom: int) -> int | None:
    """The stored level that serves clusters of level ``zoom`` (the coarsest one that is at
    least as fine), or None when every stored level is coarser."""
    fits = [level for level in LEVELS if level >= zoom]
    return min(fits) if fits else None


class MapCellCount(Base):
    """Requests of one category and status in one grid cell (maintained by triggers)."""

    __tablename__ = "map_cell_count"

    jurisdiction_id: Mapped[int] = mapped_column(
        sa.ForeignKey("jurisdiction.id", ondelete="CASCADE"), primary_key=True
    )
    level: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True)
    gx: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    gy: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    service_id: Mapped[int] = mapped_column(
        sa.ForeignKey("service.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    status: Mapped[str] = mapped_column(sa.String(20), primary_key=True)
    n: Mapped[int] = mapped_column(sa.Integer)
    sum_lon: Mapped[float] = mapped_column(sa.Float)
    sum_lat: Mapped[float] = mapped_column(sa.Float)


# The counts as they should be, computed from scratch (for repairs and for tests); a
# NULL :j means every city.
FRESH_COUNTS = """
SELECT r.jurisdiction_id, l.level,
       floor(ST_X(r.location) / (90.0::float8 / (1 << l.level)))::int AS gx,
       floor(ST_Y(r.location) / (90.0::float8 / (1 << l.level)))::int AS gy,
       r.service_id, CASE WHEN r.held_at IS NOT NULL THEN 'held' ELSE r.status END AS status,
       count(*)::int AS n, sum(ST_X(r.location)) AS sum_lon, sum(ST_Y(r.location)) AS sum_lat
FROM service_request r CROSS JOIN (VALUES (12), (14), (16)) AS l(level)
WHERE r.location IS NOT NULL
  AND (CAST(:j AS integer) IS NULL OR r.jurisdiction_id = CAST(:j AS integer))
GROUP BY 1, 2, 3, 4, 5, 6
"""

DELETE_SQL = sa.text(
    "DELETE FROM map_cell_count "
    "WHERE CAST(:j AS integer) IS NULL OR jurisdiction_id = CAST(:j AS integer)"
)
REBUILD_SQL = sa.text(
    "INSERT INTO map_cell_count (jurisdiction_id, level, gx, gy, service_id, status, "
    "n, sum_lon, sum_lat) " + FRESH_COUNTS
)
DRIFT_SQL = sa.text(
    # Constants only, joined at import time; every value is a bound parameter.
    "WITH fresh AS ("  # noqa: S608
    + FRESH_COUNTS
    + """)
    SELECT jurisdiction_id, level, gx, gy, service_id, status,
           f.n AS fresh_n, m.n AS stored_n
    FROM fresh f
    FULL JOIN (SELECT * FROM map_cell_count WHERE n <> 0) m
        USING (jurisdiction_id, level, gx, gy, service_id, status)
    WHERE f.n IS DISTINCT FROM m.n
       OR abs(f.sum_lon - m.sum_lon) > 1e-6 OR abs(f.sum_lat - m.sum_lat) > 1e-6
    ORDER BY 1, 2, 3, 4, 5, 6
    """
)


def rebuild(session: Session, jurisdiction_id: int | None = None) -> int:
    """Recount from ``service_request`` (all cities, or one); returns the rows written.

    Only needed if the triggers were bypassed (e.g. ``session_replication_role``).
    """
    session.execute(DELETE_SQL, {"j": jurisdiction_id})
    return session.execute(REBUILD_SQL, {"j": jurisdiction_id}).rowcount


def drift(session: Session) -> list[tuple]:
    """Cells whose stored count differs from a fresh count (empty when all is well)."""
    return [tuple(r) for r in session.execute(DRIFT_SQL, {"j": None}).all()]
