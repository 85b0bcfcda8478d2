"""Moderation: what staff take out of the public view of a request, and reports held
unpublished until a dispatcher confirms them.

A dispatcher (or an admin) may hide a request's description, or replace it for the public
with a text they edit, and hide single photos; each needs a reason. The resident's own
words stay in ``description`` and the photo files stay, for staff: only the public views
change. Each action writes an internal ``request_event`` (who, when, what, why), visible
to every staff member of the city, never to the public.

A city's ``moderation_hold`` (``none``, ``email`` or ``all``) holds new reports from those
channels: a held request (``held_at`` set) is stored, routed and shown to staff, but no
public view lists or shows it (map, list, status page without the reporter's link, Open311,
the duplicates offered to other residents, photos) until a dispatcher confirms it.

Every public view reads the rules from here: :func:`shown_description` (or
:func:`shown_description_sql` inside a query), :data:`PHOTO_SHOWN` and :data:`PUBLISHED`.
Nothing here commits: the caller's transaction holds the change and its event.
"""

from __future__ import annotations

import re
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from routing.actions import require
from spatial.errors import InvalidInput
from spatial.models import (
    TEXT_REMOVED,
    Jurisdiction,
    Photo,
    RequestEvent,
    ServiceRequest,
    User,
    now_utc,
    shown_description,
)

HOLD_MODES = ("none", "email", "all")
# History imported in bulk is the city's own record of the past, not a new report.
NEVER_HELD_CHANNELS = frozenset({"import"})
MAX_REASON = 1000
MAX_PUBLIC_TEXT = 4000
_HTML_TAG = re.compile(r"<\s*/?\s*[a-zA-Z!][^>]*>")

# The public conditions, for queries: a request nobody holds, a photo nobody hid (and
# public from the start: a photo mailed by an unverified sender is for staff only).
PUBLISHED = ServiceRequest.held_at.is_(None)
PHOTO_SHOWN = sa.and_(Photo.hidden_at.is_(None), Photo.public.is_(True))

# The internal events moderation writes (their labels in the staff history).
EVENT_LABELS = {
    "description_hidden": "Description hidden from the public",
    "description_redacted": "Description redacted for the public",
    "description_restored": "Description shown to the public again",
    "photo_hidden": "Photo hidden from the public",
    "published": "Confirmed and published",
}


# --------------------------------------------------------------------------- public view


def shown_description_sql(table=ServiceRequest):
    """:func:`shown_description` as a column expression of ``table`` (the model, or an
    alias of it)."""
    return sa.case(
        (table.description_moderation == "hidden", sa.literal(TEXT_REMOVED)),
        (table.description_moderation == "redacted", table.public_description),
        else_=table.description,
    )


def text_removed(request: ServiceRequest) -> bool:
    """Whether the public sees the notice instead of the reporter's text."""
    return request.description_moderation == "hidden"


def is_held(request: ServiceRequest) -> bool:
    return request.held_at is not None


# ------------------------------------------------------------------------------ holding


def validate_hold_mode(mode: str) -> str:
    value = (mode or "").strip().lower()
    if value not in HOLD_MODES:
        raise InvalidInput(
            f"hold {mode!r} is not one of {', '.join(HOLD_MODES)}", field="moderation_hold"
        )
    return value


def holds(city: Jurisdiction, channel: str) -> bool:
    """Whether a new report from ``channel`` waits for a dispatcher in ``city``."""
    mode = city.moderation_hold or "none"
    if channel in NEVER_HELD_CHANNELS or mode == "none":
        return False
    return mode == "all" or channel == "email"


def set_hold_mode(session: Session, city: Jurisdiction, mode: str) -> str:
    """Set which new reports ``city`` holds; returns the mode. Requests held already stay
    held until a dispatcher confirms them."""
    city.moderation_hold = validate_hold_mode(mode)
    session.flush()
    return city.moderation_hold


def publish(
    session: Session, user: User, request: ServiceRequest, *, now: datetime | None = None
) -> ServiceRequest:
    """Confirm a held request: from now on the public views show it."""
    require(user, "moderate", request)
    if request.held_at is None:
        raise InvalidInput(f"{request.public_id} is not held: the public sees it already")
    now = now or now_utc()
    held_for = now - request.held_at
    _event(
        session,
        user,
        request,
        "published",
        now,
        note=f"held for {_duration(held_for.total_seconds())}",
    )
    request.held_at = None
    request.updated_at = now
    return request


def _duration(seconds: float) -> str:
    minutes = max(0, round(seconds / 60))
    if minutes < 120:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours = round(minutes / 60)
    if hours < 48:
        return f"{hours} hours"
    return f"{round(hours / 24)} days"


# --------------------------------------------------------------------------- moderating


def _reason(value: str | None) -> str:
    text = (value if isinstance(value, str) else "").replace("\r\n", "\n").strip()
    if not text:
        raise InvalidInput("Give the reason (staff see it in the history)", field="reason")
    if len(text) > MAX_REASON:
        raise InvalidInput(f"Keep the reason to {MAX_REASON} characters", field="reason")
    return text


def _event(
    session: Session,
    user: User,
    request: ServiceRequest,
    kind: str,
    now: datetime,
    *,
    from_value: str | None = None,
    to_value: str | None = None,
    note: str | None = None,
) -> RequestEvent:
    # No department: every staff member of the city sees why the public view changed.
    event = RequestEvent(
        request_id=request.id,
        at=now,
        actor_id=user.id,
        actor_label=user.name or user.email,
        kind=kind,
        from_value=from_value,
        to_value=to_value,
        note=note,
        public=False,
        department_id=None,
    )
    session.add(event)
    return event


def moderate_description(
    session: Session,
    user: User,
    request: ServiceRequest,
    *,
    mode: str,
    reason: str,
    text: str | None = None,
    now: datetime | None = None,
) -> ServiceRequest:
    """Change what the public sees of the description: ``hide`` it, ``redact`` it (show
    ``text`` instead) or ``restore`` the reporter's text."""
    require(user, "moderate", request)
    reason = _reason(reason)
    mode = (mode if isinstance(mode, str) else "").strip().lower()
    if mode not in ("hide", "redact", "restore"):
        raise InvalidInput("Choose to hide, redact or restore the description", field="mode")
    public_text = None
    if mode == "redact":
        public_text = (text if isinstance(text, str) else "").replace("\r\n", "\n").strip()
        if not public_text:
            raise InvalidInput("Write the text the public sees instead", field="text")
        if len(public_text) > MAX_PUBLIC_TEXT:
            raise InvalidInput(f"Keep the text to {MAX_PUBLIC_TEXT} characters", field="text")
        if _HTML_TAG.search(public_text):
            raise InvalidInput("The text must be plain text, without HTML", field="text")
    elif mode == "restore" and request.description_moderation is None:
        raise InvalidInput("The public sees the reporter's text already", field="mode")
    elif mode == "hide" and request.description_moderation == "hidden":
        raise InvalidInput("The description is hidden already", field="mode")
    if mode != "restore" and not request.description:
        raise InvalidInput(f"{request.public_id} has no description", field="mode")
    now = now or now_utc()
    before = shown_description(request)
    kind = {
        "hide": "description_hidden",
        "redact": "description_redacted",
        "restore": "description_restored",
    }[mode]
    request.description_moderation = {"hide": "hidden", "redact": "redacted"}.get(mode)
    request.public_description = public_text
    _event(
        session,
        user,
        request,
        kind,
        now,
        from_value=before,
        to_value=shown_description(request),
        note=reason,
    )
    request.updated_at = now
    return request


def hide_photo(
    session: Session,
    user: User,
    request: ServiceRequest,
    photo_id: int | str | None,
    *,
    reason: str,
    now: datetime | None = None,
) -> Photo:
    """Hide one photo of ``request`` from the public (staff still see it)."""
    require(user, "moderate", request)
    reason = _reason(reason)
    try:
        wanted = int(str(photo_id).strip())
    except (TypeError, ValueError):
        raise InvalidInput("Choose the photo to hide", field="photo_id") from None
    photo = (
        session.scalar(sa.select(Photo).where(Photo.id == wanted, Photo.request_id == request.id))
        if 0 < wanted < 2**31
        else None
    )
    if photo is None:
        raise InvalidInput(f"{request.public_id} has no such photo", field="photo_id")
    if photo.hidden_at is not None:
        raise InvalidInput("This photo is hidden already", field="photo_id")
    now = now or now_utc()
    photo.hidden_at = now
    _event(
        session,
        user,
        request,
        "photo_hidden",
        now,
        to_value=f"{photo.stage} photo {photo.id}",
        note=reason,
    )
    request.updated_at = now
    return photo
