"""Addresses in e-mail text, placed by the city's geocoder: real MIME messages through
civicpin's own SMTP server on loopback, a city with its real centrelines (Cambridge),
the auto-replies delivered by the real worker to a sink."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from geoalchemy2.shape import to_shape

from intake.email_intake import MailIntake, start_smtp_server
from notify.worker import run_once
from spatial.models import InboundEmail, RequestEvent, ServiceRequest
from tests.support.cambridge_calls import INTAKE, make_cambridge_calls, metres, range_truth
from tests.support.mail import RESIDENT, free_port, mime, smtp_send


@pytest.fixture
def city(sessions):
    with sessions.begin() as s:
        return make_cambridge_calls(s)


@pytest.fixture
def server(sessions, settings, city):
    intake = MailIntake(
        sessions,
        public_base_url=settings.public_base_url,
        media_dir=settings.media_dir,
        mail_from=settings.mail_from,
    )
    port = free_port()
    controller = start_smtp_server(intake, "127.0.0.1", port)
    yield port
    controller.stop()


def _only_request(sessions) -> ServiceRequest:
    with sessions() as s:
        (req,) = s.scalars(sa.select(ServiceRequest)).all()
        s.expunge(req)
        return req


def _internal_notes(sessions, request_id: int) -> str:
    with sessions() as s:
        notes = s.scalars(
            sa.select(RequestEvent.note).where(
                RequestEvent.request_id == request_id, RequestEvent.public.is_(False)
            )
        ).all()
    return "\n".join(n or "" for n in notes)


def test_an_address_in_the_text_places_the_request_on_its_street(server, sessions):
    msg = mime("Street light", "Hello,\nthe light outside 1334 Cambridge St is out.\nThanks")
    code, text = smtp_send(server, msg, rcpt=INTAKE, mail_from=RESIDENT)
    assert code == 250 and "Received as CAM-" in text
    req = _only_request(sessions)
    assert not req.needs_location
    assert req.address.startswith("1334 CAMBRIDGE ST")
    pt = to_shape(req.location)
    assert metres((pt.y, pt.x), range_truth("Cambridge St", 1334)) < 25
    with sessions() as s:
        detail = s.scalar(sa.select(InboundEmail.detail))
    assert "location taken from the address '1334 Cambridge St'" in detail


def test_an_unsure_address_waits_for_its_pin_and_staff_see_the_candidates(
    server, sessions, settings, sink
):
    # No number like this on Cambridge St: the street alone is not a place.
    msg = mime("Street light", "The light outside 9999 Cambridge St is out.", message_id="<u@x>")
    code, _ = smtp_send(server, msg, rcpt=INTAKE, mail_from=RESIDENT)
    assert code == 250
    req = _only_request(sessions)
    assert req.needs_location and req.location is None
    notes = _internal_notes(sessions, req.id)
    assert "not sure" in notes and "CAMBRIDGE ST" in notes
    run_once(sessions, settings.with_overrides(smtp_url=sink.url))
    (ack,) = sink.to(RESIDENT)
    # The reporter is asked to show the spot; the candidates are for staff only.
    assert f"/requests/{req.public_id}?token={req.token}&locate=1" in ack.text
    assert "candidates" not in ack.text and "CAMBRIDGE ST" not in ack.text
