"""Every message carries only its recipient's own links: the outbox after the scripted
life of a request, delivered over real SMTP, read link by link; and a staff alert's
unsubscribe, which speaks for that address and that kind of message only."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from notify.links import FOLLOW_SALT, SURVEY_SALT, UNSUBSCRIBE_SALT, mail_config, verify
from notify.worker import run_once
from routing import actions
from spatial.accounts import create_user
from spatial.models import Crew, Follower, InboundEmail, ServiceRequest, now_utc
from spatial.models_mail import SurveyToken
from tests.support.dispatch_city import EAST, PASSWORD, make_dispatch_city, report, user
from tests.support.mail import DISPATCH, NIGHT_DESK

BASE = "http://127.0.0.1:5000"
REPORTER = "rosa@example.org"
PHONE = "+1 555 0142"
NEIGHBOUR = "neighbour@example.org"
VICTIM = "victim@example.org"
URL = re.compile(r"https?://[^\s<>\"]+")


@pytest.fixture
def city(sessions):
    with sessions.begin() as s:
        info = make_dispatch_city(s)
        mail_config(s, info.city_id).dispatch_email = DISPATCH
        return info


def deliver(sessions, settings, sink):
    return run_once(sessions, settings.with_overrides(smtp_url=sink.url))


def csrf(client, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def follow_and_maybe_confirm(client, sessions, settings, sink, public_id, email, confirm):
    path = f"/requests/{public_id}/follow"
    res = client.post(path, data={"csrf_token": csrf(client, path), "follow_email": email})
    assert res.status_code == 200
    deliver(sessions, settings, sink)
    if confirm:
        (mail,) = sink.to(email)
        link = urlsplit(re.search(r"http://\S+/follow/confirm/\S+", mail.text).group(0)).path
        assert client.post(link, data={"csrf_token": csrf(client, link)}).status_code == 200


def check_link(session, url: str, recipient: str, req: ServiceRequest) -> str:
    """What the link is; fails if it carries anything that is not the recipient's own."""
    parts = urlsplit(url)
    path, query = parts.path, parse_qs(parts.query)
    assert path.startswith("/c/testville/"), f"{url} is not at the city's own address"
    path = path.removeprefix("/c/testville")
    if "token" in query:
        assert recipient == REPORTER, f"{recipient} got the reporter's private link {url}"
        assert query["token"] == [req.token] and path == f"/requests/{req.public_id}"
        return "private page"
    assert not query or set(query) == {"city"}, url
    if m := re.fullmatch(r"/unsubscribe/([^/]+)", path):
        assert verify(session, m.group(1), UNSUBSCRIBE_SALT)["e"] == recipient, url
        return "unsubscribe"
    if m := re.fullmatch(r"/survey/([^/]+)", path):
        nonce = verify(session, m.group(1), SURVEY_SALT)["n"]
        owner = session.scalar(sa.select(SurveyToken.email).where(SurveyToken.nonce == nonce))
        assert recipient == REPORTER and owner.lower() == recipient, url
        return "survey"
    if m := re.fullmatch(r"/requests/[^/]+/follow/confirm/([^/]+)", path):
        assert verify(session, m.group(1), FOLLOW_SALT)["e"] == recipient, url
        return "confirm"
    if path == f"/requests/{req.public_id}":
        return "public page"
    if path in (f"/dispatch/requests/{req.public_id}", f"/crew/requests/{req.public_id}"):
        assert recipient.endswith("@city.example") or recipient == DISPATCH, url
        return "staff page"
    assert path in ("/help/triage", "/"), f"a link no test knows: {url}"
    return "help"


def test_every_message_of_a_requests_life_holds_only_its_recipients_links(
    client, sessions, settings, sink, city
):
    # a report with the reporter's e-mail and phone
    with sessions.begin() as s:
        req = report(s, settings.media_dir, email=REPORTER, contact_phone=PHONE)
    # a neighbour follows and confirms; a stranger types in someone else's address
    follow_and_maybe_confirm(client, sessions, settings, sink, req.public_id, NEIGHBOUR, True)
    follow_and_maybe_confirm(client, sessions, settings, sink, req.public_id, VICTIM, False)
    # dispatch sends it to the east crew, which works on it and resolves it
    with sessions.begin() as s:
        r = s.get(ServiceRequest, req.id)
        actions.reassign(
            s,
            user(s, "dispatcher"),
            r,
            department_id=city.streets_id,
            crew_id=city.crew_e_id,
            public_base_url=BASE,
        )
    for status in ("acknowledged", "in_progress", "resolved"):
        with sessions.begin() as s:
            actions.set_status(
                s,
                user(s, "crew_other"),
                s.get(ServiceRequest, req.id),
                status=status,
                note=f"Now {status}",
                public_base_url=BASE,
            )
    deliver(sessions, settings, sink)
    # the reporter answers the survey, and a dispatcher sends a standard response
    (survey,) = [m for m in sink.to(REPORTER) if "/survey/" in m.text]
    survey_path = urlsplit(re.search(r"http://\S+/survey/\S+", survey.text).group(0)).path
    res = client.post(survey_path, data={"csrf_token": csrf(client, survey_path), "rating": "4"})
    assert res.status_code == 200
    with sessions.begin() as s:
        actions.reply_with_template(
            s,
            user(s, "dispatcher"),
            s.get(ServiceRequest, req.id),
            template_id=city.template_id,
            public_base_url=BASE,
        )
    deliver(sessions, settings, sink)

    received = sink.received
    kinds = {(m.rcpt_tos[0], m.message["X-Civicpin-Kind"]) for m in received}
    assert kinds == {
        (REPORTER, "acknowledgement"),
        (DISPATCH, "dispatcher_alert"),
        (NEIGHBOUR, "follow_confirmation"),
        (VICTIM, "follow_confirmation"),
        ("crew@city.example", "crew_assignment"),
        ("crew_other@city.example", "crew_assignment"),
        (REPORTER, "status_change"),
        (NEIGHBOUR, "status_change"),
        (REPORTER, "resolution"),
        (NEIGHBOUR, "resolution"),
        (REPORTER, "template_reply"),
        (NEIGHBOUR, "template_reply"),
    }
    seen = set()
    with sessions() as s:
        for mail in received:
            (recipient,) = [a.lower() for a in mail.rcpt_tos]
            raw = mail.raw.decode()
            if recipient != REPORTER:
                # nothing of the reporter's reaches anyone else, in a link or not
                assert req.token not in raw and REPORTER not in raw and PHONE not in raw
            links = URL.findall(mail.text) + [mail.message["List-Unsubscribe"].strip("<>")]
            for url in links:
                seen.add(check_link(s, url, recipient, req))
    assert {"private page", "public page", "staff page", "unsubscribe", "survey", "confirm"} <= seen


def test_a_dispatcher_alert_unsubscribe_stops_that_address_and_kind_only_and_is_undone(
    client, sessions, settings, sink, city
):
    # the dispatch address is also a crew member's (a shared mailbox)
    with sessions.begin() as s:
        member, _ = create_user(
            s, email=DISPATCH, role="crew", city_slug=city.slug, password=PASSWORD
        )
        member.crews.append(s.get(Crew, city.crew_e_id))
        first = report(s, settings.media_dir, email=REPORTER)
    deliver(sessions, settings, sink)
    (alert,) = sink.to(DISPATCH)
    url = alert.message["List-Unsubscribe"].strip("<>")
    path = urlsplit(url).path
    with sessions() as s:
        payload = verify(s, path.rsplit("/", 1)[1], UNSUBSCRIBE_SALT)
    assert (payload["e"], payload["r"], payload["k"]) == (DISPATCH, None, "dispatcher_alert")
    page = client.get(path).get_data(as_text=True)
    assert "Stop alerts of new requests (dispatcher alerts)" in page
    assert "Other addresses keep getting theirs" in page
    res = client.post(path, data={"List-Unsubscribe": "One-Click"})  # RFC 8058, no CSRF
    assert res.status_code == 200 and "will get no more alerts of new requests" in (
        res.get_data(as_text=True)
    )
    # the same address still gets its other kinds of mail: a crew assignment
    with sessions.begin() as s:
        actions.reassign(
            s,
            user(s, "dispatcher"),
            s.get(ServiceRequest, first.id),
            department_id=city.streets_id,
            crew_id=city.crew_e_id,
            public_base_url=BASE,
        )
        report(s, settings.media_dir, email="second@example.org", where=EAST)
    deliver(sessions, settings, sink)
    # (the reassignment, and the new request routed to the East crew)
    assert [m.message["X-Civicpin-Kind"] for m in sink.to(DISPATCH)] == [
        "dispatcher_alert",
        "crew_assignment",
        "crew_assignment",
    ]
    assert len(sink.to("second@example.org")) == 1  # the reporter's acknowledgement
    # another address that gets the alerts is not silenced
    with sessions.begin() as s:
        mail_config(s, city.city_id).dispatch_email = NIGHT_DESK
        report(s, settings.media_dir, email=None)
    deliver(sessions, settings, sink)
    assert [m.message["X-Civicpin-Kind"] for m in sink.to(NIGHT_DESK)] == ["dispatcher_alert"]
    # undone from the same page, with the same link
    page = client.get(path).get_data(as_text=True)
    assert "(already stopped)" in page and "Start alerts of new requests" in page
    res = client.post(path, data={"scope": "kind", "action": "undo"})
    assert "will get alerts of new requests (dispatcher alerts) again" in (
        res.get_data(as_text=True)
    )
    with sessions.begin() as s:
        mail_config(s, city.city_id).dispatch_email = DISPATCH
        report(s, settings.media_dir, email=None)
    deliver(sessions, settings, sink)
    assert [m.message["X-Civicpin-Kind"] for m in sink.to(DISPATCH)][-1] == "dispatcher_alert"
    assert len(sink.to(DISPATCH)) == 4


def test_stop_all_mail_is_one_address_and_one_city(client, sessions, settings, sink, city):
    with sessions.begin() as s:
        req = report(s, settings.media_dir, email=REPORTER)
    deliver(sessions, settings, sink)
    (ack,) = sink.to(REPORTER)
    path = urlsplit(ack.message["List-Unsubscribe"].strip("<>")).path
    page = client.get(path).get_data(as_text=True)
    assert "Stop any e-mail from Testville" in page
    client.post(path, data={"scope": "all", "action": "stop"})
    with sessions.begin() as s:
        r = s.get(ServiceRequest, req.id)
        actions.reply_with_template(
            s, user(s, "dispatcher"), r, template_id=city.template_id, public_base_url=BASE
        )
        report(s, settings.media_dir, email=REPORTER, where=EAST)
    deliver(sessions, settings, sink)
    assert len(sink.to(REPORTER)) == 1  # nothing more from this city
    assert len(sink.to(DISPATCH)) == 2  # the dispatch desk is not affected
    client.post(path, data={"scope": "all", "action": "undo"})
    with sessions.begin() as s:
        report(s, settings.media_dir, email=REPORTER, where=EAST)
    deliver(sessions, settings, sink)
    assert [m.message["X-Civicpin-Kind"] for m in sink.to(REPORTER)] == [
        "acknowledgement",
        "acknowledgement",
    ]


def test_only_the_reporter_is_threaded_under_their_own_e_mail(sessions, settings, sink, city):
    """The Message-ID of the e-mail that made a request is the reporter's (it may name
    their machine or address): only their own messages refer to it."""
    own_id = "<20261207.laptop-of-rosa.home@example.org>"
    with sessions.begin() as s:
        req = report(s, settings.media_dir, email=REPORTER, channel="email")
        s.add(
            InboundEmail(
                message_id=own_id,
                jurisdiction_id=city.city_id,
                mail_from=REPORTER,
                outcome="created",
                request_id=req.id,
            )
        )
        s.add(Follower(request_id=req.id, email=NEIGHBOUR, confirmed_at=now_utc()))
    with sessions.begin() as s:
        actions.set_status(
            s,
            user(s, "crew"),
            s.get(ServiceRequest, req.id),
            status="in_progress",
            public_base_url=BASE,
        )
    deliver(sessions, settings, sink)
    (to_reporter,) = [m for m in sink.to(REPORTER) if "In progress" in m.message["Subject"]]
    (to_neighbour,) = sink.to(NEIGHBOUR)
    assert own_id in to_reporter.message["References"]
    assert to_reporter.message["In-Reply-To"] == to_neighbour.message["In-Reply-To"]
    assert b"laptop-of-rosa" not in to_neighbour.raw
