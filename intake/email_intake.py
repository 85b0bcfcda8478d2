"""E-mail intake: every message to a city's public addresses becomes a tracked request.

Two doors lead here: an SMTP server (aiosmtpd, ``civicpin mail-intake``) that refuses
unknown recipients at RCPT time, and an IMAP poll (imapclient, ``civicpin mail-poll``).
Both hand the raw bytes to :meth:`MailIntake.process`, which

1. records the message in ``inbound_email`` first (``Message-ID`` unique: a message is
   never processed twice; one without an id gets one derived from its bytes), with its
   raw bytes for staff;
2. ignores bounces, out-of-office replies and mail from our own addresses, and refuses a
   sender over the per-hour limit (answering nothing, so no mail loop can start);
3. reads what the city's mail gateway says of the sender (:func:`gateway_verdict`: the
   ``Authentication-Results`` of the one trusted authserv-id, ``mail config
   --trusted-authserv-id``);
4. for a reply (``In-Reply-To``/``References`` to one of our messages, or
   ``[XX-2026-000123]`` in the subject, in this city): when the gateway vouches for the
   sender and the sender is the reporter, a confirmed follower or staff of the city, a
   note on that request; otherwise an internal note marked "unverified sender", its
   photos for staff only, and an answer that says nothing of the request. A reference
   this city does not have gets that same answer (and becomes a new request), so the
   intake is no oracle of which requests exist;
5. otherwise calls ``intake.submit()`` with channel ``email``: subject and body (plain
   text, or the HTML made plain; quoted mail and signature left out) as the description,
   image attachments through the photo pipeline, and the location from a photo's GPS, a
   map link or coordinates in the text, or an address in the text; without one the
   request waits as "needs location";
6. writes the auto-reply (unless loop protection or the intake address's hourly cap says
   no) and the dispatcher alert to the outbox, in the same transaction.

Malformed MIME gives a best-effort request when a sender and some text can be read, and
a logged rejection otherwise; every message gets an ``inbound_email`` row with its outcome.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import authres
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from intake.mail_location import coordinates_in_text, locate_address
from intake.submit import (
    HTML_TAG,
    MAX_DESCRIPTION,
    Draft,
    ValidationFailed,
    point_in_city,
    submit,
    unanswered_required,
)
from notify import messages
from notify.links import mail_config
from routing import classify, conversation
from routing.actions import may
from routing.helpdesk import is_helpdesk, staff_sender
from spatial.accounts import EMAIL_RE
from spatial.errors import CivicpinError
from spatial.media import MAX_BYTES as MAX_PHOTO_BYTES
from spatial.media import MAX_PHOTOS, PhotoUpload, ProcessedPhoto, process_photo, store_photo
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

log = logging.getLogger("civicpin.mail")

PUBLIC_ID_IN_SUBJECT = re.compile(r"\[([A-Z][A-Z0-9]{0,7}-\d{4}-\d{3,})\]")
THREAD_ROOT_RE = re.compile(r"^<request-([A-Z][A-Z0-9]{0,7}-\d{4}-\d{3,})@", re.I)
MSGID_RE = re.compile(r"<[^<>\s]{1,990}>")
IMAGE_EXT = (".jpg", ".jpeg", ".png", ".webp", ".gif")
# Where the quoted part of a reply begins: the attribution line of most clients ("On ...
# wrote:", in a few languages, wrapped over two lines at most), Outlook's "Original
# Message" rule, or its header block ("From: ..." followed by "Sent:"/"Date:" lines).
QUOTE_HEADER_RE = re.compile(
    r"^(?:"
    r"(?:On|Le|Am|El|Il|Op|Em)\s[^\n]{0,200}(?:\n[^\n]{0,200})?"
    r"(?:(?:wrote|a écrit|escribió|ha scritto|escreveu)\s?|(?:schrieb|schreef)[^\n]{0,200}):"
    r"[ \t]*$"
    r"|-{2,}\s*(?:Original Message|Message d'origine|Ursprüngliche Nachricht|Mensaje original)"
    r"\s*-{2,}"
    r"|_{10,}\s*\n\s*\*?(?:From|De|Von)\s?:\*?\s"
    r"|\*?(?:From|De|Von)\s?:\*?[ \t][^\n]+\n(?:[^\n]*\n){0,3}?\s*\*?"
    r"(?:Sent|Date|Envoyé|Gesendet|Enviado|Datum)\s?:"
    r")",
    re.I | re.M,
)
# Where a signature begins: the "-- " delimiter (RFC 3676; many clients drop its space)
# and the lines phones and mail apps add.
SIGNATURE_RE = re.compile(
    r"^(?:-- ?"
    r"|Sent from my [^\n]{1,60}"
    r"|Sent from (?:Mail|Outlook|Yahoo Mail|Gmail|AOL)\b[^\n]{0,60}"
    r"|Get Outlook for [^\n]{1,30}"
    r"|Envoyé (?:de|depuis) mon [^\n]{1,40}"
    r"|Von meinem [^\n]{1,40} gesendet"
    r"|Enviado desde mi [^\n]{1,40}"
    r"|Inviato da [^\n]{1,40}"
    r")[ \t]*$",
    re.I | re.M,
)
STANDINGS = ("reporter", "follower", "staff", "stranger")


@dataclass(frozen=True)
class IntakeLimits:
    """Size limits; ``hard_cap_bytes`` is where the SMTP server stops reading at all."""

    max_message_bytes: int = 25 * 1024 * 1024
    max_attachment_bytes: int = MAX_PHOTO_BYTES
    max_photos: int = MAX_PHOTOS

    @property
    def hard_cap_bytes(self) -> int:
        return 2 * self.max_message_bytes


@dataclass
class ParsedMail:
    message_id: str
    synthesized_id: bool
    from_addr: str | None
    from_name: str | None
    subject: str
    text: str
    in_reply_to: list[str]
    references: list[str]
    auto_submitted: str | None
    precedence: str | None
    is_report: bool
    header_recipients: list[str]
    auth_results: list[str] = field(default_factory=list)
    images: list[PhotoUpload] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)


@dataclass
class IntakeOutcome:
    """What became of one message; ``smtp_reply`` is the answer to the SMTP client."""

    outcome: str
    detail: str
    smtp_reply: str
    public_id: str | None = None
    inbound_id: int | None = None
    mark_seen: bool = True


class MalformedMail(CivicpinError):
    """Nothing usable could be read from the message."""


# pg_advisory_xact_lock(ANSWER_LOCK, intake address id): one auto-reply decision at a time
# per intake address.
ANSWER_LOCK = 460


@dataclass
class _Answer:
    """Whether the message being handled may be answered: the loop rules (decided first)
    and the hourly cap of its intake address (checked when the answer is written)."""

    inbound: InboundEmail
    address: MailAddress
    cfg: MailConfig
    now: datetime
    may_reply: bool
    why_not: str
    auth_why: str

    def allowed(self, session: Session) -> tuple[bool, str]:
        """(may answer, why not); counts this message as answered when it may."""
        if not self.may_reply:
            return False, self.why_not
        # Held to the commit, so that mail arriving in parallel cannot pass the cap together.
        session.execute(sa.select(sa.func.pg_advisory_xact_lock(ANSWER_LOCK, self.address.id)))
        answered = session.scalar(
            sa.select(sa.func.count())
            .select_from(InboundEmail)
            .where(
                InboundEmail.mail_address_id == self.address.id,
                InboundEmail.answered.is_(True),
                InboundEmail.received_at > self.now - timedelta(hours=1),
            )
        )
        limit = self.cfg.address_reply_limit_per_hour
        if answered >= limit:
            self.may_reply = False
            self.why_not = f"over {limit} auto-replies from {self.address.address} in an hour"
            return False, self.why_not
        self.inbound.answered = True
        return True, ""


# --- parsing ---------------------------------------------------------------------------


class _TextFromHtml(HTMLParser):
    """Visible text of an HTML body; links keep their address, nothing else survives."""

    SKIP = {"script", "style", "head", "title", "template", "noscript"}
    BLOCK = {
        "p",
        "div",
        "br",
        "li",
        "tr",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "table",
        "blockquote",
        "pre",
        "hr",
        "section",
        "article",
        "ul",
        "ol",
    }

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0
        self.href: list[str | None] = []
        self.link_text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skip += 1
        elif tag in self.BLOCK:
            self.out.append("\n")
        if tag == "a":
            href = dict(attrs).get("href") or ""
            self.href.append(href if re.match(r"^(https?:|geo:)", href, re.I) else None)
            self.link_text.append("")
        if tag == "li":
            self.out.append("- ")

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in self.BLOCK:
            self.out.append("\n")
        if tag == "a" and self.href:
            href = self.href.pop()
            text = self.link_text.pop().strip()
            if href and href != text:
                self.out.append(f" ({href})")

    def handle_data(self, data):
        if self.skip:
            return
        self.out.append(data)
        if self.link_text:
            self.link_text[-1] += data

    def text(self) -> str:
        joined = "".join(self.out)
        lines = [" ".join(line.split()) for line in joined.split("\n")]
        return "\n".join(lines)


def html_to_text(html: str) -> str:
    """Plain text of an HTML body: markup, scripts and styles dropped, links kept."""
    parser = _TextFromHtml()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # noqa: BLE001 - HTMLParser copes with most; keep what it got
        pass
    return parser.text()


def plain_safe(text: str) -> str:
    """Text that ``submit()`` accepts: no control characters, nothing that looks like HTML."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "", text)
    # <https://...> and <name@host> are how mail clients write links and addresses.
    text = re.sub(r"<((?:https?|mailto|geo):[^<>\s]+|[^<>@\s]+@[^<>@\s]+)>", r"\1", text)
    text = HTML_TAG.sub(lambda m: m.group(0).replace("<", "\u2039").replace(">", "\u203a"), text)
    lines = [line.rstrip() for line in text.split("\n")]
    text = "\n".join(lines).strip()
    return re.sub(r"\n{3,}", "\n\n", text)


def strip_quoted(text: str) -> str:
    """The sender's own words: quoted mail, its header and the signature dropped.

    The full message stays in ``inbound_email.raw`` for staff.
    """
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n")
    for pattern in (QUOTE_HEADER_RE, SIGNATURE_RE):
        m = pattern.search(text)
        if m:
            text = text[: m.start()]
    lines = [line for line in text.split("\n") if not line.lstrip().startswith(">")]
    return "\n".join(lines).strip()


# --- who sent it -----------------------------------------------------------------------

_COMMENT_RE = re.compile(r"\([^()]*\)")


def _authserv_id(value: str) -> str:
    """The authserv-id of an Authentication-Results value (RFC 8601 section 2.2)."""
    head = _COMMENT_RE.sub(" ", value).split(";", 1)[0].split()
    return head[0].lower() if head else ""


def _aligned(domain: str | None, from_domain: str) -> bool:
    """True if ``domain`` vouches for the From domain: the same, or its parent.

    Stricter than DMARC's relaxed alignment (which needs the public-suffix list): a
    domain that passed SPF or DKIM speaks for itself and its subdomains only.
    """
    domain = (domain or "").strip().lower().rstrip(".")
    if "@" in domain:
        domain = domain.rsplit("@", 1)[1]
    return bool(domain) and (from_domain == domain or from_domain.endswith("." + domain))


def gateway_verdict(
    header_values: list[str], from_addr: str | None, trusted_id: str | None
) -> tuple[str, str]:
    """``('pass' | 'fail' | 'none', why)``: what the city's mail gateway says of the sender.

    Only the topmost ``Authentication-Results`` header whose authserv-id is
    ``trusted_id`` counts (the gateway adds its own above what the sender wrote; it
    should also remove any that claim its id, RFC 8601 section 5). ``pass``: DMARC
    passed, or SPF or DKIM passed for the From domain. ``fail``: DMARC failed, or SPF
    or DKIM failed and none passed for the From domain. ``none``: no trusted gateway is
    set, it said nothing usable, or the message has no From address.
    """
    if not trusted_id:
        return "none", "no trusted mail gateway is set"
    if not from_addr or "@" not in from_addr:
        return "none", "no From address"
    from_domain = from_addr.rsplit("@", 1)[1].lower().rstrip(".")
    trusted_id = trusted_id.strip().lower()
    value = next((v for v in header_values if _authserv_id(v) == trusted_id), None)
    if value is None:
        return "none", f"no Authentication-Results from {trusted_id}"
    try:
        results = authres.AuthenticationResultsHeader.parse_value(value).results
    except Exception:  # noqa: BLE001 - authres raises its own errors for bad syntax
        return "none", f"the Authentication-Results of {trusted_id} could not be read"
    failed: list[str] = []
    for r in results:
        method, result = (r.method or "").lower(), (r.result or "").lower()
        props = {f"{p.type}.{p.name}".lower(): p.value for p in r.properties}
        if method == "dmarc" and result == "pass":
            return "pass", "dmarc=pass"
        if method == "dmarc" and result == "fail":
            return "fail", "dmarc=fail"
        if (
            method == "spf"
            and result == "pass"
            and _aligned(props.get("smtp.mailfrom"), from_domain)
        ):
            return "pass", f"spf=pass for {from_domain}"
        if method == "dkim" and result == "pass":
            signer = props.get("header.d") or props.get("header.i")
            if _aligned(signer, from_domain):
                return "pass", f"dkim=pass for {from_domain}"
        if method in ("spf", "dkim") and result in ("fail", "softfail", "permerror", "policy"):
            failed.append(f"{method}={result}")
    if failed:
        return "fail", ", ".join(failed)
    return "none", f"{trusted_id} did not vouch for {from_domain}"


def _header(msg: EmailMessage, name: str) -> str | None:
    try:
        value = msg.get(name)
    except Exception:  # noqa: BLE001 - a header the parser cannot model is as good as absent
        return None
    if value is None:
        return None
    return " ".join(str(value).split()) or None


def _all_headers(msg: EmailMessage, name: str) -> list[str]:
    try:
        return [" ".join(str(v).split()) for v in (msg.get_all(name) or [])]
    except Exception:  # noqa: BLE001
        return []


def _msgids(value: str | None) -> list[str]:
    return MSGID_RE.findall(value or "")


def _decode_text_part(part) -> str:
    try:
        return part.get_content()
    except Exception:  # noqa: BLE001 - unknown charset or broken transfer encoding
        payload = part.get_payload(decode=True) or b""
        if isinstance(payload, str):
            return payload
        return payload.decode("utf-8", "replace")


def _body_text(msg: EmailMessage) -> tuple[str, str]:
    """(text, how): the text/plain body, else the HTML body made plain."""
    body = None
    try:
        body = msg.get_body(preferencelist=("plain", "html"))
    except Exception:  # noqa: BLE001
        body = None
    if body is None:
        for part in msg.walk():
            if part.get_content_maintype() == "text" and not part.get_filename():
                body = part
                break
    if body is None:
        if not msg.is_multipart():
            payload = msg.get_payload(decode=True) or b""
            return (
                payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload)
            ), "raw"
        return "", "none"
    text = _decode_text_part(body)
    if body.get_content_subtype() == "html":
        return html_to_text(text), "html"
    return text, "plain"


def _attachments(msg: EmailMessage, limits: IntakeLimits) -> tuple[list[PhotoUpload], list[str]]:
    images: list[PhotoUpload] = []
    notes: list[str] = []
    try:
        body = msg.get_body(preferencelist=("plain", "html"))
    except Exception:  # noqa: BLE001
        body = None
    for part in msg.walk():
        if part.is_multipart() or part is body:
            continue
        try:
            filename = part.get_filename()
        except Exception:  # noqa: BLE001
            filename = None
        ctype = part.get_content_type()
        is_image = ctype.startswith("image/") or (
            filename is not None and filename.lower().endswith(IMAGE_EXT)
        )
        if not is_image:
            if filename:
                notes.append(f"the attachment {filename!r} was not kept: only photos are")
            continue
        name = filename or f"photo{len(images) + 1}.{ctype.split('/')[-1]}"
        try:
            data = part.get_payload(decode=True) or b""
        except Exception:  # noqa: BLE001
            data = b""
        if not data:
            notes.append(f"the photo {name!r} could not be read")
            continue
        if len(data) > limits.max_attachment_bytes:
            notes.append(
                f"the photo {name!r} was not kept: {len(data) / 1048576:.1f} MB is over the "
                f"{limits.max_attachment_bytes // 1048576} MB limit"
            )
            continue
        if len(images) >= limits.max_photos:
            notes.append(f"the photo {name!r} was not kept: at most {limits.max_photos} per report")
            continue
        images.append(PhotoUpload(name, data))
    return images, notes


def parse_message(raw: bytes, limits: IntakeLimits | None = None) -> ParsedMail:
    """Read what matters from a raw message, as far as it can be read.

    Raises :class:`MalformedMail` only when neither a sender nor any text is there.
    """
    limits = limits or IntakeLimits()
    try:
        msg = BytesParser(policy=policy.default).parsebytes(raw)
    except Exception as exc:  # noqa: BLE001
        raise MalformedMail(f"unreadable message: {exc}") from None
    defects = [type(d).__name__ for d in getattr(msg, "defects", [])]
    mid = next(iter(_msgids(_header(msg, "Message-ID"))), None)
    synthesized = mid is None
    if mid is None:
        mid = f"<sha256-{hashlib.sha256(raw).hexdigest()}@civicpin.invalid>"
    name, addr = parseaddr(_header(msg, "From") or "")
    addr = addr.strip().lower() or None
    if addr and not EMAIL_RE.match(addr):
        defects.append("InvalidFromAddress")
        addr = None
    subject = _header(msg, "Subject") or ""
    try:
        text, how = _body_text(msg)
    except Exception as exc:  # noqa: BLE001
        text, how = "", "none"
        defects.append(f"BodyUnreadable({type(exc).__name__})")
    try:
        images, notes = _attachments(msg, limits)
    except Exception as exc:  # noqa: BLE001
        images, notes = [], ["the attachments could not be read"]
        defects.append(f"AttachmentsUnreadable({type(exc).__name__})")
    recipients = [
        a.lower()
        for _n, a in getaddresses(
            _all_headers(msg, "Delivered-To")
            + _all_headers(msg, "X-Original-To")
            + _all_headers(msg, "To")
            + _all_headers(msg, "Cc")
        )
        if a
    ]
    try:
        ctype = msg.get_content_type()
    except Exception:  # noqa: BLE001
        ctype = ""
    for part in msg.walk():
        defects += [type(d).__name__ for d in getattr(part, "defects", []) if part is not msg]
    has_from = bool(_header(msg, "From"))
    if not has_from and not subject:
        raise MalformedMail("no From or Subject header: this is not a readable e-mail")
    if not plain_safe(text) and not subject and not images:
        raise MalformedMail("no subject, text or photo could be read")
    return ParsedMail(
        message_id=mid,
        synthesized_id=synthesized,
        from_addr=addr,
        from_name=(name or "").strip() or None,
        subject=subject,
        text=text if how != "none" else "",
        in_reply_to=_msgids(_header(msg, "In-Reply-To")),
        references=_msgids(_header(msg, "References")),
        auto_submitted=(_header(msg, "Auto-Submitted") or "").lower() or None,
        precedence=(_header(msg, "Precedence") or "").lower() or None,
        is_report=ctype == "multipart/report",
        header_recipients=recipients,
        auth_results=_all_headers(msg, "Authentication-Results"),
        images=images,
        notes=notes,
        defects=defects,
    )


# --- processing ------------------------------------------------------------------------


def _aside_row(
    raw: bytes,
    mail_from: str | None,
    rcpt_tos: list[str],
    outcome: str,
    detail: str,
    now: datetime,
    message_id: str | None,
    subject: str | None,
    size: int | None,
) -> InboundEmail:
    """The record of a message kept under a fresh key (its Message-ID stays free)."""
    key = f"<{outcome}-{secrets.token_hex(8)}>" + (f" {message_id}" if message_id else "")
    return InboundEmail(
        message_id=key[:998],
        received_at=now,
        mail_from=(mail_from or "")[:998] or None,
        rcpt_to=", ".join(rcpt_tos)[:998] or None,
        subject=(subject or "")[:2000] or None,
        size=size or len(raw),
        outcome=outcome,
        detail=detail,
    )


class MailIntake:
    """Turns raw messages into requests and notes; shared by the SMTP server and IMAP poll."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        public_base_url: str,
        media_dir: Path,
        mail_from: str = "",
        limits: IntakeLimits | None = None,
    ):
        self.sessions = sessions
        self.public_base_url = public_base_url
        self.media_dir = media_dir
        self.mail_from = parseaddr(mail_from)[1].lower()
        self.limits = limits or IntakeLimits()

    # -- addresses

    def lookup(self, session: Session, address: str) -> MailAddress | None:
        return session.scalar(
            sa.select(MailAddress).where(
                sa.func.lower(MailAddress.address) == (address or "").strip().lower(),
                MailAddress.active.is_(True),
            )
        )

    def accepts(self, address: str) -> bool:
        """True if ``address`` is an active intake address (the RCPT check)."""
        with self.sessions() as session:
            return self.lookup(session, address) is not None

    def own_addresses(self, session: Session) -> set[str]:
        own = {a.lower() for a in session.scalars(sa.select(MailAddress.address))}
        own |= {a.lower() for a in session.scalars(sa.select(MailConfig.from_address)) if a}
        if self.mail_from:
            own.add(self.mail_from)
        return {parseaddr(a)[1] or a for a in own}

    # -- the one entry point

    def process(
        self,
        raw: bytes,
        *,
        mail_from: str | None,
        rcpt_tos: list[str],
        default_address: str | None = None,
        via: str = "smtp",
        size: int | None = None,
        now: datetime | None = None,
    ) -> IntakeOutcome:
        """Handle one received message; never raises for anything a sender can send.

        ``size`` is the full size when ``raw`` holds only the headers of a message too big
        to fetch (IMAP).
        """
        now = now or now_utc()
        size = max(size or 0, len(raw))
        try:
            return self._process(raw, mail_from, rcpt_tos, default_address, via, now, size)
        except sa.exc.OperationalError as exc:
            log.error("mail intake: database unavailable: %s", exc.orig)
            return IntakeOutcome(
                "error",
                "database unavailable",
                "451 4.3.0 Temporary failure, try again later",
                mark_seen=False,
            )
        except Exception as exc:  # noqa: BLE001 - a bad message must never stop the server
            log.exception("mail intake: could not process a message")
            detail = f"internal error: {type(exc).__name__}: {exc}"[:500]
            inbound_id = self._record_aside(
                raw, mail_from, rcpt_tos, "error", detail, now, size=size
            )
            return IntakeOutcome(
                "error",
                detail,
                "554 5.3.0 This message could not be processed; please report on our website",
                inbound_id=inbound_id,
            )

    def _record_aside(
        self,
        raw: bytes,
        mail_from: str | None,
        rcpt_tos: list[str],
        outcome: str,
        detail: str,
        now: datetime,
        message_id: str | None = None,
        subject: str | None = None,
        jurisdiction_id: int | None = None,
        size: int | None = None,
    ) -> int | None:
        """Record a message under a fresh key, leaving its Message-ID free for a retry."""
        try:
            with self.sessions.begin() as session:
                row = _aside_row(
                    raw, mail_from, rcpt_tos, outcome, detail, now, message_id, subject, size
                )
                row.jurisdiction_id = jurisdiction_id
                session.add(row)
                session.flush()
                return row.id
        except sa.exc.SQLAlchemyError:
            log.exception("mail intake: could not record a %s message", outcome)
            return None

    def _process(self, raw, env_from, rcpt_tos, default_address, via, now, size) -> IntakeOutcome:
        limits = self.limits
        rcpt_tos = [r.strip().lower() for r in rcpt_tos if r and r.strip()]
        if size > limits.max_message_bytes:
            return self._too_large(raw, env_from, rcpt_tos, default_address, via, now, size)
        try:
            mail = parse_message(raw, limits)
        except MalformedMail as exc:
            log.warning("mail intake: rejected malformed message: %s", exc)
            inbound_id = self._record_aside(
                raw, env_from, rcpt_tos, "rejected_malformed", str(exc), now
            )
            return IntakeOutcome(
                "rejected_malformed",
                str(exc),
                f"550 5.6.0 Malformed message: {exc}",
                inbound_id=inbound_id,
            )
        sender = mail.from_addr or (env_from or "").strip().lower() or None

        with self.sessions.begin() as session:
            address = self._recipient(session, rcpt_tos, mail, default_address)
            city = session.get(Jurisdiction, address.jurisdiction_id) if address else None
            inserted = session.execute(
                insert(InboundEmail)
                .values(
                    message_id=mail.message_id[:998],
                    jurisdiction_id=city.id if city else None,
                    received_at=now,
                    mail_from=sender,
                    rcpt_to=", ".join(rcpt_tos or ([address.address] if address else []))[:998]
                    or None,
                    subject=mail.subject[:2000] or None,
                    size=len(raw),
                    outcome="processing",
                    raw=raw,
                    mail_address_id=address.id if address else None,
                )
                .on_conflict_do_nothing(index_elements=["message_id"])
                .returning(InboundEmail.id)
            ).scalar()
            if inserted is None:
                duplicate = True
            else:
                duplicate = False
                inbound = session.get(InboundEmail, inserted)
                outcome = self._handle(
                    session, inbound, mail, sender, env_from, address, city, via, now
                )
        if duplicate:
            first = self._first_with_id(mail.message_id)
            detail = f"the same Message-ID was already received (inbound #{first})"
            inbound_id = self._record_aside(
                raw,
                sender,
                rcpt_tos,
                "duplicate",
                detail,
                now,
                message_id=mail.message_id,
                subject=mail.subject,
            )
            log.info("mail intake: duplicate %s ignored", mail.message_id)
            return IntakeOutcome(
                "duplicate", detail, "250 2.0.0 Already received", inbound_id=inbound_id
            )
        if outcome.outcome == "rate_limited":
            # Recorded aside so the sender's retry (same Message-ID) is processed later.
            outcome.inbound_id = self._record_aside(
                raw,
                sender,
                rcpt_tos,
                "rate_limited",
                outcome.detail,
                now,
                message_id=mail.message_id,
                subject=mail.subject,
                jurisdiction_id=city.id if city else None,
            )
        log.info(
            "mail intake: %s from %s: %s %s",
            mail.message_id,
            sender,
            outcome.outcome,
            outcome.public_id or outcome.detail,
        )
        return outcome

    def _first_with_id(self, message_id: str) -> int | None:
        with self.sessions() as session:
            return session.scalar(
                sa.select(InboundEmail.id).where(InboundEmail.message_id == message_id[:998])
            )

    def _recipient(
        self, session, rcpt_tos, mail: ParsedMail, default_address
    ) -> MailAddress | None:
        for addr in [*rcpt_tos, *mail.header_recipients, default_address or ""]:
            if addr and (found := self.lookup(session, addr)) is not None:
                return found
        return None

    def _too_large(self, raw, env_from, rcpt_tos, default_address, via, now, size) -> IntakeOutcome:
        size_mb = size / 1048576
        limit_mb = self.limits.max_message_bytes // 1048576
        reason = (
            f"the message is {size_mb:.1f} MB, over the {limit_mb} MB limit; send photos "
            f"smaller than {self.limits.max_attachment_bytes // 1048576} MB each"
        )
        # Only the headers are read: the body is what is too big.
        head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0][:65536]
        try:
            mail = parse_message(head + b"\r\n\r\n", self.limits)
        except MalformedMail:
            mail = None
        sender = (mail.from_addr if mail else None) or env_from
        message_id = mail.message_id if mail else None
        subject = mail.subject if mail else None
        inbound_id = None
        if via != "smtp" and mail is not None and mail.from_addr:
            # No SMTP session to refuse in: tell the sender by mail, loop rules permitting.
            with self.sessions.begin() as session:
                address = self._recipient(session, rcpt_tos, mail, default_address)
                if address is not None:
                    row = _aside_row(
                        raw, sender, rcpt_tos, "too_large", reason, now, message_id, subject, size
                    )
                    row.jurisdiction_id = address.jurisdiction_id
                    row.mail_address_id = address.id
                    session.add(row)
                    session.flush()
                    inbound_id = row.id
                    may, why = self._may_reply(
                        session, mail, mail.from_addr, env_from, address, now
                    )
                    cfg = mail_config(session, address.jurisdiction_id)
                    if _Answer(row, address, cfg, now, may, why, "").allowed(session)[0]:
                        messages.intake_refused(
                            session,
                            address.jurisdiction_id,
                            self.public_base_url,
                            to_addr=mail.from_addr,
                            original_subject=mail.subject,
                            intake_address=address.address,
                            reason=reason,
                            in_reply_to=None if mail.synthesized_id else mail.message_id,
                        )
        if inbound_id is None:
            inbound_id = self._record_aside(
                raw, sender, rcpt_tos, "too_large", reason, now, message_id, subject, size=size
            )
        return IntakeOutcome(
            "too_large", reason, f"552 5.3.4 Message too big: {reason}", inbound_id=inbound_id
        )

    # -- loop protection

    def _recent_from(self, session: Session, sender: str, now: datetime) -> int:
        return session.scalar(
            sa.select(sa.func.count())
            .select_from(InboundEmail)
            .where(
                InboundEmail.mail_from == sender,
                InboundEmail.received_at > now - timedelta(hours=1),
                InboundEmail.outcome != "processing",
            )
        )

    def _may_reply(self, session, mail: ParsedMail, sender, env_from, address, now):
        if not sender:
            return False, "no sender address"
        if mail.auto_submitted and mail.auto_submitted.split(";")[0].strip() != "no":
            return False, f"Auto-Submitted: {mail.auto_submitted}"
        if mail.precedence in ("bulk", "list", "junk"):
            return False, f"Precedence: {mail.precedence}"
        if sender in self.own_addresses(session):
            return False, "sent from one of our own addresses"
        cfg = mail_config(session, address.jurisdiction_id)
        if self._recent_from(session, sender, now) >= cfg.reply_limit_per_hour:
            return False, f"over {cfg.reply_limit_per_hour} messages from this sender in an hour"
        return True, ""

    # -- the work, inside the inbound row's transaction

    def _handle(
        self, session, inbound, mail: ParsedMail, sender, env_from, address, city, via, now
    ):
        def done(outcome: str, detail: str, reply: str, public_id=None, request_id=None):
            inbound.outcome = outcome
            inbound.detail = detail[:4000]
            inbound.request_id = request_id
            return IntakeOutcome(outcome, detail, reply, public_id=public_id, inbound_id=inbound.id)

        if address is None:
            return done(
                "unknown_recipient",
                "not addressed to any intake address",
                "550 5.1.1 No such recipient here",
            )
        if env_from is not None and env_from.strip() in ("", "<>") and via == "smtp":
            return done("ignored_bounce", "empty envelope sender (a bounce)", "250 2.0.0 OK")
        if mail.is_report or (sender or "").startswith(("mailer-daemon@", "postmaster@")):
            return done("ignored_bounce", "a delivery report", "250 2.0.0 OK")
        if mail.auto_submitted and mail.auto_submitted.startswith("auto-replied"):
            return done(
                "ignored_auto_reply", f"Auto-Submitted: {mail.auto_submitted}", "250 2.0.0 OK"
            )
        if sender and sender in self.own_addresses(session):
            return done("ignored_own", "sent from one of our own addresses", "250 2.0.0 OK")
        cfg = mail_config(session, city.id)
        if sender and self._recent_from(session, sender, now) >= cfg.accept_limit_per_hour:
            session.delete(inbound)  # keeps the Message-ID free for the sender's retry
            return IntakeOutcome(
                "rate_limited",
                f"over {cfg.accept_limit_per_hour} messages from {sender} in an hour",
                "451 4.7.1 Too many messages from this sender, try again later",
                mark_seen=False,
            )
        may_reply, why_not = self._may_reply(session, mail, sender, env_from, address, now)
        if not may_reply:
            log.info("mail intake: no auto-reply to %s: %s", sender, why_not)
        auth, auth_why = gateway_verdict(mail.auth_results, mail.from_addr, cfg.trusted_authserv_id)
        inbound.sender_auth = auth
        answer = _Answer(inbound, address, cfg, now, may_reply, why_not, auth_why)

        target, claimed = self._replied_request(session, mail, city)
        if target is not None:
            standing = self._standing(session, target, sender)
            inbound.sender_standing = standing
            if auth == "pass" and standing == "reporter":
                return self._reporter_message(session, done, target, mail, sender, answer)
            if auth == "pass" and standing != "stranger":
                return self._add_note(session, done, target, mail, sender, answer, standing)
            why = f"sender not verified: {auth_why}" if auth != "pass" else "not a party to it"
            return self._add_unverified_note(session, done, target, mail, sender, answer, why)
        if claimed:
            # A reference that names no request of this city gets the stranger's answer:
            # whether it exists is not for the sender to learn.
            inbound.sender_standing = "stranger"
        return self._new_request(
            session, done, mail, sender, address, city, answer, stranger=claimed
        )

    def _replied_request(
        self, session, mail: ParsedMail, city
    ) -> tuple[ServiceRequest | None, bool]:
        """(the city's request a reply names, whether the mail names one at all).

        Threading headers name one by our thread root (``<request-ID@...>``) or the
        Message-ID of a message we sent or received about it; the subject by
        ``[ID]``. Either is as easy to forge as a From: line, so naming a request
        proves nothing about the sender: see :meth:`_standing`.
        """
        ids = [*mail.in_reply_to, *reversed(mail.references)]
        claimed = False
        in_city = ServiceRequest.jurisdiction_id == city.id
        for mid in ids:
            m = THREAD_ROOT_RE.match(mid)
            if m:
                claimed = True
                req = session.scalar(
                    sa.select(ServiceRequest).where(
                        ServiceRequest.public_id == m.group(1).upper(), in_city
                    )
                )
                if req is not None:
                    return req, True
        if ids:
            rid = session.scalar(
                sa.select(OutboxMessage.request_id)
                .where(
                    OutboxMessage.message_id.in_(ids),
                    OutboxMessage.request_id.is_not(None),
                    OutboxMessage.jurisdiction_id == city.id,
                )
                .limit(1)
            ) or session.scalar(
                sa.select(InboundEmail.request_id)
                .where(
                    InboundEmail.message_id.in_(ids),
                    InboundEmail.request_id.is_not(None),
                    InboundEmail.jurisdiction_id == city.id,
                )
                .limit(1)
            )
            if rid is not None:
                return session.get(ServiceRequest, rid), True
        for public_id in PUBLIC_ID_IN_SUBJECT.findall(mail.subject or ""):
            claimed = True
            req = session.scalar(
                sa.select(ServiceRequest).where(ServiceRequest.public_id == public_id, in_city)
            )
            if req is not None:
                return req, True
        return None, claimed

    def _standing(self, session, request: ServiceRequest, sender: str | None) -> str:
        """Who ``sender`` is to ``request``: its reporter, a confirmed follower, staff who
        may see it, or a stranger (by address alone: :func:`gateway_verdict` says
        whether the address is the sender's)."""
        sender = (sender or "").strip().lower()
        if not sender:
            return "stranger"
        if (request.contact_email or "").strip().lower() == sender:
            return "reporter"
        follows = session.scalar(
            sa.select(Follower.id)
            .where(
                Follower.request_id == request.id,
                sa.func.lower(Follower.email) == sender,
                Follower.confirmed_at.is_not(None),
                Follower.unsubscribed_at.is_(None),
            )
            .limit(1)
        )
        if follows is not None:
            return "follower"
        if self._staff_user(session, request, sender) is not None:
            return "staff"
        return "stranger"

    def _staff_user(self, session, request: ServiceRequest, sender: str) -> User | None:
        user = session.scalar(
            sa.select(User).where(sa.func.lower(User.email) == sender, User.active.is_(True))
        )
        return user if user is not None and may(user, "view", request) else None

    def _usable_photos(self, mail: ParsedMail) -> tuple[list[ProcessedPhoto], list[str]]:
        good: list[ProcessedPhoto] = []
        notes: list[str] = []
        for upload in mail.images:
            try:
                good.append(process_photo(upload))
            except CivicpinError as exc:
                notes.append(f"a photo was not kept: {exc}")
        return good, notes

    def _add_photos(self, session, request, mail: ParsedMail, *, public: bool):
        """Store the mail's usable photos on ``request``; (how many were added, notes)."""
        photos, photo_notes = self._usable_photos(mail)
        added = 0
        for photo in photos:
            exists = session.scalar(
                sa.select(Photo.id).where(
                    Photo.request_id == request.id, Photo.content_hash == photo.content_hash
                )
            )
            if exists:
                continue
            store_photo(self.media_dir, photo)
            session.add(
                Photo(
                    request_id=request.id,
                    content_hash=photo.content_hash,
                    stage="report",
                    mime_type=photo.mime_type,
                    width=photo.width,
                    height=photo.height,
                    bytes=photo.size,
                    original_key=photo.original_key,
                    public_key=photo.public_key,
                    thumb_key=photo.thumb_key,
                    public=public,
                )
            )
            added += 1
        return added, photo_notes

    def _add_note(self, session, done, request, mail, sender, answer: _Answer, standing: str):
        """A verified reply from the reporter, a confirmed follower or staff: an internal
        note (staff's under their own name), its photos with the request's."""
        text = plain_safe(strip_quoted(mail.text)) or "(no text)"
        if len(text) > MAX_DESCRIPTION:
            text = text[: MAX_DESCRIPTION - 1] + "\u2026"
        added, photo_notes = self._add_photos(session, request, mail, public=True)
        note = f"E-mail from {sender or 'an unknown sender'} ({standing}): {mail.subject}\n\n{text}"
        if added:
            note += f"\n\n({added} photo{'s' if added > 1 else ''} added)"
        staff = self._staff_user(session, request, sender) if standing == "staff" else None
        session.add(
            RequestEvent(
                request_id=request.id,
                kind="note",
                note=note[: MAX_DESCRIPTION + 400],
                public=False,
                actor_id=staff.id if staff is not None else None,
                actor_label=(
                    "Follower"
                    if standing == "follower"
                    else (f"e-mail {sender}" if sender else "e-mail")
                ),
            )
        )
        request.updated_at = now_utc()
        detail = f"note added to {request.public_id} ({standing}, {answer.auth_why})"
        detail += self._confirm_note(session, request, mail, sender, answer, photo_notes)
        session.flush()
        return done(
            "note",
            detail,
            f"250 2.0.0 Added to {request.public_id}",
            public_id=request.public_id,
            request_id=request.id,
        )

    def _confirm_note(self, session, request, mail, sender, answer: _Answer, photo_notes) -> str:
        """Tell the sender their mail was added (the reporter's copy carries their private
        link; anyone else's the public page), if the reply limits allow; returns what the
        intake log adds to its detail."""
        may_reply, why_not = answer.allowed(session)
        if not may_reply:
            return f"; no auto-reply ({why_not})"
        messages.note_received(
            session,
            request,
            self.public_base_url,
            to_addr=sender,
            in_reply_to=mail.message_id if not mail.synthesized_id else None,
            references=" ".join(mail.references) or None,
            notes=mail.notes + photo_notes,
        )
        return ""

    def _reporter_message(self, session, done, request, mail, sender, answer: _Answer):
        """A verified reply from the reporter: their message in the conversation
        (:func:`routing.conversation.reporter_message`), its photos with the request's. An
        archived request takes nothing: the reporter is asked to report it again."""
        if conversation.is_archived(session, request):
            may_reply, why_not = answer.allowed(session)
            if may_reply:
                messages.intake_refused(
                    session,
                    request.jurisdiction_id,
                    self.public_base_url,
                    to_addr=sender,
                    original_subject=mail.subject,
                    intake_address=answer.address.address,
                    reason=conversation.ARCHIVED_MESSAGE + ".",
                    in_reply_to=None if mail.synthesized_id else mail.message_id,
                )
            detail = f"{request.public_id} is archived: nothing added"
            if not may_reply:
                detail += f"; no auto-reply ({why_not})"
            return done("archived", detail, "250 2.0.0 Received", request_id=request.id)
        text = plain_safe(strip_quoted(mail.text)) or "(no text)"
        if len(text) > conversation.MAX_MESSAGE:
            text = text[: conversation.MAX_MESSAGE - 1] + "\u2026"
        added, photo_notes = self._add_photos(session, request, mail, public=True)
        if added:
            text += f"\n\n({added} photo{'s' if added > 1 else ''} added)"
        conversation.reporter_message(
            session, request, text, via="email", public_base_url=self.public_base_url
        )
        detail = f"message added to {request.public_id} (reporter, {answer.auth_why})"
        detail += self._confirm_note(session, request, mail, sender, answer, photo_notes)
        session.flush()
        return done(
            "note",
            detail,
            f"250 2.0.0 Added to {request.public_id}",
            public_id=request.public_id,
            request_id=request.id,
        )

    def _add_unverified_note(self, session, done, request, mail, sender, answer, why: str):
        """A reply naming ``request`` from someone who may not be who they say: an internal
        note marked so, its photos kept from the public, and an answer that tells nothing
        about the request (the same as for a reference that names no request)."""
        text = plain_safe(strip_quoted(mail.text)) or "(no text)"
        if len(text) > MAX_DESCRIPTION:
            text = text[: MAX_DESCRIPTION - 1] + "\u2026"
        added, photo_notes = self._add_photos(session, request, mail, public=False)
        note = (
            f"E-mail from {sender or 'an unknown sender'} (unverified sender: {why}): "
            f"{mail.subject}\n\n{text}"
        )
        if added:
            note += (
                f"\n\n({added} photo{'s' if added > 1 else ''} added for staff only: "
                "not shown to the public)"
            )
        if photo_notes:
            note += "\n\n" + "; ".join(photo_notes)
        session.add(
            RequestEvent(
                request_id=request.id,
                kind="note",
                note=note[: MAX_DESCRIPTION + 600],
                public=False,
                actor_label=(f"e-mail {sender}" if sender else "e-mail") + " (unverified sender)",
            )
        )
        request.updated_at = now_utc()
        may_reply, why_not = self._answer_unverified(session, mail, sender, answer)
        detail = f"unverified note added to {request.public_id} ({why})"
        if not may_reply:
            detail += f"; no auto-reply ({why_not})"
        session.flush()
        return done("note_unverified", detail, "250 2.0.0 Received", request_id=request.id)

    def _answer_unverified(self, session, mail, sender, answer: _Answer) -> tuple[bool, str]:
        may_reply, why_not = answer.allowed(session)
        if may_reply:
            messages.reply_unverified(
                session,
                answer.address.jurisdiction_id,
                self.public_base_url,
                to_addr=sender,
                original_subject=mail.subject,
                in_reply_to=None if mail.synthesized_id else mail.message_id,
            )
        return may_reply, why_not

    def _refuse_not_staff(self, session, done, mail, sender, address, answer: _Answer):
        """Mail to a help-desk address from anyone but verified staff of the city: a
        polite refusal (loop rules permitting), and nothing is created."""
        may_reply, why_not = answer.allowed(session)
        if may_reply:
            messages.intake_refused(
                session,
                address.jurisdiction_id,
                self.public_base_url,
                to_addr=sender,
                original_subject=mail.subject,
                intake_address=address.address,
                reason=(
                    "this address is the help desk of the city's own staff, and takes "
                    "requests only from a staff member's work address"
                ),
                in_reply_to=None if mail.synthesized_id else mail.message_id,
            )
        detail = "help-desk address: the sender is not verified staff of the city"
        if not may_reply:
            detail += f"; no auto-reply ({why_not})"
        return done("refused_not_staff", detail, "250 2.0.0 Received")

    def _locate(self, session, city, mail: ParsedMail, photos: list[ProcessedPhoto]):
        """(lat, lon, address, address_id, use_photo, notes) for a new request: the
        photo's GPS, a map link or coordinates, else an address the geocoder is confident
        of. An unsure address places nothing: its candidates go into the notes (staff's
        only), and the request waits for its pin."""
        notes: list[str] = []
        for photo in photos:
            if photo.gps is not None:
                lon, lat = photo.gps
                if point_in_city(session, city, lon, lat):
                    return None, None, None, None, True, ["location taken from the photo's GPS"]
                notes.append(
                    f"the photo's GPS position ({lat:.5f}, {lon:.5f}) is outside {city.name}"
                )
        # The sender's own words: not an address in a quoted mail or their signature.
        text = f"{mail.subject}\n{strip_quoted(mail.text)}"
        coords, link_notes = coordinates_in_text(text)
        notes += link_notes
        for c in coords:
            for lat, lon in ((c.lat, c.lon), (c.lon, c.lat)):
                if -90 <= lat <= 90 and point_in_city(session, city, lon, lat):
                    return (
                        lat,
                        lon,
                        None,
                        None,
                        False,
                        [*notes, f"location taken from the {c.source}"],
                    )
        if coords:
            notes.append(f"the {coords[0].source} points outside {city.name}")
        found = locate_address(session, city, text)
        if (note := found.note()) is not None:
            notes.append(note)
        if found.placed is not None:
            c = found.placed
            return c.lat, c.lon, c.address, c.address_id, False, notes
        return None, None, None, None, False, notes

    def _new_request(
        self, session, done, mail, sender, address, city, answer: _Answer, stranger=False
    ):
        """A new request from the mail; ``stranger``: the mail named a request this city
        does not have, so it is answered as a stranger's reply would be."""
        service = session.get(Service, address.service_id)
        requester = None
        if is_helpdesk(service):
            # A help-desk address files for verified staff of the city only.
            if answer.inbound.sender_auth == "pass":
                requester = staff_sender(session, city.id, sender)
            if requester is None:
                return self._refuse_not_staff(session, done, mail, sender, address, answer)
        body = plain_safe(strip_quoted(mail.text))
        subject = plain_safe(mail.subject)
        description = "\n\n".join(p for p in (subject, body) if p) or "(empty e-mail)"
        notes = list(mail.notes)
        stripped = body != plain_safe(mail.text)
        if len(description) > MAX_DESCRIPTION:
            description = description[: MAX_DESCRIPTION - 1] + "\u2026"
            notes.append(f"the text was cut to {MAX_DESCRIPTION} characters")
        internal = []
        if mail.defects:
            internal.append(f"MIME defects: {', '.join(sorted(set(mail.defects)))}")
        if stripped:
            internal.append(
                "quoted mail and signature left out of the description (the whole e-mail "
                f"is kept as inbound mail #{answer.inbound.id})"
            )
        if stranger:
            internal.append("the e-mail names a reference this city does not have")
        notes_internal = "; ".join(internal)
        photos, photo_notes = self._usable_photos(mail)
        notes += photo_notes
        if requester is not None:
            # Staff's signatures name their offices: a help-desk request has no place.
            lat = lon = found_address = address_id = None
            use_photo, loc_notes = False, []
        else:
            lat, lon, found_address, address_id, use_photo, loc_notes = self._locate(
                session, city, mail, photos
            )
        name = mail.from_name if mail.from_name and len(mail.from_name) <= 200 else None
        draft = Draft(
            city=city.slug,
            service_code=service.code,
            lat=lat,
            lon=lon,
            address=found_address,
            address_id=address_id,
            description=description,
            photos=[PhotoUpload(p.original_key.rsplit("/", 1)[-1], p.original) for p in photos],
            channel="email",
            allow_missing_location=True,
            use_photo_location=use_photo,
            requester_id=requester.id if requester is not None else None,
        )
        try:
            with session.begin_nested():
                result = submit(
                    session, draft, media_dir=self.media_dir, public_base_url=self.public_base_url
                )
        except ValidationFailed as exc:
            reason = "; ".join(f"{k}: {v}" for k, v in exc.errors.items())
            log.warning("mail intake: %s could not become a request: %s", mail.message_id, reason)
            return done(
                "rejected",
                reason,
                f"550 5.7.1 This message could not become a report: {reason}"[:500],
            )
        request = result.request
        if sender and EMAIL_RE.match(sender):
            request.contact_email = sender
            request.contact_name = name
            request.anonymous = False
        if request.department_id is None and address.department_id is not None:
            request.department_id = address.department_id
            request.routing_explanation = (
                f"mailed to {address.address}: that address's default department"
            )
        session.flush()
        classify.record_suggestion(session, city, request, actor_label="e-mail intake")
        location_note = " ".join(loc_notes)
        if request.needs_location:
            session.add(
                RequestEvent(
                    request_id=request.id,
                    kind="needs_location",
                    note="No location in the e-mail"
                    + (f" ({'; '.join(loc_notes)})" if loc_notes else "")
                    + ": the sender was sent a link to drop the pin",
                    public=False,
                    actor_label="e-mail intake",
                )
            )
        if notes_internal or notes:
            session.add(
                RequestEvent(
                    request_id=request.id,
                    kind="note",
                    note="; ".join(x for x in (notes_internal, *notes) if x),
                    public=False,
                    actor_label="e-mail intake",
                )
            )
        if stranger:
            may_reply, why_not = self._answer_unverified(session, mail, sender, answer)
        else:
            may_reply, why_not = answer.allowed(session)
            if may_reply:
                messages.acknowledge(
                    session,
                    request,
                    self.public_base_url,
                    to_addr=sender,
                    in_reply_to=None if mail.synthesized_id else mail.message_id,
                    references=" ".join(mail.references) or None,
                    notes=notes + _ask_for_answers(request, service),
                )
        messages.on_new_request(session, request, self.public_base_url)
        detail = f"created {request.public_id}"
        if location_note:
            detail += f"; {location_note}"
        if request.needs_location:
            detail += "; needs location"
        if request.needs_answers:
            detail += "; needs answers"
        if not may_reply:
            detail += f"; no auto-reply ({why_not})"
        session.flush()
        return done(
            "created",
            detail,
            "250 2.0.0 Received" if stranger else f"250 2.0.0 Received as {request.public_id}",
            public_id=request.public_id,
            request_id=request.id,
        )


def _ask_for_answers(request: ServiceRequest, service: Service) -> list[str]:
    """The auto-reply's note when required questions are still unanswered: what the city
    may ask (the category's own public questions; nothing of the request itself)."""
    if not request.needs_answers:
        return []
    missing = [a.description for a in unanswered_required(service, request.attributes or {})]
    if service.private or not missing:
        return ["the city may contact you for a few more details."]
    return [f"the city may contact you for a few more details: {'; '.join(missing)}"]


# --- SMTP server (aiosmtpd) ------------------------------------------------------------


class IntakeHandler:
    """aiosmtpd handler: refuse unknown recipients at RCPT, process each message at DATA."""

    def __init__(self, intake: MailIntake):
        self.intake = intake

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        try:
            ok = await asyncio.to_thread(self.intake.accepts, address)
        except sa.exc.SQLAlchemyError:
            return "451 4.3.0 Temporary failure, try again later"
        if not ok:
            return f"550 5.1.1 <{address}>: no such recipient here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        outcome = await asyncio.to_thread(
            self.intake.process,
            raw,
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            via="smtp",
        )
        return outcome.smtp_reply


def start_smtp_server(intake: MailIntake, host: str = "127.0.0.1", port: int = 2525):
    """Start the intake SMTP server in a background thread; returns the Controller."""
    from aiosmtpd.controller import Controller

    controller = Controller(
        IntakeHandler(intake),
        hostname=host,
        port=port,
        data_size_limit=intake.limits.hard_cap_bytes,
        ident="civicpin mail intake",
    )
    controller.start()
    return controller


# --- IMAP poll (imapclient) ------------------------------------------------------------


@dataclass
class PollResult:
    seen: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    left_unseen: int = 0


def poll_imap(
    intake: MailIntake,
    url: str,
    *,
    folder: str = "INBOX",
    default_address: str | None = None,
    batch: int = 50,
    timeout: float = 30.0,
) -> PollResult:
    """Process every unseen message of an IMAP folder, marking each seen once handled.

    ``url``: ``imap://user:password@host:port`` (``imaps://`` for TLS, ``imap+starttls://``).
    A message is marked seen only after its outcome is committed; a temporary failure
    (database down, sender over the limit) leaves it unseen for the next poll.
    """
    from imapclient import IMAPClient
    from imapclient.exceptions import IMAPClientError

    parts = urlsplit(url)
    if parts.scheme not in ("imap", "imaps", "imap+starttls") or not parts.hostname:
        raise CivicpinError(f"IMAP URL {url!r} must look like imap://user:password@host[:port]")
    port = parts.port or (993 if parts.scheme == "imaps" else 143)
    user = unquote(parts.username or "")
    password = unquote(parts.password or "")
    result = PollResult()
    try:
        client = IMAPClient(parts.hostname, port=port, ssl=parts.scheme == "imaps", timeout=timeout)
    except OSError as exc:
        raise CivicpinError(
            f"cannot connect to IMAP server {parts.hostname}:{port}: {exc}"
        ) from None
    try:
        if parts.scheme == "imap+starttls":
            client.starttls()
        try:
            client.login(user, password)
        except IMAPClientError as exc:
            raise CivicpinError(f"IMAP login as {user!r} refused: {exc}") from None
        try:
            client.select_folder(folder)
        except IMAPClientError as exc:
            raise CivicpinError(f"IMAP folder {folder!r} cannot be opened: {exc}") from None
        uids = client.search(["UNSEEN"])
        for start in range(0, len(uids), batch):
            chunk = uids[start : start + batch]
            sizes = client.fetch(chunk, ["RFC822.SIZE"])
            for uid in chunk:
                size = int(sizes.get(uid, {}).get(b"RFC822.SIZE", 0))
                if size > intake.limits.max_message_bytes:
                    raw = client.fetch([uid], ["BODY.PEEK[HEADER]"])[uid][b"BODY[HEADER]"]
                else:
                    raw = client.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"]
                outcome = intake.process(
                    raw,
                    mail_from=None,
                    rcpt_tos=[],
                    default_address=default_address,
                    via="imap",
                    size=size,
                )
                result.outcomes[outcome.outcome] = result.outcomes.get(outcome.outcome, 0) + 1
                if outcome.mark_seen:
                    client.add_flags([uid], [b"\\Seen"])
                    result.seen += 1
                else:
                    result.left_unseen += 1
    finally:
        try:
            client.logout()
        except (IMAPClientError, OSError):
            pass
    return result
