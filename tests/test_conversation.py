"""The conversation on a request: the reporter writes from their private tracking page
or by replying to our mail, staff answer in one box (public reply or internal note), and
one timeline says who said what. Strangers can neither write nor read the reporter's
messages (no token, a wrong token, the public page, the Open311 API)."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from intake.email_intake import MailIntake
from routing import actions, conversation
from spatial.errors import InvalidInput
from spatial.models import (
    Department,
    OutboxMessage,
    RequestEvent,
    ServiceRequest,
    now_utc,
)
from spatial.models_mail import MailAddress, MailConfig
from tests.support.dispatch_city import login, make_dispatch_city, report, user
from tests.support.mail import mime

DEPT_MAIL = "streets@city.example"
INTAKE = "311@testville.example"
GATEWAY = "mx.testville.example"
PASS = {"Authentication-Results": f"{GATEWAY}; dmarc=pass header.from=example.org"}


@pytest.fixture
def city(sessions):
    with sessions.begin() as s:
        city = make_dispatch_city(s)
        s.get(Department, city.streets_id).email = DEPT_MAIL
        s.add(MailAddress(jurisdiction_id=city.city_id, address=INTAKE, service_id=city.pothole_id))
        s.add(MailConfig(jurisdiction_id=city.city_id, trusted_authserv_id=GATEWAY))
        return city


@pytest.fixture
def req(sessions, city, settings):
    with sessions.begin() as s:
        r = report(s, settings.media_dir)
        return r.id, r.public_id, r.token


def _events(sessions, request_id, kind=None):
    with sessions() as s:
        q = sa.select(RequestEvent).where(RequestEvent.request_id == request_id)
        if kind:
            q = q.where(RequestEvent.kind == kind)
        return list(s.scalars(q.order_by(RequestEvent.id)))


def _outbox(sessions, kind):
    with sessions() as s:
        return list(
            s.scalars(
                sa.select(OutboxMessage)
                .where(OutboxMessage.kind == kind)
                .order_by(OutboxMessage.id)
            )
        )


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_reporter_writes_from_the_private_page_and_strangers_see_nothing(client, sessions, req):
    rid, public_id, token = req
    page = client.get(f"/requests/{public_id}?token={token}").get_data(as_text=True)
    assert 'id="message-form"' in page and 'id="reopen"' not in page  # open: nothing to reopen
    res = client.post(
        f"/requests/{public_id}/message",
        data={"csrf_token": _csrf(page), "token": token, "message": "The hole is 30 cm now."},
    )
    assert res.status_code == 303 and res.location.endswith("#conversation")
    (msg,) = _events(sessions, rid, "message")
    assert (msg.public, msg.actor_label, msg.note) == (False, "Reporter", "The hole is 30 cm now.")
    with sessions() as s:
        assert s.get(ServiceRequest, rid).reporter_message_at is not None
    (mail,) = _outbox(sessions, "reporter_message")
    assert mail.to_addr == DEPT_MAIL
    assert "The hole is 30 cm now." in mail.body_text
    assert f"/dispatch/requests/{public_id}" in mail.body_text and token not in mail.body_text

    own = client.get(f"/requests/{public_id}?token={token}").get_data(as_text=True)
    assert "Thank you: your message is with the city" in own
    assert "You wrote" in own and "The hole is 30 cm now." in own
    # The stranger: the public page, a wrong token, the Open311 API.
    for path in (f"/requests/{public_id}", f"/requests/{public_id}?token=guess"):
        html = client.get(path).get_data(as_text=True)
        assert "30 cm" not in html and 'id="message-form"' not in html
    for path in (
        f"/open311/v2/requests/{public_id}.json?extensions=true",
        f"/open311/v2/requests/{public_id}.xml",
    ):
        assert "30 cm" not in client.get(path).get_data(as_text=True)


def test_a_stranger_cannot_write(client, sessions, req, city):
    rid, public_id, _ = req
    csrf = _csrf(client.get(f"/requests/{public_id}/follow").get_data(as_text=True))
    for token in ("", "guess"):
        res = client.post(
            f"/requests/{public_id}/message",
            data={"csrf_token": csrf, "token": token, "message": "I am the reporter, honest"},
        )
        assert res.status_code == 403
        res = client.post(
            f"/requests/{public_id}/reopen",
            data={"csrf_token": csrf, "token": token, "note": "reopen it"},
        )
        assert res.status_code == 403
    assert _events(sessions, rid, "message") == [] and _events(sessions, rid, "reopen") == []
    assert _outbox(sessions, "reporter_message") == []


def test_bad_messages_change_nothing(client, sessions, req, settings):
    rid, public_id, token = req
    page = client.get(f"/requests/{public_id}?token={token}").get_data(as_text=True)
    csrf = _csrf(page)
    for text, error in (
        ("   ", "Write your message"),
        ("x" * (conversation.MAX_MESSAGE + 1), "Keep it to 4000 characters"),
    ):
        res = client.post(
            f"/requests/{public_id}/message",
            data={"csrf_token": csrf, "token": token, "message": text},
        )
        assert res.status_code == 422
        assert error in res.get_data(as_text=True)
    # Merged as a duplicate: archived, the reporter is asked to report it again.
    with sessions.begin() as s:
        other = report(s, settings.media_dir, description="the same hole")
        actions.merge(s, user(s, "dispatcher"), s.get(ServiceRequest, rid), other)
    res = client.post(
        f"/requests/{public_id}/message",
        data={"csrf_token": csrf, "token": token, "message": "Still there"},
    )
    html = res.get_data(as_text=True)
    assert res.status_code == 422
    assert "This request is closed. Please report the problem again" in html
    assert 'href="/report"' in html
    assert _events(sessions, rid, "message") == [] and _outbox(sessions, "reporter_message") == []


def test_staff_answer_in_one_box_and_the_timeline_says_who(client, sessions, req):
    rid, public_id, token = req
    with sessions.begin() as s:
        conversation.reporter_message(s, s.get(ServiceRequest, rid), "Is anyone coming?", via="web")
    login(client, "dispatcher")
    panel = client.get(f"/dispatch/requests/{public_id}").get_data(as_text=True)
    assert "Reply to the reporter (public, e-mailed)" in panel and "Internal note" in panel
    csrf = _csrf(panel)
    url = f"/dispatch/requests/{public_id}/reply_text"
    empty = client.post(url, data={"csrf_token": csrf, "reply": "  ", "visibility": "public"})
    assert empty.status_code == 400 and "Write a reply" in empty.get_data(as_text=True)
    client.post(url, data={"csrf_token": csrf, "reply": "Crew booked", "visibility": "internal"})
    client.post(
        url, data={"csrf_token": csrf, "reply": "We come on Tuesday.", "visibility": "public"}
    )
    kinds = [(e.kind, e.public, e.actor_label) for e in _events(sessions, rid)][-3:]
    assert kinds == [
        ("message", False, "Reporter"),
        ("note", False, "Dispatcher"),
        ("reply", True, "Dispatcher"),
    ]
    (mail,) = _outbox(sessions, "template_reply")
    assert mail.to_addr == "resident@example.org" and f"token={token}" in mail.body_text
    panel = client.get(f"/dispatch/requests/{public_id}").get_data(as_text=True)
    history = panel[panel.index('class="history"') :]
    assert re.search(r"Reporter</span>\s*<span class=\"history__kind\">message", history)
    assert "Is anyone coming?" in history and "Crew booked" in history
    # The reporter's page: the reply and their own message; never the internal note.
    own = client.get(f"/requests/{public_id}?token={token}").get_data(as_text=True)
    assert "We come on Tuesday." in own and "Is anyone coming?" in own
    assert "Crew booked" not in own
    public = client.get(f"/requests/{public_id}").get_data(as_text=True)
    assert "We come on Tuesday." in public and "Is anyone coming?" not in public


def _intake(sessions, settings):
    return MailIntake(
        sessions,
        public_base_url=settings.public_base_url,
        media_dir=settings.media_dir,
        mail_from=settings.mail_from,
    )


def _reply(public_id: str, body: str, sender: str, n: int):
    msg = mime(
        f"Re: [{public_id}] Pothole",
        body,
        sender=sender,
        to=INTAKE,
        message_id=f"<c{n}@example.org>",
        headers=PASS,
    )
    return msg.as_bytes()


def test_the_reporters_mail_reply_is_a_message_and_an_archived_one_is_refused(
    sessions, req, settings
):
    rid, public_id, _ = req
    intake = _intake(sessions, settings)
    out = intake.process(
        _reply(public_id, "It is deeper now.", "resident@example.org", 1),
        mail_from="resident@example.org",
        rcpt_tos=[INTAKE],
    )
    assert out.outcome == "note"
    (msg,) = _events(sessions, rid, "message")
    assert msg.note == "It is deeper now." and msg.to_value == "email" and not msg.public
    assert [m.to_addr for m in _outbox(sessions, "reporter_message")] == [DEPT_MAIL]
    # Closed long ago (past the city's window): nothing is added, the sender is told.
    with sessions.begin() as s:
        r = s.get(ServiceRequest, rid)
        r.status, r.closed_at = "resolved", now_utc().replace(year=now_utc().year - 1)
    out = intake.process(
        _reply(public_id, "Still broken!", "resident@example.org", 2),
        mail_from="resident@example.org",
        rcpt_tos=[INTAKE],
    )
    assert out.outcome == "archived"
    assert len(_events(sessions, rid, "message")) == 1
    assert not any("Still broken" in (e.note or "") for e in _events(sessions, rid))
    (answer,) = _outbox(sessions, "intake_refused")
    assert answer.to_addr == "resident@example.org"
    assert "This request is closed. Please report the problem again" in answer.body_text


def test_domain_refuses_what_the_forms_refuse(sessions, req):
    rid, _, _ = req
    with sessions.begin() as s:
        r = s.get(ServiceRequest, rid)
        with pytest.raises(InvalidInput, match="Write your message") as exc:
            conversation.reporter_message(s, r, "", via="web")
        assert exc.value.field == "message"
        r.status, r.closed_at = "closed", now_utc()
        # Closed yesterday: the reporter may still write (and reopen).
        conversation.reporter_message(s, r, "Thanks!", via="web")
        assert conversation.may_reopen(s, r)
        r.status = "cancelled"
        assert not conversation.may_reopen(s, r) and not conversation.is_archived(s, r)
