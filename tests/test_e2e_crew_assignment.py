"""A crew member is told of new work, in real Chromium with real SMTP: the assignment
mail arrives, its link (opened signed out) leads through sign-in to the crew's own page
of the request, the crew acknowledges it there, the reporter hears of it, and the crew's
list no longer shows it as new."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from notify.worker import run_once
from tests.support.browser import chromium, serve, watch_problems
from tests.support.dispatch_city import PASSWORD, make_dispatch_city, report

pytestmark = pytest.mark.e2e

CREW = "crew@city.example"
REPORTER = "rosa@example.org"


def test_assignment_mail_link_sign_in_and_acknowledge_in_chromium(app, sessions, settings, sink):
    with sessions.begin() as s:
        city = make_dispatch_city(s)
        first = report(s, settings.media_dir, email=REPORTER, address="12 Elm St")
        second = report(s, settings.media_dir, email=None, where=(34.06, -118.27))
        pid, other_pid = first.public_id, second.public_id
    smtp = settings.with_overrides(smtp_url=sink.url)
    run_once(sessions, smtp)
    mails = {m.message["Subject"]: m for m in sink.to(CREW)}
    (subject,) = [k for k in mails if pid in k]
    assert subject == f"[{pid}] New for West crew: Pothole (normal)"
    text = mails[subject].text
    assert "12 Elm St" in text and "Priority: normal" in text and REPORTER not in text
    link = re.search(r"https?://\S+/crew/requests/\S+", text).group(0)
    path = urlsplit(link).path
    assert path == f"/c/{city.slug}/crew/requests/{pid}"

    with serve(app) as base, chromium() as browser:
        phone = browser.new_context(
            viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
        )
        page = phone.new_page()
        problems = watch_problems(page)
        # signed out: the link asks for sign-in, then opens the request
        page.goto(f"{base}{path}")
        page.wait_for_selector('input[name="password"]')
        page.fill('input[name="email"]', CREW)
        page.fill('input[name="password"]', PASSWORD)
        page.click('button[type="submit"]')
        page.wait_for_url(f"{base}{path}")
        assert pid in page.inner_text("h1")
        assert page.inner_text("#crew-new-badge") == "New"
        assert page.locator("#crew-status-badge").count() == 0  # says the same
        assert REPORTER in page.inner_text(".contact")

        page.click("#crew-acknowledge")
        page.locator(".flashes").filter(has_text=f"{pid} acknowledged").wait_for()
        assert page.inner_text("#crew-status-badge") == "Acknowledged"
        assert page.locator("#crew-new-badge").count() == 0
        assert page.locator("#crew-acknowledge").count() == 0
        assert "Acknowledged" in page.inner_text(".history, main")

        # the crew's list: it is no longer new; the other request still is
        page.goto(f"{base}/c/{city.slug}/crew")
        page.wait_for_selector("#crew[data-loaded='2']")
        done = page.locator(f'.crew-item[data-public-id="{pid}"]')
        waiting = page.locator(f'.crew-item[data-public-id="{other_pid}"]')
        assert "is-new" not in done.get_attribute("class")
        assert "Acknowledged" in done.inner_text()
        assert "is-new" in waiting.get_attribute("class") and "New" in waiting.inner_text()
        assert page.inner_text("#crew-status") == "2 open requests, 1 new"
        assert page.locator("#crew-new").is_visible()
        assert page.locator(".leaflet-marker-icon.dispatch-pin.is-new").count() == 1
        page.screenshot(path="/tmp/civicpin-crew-assignment.png")
        assert problems == []

    # the reporter reads that the crew has it
    run_once(sessions, smtp)
    (notice,) = [m for m in sink.to(REPORTER) if "Acknowledged" in m.message["Subject"]]
    assert pid in notice.message["Subject"]
