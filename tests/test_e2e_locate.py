"""Dropping the missing pin in a real Chromium: an e-mail without a location becomes a
request; the resident opens the link from the auto-reply, taps the map, saves, and sees
the request placed and routed. Without JavaScript the same page takes coordinates."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from geoalchemy2.shape import to_shape

from intake.email_intake import MailIntake
from spatial.models import OutboxMessage, ServiceRequest
from tests.support.browser import chromium, serve, watch_problems
from tests.support.locate_city import make_locate_city
from tests.support.mail import INTAKE, RESIDENT, mime

pytestmark = pytest.mark.e2e

SHOTS = "/tmp/civicpin-locate-{}.png"


@pytest.fixture
def city(sessions):
    with sessions.begin() as s:
        return {"id": make_locate_city(s)["city"].id}


@pytest.fixture
def site(app, city):
    with serve(app) as base, chromium() as browser:
        yield base, browser


def emailed_without_location(sessions, settings, n: int = 1) -> tuple[str, str]:
    """(public id, path of the auto-reply's "show us where" link) of a mailed report."""
    intake = MailIntake(
        sessions,
        public_base_url=settings.public_base_url,
        media_dir=settings.media_dir,
        mail_from=settings.mail_from,
    )
    msg = mime("Noise", "Loud music every night.", message_id=f"<e2e-{n}@example.org>")
    outcome = intake.process(bytes(msg), mail_from=RESIDENT, rcpt_tos=[INTAKE])
    assert outcome.outcome == "created"
    with sessions() as s:
        ack = s.scalars(
            sa.select(OutboxMessage)
            .where(OutboxMessage.to_addr == RESIDENT)
            .order_by(OutboxMessage.id.desc())
        ).first()
        link = re.search(r"(https?://\S+&locate=1)", ack.body_text).group(1)
    parts = urlsplit(link)
    return outcome.public_id, f"{parts.path}?{parts.query}"


def stored(sessions, public_id: str) -> ServiceRequest:
    with sessions() as s:
        req = s.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == public_id))
        s.expunge(req)
        return req


def test_resident_taps_the_map_to_drop_the_missing_pin(site, sessions, settings):
    base, browser = site
    public_id, link = emailed_without_location(sessions, settings)
    ctx = browser.new_context(viewport={"width": 412, "height": 860}, is_mobile=True)
    page = ctx.new_page()
    problems = watch_problems(page)
    page.goto(base + link)
    page.wait_for_selector("#locate-map[data-ready='1']")
    # With the map working, the plain-HTML helpers stand back.
    assert page.locator("#locate-plain").is_hidden()
    assert page.locator("#lat").is_hidden()  # the coordinates sit in a closed <details>
    assert page.get_by_role("button", name="Use my location").is_visible()

    # Saving without a pin asks for one first (nothing is sent).
    page.get_by_role("button", name="Save the location").click()
    page.locator("#pin-info", has_text="Put the pin on the map first").wait_for()
    assert page.url.endswith("&locate=1")

    # Tap the map in the East district (the city's square is split down the middle).
    box = page.locator("#locate-map").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.75, box["y"] + box["height"] * 0.5)
    page.locator("#pin-info", has_text="Pin placed").wait_for()
    assert page.locator(".leaflet-marker-icon").count() == 1
    lat, lon = float(page.input_value("#lat")), float(page.input_value("#lon"))
    assert -118.25 < lon < -118.20 and 34.0 < lat < 34.1
    page.screenshot(path=SHOTS.format("pin"), full_page=True)

    page.get_by_role("button", name="Save the location").click()
    page.wait_for_url(f"**/requests/{public_id}?token=*")
    assert "the location is saved" in page.locator("#located-note").inner_text()
    page.wait_for_selector("#track-map[data-ready='1']")
    assert page.locator("#routed-to").inner_text() == "Streets, East crew"
    assert "Location added" in page.locator("#timeline").inner_text()
    assert page.locator("#locate-form").count() == 0
    page.screenshot(path=SHOTS.format("located"), full_page=True)

    req = stored(sessions, public_id)
    point = to_shape(req.location)
    assert (point.y, point.x) == pytest.approx((lat, lon), abs=1e-6)
    assert req.needs_location is False and req.crew_id is not None
    assert problems == []
    ctx.close()


def test_without_javascript_the_coordinates_place_the_pin(site, sessions, settings):
    base, browser = site
    public_id, link = emailed_without_location(sessions, settings)
    ctx = browser.new_context(java_script_enabled=False, viewport={"width": 412, "height": 860})
    page = ctx.new_page()
    page.goto(base + link)
    assert page.locator("#locate-map").is_hidden()
    page.get_by_label("Latitude").fill("34.09")
    page.get_by_label("Longitude").fill("-118.29")
    page.get_by_role("button", name="Save the location").click()
    page.wait_for_url(f"**/requests/{public_id}?token=*")
    assert page.locator("#routed-to").inner_text() == "Streets, West crew"
    req = stored(sessions, public_id)
    assert req.needs_location is False
    ctx.close()
