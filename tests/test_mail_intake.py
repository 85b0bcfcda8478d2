"""E-mail intake over real SMTP on loopback: civicpin's own aiosmtpd server is fed real
MIME messages built with the ``email`` package; the outbox is delivered by the real worker
to an aiosmtpd sink, so the auto-replies are read as a resident's mail client would."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa
from geoalchemy2.shape import to_shape

from intake.email_intake import MailIntake, start_smtp_server
from notify.worker import run_once
from spatial.models import InboundEmail, OutboxMessage, Photo, RequestEvent, ServiceRequest
from spatial.models_mail import MailConfig
from tests.support.images import jpeg_bytes
from tests.support.mail import (
    DISPATCH,
    INTAKE,
    MAIN_ST,
    RESIDENT,
    WEBMASTER,
    free_port,
    make_mail_city,
    mime,
    smtp_send,
)

# The city's mail gateway: its Authentication-Results are the only ones believed.
GATEWAY = "mx.testville.example"
DMARC_PASS = {"Authentication-Results": f"{GATEWAY}; dmarc=pass header.from=example.org"}


@pytest.fixture
def city(sessions):
    with sessions.begin() as s:
        info = make_mail_city(s)
        s.get(MailConfig, info["city"].id).trusted_authserv_id = GATEWAY
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


def requests(sessions) -> list[ServiceRequest]:
    with sessions() as s:
        return list(s.scalars(sa.select(ServiceRequest).order_by(ServiceRequest.id)))


def inbound(sessions) -> list[InboundEmail]:
    with sessions() as s:
        return list(s.scalars(sa.select(InboundEmail).order_by(InboundEmail.id)))


def outbox(sessions, kind: str | None = None) -> list[OutboxMessage]:
    with sessions() as s:
        stmt = sa.select(OutboxMessage).order_by(OutboxMessage.id)
        if kind:
            stmt = stmt.where(OutboxMessage.kind == kind)
        return list(s.scalars(stmt))


def events(sessions, request_id: int, kind: str) -> list[RequestEvent]:
    with sessions() as s:
        return list(
            s.scalars(
                sa.select(RequestEvent)
                .where(RequestEvent.request_id == request_id, RequestEvent.kind == kind)
                .order_by(RequestEvent.id)
            )
        )


def latlon(req: ServiceRequest) -> tuple[float, float]:
    pt = to_shape(req.location)
    return round(pt.y, 4), round(pt.x, 4)


def test_plain_text_with_address_becomes_a_located_request_and_a_threaded_reply(
    server, sessions, settings, sink
):
    msg = mime(
        "Pothole near the cathedral",
        "Hello,\nthere is a deep pothole in front of 100 North Main Street.\n"
        "Thanks, Ana\n-- \nAna's signature",
    )
    code, text = smtp_send(server, msg)
    assert code == 250 and "Received as TV-" in text
    (req,) = requests(sessions)
    assert req.channel == "email"
    assert req.contact_email == RESIDENT and req.contact_name == "Ana Resident"
    assert not req.anonymous and not req.needs_location
    assert latlon(req) == (round(MAIN_ST[0], 4), round(MAIN_ST[1], 4))
    assert req.address == "100 N MAIN ST, 90012"
    assert req.description.startswith("Pothole near the cathedral\n\nHello,")
    (row,) = inbound(sessions)
    assert (row.outcome, row.request_id, row.message_id) == ("created", req.id, "<m1@example.org>")
    assert "address" in row.detail

    assert deliver(sessions, settings, sink) == 2
    (ack,) = sink.to(RESIDENT)
    m = ack.message
    assert m["Subject"] == f"[{req.public_id}] We received your report: General enquiry"
    assert m["In-Reply-To"] == "<m1@example.org>"
    assert m["Message-ID"] == f"<request-{req.public_id}@127.0.0.1>"
    assert m["Auto-Submitted"] == "auto-replied"
    assert m["Reply-To"] == INTAKE
    assert m["List-Unsubscribe"].startswith("<http://127.0.0.1:5000/c/testville/unsubscribe/")
    assert f"/c/testville/requests/{req.public_id}?token={req.token}" in ack.text
    assert "http://127.0.0.1:5000/c/testville/help/triage" in ack.text
    assert "locate=1" not in ack.text
    (alert,) = sink.to(DISPATCH)
    assert alert.message["Subject"] == f"New email request {req.public_id}: General enquiry"
    assert "deep pothole" in alert.text


def test_html_only_with_map_link_is_made_plain(server, sessions):
    html = (
        "<html><head><style>p{color:red}</style><script>alert('x')</script></head><body>"
        "<p>Street light <b>out</b> since Monday &amp; it is dark.</p>"
        '<p>Here: <a href="https://www.openstreetmap.org/?mlat=34.0712&amp;mlon=-118.2201'
        '#map=19/34.0712/-118.2201">map</a></p></body></html>'
    )
    code, _ = smtp_send(server, mime("Light out", None, html=html, message_id="<h1@example.org>"))
    assert code == 250
    (req,) = requests(sessions)
    assert latlon(req) == (34.0712, -118.2201)
    assert "Street light out since Monday & it is dark." in req.description
    assert "openstreetmap.org" in req.description
    for bad in ("<", "alert", "color:red", "<b>"):
        assert bad not in req.description


def test_jpeg_with_gps_exif_locates_the_request_and_keeps_the_photo(server, sessions):
    photo = jpeg_bytes(lat=34.0622, lon=-118.2811)
    code, _ = smtp_send(
        server,
        mime(
            "Graffiti",
            "Graffiti on the wall, photo attached.",
            message_id="<g1@example.org>",
            attachments=[("wall.jpg", "image/jpeg", photo)],
        ),
    )
    assert code == 250
    (req,) = requests(sessions)
    assert latlon(req) == (34.0622, -118.2811)
    assert not req.needs_location
    with sessions() as s:
        (p,) = s.scalars(sa.select(Photo).where(Photo.request_id == req.id)).all()
    assert "GPS" in inbound(sessions)[0].detail
    assert p.mime_type == "image/jpeg"


def test_no_location_waits_as_needs_location_and_the_reply_asks_for_the_pin(
    server, sessions, settings, sink
):
    code, _ = smtp_send(server, mime("Noise", "Loud music every night.", message_id="<n1@x.org>"))
    assert code == 250
    (req,) = requests(sessions)
    assert req.needs_location and req.location is None
    assert events(sessions, req.id, "needs_location")
    deliver(sessions, settings, sink)
    (ack,) = sink.to(RESIDENT)
    assert f"/requests/{req.public_id}?token={req.token}&locate=1" in ack.text
    (alert,) = sink.to(DISPATCH)
    assert "(needs location)" in alert.message["Subject"]


def test_department_address_sets_the_default_department(server, sessions, city):
    code, _ = smtp_send(
        server, mime("Website down", "The city website is down.", to=WEBMASTER), rcpt=WEBMASTER
    )
    assert code == 250
    (req,) = requests(sessions)
    assert req.department_id == city["it"].id
    assert WEBMASTER in req.routing_explanation


def test_unknown_recipient_is_refused_at_rcpt(server, sessions):
    code, text = smtp_send(
        server, mime(to="nobody@testville.example"), rcpt="nobody@testville.example"
    )
    assert code == 550 and "no such recipient" in text
    assert requests(sessions) == [] and inbound(sessions) == []


def test_reply_to_the_auto_reply_becomes_a_note_not_a_request(server, sessions, settings, sink):
    smtp_send(server, mime("Pothole", "Big hole at 100 N Main St"))
    deliver(sessions, settings, sink)
    (ack,) = sink.to(RESIDENT)
    ack_msg = ack.message
    reply = mime(
        "Re: " + ack_msg["Subject"],
        "It got worse, a car lost a tyre.\n\nOn Monday, civicpin wrote:\n> Thank you. Your report",
        message_id="<r1@example.org>",
        headers={
            "In-Reply-To": ack_msg["Message-ID"],
            "References": ack_msg["Message-ID"],
            **DMARC_PASS,
        },
        attachments=[("tyre.jpg", "image/jpeg", jpeg_bytes(color=(10, 10, 10)))],
    )
    code, text = smtp_send(server, reply)
    assert code == 250 and "Added to TV-" in text
    (req,) = requests(sessions)
    # The reporter's reply is their message in the request's conversation (staff only).
    (note,) = [e for e in events(sessions, req.id, "message") if "tyre" in (e.note or "")]
    assert "It got worse, a car lost a tyre." in note.note and note.actor_label == "Reporter"
    assert "Thank you. Your report" not in note.note and not note.public
    with sessions() as s:
        (photo,) = s.scalars(sa.select(Photo).where(Photo.request_id == req.id))
    assert photo.public
    rows = inbound(sessions)
    assert [r.outcome for r in rows] == ["created", "note"]
    assert (rows[1].sender_auth, rows[1].sender_standing) == ("pass", "reporter")
    deliver(sessions, settings, sink)
    confirmation = sink.to(RESIDENT)[-1]
    assert f"added your message to report {req.public_id}" in confirmation.text
    assert f"/requests/{req.public_id}?token={req.token}" in confirmation.text
    assert confirmation.message["In-Reply-To"] == "<r1@example.org>"


def test_public_id_in_the_subject_also_finds_the_request(server, sessions):
    smtp_send(server, mime("Pothole", "Big hole"))
    (req,) = requests(sessions)
    code, _ = smtp_send(
        server,
        mime(
            f"About [{req.public_id}]",
            "One more detail: it is 2 m wide.",
            message_id="<s2@x.org>",
            headers=DMARC_PASS,
        ),
    )
    assert code == 250
    assert len(requests(sessions)) == 1
    assert any("2 m wide" in e.note for e in events(sessions, req.id, "message"))


def test_duplicate_message_id_is_processed_once(server, sessions):
    msg = mime("Pothole", "Big hole", message_id="<dup@example.org>")
    assert smtp_send(server, msg)[0] == 250
    code, text = smtp_send(server, msg)
    assert code == 250 and "Already received" in text
    assert len(requests(sessions)) == 1
    rows = inbound(sessions)
    assert [r.outcome for r in rows] == ["created", "duplicate"]
    assert "<dup@example.org>" in rows[1].message_id
    assert len(outbox(sessions, "acknowledgement")) == 1


def test_auto_generated_mail_makes_a_request_but_no_auto_reply(server, sessions):
    msg = mime(
        "ALARM: hydrant pressure low",
        "Sensor 17 reports low pressure.",
        sender="monitor@sensors.example.org",
        message_id="<a1@sensors.example.org>",
        headers={"Auto-Submitted": "auto-generated", "Precedence": "bulk"},
    )
    assert smtp_send(server, msg, mail_from="monitor@sensors.example.org")[0] == 250
    (req,) = requests(sessions)
    assert outbox(sessions, "acknowledgement") == []
    assert len(outbox(sessions, "dispatcher_alert")) == 1
    assert "no auto-reply (Auto-Submitted: auto-generated)" in inbound(sessions)[0].detail
    assert req.contact_email == "monitor@sensors.example.org"


def test_out_of_office_reply_is_ignored(server, sessions):
    msg = mime(
        "Automatic reply: We received your report",
        "I am out of the office until Monday.",
        message_id="<ooo@example.org>",
        headers={"Auto-Submitted": "auto-replied"},
    )
    assert smtp_send(server, msg)[0] == 250
    assert requests(sessions) == [] and outbox(sessions) == []
    assert inbound(sessions)[0].outcome == "ignored_auto_reply"


def test_mail_from_our_own_address_is_ignored(server, sessions):
    msg = mime("Loop?", "text", sender=INTAKE, message_id="<own@testville.example>")
    assert smtp_send(server, msg, mail_from=INTAKE)[0] == 250
    assert requests(sessions) == [] and outbox(sessions) == []
    assert inbound(sessions)[0].outcome == "ignored_own"


def test_a_naive_autoresponder_cannot_start_a_mail_loop(server, sessions, settings, sink):
    """The resident's mailbox answers everything, with no Auto-Submitted header: the
    per-sender hourly limit stops our replies, so the ping-pong ends by itself."""
    smtp_send(server, mime("Pothole", "Big hole", message_id="<loop0@example.org>"))
    rounds = 0
    answered = 0
    while rounds < 20:
        rounds += 1
        deliver(sessions, settings, sink)
        ours = sink.to(RESIDENT)
        if len(ours) == answered:
            break
        for received in ours[answered:]:
            m = received.message
            answer = mime(
                "Re: " + m["Subject"],
                "Thank you for your message, I will read it soon.",
                message_id=f"<loop{rounds}-{answered}@example.org>",
                headers={"In-Reply-To": m["Message-ID"], **DMARC_PASS},
            )
            assert smtp_send(server, answer, rcpt=m["Reply-To"])[0] == 250
            answered += 1
    assert rounds < 20, "the mail loop did not stop"
    assert answered <= 6
    assert len(requests(sessions)) == 1
    notes = [r for r in inbound(sessions) if r.outcome == "note"]
    assert notes and "no auto-reply (over 5 messages" in notes[-1].detail


def test_30_mb_attachment_is_refused_with_a_reason_and_recorded(server, sessions):
    big = os.urandom(30 * 1024 * 1024)
    msg = mime(
        "Video of the flood",
        "See attached.",
        message_id="<big@example.org>",
        attachments=[("flood.jpg", "image/jpeg", big)],
    )
    code, text = smtp_send(server, msg)
    assert code == 552 and "over the 25 MB limit" in text
    assert requests(sessions) == [] and outbox(sessions) == []
    (row,) = inbound(sessions)
    assert row.outcome == "too_large" and row.size > 30 * 1024 * 1024
    assert row.subject == "Video of the flood" and row.mail_from == RESIDENT


def test_oversized_photo_is_dropped_but_the_report_kept(server, sessions, settings, sink):
    big = os.urandom(16 * 1024 * 1024)
    msg = mime(
        "Pothole",
        "Hole at 250 W 1st St",
        message_id="<p16@example.org>",
        attachments=[("huge.jpg", "image/jpeg", big), ("notes.pdf", "application/pdf", b"%PDF")],
    )
    assert smtp_send(server, msg)[0] == 250
    (req,) = requests(sessions)
    assert latlon(req) == (34.0521, -118.2701)
    deliver(sessions, settings, sink)
    (ack,) = sink.to(RESIDENT)
    assert "'huge.jpg' was not kept: 16.0 MB is over the 15 MB limit" in ack.text
    assert "'notes.pdf' was not kept: only photos are" in ack.text


BROKEN = (
    b"From: Bob <bob@example.org>\r\n"
    b"To: 311@testville.example\r\n"
    b"Subject: =?utf-8?q?Broken_=E2=80=94_bench?=\r\n"
    b"Message-ID: <broken@example.org>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="XYZ"\r\n'
    b"\r\n"
    b"--XYZ\r\n"
    b"Content-Type: text/plain; charset=x-no-such-charset\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"The bench in the park is broken =E2=80=94 snapped in two.=\r\n"
    b"--XYZ\r\n"
    b'Content-Type: image/jpeg; name="bench.jpg"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"/9j/4AAQSkZJRgABAQ@@@not-base64\r\n"
)


def test_broken_mime_gives_a_best_effort_request(server, sessions):
    code, _ = smtp_send(server, BROKEN, mail_from="bob@example.org")
    assert code == 250
    (req,) = requests(sessions)
    assert "bench in the park is broken" in req.description
    assert req.contact_email == "bob@example.org"
    internal = " ".join(e.note for e in events(sessions, req.id, "note"))
    assert "MIME defects" in internal and "photo was not kept" in internal


def test_unreadable_message_is_rejected_and_logged(server, sessions):
    code, text = smtp_send(server, b"\x00\x01\x02\r\n\r\n", mail_from="x@example.org")
    assert code == 550 and "Malformed" in text
    assert requests(sessions) == []
    (row,) = inbound(sessions)
    assert row.outcome == "rejected_malformed"


def test_server_keeps_running_after_bad_input(server, sessions):
    smtp_send(server, b"\xff\xfe garbage", mail_from="x@example.org")
    smtp_send(server, BROKEN, mail_from="bob@example.org")
    code, _ = smtp_send(server, mime("Pothole", "Big hole", message_id="<after@example.org>"))
    assert code == 250
    assert len(requests(sessions)) == 2


def test_sender_over_the_hourly_limit_is_deferred(server, sessions, city):
    with sessions.begin() as s:
        from spatial.models_mail import MailConfig

        s.get(MailConfig, city["city"].id).accept_limit_per_hour = 2
    for i in range(2):
        assert smtp_send(server, mime("Spam", f"n{i}", message_id=f"<f{i}@example.org>"))[0] == 250
    code, text = smtp_send(server, mime("Spam", "n2", message_id="<f2@example.org>"))
    assert code == 451 and "try again later" in text
    assert len(requests(sessions)) == 2
    assert inbound(sessions)[-1].outcome == "rate_limited"


def test_an_address_in_the_signature_is_not_the_place_of_the_report(server, sessions):
    body = "The bins were not collected this week.\n-- \nAna Resident\n100 N Main St, Testville"
    assert smtp_send(server, mime("Missed pickup", body, message_id="<sig@example.org>"))[0] == 250
    (req,) = requests(sessions)
    assert req.needs_location and req.address is None
    assert "100 N Main St" not in req.description


def test_required_questions_take_their_defaults_or_wait_for_the_dispatcher(server, sessions, city):
    from intake.mail_addresses import add_address
    from spatial.models import Jurisdiction, ServiceAttribute

    potholes = "potholes@testville.example"
    with sessions.begin() as s:
        add_address(s, s.get(Jurisdiction, city["city"].id), potholes, category="pothole")
        lane, depth = (
            s.scalar(sa.select(ServiceAttribute).where(ServiceAttribute.code == code))
            for code in ("lane", "depth")
        )
        # depth: a default; lane becomes required with a default its choices no longer hold
        depth.default_value = "10"
        lane.required, lane.default_value = True, "middle"
    code, text = smtp_send(server, mime("Pothole", "Hole at 100 N Main St", to=potholes), potholes)
    assert code == 250 and "Received as TV-" in text
    (req,) = requests(sessions)
    assert req.attributes == {"depth": 10}
    assert req.needs_answers
    (asked,) = events(sessions, req.id, "needs_answers")
    assert asked.to_value == "lane" and not asked.public
    (row,) = inbound(sessions)
    assert row.outcome == "created" and "needs answers" in row.detail
