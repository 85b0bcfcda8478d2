"""The street network's intersections, derived from the centreline segments.

Two differently named streets meet where a segment of one ends where a segment of the
other ends (the file's shared nodes). Each pair is stored once per meeting point, with
``name_a`` < ``name_b``.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

BUILD_SQL = sa.text(
    """
    INSERT INTO street_intersection
        (jurisdiction_id, dataset_id, name_a, core_a, name_b, core_b, location)
    WITH ends AS (
        SELECT name, name_core, ST_SnapToGrid(ST_StartPoint(geom), 0.000001) AS p
        FROM street_segment WHERE dataset_id = :d
        UNION
        SELECT name, name_core, ST_SnapToGrid(ST_EndPoint(geom), 0.000001)
        FROM street_segment WHERE dataset_id = :d
    )
    SELECT DISTINCT :j, CAST(:d AS integer), a.name, a.name_core, b.name, b.name_core, a.p
    FROM ends a JOIN ends b ON a.p = b.p AND a.name < b.name
    """
)


def build_intersections(session: Session, city_id: int, dataset_id: int) -> int:
    """Derive the intersections of the streets of dataset ``dataset_id``; their count."""
    result = session.execute(BUILD_SQL, {"j": city_id, "d": dataset_id})
    return result.rowcount


def refresh_street_names(session: Session, city_id: int) -> int:
    """Rebuild the city's ``street_name`` rows from its address points and segments."""
    raise NotImplementedError
