"""Zones and city boundaries cut into small pieces, for fast point-in-polygon look-ups.

A Neighborhood Council outline has about 800 vertices and a city boundary (the union of
its districts) 15,000. PostGIS tests a point against a whole polygon in time linear in
its vertices and, for a single point per statement, cannot reuse a prepared geometry: a
single ``ST_Covers(boundary, point)`` costs about 5 ms. Cut into pieces of at most
:data:`MAX_VERTICES` vertices (``ST_Subdivide``), the GiST index finds the one or two
pieces under the point and the exact test touches a few dozen vertices: well under a
millisecond (the technique PostGIS's documentation recommends for large polygons).

The pieces tile the original exactly (cut lines are shared edges), so a point is inside
or on the original if and only if it is inside or on some piece; a point on a cut line is
in two pieces of the same zone, so look-ups count distinct zones.

Row triggers on ``zone`` and ``jurisdiction`` (migration 0400) keep the pieces in step
with every write, whatever path made it (CLI import, admin upload, demo loader, SQL);
deleting a zone or a city deletes its pieces through the foreign key.
"""

from __future__ import annotations

import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy import BigInteger, ForeignKey
from sqlalchemy.orm import Mapped, Session, mapped_column

from spatial.models import Base

MAX_VERTICES = 64


class ZonePiece(Base):
    """A piece of a zone's polygon (maintained by triggers; never written by the app)."""

    __tablename__ = "zone_piece"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    zone_id: Mapped[int] = mapped_column(ForeignKey("zone.id", ondelete="CASCADE"), index=True)
    geom = mapped_column(Geometry("GEOMETRY", srid=4326, spatial_index=True), nullable=False)


class BoundaryPiece(Base):
    """A piece of a city's boundary (maintained by triggers; never written by the app)."""

    __tablename__ = "boundary_piece"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    jurisdiction_id: Mapped[int] = mapped_column(
        ForeignKey("jurisdiction.id", ondelete="CASCADE"), index=True
    )
    geom = mapped_column(Geometry("GEOMETRY", srid=4326, spatial_index=True), nullable=False)


# Whether the point (:lon, :lat) is in city :jid, as an SQL expression (also part of the
# routing's one-statement look-up for a new request).
IN_CITY_EXPR = """EXISTS (
    SELECT 1 FROM boundary_piece b
    WHERE b.jurisdiction_id = :jid
      AND ST_Covers(b.geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))
)"""
POINT_IN_CITY_SQL = sa.text(f"SELECT {IN_CITY_EXPR}")


def point_in_city(session: Session, jurisdiction_id: int, lon: float, lat: float) -> bool:
    """Is the point inside or on the city's boundary (``ST_Covers`` of the whole outline)?"""
    params = {"jid": jurisdiction_id, "lon": float(lon), "lat": float(lat)}
    return bool(session.execute(POINT_IN_CITY_SQL, params).scalar())
