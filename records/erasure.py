"""Erasure: a person asks the city to remove their e-mail address and what comes with it.

:func:`erase` matches the address exactly, ignoring case, and removes from the city (or
every city):
- requests they reported: the contact name, e-mail and phone (and an Open311 account id
  that is the address); the request itself, its place, times, status and answers stay,
  so statistics stay true;
- follows: the address (the follow still counts as support);
- survey links sent to it, and unsubscribes (see below);
- mail: every stored copy addressed to it (address, subject, body, headers); one not
  yet sent is cancelled;
- mail they sent: the intake's record of sender, subject and detail, and the raw message
  (also the raw copy of other mail that names the address);
- the address wherever it was written into text (notes, descriptions, answers, other
  mail, comments): replaced by ``[erased]``;
- the private originals of photos they reported (the EXIF-free public copies stay);
- with no SMTP server set, the files of the local mail spool that name the address
  (:func:`spooled_mail`; the spool is not per city).

A staff account with the address is not changed: it is named in the result, to be
deactivated in the admin pages, since the audit trail refers to it.

Unsubscribes are deleted, not kept as a hash: a hash of an address is still the address
to anyone who tries a list of addresses, and with the address gone from every request and
follow nothing is sent to it any more. If the person later gives the address again (a new
report or follow), that is a new choice. An erasure in one city (``city``) keeps the
unsubscribes about other cities and about every city, since other cities still hold the
address.

Every request touched gets one internal event (actor "erasure request") that says what
was removed, never the address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, policy
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from records.retention import in_savepoint, record_removals, unneeded_originals
from spatial.errors import InvalidInput, NotFound
from spatial.models import Jurisdiction, User, now_utc

ACTOR = "erasure request"
EVENT_KIND = "erasure"
ERASED = "[erased]"
_ADDRESS = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")


def check_address(value: str) -> str:
    """The address, trimmed and lower-cased, or :class:`InvalidInput`."""
    address = (value or "").strip().lower()
    if not address or len(address) > 254 or not _ADDRESS.match(address):
        raise InvalidInput(f"not an e-mail address: {(value or '').strip()[:80]!r}", field="email")
    return address


def _pattern(address: str) -> str:
    """A PostgreSQL regular expression for ``address`` as a whole address inside text:
    ``bob@x.org`` is not found in ``jimbob@x.org`` or ``bob@x.org.uk``."""
    body = "".join(c if c.isalnum() else "\\" + c for c in address)
    return rf"(?<![A-Za-z0-9._%+-]){body}(?![A-Za-z0-9_-]|\.[A-Za-z0-9])"


def spooled_mail(spool: Path, address: str) -> list[Path]:
    """The files of the local mail spool (where mail goes when no SMTP server is set)
    that name ``address`` in a header or a text part, decoded as a mail client would."""
    if not spool.is_dir():
        return []
    body = re.escape(address)
    found = re.compile(
        rf"(?<![A-Za-z0-9._%+-]){body}(?![A-Za-z0-9_-]|\.[A-Za-z0-9])", re.IGNORECASE
    )
    out = []
    for path in sorted(spool.glob("*.eml")):
        try:
            msg = message_from_bytes(path.read_bytes(), policy=policy.default)
        except OSError:
            continue
        texts = [str(value) for value in msg.values()]
        for part in msg.walk():
            if part.get_content_maintype() == "text":
                try:
                    texts.append(part.get_content())
                except (LookupError, ValueError):
                    texts.append(part.get_payload(decode=True).decode("utf-8", "replace"))
        if any(found.search(text) for text in texts):
            out.append(path)
    return out


@dataclass
class ErasureResult:
    address: str
    dry_run: bool
    # (what, how many) in the order they are printed.
    changes: list[tuple[str, int]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # public ids of requests touched
    staff_account: bool = False
    original_keys: list[str] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return any(n for _, n in self.changes) or self.staff_account

    def lines(self) -> list[str]:
        verb = "would remove" if self.dry_run else "removed"
        out = [
            f"{self.address}: {verb}" + (" (dry run: nothing was changed)" if self.dry_run else "")
        ]
        out += [f"  {what}: {n}" for what, n in self.changes if n]
        if self.requests:
            out.append(f"  requests touched: {', '.join(self.requests)}")
        if self.staff_account:
            out.append(f"  {self.address} is a staff account: deactivate it in the admin pages")
        return out


# Each step: (what a person reads, SQL). ``:city`` is NULL for every city; mail of no
# city (to or from an address no city has) counts as every city's. Each statement
# returns the id of the request it touched (or NULL).

_PHOTOS_SQL = """
    UPDATE photo p SET original_removed_at = :now
    FROM service_request r
    WHERE p.request_id = r.id AND lower(r.contact_email) = :address
        AND (CAST(:city AS integer) IS NULL OR r.jurisdiction_id = CAST(:city AS integer))
        AND p.stage = 'report' AND p.original_removed_at IS NULL
    RETURNING p.request_id, p.original_key"""

_STEPS = (
    (
        "reporter's contact data on requests",
        """UPDATE service_request SET contact_name = NULL, contact_email = NULL,
            contact_phone = NULL,
            account_id = CASE WHEN lower(account_id) = :address THEN NULL ELSE account_id END
        WHERE lower(contact_email) = :address AND (CAST(:city AS integer) IS NULL OR jurisdiction_id = CAST(:city AS integer))
        RETURNING id""",
    ),
    (
        "Open311 account ids",
        """UPDATE service_request SET account_id = NULL
        WHERE lower(account_id) = :address AND (CAST(:city AS integer) IS NULL OR jurisdiction_id = CAST(:city AS integer))
        RETURNING id""",
    ),
    (
        "follows",
        """UPDATE follower SET email = NULL
        WHERE lower(email) = :address AND (CAST(:city AS integer) IS NULL OR request_id IN
                (SELECT id FROM service_request WHERE jurisdiction_id = CAST(:city AS integer)))
        RETURNING request_id""",
    ),
    (
        "survey links",
        """UPDATE survey_token SET email = NULL
        WHERE lower(email) = :address AND (CAST(:city AS integer) IS NULL OR request_id IN
                (SELECT id FROM service_request WHERE jurisdiction_id = CAST(:city AS integer)))
        RETURNING request_id""",
    ),
    (
        "unsubscribes",
        # With a city, only that city's: a wish about every city keeps other cities quiet.
        """DELETE FROM mail_unsubscribe
        WHERE lower(email) = :address
            AND (CAST(:city AS integer) IS NULL OR jurisdiction_id = CAST(:city AS integer)
                OR request_id IN (SELECT id FROM service_request
                    WHERE jurisdiction_id = CAST(:city AS integer)))
        RETURNING request_id""",
    ),
    (
        "messages not yet sent (cancelled)",
        """UPDATE outbox_message SET to_addr = '', subject = '', body_text = '',
            body_html = NULL, headers = NULL, status = 'failed', locked_until = NULL,
            last_error = 'cancelled: the recipient asked for their address to be erased'
        WHERE lower(to_addr) = :address AND status IN ('pending', 'sending')
            AND (CAST(:city AS integer) IS NULL OR jurisdiction_id IS NULL
                OR jurisdiction_id = CAST(:city AS integer))
        RETURNING request_id""",
    ),
    (
        "copies of messages sent",
        """UPDATE outbox_message SET to_addr = '', subject = '', body_text = '',
            body_html = NULL, headers = NULL
        WHERE lower(to_addr) = :address AND (CAST(:city AS integer) IS NULL OR jurisdiction_id IS NULL
                OR jurisdiction_id = CAST(:city AS integer))
        RETURNING request_id""",
    ),
    (
        "other messages naming the address",
        """UPDATE outbox_message SET
            subject = regexp_replace(subject, :pattern, :erased, 'gi'),
            body_text = regexp_replace(body_text, :pattern, :erased, 'gi'),
            body_html = regexp_replace(body_html, :pattern, :erased, 'gi'),
            headers = CAST(regexp_replace(CAST(headers AS text), :pattern, :erased, 'gi')
                AS jsonb),
            last_error = regexp_replace(last_error, :pattern, :erased, 'gi')
        WHERE (CAST(:city AS integer) IS NULL OR jurisdiction_id IS NULL
                OR jurisdiction_id = CAST(:city AS integer))
            AND (subject ~* :pattern OR body_text ~* :pattern OR body_html ~* :pattern
                OR CAST(headers AS text) ~* :pattern OR last_error ~* :pattern)
        RETURNING request_id""",
    ),
    (
        "mail received from the address",
        """UPDATE inbound_email SET mail_from = NULL, subject = NULL, detail = NULL,
            raw = NULL
        WHERE (lower(mail_from) = :address OR mail_from ~* :pattern)
            AND (CAST(:city AS integer) IS NULL OR jurisdiction_id IS NULL
                OR jurisdiction_id = CAST(:city AS integer))
        RETURNING request_id""",
    ),
    (
        "other received mail naming the address",
        """UPDATE inbound_email SET
            rcpt_to = regexp_replace(rcpt_to, :pattern, :erased, 'gi'),
            subject = regexp_replace(subject, :pattern, :erased, 'gi'),
            detail = regexp_replace(detail, :pattern, :erased, 'gi'),
            raw = CASE WHEN encode(raw, 'escape') ~* :pattern THEN NULL ELSE raw END,
            message_id = CASE WHEN message_id ~* :pattern
                THEN '<erased-' || id || '@civicpin.invalid>' ELSE message_id END
        WHERE (CAST(:city AS integer) IS NULL OR jurisdiction_id IS NULL
                OR jurisdiction_id = CAST(:city AS integer))
            AND (rcpt_to ~* :pattern OR subject ~* :pattern OR detail ~* :pattern
                OR message_id ~* :pattern OR encode(raw, 'escape') ~* :pattern)
        RETURNING request_id""",
    ),
    (
        "notes and history entries naming the address",
        """UPDATE request_event SET
            note = regexp_replace(note, :pattern, :erased, 'gi'),
            actor_label = regexp_replace(actor_label, :pattern, :erased, 'gi'),
            from_value = regexp_replace(from_value, :pattern, :erased, 'gi'),
            to_value = regexp_replace(to_value, :pattern, :erased, 'gi')
        WHERE (CAST(:city AS integer) IS NULL OR request_id IN
                (SELECT id FROM service_request WHERE jurisdiction_id = CAST(:city AS integer)))
            AND (note ~* :pattern OR actor_label ~* :pattern OR from_value ~* :pattern
                OR to_value ~* :pattern)
        RETURNING request_id""",
    ),
    (
        "request texts naming the address",
        """UPDATE service_request SET
            description = regexp_replace(description, :pattern, :erased, 'gi'),
            public_description = regexp_replace(public_description, :pattern, :erased, 'gi'),
            address = regexp_replace(address, :pattern, :erased, 'gi'),
            close_reason = regexp_replace(close_reason, :pattern, :erased, 'gi'),
            attributes = CAST(regexp_replace(CAST(attributes AS text), :pattern, :erased, 'gi')
                AS jsonb)
        WHERE (CAST(:city AS integer) IS NULL OR jurisdiction_id = CAST(:city AS integer))
            AND (description ~* :pattern OR public_description ~* :pattern
                OR address ~* :pattern OR close_reason ~* :pattern
                OR CAST(attributes AS text) ~* :pattern)
        RETURNING id""",
    ),
    (
        "survey comments naming the address",
        """UPDATE survey_response SET comment = regexp_replace(comment, :pattern, :erased, 'gi')
        WHERE comment ~* :pattern AND (CAST(:city AS integer) IS NULL OR request_id IN
                (SELECT id FROM service_request WHERE jurisdiction_id = CAST(:city AS integer)))
        RETURNING request_id""",
    ),
)


def erase(
    session: Session,
    email: str,
    city: Jurisdiction | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> ErasureResult:
    """Remove ``email`` from ``city`` (or every city), in the caller's transaction.

    Raises :class:`InvalidInput` for something that is not an address and
    :class:`NotFound` ("no data held for ...") when nothing holds it; then nothing is
    changed. A dry run does the same work in a savepoint and rolls it back. The caller
    deletes ``original_keys`` from the media folder after commit
    (:func:`records.retention.delete_original_files`).
    """
    address = check_address(email)
    now = now or now_utc()
    result = ErasureResult(address=address, dry_run=dry_run)
    params = {
        "address": address,
        "pattern": _pattern(address),
        "erased": ERASED,
        "city": city.id if city is not None else None,
        "now": now,
    }
    with in_savepoint(session, dry_run):
        touched: dict[int, list[str]] = {}
        # Photos first: they are found through the reporter's address.
        rows = session.execute(sa.text(_PHOTOS_SQL), params).all()
        for request_id, _key in rows:
            touched.setdefault(request_id, []).append("photo originals")
        result.original_keys = unneeded_originals(session, (key for _, key in rows))
        photo_count = len(rows)
        for what, sql in _STEPS:
            ids = [row[0] for row in session.execute(sa.text(sql), params)]
            result.changes.append((what, len(ids)))
            for request_id in ids:
                if request_id is not None and what not in touched.setdefault(request_id, []):
                    touched[request_id].append(what)
        result.changes.append(("photo originals", photo_count))
        result.staff_account = (
            session.scalar(sa.select(User.id).where(sa.func.lower(User.email) == address))
            is not None
        )
        if not result.found:
            raise NotFound(f"no data held for {address}")
        if touched:
            notes = {
                request_id: "One person's personal data removed at their request: "
                + ", ".join(what)
                for request_id, what in touched.items()
            }
            for _request_id, public_id in record_removals(
                session, notes, actor=ACTOR, kind=EVENT_KIND, now=now
            ):
                result.requests.append(public_id)
    return result
