"""Open311 GeoReport v2: conformance, round trips in JSON and XML, errors, privacy,
extensions. Real PostGIS, the real app and blueprint, the public GeoReport v2 schemas."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from geoalchemy2.shape import from_shape
from PIL import Image
from shapely.geometry import MultiPolygon, box
from werkzeug.datastructures import MultiDict

from intake.submit import Draft, submit
from places import store as places_store
from places.parse import normalise_street
from spatial.apikeys import create_key
from spatial.models import (
    Jurisdiction,
    OutboxMessage,
    Photo,
    RequestEvent,
    Service,
    ServiceRequest,
    now_utc,
)
from tests.support.city import make_small_city
from tests.support.images import jpeg_bytes
from tests.support.open311 import (
    ATTRIBUTE,
    DISCOVERY,
    ENDPOINT,
    POST_ANSWER,
    REQUEST,
    SERVICE,
    TOKEN_ANSWER,
    UPDATE,
    W3C,
    conforms,
    elements,
    open311_errors,
    xml_doc,
    xml_equals_json,
)
from webmap.open311 import bp

V2 = "/open311/v2"
WEST = ("34.05", "-118.28")  # inside Testville's West zone
LA = ZoneInfo("America/Los_Angeles")
CONTACT = {
    "first_name": "Zebedee",
    "last_name": "Quartermaine",
    "email": "zebedee.q@example.org",
    "phone": "+1 555 867 5309",
    "device_id": "device-7f3a9c",
    "account_id": "acct-4242-secret",
}
SECRETS = [
    "Zebedee",
    "Quartermaine",
    "zebedee.q@example.org",
    "867 5309",
    "device-7f3a9c",
    "acct-4242-secret",
]


@pytest.fixture
def api(app, sessions):
    if "open311" not in app.blueprints:
        app.register_blueprint(bp)
    with sessions.begin() as s:
        make_small_city(s)
        _, key = create_key(s, "testville", "test client")
    return SimpleNamespace(client=app.test_client(), key=key, app=app, sessions=sessions)


def post(api, fmt: str = "json", **fields):
    data = MultiDict(
        {
            "api_key": api.key,
            "service_code": "pothole",
            "lat": WEST[0],
            "long": WEST[1],
            "attribute[depth]": "12",
        }
    )
    for name, value in fields.items():
        name = name.replace("__", "[").replace("_ARR", "][]").replace("_END", "]")
        data.poplist(name)
        if value is None:
            continue
        for v in value if isinstance(value, list) else [value]:
            data.add(name, v)
    return api.client.post(f"{V2}/requests.{fmt}", data=data)


def get_json(api, path: str, **query):
    resp = api.client.get(f"{V2}/{path}.json", query_string=query)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:800]
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    return resp.get_json()


def get_xml(api, path: str, root: str, **query):
    resp = api.client.get(f"{V2}/{path}.xml", query_string=query)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:800]
    return xml_doc(resp, root)


# --- discovery and services ------------------------------------------------------------


def test_discovery_in_both_formats(api):
    data = get_json(api, "discovery")
    assert set(data) == set(DISCOVERY)
    (endpoint,) = data["endpoints"]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"] == "http://127.0.0.1:5000/open311/v2"
    assert set(endpoint["formats"]) == {"text/xml", "application/json"}
    assert endpoint["type"] == "production"
    root = get_xml(api, "discovery", "discovery")
    parts = elements(root, DISCOVERY, DISCOVERY)
    (ep,) = list(parts["endpoints"])
    assert ep.tag == "endpoint"
    ep_parts = elements(ep, ENDPOINT, ENDPOINT)
    assert [f.tag for f in ep_parts["formats"]] == ["format", "format"]
    xml_equals_json(root, data)


def test_services_and_definitions_conform_and_hide_private_categories(api):
    with api.sessions.begin() as s:
        svc = s.scalar(sa.select(Service).where(Service.code == "pothole"))
        svc.keywords, svc.description = ["hole", "road surface"], "Holes in the road"
    services = get_json(api, "services")
    conforms("services", services)
    assert [s["service_code"] for s in services] == ["pothole"]  # "abuse" is private
    (pothole,) = services
    assert pothole == {
        "service_code": "pothole",
        "service_name": "Pothole",
        "description": "Holes in the road",
        "metadata": True,
        "type": "realtime",
        "keywords": "hole, road surface",
        "group": "Streets",
    }
    root = get_xml(api, "services", "services")
    (svc,) = list(root)
    assert svc.tag == "service"
    parts = elements(svc, SERVICE, ["service_code", "service_name", "metadata", "type"])
    assert parts["metadata"].text == "true" and parts["type"].text == "realtime"
    xml_equals_json(root, services)

    definition = get_json(api, "services/pothole")
    conforms("service-definition", definition)
    attrs = definition["attributes"]
    assert [a["code"] for a in attrs] == ["depth", "lane", "hazards", "seen"]
    assert [a["order"] for a in attrs] == [1, 2, 3, 4]
    assert attrs[0] == {
        "variable": True,
        "code": "depth",
        "datatype": "number",
        "required": True,
        "order": 1,
        "description": "How deep (cm)?",
    }
    assert attrs[2]["values"] == [
        {"key": "water", "name": "Water"},
        {"key": "traffic", "name": "Traffic"},
    ]
    root = get_xml(api, "services/pothole", "service_definition")
    parts = elements(root, ["service_code", "attributes"], ["service_code", "attributes"])
    xml_attrs = list(parts["attributes"])
    assert [a.tag for a in xml_attrs] == ["attribute"] * 4
    for el in xml_attrs:
        elements(el, ATTRIBUTE, ["variable", "code", "datatype", "required", "order"])
    values = list(elements(xml_attrs[2], ATTRIBUTE, [])["values"])
    assert [v.tag for v in values] == ["value", "value"]
    assert [(v.find("key").text, v.find("name").text) for v in values] == [
        ("water", "Water"),
        ("traffic", "Traffic"),
    ]
    xml_equals_json(root, definition)

    for fmt in ("json", "xml"):
        resp = api.client.get(f"{V2}/services/abuse.{fmt}")
        [(code, text)] = open311_errors(resp, fmt, 404)
        assert code == 404 and "abuse" in text


# --- round trips -----------------------------------------------------------------------


def test_post_round_trip_in_json(api):
    resp = post(
        api,
        "json",
        attribute__hazards_ARR=["water", "traffic"],
        attribute__lane_END="left",
        description="Deep hole\r\nnext to the bus stop",
        media_url="https://photos.example.org/p/123.jpg",
        address_string="5th and Main",
        **CONTACT,
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    answer = resp.get_json()
    conforms("post", answer)
    (created,) = answer
    assert list(created) == ["service_request_id", "token", "service_notice"]
    assert created["service_request_id"].startswith("TV-")
    assert created["service_notice"].startswith("Small potholes")
    sid, token = created["service_request_id"], created["token"]

    assert get_json(api, f"tokens/{token}") == [{"service_request_id": sid, "token": token}]
    conforms("token", get_json(api, f"tokens/{token}"))

    (one,) = get_json(api, f"requests/{sid}")
    conforms("requests", [one])
    assert one["service_request_id"] == sid
    assert one["status"] == "open"
    assert one["service_code"] == "pothole" and one["service_name"] == "Pothole"
    assert one["description"] == "Deep hole\nnext to the bus stop"
    assert one["agency_responsible"] == "Streets"
    assert one["address"] == "5th and Main"
    assert one["lat"] == pytest.approx(34.05) and one["long"] == pytest.approx(-118.28)
    assert isinstance(one["lat"], float)
    assert one["media_url"] == "https://photos.example.org/p/123.jpg"
    assert "status_notes" not in one  # nothing public said yet: left out, not null
    requested = datetime.fromisoformat(one["requested_datetime"])
    assert requested.utcoffset() == datetime.now(LA).utcoffset()
    assert abs(requested - now_utc()) < timedelta(minutes=5)
    expected = datetime.fromisoformat(one["expected_datetime"])
    assert expected > requested  # the 72-hour SLA

    with api.sessions() as s:
        req = s.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == sid))
        assert req.channel == "api"
        assert req.attributes == {"depth": 12, "hazards": ["water", "traffic"], "lane": "left"}
        assert req.contact_name == "Zebedee Quartermaine"
        assert req.contact_email == "zebedee.q@example.org"
        assert req.device_id == "device-7f3a9c" and req.account_id == "acct-4242-secret"
        assert req.token == token

    # the list, with each filter
    listed = get_json(api, "requests")
    conforms("requests", listed)
    assert [r["service_request_id"] for r in listed] == [sid]
    assert listed[0] == one
    assert get_json(api, "requests", service_code="pothole")[0]["service_request_id"] == sid
    assert get_json(api, "requests", service_code="graffiti") == []
    assert len(get_json(api, "requests", status="open")) == 1
    assert get_json(api, "requests", status="closed") == []
    # a day either side of now, in the city's own offset (a window built from the city's
    # date with a Z missed the request between 16:00 and midnight in Los Angeles)
    now_la = datetime.now(LA)
    assert (
        len(
            get_json(
                api,
                "requests",
                start_date=(now_la - timedelta(days=1)).isoformat(timespec="seconds"),
                end_date=(now_la + timedelta(days=1)).isoformat(timespec="seconds"),
            )
        )
        == 1
    )
    assert (
        get_json(
            api,
            "requests",
            start_date="2020-01-01T00:00:00-08:00",
            end_date="2020-02-01T00:00:00-08:00",
        )
        == []
    )
    # service_request_id overrides the other filters
    assert (
        len(
            get_json(
                api,
                "requests",
                service_request_id=f"{sid},TV-1999-000001",
                status="closed",
                service_code="graffiti",
            )
        )
        == 1
    )


def test_post_round_trip_in_xml(api):
    resp = post(api, "xml", attribute__hazards_ARR="water", description="Hole in lane 2")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    root = xml_doc(resp, "service_requests")
    (req_el,) = list(root)
    assert req_el.tag == "request"
    parts = elements(req_el, POST_ANSWER, ["service_request_id", "token"])
    sid, token = parts["service_request_id"].text, parts["token"].text
    assert parts["service_notice"].text.startswith("Small potholes")

    tok = get_xml(api, f"tokens/{token}", "service_requests")
    (tok_req,) = list(tok)
    tok_parts = elements(tok_req, TOKEN_ANSWER, TOKEN_ANSWER)
    assert tok_parts["service_request_id"].text == sid and tok_parts["token"].text == token

    one = get_xml(api, f"requests/{sid}", "service_requests")
    assert [el.tag for el in one] == ["request"]  # a one-element list, not a bare object
    fields = elements(
        one[0],
        REQUEST,
        [
            "service_request_id",
            "status",
            "service_code",
            "service_name",
            "requested_datetime",
            "updated_datetime",
        ],
    )
    assert fields["status"].text == "open"
    assert fields["service_code"].text == "pothole"
    assert fields["description"].text == "Hole in lane 2"
    assert float(fields["lat"].text) == pytest.approx(34.05)
    assert float(fields["long"].text) == pytest.approx(-118.28)
    assert "media_url" not in fields and "status_notes" not in fields
    # XML and JSON say the same thing
    xml_equals_json(one, get_json(api, f"requests/{sid}"))

    listed = get_xml(api, "requests", "service_requests", status="open", service_code="pothole")
    assert [el.find("service_request_id").text for el in listed] == [sid]
    assert list(get_xml(api, "requests", "service_requests", status="closed")) == []


def test_location_by_address_string_and_address_id(api):
    with api.sessions.begin() as s:
        city = s.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == "testville"))
        dataset = places_store.begin(
            s,
            city,
            "addresses",
            source_name="addresses.csv",
            mapping={"number": "N", "street": "S", "id": "ID"},
            imported_by="test",
        )
        places_store.add_addresses(
            s,
            dataset,
            [
                places_store.AddressRow(
                    lon=-118.27,
                    lat=34.06,
                    number=1200,
                    street=normalise_street("W Temple St"),
                    source_id="ADDR-1200",
                ),
                places_store.AddressRow(
                    lon=-118.22,
                    lat=34.03,
                    number=350,
                    street=normalise_street("S Grand Ave"),
                    source_id="ADDR-350",
                ),
            ],
        )
        places_store.finish(s, dataset, rows_read=2, rows_bad=0)

    def located(resp):
        assert resp.status_code == 200, resp.get_data(as_text=True)
        (one,) = get_json(api, f"requests/{resp.get_json()[0]['service_request_id']}")
        return one["lat"], one["long"], one["address"]

    # case, punctuation and the street type's spelling are normalised
    lat, lon, address = located(post(api, lat=None, long=None, address_string="1200 w. temple st"))
    assert (lat, lon) == pytest.approx((34.06, -118.27)) and address == "1200 W TEMPLE ST"
    lat, lon, _ = located(post(api, lat=None, long=None, address_string="350 S Grand Avenue"))
    assert (lat, lon) == pytest.approx((34.03, -118.22))
    # address_id is the city's own id of the address
    lat, lon, address = located(post(api, lat=None, long=None, address_id="ADDR-350"))
    assert (lat, lon) == pytest.approx((34.03, -118.22)) and address == "350 S GRAND AVE"
    for fmt in ("json", "xml"):
        resp = post(api, fmt, lat=None, long=None, address_string="99 Nowhere Boulevard")
        [(code, text)] = open311_errors(resp, fmt, 400)
        assert code == 400 and "address_string" in text and "lat and long" in text
        resp = post(api, fmt, lat=None, long=None, address_id="ADDR-9999")
        [(code, text)] = open311_errors(resp, fmt, 400)
        assert "address_id" in text


# --- errors ----------------------------------------------------------------------------


def _count_requests(api) -> int:
    with api.sessions() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(ServiceRequest))


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_post_errors_say_what_is_wrong_and_write_nothing(api, fmt):
    resp = post(
        api,
        fmt,
        description="<b>bold</b> claim",
        attribute__depth_END="deep",
        attribute__lane_END="middle",
        email="not-an-email",
        lat="34.30",
        long="-118.60",
    )
    errors = open311_errors(resp, fmt, 400)
    text = " | ".join(d for _, d in errors)
    assert {c for c, _ in errors} == {400}
    assert "description: The description must be plain text" in text
    assert "attribute[depth]: 'deep' is not a number" in text
    assert "attribute[lane]" in text and "email:" in text
    assert "lat/long: This spot is outside Testville" in text
    assert len(errors) == 5

    cases = [
        (dict(description="x" * 4001), 400, "at most 4000"),
        (dict(service_code=None), 400, "service_code was not provided"),
        (dict(service_code="graffiti"), 404, "service_code 'graffiti' was not found"),
        (dict(service_code="abuse"), 404, "service_code 'abuse' was not found"),
        (dict(long=None), 400, "lat and long must be sent together"),
        (dict(lat="north", long="west"), 400, "lat 'north' is not a number"),
        (dict(lat="nan", long="1"), 400, "not a finite number"),
        (dict(lat=None, long=None), 400, "lat/long: Show where the problem is"),
        (dict(attribute__depth_END=None), 400, "attribute[depth]: Please answer"),
        (dict(attribute__colour_END="red"), 400, "attribute[colour]"),
        (dict(**{"attribute[a][b]": "1"}), 400, "is not an attribute parameter"),
        (dict(media_url="ftp://example.org/x.jpg"), 400, "media_url: media_url must be an http"),
        (dict(device_id="d" * 201), 400, "device_id is longer than 200"),
        (dict(api_key=None), 403, "api_key was not provided"),
        (dict(api_key="cp_not-a-real-key"), 403, "invalid api_key"),
    ]
    for fields, status, message in cases:
        errors = open311_errors(post(api, fmt, **fields), fmt, status)
        assert any(message in d for _, d in errors), (fields, errors)
    assert _count_requests(api) == 0


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_get_errors(api, fmt):
    def err(path, expect, **query):
        return open311_errors(api.client.get(f"{V2}/{path}.{fmt}", query_string=query), fmt, expect)

    assert "was not found" in err("requests/TV-2020-000999", 404)[0][1]
    assert "token" in err("tokens/nosuchtoken", 404)[0][1]
    assert "start_date" in err("requests", 400, start_date="last tuesday")[0][1]
    assert (
        "90 days"
        in err("requests", 400, start_date="2024-01-01T00:00:00Z", end_date="2024-06-01T00:00:00Z")[
            0
        ][1]
    )
    assert "before" in err("requests", 400, start_date="2024-02-01", end_date="2024-01-01")[0][1]
    assert "status" in err("requests", 400, status="pending")[0][1]
    assert "page_size" in err("requests", 400, page_size="5000")[0][1]
    assert "bbox" in err("requests", 400, bbox="1,2,3")[0][1]
    assert "extensions" in err("requests", 400, extensions="maybe")[0][1]
    # unknown resources under /open311/v2/ answer Open311 errors too
    assert err("nonsense", 404)[0][0] == 404
    assert err("requests/TV/extra", 404)[0][0] == 404
    assert err("requests/a%0Ab/c", 404)[0][0] == 404  # a line break in the path (fuzz find)


def test_unknown_routes_and_wrong_methods_answer_open311_errors(api):
    for fmt in ("json", "xml"):
        resp = api.client.delete(f"{V2}/services.{fmt}")
        [(code, text)] = open311_errors(resp, fmt, 405)
        assert code == 405 and "DELETE" in text
        assert "GET" in resp.headers["Allow"]
        resp = api.client.put(f"{V2}/requests.{fmt}")
        open311_errors(resp, fmt, 405)
        assert {"GET", "POST"} <= set(resp.headers["Allow"].split(", "))
        resp = api.client.post(f"{V2}/services/pothole.{fmt}")
        open311_errors(resp, fmt, 405)
    # unknown format suffix: XML, the spec's required format
    open311_errors(api.client.get(f"{V2}/services.html"), "xml", 404)
    open311_errors(api.client.get(f"{V2}/requests"), "xml", 404)
    # a body over the server's size limit
    api.app.config["MAX_CONTENT_LENGTH"] = 2000
    [(_, text)] = open311_errors(post(api, "json", description="x" * 5000), "json", 400)
    assert "too large" in text


def _add_otherton(api, **kw) -> None:
    with api.sessions.begin() as s:
        s.add(
            Jurisdiction(
                slug="otherton",
                name="Otherton",
                timezone="Europe/Berlin",
                public_id_prefix="OT",
                boundary=from_shape(MultiPolygon([box(13.3, 52.4, 13.5, 52.6)]), srid=4326),
                **kw,
            )
        )


def test_one_city_served_ignores_an_unknown_jurisdiction_id(api):
    # The spec needs jurisdiction_id only where an endpoint serves several jurisdictions.
    for fmt in ("json", "xml"):
        resp = post(api, fmt, jurisdiction_id="lacity.org")
        assert resp.status_code == 200, resp.get_data(as_text=True)
    assert [s["service_code"] for s in get_json(api, "services", jurisdiction_id="x.org")] == [
        "pothole"
    ]
    assert _count_requests(api) == 2


def test_a_second_city_changes_nothing_for_the_first_citys_clients(api):
    assert post(api).status_code == 200
    _add_otherton(api)
    # no jurisdiction_id: the oldest city (or CIVICPIN_CITY), never a 400
    for fmt in ("json", "xml"):
        resp = api.client.get(f"{V2}/services.{fmt}")
        assert resp.status_code == 200 and "pothole" in resp.get_data(as_text=True)
        assert post(api, fmt).status_code == 200
    # with several cities an unknown jurisdiction_id is the spec's 404
    for fmt in ("json", "xml"):
        [(code, text)] = open311_errors(
            api.client.get(f"{V2}/services.{fmt}?jurisdiction_id=atlantis"), fmt, 404
        )
        assert code == 404 and "jurisdiction_id 'atlantis' was not found" in text
        [(_, text)] = open311_errors(post(api, fmt, jurisdiction_id="atlantis"), fmt, 404)
        assert "was not found" in text
    assert get_json(api, "services", jurisdiction_id="otherton") == []
    # a key works only for its own city
    resp = post(api, "json", jurisdiction_id="otherton")
    [(_, text)] = open311_errors(resp, "json", 403)
    assert "not valid for jurisdiction otherton" in text
    resp = post(api, "json", jurisdiction_id="testville")
    assert resp.status_code == 200
    # jurisdiction_id may also come in the query string on POST
    resp = api.client.post(
        f"{V2}/requests.json?jurisdiction_id=testville",
        data={
            "api_key": api.key,
            "service_code": "pothole",
            "lat": WEST[0],
            "long": WEST[1],
            "attribute[depth]": "3",
        },
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)


def test_civicpin_city_is_the_default_and_a_key_names_its_own_city(api, settings, engine):
    from webmap.app import create_app

    _add_otherton(api)
    client = create_app(settings.with_overrides(default_city="otherton"), engine=engine)
    client = client.test_client()
    resp = client.get(f"{V2}/services.json")
    assert resp.status_code == 200 and resp.get_json() == []  # Otherton has no categories
    # a POST without jurisdiction_id is for its API key's city
    resp = client.post(
        f"{V2}/requests.json",
        data={
            "api_key": api.key,
            "service_code": "pothole",
            "lat": WEST[0],
            "long": WEST[1],
            "attribute[depth]": "3",
        },
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()[0]["service_request_id"].startswith("TV-")


def test_alias_jurisdiction_ids_and_city_addresses(api):
    _add_otherton(api, open311_ids=["otherton.de"])
    with api.sessions.begin() as s:
        s.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == "testville")).open311_ids = [
            "lacity.org"
        ]
    assert [s["service_code"] for s in get_json(api, "services", jurisdiction_id="lacity.org")] == [
        "pothole"
    ]
    assert get_json(api, "services", jurisdiction_id="otherton.de") == []
    resp = post(api, "json", jurisdiction_id="LACITY.ORG")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    contact = get_json(api, "discovery")["contact"]
    assert "jurisdiction_id testville or lacity.org" in contact
    assert "jurisdiction_id otherton or otherton.de" in contact
    # each city's own address serves that city, whatever else is asked
    resp = api.client.get(f"/c/otherton{V2}/services.json")
    assert resp.status_code == 200 and resp.get_json() == []
    resp = api.client.get(f"/c/testville{V2}/services.json")
    assert [s["service_code"] for s in resp.get_json()] == ["pothole"]
    open311_errors(
        api.client.get(f"/c/testville{V2}/services.json?jurisdiction_id=otherton"), "json", 404
    )
    open311_errors(api.client.get(f"/c/atlantis{V2}/services.json"), "json", 404)
    endpoints = api.client.get(f"/c/testville{V2}/discovery.json").get_json()["endpoints"]
    assert {e["url"] for e in endpoints} == {"http://127.0.0.1:5000/c/testville/open311/v2"}


def test_an_unexpected_failure_is_an_open311_error_not_an_html_page(api, engine):
    sid = post(api).get_json()[0]["service_request_id"]
    with engine.begin() as conn:  # the database loses a table under the running app
        conn.execute(sa.text("ALTER TABLE request_event RENAME TO request_event_gone"))
    for fmt in ("json", "xml"):
        for resp in (
            api.client.get(f"{V2}/requests.{fmt}"),
            api.client.get(f"{V2}/requests/{sid}.{fmt}"),
            post(api, fmt),
        ):
            [(code, text)] = open311_errors(resp, fmt, 400)
            assert code == 400 and text.startswith("general service error")
            assert "request_event" not in text  # no internals leak into the answer


# --- privacy ---------------------------------------------------------------------------


def test_contact_details_and_private_categories_never_appear_in_any_get(api, tmp_path):
    sid = post(api, "json", **CONTACT).get_json()[0]["service_request_id"]
    with api.sessions.begin() as s:
        private = submit(
            s,
            Draft(
                city="testville",
                service_code="abuse",
                lat=34.05,
                lon=-118.28,
                description="PRIVATE-REPORT-TEXT",
                contact_email="victim@example.org",
                photos=[_photo_upload()],
            ),
            media_dir=api.app.extensions["civicpin"]["settings"].media_dir,
            public_base_url="http://127.0.0.1:5000",
        )
        private_id, private_token = private.request.public_id, private.token
        photo = s.scalar(sa.select(Photo).where(Photo.request_id == private.request.id))
        private_photo = photo.public_key
    bodies = []
    for fmt in ("json", "xml"):
        for path, query in [
            ("requests", {}),
            ("requests", {"extensions": "true"}),
            ("requests", {"service_request_id": f"{sid},{private_id}"}),
            ("requests", {"service_code": "abuse"}),
            (f"requests/{sid}", {"extensions": "true"}),
            ("servicerequestupdates", {}),
            ("services", {}),
            ("discovery", {}),
        ]:
            resp = api.client.get(f"{V2}/{path}.{fmt}", query_string=query)
            assert resp.status_code == 200, (path, resp.get_data(as_text=True))
            bodies.append(resp.get_data(as_text=True))
        for path in (f"requests/{private_id}", f"tokens/{private_token}", "services/abuse"):
            open311_errors(api.client.get(f"{V2}/{path}.{fmt}"), fmt, 404)
    bodies.append(api.client.get(f"{V2}/openapi.json").get_data(as_text=True))
    bodies.append(api.client.get(f"{V2}/docs").get_data(as_text=True))
    everything = "\n".join(bodies)
    assert sid in everything
    for secret in [
        *SECRETS,
        private_id,
        "PRIVATE-REPORT-TEXT",
        "victim@example.org",
        "abuse",
        "Abuse report",
    ]:
        assert secret not in everything, secret
    assert api.client.get(f"/media/{private_photo}").status_code == 404


# --- extensions ------------------------------------------------------------------------


def _photo_upload():
    from spatial.media import PhotoUpload

    return PhotoUpload("hole.jpg", jpeg_bytes(lat=34.07, lon=-118.29))


def _post_with_photo(api, **fields):
    """A POST of a pothole with a JPEG (GPS 34.07, -118.29) as a multipart ``media`` file."""
    return api.client.post(
        f"{V2}/requests.json",
        data={
            "api_key": api.key,
            "service_code": "pothole",
            "attribute[depth]": "7",
            "media": (io.BytesIO(jpeg_bytes(lat=34.07, lon=-118.29)), "hole.jpg"),
            **fields,
        },
        content_type="multipart/form-data",
    )


def test_extensions_are_off_by_default_and_on_when_asked(api):
    resp = _post_with_photo(api)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    sid = resp.get_json()[0]["service_request_id"]

    (plain,) = get_json(api, f"requests/{sid}")
    assert set(plain) <= set(REQUEST)  # exactly spec-shaped by default
    assert (plain["lat"], plain["long"]) == pytest.approx((34.07, -118.29))  # the photo's GPS
    assert plain["media_url"].startswith("http://127.0.0.1:5000/media/public/")

    (ext,) = get_json(api, f"requests/{sid}", extensions="true")
    conforms("requests", [ext])
    extra = ext.pop("extended_attributes")
    assert ext == plain
    assert extra["channel"] == "api"
    assert extra["zone"] == "West" and extra["zone_code"] == "W"
    assert "Potholes by district" in extra["routing_explanation"]
    (photo,) = extra["photos"]
    assert photo["media_url"] == plain["media_url"]
    assert photo["stage"] == "report" and photo["width"] == 640 and photo["height"] == 480
    assert W3C.match(photo["created_datetime"])
    served = api.client.get(photo["media_url"].removeprefix("http://127.0.0.1:5000"))
    assert served.status_code == 200 and served.mimetype == "image/jpeg"
    img = Image.open(io.BytesIO(served.data))
    assert not img.getexif(), "the served copy still carries EXIF (GPS!)"
    thumb = api.client.get(photo["thumbnail_url"].removeprefix("http://127.0.0.1:5000"))
    assert thumb.status_code == 200 and max(Image.open(io.BytesIO(thumb.data)).size) <= 320

    root = get_xml(api, f"requests/{sid}", "service_requests", extensions="true")
    ext_el = root[0].find("extended_attributes")
    assert ext_el.find("channel").text == "api"
    assert [p.tag for p in ext_el.find("photos")] == ["photo"]
    assert (
        get_xml(api, f"requests/{sid}", "service_requests")[0].find("extended_attributes") is None
    )


def test_a_post_whose_photo_cannot_be_stored_leaves_nothing_behind(api, monkeypatch):
    import intake.submit

    def disk_full(media_dir, photo):
        raise OSError(28, "No space left on device")

    def counts():
        with api.sessions() as s:
            return (
                s.scalar(sa.select(sa.func.count()).select_from(ServiceRequest)),
                s.scalar(sa.select(sa.func.count()).select_from(OutboxMessage)),
            )

    before = counts()
    monkeypatch.setattr(intake.submit, "store_photo", disk_full)
    resp = _post_with_photo(api, email="resident@example.org")
    assert resp.status_code >= 400 and resp.is_json and resp.get_json()[0]["description"]
    # the request had been written before the photo failed: it is rolled back with its
    # zones, events and messages
    assert counts() == before


def test_paging_bbox_and_updated_after(api):
    ids = [
        post(api, lat="34.05", long=lon).get_json()[0]["service_request_id"]
        for lon in ("-118.29", "-118.27", "-118.21")
    ]
    newest_first = list(reversed(ids))
    assert [r["service_request_id"] for r in get_json(api, "requests")] == newest_first
    page1 = get_json(api, "requests", page="1", page_size="2")
    page2 = get_json(api, "requests", page="2", page_size="2")
    assert [r["service_request_id"] for r in page1 + page2] == newest_first
    assert get_json(api, "requests", page="3", page_size="2") == []
    west_only = get_json(api, "requests", bbox="-118.30,34.00,-118.25,34.10")
    assert {r["service_request_id"] for r in west_only} == set(ids[:2])
    conforms("requests", west_only)

    with api.sessions.begin() as s:
        req = s.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == ids[0]))
        req.updated_at = now_utc() + timedelta(minutes=1)
    cutoff = (now_utc() + timedelta(seconds=30)).isoformat()
    changed = get_json(api, "requests", updated_after=cutoff)
    assert [r["service_request_id"] for r in changed] == [ids[0]]


def test_status_notes_and_updates_in_fixmystreet_shape(api):
    sid = post(api).get_json()[0]["service_request_id"]
    with api.sessions.begin() as s:
        req = s.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == sid))
        t0 = now_utc()
        s.add_all(
            [
                RequestEvent(
                    request_id=req.id,
                    at=t0 + timedelta(seconds=1),
                    kind="status",
                    from_value="new",
                    to_value="in_progress",
                    public=True,
                    note="Crew on the way",
                ),
                RequestEvent(
                    request_id=req.id,
                    at=t0 + timedelta(seconds=2),
                    kind="note",
                    public=False,
                    note="INTERNAL: the caller was rude",
                ),
                RequestEvent(
                    request_id=req.id,
                    at=t0 + timedelta(seconds=3),
                    kind="status",
                    from_value="in_progress",
                    to_value="resolved",
                    public=True,
                    note="Filled on Tuesday",
                ),
            ]
        )
        req.status = "resolved"
        req.closed_at = req.updated_at = t0 + timedelta(seconds=3)

    (one,) = get_json(api, f"requests/{sid}")
    assert one["status"] == "closed" and one["status_notes"] == "Filled on Tuesday"
    assert get_json(api, "requests", status="open") == []

    updates = get_json(api, "servicerequestupdates")
    statuses = [(u["status"], u.get("description")) for u in updates]
    assert statuses == [
        ("open", "Reported via api"),
        ("in_progress", "Crew on the way"),
        ("fixed", "Filled on Tuesday"),
    ]
    for u in updates:
        assert set(u) <= set(UPDATE) and u["service_request_id"] == sid
        assert isinstance(u["update_id"], str) and W3C.match(u["updated_datetime"])
    assert "INTERNAL" not in json.dumps(updates)

    root = get_xml(api, "servicerequestupdates", "service_request_updates")
    assert [el.tag for el in root] == ["request_update"] * 3
    for el in root:
        elements(el, UPDATE, ["update_id", "service_request_id", "status", "updated_datetime"])
    xml_equals_json(root, updates)
    assert get_json(api, "servicerequestupdates", page="2", page_size="2") == updates[2:]


# --- description -----------------------------------------------------------------------


def test_openapi_description_and_docs_page(api):
    resp = api.client.get(f"{V2}/openapi.json")
    assert resp.status_code == 200
    spec = resp.get_json()
    assert spec["openapi"].startswith("3.")
    assert set(spec["paths"]) == {
        "/discovery.{fmt}",
        "/services.{fmt}",
        "/services/{service_code}.{fmt}",
        "/requests.{fmt}",
        "/requests/{service_request_id}.{fmt}",
        "/tokens/{token}.{fmt}",
        "/servicerequestupdates.{fmt}",
    }
    form = spec["paths"]["/requests.{fmt}"]["post"]["requestBody"]["content"][
        "application/x-www-form-urlencoded"
    ]["schema"]
    assert "attribute[depth]" in form["properties"]
    assert form["properties"]["attribute[hazards][]"]["type"] == "array"
    docs = api.client.get(f"{V2}/docs")
    assert docs.status_code == 200 and docs.mimetype == "text/html"
    page = docs.get_data(as_text=True)
    for path in spec["paths"]:
        assert path in page
    assert "GET Service Definition" in page and "attribute[depth]" in page
    assert api.client.get(f"{V2}/").status_code == 302

    # the description's example body is a request that works
    example = spec["paths"]["/requests.{fmt}"]["post"]["requestBody"]["content"][
        "application/x-www-form-urlencoded"
    ]["example"]
    assert example["service_code"] == "pothole" and example["attribute[depth]"] == 1
    resp = api.client.post(f"{V2}/requests.json", data={**example, "api_key": api.key})
    assert resp.status_code == 200, resp.get_data(as_text=True)


def test_a_post_beside_an_open_request_of_its_category_is_flagged_for_dispatch(api):
    from routing.queue import QueueFilters, queue
    from spatial.cities import get_city

    first = post(api).get_json()[0]["service_request_id"]
    # about 11 m north of the first: the same pothole, reported again through an app
    second = post(api, lat="34.0501").get_json()[0]["service_request_id"]
    with api.sessions() as s:
        city = get_city(s, "testville")
        flagged = {
            it["public_id"]: it["possible_duplicate"] for it in queue(s, city, QueueFilters())
        }
        assert flagged == {first: False, second: True}
        (event,) = s.scalars(
            sa.select(RequestEvent)
            .join(ServiceRequest, ServiceRequest.id == RequestEvent.request_id)
            .where(ServiceRequest.public_id == second, RequestEvent.kind == "possible_duplicate")
        ).all()
        assert event.public is False and event.to_value == first
        assert event.note.startswith(f"Possible duplicate of {first}: same category, still open")
    # the flag is for staff: no GET shows it, in any shape
    for query in ({}, {"extensions": "true"}):
        resp = api.client.get(f"{V2}/requests/{second}.json", query_string=query)
        assert first not in resp.get_data(as_text=True)
        assert "duplicate" not in resp.get_data(as_text=True)
    # once the first is closed, a new report there is not flagged
    with api.sessions.begin() as s:
        s.execute(
            sa.update(ServiceRequest)
            .where(ServiceRequest.public_id.in_([first, second]))
            .values(status="closed")
        )
    third = post(api).get_json()[0]["service_request_id"]
    with api.sessions() as s:
        assert not s.scalar(
            sa.select(sa.func.count())
            .select_from(RequestEvent)
            .join(ServiceRequest, ServiceRequest.id == RequestEvent.request_id)
            .where(ServiceRequest.public_id == third, RequestEvent.kind == "possible_duplicate")
        )
