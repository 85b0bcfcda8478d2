"""Cambridge, Massachusetts with its street centrelines and street lights loaded: a real
city's places for the geocoder, intake, routing and page tests.

The files are read here and written through :mod:`places.store`, the path every import
takes (``civicpin streets import`` and ``assets import`` add only the file reading).
"""

from __future__ import annotations

import json
from pathlib import Path

import shapely
from shapely.geometry import shape

from places import store
from places.parse import normalise_street
from spatial.models import Jurisdiction
from spatial.models_places import AssetLayer
from spatial.zones import create_city

CAMBRIDGE = Path(__file__).resolve().parent.parent / "data" / "cambridge"
BOUNDARY = CAMBRIDGE / "BOUNDARY_CityBoundary.geojson"
CENTERLINES = CAMBRIDGE / "TRANS_Centerlines.geojson"
STREETLIGHTS = CAMBRIDGE / "INFRA_StreetLights.geojson"

# The column maps, as a city administrator would give them to the import commands.
STREET_MAP = {
    "name": "Street",
    "from_left": "L_From",
    "to_left": "L_To",
    "from_right": "R_From",
    "to_right": "R_To",
    "zip_left": "ZIP_Left",
    "zip_right": "ZIP_Right",
    "id": "ID",
}
LIGHTS_LAYER = "streetlights"
LIGHTS_TITLE = "Street light"
# The first light of the file: pole "791-2" on SEAGRAVE RD, owned by the City.
KNOWN_POLE = "791-2"
KNOWN_POLE_LONLAT = (-71.13874888584428, 42.399610761400275)


def _number(value) -> int | None:
    """A range end; the file's -1 and 0 mean "no addresses on this side"."""
    try:
        number = int(float(value))
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _text(value) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def load_streets(session, city: Jurisdiction) -> int:
    """Import the centrelines as the city's streets; the number of intersections derived."""
    features = json.loads(CENTERLINES.read_text())["features"]
    dataset = store.begin(
        session,
        city,
        "streets",
        source_name=CENTERLINES.name,
        mapping=STREET_MAP,
        imported_by="test",
    )
    rows = []
    for f in features:
        p = f["properties"]
        street = normalise_street(p.get("Street") or "")
        # One segment of the file is a MultiLineString whose two parts touch.
        line = shapely.line_merge(shape(f["geometry"])) if f.get("geometry") else None
        if street is None or line is None or line.geom_type != "LineString":
            continue
        rows.append(
            store.StreetRow(
                coords=[(x, y) for x, y, *_ in line.coords],
                street=street,
                from_left=_number(p.get("L_From")),
                to_left=_number(p.get("L_To")),
                from_right=_number(p.get("R_From")),
                to_right=_number(p.get("R_To")),
                zip_left=_text(p.get("ZIP_Left")),
                zip_right=_text(p.get("ZIP_Right")),
                source_id=_text(p.get("ID")),
            )
        )
    store.add_streets(session, dataset, rows)
    return store.finish(
        session, dataset, rows_read=len(features), rows_bad=len(features) - len(rows)
    )


def light_label(p: dict) -> str:
    """ "Pole 791-2, SEAGRAVE RD"."""
    where = _text(p.get("Intersection"))
    return f"Pole {p['PoleID']}, {where}" if where else f"Pole {p['PoleID']}"


def load_lights(session, city: Jurisdiction) -> AssetLayer:
    """Import the street lights as the asset layer "streetlights" (ref: the pole id)."""
    layer = AssetLayer(
        jurisdiction_id=city.id,
        name=LIGHTS_LAYER,
        title=LIGHTS_TITLE,
        id_field="PoleID",
        label_field="Pole {PoleID}, {Intersection}",
    )
    session.add(layer)
    session.flush()
    features = json.loads(STREETLIGHTS.read_text())["features"]
    dataset = store.begin(
        session,
        city,
        "assets",
        source_name=STREETLIGHTS.name,
        mapping={"id": "PoleID", "label": "Pole {PoleID}, {Intersection}"},
        imported_by="test",
        layer=layer,
    )
    rows, seen = [], set()
    for f in features:
        p = f["properties"]
        ref = _text(p.get("PoleID"))
        if ref is None or ref in seen or not f.get("geometry"):
            continue
        seen.add(ref)
        lon, lat = f["geometry"]["coordinates"][:2]
        attributes = {k: str(v) for k, v in p.items() if k != "PoleID" and v not in (None, "")}
        rows.append(
            store.AssetRow(lon=lon, lat=lat, ref=ref, label=light_label(p), attributes=attributes)
        )
    store.add_assets(session, dataset, rows)
    store.finish(session, dataset, rows_read=len(features), rows_bad=len(features) - len(rows))
    return layer


def make_cambridge_city(
    session,
    *,
    streets: bool = True,
    lights: bool = True,
    slug: str = "cambridge",
    prefix: str = "CAM",
) -> Jurisdiction:
    """The city "cambridge" (name "Cambridge", America/New_York) with its boundary, and
    its centrelines (with the intersections derived) and street lights when asked for.
    Flushed, not committed: the caller's transaction."""
    city = create_city(session, slug, "Cambridge", "America/New_York", BOUNDARY, prefix=prefix)
    session.flush()
    if streets:
        load_streets(session, city)
    if lights:
        load_lights(session, city)
    session.flush()
    return city
