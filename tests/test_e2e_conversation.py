"""A conversation end to end, in a real Chromium with real SMTP: the dispatcher replies
from the request page (mailed to the resident), the resident answers by replying to that
mail (through the city's intake server) and on their tracking page, the dispatcher reads
it all in one timeline and answers again. Then the crew resolves it, the resident reopens
from the resolution mail's link, and the crew's page lists the request as new again."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from intake.email_intake import MailIntake, start_smtp_server
from notify.worker import run_once
from routing import actions
from spatial.models import Department, RequestEvent, ServiceRequest
from spatial.models_mail import MailAddress, MailConfig
from tests.support.browser import chromium, serve, watch_problems
from tests.support.dispatch_city import PASSWORD, make_dispatch_city, report, user
from tests.support.mail import free_port, mime, smtp_send

pytestmark = pytest.mark.e2e

RESIDENT = "resident@example.org"
DEPT_MAIL = "streets@city.example"
INTAKE = "311@testville.example"
GATEWAY = "mx.testville.example"
PASS = {"Authentication-Results": f"{GATEWAY}; dmarc=pass header.from=example.org"}


def _login(page, base, key, next_path):
    page.goto(f"{base}/login?next={next_path}")
    page.fill('input[name="email"]', f"{key}@city.example")
    page.fill('input[name="password"]', PASSWORD)
    page.click('button[type="submit"]')
    page.wait_for_url(f"**{next_path}")


def test_resident_and_dispatcher_talk_then_the_resident_reopens(app, sessions, settings, sink):
    with sessions.begin() as s:
        city = make_dispatch_city(s)
        s.get(Department, city.streets_id).email = DEPT_MAIL
        s.add(MailAddress(jurisdiction_id=city.city_id, address=INTAKE, service_id=city.pothole_id))
        s.add(MailConfig(jurisdiction_id=city.city_id, trusted_authserv_id=GATEWAY))
        s.flush()
        req = report(s, settings.media_dir, email=RESIDENT)
        rid, pid, token = req.id, req.public_id, req.token
    intake = MailIntake(
        sessions,
        public_base_url=settings.public_base_url,
        media_dir=settings.media_dir,
        mail_from=settings.mail_from,
    )
    port = free_port()
    smtp = start_smtp_server(intake, "127.0.0.1", port)
    mailer = settings.with_overrides(smtp_url=sink.url)

    def deliver():
        run_once(sessions, mailer)

    def mail_to(addr, kind):
        found = [m for m in sink.to(addr) if m.message["X-Civicpin-Kind"] == kind]
        assert found, f"no {kind} mail to {addr}"
        return found[-1]

    try:
        with serve(app) as base, chromium() as browser:

            def here(url: str) -> str:  # the mailed link, on this test's server
                return url.replace(settings.public_base_url, base)

            # ---- 1. the dispatcher replies in their own words (public, e-mailed)
            desk = browser.new_context(viewport={"width": 1300, "height": 900}).new_page()
            desk_problems = watch_problems(desk)
            _login(desk, base, "dispatcher", f"/dispatch/requests/{pid}")
            box = "form#reply-form"
            desk.check(f'{box} input[value="public"]')
            desk.fill(f'{box} textarea[name="reply"]', "How deep is the hole, roughly?")
            desk.click(f'{box} button[type="submit"]')
            desk.locator("text=e-mailed").first.wait_for(timeout=10_000)
            deliver()
            asked = mail_to(RESIDENT, "template_reply")
            assert "How deep is the hole, roughly?" in asked.text
            assert f"token={token}" in asked.text

            # ---- 2. the resident answers by replying to that mail
            answer = mime(
                "Re: " + asked.message["Subject"],
                "About 20 cm, and a cyclist fell.\n\n> How deep is the hole, roughly?",
                sender=f"Rosa <{RESIDENT}>",
                to=INTAKE,
                message_id="<rosa-1@example.org>",
                headers={"In-Reply-To": asked.message["Message-ID"], **PASS},
            )
            code, text = smtp_send(port, answer, rcpt=INTAKE, mail_from=RESIDENT)
            assert code == 250 and pid in text
            deliver()
            told = mail_to(DEPT_MAIL, "reporter_message")
            assert "About 20 cm, and a cyclist fell." in told.text and token not in told.text

            # ---- 3. the resident writes again on their tracking page
            link = re.search(r"(http\S+\?token=\S+)", asked.text).group(1)
            resident = browser.new_context().new_page()
            resident_problems = watch_problems(resident)
            resident.goto(here(link))
            assert "How deep is the hole, roughly?" in resident.inner_text("#timeline")
            assert "About 20 cm, and a cyclist fell." in resident.inner_text("#timeline")
            resident.fill("#message-text", "Photos are on their way.")
            resident.click('#message-form button[type="submit"]')
            resident.wait_for_selector("#talk-done")
            assert "Photos are on their way." in resident.inner_text("#timeline")

            # ---- 4. the dispatcher sees one timeline of who said what, and answers
            desk.goto(f"{base}/dispatch/requests/{pid}")
            history = desk.inner_text(".history")
            assert history.index("How deep is the hole") < history.index("About 20 cm")
            assert history.index("About 20 cm") < history.index("Photos are on their way.")
            said = [
                desk.inner_text(f'.history__event[data-kind="{k}"] .history__actor')
                for k in ("reply", "message")
            ]
            assert said == ["Dispatcher", "Reporter"]
            desk.fill(f'{box} textarea[name="reply"]', "Thank you, a crew comes tomorrow.")
            desk.click(f'{box} button[type="submit"]')
            desk.locator("text=e-mailed").first.wait_for(timeout=10_000)
            deliver()
            assert "a crew comes tomorrow" in mail_to(RESIDENT, "template_reply").text

            # ---- 5. the crew resolves it; the resident reopens from the resolution mail
            with sessions.begin() as s:
                actions.set_status(
                    s,
                    user(s, "crew"),
                    s.get(ServiceRequest, rid),
                    status="resolved",
                    note="Filled",
                    public_base_url=settings.public_base_url,
                )
            deliver()
            resolution = mail_to(RESIDENT, "resolution")
            reopen_link = re.search(r"(http\S+#reopen)", resolution.text).group(1)
            resident.close()  # the mail's link opens a fresh page
            resident = browser.new_context().new_page()
            resident_problems = watch_problems(resident)
            resident.goto(here(reopen_link))
            resident.fill("#reopen-note", "It sank again after the rain.")
            resident.click('#reopen button[type="submit"]')
            resident.wait_for_selector("#talk-done")
            assert resident.inner_text("#status") == "New"
            assert "It sank again after the rain." in resident.inner_text("#timeline")
            assert resident_problems == []

            # ---- 6. the crew's page lists it as new again
            phone = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
            _login(phone, base, "crew", "/crew")
            item = phone.locator(f'.crew-item[data-public-id="{pid}"]')
            item.wait_for(timeout=10_000)
            assert "is-new" in (item.get_attribute("class") or "")
            deliver()
            assert mail_to("crew@city.example", "crew_assignment")
            assert desk_problems == []
    finally:
        smtp.stop()

    with sessions() as s:
        kinds = [
            (e.kind, e.public, e.to_value if e.kind == "message" else None)
            for e in s.scalars(
                sa.select(RequestEvent)
                .where(
                    RequestEvent.request_id == rid,
                    RequestEvent.kind.in_(["reply", "message", "reopen"]),
                )
                .order_by(RequestEvent.id)
            )
        ]
        assert kinds == [
            ("reply", True, None),
            ("message", False, "email"),
            ("message", False, "web"),
            ("reply", True, None),
            ("reopen", True, None),
        ]
        assert s.get(ServiceRequest, rid).reopen_count == 1
