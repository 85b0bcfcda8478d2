"""The resident's places in a real Chromium, in a real city (Cambridge's centrelines and
street lights): type an address and pick a candidate, drop and drag the pin and read its
address, and choose a street light on the map or by its pole number.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlencode, urlsplit
from urllib.request import urlopen

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect
from pyproj import Geod
from shapely.geometry import shape

from spatial.models import Department, Service, ServiceRequest
from spatial.models_places import Asset, AssetLayer
from tests.support.browser import chromium, serve, watch_problems
from tests.support.places_city import (
    CENTERLINES,
    KNOWN_POLE,
    KNOWN_POLE_LONLAT,
    LIGHTS_LAYER,
    make_cambridge_city,
)

pytestmark = pytest.mark.e2e

GEOD = Geod(ellps="WGS84")
LOOKING_UP = re.compile(r"^Looking up")
# 1351 Cambridge St: on the right side of segment Cambrid_St_29 (1337..1369, odd).
RANGE_SEGMENT, RANGE_NUMBER = "Cambrid_St_29", 1351


def metres(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    return GEOD.inv(lon1, lat1, lon2, lat2)[2]


def range_truth() -> tuple[float, float]:
    """(lon, lat) of 1351 Cambridge St by shapely, from the file's segment and range."""
    features = json.loads(CENTERLINES.read_text())["features"]
    f = next(f for f in features if f["properties"].get("ID") == RANGE_SEGMENT)
    p = f["properties"]
    share = (RANGE_NUMBER - p["R_From"]) / (p["R_To"] - p["R_From"])
    point = shape(f["geometry"]).interpolate(share, normalized=True)
    return point.x, point.y


@pytest.fixture
def cambridge(sessions):
    with sessions.begin() as s:
        city = make_cambridge_city(s)
        dpw = Department(jurisdiction_id=city.id, code="dpw", name="Public Works")
        s.add(dpw)
        s.flush()
        layer = s.scalar(
            sa.select(AssetLayer).where(
                AssetLayer.jurisdiction_id == city.id, AssetLayer.name == LIGHTS_LAYER
            )
        )
        s.add_all(
            [
                Service(
                    jurisdiction_id=city.id,
                    code="streetlight",
                    name="Street light out",
                    group="Streets",
                    default_department_id=dpw.id,
                    asset_layer_id=layer.id,
                ),
                Service(
                    jurisdiction_id=city.id,
                    code="pothole",
                    name="Pothole",
                    group="Streets",
                    default_department_id=dpw.id,
                ),
            ]
        )


@pytest.fixture
def site(app, cambridge):
    with serve(app) as base, chromium() as browser:
        yield base, browser


def open_report(browser, base):
    ctx = browser.new_context(viewport={"width": 1000, "height": 900})
    page = ctx.new_page()
    problems = watch_problems(page)
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(f"{base}/report?city=cambridge")
    page.wait_for_selector("#report-map[data-ready='1']")
    return ctx, page, problems, requested


def local_only(requested: list[str]) -> None:
    outside = [u for u in requested if urlsplit(u).hostname not in ("127.0.0.1", None)]
    assert outside == [], f"requests left localhost: {outside}"


def pin(page) -> tuple[float, float]:
    """(lon, lat) of the pin, from the form's fields."""
    return float(page.input_value("#lon")), float(page.input_value("#lat"))


def reverse(base: str, lon: float, lat: float) -> dict:
    query = urlencode({"city": "cambridge", "lat": lat, "lon": lon})
    with urlopen(f"{base}/api/addresses/reverse?{query}") as res:
        return json.loads(res.read())


def test_type_an_address_pick_a_candidate_then_drop_and_drag_the_pin(site):
    base, browser = site
    ctx, page, problems, requested = open_report(browser, base)

    box = page.get_by_role("combobox", name="Search an address, a corner or a street")
    box.press_sequentially(f"{RANGE_NUMBER} Cambridge St", delay=20)
    listbox = page.get_by_role("listbox", name="Places that match")
    listbox.wait_for()
    first = listbox.get_by_role("option").first
    assert first.inner_text().startswith(f"{RANGE_NUMBER} CAMBRIDGE ST")
    assert "estimated along the street" in first.inner_text()
    assert "place" in page.locator("#address-status").inner_text()
    # Keyboard: down to the first, Enter picks it (and never sends the report).
    box.press("ArrowDown")
    assert box.get_attribute("aria-activedescendant") == "addr-opt-0"
    box.press("Enter")
    assert listbox.is_hidden()
    page.locator("#pin-info", has_text=f"Pin placed at {RANGE_NUMBER} CAMBRIDGE ST").wait_for()
    assert page.input_value("#address").startswith(f"{RANGE_NUMBER} CAMBRIDGE ST")
    assert metres(*pin(page), *range_truth()) < 25
    assert page.locator(".leaflet-marker-icon").count() == 1
    # The map centred on the pin.
    centre = page.evaluate(
        "(() => { const r = document.getElementById('report-map').getBoundingClientRect();"
        " const m = document.querySelector('.leaflet-marker-icon').getBoundingClientRect();"
        " return [m.left + m.width / 2 - r.left - r.width / 2, m.bottom - r.top - r.height / 2]; })()"
    )
    assert abs(centre[0]) < 30 and abs(centre[1]) < 30

    # Dropping the pin elsewhere: the address of that spot replaces the chosen one.
    before = pin(page)
    page.locator("#report-map").click(position={"x": 300, "y": 300})
    expect(page.locator("#lon")).not_to_have_value(f"{before[0]:.6f}")
    expect(page.locator("#pin-info")).not_to_have_text(LOOKING_UP)
    lon, lat = pin(page)
    truth = reverse(base, lon, lat)
    assert truth["inside"] and truth["address"]
    assert page.input_value("#address") == truth["address"]
    assert truth["address"] in page.locator("#pin-info").inner_text()
    assert page.input_value("#address-id") == (truth["address_id"] or "")

    # Dragging it: the address follows the pin.
    marker = page.locator(".leaflet-marker-icon").first.bounding_box()
    x, y = marker["x"] + marker["width"] / 2, marker["y"] + marker["height"] - 4
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 60, y + 40, steps=8)
    page.mouse.move(x + 120, y + 80, steps=8)
    page.mouse.up()
    expect(page.locator("#lon")).not_to_have_value(f"{lon:.6f}")
    expect(page.locator("#pin-info")).not_to_have_text(LOOKING_UP)
    lon2, lat2 = pin(page)
    assert metres(lon, lat, lon2, lat2) > 20
    truth2 = reverse(base, lon2, lat2)
    expect(page.locator("#address")).to_have_value(truth2["address"] or "")
    assert problems == []
    local_only(requested)
    ctx.close()


def test_choose_a_street_light_on_the_map_and_by_its_number(site, sessions):
    base, browser = site
    ctx, page, problems, requested = open_report(browser, base)
    pole_lon, pole_lat = KNOWN_POLE_LONLAT
    # Without a light category there is no number field.
    assert page.locator("#asset-field").is_hidden()
    page.get_by_label("Category").select_option("streetlight")
    field = page.get_by_label("Street light number")
    field.wait_for()
    # A pin about 40 m from pole 791-2, by coordinates.
    page.locator("details.rp-coords summary").click()
    page.fill("#lat", f"{pole_lat + 0.00036:.6f}")
    page.fill("#lon", f"{pole_lon:.6f}")
    page.locator("#lon").dispatch_event("change")
    page.wait_for_selector(f".rp-asset[data-ref='{KNOWN_POLE}']")
    shown = int(page.get_attribute("#report-form", "data-assets"))
    with sessions() as s:
        # Every light within 150 m of the pin is on the map (counted here by PostGIS).
        near = s.scalar(
            sa.text(
                "SELECT count(*) FROM asset WHERE ST_DWithin(location::geography,"
                " ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, 150)"
            ),
            {"lon": pole_lon, "lat": pole_lat + 0.00036},
        )
    assert shown == near >= 1
    page.locator(f".rp-asset[data-ref='{KNOWN_POLE}']").click()
    assert field.input_value() == KNOWN_POLE
    chosen = page.locator(".rp-asset--chosen")
    chosen.wait_for()
    assert chosen.get_attribute("data-ref") == KNOWN_POLE
    assert f"Street light {KNOWN_POLE}" in page.locator("#asset-status").inner_text()
    # The pin snapped to the pole.
    assert metres(*pin(page), pole_lon, pole_lat) < 1

    # Typing another pole's number finds it and moves the pin there.
    with sessions() as s:
        other = s.scalars(
            sa.select(Asset).where(Asset.ref != KNOWN_POLE).order_by(Asset.id).limit(1)
        ).one()
        other_ref = other.ref
        other_lon, other_lat = s.execute(
            sa.select(sa.func.ST_X(Asset.location), sa.func.ST_Y(Asset.location)).where(
                Asset.id == other.id
            )
        ).one()
    field.fill(other_ref)
    field.press("Enter")
    expect(page.locator(".rp-asset--chosen")).to_have_attribute("data-ref", other_ref)
    assert metres(*pin(page), other_lon, other_lat) < 1
    # An unknown number says so beside the field.
    field.fill("NO-SUCH-99")
    field.press("Enter")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#asset-status")).to_have_text(re.compile(r"^No .*NO-SUCH-99"))

    # Back to 791-2 by tapping it, then send.
    page.fill("#lat", f"{pole_lat + 0.00036:.6f}")
    page.fill("#lon", f"{pole_lon:.6f}")
    page.locator("#lon").dispatch_event("change")
    page.locator(f".rp-asset[data-ref='{KNOWN_POLE}']").click()
    assert field.input_value() == KNOWN_POLE
    page.get_by_label("Describe the problem").fill("Dark all night")
    page.get_by_role("button", name="Send report").click()
    page.wait_for_url("**/report/done/**")
    assert page.locator("#asset").inner_text() == f"Street light {KNOWN_POLE}"
    with sessions() as s:
        req = s.scalars(sa.select(ServiceRequest).order_by(ServiceRequest.id.desc())).first()
        assert req.asset_ref == KNOWN_POLE
        x, y = s.execute(
            sa.select(
                sa.func.ST_X(ServiceRequest.location), sa.func.ST_Y(ServiceRequest.location)
            ).where(ServiceRequest.id == req.id)
        ).one()
    assert metres(x, y, pole_lon, pole_lat) < 1
    assert [p for p in problems if "status of 404" not in p] == []
    local_only(requested)
    ctx.close()
