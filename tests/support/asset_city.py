"""The small test city with a street-light layer and a category tied to it.

Positions are set by metres from the centre with pyproj's geodesic (not by the code
under test), so distances asserted in tests are independent truth.
"""

from __future__ import annotations

from geoalchemy2.shape import from_shape
from pyproj import Geod
from shapely.geometry import Point

from spatial.models import Service
from spatial.models_places import Asset, AssetLayer
from tests.support.city import INSIDE, make_small_city

GEOD = Geod(ellps="WGS84")
CENTRE = INSIDE  # (lat, lon)
LAYER = "lights"
TITLE = "Street lights"
SERVICE = "light_out"


def offset(metres: float, azimuth: float, origin: tuple[float, float] = CENTRE):
    """(lat, lon) ``metres`` from ``origin`` towards ``azimuth`` (degrees from north)."""
    lon, lat, _ = GEOD.fwd(origin[1], origin[0], azimuth, metres)
    return lat, lon


# ref -> (metres from the centre, azimuth, label, attributes)
POLES = {
    "791-2": (0, 0, "Pole 791-2, Main St", {"Owner": "City", "FixtureType": "LED"}),
    "791-3": (100, 90, "Pole 791-3, Main St", {"Owner": "City", "FixtureType": "HPS"}),
    "A 7": (140, 0, None, {"Owner": "State", "Note": ""}),
    "FAR-1": (160, 0, "Pole FAR-1", {"Owner": "City"}),
    "AWAY-9": (1000, 180, "Pole AWAY-9", {"Owner": "City"}),
}


def make_asset_city(session, slug: str = "testville") -> dict:
    """``make_small_city`` with the layer ``lights`` and the category ``light_out`` on it."""
    base = make_small_city(session, slug)
    city = base["city"]
    layer = AssetLayer(
        jurisdiction_id=city.id, name=LAYER, title=TITLE, id_field="PoleID", label_field="Label"
    )
    session.add(layer)
    session.flush()
    points = {}
    for ref, (metres, azimuth, label, attributes) in POLES.items():
        lat, lon = offset(metres, azimuth)
        points[ref] = (lat, lon)
        session.add(
            Asset(
                jurisdiction_id=city.id,
                layer_id=layer.id,
                ref=ref,
                label=label,
                attributes=attributes,
                location=from_shape(Point(lon, lat), srid=4326),
            )
        )
    light = Service(
        jurisdiction_id=city.id,
        code=SERVICE,
        name="Street light out",
        group="Streets",
        default_department_id=base["department"].id,
        asset_layer_id=layer.id,
    )
    session.add(light)
    session.flush()
    return {**base, "asset_layer": layer, "light": light, "points": points}
