"""A crew member who forgot their password, in real Chromium: the forgot page, the mail
delivered over real SMTP, the link, a new password, sign-in, and their crew's page."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from notify.worker import run_once
from tests.support.browser import chromium, serve, watch_problems
from tests.support.dispatch_city import PASSWORD, make_dispatch_city

CREW = "crew@city.example"
NEW_PASSWORD = "lantern orbit quietly 42"


@pytest.fixture
def city(sessions):
    with sessions.begin() as s:
        return make_dispatch_city(s)


def test_forgot_mail_reset_and_sign_in_lands_on_the_crew_page(app, city, sessions, settings, sink):
    with serve(app) as base, chromium() as browser:
        page = browser.new_page()
        problems = watch_problems(page)
        page.goto(f"{base}/login")
        page.click("text=Forgot your password?")
        page.fill('input[name="email"]', CREW)
        page.click("text=Send me a link")
        page.wait_for_selector("#reset-sent")

        run_once(sessions, settings.with_overrides(smtp_url=sink.url))
        (mail,) = sink.to(CREW)
        link = re.search(r"https?://\S+/login/reset\?token=\S+", mail.text).group(0)
        parts = urlsplit(link)
        page.goto(f"{base}{parts.path}?{parts.query}")
        assert CREW in page.inner_text("main")
        page.fill("#password", NEW_PASSWORD)
        page.fill("#confirm", NEW_PASSWORD)
        page.click("text=Set the password")
        page.wait_for_selector("text=Your new password is set")

        page.fill('input[name="email"]', CREW)
        page.fill('input[name="password"]', NEW_PASSWORD)
        page.click('button[type="submit"]')
        # at the city's address the link came from, on the crew's own page
        page.wait_for_url(f"{base}/c/{city.slug}/crew")
        current = page.locator('nav[aria-label="Workspaces"] a[aria-current="page"]')
        assert current.inner_text() == "Crew"
        workspaces = page.locator('nav[aria-label="Workspaces"] a').all_inner_texts()
        assert workspaces == ["Crew", "Intranet"]
        assert problems == []

        # the link does not work a second time, and the old password is gone
        parts = urlsplit(link)
        page.goto(f"{base}{parts.path}?{parts.query}")
        assert "does not work any more" in page.inner_text("main")
        other = browser.new_page()
        other.goto(f"{base}/login")
        other.fill('input[name="email"]', CREW)
        other.fill('input[name="password"]', PASSWORD)
        other.click('button[type="submit"]')
        assert "not right" in other.inner_text("main")
