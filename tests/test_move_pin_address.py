"""Moving a pin gives the request the new spot's address (never keeps the old one), writes
both into the "moved" event, and lets go of an asset the pin has left.

Truth is built from the city's own file with shapely and pyproj, not by the geocoder: the
middle of a centreline segment, whose number must lie in the segment's ranges."""

from __future__ import annotations

import json
import re

import pytest
import sqlalchemy as sa
from pyproj import Geod
from shapely.geometry import shape

from intake.submit import Draft, submit
from routing import actions
from spatial.accounts import create_user
from spatial.models import (
    Department,
    RequestEvent,
    RoutingRule,
    RuleSet,
    Service,
    ServiceRequest,
    User,
)
from tests.support.places_city import (
    CENTERLINES,
    KNOWN_POLE,
    KNOWN_POLE_LONLAT,
    LIGHTS_LAYER,
    make_cambridge_city,
)

GEOD = Geod(ellps="WGS84")
# The middle of Fresh Pond, the city's reservoir: in the city, far from every street.
FRESH_POND = (-71.1497, 42.3856)


def _segment(segment_id: str):
    for f in json.loads(CENTERLINES.read_text())["features"]:
        if f["properties"]["ID"] == segment_id:
            return f["properties"], shape(f["geometry"])
    raise AssertionError(segment_id)


@pytest.fixture(scope="module")
def elm():
    """Elm St between 165 and 201: its file ranges and its middle (lon, lat)."""
    props, line = _segment("Elm_St_6")
    middle = line.interpolate(0.5, normalized=True)
    return props, (middle.x, middle.y)


@pytest.fixture
def cambridge(sessions, tmp_path):
    with sessions.begin() as s:
        city = make_cambridge_city(s)
        dept = Department(jurisdiction_id=city.id, code="lights", name="Street Lights")
        s.add(dept)
        s.flush()
        layer_id = s.execute(
            sa.text("SELECT id FROM asset_layer WHERE jurisdiction_id = :j AND name = :n"),
            {"j": city.id, "n": LIGHTS_LAYER},
        ).scalar_one()
        light = Service(
            jurisdiction_id=city.id,
            code="light_out",
            name="Street light out",
            asset_layer_id=layer_id,
            default_department_id=dept.id,
        )
        s.add(light)
        s.flush()
        rs = RuleSet(jurisdiction_id=city.id, version=1, status="published")
        rs.rules = [RoutingRule(position=1, name="Lights", department_id=dept.id)]
        s.add(rs)
        dispatcher, _ = create_user(
            s,
            email="dispatcher@cambridge.example",
            role="dispatcher",
            city_slug=city.slug,
            name="Dee Dispatcher",
            password="correct horse battery",
        )
        s.flush()
        lon, lat = KNOWN_POLE_LONLAT
        request = submit(
            s,
            Draft(
                city=city.slug,
                service_code="light_out",
                lat=lat,
                lon=lon,
                description="The light is out",
                address="Seagrave Rd",
                channel="web",
            ),
            media_dir=tmp_path,
            public_base_url="http://127.0.0.1:5000",
        ).request
        request.asset_layer_id, request.asset_ref = layer_id, KNOWN_POLE
        return {"city_id": city.id, "user_id": dispatcher.id, "request_id": request.id}


def _move(sessions, c, lon, lat):
    with sessions.begin() as s:
        user = s.get(User, c["user_id"])
        request = s.get(ServiceRequest, c["request_id"])
        actions.move_pin(s, user, request, lon=lon, lat=lat)
    with sessions() as s:
        request = s.get(ServiceRequest, c["request_id"])
        event = s.scalars(
            sa.select(RequestEvent)
            .where(RequestEvent.request_id == request.id, RequestEvent.kind == "moved")
            .order_by(RequestEvent.id.desc())
            .limit(1)
        ).one()
        return request, event


def test_moving_the_pin_takes_the_new_address_and_writes_both_into_the_event(
    sessions, cambridge, elm
):
    props, (lon, lat) = elm
    request, event = _move(sessions, cambridge, lon, lat)
    match = re.fullmatch(r"(\d+) ELM ST(, 02139)?", request.address or "")
    assert match, request.address
    number = int(match.group(1))
    low = min(props["L_From"], props["R_From"])
    high = max(props["L_To"], props["R_To"])
    assert low <= number <= high
    assert event.from_value.startswith("Seagrave Rd (")
    assert event.to_value == f"{request.address} ({lat:.5f}, {lon:.5f})"

    # Where no street is near, the address is cleared: never the old one kept.
    request, event = _move(sessions, cambridge, *FRESH_POND)
    assert request.address is None and request.address_id is None
    assert event.from_value.startswith(f"{match.group(0)} (")
    assert event.to_value == f"{FRESH_POND[1]:.6f}, {FRESH_POND[0]:.6f}"


def test_a_pin_nudged_beside_its_asset_keeps_it_and_one_moved_away_lets_go(sessions, cambridge):
    lon, lat = KNOWN_POLE_LONLAT
    near_lon, near_lat, _ = GEOD.fwd(lon, lat, 90, 12)
    request, event = _move(sessions, cambridge, near_lon, near_lat)
    assert request.asset_ref == KNOWN_POLE and event.note is None
    far_lon, far_lat, _ = GEOD.fwd(lon, lat, 90, 200)
    request, event = _move(sessions, cambridge, far_lon, far_lat)
    assert request.asset_ref is None and request.asset_layer_id is None
    assert event.note == f"No longer about street light {KNOWN_POLE}: the pin is 200 m from it"
