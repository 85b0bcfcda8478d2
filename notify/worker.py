"""The outbox worker: deliver committed messages over SMTP, or to a local spool.

Claiming is ``FOR UPDATE SKIP LOCKED`` with a lease (``locked_until``): a worker marks a
batch ``sending`` until the lease ends and commits, so other workers skip those rows. If
the worker dies, its rows become claimable again when the lease ends; only the message
that was on the wire at that moment can have reached the server already, so a delivery
cut off mid-way is sent at most once more. Before each message the worker renews its
lease with a check that the row is still its own (the exact ``locked_until`` it wrote is
the fencing token), so a slow batch never sends a row another worker has taken over.

Failures are retried with exponential back-off (``backoff_base * 2**(attempts-1)``, with
jitter, at most ``backoff_max``); a permanent refusal (SMTP 5xx) or ``max_attempts``
failures end in ``failed`` with the reason in ``last_error``.

Without ``SMTP_URL`` each message is written as an ``.eml`` file to ``var/mail-spool/``,
which the demo page ``/demo/mail`` lists.
"""

from __future__ import annotations

import logging
import os
import random
import smtplib
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.policy import EmailPolicy
from email.utils import format_datetime, parseaddr
from pathlib import Path
from urllib.parse import unquote, urlsplit

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from notify.links import is_unsubscribed
from spatial.models import OutboxMessage, now_utc
from spatial.settings import Settings

log = logging.getLogger("civicpin.worker")
# Kinds sent whatever the recipient unsubscribed from: the answer to their own report, and
# a password reset link they asked for (mail about their account, not a newsletter).
UNSTOPPABLE = frozenset({"acknowledgement", "password_reset"})

# Only these stored headers reach the wire; the rest of the header set is ours.
PASSED_HEADERS = (
    "In-Reply-To",
    "References",
    "Reply-To",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Auto-Submitted",
    "X-Auto-Response-Suppress",
    "X-Civicpin-Kind",
    "X-Civicpin-Request",
)


# Headers of angle-bracketed URIs (RFC 2369). The standard library folds a long header by
# turning a token it cannot break into RFC 2047 encoded words, which a mail client cannot
# read as a URI; these go out as written, folded only at white space.
URI_HEADERS = frozenset({"list-unsubscribe", "list-unsubscribe-post"})


class _MailPolicy(EmailPolicy):
    """``email.policy.SMTP``, except that :data:`URI_HEADERS` are never encoded."""

    def _raw(self, name: str, value) -> str:
        words = str(value).split()
        lines, line = [], f"{name}:"
        for word in words:
            if len(line) + 1 + len(word) > self.max_line_length and line != f"{name}:":
                lines.append(line)
                line = ""
            line += f" {word}"
        lines.append(line)
        return self.linesep.join(lines) + self.linesep

    def fold(self, name, value):
        if name.lower() in URI_HEADERS:
            return self._raw(name, value)
        return super().fold(name, value)

    def fold_binary(self, name, value):
        if name.lower() in URI_HEADERS:
            return self._raw(name, value).encode("ascii", "surrogateescape")
        return super().fold_binary(name, value)


MAIL_POLICY = _MailPolicy(**SMTP_POLICY.__dict__)


@dataclass
class WorkerConfig:
    batch_size: int = 20
    lease_seconds: float = 120.0
    max_attempts: int = 8
    backoff_base: float = 30.0
    backoff_max: float = 3600.0
    poll_interval: float = 2.0
    smtp_timeout: float = 30.0


@dataclass
class BatchResult:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: BatchResult) -> None:
        self.sent += other.sent
        self.retrying += other.retrying
        self.failed += other.failed
        self.skipped += other.skipped
        self.errors += other.errors

    @property
    def claimed(self) -> int:
        return self.sent + self.retrying + self.failed + self.skipped


class DeliveryError(Exception):
    """A failed delivery; ``permanent`` ones are not retried."""

    def __init__(self, message: str, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


def spool_dir(settings: Settings) -> Path:
    return settings.var_dir / "mail-spool"


def envelope_sender(settings: Settings) -> str:
    return parseaddr(settings.mail_from)[1] or "noreply@localhost"


def build_email(msg: OutboxMessage, default_from: str, now: datetime | None = None) -> EmailMessage:
    """The RFC 5322 message of an outbox row (CRLF line ends, ready for SMTP)."""
    stored = {k.lower(): v for k, v in (msg.headers or {}).items()}
    em = EmailMessage(policy=MAIL_POLICY)
    em["From"] = stored.get("from") or default_from
    em["To"] = msg.to_addr
    em["Subject"] = msg.subject
    em["Date"] = format_datetime(now or now_utc())
    em["Message-ID"] = msg.message_id
    for name in PASSED_HEADERS:
        value = stored.get(name.lower())
        if value:
            em[name] = " ".join(str(value).split())
    em.set_content(msg.body_text)
    if msg.body_html:
        em.add_alternative(msg.body_html, subtype="html")
    return em


class SmtpTransport:
    """One SMTP connection per batch to ``smtp://``, ``smtps://`` or ``smtp+starttls://``."""

    def __init__(self, url: str, timeout: float = 30.0):
        parts = urlsplit(url)
        self.scheme = parts.scheme
        self.host = parts.hostname or "localhost"
        default_port = {"smtps": 465, "smtp+starttls": 587}.get(self.scheme, 25)
        self.port = parts.port or default_port
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.timeout = timeout
        self._conn: smtplib.SMTP | None = None

    def __repr__(self) -> str:
        return f"SMTP {self.host}:{self.port}"

    def _connect(self) -> smtplib.SMTP:
        if self.scheme == "smtps":
            conn = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        else:
            conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            if self.scheme == "smtp+starttls":
                conn.starttls(context=ssl.create_default_context())
        if self.user:
            conn.login(self.user, self.password or "")
        return conn

    def send(self, em: EmailMessage, envelope_from: str, to_addr: str) -> None:
        try:
            if self._conn is None:
                self._conn = self._connect()
            self._conn.send_message(em, from_addr=envelope_from, to_addrs=[to_addr])
        except smtplib.SMTPRecipientsRefused as exc:
            self.close()
            code, text = next(iter(exc.recipients.values()))
            raise DeliveryError(_smtp_text(code, text), permanent=500 <= code < 600) from None
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            self.close()
            raise DeliveryError(
                _smtp_text(exc.smtp_code, exc.smtp_error), permanent=500 <= exc.smtp_code < 600
            ) from None
        except smtplib.SMTPAuthenticationError as exc:
            self.close()
            reason = _smtp_text(exc.smtp_code, exc.smtp_error)
            raise DeliveryError(f"SMTP login refused: {reason}") from None
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise DeliveryError(f"{self!r}: {exc or type(exc).__name__}") from None

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                conn.close()


def _smtp_text(code: int, text) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {' '.join(str(text).split())}"


class SpoolTransport:
    """Writes each message as ``<time>-<id>.eml`` into a folder (the no-SMTP default)."""

    def __init__(self, folder: Path):
        self.folder = folder

    def __repr__(self) -> str:
        return f"spool {self.folder}"

    def send(self, em: EmailMessage, envelope_from: str, to_addr: str, name: str = "") -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".eml")
            with os.fdopen(fd, "wb") as fh:
                fh.write(em.as_bytes())
            os.replace(tmp, self.folder / name)
        except OSError as exc:
            raise DeliveryError(f"cannot write to the mail spool {self.folder}: {exc}") from None

    def close(self) -> None:
        pass


def make_transport(settings: Settings, cfg: WorkerConfig) -> SmtpTransport | SpoolTransport:
    if settings.smtp_url:
        return SmtpTransport(settings.smtp_url, timeout=cfg.smtp_timeout)
    return SpoolTransport(spool_dir(settings))


def backoff(attempts: int, cfg: WorkerConfig, rng: random.Random | None = None) -> float:
    """Seconds to wait after the ``attempts``-th failure (+-10 % jitter, capped)."""
    base = min(cfg.backoff_max, cfg.backoff_base * 2 ** max(0, attempts - 1))
    return base * (0.9 + 0.2 * (rng or random).random())


CLAIM_SQL = sa.text(
    """
    UPDATE outbox_message AS m
    SET status = 'sending', locked_until = :lease_end, attempts = m.attempts + 1
    FROM (
        SELECT id FROM outbox_message
        WHERE status IN ('pending', 'sending')
          AND next_attempt_at <= :now
          AND (locked_until IS NULL OR locked_until < :now)
        ORDER BY next_attempt_at, id
        LIMIT :n
        FOR UPDATE SKIP LOCKED
    ) AS due
    WHERE m.id = due.id
    RETURNING m.id
    """
)


def claim(
    sessions: sessionmaker[Session], cfg: WorkerConfig, now: datetime
) -> tuple[list[int], datetime]:
    """Lease up to ``batch_size`` due messages to this worker; returns (ids, lease end)."""
    # Microseconds make the lease end unique enough to serve as this claim's token.
    lease_end = now + timedelta(seconds=cfg.lease_seconds, microseconds=random.randint(1, 999))
    with sessions.begin() as session:
        ids = (
            session.execute(CLAIM_SQL, {"lease_end": lease_end, "now": now, "n": cfg.batch_size})
            .scalars()
            .all()
        )
    return sorted(ids), lease_end


def _renew(session: Session, msg_id: int, mine: datetime, new: datetime) -> bool:
    row = session.execute(
        sa.update(OutboxMessage)
        .where(
            OutboxMessage.id == msg_id,
            OutboxMessage.status == "sending",
            OutboxMessage.locked_until == mine,
        )
        .values(locked_until=new)
        .returning(OutboxMessage.id)
    ).first()
    return row is not None


def deliver_batch(
    sessions: sessionmaker[Session],
    settings: Settings,
    transport,
    cfg: WorkerConfig | None = None,
    now: datetime | None = None,
    stop: threading.Event | None = None,
) -> BatchResult:
    """Claim one batch and deliver it; returns what happened to each claimed message."""
    cfg = cfg or WorkerConfig()
    clock_offset = (now - now_utc()) if now is not None else timedelta(0)

    def clock() -> datetime:
        return now_utc() + clock_offset

    result = BatchResult()
    ids, lease = claim(sessions, cfg, clock())
    sender = envelope_sender(settings)
    try:
        for msg_id in ids:
            if stop is not None and stop.is_set():
                # Give the rest back at once rather than after the lease.
                with sessions.begin() as session:
                    session.execute(
                        sa.update(OutboxMessage)
                        .where(OutboxMessage.id == msg_id, OutboxMessage.locked_until == lease)
                        .values(
                            status="pending",
                            locked_until=None,
                            attempts=OutboxMessage.attempts - 1,
                        )
                    )
                continue
            new_lease = clock() + timedelta(seconds=cfg.lease_seconds)
            with sessions.begin() as session:
                if not _renew(session, msg_id, lease, new_lease):
                    result.skipped += 1
                    continue
                msg = session.get(OutboxMessage, msg_id)
                unsubscribed = msg.kind not in UNSTOPPABLE and is_unsubscribed(
                    session, msg.to_addr, msg.request_id, msg.kind, msg.jurisdiction_id
                )
                em = build_email(msg, settings.mail_from, now=clock())
                to_addr, attempts = msg.to_addr, msg.attempts
                name = f"{clock():%Y%m%d-%H%M%S}-{msg_id:08d}.eml"
            if unsubscribed:
                _finish(
                    sessions, msg_id, new_lease, "failed", "not sent: the recipient unsubscribed"
                )
                result.failed += 1
                continue
            try:
                if isinstance(transport, SpoolTransport):
                    transport.send(em, sender, to_addr, name=name)
                else:
                    transport.send(em, sender, to_addr)
            except DeliveryError as exc:
                reason = str(exc)
                result.errors.append(reason)
                if exc.permanent or attempts >= cfg.max_attempts:
                    _finish(sessions, msg_id, new_lease, "failed", reason)
                    result.failed += 1
                    log.warning("outbox %s to %s failed for good: %s", msg_id, to_addr, reason)
                else:
                    retry_at = clock() + timedelta(seconds=backoff(attempts, cfg))
                    _finish(sessions, msg_id, new_lease, "pending", reason, retry_at=retry_at)
                    result.retrying += 1
                    log.info("outbox %s to %s: %s; retry at %s", msg_id, to_addr, reason, retry_at)
                continue
            _finish(sessions, msg_id, new_lease, "sent", None, sent_at=clock())
            result.sent += 1
            log.info("outbox %s sent to %s via %r", msg_id, to_addr, transport)
    finally:
        transport.close()
    return result


def _finish(
    sessions: sessionmaker[Session],
    msg_id: int,
    lease: datetime,
    status: str,
    error: str | None,
    retry_at: datetime | None = None,
    sent_at: datetime | None = None,
) -> None:
    values: dict = {"status": status, "locked_until": None, "last_error": error}
    if retry_at is not None:
        values["next_attempt_at"] = retry_at
    if sent_at is not None:
        values["sent_at"] = sent_at
    with sessions.begin() as session:
        session.execute(
            sa.update(OutboxMessage)
            .where(OutboxMessage.id == msg_id, OutboxMessage.locked_until == lease)
            .values(**values)
        )


def run_once(
    sessions: sessionmaker[Session],
    settings: Settings,
    cfg: WorkerConfig | None = None,
    now: datetime | None = None,
    transport=None,
    limit: int | None = None,
) -> BatchResult:
    """Deliver every message due now (batch after batch, at most ``limit``), then return."""
    cfg = cfg or WorkerConfig()
    total = BatchResult()
    while limit is None or total.claimed < limit:
        result = deliver_batch(
            sessions, settings, transport or make_transport(settings, cfg), cfg, now=now
        )
        total.add(result)
        if result.claimed == 0 or (result.sent == 0 and result.retrying > 0):
            # Nothing due, or the server is down: stop rather than spin on failures.
            break
    return total


# How often the worker asks whether a daily job is due (the job itself decides, from the
# database, so that several workers run it once a day between them).
DAILY_CHECK_SECONDS = 600.0


def _run_daily(daily: Callable[[], object]) -> None:
    try:
        daily()
    except Exception:  # noqa: BLE001 - a failed daily job must never stop delivery
        log.exception("outbox worker: the daily job failed; it is tried again later")


def run_forever(
    sessions: sessionmaker[Session],
    settings: Settings,
    cfg: WorkerConfig | None = None,
    stop: threading.Event | None = None,
    daily: Callable[[], object] | None = None,
    jobs: Callable[[], bool] | None = None,
) -> BatchResult:
    """Poll and deliver until ``stop`` is set (SIGTERM/SIGINT in the CLI).

    ``daily`` (the retention enforcement, wired by the CLI) is called every
    :data:`DAILY_CHECK_SECONDS` between batches; it must find out itself whether its
    day's work is due. ``jobs`` (the re-routing after a publish, wired by the CLI) does
    one short step of background work before each batch, True while it has more, so mail
    keeps flowing during a long job.
    """
    cfg = cfg or WorkerConfig()
    stop = stop or threading.Event()
    total = BatchResult()
    next_daily = 0.0
    while not stop.is_set():
        if daily is not None and time.monotonic() >= next_daily:
            next_daily = time.monotonic() + DAILY_CHECK_SECONDS
            _run_daily(daily)
        busy = jobs is not None and _run_step(jobs)
        try:
            result = deliver_batch(
                sessions, settings, make_transport(settings, cfg), cfg, stop=stop
            )
        except sa.exc.OperationalError as exc:
            log.warning("outbox worker: database unavailable (%s); retrying", exc.orig)
            stop.wait(max(cfg.poll_interval, 5))
            continue
        total.add(result)
        if busy:
            continue
        if result.claimed == 0 or (result.sent == 0 and result.retrying > 0):
            stop.wait(cfg.poll_interval)
    return total


def _run_step(step: Callable[[], bool]) -> bool:
    try:
        return bool(step())
    except Exception:  # noqa: BLE001 - background work must never stop delivery
        log.exception("worker: background job step failed")
        return False


def outbox_counts(session: Session) -> dict[str, int]:
    rows = session.execute(
        sa.select(OutboxMessage.status, sa.func.count()).group_by(OutboxMessage.status)
    ).all()
    return {status: n for status, n in rows}


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> bool:
    """True once something accepts TCP connections on host:port (for tests and scripts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False
