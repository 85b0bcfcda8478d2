"""The city map: the queries behind it and the folium map built from them.

Every script and stylesheet the map loads is one of ours under ``/static/`` (Leaflet and its
plugins are copied there from npm at set-up), so the page works offline, residents' browsers
talk only to this server, and the Content-Security-Policy can stay strict. Request pins are
never embedded in the page: ``static/map.js`` fetches them per visible bounding box and
zoom from :func:`map_data`, which answers with single requests when few are in view and
with counts per grid cell (clusters) otherwise, so a city-wide view of a million requests
costs a few hundred cells, not a million rows (see :mod:`spatial.map_cells`).
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import folium
import shapely.geometry
import sqlalchemy as sa
from branca.element import CssLink, JavascriptLink, MacroElement
from folium.elements import JSCSSMixin
from folium.plugins import MarkerCluster
from folium.template import Template
from shapely.geometry import MultiPolygon, Polygon
from sqlalchemy.orm import Session

from spatial import map_cells
from spatial.errors import InvalidInput
from spatial.models import (
    CLOSED_STATUSES,
    OPEN_STATUSES,
    Jurisdiction,
    Service,
    ServiceRequest,
    Status,
    Zone,
    ZoneLayer,
)

MAX_PINS = 2000
# Below this zoom a view holding more than CLUSTER_ABOVE requests is shown as counts per
# cell (a 2,000-pin answer is 440 kB of JSON: too much for a phone on every map move); at
# and above it (a few houses) the newest MAX_PINS single requests are shown.
CLUSTER_BELOW_ZOOM = 18
CLUSTER_ABOVE = 500
LIST_SIZE = 50  # requests in the list beside the map (newest first)
SERVICE_CODE_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
EARLIEST_DATE = date(1900, 1, 1)
# Outlines are simplified to about 1/2000 of the city's extent: invisible at city zoom and
# it keeps the page to a few hundred kilobytes even for a hundred detailed zones.
SIMPLIFY_FRACTION = 1 / 2000
# Holes and islands smaller than (SPECK_FACTOR x tolerance)^2 are dropped from outlines: a
# boundary dissolved from many zones is riddled with sliver gaps (LA's has 4,000+ of them,
# 80% of its vertices) that no one can see at map scale. Real enclaves are far larger.
SPECK_FACTOR = 10
COORD_DIGITS = 5  # about 1 m, well below the simplification tolerance
LAYER_COLOURS = ("#2b6cb0", "#c05621", "#6b46c1", "#2f855a", "#b83280", "#975a16")
BOUNDARY_COLOUR = "#1a202c"

# Self-hosted assets, relative to the static folder (see scripts/copy-assets.sh).
LEAFLET_JS = "vendor/leaflet/leaflet.js"
LEAFLET_CSS = "vendor/leaflet/leaflet.css"
CLUSTER_JS = "vendor/leaflet.markercluster/leaflet.markercluster.js"
CLUSTER_CSS = (
    "vendor/leaflet.markercluster/MarkerCluster.css",
    "vendor/leaflet.markercluster/MarkerCluster.Default.css",
)
PINS_JS = "map.js"


# ---------------------------------------------------------------------------- queries


@dataclass
class ZoneLayerOutline:
    """One current zone layer as a GeoJSON FeatureCollection of simplified outlines."""

    name: str
    title: str
    features: list[dict[str, Any]]

    @property
    def geojson(self) -> dict[str, Any]:
        return {"type": "FeatureCollection", "features": self.features}


@dataclass
class CityOverview:
    """What the city map page shows, read in a handful of queries."""

    slug: str
    name: str
    bounds: tuple[float, float, float, float] | None  # minlon, minlat, maxlon, maxlat
    boundary: dict[str, Any] | None  # simplified GeoJSON geometry
    layers: list[ZoneLayerOutline] = field(default_factory=list)
    total_requests: int = 0  # public requests with a location (those on the map)
    open_requests: int = 0

    @property
    def zone_count(self) -> int:
        return sum(len(layer.features) for layer in self.layers)


def city_overview(session: Session, city: Jurisdiction) -> CityOverview:
    """Counts, extent, simplified boundary and current zone outlines of ``city``."""
    extent = session.execute(
        sa.select(
            sa.func.ST_XMin(sa.func.ST_Extent(Zone.geom)),
            sa.func.ST_YMin(sa.func.ST_Extent(Zone.geom)),
            sa.func.ST_XMax(sa.func.ST_Extent(Zone.geom)),
            sa.func.ST_YMax(sa.func.ST_Extent(Zone.geom)),
        )
        .join(ZoneLayer, ZoneLayer.id == Zone.layer_id)
        .where(ZoneLayer.jurisdiction_id == city.id, ZoneLayer.is_current)
    ).one()
    boundary_extent = session.execute(
        sa.select(
            sa.func.ST_XMin(Jurisdiction.boundary),
            sa.func.ST_YMin(Jurisdiction.boundary),
            sa.func.ST_XMax(Jurisdiction.boundary),
            sa.func.ST_YMax(Jurisdiction.boundary),
        ).where(Jurisdiction.id == city.id)
    ).one()
    bounds = _union_bounds(boundary_extent, extent)
    tolerance = 0.0
    if bounds is not None:
        tolerance = max(bounds[2] - bounds[0], bounds[3] - bounds[1]) * SIMPLIFY_FRACTION

    boundary_json = session.scalar(
        sa.select(
            sa.func.ST_AsGeoJSON(
                sa.func.ST_SimplifyPreserveTopology(Jurisdiction.boundary, tolerance),
                COORD_DIGITS,
            )
        ).where(Jurisdiction.id == city.id)
    )
    rows = session.execute(
        sa.select(
            ZoneLayer.name,
            ZoneLayer.title,
            Zone.id,
            Zone.code,
            Zone.name,
            sa.func.ST_AsGeoJSON(
                sa.func.ST_SimplifyPreserveTopology(Zone.geom, tolerance), COORD_DIGITS
            ),
        )
        .join(ZoneLayer, ZoneLayer.id == Zone.layer_id)
        .where(ZoneLayer.jurisdiction_id == city.id, ZoneLayer.is_current)
        .order_by(ZoneLayer.id, Zone.code)
    ).all()
    speck = (SPECK_FACTOR * tolerance) ** 2
    layers: dict[str, ZoneLayerOutline] = {}  # in import order: the first one is shown
    for layer_name, layer_title, zone_id, code, zone_name, geometry in rows:
        layer = layers.setdefault(
            layer_name, ZoneLayerOutline(layer_name, layer_title or layer_name, [])
        )
        layer.features.append(
            {
                "type": "Feature",
                "id": zone_id,
                # Escaped here because folium's tooltip inserts the value as HTML.
                "properties": {"code": html.escape(code), "name": html.escape(zone_name)},
                "geometry": drop_specks(json.loads(geometry), speck),
            }
        )

    # The requests on the map, from the stored cell counts: counting a million rows per
    # page view would cost more than the rest of the page together.
    cell = map_cells.MapCellCount
    total, open_ = session.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(cell.n), 0),
            sa.func.coalesce(
                sa.func.sum(cell.n).filter(cell.status.in_([s.value for s in OPEN_STATUSES])), 0
            ),
        )
        .join(Service, Service.id == cell.service_id)
        .where(
            cell.jurisdiction_id == city.id,
            cell.level == map_cells.LEVELS[0],
            cell.status != map_cells.HELD_STATUS,
            Service.private.is_(False),
        )
    ).one()
    return CityOverview(
        slug=city.slug,
        name=city.name,
        bounds=bounds,
        boundary=drop_specks(json.loads(boundary_json), speck) if boundary_json else None,
        layers=list(layers.values()),
        total_requests=total,
        open_requests=open_,
    )


def city_boundary(session: Session, city: Jurisdiction) -> dict[str, Any] | None:
    """Extent and simplified outline of ``city`` only (for small maps: report, tracking).

    ``{"bounds": [minlon, minlat, maxlon, maxlat], "geometry": GeoJSON}`` or None without
    a boundary.
    """
    row = session.execute(
        sa.select(
            sa.func.ST_XMin(Jurisdiction.boundary),
            sa.func.ST_YMin(Jurisdiction.boundary),
            sa.func.ST_XMax(Jurisdiction.boundary),
            sa.func.ST_YMax(Jurisdiction.boundary),
        ).where(Jurisdiction.id == city.id)
    ).one()
    if None in tuple(row):
        return None
    bounds = tuple(float(v) for v in row)
    tolerance = max(bounds[2] - bounds[0], bounds[3] - bounds[1]) * SIMPLIFY_FRACTION
    geometry = session.scalar(
        sa.select(
            sa.func.ST_AsGeoJSON(
                sa.func.ST_SimplifyPreserveTopology(Jurisdiction.boundary, tolerance),
                COORD_DIGITS,
            )
        ).where(Jurisdiction.id == city.id)
    )
    return {
        "bounds": list(bounds),
        "geometry": drop_specks(json.loads(geometry), (SPECK_FACTOR * tolerance) ** 2),
    }


def drop_specks(geometry: dict[str, Any], min_area: float) -> dict[str, Any]:
    """``geometry`` (GeoJSON polygon/multipolygon) without holes and parts below ``min_area``.

    Returns the geometry unchanged when it is not polygonal or would vanish entirely.
    """
    if geometry.get("type") not in {"Polygon", "MultiPolygon"} or min_area <= 0:
        return geometry
    shape = shapely.geometry.shape(geometry)
    polygons = shape.geoms if isinstance(shape, MultiPolygon) else [shape]
    kept = [
        Polygon(p.exterior, [r for r in p.interiors if Polygon(r).area >= min_area])
        for p in polygons
        if p.area >= min_area
    ]
    if not kept:
        return geometry
    return shapely.geometry.mapping(MultiPolygon(kept))


def _union_bounds(*extents) -> tuple[float, float, float, float] | None:
    found = [e for e in extents if e is not None and None not in tuple(e)]
    if not found:
        return None
    return (
        min(e[0] for e in found),
        min(e[1] for e in found),
        max(e[2] for e in found),
        max(e[3] for e in found),
    )


def parse_bbox(text: str | None) -> tuple[float, float, float, float]:
    """``"minlon,minlat,maxlon,maxlat"`` as four floats, or :class:`InvalidInput`."""
    if not text:
        raise InvalidInput("bbox is required: minlon,minlat,maxlon,maxlat", field="bbox")
    parts = text.split(",")
    if len(parts) != 4:
        raise InvalidInput(
            f"bbox must be 4 comma-separated numbers (minlon,minlat,maxlon,maxlat), "
            f"got {len(parts)}",
            field="bbox",
        )
    try:
        minlon, minlat, maxlon, maxlat = (float(p) for p in parts)
    except ValueError:
        raise InvalidInput(
            f"bbox {text!r} contains something that is not a number", field="bbox"
        ) from None
    if not all(math.isfinite(v) for v in (minlon, minlat, maxlon, maxlat)):
        raise InvalidInput("bbox values must be finite numbers", field="bbox")
    if not (-180 <= minlon <= 180 and -180 <= maxlon <= 180):
        raise InvalidInput("bbox longitudes must be between -180 and 180", field="bbox")
    if not (-90 <= minlat <= 90 and -90 <= maxlat <= 90):
        raise InvalidInput("bbox latitudes must be between -90 and 90", field="bbox")
    if minlon >= maxlon or minlat >= maxlat:
        raise InvalidInput(
            "bbox minimum must be below maximum (minlon<maxlon, minlat<maxlat)", field="bbox"
        )
    return minlon, minlat, maxlon, maxlat


def parse_zoom(text: str | None) -> int | None:
    """The optional map zoom level (0-24), or :class:`InvalidInput`."""
    if text is None or text == "":
        return None
    try:
        zoom = int(text)
    except ValueError:
        raise InvalidInput(f"zoom {text!r} is not a whole number", field="zoom") from None
    if not 0 <= zoom <= 24:
        raise InvalidInput("zoom must be between 0 and 24", field="zoom")
    return zoom


def coordinate_digits(zoom: int | None) -> int:
    """Decimal places that still resolve one screen pixel at ``zoom`` (at most 6)."""
    if zoom is None:
        return 6
    degrees_per_pixel = 360 / (256 * 2**zoom)
    return max(1, min(6, math.ceil(-math.log10(degrees_per_pixel))))


@dataclass(frozen=True)
class MapFilter:
    """What the map shows: one category (code), some statuses, a date range (local days)."""

    service_code: str | None = None
    statuses: tuple[str, ...] | None = None
    since: date | None = None
    until: date | None = None

    @property
    def dated(self) -> bool:
        return self.since is not None or self.until is not None


def _parse_date(text: str, name: str) -> date:
    try:
        value = date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{name} {text!r} is not a date (YYYY-MM-DD)", field=name) from None
    if value < EARLIEST_DATE:
        raise InvalidInput(f"{name} {text!r} is too far in the past", field=name)
    return value


def parse_map_filter(args: Mapping[str, str]) -> MapFilter:
    """``service``, ``status`` (open, closed or a comma list), ``since``/``until`` dates."""
    code = (args.get("service") or "").strip() or None
    if code is not None and not SERVICE_CODE_RE.match(code):
        raise InvalidInput(f"service {code!r} is not a category code", field="service")
    statuses: tuple[str, ...] | None = None
    raw_status = (args.get("status") or "").strip().lower()
    if raw_status in ("", "all", "any"):
        statuses = None
    elif raw_status == "open":
        statuses = tuple(sorted(s.value for s in OPEN_STATUSES))
    elif raw_status == "closed":
        statuses = tuple(sorted(s.value for s in CLOSED_STATUSES))
    else:
        known = {s.value for s in Status}
        wanted = [part.strip() for part in raw_status.split(",") if part.strip()]
        unknown = [part for part in wanted if part not in known]
        if unknown or not wanted:
            raise InvalidInput(
                f"status {unknown[0] if unknown else raw_status!r} is not one of: open, closed, "
                + ", ".join(s.value for s in Status),
                field="status",
            )
        statuses = tuple(sorted(set(wanted)))
    since = _parse_date(args["since"].strip(), "since") if args.get("since") else None
    until = _parse_date(args["until"].strip(), "until") if args.get("until") else None
    if since and until and since > until:
        raise InvalidInput("since must not be after until", field="since")
    return MapFilter(code, statuses, since, until)


def public_services(
    session: Session, city: Jurisdiction, code: str | None = None
) -> dict[int, str]:
    """Non-private categories of ``city`` (id -> name); one code, or :class:`InvalidInput`."""
    query = sa.select(Service.id, Service.name).where(
        Service.jurisdiction_id == city.id,
        Service.private.is_(False),
        Service.internal.is_(False),
    )
    if code is not None:
        query = query.where(Service.code == code)
    services = {row[0]: row[1] for row in session.execute(query)}
    if code is not None and not services:
        raise InvalidInput(f"no public category {code!r} in {city.name}", field="service")
    return services


def _time_range(city: Jurisdiction, filters: MapFilter) -> tuple[datetime | None, datetime | None]:
    """The filter's local days as [start, end) instants in the city's time zone."""
    tz = ZoneInfo(city.timezone)
    start = datetime.combine(filters.since, time.min, tzinfo=tz) if filters.since else None
    end = (
        datetime.combine(filters.until + timedelta(days=1), time.min, tzinfo=tz)
        if filters.until
        else None
    )
    return start, end


def _request_conditions(
    city: Jurisdiction,
    services: dict[int, str],
    filters: MapFilter,
    envelope,
) -> list:
    conditions = [
        ServiceRequest.jurisdiction_id == city.id,
        ServiceRequest.service_id.in_(list(services)),
        ServiceRequest.held_at.is_(None),
        ServiceRequest.location.op("&&")(envelope),
    ]
    if filters.statuses is not None:
        conditions.append(ServiceRequest.status.in_(filters.statuses))
    start, end = _time_range(city, filters)
    if start is not None:
        conditions.append(ServiceRequest.requested_at >= start)
    if end is not None:
        conditions.append(ServiceRequest.requested_at < end)
    return conditions


def requests_in_bbox(
    session: Session,
    city: Jurisdiction,
    bbox: tuple[float, float, float, float],
    *,
    zoom: int | None = None,
    limit: int = MAX_PINS,
    filters: MapFilter | None = None,
    services: dict[int, str] | None = None,
) -> dict[str, Any]:
    """The newest non-private requests of ``city`` inside ``bbox`` as a GeoJSON collection.

    At most ``limit`` features, public fields only (never contact details); ``truncated``
    tells the map there are more in view. The ``&&`` test against the envelope uses the
    GiST index on the location.
    """
    filters = filters or MapFilter()
    if services is None:
        services = public_services(session, city, filters.service_code)
    envelope = sa.func.ST_MakeEnvelope(*bbox, 4326)
    rows = []
    if services:
        rows = session.execute(
            sa.select(
                ServiceRequest.public_id,
                ServiceRequest.service_id,
                ServiceRequest.status,
                ServiceRequest.requested_at,
                sa.func.ST_X(ServiceRequest.location),
                sa.func.ST_Y(ServiceRequest.location),
            )
            .where(*_request_conditions(city, services, filters, envelope))
            .order_by(ServiceRequest.requested_at.desc(), ServiceRequest.id.desc())
            .limit(limit + 1)
        ).all()
    digits = coordinate_digits(zoom)
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [round(x, digits), round(y, digits)]},
            "properties": {
                "public_id": public_id,
                "service": services[service_id],
                "status": status,
                "requested_at": requested_at.isoformat() if requested_at else None,
            },
        }
        for public_id, service_id, status, requested_at, x, y in rows[:limit]
    ]
    return {
        "type": "FeatureCollection",
        "mode": "points",
        "features": features,
        "truncated": len(rows) > limit,
        "limit": limit,
    }


def cluster_cells(
    bbox: tuple[float, float, float, float], level: int
) -> tuple[float, tuple[int, int, int, int]]:
    """Cell size (degrees) at grid ``level`` and the cells (cx0, cy0, cx1, cy1) in view."""
    size = map_cells.cell_size(level)
    minlon, minlat, maxlon, maxlat = bbox
    return size, (
        math.floor(minlon / size),
        math.floor(minlat / size),
        math.floor(maxlon / size),
        math.floor(maxlat / size),
    )


STORED_CLUSTERS_SQL = sa.text(
    """
    SELECT gx >> :shift AS cx, gy >> :shift AS cy, status,
           sum(n)::bigint AS n, sum(sum_lon) AS sum_lon, sum(sum_lat) AS sum_lat
    FROM map_cell_count
    WHERE jurisdiction_id = :j AND level = :level
      AND gx BETWEEN :gx0 AND :gx1 AND gy BETWEEN :gy0 AND :gy1
      AND service_id IN :services
      AND status <> 'held'
      AND (CAST(:any_status AS boolean) OR status IN :statuses)
    GROUP BY 1, 2, 3
    HAVING sum(n) > 0
    """
).bindparams(sa.bindparam("services", expanding=True), sa.bindparam("statuses", expanding=True))


def _stored_clusters(
    session: Session,
    city: Jurisdiction,
    services: dict[int, str],
    filters: MapFilter,
    grid: int,
    level: int,
    cells: tuple[int, int, int, int],
) -> list[tuple]:
    """Cluster rows (cx, cy, status, n, sum_lon, sum_lat) of grid level ``grid``, summed
    from the stored cells of ``level`` (as fine or finer) in ``map_cell_count``."""
    shift = level - grid
    cx0, cy0, cx1, cy1 = cells
    return session.execute(
        STORED_CLUSTERS_SQL,
        {
            "shift": shift,
            "j": city.id,
            "level": level,
            "gx0": cx0 << shift,
            "gy0": cy0 << shift,
            "gx1": ((cx1 + 1) << shift) - 1,
            "gy1": ((cy1 + 1) << shift) - 1,
            "services": list(services),
            "any_status": filters.statuses is None,
            "statuses": list(filters.statuses or ("",)),
        },
    ).all()


def _live_clusters(
    session: Session,
    city: Jurisdiction,
    services: dict[int, str],
    filters: MapFilter,
    size: float,
    cells: tuple[int, int, int, int],
) -> list[tuple]:
    """Cluster rows counted from ``service_request`` itself (date filters, fine zooms)."""
    cx0, cy0, cx1, cy1 = cells
    envelope = sa.func.ST_MakeEnvelope(
        cx0 * size, cy0 * size, (cx1 + 1) * size, (cy1 + 1) * size, 4326
    )
    x = sa.func.ST_X(ServiceRequest.location)
    y = sa.func.ST_Y(ServiceRequest.location)
    cx = sa.cast(sa.func.floor(x / size), sa.Integer).label("cx")
    cy = sa.cast(sa.func.floor(y / size), sa.Integer).label("cy")
    return session.execute(
        sa.select(cx, cy, ServiceRequest.status, sa.func.count(), sa.func.sum(x), sa.func.sum(y))
        .where(*_request_conditions(city, services, filters, envelope))
        .group_by(cx, cy, ServiceRequest.status)
    ).all()


def _cell_inside(cx: int, cy: int, size: float, bbox: tuple[float, float, float, float]) -> bool:
    minlon, minlat, maxlon, maxlat = bbox
    return (
        cx * size >= minlon
        and (cx + 1) * size <= maxlon
        and cy * size >= minlat
        and (cy + 1) * size <= maxlat
    )


def _count_upto(
    session: Session,
    city: Jurisdiction,
    services: dict[int, str],
    filters: MapFilter,
    bbox: tuple[float, float, float, float],
    cap: int,
) -> int:
    """How many requests match in ``bbox``, counting no further than ``cap``."""
    envelope = sa.func.ST_MakeEnvelope(*bbox, 4326)
    first = (
        sa.select(sa.literal(1))
        .select_from(ServiceRequest)
        .where(*_request_conditions(city, services, filters, envelope))
        .limit(cap)
        .subquery()
    )
    return int(session.scalar(sa.select(sa.func.count()).select_from(first)))


def _fold_clusters(rows: list[tuple], digits: int) -> tuple[list[dict[str, Any]], int]:
    """GeoJSON features, one per cell, at the centre of mass of its requests."""
    cells: dict[tuple[int, int], dict[str, Any]] = {}
    for cx, cy, status, n, sum_lon, sum_lat in rows:
        cell = cells.setdefault((cx, cy), {"n": 0, "lon": 0.0, "lat": 0.0, "statuses": {}})
        cell["n"] += int(n)
        cell["lon"] += float(sum_lon)
        cell["lat"] += float(sum_lat)
        cell["statuses"][status] = cell["statuses"].get(status, 0) + int(n)
    features = []
    total = 0
    for (cx, cy), cell in sorted(cells.items()):
        n = cell["n"]
        total += n
        statuses = dict(sorted(cell["statuses"].items(), key=lambda kv: (-kv[1], kv[0])))
        features.append(
            {
                "type": "Feature",
                "id": f"{cx}:{cy}",
                "geometry": {
                    "type": "Point",
                    "coordinates": [round(cell["lon"] / n, digits), round(cell["lat"] / n, digits)],
                },
                "properties": {
                    "count": n,
                    "status": next(iter(statuses)),
                    "statuses": statuses,
                },
            }
        )
    return features, total


def map_data(
    session: Session,
    city: Jurisdiction,
    bbox: tuple[float, float, float, float],
    *,
    zoom: int | None = None,
    filters: MapFilter | None = None,
    limit: int = MAX_PINS,
    cluster_above: int = CLUSTER_ABOVE,
    list_size: int = LIST_SIZE,
) -> dict[str, Any]:
    """What the public map shows in ``bbox``: single requests, or counts per cell.

    Single requests (``mode: "points"``) when at most ``cluster_above`` match, or at house
    zoom (``zoom >= CLUSTER_BELOW_ZOOM``, or no zoom given: then the newest ``limit``).
    Otherwise ``mode: "clusters"``: one feature per grid cell of about 64 pixels, with the
    count per status, plus the ``newest`` ``list_size`` requests for the list view. Without
    a date filter the counts come from ``map_cell_count`` (kept by triggers); with one
    they are counted from the requests in view.
    """
    filters = filters or MapFilter()
    services = public_services(session, city, filters.service_code)
    if zoom is None or zoom >= CLUSTER_BELOW_ZOOM or not services:
        return requests_in_bbox(
            session, city, bbox, zoom=zoom, limit=limit, filters=filters, services=services
        )
    grid = map_cells.cluster_level(zoom)
    size, cells = cluster_cells(bbox, grid)
    level = map_cells.level_for_zoom(grid)

    def points():
        return requests_in_bbox(
            session, city, bbox, zoom=zoom, limit=limit, filters=filters, services=services
        )

    if level is not None and not filters.dated:
        rows = _stored_clusters(session, city, services, filters, grid, level, cells)
        # Cells on the edge of the view stick out of it: their sum bounds the count from
        # above, the cells wholly inside bound it from below; count exactly only between.
        upper = sum(int(r[3]) for r in rows)
        lower = sum(int(r[3]) for r in rows if _cell_inside(r[0], r[1], size, bbox))
        if upper <= cluster_above:
            return points()
        if lower <= cluster_above and (
            _count_upto(session, city, services, filters, bbox, cluster_above + 1) <= cluster_above
        ):
            return points()
    elif _count_upto(session, city, services, filters, bbox, cluster_above + 1) <= cluster_above:
        return points()
    else:
        rows = _live_clusters(session, city, services, filters, size, cells)
    digits = coordinate_digits(zoom)
    features, total = _fold_clusters(rows, digits)
    newest = requests_in_bbox(
        session, city, bbox, zoom=zoom, limit=list_size, filters=filters, services=services
    )
    return {
        "type": "FeatureCollection",
        "mode": "clusters",
        "features": features,
        "total": total,
        "cell_degrees": size,
        "newest": newest["features"],
        "truncated": False,
        "limit": limit,
    }


# ------------------------------------------------------------------------ the folium map


class RequestPins(JSCSSMixin, MacroElement):
    """Attaches ``static/map.js`` to a map: it fills ``cluster`` from the bbox endpoint."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            civicpin.loadRequestPins(
                {{ this._parent.get_name() }},
                {{ this.cluster.get_name() }},
                {{ this.options|tojson }}
            );
        {% endmacro %}
        """
    )

    def __init__(self, cluster: MarkerCluster, script_url: str, options: dict[str, Any]):
        super().__init__()
        self._name = "RequestPins"
        self.cluster = cluster
        self.options = options
        self.default_js = [("civicpin_map", script_url)]
        self.default_css = []


@dataclass
class MapParts:
    """The rendered map, in the three pieces a page template places."""

    head: str  # <script src> and <link> tags, all under /static/
    body: str  # the map's <div>
    script: str  # folium's generated JavaScript, for one inline <script nonce=...>
    map_id: str


class ExternalAssetError(RuntimeError):
    """folium tried to load a script or stylesheet that is not one of ours."""


def build_city_map(
    overview: CityOverview,
    *,
    static_url: Callable[[str], str],
    requests_url: str,
    tile_url: str,
    tile_attribution: str,
    status_element_id: str = "map-status",
    extra_options: dict[str, Any] | None = None,
) -> MapParts:
    """The folium map of ``overview``, loading only assets that ``static_url`` names."""
    if overview.bounds is not None:
        minlon, minlat, maxlon, maxlat = overview.bounds
        centre = [(minlat + maxlat) / 2, (minlon + maxlon) / 2]
    else:
        centre = [0.0, 0.0]
    fmap = folium.Map(
        location=centre,
        zoom_start=11 if overview.bounds else 2,
        tiles=None,
        control_scale=True,
    )
    # folium gives these only to its own tile layer; without tiles the map itself needs a
    # maxZoom, or Leaflet.markercluster refuses to start.
    fmap.options.update(minZoom=3, maxZoom=19)
    # Instance lists, so folium's class-level CDN lists stay untouched; jQuery, Bootstrap
    # and awesome-markers are left out on purpose: nothing on this map uses them.
    fmap.default_js = [("leaflet", static_url(LEAFLET_JS))]
    fmap.default_css = [("leaflet_css", static_url(LEAFLET_CSS))]
    if tile_url.lower() != "none":
        folium.TileLayer(
            tiles=tile_url, attr=tile_attribution, name="Base map", control=False, max_zoom=19
        ).add_to(fmap)

    if overview.boundary is not None:
        folium.GeoJson(
            {"type": "Feature", "id": "boundary", "properties": {}, "geometry": overview.boundary},
            name="City boundary",
            style_function=lambda _f: {"color": BOUNDARY_COLOUR, "weight": 3, "fill": False},
            interactive=False,
        ).add_to(fmap)

    for i, layer in enumerate(overview.layers):
        colour = LAYER_COLOURS[i % len(LAYER_COLOURS)]
        folium.GeoJson(
            layer.geojson,
            name=f"Zones: {layer.title}",
            show=i == 0,
            style_function=lambda _f, c=colour: {
                "color": c,
                "weight": 1.5,
                "fillColor": c,
                "fillOpacity": 0.04,
            },
            highlight_function=lambda _f, c=colour: {"weight": 3, "fillOpacity": 0.15},
            tooltip=folium.GeoJsonTooltip(fields=["name"], labels=False),
        ).add_to(fmap)

    cluster = MarkerCluster(
        name="Requests",
        options={"showCoverageOnHover": False, "chunkedLoading": True, "maxClusterRadius": 60},
    )
    cluster.default_js = [("markerclusterjs", static_url(CLUSTER_JS))]
    cluster.default_css = [
        (f"markercluster_css_{i}", static_url(u)) for i, u in enumerate(CLUSTER_CSS)
    ]
    cluster.add_to(fmap)
    RequestPins(
        cluster,
        static_url(PINS_JS),
        {
            "url": requests_url,
            "city": overview.slug,
            "limit": MAX_PINS,
            "statusElement": status_element_id,
            **(extra_options or {}),
        },
    ).add_to(fmap)
    # Collapsed: on a phone an open layer list would cover a third of the map.
    folium.LayerControl(collapsed=True).add_to(fmap)
    if overview.bounds is not None:
        fmap.fit_bounds(
            [[overview.bounds[1], overview.bounds[0]], [overview.bounds[3], overview.bounds[2]]]
        )

    figure = fmap.get_root()
    figure.render()
    static_prefix = static_url("")
    links: list[str] = []
    # Only the asset links of the header are kept: folium's inline <style>/<script> there
    # (full-window sizing, L_NO_TOUCH switches) would need 'unsafe-inline'; our stylesheet
    # does the sizing instead.
    for name, child in figure.header._children.items():
        if isinstance(child, JavascriptLink | CssLink):
            if not child.url.startswith(static_prefix):
                raise ExternalAssetError(f"folium asset {name!r} is not self-hosted: {child.url}")
            links.append(child.render())
    return MapParts(
        head="\n".join(links),
        body=figure.html.render(),
        script=figure.script.render(),
        map_id=fmap.get_name(),
    )
