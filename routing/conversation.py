"""The reporter's side of the conversation on a request: their messages, and reopening.

Staff write through :mod:`routing.actions` (``reply`` is public and mailed, ``add_note``
internal). The reporter writes here, from the tracking page opened with their private
link or by replying to any of our e-mails (``intake.email_intake``); the caller has
checked that it is the reporter (the token, or a verified sender). A message is an
internal event (kind ``message``, ``actor_label`` "Reporter"): staff and the reporter's
own page show it, the public page and the API never do.

Reopening ("not fixed") is allowed for ``reopen_days`` (per city) after a request was
resolved, closed or could not be fixed. It puts the request back in its department's and
crew's queue as new, tells the crew and the department, and is a public ``reopen`` event
that the scorecards count.

A request is *archived* when it is closed and its reopen window has passed, or when it was
merged into another as a duplicate: nothing more can be written to it, and its reporter is
asked to report the problem again.

Like the staff actions these functions validate before writing, write events, queue
e-mails in the caller's transaction and never commit.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from notify import messages
from spatial.accounts import ROLE_IMPLIES
from spatial.errors import InvalidInput
from spatial.models import (
    OPEN_STATUSES,
    Jurisdiction,
    RequestEvent,
    ServiceRequest,
    Status,
    User,
    now_utc,
)

# As long as a staff reply: a letter, not a book.
MAX_MESSAGE = 4000
REPORTER_LABEL = "Reporter"
VIAS = ("web", "email")
# Closed in a way the reporter may dispute; a duplicate, a cancelled or a referred request
# is not the city's work to redo.
REOPENABLE = frozenset({Status.RESOLVED.value, Status.CLOSED.value, Status.CANT_FIX.value})
ARCHIVED_MESSAGE = "This request is closed. Please report the problem again"


class Archived(InvalidInput):
    """The request is archived: the reporter should report the problem again."""

    def __init__(self, field: str | None = None):
        super().__init__(ARCHIVED_MESSAGE, field=field)


def _open(request: ServiceRequest) -> bool:
    return request.status in {s.value for s in OPEN_STATUSES}


def _window_end(session: Session, request: ServiceRequest) -> datetime | None:
    """Until when the reporter may reopen or write (None: no closing time known)."""
    if request.closed_at is None:
        return None
    city = session.get(Jurisdiction, request.jurisdiction_id)
    days = city.reopen_days if city is not None and city.reopen_days is not None else 14
    return request.closed_at + timedelta(days=max(0, days))


def is_archived(session: Session, request: ServiceRequest, now: datetime | None = None) -> bool:
    """Closed and past the city's reopen window, or merged into another request."""
    if request.status == Status.DUPLICATE.value or request.duplicate_of_id is not None:
        return True
    if _open(request):
        return False
    end = _window_end(session, request)
    return end is not None and (now or now_utc()) > end


def may_reopen(session: Session, request: ServiceRequest, now: datetime | None = None) -> bool:
    """Whether the reporter may still say "not fixed" (see :func:`reopen`)."""
    if request.status not in REOPENABLE or request.duplicate_of_id is not None:
        return False
    end = _window_end(session, request)
    return end is not None and (now or now_utc()) <= end


def clean_text(value: str | None, field: str, what: str) -> str:
    """The reporter's words, trimmed; empty or too long: :class:`InvalidInput` on ``field``."""
    text = (value or "").replace("\r\n", "\n").strip()
    if not text:
        raise InvalidInput(f"Write {what}", field=field)
    if len(text) > MAX_MESSAGE:
        raise InvalidInput(
            f"Keep it to {MAX_MESSAGE} characters (this is {len(text)})", field=field
        )
    return text


def _event(request: ServiceRequest, kind: str, now: datetime, **values) -> RequestEvent:
    return RequestEvent(
        request_id=request.id,
        at=now,
        actor_label=REPORTER_LABEL,
        kind=kind,
        department_id=request.department_id,
        **values,
    )


def reporter_message(
    session: Session,
    request: ServiceRequest,
    text: str | None,
    *,
    via: str = "web",
    now: datetime | None = None,
    public_base_url: str | None = None,
) -> RequestEvent:
    """The reporter writes to the city: an internal ``message`` event, and the department
    (or the city's dispatch address) hears of it by e-mail with the staff link.

    Refused (:class:`InvalidInput` on field ``message``): empty, too long, or the request
    is archived (:class:`Archived`).
    """
    if via not in VIAS:
        raise ValueError(f"unknown channel {via!r}")
    now = now or now_utc()
    if is_archived(session, request, now):
        raise Archived(field="message")
    text = clean_text(text, "message", "your message")
    event = _event(request, "message", now, note=text, public=False, to_value=via)
    session.add(event)
    request.reporter_message_at = now
    request.updated_at = now
    if public_base_url:
        messages.on_reporter_message(session, request, text, public_base_url)
    return event


def reopen(
    session: Session,
    request: ServiceRequest,
    note: str | None,
    now: datetime | None = None,
    public_base_url: str | None = None,
) -> ServiceRequest:
    """The reporter says "not fixed": the request is new again in its department's and
    crew's queue (the crew sees it as new work), with the reporter's note.

    Allowed while it is resolved, closed or can't-fix and closed no more than the city's
    ``reopen_days`` ago. Refused (:class:`InvalidInput` on field ``note``): no note, too
    long, archived, or not reopenable (open, cancelled, referred).
    """
    now = now or now_utc()
    if is_archived(session, request, now):
        raise Archived(field="note")
    if _open(request):
        raise InvalidInput("This request is still open: write to the city instead", field="note")
    if not may_reopen(session, request, now):
        raise InvalidInput(
            "This request cannot be reopened. Please report the problem again", field="note"
        )
    note = clean_text(note, "note", "what is still wrong")
    old = request.status
    session.add(
        _event(request, "reopen", now, note=note, public=True, from_value=old, to_value="new")
    )
    request.status = Status.NEW.value
    request.closed_at = None
    request.close_reason = None
    request.reopened_at = now
    request.reopen_count = (request.reopen_count or 0) + 1
    request.updated_at = now
    # Reopened work escalates afresh: the supervisors hear of it again if it waits.
    request.escalation_level = 0
    request.escalated_at = None
    if request.crew_id is not None:
        request.crew_assigned_at = now
        request.crew_acknowledged_at = None
    if public_base_url:
        messages.on_crew_assigned(session, request, None, public_base_url)
        messages.on_reporter_message(session, request, note, public_base_url, reopened=True)
    return request


def who_said(session: Session, events: list[RequestEvent]) -> dict[int, str]:
    """Who wrote each staff event, as the timeline names them: "Crew West crew: Sam" for a
    crew member, the name for other staff (keyed by ``actor_id``)."""
    ids = {e.actor_id for e in events if e.actor_id is not None}
    if not ids:
        return {}
    out = {}
    for user in session.scalars(sa.select(User).where(User.id.in_(ids))):
        name = user.name or user.email
        roles = ROLE_IMPLIES.get(user.role, set())
        if user.crews and not roles & {"dispatcher", "admin"}:
            out[user.id] = f"Crew {', '.join(c.name for c in user.crews)}: {name}"
        else:
            out[user.id] = name
    return out
