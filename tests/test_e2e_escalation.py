"""Escalation end to end: an overdue request escalates when the real ``civicpin worker``
runs, the department supervisor's mail arrives over real SMTP, its link opens the request
for the supervisor in Chromium (after signing in), and the console's escalation filter
shows it with its badge while the request that is on time stays out."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from routing import organisation as org
from spatial.accounts import create_user
from spatial.models import Department, Jurisdiction, OutboxMessage, ServiceRequest, now_utc
from tests.support.browser import chromium, serve, watch_problems
from tests.support.dispatch_city import PASSWORD, make_dispatch_city, report
from tests.support.mail import Sink

pytestmark = pytest.mark.e2e

SUPERVISOR = "supervisor@city.example"


def test_an_overdue_request_reaches_the_supervisor(app, sessions, settings, cli):
    with sessions.begin() as s:
        made = make_dispatch_city(s)
        boss, _ = create_user(
            s,
            email=SUPERVISOR,
            role="dispatcher",
            city_slug=made.slug,
            name="Sam",
            password=PASSWORD,
        )
        streets = s.get(Department, made.streets_id)
        org.add_to_department(s, boss, streets)
        org.set_supervisor(s, boss, streets, True)
        late = report(s, settings.media_dir, address="9 Late Ln")
        late.due_at = now_utc() - timedelta(hours=2)
        on_time = report(s, settings.media_dir, address="1 Fine St")
        late_pid, on_time_pid = late.public_id, on_time.public_id
        # What intake queued (acknowledgements) is not what this test is about.
        s.execute(sa.delete(OutboxMessage))
        assert s.get(Jurisdiction, made.city_id).timezone  # the city's own clock

    sink = Sink().start()
    try:
        with serve(app) as base, chromium() as browser:
            run = cli("worker", "--once", env={"SMTP_URL": sink.url, "PUBLIC_BASE_URL": base})
            assert run.returncode == 0, run.stderr
            sink.wait_for(1)
            # (The department's morning digest may come too, by the city's hour.)
            (mail,) = [m for m in sink.received if "Escalated" in m.message["Subject"]]
            assert mail.rcpt_tos == [SUPERVISOR]
            message = mail.message
            assert late_pid in message["Subject"] and "level 1" in message["Subject"]
            text = mail.text
            assert "overdue since" in text
            assert "token=" not in text and "resident@example.org" not in text
            link = re.search(r"Open it: (\S+)", text).group(1)
            assert link.startswith(base) and link.endswith(f"/dispatch/requests/{late_pid}")

            page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            problems = watch_problems(page)
            page.goto(link)  # not signed in yet: the sign-in page, then the request
            page.fill('input[name="email"]', SUPERVISOR)
            page.fill('input[name="password"]', PASSWORD)
            page.click('button[type="submit"]')
            page.wait_for_url(f"**/dispatch/requests/{late_pid}")
            body = page.inner_text("body")
            assert late_pid in body and "9 Late Ln" in body
            assert "untriaged for" not in body and "overdue since" in body  # the history

            page.goto(f"{base}/dispatch")
            page.wait_for_selector("#console[data-live='1']")
            page.check('#filters input[name="escalated"]')
            page.locator(f'.queue-item[data-public-id="{on_time_pid}"]').wait_for(
                state="detached", timeout=10_000
            )
            item = page.locator(f'.queue-item[data-public-id="{late_pid}"]')
            item.wait_for(timeout=10_000)
            assert "escalated: level 1" in item.inner_text()
            assert page.inner_text("#queue-status").startswith("1 request")
            page.screenshot(path="/tmp/civicpin-escalation-console.png")
            assert problems == []
    finally:
        sink.stop()
    with sessions() as s:
        req = s.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == late_pid))
        assert req.escalation_level == 1
