"""Retention: a city keeps residents' personal data for a set time after a request closes.

Four periods per city, in days after a request is closed (``None``: kept):
- ``contact_days``: the reporter's name, e-mail, phone, device and account ids; followers'
  addresses; survey-link addresses; unsubscribes about the request; every stored copy of
  mail about it (addresses, subjects and bodies; a message not yet sent is cancelled);
  e-mail addresses written in its internal notes. Copies of mail sent about no request
  are measured from when they were written;
- ``answers_days``: the answers to the category's questions, which only the reporter and
  staff see;
- ``raw_mail_days``: what the e-mail intake kept of the mail about it (the raw message,
  sender, subject, detail); mail that became no request is measured from when it arrived;
- ``originals_days``: the private photo originals (with their EXIF). The EXIF-free public
  copies stay.

Nothing that statistics read changes: the request, its times, status, place, category and
routing, its follower count and its ratings stay. Each request changed gets one internal
event (actor "retention policy") naming what was removed, never the data itself.
:func:`enforce` is idempotent: a second run finds nothing left to remove.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from spatial.cities import get_city
from spatial.errors import InvalidInput
from spatial.models import CLOSED_STATUSES, Jurisdiction, Photo, RequestEvent, now_utc
from spatial.models_ops import RetentionPolicy

# The periods, with the words a person reads for each.
PERIODS = {
    "contact_days": "contact data",
    "answers_days": "private answers",
    "raw_mail_days": "inbound mail",
    "originals_days": "photo originals",
}
# A hundred years: beyond that a number is a typing mistake, not a policy.
MAX_DAYS = 36_500
ACTOR = "retention policy"
EVENT_KIND = "retention"
# What a removed address leaves behind in a note.
ADDRESS_REMOVED = "[address removed]"
# An e-mail address inside text, and the label of an event the e-mail intake wrote.
EMAIL_RE = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+"
MAIL_ACTOR_RE = rf"^e-mail {EMAIL_RE}$"
# The daily run: a city is enforced again once this much time has passed.
EVERY = timedelta(days=1)


def parse_days(value: object, name: str, field: str | None = None) -> int | None:
    """A retention period from outside: a whole number of days from 1 to 36500, or
    ``None``/empty/"keep" for "kept". Anything else raises :class:`InvalidInput`, whose
    message starts with ``name`` and whose field is ``field`` (default: ``name``)."""
    field = field or name
    text = "" if value is None else str(value).strip()
    if text == "" or text.lower() == "keep":
        return None
    try:
        days = int(text)
    except ValueError:
        raise InvalidInput(
            f"{name}: {text[:40]!r} is not a whole number of days", field=field
        ) from None
    if days < 1:
        raise InvalidInput(f"{name}: a period is at least 1 day, not {days}", field=field)
    if days > MAX_DAYS:
        raise InvalidInput(f"{name}: a period is at most {MAX_DAYS} days", field=field)
    return days


def get_policy(session: Session, city: Jurisdiction) -> RetentionPolicy | None:
    return session.get(RetentionPolicy, city.id)


def set_policy(
    session: Session,
    city: Jurisdiction,
    periods: dict[str, object],
    *,
    updated_by: str | None = None,
    now: datetime | None = None,
) -> RetentionPolicy:
    """Validate every period in ``periods`` (keys of :data:`PERIODS`; a key left out keeps
    its value) and store them. Raises before writing anything if one is bad."""
    unknown = set(periods) - set(PERIODS)
    if unknown:
        raise InvalidInput(f"unknown retention period {sorted(unknown)[0]!r}")
    clean = {name: parse_days(value, name) for name, value in periods.items()}
    policy = get_policy(session, city)
    if policy is None:
        policy = RetentionPolicy(jurisdiction_id=city.id)
        session.add(policy)
    for name, days in clean.items():
        setattr(policy, name, days)
    policy.updated_at = now or now_utc()
    policy.updated_by = updated_by
    session.flush()
    return policy


def describe(policy: RetentionPolicy | None) -> str:
    """One line: each kind of data and how long it is kept."""
    parts = []
    for name, label in PERIODS.items():
        days = getattr(policy, name) if policy is not None else None
        parts.append(f"{label} {'kept' if days is None else f'{days} days'}")
    return "; ".join(parts) + " (after a request is closed)"


@dataclass
class RequestChange:
    """What retention removed (or would remove) from one request."""

    request_id: int
    public_id: str
    removed: list[str] = field(default_factory=list)


@dataclass
class RetentionResult:
    city: str
    dry_run: bool
    requests: list[RequestChange] = field(default_factory=list)
    # Mail the intake recorded that became no request (rejected, unknown recipient...).
    unlinked_mail: int = 0
    # Copies of mail sent about no request (an answer to mail that became none).
    unlinked_sent: int = 0
    # Original files no photo row needs any more; deleted after commit.
    original_keys: list[str] = field(default_factory=list)

    def count(self, label: str) -> int:
        return sum(1 for r in self.requests if label in r.removed)

    def summary(self) -> str:
        """One line, e.g. "la: removed from 3 requests: contact data (3), private answers (1)"."""
        verb = "would remove" if self.dry_run else "removed"
        parts = []
        if self.requests:
            n = len(self.requests)
            counts = ", ".join(
                f"{label} ({self.count(label)})" for label in PERIODS.values() if self.count(label)
            )
            parts.append(f"from {n} request{'s' if n != 1 else ''}: {counts}")
        if self.unlinked_mail:
            parts.append(f"inbound mail that became no request ({self.unlinked_mail})")
        if self.unlinked_sent:
            parts.append(f"copies of mail sent about no request ({self.unlinked_sent})")
        if not parts:
            return f"{self.city}: nothing to remove"
        return f"{self.city}: {verb} " + "; ".join(parts)


# Each statement works on the requests of a city closed before a cutoff. A reopened
# request is open again, so its status, not only closed_at, decides.
_CONTACT_SQL = (
    # The reporter's own fields.
    """UPDATE service_request SET contact_name = NULL, contact_email = NULL,
        contact_phone = NULL, device_id = NULL, account_id = NULL
    WHERE id IN (
        SELECT r.id FROM service_request r
        WHERE r.jurisdiction_id = :city AND r.closed_at < :cutoff AND r.status IN :closed
    ) AND (contact_name IS NOT NULL OR contact_email IS NOT NULL
        OR contact_phone IS NOT NULL OR device_id IS NOT NULL OR account_id IS NOT NULL)
    RETURNING id""",
    # Followers stay (each counts as support); their address goes.
    """UPDATE follower SET email = NULL
    WHERE request_id IN (
        SELECT r.id FROM service_request r
        WHERE r.jurisdiction_id = :city AND r.closed_at < :cutoff AND r.status IN :closed
    ) AND email IS NOT NULL RETURNING request_id""",
    """UPDATE survey_token SET email = NULL
    WHERE request_id IN (
        SELECT r.id FROM service_request r
        WHERE r.jurisdiction_id = :city AND r.closed_at < :cutoff AND r.status IN :closed
    ) AND email IS NOT NULL RETURNING request_id""",
    """DELETE FROM mail_unsubscribe
    WHERE request_id IN (
        SELECT r.id FROM service_request r
        WHERE r.jurisdiction_id = :city AND r.closed_at < :cutoff AND r.status IN :closed
    ) RETURNING request_id""",
    # Every stored copy of mail about the request; one not yet sent is cancelled.
    """UPDATE outbox_message SET to_addr = '', subject = '', body_text = '', body_html = NULL,
        headers = NULL,
        status = CASE WHEN status IN ('pending', 'sending') THEN 'failed' ELSE status END,
        last_error = CASE WHEN status IN ('pending', 'sending')
            THEN 'cancelled: its contact data was removed after the retention period'
            ELSE last_error END,
        locked_until = NULL
    WHERE request_id IN (
        SELECT r.id FROM service_request r
        WHERE r.jurisdiction_id = :city AND r.closed_at < :cutoff AND r.status IN :closed
    ) AND (to_addr <> '' OR body_text <> '')
    RETURNING request_id""",
    # Addresses typed or quoted into the request's events (an e-mailed note's sender).
    """UPDATE request_event SET
        note = regexp_replace(note, :email_re, :removed, 'g'),
        actor_label = regexp_replace(actor_label, :mail_actor_re, 'e-mail')
    WHERE request_id IN (
        SELECT r.id FROM service_request r
        WHERE r.jurisdiction_id = :city AND r.closed_at < :cutoff AND r.status IN :closed
    ) AND (note ~ :email_re OR actor_label ~ :mail_actor_re)
    RETURNING request_id""",
)

_ANSWERS_SQL = (
    """UPDATE service_request SET attributes = NULL
    WHERE id IN (
        SELECT r.id FROM service_request r
        WHERE r.jurisdiction_id = :city AND r.closed_at < :cutoff AND r.status IN :closed
    ) AND attributes IS NOT NULL RETURNING id""",
)

_RAW_MAIL_SQL = (
    """UPDATE inbound_email SET mail_from = NULL, subject = NULL, detail = NULL, raw = NULL
    WHERE request_id IN (
        SELECT r.id FROM service_request r
        WHERE r.jurisdiction_id = :city AND r.closed_at < :cutoff AND r.status IN :closed
    ) AND (mail_from IS NOT NULL OR subject IS NOT NULL
        OR detail IS NOT NULL OR raw IS NOT NULL)
    RETURNING request_id""",
)

_UNLINKED_MAIL_SQL = """
    UPDATE inbound_email SET mail_from = NULL, subject = NULL, detail = NULL, raw = NULL
    WHERE jurisdiction_id = :city AND request_id IS NULL AND received_at < :cutoff
        AND (mail_from IS NOT NULL OR subject IS NOT NULL OR detail IS NOT NULL
            OR raw IS NOT NULL)
    RETURNING id"""

# Mail sent about no request is measured from when it was written.
_UNLINKED_SENT_SQL = """
    UPDATE outbox_message SET to_addr = '', subject = '', body_text = '', body_html = NULL,
        headers = NULL
    WHERE jurisdiction_id = :city AND request_id IS NULL AND created_at < :cutoff
        AND status IN ('sent', 'failed') AND (to_addr <> '' OR body_text <> '')
    RETURNING id"""

_ORIGINALS_SQL = """
    UPDATE photo SET original_removed_at = :now
    WHERE request_id IN (
        SELECT r.id FROM service_request r
        WHERE r.jurisdiction_id = :city AND r.closed_at < :cutoff AND r.status IN :closed
    ) AND original_removed_at IS NULL
    RETURNING request_id, original_key"""


def _run(session: Session, statements: Iterable[str], params: dict) -> set[int]:
    changed: set[int] = set()
    for sql in statements:
        stmt = sa.text(sql).bindparams(sa.bindparam("closed", expanding=True))
        changed.update(row[0] for row in session.execute(stmt, params) if row[0] is not None)
    return changed


@contextmanager
def in_savepoint(session: Session, dry_run: bool) -> Iterator[None]:
    """Run the block in a savepoint: kept, or rolled back for a dry run or on an error,
    so that a dry run does exactly the work it reports and leaves nothing behind."""
    savepoint = session.begin_nested()
    try:
        yield
    except BaseException:
        savepoint.rollback()
        raise
    if dry_run:
        savepoint.rollback()
    else:
        savepoint.commit()


def record_removals(
    session: Session, notes: dict[int, str], *, actor: str, kind: str, now: datetime
) -> list[tuple[int, str]]:
    """One internal event per request of ``notes`` (request id -> what was removed), by
    ``actor``; returns (id, public id) of those requests in id order."""
    rows = session.execute(
        sa.text(
            "SELECT id, public_id, department_id FROM service_request "
            "WHERE id = ANY(:ids) ORDER BY id"
        ),
        {"ids": sorted(notes)},
    ).all()
    for request_id, _public_id, department_id in rows:
        session.add(
            RequestEvent(
                request_id=request_id,
                at=now,
                actor_label=actor,
                kind=kind,
                note=notes[request_id],
                public=False,
                department_id=department_id,
            )
        )
    session.flush()
    return [(request_id, public_id) for request_id, public_id, _ in rows]


def unneeded_originals(session: Session, keys: Iterable[str]) -> list[str]:
    """Of ``keys``, those no photo still needs: originals are stored by content, so two
    requests with the same photo share one file, removed only when both let it go."""
    keys = sorted(set(keys))
    if not keys:
        return []
    needed = set(
        session.scalars(
            sa.select(Photo.original_key).where(
                Photo.original_key.in_(keys), Photo.original_removed_at.is_(None)
            )
        )
    )
    return [k for k in keys if k not in needed]


def delete_original_files(media_dir: Path, keys: Iterable[str]) -> int:
    """Delete the original files named by ``keys`` under ``media_dir``; call it after the
    transaction that marked them removed has committed. Returns how many were there."""
    removed = 0
    root = media_dir.resolve()
    for key in keys:
        path = (root / key).resolve()
        if not path.is_relative_to(root / "private"):
            continue  # only private originals, whatever a row says
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    return removed


def enforce(
    session: Session, city: Jurisdiction, now: datetime | None = None, dry_run: bool = False
) -> RetentionResult:
    """Remove what ``city``'s periods no longer allow to keep, as of ``now``.

    Runs in the caller's transaction (a dry run in a savepoint that is rolled back) and
    returns what it removed per request; the caller deletes ``original_keys`` from the
    media folder after commit (:func:`delete_original_files`).
    """
    now = now or now_utc()
    result = RetentionResult(city=city.slug, dry_run=dry_run)
    policy = get_policy(session, city)
    if policy is None:
        return result
    work = (
        ("contact_days", _CONTACT_SQL),
        ("answers_days", _ANSWERS_SQL),
        ("raw_mail_days", _RAW_MAIL_SQL),
    )
    closed = sorted(s.value for s in CLOSED_STATUSES)
    with in_savepoint(session, dry_run):
        removed: dict[int, list[str]] = {}
        for name, statements in work:
            days = getattr(policy, name)
            if days is None:
                continue
            params = {
                "city": city.id,
                "cutoff": now - timedelta(days=days),
                "closed": closed,
                "removed": ADDRESS_REMOVED,
                "email_re": EMAIL_RE,
                "mail_actor_re": MAIL_ACTOR_RE,
            }
            for request_id in _run(session, statements, params):
                removed.setdefault(request_id, []).append(PERIODS[name])
            if name == "contact_days":
                result.unlinked_sent = len(
                    session.execute(sa.text(_UNLINKED_SENT_SQL), params).all()
                )
            if name == "raw_mail_days":
                result.unlinked_mail = len(
                    session.execute(sa.text(_UNLINKED_MAIL_SQL), params).all()
                )
        if policy.originals_days is not None:
            params = {
                "city": city.id,
                "cutoff": now - timedelta(days=policy.originals_days),
                "closed": closed,
                "now": now,
            }
            stmt = sa.text(_ORIGINALS_SQL).bindparams(sa.bindparam("closed", expanding=True))
            rows = session.execute(stmt, params).all()
            for request_id, _key in rows:
                labels = removed.setdefault(request_id, [])
                if PERIODS["originals_days"] not in labels:
                    labels.append(PERIODS["originals_days"])
            result.original_keys = unneeded_originals(session, (key for _, key in rows))
        if removed:
            labels = {
                request_id: [label for label in PERIODS.values() if label in what]
                for request_id, what in removed.items()
            }
            notes = {
                request_id: "Removed after the city's retention period: " + ", ".join(names)
                for request_id, names in labels.items()
            }
            for request_id, public_id in record_removals(
                session, notes, actor=ACTOR, kind=EVENT_KIND, now=now
            ):
                result.requests.append(RequestChange(request_id, public_id, labels[request_id]))
    return result


def run_city(
    sessions: sessionmaker[Session],
    slug: str | None,
    media_dir: Path,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
) -> RetentionResult:
    """Enforce one city's periods in one transaction, then delete the original files it
    let go (the command line's ``privacy enforce``)."""
    with sessions.begin() as session:
        city = get_city(session, slug)
        result = enforce(session, city, now=now, dry_run=dry_run)
        if not dry_run:
            policy = get_policy(session, city)
            if policy is not None:
                policy.last_enforced_at = now or now_utc()
    if not dry_run:
        delete_original_files(media_dir, result.original_keys)
    return result


# One worker claims a city's daily run: the row is updated only if the last run is a day
# old, and the update's row lock makes a second worker wait, then find it done.
_CLAIM_SQL = sa.text(
    """UPDATE retention_policy SET last_enforced_at = :now
    WHERE jurisdiction_id = :city
        AND (last_enforced_at IS NULL OR last_enforced_at <= :due)
        AND num_nonnulls(contact_days, answers_days, raw_mail_days, originals_days) > 0
    RETURNING jurisdiction_id"""
)


def run_due(
    sessions: sessionmaker[Session], media_dir: Path, now: datetime | None = None
) -> list[RetentionResult]:
    """The worker's daily job: enforce every city whose last run is a day old. The claim
    and the work share a transaction, so a failed run is tried again by the next worker."""
    now = now or now_utc()
    with sessions() as session:
        city_ids = session.scalars(
            sa.select(RetentionPolicy.jurisdiction_id).where(
                sa.or_(
                    RetentionPolicy.last_enforced_at.is_(None),
                    RetentionPolicy.last_enforced_at <= now - EVERY,
                )
            )
        ).all()
    results = []
    for city_id in city_ids:
        with sessions.begin() as session:
            claimed = session.execute(
                _CLAIM_SQL, {"now": now, "city": city_id, "due": now - EVERY}
            ).scalar()
            if claimed is None:
                continue
            result = enforce(session, session.get(Jurisdiction, city_id), now=now)
        delete_original_files(media_dir, result.original_keys)
        results.append(result)
    return results
