"""Models of a city's places: imported reference sets (address points, street centrelines
with address ranges, asset layers), the intersections derived from the streets, and the
assets. Imported by :mod:`spatial.models`; the logic lives in :mod:`places`.

A re-import replaces a city's set as a new :class:`PlaceDataset` version: the new rows are
written, then the old set's rows are deleted in the same transaction, and the dataset row
of every version stays as the import's record (who, when, which file, counts).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from spatial.models import TS, Base, ServiceRequest, now_utc

# An asset's history page lists the requests about it: keep that an index look-up.
sa.Index(
    "ix_service_request_asset",
    ServiceRequest.__table__.c.asset_layer_id,
    ServiceRequest.__table__.c.asset_ref,
    postgresql_where=ServiceRequest.__table__.c.asset_ref.isnot(None),
)

PLACE_KINDS = ("addresses", "streets", "assets")


class PlaceDataset(Base):
    """One import of a city's address points, streets, or one asset layer's assets."""

    __tablename__ = "place_dataset"
    __table_args__ = (
        sa.CheckConstraint("kind IN ('addresses', 'streets', 'assets')", name="kind"),
        sa.Index("ix_place_dataset_city_kind", "jurisdiction_id", "kind", "version"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    jurisdiction_id: Mapped[int] = mapped_column(
        sa.ForeignKey("jurisdiction.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(sa.String(16))
    # Only for kind 'assets': the layer this set belongs to.
    asset_layer_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("asset_layer.id", ondelete="CASCADE")
    )
    # 1, 2, ... per (city, kind, layer); the highest is the current set.
    version: Mapped[int] = mapped_column(sa.Integer)
    source_name: Mapped[str] = mapped_column(sa.String(500))
    # The column mapping used ({"number": "ADDR_NUM", ...}).
    mapping: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    rows_read: Mapped[int] = mapped_column(sa.Integer, default=0)
    rows_written: Mapped[int] = mapped_column(sa.Integer, default=0)
    rows_bad: Mapped[int] = mapped_column(sa.Integer, default=0)
    imported_at: Mapped[datetime] = mapped_column(TS, default=now_utc)
    # The staff member's e-mail, or "cli" / "demo".
    imported_by: Mapped[str] = mapped_column(sa.String(254))


class StreetSegment(Base):
    """A street centreline segment with its address ranges, for interpolation.

    ``name`` is the normalised full name ("S FIGUEROA ST"); ``name_core`` the name without
    directions and type ("FIGUEROA"), trigram-indexed. Ranges may be missing (a segment
    without addresses still makes intersections).
    """

    __tablename__ = "street_segment"
    __table_args__ = (
        sa.Index(
            "ix_street_segment_name_core_trgm",
            "name_core",
            postgresql_using="gin",
            postgresql_ops={"name_core": "gin_trgm_ops"},
        ),
        sa.Index("ix_street_segment_city_name_core", "jurisdiction_id", "name_core"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    jurisdiction_id: Mapped[int] = mapped_column(
        sa.ForeignKey("jurisdiction.id", ondelete="CASCADE")
    )
    dataset_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("place_dataset.id", ondelete="SET NULL")
    )
    source_id: Mapped[str | None] = mapped_column(sa.String(100))
    name: Mapped[str] = mapped_column(sa.String(200))
    name_core: Mapped[str] = mapped_column(sa.String(200))
    from_left: Mapped[int | None] = mapped_column(sa.Integer)
    to_left: Mapped[int | None] = mapped_column(sa.Integer)
    from_right: Mapped[int | None] = mapped_column(sa.Integer)
    to_right: Mapped[int | None] = mapped_column(sa.Integer)
    zip_left: Mapped[str | None] = mapped_column(sa.String(10))
    zip_right: Mapped[str | None] = mapped_column(sa.String(10))
    geom = mapped_column(Geometry("LINESTRING", srid=4326, spatial_index=True), nullable=False)


class StreetIntersection(Base):
    """Where two differently named streets meet, derived from the segments' shared ends.

    Each pair is stored once with ``name_a`` < ``name_b``.
    """

    __tablename__ = "street_intersection"
    __table_args__ = (
        sa.Index(
            "ix_street_intersection_core_a_trgm",
            "core_a",
            postgresql_using="gin",
            postgresql_ops={"core_a": "gin_trgm_ops"},
        ),
        sa.Index(
            "ix_street_intersection_core_b_trgm",
            "core_b",
            postgresql_using="gin",
            postgresql_ops={"core_b": "gin_trgm_ops"},
        ),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    jurisdiction_id: Mapped[int] = mapped_column(
        sa.ForeignKey("jurisdiction.id", ondelete="CASCADE"), index=True
    )
    dataset_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("place_dataset.id", ondelete="SET NULL")
    )
    name_a: Mapped[str] = mapped_column(sa.String(200))
    core_a: Mapped[str] = mapped_column(sa.String(200))
    name_b: Mapped[str] = mapped_column(sa.String(200))
    core_b: Mapped[str] = mapped_column(sa.String(200))
    location = mapped_column(Geometry("POINT", srid=4326, spatial_index=True), nullable=False)


class StreetName(Base):
    """Every distinct street of a city, from its address points and its segments.

    The geocoder matches a typed name against these few thousand rows by trigram, then
    looks up points and segments by the exact ``core`` (btree), instead of running the
    fuzzy match over every address point. Rebuilt after each import
    (places.network.refresh_street_names).
    """

    __tablename__ = "street_name"
    __table_args__ = (
        sa.UniqueConstraint("jurisdiction_id", "name"),
        sa.Index(
            "ix_street_name_core_trgm",
            "core",
            postgresql_using="gin",
            postgresql_ops={"core": "gin_trgm_ops"},
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    jurisdiction_id: Mapped[int] = mapped_column(
        sa.ForeignKey("jurisdiction.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(sa.String(200))
    core: Mapped[str] = mapped_column(sa.String(200))
    # How many address points and segments carry the name (a tie-breaker, and a check).
    points: Mapped[int] = mapped_column(sa.Integer, default=0)
    segments: Mapped[int] = mapped_column(sa.Integer, default=0)


class AssetLayer(Base):
    """A kind of thing the city reports against: street lights, trees, hydrants, signs."""

    __tablename__ = "asset_layer"
    __table_args__ = (sa.UniqueConstraint("jurisdiction_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    jurisdiction_id: Mapped[int] = mapped_column(
        sa.ForeignKey("jurisdiction.id", ondelete="CASCADE"), index=True
    )
    # A code ("streetlights", routing.categories.CODE_RE) and the title people read.
    name: Mapped[str] = mapped_column(sa.String(64))
    title: Mapped[str] = mapped_column(sa.String(200))
    # The file fields the last import took the id and label from.
    id_field: Mapped[str | None] = mapped_column(sa.String(100))
    label_field: Mapped[str | None] = mapped_column(sa.String(100))
    created_at: Mapped[datetime] = mapped_column(TS, default=now_utc)


class Asset(Base):
    """One thing of a layer, by the city's own id (pole "4711"), with its attributes."""

    __tablename__ = "asset"
    __table_args__ = (sa.UniqueConstraint("layer_id", "ref"),)

    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    jurisdiction_id: Mapped[int] = mapped_column(
        sa.ForeignKey("jurisdiction.id", ondelete="CASCADE"), index=True
    )
    layer_id: Mapped[int] = mapped_column(sa.ForeignKey("asset_layer.id", ondelete="CASCADE"))
    dataset_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("place_dataset.id", ondelete="SET NULL")
    )
    ref: Mapped[str] = mapped_column(sa.String(100))
    label: Mapped[str | None] = mapped_column(sa.String(300))
    # The file's other fields, as text ({"Owner": "City", "FixtureType": "A2"}).
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    location = mapped_column(Geometry("POINT", srid=4326, spatial_index=True), nullable=False)
