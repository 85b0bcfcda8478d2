"""The call-taker's address look-up on a city with its real centrelines (Cambridge): the
console's JSON (candidates, the pin in words, requests nearby), and the form without
JavaScript: a confident typed address placed, an unsure one answered with the candidates
to choose, "place it later" only when chosen."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from geoalchemy2.shape import to_shape

from intake.submit import Draft, submit
from spatial.accounts import create_user
from spatial.models import ServiceRequest
from tests.support.cambridge_calls import (
    AGENT,
    login_as,
    make_cambridge_calls,
    metres,
    range_truth,
)
from tests.support.dispatch_city import PASSWORD, csrf_from, login, make_dispatch_city

TRUTH_1334 = range_truth("Cambridge St", 1334)


@pytest.fixture
def city(sessions):
    with sessions.begin() as s:
        return make_cambridge_calls(s)


@pytest.fixture
def agent(client, city):
    login_as(client, AGENT)
    return client


def _form(token: str, **over) -> dict:
    data = {
        "csrf_token": token,
        "channel": "phone",
        "service_code": "streetlight",
        "description": "Caller says the light is out",
        "contact_name": "Carl Caller",
        "contact_phone": "+1 617 555 0142",
    }
    data.update(over)
    return {k: v for k, v in data.items() if v is not None}


def _only_request(sessions) -> ServiceRequest:
    with sessions() as s:
        (req,) = s.scalars(sa.select(ServiceRequest)).all()
        s.expunge(req)
        return req


def _latlon(req: ServiceRequest) -> tuple[float, float]:
    pt = to_shape(req.location)
    return pt.y, pt.x


def test_candidates_as_the_agent_types(agent):
    res = agent.get("/agent/api/places", query_string={"q": "1334 cambridge street"})
    assert res.status_code == 200, res.get_data(as_text=True)
    body = res.get_json()
    assert body["confident"] is True
    best = body["candidates"][0]
    assert best == body["best"]
    assert best["address"].startswith("1334 CAMBRIDGE ST")
    assert best["match_type"] == "range" and best["score_words"] in ("exact", "confident")
    assert best["match_words"] == "on the street's address range"
    assert metres((best["lat"], best["lon"]), TRUTH_1334) < 25
    # An intersection, as a caller says it.
    res = agent.get("/agent/api/places", query_string={"q": "Cambridge St and Prospect St"})
    best = res.get_json()["candidates"][0]
    assert best["match_type"] == "intersection"
    assert "CAMBRIDGE ST" in best["address"] and "PROSPECT ST" in best["address"]


@pytest.mark.parametrize(
    ("q", "why"),
    [("", "type an address"), ("x" * 10_000, "long"), ("12 Elm\x00 St", "control")],
)
def test_text_the_geocoder_cannot_take_is_a_400(agent, q, why):
    res = agent.get("/agent/api/places", query_string={"q": q})
    assert res.status_code == 400
    assert why in res.get_json()["error"].lower()


def test_only_call_takers_of_the_city_look_up_its_places(app, sessions, city):
    with sessions.begin() as s:
        make_dispatch_city(s)  # testville, with its own staff
        create_user(
            s, email="crew@cambridge.example", role="crew", city_slug=city.slug, password=PASSWORD
        )
    url = "/agent/api/places?q=1334+Cambridge+St"
    anonymous = app.test_client()
    res = anonymous.get(url)
    assert res.status_code == 302 and "/login" in res.headers["Location"]
    crew = app.test_client()
    login_as(crew, "crew@cambridge.example")
    assert crew.get(url).status_code == 403
    testville = app.test_client()
    login(testville, "agent")  # testville's call-taker: its own city's places only
    res = testville.get(url)
    assert res.status_code == 200
    assert all("CAMBRIDGE" not in c["address"] for c in res.get_json()["candidates"])
    assert testville.get(url + "&city=cambridge").status_code == 403


def test_a_confident_typed_address_places_the_request(agent, sessions):
    token = csrf_from(agent, "/agent")
    res = agent.post("/agent/requests", data=_form(token, address="1334 Cambridge Street"))
    assert res.status_code == 201, res.get_data(as_text=True)
    req = _only_request(sessions)
    assert not req.needs_location
    assert req.address.startswith("1334 CAMBRIDGE ST")  # normalised
    assert metres(_latlon(req), TRUTH_1334) < 25


def test_an_unsure_address_comes_back_with_candidates_to_choose(agent, sessions):
    token = csrf_from(agent, "/agent")
    # No such number on Cambridge St: only the street, which is not a place to send a crew.
    res = agent.post("/agent/requests", data=_form(token, address="9999 Cambridge St"))
    html = res.get_data(as_text=True)
    assert res.status_code == 400
    assert "Not sure where" in html
    radios = re.findall(r'<input type="radio" name="candidate" value="([^"]+)"', html)
    assert radios and any("CAMBRIDGE ST" in r for r in radios)
    with sessions() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(ServiceRequest)) == 0
    # The agent reads the list to the caller, who picks the right one.
    pick = next(r for r in radios if "CAMBRIDGE ST" in r)
    res = agent.post(
        "/agent/requests", data=_form(token, address="9999 Cambridge St", candidate=pick)
    )
    assert res.status_code == 201, res.get_data(as_text=True)
    req = _only_request(sessions)
    assert req.address == pick and req.location is not None and not req.needs_location


def test_an_unknown_address_needs_the_explicit_place_it_later(agent, sessions):
    token = csrf_from(agent, "/agent")
    res = agent.post("/agent/requests", data=_form(token, address="12 Zyzzyva Qwerty Lane"))
    html = res.get_data(as_text=True)
    assert res.status_code == 400
    assert "does not know" in html and "Place it later" in html
    res = agent.post(
        "/agent/requests",
        data=_form(token, address="12 Zyzzyva Qwerty Lane", place_later="1"),
    )
    assert res.status_code == 201, res.get_data(as_text=True)
    req = _only_request(sessions)
    assert req.needs_location and req.location is None
    assert req.address == "12 Zyzzyva Qwerty Lane"


def test_a_long_description_of_the_place_is_kept_for_dispatch(agent, sessions):
    token = csrf_from(agent, "/agent")
    where = "Behind the old mill, " + "past the footbridge and the third bench, " * 6
    res = agent.post("/agent/requests", data=_form(token, address=where))
    assert res.status_code == 400 and "long" in res.get_data(as_text=True)
    res = agent.post("/agent/requests", data=_form(token, address=where, place_later="1"))
    assert res.status_code == 201, res.get_data(as_text=True)
    req = _only_request(sessions)
    assert req.needs_location and req.address == where.strip()


def test_a_pin_is_put_into_words(agent):
    lat, lon = TRUTH_1334
    res = agent.get("/agent/api/reverse", query_string={"lat": lat, "lon": lon})
    assert res.status_code == 200
    place = res.get_json()["place"]
    assert "CAMBRIDGE ST" in place["address"] and place["distance_m"] < 60
    assert agent.get("/agent/api/reverse?lat=north&lon=1").status_code == 400


def test_requests_nearby_are_listed_with_the_follow_route(agent, sessions, settings, city):
    lat, lon = TRUTH_1334
    with sessions.begin() as s:
        draft = Draft(
            city=city.slug,
            service_code=city.service_code,
            lat=lat + 0.0001,
            lon=lon,
            description="Light out",
            contact_email="first@example.org",
        )
        first = submit(
            s, draft, media_dir=settings.media_dir, public_base_url=settings.public_base_url
        ).request.public_id
    res = agent.get(
        "/agent/api/duplicates", query_string={"service": "streetlight", "lat": lat, "lon": lon}
    )
    assert res.status_code == 200
    (dup,) = res.get_json()["candidates"]
    assert dup["public_id"] == first and dup["distance_m"] < 20
    assert dup["follow_url"] == f"/agent/requests/{first}/follow"
    assert "first@example.org" not in res.get_data(as_text=True)
    far = agent.get(
        "/agent/api/duplicates",
        query_string={"service": "streetlight", "lat": lat + 0.01, "lon": lon},
    )
    assert far.get_json()["candidates"] == []
    bad = agent.get("/agent/api/duplicates", query_string={"service": "nope", "lat": 1, "lon": 1})
    assert bad.status_code == 400
