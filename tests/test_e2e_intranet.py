"""A staff member's help-desk requests end to end: one filed on the intranet page in
Chromium (no map anywhere), one by e-mail to the help-desk address through civicpin's own
SMTP intake, the answers delivered over real SMTP; both route to the IT department, show
in "My requests" and in dispatch with "No location", and never on a public page, map or
API answer. A stranger writing to the help-desk address is refused and files nothing."""

from __future__ import annotations

import re

import sqlalchemy as sa

from intake.email_intake import MailIntake, start_smtp_server
from notify.worker import run_once
from spatial.models import InboundEmail, ServiceRequest
from spatial.models_mail import MailAddress, MailConfig
from tests.support.browser import chromium, serve, watch_problems
from tests.support.dispatch_city import PASSWORD
from tests.support.mail import free_port, mime, smtp_send
from tests.test_intranet import make_helpdesk_city

GATEWAY = "mx.city.example"
HELPDESK = "helpdesk@city.example"
REQUESTER = "requester@city.example"
STRANGER = "mallory@stranger.example"


def _verdict(domain: str) -> dict[str, str]:
    return {"Authentication-Results": f"{GATEWAY}; dmarc=pass header.from={domain}"}


def _login(page, base: str, key: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=email]", f"{key}@city.example")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def _requests(sessions) -> list[ServiceRequest]:
    with sessions() as s:
        rows = list(s.scalars(sa.select(ServiceRequest).order_by(ServiceRequest.id)))
        s.expunge_all()
        return rows


def test_help_desk_requests_on_the_intranet_and_by_mail(app, sessions, settings, sink):
    with sessions.begin() as s:
        info = make_helpdesk_city(s)
        city_id = info["dc"].city_id
        s.add(
            MailConfig(
                jurisdiction_id=city_id,
                dispatch_email="dispatch@city.example",
                trusted_authserv_id=GATEWAY,
            )
        )
        password_id = s.scalar(sa.text("SELECT id FROM service WHERE code = 'password'"))
        s.add(MailAddress(jurisdiction_id=city_id, address=HELPDESK, service_id=password_id))
    intake = MailIntake(
        sessions,
        public_base_url=settings.public_base_url,
        media_dir=settings.media_dir,
        mail_from=settings.mail_from,
    )
    port = free_port()
    controller = start_smtp_server(intake, "127.0.0.1", port)
    mail_settings = settings.with_overrides(smtp_url=sink.url)
    try:
        with serve(app) as base, chromium() as browser:
            page = browser.new_page()
            problems = watch_problems(page)
            # 1. On the intranet: sign-in lands there; the form asks for no place.
            _login(page, base, "requester")
            assert page.url.endswith("/intranet")
            page.click("a[data-code=password]")
            page.wait_for_selector("#intranet-form")
            assert page.locator("input[name=address]").count() == 0
            assert page.locator(".leaflet-container").count() == 0
            page.check("input[name='attribute[system]'][value=mail]")
            page.fill("#description", "Locked out of my mailbox since this morning")
            page.click("#intranet-form button[type=submit]")
            page.wait_for_selector("#my-requests")
            first = _requests(sessions)[-1]
            assert page.locator(f"[data-public-id='{first.public_id}']").count() == 1

            # 2. By e-mail to the help-desk address, from the staff member's own address.
            msg = mime(
                "New laptop keyboard",
                "My keyboard lost its E key.\n\n--\nAnn Staff, 200 N Spring St, room 4",
                sender=f"Ann Staff <{REQUESTER}>",
                to=HELPDESK,
                message_id="<kb-1@city.example>",
                headers=_verdict("city.example"),
            )
            code, reply = smtp_send(port, msg, rcpt=HELPDESK, mail_from=REQUESTER)
            assert code == 250, reply
            second = _requests(sessions)[-1]
            assert second.id != first.id and "keyboard" in second.description

            # 3. A stranger writing to it files nothing and hears the address is for staff.
            before = len(_requests(sessions))
            msg = mime(
                "Reset my password",
                "Please reset it.",
                sender=STRANGER,
                to=HELPDESK,
                message_id="<x-1@stranger.example>",
                headers=_verdict("stranger.example"),
            )
            assert smtp_send(port, msg, rcpt=HELPDESK, mail_from=STRANGER)[0] == 250
            assert len(_requests(sessions)) == before
            with sessions() as s:
                refused = s.scalars(
                    sa.select(InboundEmail).where(InboundEmail.mail_from == STRANGER)
                ).one()
                assert refused.outcome == "refused_not_staff" and refused.request_id is None

            # The answers go out over SMTP: the staff member's links to the intranet.
            run_once(sessions, mail_settings)
            to_staff = [r for r in sink.received if REQUESTER in r.rcpt_tos]
            acks = [r for r in to_staff if "[" + second.public_id + "]" in r.message["Subject"]]
            assert acks, [r.message["Subject"] for r in to_staff]
            body = acks[0].text
            assert "/intranet/requests" in body and "token=" not in body
            assert "map" not in body.lower()  # never asked for a pin
            to_stranger = [r for r in sink.received if STRANGER in r.rcpt_tos]
            assert len(to_stranger) == 1 and "staff" in to_stranger[0].text
            assert second.public_id not in to_stranger[0].text

            # 4. Both are the staff member's, routed to IT by category alone, with no place.
            for req in (first, second):
                assert req.requester_id == info["users"]["requester"]
                assert req.department_id == info["it_id"]
                assert (req.location, req.needs_location) == (None, False)
            assert second.address is None  # the signature's address was not used
            page.goto(f"{base}/intranet/requests")
            mine = page.inner_text("#my-requests")
            assert first.public_id in mine and second.public_id in mine
            assert mine.index(second.public_id) < mine.index(first.public_id)

            # 5. Dispatch of the IT department sees them with "No location", no map pin.
            it = browser.new_page()
            _login(it, base, "it_dispatcher")
            for req in (first, second):
                it.goto(f"{base}/dispatch/requests/{req.public_id}")
                assert it.locator("#panel-no-location").inner_text() == "No location"
                assert it.locator("form[data-action=move]").count() == 0
            it.close()

            # 6. The stranger's view: no public page, map or API answer shows them.
            stranger = browser.new_page()
            for req in (first, second):
                res = stranger.goto(f"{base}/requests/{req.public_id}")
                assert res.status == 404
            api = stranger.request
            answers = [
                api.get(f"{base}/api/map/requests?bbox=-118.5,33.9,-118.0,34.2&zoom=16").text(),
                api.get(f"{base}/open311/v2/requests.json").text(),
                api.get(f"{base}/open311/v2/services.json").text(),
            ]
            for text in answers:
                for req in (first, second):
                    assert req.public_id not in text
                assert not re.search(r"Password reset|\"password\"", text)
            assert problems == [], problems
    finally:
        controller.stop()
