"""Assets: finding one by its number, the nearby ones, a report about one (it snaps to the
asset), the report map's JSON, and the asset's history page for staff."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from intake.submit import Draft, ValidationFailed, submit
from places import assets
from spatial.accounts import create_user
from spatial.models import ServiceRequest, Status, now_utc
from spatial.models_places import AssetLayer
from tests.support.asset_city import GEOD, LAYER, POLES, SERVICE, make_asset_city, offset
from tests.support.city import INSIDE

BASE = "http://311.test"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def world(sessions):
    with sessions.begin() as s:
        made = make_asset_city(s)
        other = make_asset_city(s, "otherton")
        other["city"].public_id_prefix = "OT"
        for role in ("dispatcher", "crew", "planner"):
            create_user(
                s,
                email=f"{role}@testville.example",
                role=role,
                city_slug="testville",
                password=PASSWORD,
            )
        create_user(
            s,
            email="dispatcher@otherton.example",
            role="dispatcher",
            city_slug="otherton",
            password=PASSWORD,
        )
        return {
            "layer_id": made["asset_layer"].id,
            "other_layer_id": other["asset_layer"].id,
            "points": made["points"],
        }


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    return GEOD.inv(a[1], a[0], b[1], b[0])[2]


def _light(**kw) -> Draft:
    base = dict(city="testville", service_code=SERVICE, description="The light is out")
    base.update(kw)
    return Draft(**base)


def _submit(sessions, tmp_path, draft: Draft) -> ServiceRequest:
    with sessions.begin() as s:
        res = submit(s, draft, media_dir=tmp_path, public_base_url=BASE)
        public_id = res.public_id
    with sessions() as s:
        req = s.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == public_id))
        lat, lon = s.execute(
            sa.select(
                sa.func.ST_Y(ServiceRequest.location), sa.func.ST_X(ServiceRequest.location)
            ).where(ServiceRequest.id == req.id)
        ).one()
        s.expunge(req)
    req.lat_lon = (lat, lon)
    return req


# --- pure -----------------------------------------------------------------------------


def test_a_layer_title_names_one_of_its_things():
    def noun(title):
        return assets.asset_noun(AssetLayer(name="x", title=title))

    assert noun("Street lights") == "street light"
    assert noun("Street light") == "street light"
    assert noun("Benches") == "bench"
    assert noun("Trees") == "tree"
    assert noun("Utility poles") == "utility pole"
    assert noun("CCTV cameras") == "CCTV camera"
    assert noun("Bus stop facilities") == "bus stop facility"
    assert noun("Fire hydrants") == "fire hydrant"


def test_a_number_is_compared_without_case_or_spaces():
    assert assets.normalise_ref(" 791 - 2 ") == "791-2"
    assert assets.normalise_ref("a 7") == "A7"


# --- queries --------------------------------------------------------------------------


def test_an_asset_is_found_by_its_number_as_people_type_it(sessions, world):
    with sessions() as s:
        layer = s.get(AssetLayer, world["layer_id"])
        for typed in ("791-2", " 791-2 ", "791 - 2"):
            assert assets.asset_by_ref(s, layer, typed).ref == "791-2"
        assert assets.asset_by_ref(s, layer, "a7").ref == "A 7"
        assert assets.asset_by_ref(s, layer, "4711") is None
        assert assets.asset_by_ref(s, layer, "") is None
        # the other city's layer holds its own poles of the same numbers, not these
        other = s.get(AssetLayer, world["other_layer_id"])
        assert assets.asset_by_ref(s, other, "791-2").layer_id == other.id


def test_nearby_assets_are_those_within_150_true_metres_nearest_first(sessions, world):
    with sessions() as s:
        layer = s.get(AssetLayer, world["layer_id"])
        found = assets.assets_near(s, layer, INSIDE[1], INSIDE[0])
    assert [a.ref for a in found] == ["791-2", "791-3", "A 7"]  # not FAR-1 at 160 m
    for a in found:
        truth = _metres(INSIDE, (a.lat, a.lon))
        assert abs(a.distance_m - truth) < 0.5
        assert abs(truth - POLES[a.ref][0]) < 0.5
    with sessions() as s:
        layer = s.get(AssetLayer, world["layer_id"])
        assert [a.ref for a in assets.assets_near(s, layer, INSIDE[1], INSIDE[0], limit=1)] == [
            "791-2"
        ]
        assert [a.ref for a in assets.assets_near(s, layer, -118.21, 34.09)] == []


def test_an_asset_history_lists_its_requests_newest_first(sessions, world, tmp_path):
    first = _submit(sessions, tmp_path, _light(asset_ref="791-2"))
    second = _submit(sessions, tmp_path, _light(asset_ref="791 - 2"))
    _submit(sessions, tmp_path, _light(asset_ref="791-3"))
    with sessions() as s:
        layer = s.get(AssetLayer, world["layer_id"])
        past = assets.asset_history(s, layer, "791-2")
    assert [p.public_id for p in past] == [second.public_id, first.public_id]
    assert past[0].category == "Street light out" and past[0].status == Status.NEW.value


# --- intake ---------------------------------------------------------------------------


def test_a_report_naming_an_asset_stores_it_and_its_pin_snaps_to_it(sessions, world, tmp_path):
    near = offset(40, 45)  # the resident's GPS, 40 m from pole 791-2
    req = _submit(sessions, tmp_path, _light(asset_ref=" 791 - 2 ", lat=near[0], lon=near[1]))
    assert req.asset_ref == "791-2"  # as the city writes it
    assert req.asset_layer_id == world["layer_id"]
    assert _metres(req.lat_lon, world["points"]["791-2"]) < 0.01


def test_a_report_with_only_an_asset_number_is_placed_at_the_asset(sessions, world, tmp_path):
    req = _submit(sessions, tmp_path, _light(asset_ref="A 7"))
    assert req.asset_ref == "A 7"
    assert req.needs_location is False
    assert _metres(req.lat_lon, world["points"]["A 7"]) < 0.01


def test_an_unknown_asset_is_refused_by_name(sessions, world, tmp_path):
    with pytest.raises(ValidationFailed) as err, sessions.begin() as s:
        submit(s, _light(asset_ref="4711"), media_dir=tmp_path, public_base_url=BASE)
    assert err.value.errors == {"asset": "No street light 4711 in Testville"}
    with sessions() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(ServiceRequest)) == 0


def test_a_pin_far_from_the_named_asset_is_refused_not_moved(sessions, world, tmp_path):
    far = offset(400, 270)
    with pytest.raises(ValidationFailed) as err, sessions.begin() as s:
        submit(
            s,
            _light(asset_ref="791-2", lat=far[0], lon=far[1]),
            media_dir=tmp_path,
            public_base_url=BASE,
        )
    message = err.value.errors["asset"]
    assert "791-2" in message and re.search(r"\b(39\d|40\d) m from the pin", message), message


def test_a_category_without_a_layer_takes_no_asset(sessions, world, tmp_path):
    with pytest.raises(ValidationFailed) as err, sessions.begin() as s:
        submit(
            s,
            Draft(
                city="testville",
                service_code="pothole",
                lat=INSIDE[0],
                lon=INSIDE[1],
                attributes={"depth": "3"},
                asset_ref="791-2",
            ),
            media_dir=tmp_path,
            public_base_url=BASE,
        )
    assert "asset" in err.value.errors


def test_a_category_with_a_layer_still_takes_a_report_without_an_asset(sessions, world, tmp_path):
    req = _submit(sessions, tmp_path, _light(lat=INSIDE[0], lon=INSIDE[1], address="1 Main St"))
    assert req.asset_ref is None and req.asset_layer_id is None
    assert req.address == "1 Main St"


def test_the_channel_address_id_is_stored(sessions, world, tmp_path):
    req = _submit(
        sessions,
        tmp_path,
        _light(lat=INSIDE[0], lon=INSIDE[1], address="1 Main St", address_id="ADDR-0001"),
    )
    assert req.address_id == "ADDR-0001"
    with pytest.raises(ValidationFailed) as err, sessions.begin() as s:
        submit(
            s,
            _light(lat=INSIDE[0], lon=INSIDE[1], address="1 Main St", address_id="x" * 101),
            media_dir=tmp_path,
            public_base_url=BASE,
        )
    assert "address_id" in err.value.errors


# --- the report map's JSON ------------------------------------------------------------


def test_the_report_map_gets_the_nearby_assets_without_their_attributes(client, world):
    res = client.get(f"/api/assets/near?service={SERVICE}&lat={INSIDE[0]}&lon={INSIDE[1]}")
    assert res.status_code == 200
    body = res.get_json()
    assert body["layer"] == {"name": LAYER, "title": "Street lights"}
    assert [a["ref"] for a in body["assets"]] == ["791-2", "791-3", "A 7"]
    assert set(body["assets"][0]) == {"ref", "label", "lat", "lon"}
    assert body["assets"][0]["label"] == "Pole 791-2, Main St"
    assert "Owner" not in res.get_data(as_text=True)


def test_the_report_map_finds_an_asset_by_its_number(client, world):
    res = client.get(f"/api/assets/find?service={SERVICE}&ref=%20791%20-%202")
    assert res.status_code == 200
    asset = res.get_json()["asset"]
    assert asset["ref"] == "791-2"
    assert _metres((asset["lat"], asset["lon"]), world["points"]["791-2"]) < 0.05
    missing = client.get(f"/api/assets/find?service={SERVICE}&ref=4711")
    assert missing.status_code == 404
    assert missing.get_json()["error"] == "No street light 4711 in Testville"


@pytest.mark.parametrize(
    ("query", "status", "field"),
    [
        ("lat=34.05&lon=-118.25", 400, "service"),
        (f"service={SERVICE}&lat=north&lon=-118.25", 400, "lat"),
        (f"service={SERVICE}&lat=34.05&lon=-200", 400, "lon"),
        (f"service={SERVICE}&lat=nan&lon=-118.25", 400, "lat"),
        (f"service={SERVICE}&lat=34.05", 400, "lon"),
        ("service=nosuch&lat=34.05&lon=-118.25", 404, None),
        ("service=pothole&lat=34.05&lon=-118.25", 404, None),
    ],
)
def test_bad_nearby_questions_get_a_json_error(client, world, query, status, field):
    res = client.get(f"/api/assets/near?{query}")
    assert res.status_code == status
    body = res.get_json()
    assert body["error"]
    assert body.get("field") == field


def test_bad_find_questions_get_a_json_error(client, world):
    assert client.get(f"/api/assets/find?service={SERVICE}").status_code == 400
    long = client.get(f"/api/assets/find?service={SERVICE}&ref={'9' * 101}")
    assert long.status_code == 400 and long.get_json()["field"] == "ref"
    assert client.get("/api/assets/find?service=pothole&ref=791-2").status_code == 404


# --- the staff history page -----------------------------------------------------------


def _login(client, email: str) -> None:
    html = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    res = client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
    assert res.status_code == 302


def test_a_crew_sees_how_often_an_asset_failed(client, sessions, world, tmp_path):
    reqs = [_submit(sessions, tmp_path, _light(asset_ref="791-2")) for _ in range(3)]
    with sessions.begin() as s:
        old = s.get(ServiceRequest, reqs[0].id)
        old.requested_at = now_utc() - timedelta(days=500)
        old.status = Status.CLOSED.value
        old.closed_at = now_utc() - timedelta(days=490)
    _login(client, "crew@testville.example")
    res = client.get("/staff/assets/lights/791-2")
    assert res.status_code == 200
    html = res.get_data(as_text=True)
    assert "Street light" in html and "Pole 791-2, Main St" in html
    assert "FixtureType" in html and "LED" in html  # staff see the attributes
    assert "3 requests in all, 2 in the last 12 months" in html
    for req in reqs:  # a crew member's links open the crew's own view of the request
        assert f'href="/crew/requests/{req.public_id}"' in html
        assert f'href="/dispatch/requests/{req.public_id}"' not in html
    assert html.index(reqs[2].public_id) < html.index(reqs[0].public_id)  # newest first
    # a number typed loosely finds the same page; an unknown one is not found
    assert "3 requests in all" in client.get("/staff/assets/lights/791%20-%202").get_data(
        as_text=True
    )
    assert client.get("/staff/assets/lights/4711").status_code == 404
    assert client.get("/staff/assets/trees/791-2").status_code == 404


def test_a_number_with_a_slash_has_its_page(client, sessions, world):
    with sessions.begin() as s:
        from geoalchemy2.shape import from_shape
        from shapely.geometry import Point

        from spatial.models_places import Asset

        s.add(
            Asset(
                jurisdiction_id=s.get(AssetLayer, world["layer_id"]).jurisdiction_id,
                layer_id=world["layer_id"],
                ref="12/B",
                label="Pole 12/B",
                attributes={},
                location=from_shape(Point(INSIDE[1], INSIDE[0]), srid=4326),
            )
        )
    _login(client, "planner@testville.example")
    res = client.get("/staff/assets/lights/12/B")
    assert res.status_code == 200 and "Pole 12/B" in res.get_data(as_text=True)


def test_another_citys_asset_is_not_found_and_residents_sign_in(client, sessions, world, tmp_path):
    theirs = _submit(
        sessions, tmp_path, Draft(city="otherton", service_code=SERVICE, asset_ref="791-2")
    )
    assert client.get("/staff/assets/lights/791-2").status_code == 302  # sign in first
    _login(client, "dispatcher@testville.example")
    html = client.get("/staff/assets/lights/791-2").get_data(as_text=True)
    assert theirs.public_id not in html  # the other city's pole of the same number
    assert client.get("/staff/assets/lights/791-2?city=otherton").status_code == 403


def test_a_dispatcher_goes_from_the_asset_page_to_a_request_in_chromium(
    app, sessions, world, tmp_path
):
    from tests.support.browser import chromium, serve, watch_problems

    reqs = [_submit(sessions, tmp_path, _light(asset_ref="791-2")) for _ in range(2)]
    with serve(app) as base, chromium() as browser:
        page = browser.new_page()
        problems = watch_problems(page)
        page.goto(f"{base}/staff/assets/lights/791-2")
        assert "/login" in page.url  # staff sign in first
        page.fill("input[name=email]", "dispatcher@testville.example")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/staff/assets/lights/791-2")
        assert page.inner_text("h1") == "Street light 791-2"
        rows = page.locator("#asset-requests tbody tr")
        assert rows.count() == 2
        assert reqs[1].public_id in rows.nth(0).inner_text()
        page.click(f"text={reqs[0].public_id}")
        page.wait_for_url(f"**/dispatch/requests/{reqs[0].public_id}")
        assert "Street light out" in page.inner_text("main")
        assert not problems, problems


def test_an_asset_gone_from_a_new_import_keeps_its_history(client, sessions, world, tmp_path):
    req = _submit(sessions, tmp_path, _light(asset_ref="791-3"))
    with sessions.begin() as s:
        s.execute(sa.text("DELETE FROM asset WHERE ref = '791-3'"))
    _login(client, "dispatcher@testville.example")
    res = client.get("/staff/assets/lights/791-3")
    assert res.status_code == 200
    html = res.get_data(as_text=True)
    assert "no longer in the current Street lights set" in html
    assert req.public_id in html
