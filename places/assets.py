"""Assets people report against: street lights by pole number, trees, hydrants, signs.

A category may be tied to a layer (``Service.asset_layer_id``). The report map then
shows the layer's assets near the pin; the request stores the layer and the city's own
id of the asset (``ServiceRequest.asset_ref``) and its pin snaps to the asset.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from geoalchemy2 import Geography
from sqlalchemy.orm import Session

from spatial.models import Jurisdiction, Service, ServiceRequest
from spatial.models_places import Asset, AssetLayer

NEAR_RADIUS_M = 150.0  # the report map's nearby assets, and how far a pin may be from one
NEAR_LIMIT = 200
MAX_REF = 100  # Asset.ref's length
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class AssetPoint:
    """An asset as the public sees it: the city's id, its label and its point."""

    ref: str
    label: str | None
    lat: float
    lon: float
    distance_m: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "label": self.label,
            "lat": round(self.lat, 7),
            "lon": round(self.lon, 7),
        }


@dataclass(frozen=True)
class PastRequest:
    """One request about an asset, as its history page lists it."""

    public_id: str
    category: str
    status: str
    requested_at: datetime
    closed_at: datetime | None


def normalise_ref(ref: str | None) -> str:
    """``ref`` as compared loosely: without any spaces, upper case (" 791 - 2 " ->
    "791-2")."""
    return _SPACE.sub("", ref or "").upper()


def layer_by_name(session: Session, city: Jurisdiction, name: str) -> AssetLayer | None:
    """The city's asset layer with the code ``name`` (exact), or None."""
    return session.scalar(
        sa.select(AssetLayer).where(AssetLayer.jurisdiction_id == city.id, AssetLayer.name == name)
    )


def layer_of_service(session: Session, service: Service) -> AssetLayer | None:
    """The asset layer a category is tied to, or None."""
    if service.asset_layer_id is None:
        return None
    return session.get(AssetLayer, service.asset_layer_id)


def asset_by_ref(session: Session, layer: AssetLayer, ref: str | None) -> Asset | None:
    """The layer's asset with the city's id ``ref``: exactly as given, else ignoring case
    and spaces ("791-2", " 791-2 ", "791 - 2"). None when there is no such asset."""
    given = (ref or "").strip()
    if not given or len(given) > MAX_REF * 2:
        return None
    found = session.scalar(sa.select(Asset).where(Asset.layer_id == layer.id, Asset.ref == given))
    if found is not None:
        return found
    # Only a miss pays for the loose comparison (a scan of the layer's few thousand rows).
    loose = sa.func.upper(sa.func.regexp_replace(Asset.ref, r"\s+", "", "g"))
    return session.scalar(
        sa.select(Asset)
        .where(Asset.layer_id == layer.id, loose == normalise_ref(given))
        .order_by(Asset.id)
        .limit(1)
    )


def asset_point(session: Session, asset: Asset) -> tuple[float, float]:
    """(lon, lat) of ``asset``."""
    lon, lat = session.execute(
        sa.select(sa.func.ST_X(Asset.location), sa.func.ST_Y(Asset.location)).where(
            Asset.id == asset.id
        )
    ).one()
    return float(lon), float(lat)


def distance_m(session: Session, asset: Asset, lon: float, lat: float) -> float:
    """The true distance in metres from ``asset`` to (lon, lat)."""
    return float(
        session.execute(_DISTANCE_SQL, {"id": asset.id, "lon": lon, "lat": lat}).scalar_one()
    )


_DISTANCE_SQL = sa.text(
    """
    SELECT ST_Distance(location::geography,
                       ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography)
    FROM asset WHERE id = :id
    """
)


def _degrees(radius_m: float, lat: float) -> float:
    """A radius in degrees that holds ``radius_m`` metres in every direction at ``lat``:
    the index's coarse cut before the exact distance in metres."""
    return radius_m / (111_000.0 * max(math.cos(math.radians(lat)), 0.01)) * 1.01


# The layer's assets within :radius metres of the pin, nearest first. The geometry index
# takes the coarse cut in degrees; the distance is true metres on the spheroid.
_NEAR_SQL = sa.text(
    """
    WITH pin AS (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS g)
    SELECT a.ref, a.label, ST_Y(a.location) AS lat, ST_X(a.location) AS lon,
           ST_Distance(a.location::geography, pin.g::geography) AS distance_m
    FROM asset a, pin
    WHERE a.layer_id = :layer_id
      AND ST_DWithin(a.location, pin.g, :degrees)
      AND ST_DWithin(a.location::geography, pin.g::geography, :radius)
    ORDER BY distance_m, a.ref
    LIMIT :limit
    """
)


def assets_near(
    session: Session,
    layer: AssetLayer,
    lon: float,
    lat: float,
    *,
    radius_m: float = NEAR_RADIUS_M,
    limit: int = NEAR_LIMIT,
) -> list[AssetPoint]:
    """The layer's assets within ``radius_m`` metres of (lon, lat), nearest first (at
    most ``limit``)."""
    rows = session.execute(
        _NEAR_SQL,
        {
            "layer_id": layer.id,
            "lon": lon,
            "lat": lat,
            "degrees": _degrees(radius_m, lat),
            "radius": radius_m,
            "limit": limit,
        },
    ).all()
    return [
        AssetPoint(r.ref, r.label, float(r.lat), float(r.lon), float(r.distance_m)) for r in rows
    ]


def public_point(session: Session, asset: Asset) -> AssetPoint:
    """The public view of ``asset``: ref, label and point, never its attributes."""
    lon, lat = asset_point(session, asset)
    return AssetPoint(asset.ref, asset.label, lat, lon)


def asset_attributes(asset: Asset) -> list[tuple[str, str]]:
    """The asset's attributes as (name, text) pairs in name order, empty ones left out
    (the staff page's table)."""
    out = []
    for key in sorted(asset.attributes or {}, key=str.lower):
        value = (asset.attributes or {}).get(key)
        if value is None or str(value).strip() == "":
            continue
        out.append((str(key), str(value)))
    return out


def asset_history(
    session: Session, layer: AssetLayer, ref: str, *, limit: int = 500
) -> list[PastRequest]:
    """The requests about the asset ``ref`` of ``layer``, newest first (private
    categories included: this is for staff)."""
    rows = session.execute(
        sa.select(
            ServiceRequest.public_id,
            Service.name,
            ServiceRequest.status,
            ServiceRequest.requested_at,
            ServiceRequest.closed_at,
        )
        .join(Service, Service.id == ServiceRequest.service_id)
        .where(
            ServiceRequest.jurisdiction_id == layer.jurisdiction_id,
            ServiceRequest.asset_layer_id == layer.id,
            ServiceRequest.asset_ref == ref,
        )
        .order_by(ServiceRequest.requested_at.desc(), ServiceRequest.id.desc())
        .limit(limit)
    ).all()
    return [PastRequest(*r) for r in rows]


@dataclass(frozen=True)
class FoundAsset:
    """An asset named by a channel, with its point and how far it is from a given pin."""

    asset: Asset
    lon: float
    lat: float
    distance_m: float | None


def find_asset(
    session: Session,
    layer: AssetLayer,
    ref: str | None,
    *,
    lon: float | None = None,
    lat: float | None = None,
) -> FoundAsset | None:
    """The layer's asset ``ref`` (as :func:`asset_by_ref` matches it) with its point and,
    given a pin (``lon``, ``lat``), its true distance from the pin in metres: one
    statement when ``ref`` is exact."""
    given = (ref or "").strip()
    if not given or len(given) > MAX_REF * 2:
        return None
    columns = [Asset, sa.func.ST_X(Asset.location), sa.func.ST_Y(Asset.location)]
    if lon is not None and lat is not None:
        here = sa.func.ST_SetSRID(sa.func.ST_MakePoint(lon, lat), 4326)
        columns.append(
            sa.func.ST_Distance(sa.cast(Asset.location, Geography), sa.cast(here, Geography))
        )
    else:
        columns.append(sa.null())
    for where in (
        Asset.ref == given,
        sa.func.upper(sa.func.regexp_replace(Asset.ref, r"\s+", "", "g")) == normalise_ref(given),
    ):
        row = session.execute(
            sa.select(*columns).where(Asset.layer_id == layer.id, where).order_by(Asset.id).limit(1)
        ).first()
        if row is not None:
            asset, x, y, dist = row
            return FoundAsset(asset, float(x), float(y), None if dist is None else float(dist))
    return None


def asset_noun(layer: AssetLayer) -> str:
    """One of the layer's things, from its title: "Street lights" -> "street light",
    "Benches" -> "bench" (an acronym keeps its case: "CCTV cameras" -> "CCTV camera")."""
    title = (layer.title or layer.name).strip()
    words = title.split(" ")
    last = words[-1]
    lower = last.lower()
    if lower.endswith(("ches", "shes", "sses", "xes")):
        last = last[:-2]
    elif lower.endswith("ies") and len(lower) > 4:
        last = last[:-3] + ("Y" if last.isupper() else "y")
    elif lower.endswith("s") and not lower.endswith("ss"):
        last = last[:-1]
    words[-1] = last
    first = words[0]
    if not (len(first) > 1 and first[1:2].isupper()):
        words[0] = first[:1].lower() + first[1:]
    return " ".join(words)
