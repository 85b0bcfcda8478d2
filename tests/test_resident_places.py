"""The resident's places through the real app and database: the place search and the
reverse look-up (JSON), a typed address on the map form placed only when the geocoder is
sure, the map-free form's candidates as radio buttons, the locate page's search, and the
asset number field (a street light by its pole number) on the confirmation and tracking
pages.

Truth is built beside the code under test: the Cambridge point of a range address is
interpolated here with shapely along its centreline from the file's own range.
"""

from __future__ import annotations

import html as htmllib
import json
import re

import pytest
import sqlalchemy as sa
from geoalchemy2.shape import to_shape
from pyproj import Geod
from shapely.geometry import Point, shape

from places import store
from places.parse import normalise_street
from spatial.models import Department, Service, ServiceRequest
from spatial.models_places import AssetLayer
from tests.support.places_city import (
    CENTERLINES,
    KNOWN_POLE,
    KNOWN_POLE_LONLAT,
    LIGHTS_LAYER,
    make_cambridge_city,
)
from tests.support.resident_city import ADDRESS_IDS, ADDRESSES, OUTSIDE, make_resident_city

GEOD = Geod(ellps="WGS84")
MAIN = "100 N MAIN ST, 90012"
# A range address of Cambridge: the right side of 'Cambridge St' segment Cambrid_St_29
# holds 1337..1369 (odd); 1351 lies 14/32 of the way along it.
RANGE_SEGMENT, RANGE_NUMBER = "Cambrid_St_29", 1351


def metres(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    return GEOD.inv(lon1, lat1, lon2, lat2)[2]


def range_truth() -> tuple[float, float]:
    """(lon, lat) of 1351 Cambridge St by shapely, from the file's segment and range."""
    features = json.loads(CENTERLINES.read_text())["features"]
    f = next(f for f in features if f["properties"].get("ID") == RANGE_SEGMENT)
    p = f["properties"]
    line = shape(f["geometry"])
    share = (RANGE_NUMBER - p["R_From"]) / (p["R_To"] - p["R_From"])
    point = line.interpolate(share, normalized=True)
    return point.x, point.y


@pytest.fixture
def testville(sessions):
    with sessions.begin() as s:
        make_resident_city(s)


@pytest.fixture
def cambridge(sessions):
    """Cambridge with its streets and lights, a street-light category tied to the layer
    and a pothole category without one."""
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
    return "cambridge"


def csrf(client, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def text(html: str) -> str:
    return htmllib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def radios(html: str) -> list[tuple[str, str]]:
    """(value, label text) of the place_choice radio buttons of a page."""
    found = []
    for m in re.finditer(
        r'<input type="radio" id="(place-choice-\d+)" name="place_choice"'
        r' value="(\d+)"',
        html,
    ):
        label = re.search(rf'<label for="{m.group(1)}">(.*?)</label>', html, re.S).group(1)
        found.append((m.group(2), text(label).strip()))
    return found


def count_requests(sessions) -> int:
    with sessions() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(ServiceRequest))


def newest(sessions) -> ServiceRequest:
    with sessions() as s:
        req = s.scalars(sa.select(ServiceRequest).order_by(ServiceRequest.id.desc())).first()
        point = to_shape(req.location) if req.location is not None else None
        s.expunge(req)
        req.point = point
        return req


def map_report(client, city: str = "testville", **fields) -> dict:
    data = {
        "csrf_token": csrf(client, f"/report?city={city}"),
        "form": "map",
        "service_code": "graffiti",
        "attribute[surface]": "wall",
        "lat": "",
        "lon": "",
        "address": "",
        "description": "Tag on the wall",
        "contact_email": "ana@example.org",
    }
    data.update(fields)
    return {k: v for k, v in data.items() if v is not None}


# ------------------------------------------------------------------------- the JSON


def test_place_search_json_gives_candidates_with_their_match_type(client, testville):
    body = client.get("/api/addresses/search?q=100+N+Main+St").get_json()
    assert body["confident"] is True
    best = body["candidates"][0]
    assert best["address"] == MAIN and best["match_type"] == "address_point"
    assert best["match_label"] == "exact address"
    assert best["address_id"] == ADDRESS_IDS[MAIN]
    lon, lat = ADDRESSES[MAIN]
    assert metres(best["lon"], best["lat"], lon, lat) < 1
    # A street alone is never a place to put the pin without asking.
    body = client.get("/api/addresses/search?q=main+st").get_json()
    assert body["confident"] is False and body["candidates"]
    # Too short: nothing looked up, nothing refused.
    body = client.get("/api/addresses/search?q=ma").get_json()
    assert body == {"query": "ma", "confident": False, "candidates": []}


@pytest.mark.parametrize("q", ["1" * 10_000, "100 Main St\x07", "100 Main\nSt\x00"])
def test_place_search_refuses_text_it_cannot_look_up(client, testville, q):
    res = client.get("/api/addresses/search", query_string={"q": q})
    assert res.status_code == 400
    body = res.get_json()
    assert body["error"] and body.get("field") == "address"


def test_reverse_json_names_the_address_under_the_pin(client, testville):
    lon, lat = ADDRESSES[MAIN]
    body = client.get(f"/api/addresses/reverse?lat={lat + 0.00003}&lon={lon}").get_json()
    assert body["inside"] is True
    assert body["address"] == MAIN and body["match_type"] == "address_point"
    assert body["address_id"] == ADDRESS_IDS[MAIN] and body["distance_m"] < 10
    body = client.get(f"/api/addresses/reverse?lat={OUTSIDE[0]}&lon={OUTSIDE[1]}").get_json()
    assert body["inside"] is False and body["address"] is None
    assert "outside Testville" in body["message"]
    assert client.get("/api/addresses/reverse?lat=abc&lon=1").status_code == 400


def test_reverse_json_away_from_any_address_names_the_corner(client, sessions, testville):
    """Two streets without address ranges crossing where no address is near: the pin is
    put into words with the street and its cross street."""
    from spatial.models import Jurisdiction

    with sessions.begin() as s:
        city = s.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == "testville"))
        dataset = store.begin(
            s, city, "streets", source_name="test", mapping={}, imported_by="test"
        )
        # A centreline file is noded: each street ends where it meets the other.
        corner = (-118.2900, 34.0200)
        ends = {
            "Elm Street": [(-118.2900, 34.0150), (-118.2900, 34.0250)],
            "Oak Avenue": [(-118.2950, 34.0200), (-118.2850, 34.0200)],
        }
        store.add_streets(
            s,
            dataset,
            [
                store.StreetRow(coords=[end, corner], street=normalise_street(name))
                for name, pair in ends.items()
                for end in pair
            ],
        )
        store.finish(s, dataset, rows_read=4, rows_bad=0)
    body = client.get("/api/addresses/reverse?lat=34.02005&lon=-118.28995").get_json()
    assert body["match_type"] == "near" and body["address_id"] is None
    assert body["address"].startswith("near ")
    assert "ELM ST" in body["address"] and "OAK AVE" in body["address"]


# ---------------------------------------------------------------- the map form's text


def test_a_confident_typed_address_without_a_pin_is_placed(client, sessions, testville):
    res = client.post("/report", data=map_report(client, q="100 N Main Street, 90012"))
    assert res.status_code == 303, text(res.get_data(as_text=True))[:600]
    req = newest(sessions)
    lon, lat = ADDRESSES[MAIN]
    assert req.address == MAIN and req.address_id == ADDRESS_IDS[MAIN]
    assert metres(req.point.x, req.point.y, lon, lat) < 1


def test_an_unsure_typed_address_is_never_placed_but_offered(client, sessions, testville):
    before = count_requests(sessions)
    # The city has 100 N MAIN ST but no S MAIN ST: close, but not sure.
    res = client.post("/report", data=map_report(client, q="100 S Main St"))
    assert res.status_code == 422
    html = res.get_data(as_text=True)
    assert count_requests(sessions) == before
    assert "We are not sure which place you mean" in text(html)
    choices = radios(html)
    value, label = choices[0]
    assert label == f"{MAIN} (exact address)"
    # The text the person typed stays in the box, and the list says what it was for.
    assert 'name="q_searched" value="100 S Main St"' in html
    assert 'value="100 S Main St"' in re.search(r'<input id="address-q"[^>]*>', html).group(0)
    # A street alone is offered too, in words, and never taken unasked.
    res = client.post("/report", data=map_report(client, q="Main St"))
    assert res.status_code == 422 and count_requests(sessions) == before
    assert radios(res.get_data(as_text=True)) == [("0", "N MAIN ST (street only)")]
    res = client.post(
        "/report",
        data=map_report(client, q="100 S Main St", q_searched="100 S Main St", place_choice=value),
    )
    assert res.status_code == 303
    req = newest(sessions)
    assert req.address == MAIN and req.address_id == ADDRESS_IDS[MAIN]
    lon, lat = ADDRESSES[MAIN]
    assert metres(req.point.x, req.point.y, lon, lat) < 1


def test_a_typed_address_that_matches_nothing_says_so(client, sessions, testville):
    before = count_requests(sessions)
    res = client.post("/report", data=map_report(client, q="Zzzyx Qqqrt Boulevard"))
    assert res.status_code == 422
    assert "No place in Testville matches" in text(res.get_data(as_text=True))
    res = client.post("/report", data=map_report(client, q="12 Main St\x07"))
    assert res.status_code == 422
    assert count_requests(sessions) == before


def test_a_pin_moved_off_the_chosen_address_point_keeps_no_address_id(client, sessions, testville):
    lon, lat = ADDRESSES[MAIN]
    # The form still carries the id of the point chosen before the pin was dragged 1 km.
    res = client.post(
        "/report",
        data=map_report(client, lat=str(lat + 0.01), lon=str(lon), address_id=ADDRESS_IDS[MAIN]),
    )
    assert res.status_code == 303
    req = newest(sessions)
    assert req.address_id is None
    res = client.post(
        "/report",
        data=map_report(client, lat=str(lat), lon=str(lon), address_id=ADDRESS_IDS[MAIN]),
    )
    assert res.status_code == 303
    req = newest(sessions)
    assert req.address_id == ADDRESS_IDS[MAIN] and req.address == MAIN


# ------------------------------------------------------------------ the map-free form


def test_map_free_form_lists_candidates_as_radio_buttons_and_takes_the_choice(
    client, sessions, testville
):
    street = client.get("/report/plain?service_code=graffiti&q=main+st&go=1")
    assert street.status_code == 422
    assert radios(street.get_data(as_text=True)) == [("0", "N MAIN ST (street only)")]
    res = client.get("/report/plain?service_code=graffiti&q=100+S+Main+St&go=1")
    assert res.status_code == 422
    html = res.get_data(as_text=True)
    assert "Which place do you mean?" in html
    assert radios(html) == [("0", f"{MAIN} (exact address)")]
    page = client.get(
        "/report/plain?service_code=graffiti&q=100+S+Main+St&q_searched=100+S+Main+St"
        "&place_choice=0"
    )
    assert page.status_code == 200
    details = page.get_data(as_text=True)
    assert MAIN in text(details)
    assert f'name="address_id" value="{ADDRESS_IDS[MAIN]}"' in details
    form = {
        k: htmllib.unescape(v)
        for k, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', details)
    }
    form.update({"attribute[surface]": "wall", "description": "Tag", "contact_email": ""})
    res = client.post("/report", data=form)
    assert res.status_code == 303
    req = newest(sessions)
    assert req.address == MAIN and req.address_id == ADDRESS_IDS[MAIN]


def test_map_free_form_places_a_confident_address_at_once(client, testville):
    page = client.get("/report/plain?service_code=graffiti&q=250+S+Spring+St&go=1")
    assert page.status_code == 200
    assert "250 S SPRING ST, 90012" in text(page.get_data(as_text=True))
    nothing = client.get("/report/plain?service_code=graffiti&q=zzzz+qqqq+blvd&go=1")
    assert nothing.status_code == 422
    assert "No place in Testville matches 'zzzz qqqq blvd'" in text(nothing.get_data(as_text=True))
    refused = client.get("/report/plain", query_string={"service_code": "graffiti", "q": "x" * 300})
    assert refused.status_code == 422


# ------------------------------------------------------------- Cambridge: range, assets


def test_a_range_address_of_a_real_city_lands_on_its_street(client, sessions, cambridge):
    res = client.post(
        "/report?city=cambridge",
        data=map_report(
            client,
            "cambridge",
            service_code="pothole",
            q=f"{RANGE_NUMBER} Cambridge Street",
            **{"attribute[surface]": None},
        ),
    )
    assert res.status_code == 303, text(res.get_data(as_text=True))[:600]
    req = newest(sessions)
    lon, lat = range_truth()
    assert metres(req.point.x, req.point.y, lon, lat) < 25
    assert req.address.startswith(f"{RANGE_NUMBER} CAMBRIDGE ST")
    assert req.address_id is None  # an interpolated place has no address id


def test_the_asset_number_field_stores_the_light_and_shows_it(client, sessions, cambridge):
    page = client.get(
        "/report/plain?city=cambridge&service_code=streetlight&go=1&lat=42.3996&lon=-71.1387"
    )
    assert page.status_code == 200
    details = page.get_data(as_text=True)
    assert re.search(
        r'<label for="asset_ref"><span id="asset-title">Street light</span> number', details
    )
    form = {
        k: htmllib.unescape(v)
        for k, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', details)
    }
    before = count_requests(sessions)
    # An unknown pole: the field says so, nothing is stored.
    bad = client.post("/report?city=cambridge", data={**form, "asset_ref": "NO-SUCH-99"})
    assert bad.status_code == 422
    assert "NO-SUCH-99" in text(bad.get_data(as_text=True))
    assert 'aria-invalid="true"' in bad.get_data(as_text=True)
    assert count_requests(sessions) == before
    res = client.post("/report?city=cambridge", data={**form, "asset_ref": f" {KNOWN_POLE} "})
    assert res.status_code == 303
    req = newest(sessions)
    assert req.asset_ref == KNOWN_POLE
    # The pin is on the pole.
    assert metres(req.point.x, req.point.y, *KNOWN_POLE_LONLAT) < 1
    done = client.get(res.headers["Location"]).get_data(as_text=True)
    assert f"Street light {KNOWN_POLE}" in text(done)
    public = client.get(f"/requests/{req.public_id}?city=cambridge")
    assert f"Street light {KNOWN_POLE}" in text(public.get_data(as_text=True))


def test_the_map_form_offers_the_asset_field_only_for_a_category_with_a_layer(client, cambridge):
    html = client.get("/report?city=cambridge").get_data(as_text=True)
    option = re.search(r'<option value="streetlight"[^>]*>', html).group(0)
    assert 'data-asset-title="Street light"' in option
    pothole = re.search(r'<option value="pothole"[^>]*>', html).group(0)
    assert "data-asset-title" not in pothole
    # Hidden and disabled until such a category is chosen.
    assert re.search(r'id="asset-field"\s+hidden', html)
    assert re.search(r'<input id="asset_ref"[^>]*disabled', html)
    chosen = client.get("/report?city=cambridge&service=streetlight").get_data(as_text=True)
    assert not re.search(r'id="asset-field"\s+hidden', chosen)
    assert not re.search(r'<input id="asset_ref"[^>]*disabled', chosen)


def test_the_map_form_with_a_tapped_light_stores_it(client, sessions, cambridge):
    lon, lat = KNOWN_POLE_LONLAT
    res = client.post(
        "/report?city=cambridge",
        data=map_report(
            client,
            "cambridge",
            service_code="streetlight",
            lat=f"{lat:.6f}",
            lon=f"{lon:.6f}",
            asset_ref=KNOWN_POLE,
            **{"attribute[surface]": None},
        ),
    )
    assert res.status_code == 303, text(res.get_data(as_text=True))[:600]
    req = newest(sessions)
    assert req.asset_ref == KNOWN_POLE and req.address  # reverse geocoded
    assert Point(req.point.x, req.point.y).distance(Point(lon, lat)) < 1e-5


# ----------------------------------------------------------------- the locate page


def waiting_request(sessions, settings, city: str = "testville") -> tuple[str, str]:
    """A graffiti report sent without a place (as an e-mail may be): (public id, token)."""
    from intake.submit import Draft, submit

    with sessions.begin() as s:
        result = submit(
            s,
            Draft(
                city=city,
                service_code="graffiti",
                attributes={"surface": "wall"},
                description="Tag somewhere on my street",
                contact_email="ana@example.org",
                channel="email",
                allow_missing_location=True,
            ),
            media_dir=settings.media_dir,
            public_base_url=settings.public_base_url,
        )
        return result.public_id, result.token


def test_locate_page_search_lists_candidates_and_the_choice_places_the_pin(
    client, sessions, settings, testville
):
    public_id, token = waiting_request(sessions, settings)
    link = f"/requests/{public_id}?token={token}&locate=1"
    nothing = client.get(f"{link}&q=zzzz+qqqq+blvd").get_data(as_text=True)
    assert "No place in Testville matches 'zzzz qqqq blvd'" in text(nothing)
    street = client.get(f"{link}&q=main+st").get_data(as_text=True)
    assert radios(street) == [("0", "N MAIN ST (street only)")]
    html = client.get(f"{link}&q=100+S+Main+St").get_data(as_text=True)
    assert radios(html) == [("0", f"{MAIN} (exact address)")]
    value = "0"
    token_field = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    # Sent without ticking one: the list comes back, nothing is placed.
    res = client.post(
        f"/requests/{public_id}/locate",
        data={"csrf_token": token_field, "token": token, "q": "100 S Main St"},
    )
    assert res.status_code == 422
    assert "Choose a place from the list" in text(res.get_data(as_text=True))
    assert newest(sessions).location is None
    res = client.post(
        f"/requests/{public_id}/locate",
        data={
            "csrf_token": token_field,
            "token": token,
            "q": "100 S Main St",
            "place_choice": value,
        },
    )
    assert res.status_code == 303
    req = newest(sessions)
    assert req.address == MAIN and req.address_id == ADDRESS_IDS[MAIN]
    assert not req.needs_location


def test_locate_by_pin_takes_the_address_under_it(client, sessions, settings, testville):
    public_id, token = waiting_request(sessions, settings)
    html = client.get(f"/requests/{public_id}?token={token}&locate=1").get_data(as_text=True)
    token_field = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    lon, lat = ADDRESSES["250 S SPRING ST, 90012"]
    res = client.post(
        f"/requests/{public_id}/locate",
        data={
            "csrf_token": token_field,
            "token": token,
            "lat": f"{lat + 0.0001:.6f}",
            "lon": f"{lon:.6f}",
            # Whatever text a page sends, the server puts the pin into words itself.
            "address": "anything at all",
        },
    )
    assert res.status_code == 303
    req = newest(sessions)
    assert req.address == "250 S SPRING ST, 90012"
    assert req.address_id == ADDRESS_IDS["250 S SPRING ST, 90012"]


def test_locate_page_refuses_text_it_cannot_look_up(client, sessions, settings, testville):
    public_id, token = waiting_request(sessions, settings)
    query = {"token": token, "locate": "1", "q": "12 Main St " + "x" * 10_000}
    html = client.get(f"/requests/{public_id}", query_string=query).get_data(as_text=True)
    assert "200" in text(re.search(r'id="err-q".*?</p>', html, re.S).group(0))
    assert radios(html) == []
