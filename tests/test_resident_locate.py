"""The missing pin: an e-mail without a location becomes a request that waits in the
dispatch queue; its auto-reply links to the tracking page with ``&locate=1``, where the
reporter drops the pin (or, without JavaScript, searches an address or types
coordinates). Real SMTP on loopback for the e-mail and the auto-reply, the real app and
database for the page and the POST."""

from __future__ import annotations

import html as htmllib
import re
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from geoalchemy2.shape import to_shape

from intake.email_intake import MailIntake, start_smtp_server
from intake.locate import LocateRefused, set_location_by_resident
from notify.worker import run_once
from routing import actions, queue
from spatial.accounts import create_user
from spatial.models import Jurisdiction, RequestEvent, ServiceRequest, Zone
from tests.support.city import OUTSIDE
from tests.support.locate_city import make_locate_city
from tests.support.mail import RESIDENT, free_port, mime, smtp_send

# A known address in the East district of Testville (the districts split at -118.25).
SOUTH_MAIN = "100 S MAIN ST, 90012"
SOUTH_MAIN_LAT, SOUTH_MAIN_LON = 34.0500, -118.2466
# A point in the West district, 150 m from any known address.
WEST_LAT, WEST_LON = 34.0900, -118.2900


@pytest.fixture
def city(sessions):
    with sessions.begin() as s:
        return {"id": make_locate_city(s)["city"].id}


@pytest.fixture
def server(sessions, settings, city):
    intake = MailIntake(
        sessions,
        public_base_url=settings.public_base_url,
        media_dir=settings.media_dir,
        mail_from=settings.mail_from,
    )
    port = free_port()
    controller = start_smtp_server(intake, "127.0.0.1", port)
    yield port
    controller.stop()


def mail_without_location(server, sessions, settings, sink, n: int = 1) -> tuple[str, str]:
    """E-mail a report that names no place; returns (public id, path of the reply's link)."""
    code, _ = smtp_send(
        server, mime("Noise", "Loud music every night.", message_id=f"<n{n}@example.org>")
    )
    assert code == 250
    run_once(sessions, settings.with_overrides(smtp_url=sink.url))
    ack = sink.to(RESIDENT)[-1]
    link = re.search(r"(https?://\S+&locate=1)", ack.text).group(1)
    public_id = re.search(r"/requests/([A-Z0-9-]+)\?", link).group(1)
    parts = urlsplit(link)
    return public_id, f"{parts.path}?{parts.query}"


def load(sessions, public_id: str) -> ServiceRequest:
    with sessions() as s:
        req = s.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == public_id))
        s.expunge(req)
        return req


def snapshot(sessions, public_id: str) -> tuple:
    """Everything the locate POST may change, to prove a refusal changed nothing."""
    with sessions() as s:
        req = s.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == public_id))
        events = s.scalars(
            sa.select(RequestEvent.kind)
            .where(RequestEvent.request_id == req.id)
            .order_by(RequestEvent.id)
        ).all()
        where = None if req.location is None else to_shape(req.location).wkt
        return (
            where,
            req.address,
            req.needs_location,
            req.department_id,
            req.crew_id,
            req.zone_id,
            req.routing_explanation,
            req.updated_at,
            tuple(events),
        )


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def text(html: str) -> str:
    return " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", html)).split())


def waiting(sessions, city) -> list[str]:
    """Public ids in the dispatch queue's "needs location" view."""
    with sessions() as s:
        town = s.get(Jurisdiction, city["id"])
        items = queue.queue(s, town, queue.parse_filters({"needs_location": "1"}))
        return [i["public_id"] for i in items]


def queue_item(sessions, city, public_id: str) -> dict:
    with sessions() as s:
        town = s.get(Jurisdiction, city["id"])
        items = queue.queue(s, town, queue.parse_filters({"status": "all"}))
        return next(i for i in items if i["public_id"] == public_id)


def test_the_auto_reply_link_lets_the_resident_drop_the_pin_and_the_request_is_routed(
    client, sessions, settings, sink, server, city
):
    public_id, link = mail_without_location(server, sessions, settings, sink)
    assert waiting(sessions, city) == [public_id]
    assert queue_item(sessions, city, public_id)["needs_location"] is True
    before = load(sessions, public_id)
    assert before.crew_id is None and before.zone_id is None

    page = client.get(link)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Show us where the problem is" in html
    assert 'id="locate-form"' in html and 'id="locate-map"' in html
    assert "/static/vendor/leaflet/leaflet.js" in html and "/static/report.js" in html
    assert 'id="locate-q"' in html  # the address search that works without JavaScript
    token = link.split("token=")[1].split("&")[0]

    res = client.post(
        f"/requests/{public_id}/locate",
        data={
            "csrf_token": csrf_of(html),
            "token": token,
            "lat": str(SOUTH_MAIN_LAT),
            "lon": str(SOUTH_MAIN_LON),
            "address": "something the browser made up",
        },
    )
    assert res.status_code == 303
    assert res.headers["Location"] == f"/requests/{public_id}?token={token}"

    with sessions() as s:
        req = s.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == public_id))
        point = to_shape(req.location)
        assert (point.y, point.x) == pytest.approx((SOUTH_MAIN_LAT, SOUTH_MAIN_LON))
        assert req.address == SOUTH_MAIN  # the server's reverse look-up, not the form's text
        assert req.needs_location is False
        assert req.department.name == "Streets" and req.crew.name == "East crew"
        assert s.get(Zone, req.zone_id).name == "East"
        assert "General enquiries by district" in req.routing_explanation
        kinds = s.execute(
            sa.select(RequestEvent.kind, RequestEvent.public, RequestEvent.actor_label)
            .where(RequestEvent.request_id == req.id)
            .order_by(RequestEvent.id)
        ).all()
        assert ("located", True, "resident") in kinds
        # Its first routing decision: route_request writes a "routed" event only when it
        # changes an earlier one, and the timeline shows the decision after the pin.
        assert "routed" not in [k for k, _, _ in kinds] and req.routed_at is not None
        located = s.scalar(
            sa.select(RequestEvent).where(
                RequestEvent.request_id == req.id, RequestEvent.kind == "located"
            )
        )
        assert located.to_value == SOUTH_MAIN
    # The dispatch queue no longer lists it as waiting for a location.
    assert waiting(sessions, city) == []
    item = queue_item(sessions, city, public_id)
    assert item["needs_location"] is False and item["crew"] == "East crew"

    shown = client.get(res.headers["Location"]).get_data(as_text=True)
    assert "the location is saved" in shown
    assert "Show us where the problem is" not in shown and 'id="locate-form"' not in shown
    words = text(shown)
    assert f"Where {SOUTH_MAIN}" in words
    assert "Streets , East crew" in words
    located_at = words.index(
        f"Location added : The resident showed where the problem is: {SOUTH_MAIN}"
    )
    assert words.index("Sent to the responsible team : Streets / East crew") > located_at
    assert 'id="track-map"' in shown
    # The confirmation shows once; the link from the e-mail now says there is nothing to do.
    again = client.get(link).get_data(as_text=True)
    assert "the location is saved" not in again
    assert "already has its location" in again and 'id="locate-form"' not in again


def test_a_point_outside_the_city_is_refused_with_a_message_and_nothing_changes(
    client, sessions, settings, sink, server, city
):
    public_id, link = mail_without_location(server, sessions, settings, sink)
    token = link.split("token=")[1].split("&")[0]
    before = snapshot(sessions, public_id)
    html = client.get(link).get_data(as_text=True)

    for lat, lon, message in (
        (OUTSIDE[0], OUTSIDE[1], "This spot is outside Testville"),
        ("north", "-118.25", "Give the latitude (-90 to 90) in decimal degrees"),
        ("", "", "Put the pin on the map, search an address, or give the coordinates"),
    ):
        res = client.post(
            f"/requests/{public_id}/locate",
            data={"csrf_token": csrf_of(html), "token": token, "lat": lat, "lon": lon},
        )
        assert res.status_code == 422
        page = res.get_data(as_text=True)
        assert message in text(page)
        assert 'id="error-summary"' in page and 'href="#lat"' in page
        assert 'id="err-location"' in page  # next to the coordinate fields
        assert f'value="{lat}"' in page  # what was typed is kept
        assert 'id="locate-form"' in page  # the resident can try again
        assert snapshot(sessions, public_id) == before
    assert waiting(sessions, city) == [public_id]


def test_a_wrong_or_missing_token_offers_nothing_and_is_refused(
    client, sessions, settings, sink, server, city
):
    public_id, link = mail_without_location(server, sessions, settings, sink)
    before = snapshot(sessions, public_id)
    html = client.get(link).get_data(as_text=True)
    csrf_token = csrf_of(html)

    wrong = client.get(f"/requests/{public_id}?token=guess&locate=1").get_data(as_text=True)
    assert "not valid" in wrong and 'id="locate-form"' not in wrong
    public = client.get(f"/requests/{public_id}?locate=1").get_data(as_text=True)
    assert 'id="locate-form"' not in public and "Not known yet" in public

    for token in ("guess", "", None):
        data = {"csrf_token": csrf_token, "lat": str(SOUTH_MAIN_LAT), "lon": str(SOUTH_MAIN_LON)}
        if token is not None:
            data["token"] = token
        res = client.post(f"/requests/{public_id}/locate", data=data)
        assert res.status_code == 403
        assert "This link cannot set the location" in res.get_data(as_text=True)
        assert "Nothing was changed" in res.get_data(as_text=True)
    assert client.post("/requests/TV-2099-999999/locate", data=data).status_code == 404
    assert snapshot(sessions, public_id) == before


def test_a_request_that_has_a_location_or_is_closed_offers_nothing_and_is_refused(
    client, sessions, settings, sink, server, city
):
    code, _ = smtp_send(server, mime("Pothole", "Big hole at 100 S Main St", message_id="<a@x>"))
    assert code == 250
    located_id = load_latest(sessions).public_id
    located = load(sessions, located_id)
    assert located.location is not None and not located.needs_location
    link = f"/requests/{located_id}?token={located.token}&locate=1"
    html = client.get(link).get_data(as_text=True)
    assert 'id="locate-form"' not in html and "already has its location" in html
    before = snapshot(sessions, located_id)
    res = client.post(
        f"/requests/{located_id}/locate",
        data={
            "csrf_token": csrf_of(client.get("/report").get_data(as_text=True)),
            "token": located.token,
            "lat": str(SOUTH_MAIN_LAT),
            "lon": str(SOUTH_MAIN_LON),
        },
    )
    assert res.status_code == 409
    assert "already has a location" in res.get_data(as_text=True)
    assert snapshot(sessions, located_id) == before

    # A closed request keeps waiting: the reporter can no longer place it.
    public_id, link = mail_without_location(server, sessions, settings, sink, n=2)
    page = client.get(link).get_data(as_text=True)
    with sessions.begin() as s:
        req = s.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == public_id))
        req.status = "closed"
        token = req.token
    before = snapshot(sessions, public_id)
    assert 'id="locate-form"' not in client.get(link).get_data(as_text=True)
    res = client.post(
        f"/requests/{public_id}/locate",
        data={
            "csrf_token": csrf_of(page),
            "token": token,
            "lat": str(SOUTH_MAIN_LAT),
            "lon": str(SOUTH_MAIN_LON),
        },
    )
    assert res.status_code == 409 and "closed" in res.get_data(as_text=True)
    assert snapshot(sessions, public_id) == before


def load_latest(sessions) -> ServiceRequest:
    with sessions() as s:
        req = s.scalars(sa.select(ServiceRequest).order_by(ServiceRequest.id.desc())).first()
        s.expunge(req)
        return req


def test_the_locate_form_needs_its_csrf_token(client, sessions, settings, sink, server, city):
    public_id, link = mail_without_location(server, sessions, settings, sink)
    token = link.split("token=")[1].split("&")[0]
    before = snapshot(sessions, public_id)
    res = client.post(
        f"/requests/{public_id}/locate",
        data={"token": token, "lat": str(SOUTH_MAIN_LAT), "lon": str(SOUTH_MAIN_LON)},
    )
    assert res.status_code == 400
    assert snapshot(sessions, public_id) == before


def test_without_javascript_an_address_search_places_the_pin(
    client, sessions, settings, sink, server, city
):
    public_id, link = mail_without_location(server, sessions, settings, sink)
    token = link.split("token=")[1].split("&")[0]
    nothing = client.get(f"{link}&q=zzzz+qqqq").get_data(as_text=True)
    assert "No place in Testville matches 'zzzz qqqq'" in text(nothing)
    html = client.get(f"{link}&q=100+s+main+street").get_data(as_text=True)
    choice = re.search(
        r'name="place_choice" value="(\d+)"[^>]*data-address="' + re.escape(SOUTH_MAIN), html
    ).group(1)
    res = client.post(
        f"/requests/{public_id}/locate",
        data={
            "csrf_token": csrf_of(html),
            "token": token,
            "q": "100 s main street",
            "place_choice": choice,
        },
    )
    assert res.status_code == 303
    req = load(sessions, public_id)
    assert req.address == SOUTH_MAIN and not req.needs_location and req.zone_id is not None
    # Coordinates alone (the other map-free way) reach the West district and its crew.
    public_id, link = mail_without_location(server, sessions, settings, sink, n=2)
    res = client.post(
        f"/requests/{public_id}/locate",
        data={
            "csrf_token": csrf_of(html),
            "token": link.split("token=")[1].split("&")[0],
            "lat": f" {WEST_LAT} ",
            "lon": str(WEST_LON),
        },
    )
    assert res.status_code == 303
    with sessions() as s:
        req = s.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == public_id))
        assert req.crew.name == "West crew" and req.address is None


def test_the_locate_form_is_rate_limited_like_reports(
    app, client, sessions, settings, sink, server, city
):
    app.config["REPORT_RATE_LIMIT"] = "0.001/1"
    public_id, link = mail_without_location(server, sessions, settings, sink)
    token = link.split("token=")[1].split("&")[0]
    html = client.get(link).get_data(as_text=True)
    data = {"csrf_token": csrf_of(html), "token": token, "lat": OUTSIDE[0], "lon": OUTSIDE[1]}
    assert client.post(f"/requests/{public_id}/locate", data=data).status_code == 422
    data.update(lat=str(SOUTH_MAIN_LAT), lon=str(SOUTH_MAIN_LON))
    res = client.post(f"/requests/{public_id}/locate", data=data)
    assert res.status_code == 429 and int(res.headers["Retry-After"]) > 0
    assert "several forms in a short time" in res.get_data(as_text=True)
    assert load(sessions, public_id).needs_location is True


def test_a_dispatchers_priority_survives_and_a_second_pin_is_refused(
    sessions, settings, sink, server, city
):
    public_id, link = mail_without_location(server, sessions, settings, sink)
    token = link.split("token=")[1].split("&")[0]
    with sessions.begin() as s:
        dispatcher, _ = create_user(s, email="d@city.example", role="dispatcher")
        req = s.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == public_id))
        actions.triage(s, dispatcher, req, priority="urgent")
    with sessions.begin() as s:
        req = s.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == public_id))
        set_location_by_resident(s, req, token, lon=SOUTH_MAIN_LON, lat=SOUTH_MAIN_LAT)
        assert req.priority == "urgent" and req.crew_id is not None
    before = snapshot(sessions, public_id)
    with sessions() as s:
        req = s.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == public_id))
        with pytest.raises(LocateRefused, match="already has a location"):
            set_location_by_resident(s, req, token, lon=WEST_LON, lat=WEST_LAT)
        s.rollback()
    assert snapshot(sessions, public_id) == before
