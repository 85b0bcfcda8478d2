"""The street network's intersections, derived from the centreline segments, and the
city's list of street names the geocoder matches against.

Two differently named streets meet where a segment of one ends where a segment of the
other ends (the file's shared nodes). Each pair is stored once per meeting point, with
``name_a`` < ``name_b``: a pair meeting at several points (a loop, both carriageways of
a divided road) keeps each point. A street does not meet itself.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

# Ends are gathered into a temporary table with a GiST index, and two ends meet when
# they lie within SNAP_DEGREES (about a metre): most files store a shared node with the
# same coordinates, some a few decimetres apart. Differently named streets meet even when
# the names share a core ("FIRST ST" and "N FIRST ST", "ELM ST" and "ELM AVE"): people
# name such corners. Points of one pair closer than about 10 m are one meeting point.
SNAP_DEGREES = 0.00001
ENDS_SQL = (
    sa.text("DROP TABLE IF EXISTS pg_temp.segment_end"),
    sa.text(
        """
        CREATE TEMPORARY TABLE segment_end ON COMMIT DROP AS
        SELECT name, name_core, p
        FROM street_segment,
             LATERAL (VALUES (ST_StartPoint(geom)), (ST_EndPoint(geom))) AS e(p)
        WHERE dataset_id = :d
        GROUP BY name, name_core, p
        """
    ),
    sa.text("CREATE INDEX ON segment_end USING gist (p)"),
    sa.text("ANALYZE segment_end"),
)
BUILD_SQL = sa.text(
    """
    INSERT INTO street_intersection
        (jurisdiction_id, dataset_id, name_a, core_a, name_b, core_b, location)
    SELECT DISTINCT ON (a.name, b.name, ST_SnapToGrid(a.p, 0.0001))
           :j, CAST(:d AS integer), a.name, a.name_core, b.name, b.name_core, a.p
    FROM segment_end a
    JOIN segment_end b
      ON ST_DWithin(a.p, b.p, :snap) AND a.name < b.name
    ORDER BY a.name, b.name, ST_SnapToGrid(a.p, 0.0001), ST_Distance(a.p, b.p)
    """
)

REFRESH_SQL = (
    sa.text("DELETE FROM street_name WHERE jurisdiction_id = :j"),
    sa.text(
        """
        INSERT INTO street_name (jurisdiction_id, name, core, points, segments)
        SELECT :j, name, min(core), sum(points), sum(segments)
        FROM (
            SELECT street AS name, street_core AS core, count(*) AS points, 0 AS segments
            FROM address_point
            WHERE jurisdiction_id = :j AND street IS NOT NULL AND street_core IS NOT NULL
              AND street <> '' AND street_core <> ''
            GROUP BY street, street_core
            UNION ALL
            SELECT name, name_core, 0, count(*)
            FROM street_segment
            WHERE jurisdiction_id = :j AND name <> '' AND name_core <> ''
            GROUP BY name, name_core
        ) AS named
        GROUP BY name
        """
    ),
)


def build_intersections(session: Session, city_id: int, dataset_id: int) -> int:
    """Derive the intersections of the streets of dataset ``dataset_id``; their count."""
    for statement in ENDS_SQL:
        session.execute(statement, {"d": dataset_id})
    result = session.execute(BUILD_SQL, {"j": city_id, "d": dataset_id, "snap": SNAP_DEGREES})
    session.execute(ENDS_SQL[0])
    return result.rowcount


def refresh_street_names(session: Session, city_id: int) -> int:
    """Rebuild the city's ``street_name`` rows from its address points and segments;
    the number of distinct streets."""
    session.execute(REFRESH_SQL[0], {"j": city_id})
    return session.execute(REFRESH_SQL[1], {"j": city_id}).rowcount
