"""Projects end to end in a real Chromium: a dispatcher creates a project and draws its
area on the map, links two requests from the dispatch console's panel, a resident sees
the project on their request's public page and on the project's own page, and closing the
project resolves both requests with one message that reaches their reporters."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from spatial.models import OutboxMessage, ServiceRequest
from spatial.models_work import Project
from tests.support.browser import chromium, serve, watch_problems
from tests.support.dispatch_city import PASSWORD, make_dispatch_city, report

pytestmark = pytest.mark.e2e

SHOTS = "/tmp/civicpin-projects-{}.png"
MESSAGE = "Main St was repaved this week: thank you for your reports."


def _login(page, base, key, next_path):
    page.goto(f"{base}/login?next={next_path}")
    page.fill('input[name="email"]', f"{key}@city.example")
    page.fill('input[name="password"]', PASSWORD)
    page.click('button[type="submit"]')
    page.wait_for_url(f"**{next_path}")


def test_project_from_creation_to_closing_in_chromium(app, sessions, settings):
    with sessions.begin() as s:
        make_dispatch_city(s)
        first = report(s, settings.media_dir, address="10 Main St", email="ana@example.org")
        second = report(
            s,
            settings.media_dir,
            address="30 Main St",
            email="ben@example.org",
            where=(34.051, -118.281),
        )
        refs = [first.public_id, second.public_id]
        ids = [first.id, second.id]

    with serve(app) as base, chromium() as browser:
        desk = browser.new_context(viewport={"width": 1400, "height": 900})
        page = desk.new_page()
        problems = watch_problems(page)
        _login(page, base, "dispatcher", "/dispatch")

        # ---- create the project, drawing its area on the map
        page.click("text=Projects")
        page.wait_for_url("**/staff/projects")
        page.click("#new-project")
        page.fill("#name", "Repave Main St")
        page.fill("#description", "Resurfacing between 1st and 5th")
        page.select_option("#status", "active")
        page.fill("#target_date", "2027-06-30")
        page.fill('input[name="milestone_title_1"]', "Milling")
        page.fill('input[name="milestone_due_1"]', "2027-05-01")
        page.fill('input[name="milestone_title_2"]', "Paving")
        page.wait_for_selector("#area-map.leaflet-container")
        page.click("#area-draw")
        box = page.locator("#area-map").bounding_box()
        for fx, fy in ((0.3, 0.3), (0.7, 0.3), (0.7, 0.7), (0.3, 0.7)):
            page.mouse.click(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
        page.click("#area-finish")
        assert '"Polygon"' in page.input_value("#area")
        page.click('#project-form button[type="submit"]')
        page.wait_for_selector("#project[data-project-id]")
        assert "Project Repave Main St created" in page.inner_text(".flashes")
        assert page.locator("#project-map path.leaflet-interactive").count() >= 1  # the area
        pid = int(page.get_attribute("#project", "data-project-id"))

        # ---- link both requests from the dispatch panel
        page.goto(f"{base}/dispatch")
        page.wait_for_selector("#console[data-live='1']")
        for ref in refs:
            page.click(f'.queue-item[data-public-id="{ref}"]')
            page.wait_for_selector(f'#panel .request-panel[data-public-id="{ref}"]')
            page.select_option(
                '#panel form[data-action="project"] select[name="project_id"]',
                label="Repave Main St",
            )
            page.click('#panel form[data-action="project"] button[type="submit"]')
            page.locator("#panel .panel-message.form-ok").filter(
                has_text="is now part of project Repave Main St"
            ).wait_for(timeout=10_000)
            assert "Repave Main St" in page.inner_text("#panel-project")

        page.goto(f"{base}/staff/projects/{pid}")
        assert page.locator("#project-requests tbody tr").count() == 2
        page.locator("#project-map .project-pin").first.wait_for()
        assert page.locator("#project-map .project-pin").count() == 2
        page.screenshot(path=SHOTS.format("detail"))

        # ---- a resident sees the project on the request's public page
        street = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
        resident = street.new_page()
        resident_problems = watch_problems(resident)
        resident.goto(f"{base}/requests/{refs[0]}")
        card = resident.locator("#project")
        assert "Repave Main St" in card.inner_text()
        assert "Under way" in card.inner_text() and "30 Jun 2027" in card.inner_text()
        assert "Milling" in card.inner_text()
        resident.click("#project-name")
        resident.wait_for_url(f"**/projects/{pid}")
        assert "Resurfacing between 1st and 5th" in resident.inner_text("main")
        assert resident.locator("#project-requests li").count() == 2
        resident.locator("#project-map .project-pin").first.wait_for()
        assert "dispatcher" not in resident.content().lower()
        resident.screenshot(path=SHOTS.format("public"))

        # ---- closing the project resolves both requests with one message
        page.check('#close-form input[name="resolve"]')
        page.fill('#close-form textarea[name="resolve_message"]', MESSAGE)
        page.click('#close-form button[type="submit"]')
        page.wait_for_selector(".flashes")
        assert "2 open requests resolved" in page.inner_text(".flashes")
        assert page.inner_text("#project-status") == "Done"
        resident.reload()
        assert "Resolved" in resident.inner_text("#project-requests")
        assert problems == [] and resident_problems == []

    with sessions() as s:
        assert s.get(Project, pid).status == "done"
        for req_id in ids:
            req = s.get(ServiceRequest, req_id)
            assert req.status == "resolved" and req.close_reason == MESSAGE
        mails = s.scalars(sa.select(OutboxMessage).where(OutboxMessage.kind == "resolution")).all()
        assert {m.to_addr for m in mails} >= {"ana@example.org", "ben@example.org"}
        assert all(MESSAGE in m.body_text for m in mails)
