"""The city map: the queries behind it and the folium map built from them.

Every script and stylesheet the map loads is one of ours under ``/static/`` (Leaflet and its
plugins are copied there from npm at set-up), so the page works offline, residents' browsers
talk only to this server, and the Content-Security-Policy can stay strict. Request pins are
never embedded in the page: ``static/map.js`` fetches them per visible bounding box from
:func:`requests_in_bbox`.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import folium
import shapely.geometry
import sqlalchemy as sa
from branca.element import CssLink, JavascriptLink, MacroElement
from folium.elements import JSCSSMixin
from folium.plugins import MarkerCluster
from folium.template import Template
from shapely.geometry import MultiPolygon, Polygon
from sqlalchemy.orm import Session

from spatial.errors import InvalidInput
from spatial.models import (
    OPEN_STATUSES,
    Jurisdiction,
    Service,
    ServiceRequest,
    Zone,
    ZoneLayer,
)

MAX_PINS = 2000
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
    total_requests: int = 0
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

    total, open_ = session.execute(
        sa.select(
            sa.func.count(),
            sa.func.count().filter(ServiceRequest.status.in_([s.value for s in OPEN_STATUSES])),
        )
        .select_from(ServiceRequest)
        .join(Service, Service.id == ServiceRequest.service_id)
        .where(ServiceRequest.jurisdiction_id == city.id, Service.private.is_(False))
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


def requests_in_bbox(
    session: Session,
    city: Jurisdiction,
    bbox: tuple[float, float, float, float],
    *,
    zoom: int | None = None,
    limit: int = MAX_PINS,
) -> dict[str, Any]:
    """The newest non-private requests of ``city`` inside ``bbox`` as a GeoJSON collection.

    At most ``limit`` features, public fields only (never contact details); ``truncated``
    tells the map there are more in view. The ``&&`` test against the envelope uses the
    GiST index on the location.
    """
    envelope = sa.func.ST_MakeEnvelope(*bbox, 4326)
    rows = session.execute(
        sa.select(
            ServiceRequest.public_id,
            Service.name,
            ServiceRequest.status,
            ServiceRequest.requested_at,
            sa.func.ST_X(ServiceRequest.location),
            sa.func.ST_Y(ServiceRequest.location),
        )
        .join(Service, Service.id == ServiceRequest.service_id)
        .where(
            ServiceRequest.jurisdiction_id == city.id,
            Service.private.is_(False),
            ServiceRequest.location.op("&&")(envelope),
        )
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
                "service": service_name,
                "status": status,
                "requested_at": requested_at.isoformat() if requested_at else None,
            },
        }
        for public_id, service_name, status, requested_at, x, y in rows[:limit]
    ]
    return {
        "type": "FeatureCollection",
        "features": features,
        "truncated": len(rows) > limit,
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
