"""Open311 and the city's places: address_string through the geocoder (placed only when
it is certain, else 400 naming the candidates), address_id as the city's own address id,
and a category's asset named in attribute[asset_id] (its service definition says so)."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from werkzeug.datastructures import MultiDict

from places import store
from places.parse import normalise_street
from spatial.apikeys import create_key
from spatial.models import Jurisdiction, Service, ServiceAttribute, ServiceRequest
from tests.support.asset_city import GEOD, SERVICE, make_asset_city, offset
from tests.support.open311 import ATTRIBUTE, conforms, elements, open311_errors, xml_doc
from webmap.open311 import bp, catalog

V2 = "/open311/v2"

# (city's id, number, street, zip, metres from the centre, azimuth)
ADDRESSES = [
    ("LA-1111", 1111, "S Figueroa St", "90015", 300, 45),
    ("LA-1200", 1200, "W Temple St", "90012", 600, 300),
    ("LA-0012A", 12, "Elm St", "90013", 900, 90),
    ("LA-0012B", 12, "Elm Ave", "90013", 2500, 200),
]


def _where(metres: float, azimuth: float) -> tuple[float, float]:
    return offset(metres, azimuth)


@pytest.fixture
def api(app, sessions):
    if "open311" not in app.blueprints:
        app.register_blueprint(bp)
    catalog.forget()
    with sessions.begin() as s:
        made = make_asset_city(s)
        city = made["city"]
        _, key = create_key(s, "testville", "test client")
        dataset = store.begin(
            s,
            city,
            "addresses",
            source_name="addresses.csv",
            mapping={"number": "N", "street": "S", "zip": "Z", "id": "ID"},
            imported_by="test",
        )
        rows = []
        for source_id, number, street, zip_code, metres, azimuth in ADDRESSES:
            lat, lon = _where(metres, azimuth)
            rows.append(
                store.AddressRow(
                    lon=lon,
                    lat=lat,
                    number=number,
                    street=normalise_street(street),
                    zip=zip_code,
                    source_id=source_id,
                )
            )
        store.add_addresses(s, dataset, rows)
        store.finish(s, dataset, rows_read=len(rows), rows_bad=0)
        points = made["points"]
    return SimpleNamespace(client=app.test_client(), key=key, sessions=sessions, points=points)


def post(api, fmt: str = "json", **fields):
    data = MultiDict({"api_key": api.key, "service_code": "pothole"})
    if fields.get("service_code", "pothole") == "pothole":
        data.add("attribute[depth]", "12")
    for name, value in fields.items():
        data.poplist(name)
        if value is not None:
            data.add(name, value)
    return api.client.post(f"{V2}/requests.{fmt}", data=data)


def created(api, resp) -> dict:
    assert resp.status_code == 200, resp.get_data(as_text=True)
    sid = resp.get_json()[0]["service_request_id"]
    got = api.client.get(f"{V2}/requests/{sid}.json")
    assert got.status_code == 200
    (one,) = got.get_json()
    conforms("requests", [one])
    return one


def _metres(a, b) -> float:
    return GEOD.inv(a[1], a[0], b[1], b[0])[2]


# --- address_string -----------------------------------------------------------------


def test_a_certain_address_string_places_the_request_with_the_citys_id(api):
    one = created(api, post(api, address_string="1111 south figueroa street"))
    assert one["address"].startswith("1111 S FIGUEROA ST")
    assert one["address_id"] == "LA-1111"
    assert _metres((one["lat"], one["long"]), _where(300, 45)) < 1


def test_an_unsure_address_string_is_400_naming_the_candidates(api):
    for fmt in ("json", "xml"):
        [(code, text)] = open311_errors(post(api, fmt, address_string="12 Elm"), fmt, 400)
        assert code == 400
        assert "address_string '12 Elm' is not certain: did you mean" in text
        assert "12 ELM ST" in text and "12 ELM AVE" in text
        assert re.search(r"\(0\.\d\d\)", text)
        assert "send lat and long, or address_id" in text
    with api.sessions() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(ServiceRequest)) == 0


def test_an_address_string_that_matches_nothing_is_400(api):
    [(code, text)] = open311_errors(post(api, address_string="99 Nowhere Boulevard"), "json", 400)
    assert "address_string" in text and "lat and long" in text


def test_an_address_string_that_cannot_be_looked_up_is_400(api):
    for bad in ("x" * 400, "12 Elm\x07 St"):
        [(code, text)] = open311_errors(post(api, address_string=bad), "json", 400)
        assert code == 400 and "address_string" in text


def test_lat_and_long_win_over_the_address_string(api):
    lat, lon = _where(50, 0)
    one = created(api, post(api, lat=str(lat), long=str(lon), address_string="12 Elm"))
    assert one["address"] == "12 Elm"
    assert (one["lat"], one["long"]) == pytest.approx((lat, lon))


# --- address_id ---------------------------------------------------------------------


def test_address_id_is_the_citys_own_id(api):
    one = created(api, post(api, address_id="LA-1200"))
    assert one["address"].startswith("1200 W TEMPLE ST")
    assert one["address_id"] == "LA-1200"
    assert _metres((one["lat"], one["long"]), _where(600, 300)) < 1
    xml = api.client.get(f"{V2}/requests/{one['service_request_id']}.xml")
    (el,) = list(xml_doc(xml, "service_requests"))
    assert el.find("address_id").text == "LA-1200"


def test_an_unknown_address_id_is_400(api):
    for fmt, value in (("json", "LA-9999"), ("xml", "1"), ("json", "x" * 101)):
        [(code, text)] = open311_errors(post(api, fmt, address_id=value), fmt, 400)
        assert code == 400 and "address_id" in text


def test_a_pin_without_an_address_gets_the_nearest_one(api):
    lat, lon = _where(305, 45)  # 5 m from 1111 S Figueroa St
    one = created(api, post(api, lat=str(lat), long=str(lon)))
    assert one["address"].startswith("1111 S FIGUEROA ST")
    assert one["address_id"] == "LA-1111"


# --- assets -------------------------------------------------------------------------


def _definition(api, code: str, fmt: str = "json"):
    resp = api.client.get(f"{V2}/services/{code}.{fmt}")
    assert resp.status_code == 200
    return resp


def test_a_category_about_assets_says_so_in_its_definition(api):
    body = _definition(api, SERVICE).get_json()
    conforms("service-definition", body)
    (attr,) = body["attributes"]
    assert attr["code"] == "asset_id" and attr["datatype"] == "string"
    assert attr["required"] is False and attr["variable"] is True and attr["order"] == 1
    assert attr["description"] == "Street light: the number on it"
    el = xml_doc(_definition(api, SERVICE, "xml"), "service_definition")
    (xml_attr,) = list(el.find("attributes"))
    elements(xml_attr, ATTRIBUTE, ["variable", "code", "datatype", "required", "order"])
    assert xml_attr.find("code").text == "asset_id"
    services = api.client.get(f"{V2}/services.json").get_json()
    assert next(s for s in services if s["service_code"] == SERVICE)["metadata"] is True
    # other categories are unchanged
    codes = [a["code"] for a in _definition(api, "pothole").get_json()["attributes"]]
    assert "asset_id" not in codes


def test_a_post_naming_an_asset_is_placed_at_it(api):
    one = created(api, post(api, service_code=SERVICE, **{"attribute[asset_id]": " 791 - 3 "}))
    assert _metres((one["lat"], one["long"]), api.points["791-3"]) < 0.05
    with api.sessions() as s:
        req = s.scalar(
            sa.select(ServiceRequest).where(ServiceRequest.public_id == one["service_request_id"])
        )
        assert req.asset_ref == "791-3" and req.asset_layer_id is not None
        assert not req.attributes  # the asset is not an answer


def test_a_post_with_a_pin_near_the_asset_snaps_and_a_far_one_is_refused(api):
    lat, lon = offset(30, 10, api.points["791-2"])
    one = created(
        api,
        post(
            api,
            service_code=SERVICE,
            lat=str(lat),
            long=str(lon),
            **{"attribute[asset_id]": "791-2"},
        ),
    )
    assert _metres((one["lat"], one["long"]), api.points["791-2"]) < 0.05
    lat, lon = offset(900, 10, api.points["791-2"])
    [(code, text)] = open311_errors(
        post(
            api,
            service_code=SERVICE,
            lat=str(lat),
            long=str(lon),
            **{"attribute[asset_id]": "791-2"},
        ),
        "json",
        400,
    )
    assert text.startswith("attribute[asset_id]: ") and "m from the pin" in text


def test_an_unknown_asset_is_400_naming_it(api):
    for fmt in ("json", "xml"):
        [(code, text)] = open311_errors(
            post(api, fmt, service_code=SERVICE, **{"attribute[asset_id]": "4711"}), fmt, 400
        )
        assert text == "attribute[asset_id]: No street light 4711 in Testville"


def test_a_category_about_assets_still_takes_a_report_without_one(api):
    lat, lon = _where(20, 180)
    one = created(api, post(api, service_code=SERVICE, lat=str(lat), long=str(lon)))
    assert (one["lat"], one["long"]) == pytest.approx((lat, lon))


def test_the_citys_own_question_of_that_code_keeps_its_answers(api):
    with api.sessions.begin() as s:
        city = s.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == "testville"))
        light = s.scalar(
            sa.select(Service).where(Service.jurisdiction_id == city.id, Service.code == SERVICE)
        )
        s.add(
            ServiceAttribute(
                service_id=light.id,
                code="asset_id",
                datatype="string",
                description="Your own reference",
                order=1,
            )
        )
    attrs = _definition(api, SERVICE).get_json()["attributes"]
    assert [(a["code"], a["description"]) for a in attrs] == [("asset_id", "Your own reference")]
    lat, lon = _where(20, 180)
    one = created(
        api,
        post(
            api,
            service_code=SERVICE,
            lat=str(lat),
            long=str(lon),
            **{"attribute[asset_id]": "mine"},
        ),
    )
    with api.sessions() as s:
        req = s.scalar(
            sa.select(ServiceRequest).where(ServiceRequest.public_id == one["service_request_id"])
        )
        assert req.attributes == {"asset_id": "mine"} and req.asset_ref is None


def test_a_category_tied_to_a_layer_later_takes_assets_at_once(api):
    # The POST's catalogue is cached under the settings stamp: the change must show.
    assert post(api, **{"attribute[asset_id]": "791-2"}).status_code == 400  # pothole: none
    with api.sessions.begin() as s:
        light = s.scalar(sa.select(Service).where(Service.code == SERVICE))
        pothole = s.scalar(sa.select(Service).where(Service.code == "pothole"))
        pothole.asset_layer_id = light.asset_layer_id
    one = created(api, post(api, **{"attribute[asset_id]": "791-2"}))
    assert _metres((one["lat"], one["long"]), api.points["791-2"]) < 0.05


def test_the_openapi_document_describes_the_asset_and_address_id(api):
    doc = api.client.get(f"{V2}/openapi.json").get_json()
    form = doc["paths"]["/requests.{fmt}"]["post"]["requestBody"]["content"]
    props = form["application/x-www-form-urlencoded"]["schema"]["properties"]
    assert props["attribute[asset_id]"]["type"] == "string"
    assert "address_id" in doc["components"]["schemas"]["Request"]["properties"]
