"""Real SMTP on loopback for the mail tests: an aiosmtpd sink, a city with intake
addresses, and helpers that speak SMTP to civicpin's own intake server."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import threading
import time
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import sqlalchemy as sa
from aiosmtpd.controller import Controller

from places import store
from places.parse import normalise_street
from spatial.models import Department, Jurisdiction, Service
from spatial.models_mail import MailAddress, MailConfig
from tests.support.city import make_small_city

INTAKE = "311@testville.example"
WEBMASTER = "webmaster@testville.example"
DISPATCH = "dispatch@testville.example"
RESIDENT = "ana@example.org"
MAIN_ST = (34.0551, -118.2452)  # (lat, lon) of "100 N MAIN ST, 90012"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        return BytesParser(policy=policy.default).parsebytes(self.raw)

    @property
    def text(self) -> str:
        return self.message.get_body(preferencelist=("plain",)).get_content()


@dataclass
class _SinkHandler:
    received: list[Received] = field(default_factory=list)
    delay: float = 0.0
    refuse: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address.lower() in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        # Recorded before the reply: a client cut off now has delivered but not heard "250".
        with self.lock:
            self.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
            )
        if self.delay:
            await asyncio.sleep(self.delay)
        return "250 OK queued"


class Sink:
    """An SMTP server on loopback that keeps what it receives; can be stopped and restarted."""

    def __init__(self, port: int | None = None, delay: float = 0.0):
        self.port = port or free_port()
        self.handler = _SinkHandler(delay=delay)
        self.controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    def start(self) -> Sink:
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def wait_for(self, n: int, timeout: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.received) >= n:
                return self.received
            time.sleep(0.05)
        raise AssertionError(f"sink got {len(self.received)} messages, expected {n}")

    def to(self, addr: str) -> list[Received]:
        return [r for r in self.received if addr in r.rcpt_tos]


def make_mail_city(session) -> dict:
    """The small test city plus a general category, intake addresses and address points."""
    info = make_small_city(session)
    city = info["city"]
    it = Department(jurisdiction_id=city.id, code="it", name="IT")
    session.add(it)
    session.flush()
    general = Service(
        jurisdiction_id=city.id,
        code="general",
        name="General enquiry",
        default_department_id=info["department"].id,
    )
    session.add(general)
    session.flush()
    session.add_all(
        [
            MailAddress(jurisdiction_id=city.id, address=INTAKE, service_id=general.id),
            MailAddress(
                jurisdiction_id=city.id,
                address=WEBMASTER,
                service_id=general.id,
                department_id=it.id,
            ),
            MailConfig(
                jurisdiction_id=city.id,
                dispatch_email=DISPATCH,
                reply_limit_per_hour=5,
                accept_limit_per_hour=30,
            ),
        ]
    )
    session.flush()
    # The city's address points, loaded as an address import loads them.
    points = store.begin(
        session, city, "addresses", source_name="test", mapping={}, imported_by="test"
    )
    rows = [
        store.AddressRow(lon, lat, number, normalise_street(street), zip="90012", source_id=sid)
        for sid, number, street, (lat, lon) in (
            ("A-100N", 100, "N MAIN ST", MAIN_ST),
            ("A-250W", 250, "W 1ST ST", (34.0521, -118.2701)),
            ("A-100S", 100, "S MAIN ST", (34.0500, -118.2466)),
        )
    ]
    store.add_addresses(session, points, rows)
    store.finish(session, points, rows_read=len(rows), rows_bad=0)
    return {**info, "general": general, "it": it}


def mime(
    subject: str = "Pothole",
    body: str | None = "There is a big hole in the road.",
    *,
    sender: str = f"Ana Resident <{RESIDENT}>",
    to: str = INTAKE,
    message_id: str | None = "<m1@example.org>",
    html: str | None = None,
    headers: dict[str, str] | None = None,
    attachments: list[tuple[str, str, bytes]] = (),
) -> EmailMessage:
    """A real MIME message built with the standard library."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    if message_id:
        msg["Message-ID"] = message_id
    for k, v in (headers or {}).items():
        msg[k] = v
    if body is not None:
        msg.set_content(body)
        if html is not None:
            msg.add_alternative(html, subtype="html")
    elif html is not None:
        msg.set_content(html, subtype="html")
    for filename, ctype, data in attachments:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg


def smtp_send(
    port: int, raw: bytes | EmailMessage, rcpt: list[str] | str = INTAKE, mail_from: str = RESIDENT
) -> tuple[int, str]:
    """Speak SMTP to ``port``; returns the first refusal or the reply to DATA."""
    if isinstance(raw, EmailMessage):
        raw = raw.as_bytes(policy=policy.SMTP)
    rcpts = [rcpt] if isinstance(rcpt, str) else rcpt
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
        smtp.ehlo("tester.example.org")
        code, text = smtp.mail(mail_from)
        if code >= 400:
            return code, text.decode()
        for r in rcpts:
            code, text = smtp.rcpt(r)
            if code >= 400:
                return code, text.decode()
        code, text = smtp.data(raw)
        return code, text.decode()


NIGHT_DESK = "night-desk@testville.example"
SENDER = "Testville 311 <noreply@testville.example>"


def change_mail_settings(session) -> None:
    """What a city admin changes elsewhere: the dispatch address and the sender, the
    intake address (retired, so no reply-to), and the dispatcher alert's template
    (subject "NEW <public id>")."""
    from notify import templates

    city = session.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == "testville"))
    cfg = session.get(MailConfig, city.id)
    cfg.dispatch_email = NIGHT_DESK
    cfg.from_address = SENDER
    session.execute(
        sa.update(MailAddress).where(MailAddress.address == INTAKE).values(active=False)
    )
    templates.save_override(
        session,
        city,
        "dispatcher_alert",
        "NEW $public_id",
        "See $staff_url\n$unsubscribe_url\n",
        "test",
    )
