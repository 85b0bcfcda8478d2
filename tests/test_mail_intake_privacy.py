"""Mail from a stranger never learns anything: the e-mail intake played as the stranger.

Everything goes through the real channel: civicpin's own SMTP intake on loopback, the real
outbox worker delivering the answers to an aiosmtpd sink, and the public pages through the
Flask test client. The city's mail gateway is ``mx.testville.example``: only its
``Authentication-Results`` headers are believed.
"""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from geoalchemy2.shape import from_shape
from shapely.geometry import MultiPolygon, box

from intake.email_intake import MailIntake, start_smtp_server
from notify.worker import run_once
from spatial.accounts import hash_password
from spatial.models import (
    Follower,
    InboundEmail,
    Jurisdiction,
    OutboxMessage,
    Photo,
    RequestEvent,
    Service,
    ServiceRequest,
    User,
    now_utc,
)
from spatial.models_mail import MailAddress, MailConfig
from tests.support.images import jpeg_bytes
from tests.support.mail import (
    DISPATCH,
    INTAKE,
    RESIDENT,
    free_port,
    make_mail_city,
    mime,
    smtp_send,
)

GATEWAY = "mx.testville.example"
STRANGER = "mallory@stranger.example"
STAFF = "dispatcher@testville.example"
STAFF_PASSWORD = "correct horse battery staple"
NEIGHBOUR = "ben@example.net"
OTHER_INTAKE = "311@otherville.example"


def verdict(result: str, domain: str, gateway: str = GATEWAY) -> dict[str, str]:
    """The header the city's gateway adds: DMARC's result for the From domain."""
    return {"Authentication-Results": f"{gateway}; dmarc={result} header.from={domain}"}


@pytest.fixture
def city(sessions):
    with sessions.begin() as s:
        info = make_mail_city(s)
        s.get(MailConfig, info["city"].id).trusted_authserv_id = GATEWAY
        staff = User(
            email=STAFF,
            name="Dee Spatcher",
            role="dispatcher",
            jurisdiction_id=info["city"].id,
            password_hash=hash_password(STAFF_PASSWORD),
        )
        s.add(staff)
        s.flush()
        info["staff"] = staff
        return info


@pytest.fixture
def intake(sessions, settings, city):
    return MailIntake(
        sessions,
        public_base_url=settings.public_base_url,
        media_dir=settings.media_dir,
        mail_from=settings.mail_from,
    )


@pytest.fixture
def server(intake):
    port = free_port()
    controller = start_smtp_server(intake, "127.0.0.1", port)
    yield port
    controller.stop()


def deliver(sessions, settings, sink) -> int:
    return run_once(sessions, settings.with_overrides(smtp_url=sink.url)).sent


def the_request(sessions) -> ServiceRequest:
    with sessions() as s:
        return s.scalars(sa.select(ServiceRequest).order_by(ServiceRequest.id)).first()


def count(sessions, model) -> int:
    with sessions() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(model))


def last_inbound(sessions) -> InboundEmail:
    with sessions() as s:
        return s.scalars(sa.select(InboundEmail).order_by(InboundEmail.id.desc())).first()


def inbound_like(sessions, pattern: str) -> list[InboundEmail]:
    with sessions() as s:
        return list(
            s.scalars(
                sa.select(InboundEmail)
                .where(InboundEmail.message_id.like(pattern))
                .order_by(InboundEmail.id)
            )
        )


def notes(sessions, request_id: int, kind: str = "note") -> list[RequestEvent]:
    with sessions() as s:
        return list(
            s.scalars(
                sa.select(RequestEvent)
                .where(RequestEvent.request_id == request_id, RequestEvent.kind == kind)
                .order_by(RequestEvent.id)
            )
        )


def photos(sessions, request_id: int) -> list[Photo]:
    with sessions() as s:
        return list(s.scalars(sa.select(Photo).where(Photo.request_id == request_id)))


def report_by_mail(server, sessions, settings, sink) -> ServiceRequest:
    """Ana reports a pothole by e-mail and gets her acknowledgement."""
    code, _ = smtp_send(
        server,
        mime(
            "Pothole",
            "A deep pothole at 100 N Main St, next to my house.",
            message_id="<report@example.org>",
        ),
    )
    assert code == 250
    deliver(sessions, settings, sink)
    return the_request(sessions)


def the_answer(sink, to: str):
    (answer,) = sink.to(to)
    return answer


def without_unsubscribe(text: str) -> str:
    return re.sub(r"http\S*/unsubscribe/\S+", "UNSUBSCRIBE", text)


def test_a_strangers_reply_naming_a_report_learns_nothing(server, sessions, settings, sink, client):
    req = report_by_mail(server, sessions, settings, sink)
    photo = jpeg_bytes(color=(0, 120, 0))
    code, text = smtp_send(
        server,
        mime(
            f"Re: [{req.public_id}] We received your report",
            "Please send me the link to this report, I am the reporter's neighbour.",
            sender=f"Mallory <{STRANGER}>",
            message_id="<stranger1@stranger.example>",
            headers=verdict("pass", "stranger.example"),
            attachments=[("mine.jpg", "image/jpeg", photo)],
        ),
        mail_from=STRANGER,
    )
    # The SMTP answer does not confirm that the report exists.
    assert (code, text) == (250, "2.0.0 Received")
    assert req.public_id not in text

    deliver(sessions, settings, sink)
    answer = the_answer(sink, STRANGER)
    assert "token=" not in answer.text and req.token not in answer.text
    for private in ("100 N Main St", "next to my house", RESIDENT, "Ana", "General enquiry"):
        assert private not in answer.text
    assert "passed it to the staff of Testville" in answer.text
    assert answer.message["X-Civicpin-Kind"] == "reply_unverified"

    (note,) = [n for n in notes(sessions, req.id) if "neighbour" in n.note]
    assert not note.public and "unverified sender" in note.note
    assert note.actor_id is None
    row = last_inbound(sessions)
    assert (row.outcome, row.sender_auth, row.sender_standing) == (
        "note_unverified",
        "pass",
        "stranger",
    )

    (stored,) = photos(sessions, req.id)
    assert not stored.public
    page = client.get(f"/requests/{req.public_id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "neighbour" not in html
    assert stored.public_key.removeprefix("public/") not in html
    assert stored.thumb_key.removeprefix("public/") not in html
    # The photo's public copy is not served either, to anyone who guesses its address.
    assert client.get(f"/media/{stored.public_key}").status_code == 404
    assert client.get(f"/media/{stored.thumb_key}").status_code == 404

    # Staff have it all: the note, and the photo marked as theirs only.
    form = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    signed_in = client.post(
        "/login", data={"email": STAFF, "password": STAFF_PASSWORD, "csrf_token": csrf}
    )
    assert signed_in.status_code == 302
    panel = client.get(f"/dispatch/requests/{req.public_id}").get_data(as_text=True)
    assert "staff only: mailed by an unverified sender" in panel
    assert stored.thumb_key.removeprefix("public/") in panel
    assert client.get(f"/staff/media/{stored.thumb_key.removeprefix('public/')}").status_code == 200


def test_a_reference_that_names_no_report_gets_the_same_answer(
    server, sessions, settings, sink, city
):
    """Real, missing and another city's references: the same answer, so none is an oracle."""
    req = report_by_mail(server, sessions, settings, sink)
    with sessions.begin() as s:
        west, south, east, north = (-118.30, 34.00, -118.20, 34.10)
        other = Jurisdiction(
            slug="otherville",
            name="Otherville",
            timezone="America/Chicago",
            metric_srid=32616,
            public_id_prefix="OV",
            boundary=from_shape(MultiPolygon([box(west, south, east, north)]), srid=4326),
        )
        s.add(other)
        s.flush()
        service = Service(jurisdiction_id=other.id, code="general", name="General")
        s.add(service)
        s.flush()
        s.add(MailAddress(jurisdiction_id=other.id, address=OTHER_INTAKE, service_id=service.id))
    code, _ = smtp_send(
        server,
        mime("Tree down", "A tree fell.", to=OTHER_INTAKE, message_id="<ov1@example.org>"),
        rcpt=OTHER_INTAKE,
    )
    assert code == 250
    with sessions() as s:
        other_id = s.scalar(
            sa.select(ServiceRequest.public_id).where(ServiceRequest.public_id.like("OV-%"))
        )
    year = req.public_id.split("-")[1]
    claims = {
        "real": req.public_id,
        "missing": f"TV-{year}-999999",
        "other city": other_id,
    }
    replies = {}
    for n, (what, ref) in enumerate(claims.items()):
        stranger = f"s{n}@stranger.example"
        code, text = smtp_send(
            server,
            mime(
                f"Re: [{ref}]",
                "What is the status?",
                sender=stranger,
                message_id=f"<claim{n}@stranger.example>",
                headers=verdict("pass", "stranger.example"),
            ),
            mail_from=stranger,
        )
        replies[what] = (code, text, stranger, ref)
    assert {(code, text) for code, text, _s, _r in replies.values()} == {(250, "2.0.0 Received")}
    deliver(sessions, settings, sink)
    bodies = {}
    for what, (_c, _t, stranger, ref) in replies.items():
        answer = the_answer(sink, stranger)
        assert answer.message["Subject"] == f"Re: [{ref}]"
        assert "token=" not in answer.text
        bodies[what] = without_unsubscribe(answer.text)
    assert bodies["real"] == bodies["missing"] == bodies["other city"]
    # Nothing was lost: the missing and foreign references became requests of their own.
    with sessions() as s:
        other_req = s.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == other_id))
        assert other_req.contact_email == RESIDENT
        tv = s.scalars(sa.select(ServiceRequest).where(ServiceRequest.public_id.like("TV-%"))).all()
    assert sorted(r.contact_email for r in tv) == sorted(
        [RESIDENT, "s1@stranger.example", "s2@stranger.example"]
    )
    assert not [n for n in notes(sessions, other_req.id) if "status" in n.note]


def test_the_reporters_address_without_the_gateways_pass_is_not_the_reporter(
    server, sessions, settings, sink, client
):
    req = report_by_mail(server, sessions, settings, sink)
    forged = [
        ("dmarc=fail", verdict("fail", "example.org")),
        ("no verdict", {}),
        # Written by the sender, not the gateway: another authserv-id.
        ("someone else's header", verdict("pass", "example.org", gateway="mx.stranger.example")),
        # The sender's own header placed under the gateway's: only the topmost counts.
        (
            "the gateway's fail above a forged pass",
            {
                "Authentication-Results": f"{GATEWAY}; spf=fail smtp.mailfrom=example.org",
            },
        ),
    ]
    for n, (_why, headers) in enumerate(forged):
        msg = mime(
            f"Re: [{req.public_id}] We received your report",
            f"Forged reply {n}: it is fixed, please close it.",
            message_id=f"<forged{n}@stranger.example>",
            headers=headers,
            attachments=[("x.jpg", "image/jpeg", jpeg_bytes(color=(n * 40, 0, 200)))],
        )
        if n == 3:
            msg["Authentication-Results"] = f"{GATEWAY}; dmarc=pass header.from=example.org"
        assert smtp_send(server, msg) == (250, "2.0.0 Received")
    deliver(sessions, settings, sink)
    answers = sink.to(RESIDENT)[1:]
    assert len(answers) == len(forged)
    for answer in answers:
        assert "token=" not in answer.text and req.token not in answer.text
    forged_notes = [n for n in notes(sessions, req.id) if "Forged reply" in n.note]
    assert len(forged_notes) == len(forged)
    assert all(not n.public and "unverified sender" in n.note for n in forged_notes)
    assert [p.public for p in photos(sessions, req.id)] == [False] * len(forged)
    rows = inbound_like(sessions, "<forged%")
    assert [r.sender_auth for r in rows] == ["fail", "none", "none", "fail"]
    assert {r.sender_standing for r in rows} == {"reporter"}


def test_the_reporters_authenticated_reply_joins_the_report(server, sessions, settings, sink):
    req = report_by_mail(server, sessions, settings, sink)
    code, text = smtp_send(
        server,
        mime(
            f"Re: [{req.public_id}] We received your report",
            "It is getting deeper.\n\nSent from my iPhone\n\n"
            f"On Mon, 7 Dec 2026, Testville 311 <{INTAKE}> wrote:\n> Thank you.",
            message_id="<ana2@example.org>",
            headers=verdict("pass", "example.org"),
            attachments=[("deeper.jpg", "image/jpeg", jpeg_bytes(color=(90, 90, 0)))],
        ),
    )
    assert (code, text) == (250, f"2.0.0 Added to {req.public_id}")
    (note,) = [n for n in notes(sessions, req.id, "message") if "deeper" in n.note]
    assert "unverified" not in note.note and "iPhone" not in note.note
    assert [p.public for p in photos(sessions, req.id)] == [True]
    deliver(sessions, settings, sink)
    answer = sink.to(RESIDENT)[-1]
    assert f"/requests/{req.public_id}?token={req.token}" in answer.text


def test_a_confirmed_follower_joins_without_the_reporters_link(server, sessions, settings, sink):
    req = report_by_mail(server, sessions, settings, sink)
    with sessions.begin() as s:
        s.add(Follower(request_id=req.id, email=NEIGHBOUR, confirmed_at=now_utc()))
        s.add(Follower(request_id=req.id, email="unconfirmed@example.net"))
    for n, sender in enumerate((NEIGHBOUR, "unconfirmed@example.net")):
        smtp_send(
            server,
            mime(
                f"Re: [{req.public_id}]",
                f"Neighbour note {n}: still there.",
                sender=sender,
                message_id=f"<follow{n}@example.net>",
                headers=verdict("pass", "example.net"),
            ),
            mail_from=sender,
        )
    rows = inbound_like(sessions, "<follow%")
    assert [(r.outcome, r.sender_standing) for r in rows] == [
        ("note", "follower"),
        ("note_unverified", "stranger"),
    ]
    deliver(sessions, settings, sink)
    follower_answer = the_answer(sink, NEIGHBOUR)
    assert f"/requests/{req.public_id}" in follower_answer.text
    assert "token=" not in follower_answer.text
    assert "token=" not in the_answer(sink, "unconfirmed@example.net").text


def test_a_staff_address_on_unauthenticated_mail_gets_no_staff_powers(
    server, sessions, settings, sink, city
):
    req = report_by_mail(server, sessions, settings, sink)
    for n, result in enumerate(("fail", "pass")):
        smtp_send(
            server,
            mime(
                f"Re: [{req.public_id}]",
                f"Staff note {n}: crew on the way.",
                sender=f"Dee Spatcher <{STAFF}>",
                message_id=f"<staff{n}@testville.example>",
                headers=verdict(result, "testville.example"),
            ),
            mail_from=STAFF,
        )
    forged, genuine = [n for n in notes(sessions, req.id) if "Staff note" in n.note]
    assert forged.actor_id is None and "unverified sender" in forged.note
    assert "dmarc=fail" in forged.note
    assert genuine.actor_id == city["staff"].id and "unverified" not in genuine.note
    rows = inbound_like(sessions, "<staff%")
    assert [(r.outcome, r.sender_auth, r.sender_standing) for r in rows] == [
        ("note_unverified", "fail", "staff"),
        ("note", "pass", "staff"),
    ]


def test_without_a_trusted_gateway_no_reply_is_verified(server, sessions, settings, sink, city):
    """The default: no authserv-id set, so no header is believed; reports still arrive."""
    with sessions.begin() as s:
        s.get(MailConfig, city["city"].id).trusted_authserv_id = None
    req = report_by_mail(server, sessions, settings, sink)
    assert req is not None and f"?token={req.token}" in sink.to(RESIDENT)[0].text
    code, text = smtp_send(
        server,
        mime(
            f"Re: [{req.public_id}]",
            "Another detail.",
            message_id="<nogw@example.org>",
            headers=verdict("pass", "example.org"),
        ),
    )
    assert (code, text) == (250, "2.0.0 Received")
    row = last_inbound(sessions)
    assert (row.outcome, row.sender_auth) == ("note_unverified", "none")
    assert "no trusted mail gateway is set" in row.detail


def test_forged_senders_get_acknowledgements_only_up_to_the_cap_of_the_address(
    server, sessions, settings, sink, city
):
    with sessions.begin() as s:
        s.get(MailConfig, city["city"].id).address_reply_limit_per_hour = 3
    for n in range(7):
        sender = f"victim{n}@example.com"
        code, text = smtp_send(
            server,
            mime("Pothole", f"Hole number {n}", sender=sender, message_id=f"<flood{n}@x.org>"),
            mail_from=sender,
        )
        assert code == 250 and "Received as TV-" in text
    # Every mail became a request; only three were answered.
    assert count(sessions, ServiceRequest) == 7
    with sessions() as s:
        acks = s.scalar(sa.select(sa.func.count()).where(OutboxMessage.kind == "acknowledgement"))
        rows = s.scalars(sa.select(InboundEmail).order_by(InboundEmail.id)).all()
    assert acks == 3
    assert [r.answered for r in rows] == [True] * 3 + [False] * 4
    assert all(f"over 3 auto-replies from {INTAKE} in an hour" in r.detail for r in rows[3:])
    deliver(sessions, settings, sink)
    answered = {a for r in sink.received for a in r.rcpt_tos if a.startswith("victim")}
    assert answered == {"victim0@example.com", "victim1@example.com", "victim2@example.com"}
    assert len(sink.to(DISPATCH)) == 7  # staff still hear of every request


def test_published_description_leaves_out_quoted_mail_and_signature(
    server, sessions, settings, sink, client
):
    body = (
        "The street light at 100 N Main St is out.\n\n"
        "Best regards,\nAna\n-- \nAna Resident\nPhone 555 0100\n\n"
        "-----Original Message-----\n"
        "From: Testville 311\nSent: Monday\nSubject: old thread\n"
        "Your private link: http://127.0.0.1:5000/requests/TV-2026-000001?token=secret"
    )
    assert smtp_send(server, mime("Light out", body, message_id="<q1@example.org>"))[0] == 250
    req = the_request(sessions)
    assert "street light" in req.description
    for gone in ("555 0100", "Original Message", "token=secret", "Ana Resident"):
        assert gone not in req.description
    html = client.get(f"/requests/{req.public_id}").get_data(as_text=True)
    assert "street light" in html and "555 0100" not in html and "secret" not in html
    with sessions() as s:
        raw = s.scalar(sa.select(InboundEmail.raw).where(InboundEmail.request_id == req.id))
    assert b"555 0100" in raw  # the whole e-mail stays for staff
