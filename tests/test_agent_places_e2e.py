"""The call-taker's address look-up in a real Chromium, on a city with its real
centrelines: type what the caller says, pick a candidate, the map centres on it, the
open request nearby is shown and the caller follows it instead of a new request; a pin
moved on the map is put into words."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from geoalchemy2.shape import to_shape

from intake.submit import Draft, submit
from spatial.models import RequestEvent, ServiceRequest
from tests.support.browser import chromium, serve, watch_problems
from tests.support.cambridge_calls import AGENT, make_cambridge_calls, metres, range_truth
from tests.support.dispatch_city import PASSWORD

pytestmark = pytest.mark.e2e

SHOT = "/tmp/civicpin-agent-places.png"


def test_type_an_address_pick_it_see_the_duplicate_and_follow(app, sessions, settings):
    truth = range_truth("Cambridge St", 1334)
    with sessions.begin() as s:
        city = make_cambridge_calls(s)
        first = submit(
            s,
            Draft(
                city=city.slug,
                service_code=city.service_code,
                lat=truth[0] + 0.0001,
                lon=truth[1],
                description="The light by the bakery is out",
                contact_email="first@example.org",
            ),
            media_dir=settings.media_dir,
            public_base_url=settings.public_base_url,
        ).request
        pid, first_id = first.public_id, first.id

    with serve(app) as base, chromium() as browser:
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        problems = watch_problems(page)
        page.goto(f"{base}/login?next=/agent")
        page.fill('input[name="email"]', AGENT)
        page.fill('input[name="password"]', PASSWORD)
        page.click('button[type="submit"]')
        page.wait_for_url("**/agent")

        page.select_option("#service-select", "streetlight")
        page.locator("#agent-address").press_sequentially("1334 cambridge st", delay=20)
        option = page.locator("#place-candidates .place-candidate button").first
        option.wait_for(timeout=10_000)
        assert option.inner_text().startswith("1334 CAMBRIDGE ST")
        listed = page.inner_text("#place-candidates")
        assert "range" in listed and ("exact" in listed or "confident" in listed)
        option.click()

        # The map centres on the chosen place; the form holds it.
        centre = page.evaluate(
            "() => { const c = window.civicpinAgentMap.getCenter(); return [c.lat, c.lng]; }"
        )
        assert metres(tuple(centre), truth) < 25
        lat = float(page.input_value("#agent-lat"))
        lon = float(page.input_value("#agent-lon"))
        assert metres((lat, lon), truth) < 25
        assert page.input_value("#agent-address").startswith("1334 CAMBRIDGE ST")

        # The open request a few metres away is shown, with a one-click follow.
        nearby = page.locator(f'#nearby-list li[data-public-id="{pid}"]')
        nearby.wait_for(timeout=10_000)
        assert "first@example.org" not in page.inner_text("#agent-nearby")
        page.screenshot(path=SHOT)

        # Moving the pin puts the new spot into words.
        box = page.locator("#agent-map").bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2 + 60, box["y"] + box["height"] / 2)
        page.wait_for_function(
            "() => document.getElementById('pin-place').textContent.startsWith('Pin:')"
        )
        moved = (float(page.input_value("#agent-lat")), float(page.input_value("#agent-lon")))
        assert moved != (lat, lon)
        assert page.input_value("#agent-address") in page.inner_text("#pin-place")

        nearby.locator("button", has_text=f"Caller follows {pid}").click()
        page.wait_for_url(f"**/agent?q={pid}")
        assert f"The caller now follows {pid}" in page.inner_text("body")

        # Another caller: a confident address is placed as it is typed, and sent normalised.
        page.select_option("#service-select", "streetlight")
        page.locator("#agent-address").press_sequentially("1334 cambridge street", delay=20)
        page.wait_for_function(
            "() => document.getElementById('pin-place').textContent.startsWith('Best candidate')"
        )
        page.fill('textarea[name="description"]', "Second caller: light out")
        page.click("#agent-form button:has-text('Create request')")
        page.wait_for_url("**/agent/requests")
        assert "CAM-" in page.inner_text("body")
        assert problems == []

    with sessions() as s:
        second = s.scalar(sa.select(ServiceRequest).where(ServiceRequest.id != first_id))
        assert second.address.startswith("1334 CAMBRIDGE ST")
        pt = to_shape(second.location)
        assert metres((pt.y, pt.x), truth) < 25
        kinds = s.scalars(
            sa.select(RequestEvent.kind).where(RequestEvent.request_id == first_id)
        ).all()
        assert "followed" in kinds
