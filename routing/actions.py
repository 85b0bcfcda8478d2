"""What staff do to a request, each with its audit event.

Every action takes a session, the acting :class:`~spatial.models.User` and plain values;
it checks the user may act (:class:`Forbidden` otherwise), validates everything before
writing anything, changes the request, writes one or more :class:`RequestEvent` rows
(actor, time, kind, from -> to, public or internal) and returns the request. Nothing
is committed here: the caller's transaction holds the change, its events and the
e-mails it queues in the outbox, so a refused or failed action leaves no trace.

Who may do what (``ACTION_ROLES``; admins may do everything, dispatchers what agents
may): dispatchers triage, reassign, re-categorise, move pins, merge, reply, close and
add notes; crews change the status of, and add notes to, their own crew's work only;
agents add a caller as a follower. Users tied to a jurisdiction act only there.

Internal notes carry a ``department_id``: a department's staff (members of the department
or of its crews) see only their departments' internal notes (plus those of central staff
without a department); public events are the resident-facing history.

A dispatcher or agent who is a member of departments works those departments' requests
and the unassigned central queue (:func:`dispatch_scope`); one in no department is a
central dispatcher and works every request of the city. Admins are never scoped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from geoalchemy2.shape import from_shape, to_shape
from shapely.geometry import Point
from sqlalchemy.orm import Session

from notify import messages
from places.geocoder import reverse_geocode
from spatial import pieces
from spatial.accounts import ROLE_IMPLIES
from spatial.errors import CivicpinError, InvalidInput
from spatial.models import (
    CLOSED_STATUSES,
    OPEN_STATUSES,
    PRIORITIES,
    Crew,
    Department,
    Follower,
    Jurisdiction,
    Photo,
    RequestEvent,
    ResponseTemplate,
    Service,
    ServiceRequest,
    Status,
    User,
    now_utc,
)

if TYPE_CHECKING:
    from spatial.media import PhotoUpload

MAX_NOTE = 4000
MAX_REASON = 1000
# A reply is mailed as it is written: long enough for a letter, short enough for a mail.
MAX_REPLY = 4000


ACTION_ROLES: dict[str, frozenset[str]] = {
    "view": frozenset({"agent", "dispatcher", "crew"}),
    "triage": frozenset({"dispatcher"}),
    "reassign": frozenset({"dispatcher"}),
    "recategorise": frozenset({"dispatcher"}),
    "move_pin": frozenset({"dispatcher"}),
    "merge": frozenset({"dispatcher"}),
    "reply": frozenset({"dispatcher"}),
    "note": frozenset({"dispatcher", "crew"}),
    "status": frozenset({"crew"}),
    # The crew saw its new work (a dispatcher may record it for them).
    "acknowledge": frozenset({"crew", "dispatcher"}),
    "close": frozenset({"dispatcher"}),
    "follow": frozenset({"agent"}),
    # Hide or redact what the public sees, confirm held reports (records.moderation).
    "moderate": frozenset({"dispatcher"}),
    # Group requests into projects, edit and close them (routing.projects).
    "project": frozenset({"dispatcher", "planner"}),
}

# Crew members act on their own crew's work only; these actions check it.
CREW_SCOPED = frozenset({"note", "status", "acknowledge"})

CREW_TRANSITIONS: dict[str, frozenset[str]] = {
    Status.ACKNOWLEDGED.value: frozenset({Status.NEW.value}),
    Status.IN_PROGRESS.value: frozenset({Status.NEW.value, Status.ACKNOWLEDGED.value}),
    Status.RESOLVED.value: frozenset(s.value for s in OPEN_STATUSES),
    Status.CANT_FIX.value: frozenset(s.value for s in OPEN_STATUSES),
}

STATUS_LABELS = {
    "new": "New",
    "acknowledged": "Acknowledged",
    "in_progress": "In progress",
    "referred": "Referred",
    "resolved": "Resolved",
    "cant_fix": "Can't fix",
    "duplicate": "Duplicate",
    "cancelled": "Cancelled",
    "closed": "Closed",
}

# Placeholders a response template may use; anything else in braces stays as written.
TEMPLATE_FIELDS = ("public_id", "service", "address", "city", "status")


class Forbidden(CivicpinError):
    """The acting user's role or scope does not allow this action (HTTP 403)."""


# --------------------------------------------------------------------------- permissions


def roles_of(user: User | None) -> set[str]:
    """The roles ``user`` holds, directly or by implication (empty when inactive)."""
    if user is None or not user.active:
        return set()
    return set(ROLE_IMPLIES.get(user.role, set()))


def _is_crew_only(user: User) -> bool:
    return not (roles_of(user) & {"dispatcher", "admin"})


def may(user: User | None, action: str, request: ServiceRequest | None = None) -> bool:
    """Whether ``user`` may do ``action`` (to ``request``, when given)."""
    if action not in ACTION_ROLES:
        raise ValueError(f"unknown action {action!r}")
    if not (roles_of(user) & ACTION_ROLES[action]):
        return False
    if request is None:
        return True
    if user.jurisdiction_id is not None and user.jurisdiction_id != request.jurisdiction_id:
        return False
    if internal_outsider(user, request):
        return False
    if action in CREW_SCOPED and _is_crew_only(user):
        return _works_in_crew(user, request)
    return in_dispatch_scope(user, request)


def internal_outsider(user: User, request: ServiceRequest) -> bool:
    """Whether ``request`` is an internal customer's (a staff-only category) that ``user``
    may not see: only its department's staff and central staff (admins, dispatchers and
    agents in no department) see those, never another department's."""
    service = request.service
    if service is None or not service.internal:
        return False
    roles = roles_of(user)
    if "admin" in roles or (roles & {"dispatcher", "agent"} and dispatch_scope(user) is None):
        return False
    return request.department_id is None or request.department_id not in user_department_ids(user)


def _works_in_crew(user: User, request: ServiceRequest) -> bool:
    return request.crew_id is not None and request.crew_id in {c.id for c in user.crews}


def dispatch_scope(user: User | None) -> frozenset[int] | None:
    """The departments a dispatcher or agent works for; None: every request (central staff).

    Only department membership scopes (crew membership does not), and never an admin's.
    """
    roles = roles_of(user)
    if "admin" in roles or not roles & {"dispatcher", "agent"}:
        return None
    return frozenset(d.id for d in user.departments) or None


def in_dispatch_scope(user: User | None, request: ServiceRequest) -> bool:
    """Whether the request is one ``user`` works: their departments' or the central queue's."""
    scope = dispatch_scope(user)
    return scope is None or request.department_id is None or request.department_id in scope


def require(user: User | None, action: str, request: ServiceRequest | None = None) -> None:
    """Raise :class:`Forbidden` unless ``user`` may do ``action``."""
    if not may(user, action, request):
        what = action.replace("_", " ")
        if request is not None and action in CREW_SCOPED and roles_of(user) == {"crew"}:
            raise Forbidden(f"{request.public_id} is not assigned to your crew")
        if request is not None and not in_dispatch_scope(user, request):
            raise Forbidden(f"{request.public_id} belongs to a department you do not work for")
        raise Forbidden(f"your role may not {what} requests")


def user_department_ids(user: User | None) -> frozenset[int]:
    """The user's departments: those they are a member of, and their crews' (empty: central)."""
    if user is None:
        return frozenset()
    return frozenset(d.id for d in user.departments) | {c.department_id for c in user.crews}


def sees_private_details(user: User | None, request: ServiceRequest) -> bool:
    """Contact details: dispatch and call-takers see them; crews only on their own work."""
    roles = roles_of(user)
    if not roles & {"agent", "dispatcher", "crew"}:
        return False
    if user.jurisdiction_id is not None and user.jurisdiction_id != request.jurisdiction_id:
        return False
    if roles & {"agent", "dispatcher"}:
        return in_dispatch_scope(user, request)
    return _works_in_crew(user, request)


def event_visible(event: RequestEvent, user: User | None, department_ids: frozenset[int]) -> bool:
    """Public events to all staff; internal ones to central staff and the note's departments.

    ``department_ids`` are the viewer's departments (:func:`user_department_ids`).
    """
    if event.public:
        return True
    if not roles_of(user) & ACTION_ROLES["view"]:
        return False
    if not department_ids:
        return True
    return event.department_id is None or event.department_id in department_ids


def visible_events(session: Session, user: User | None, request: ServiceRequest) -> list:
    """The request's history as ``user`` may see it, oldest first."""
    depts = user_department_ids(user)
    events = session.scalars(
        sa.select(RequestEvent)
        .where(RequestEvent.request_id == request.id)
        .order_by(RequestEvent.at, RequestEvent.id)
    ).all()
    return [e for e in events if event_visible(e, user, depts)]


# --------------------------------------------------------------------------- helpers


def _actor_label(user: User) -> str:
    return user.name or user.email


def _event(
    session: Session,
    user: User | None,
    request: ServiceRequest,
    kind: str,
    now: datetime,
    *,
    from_value: str | None = None,
    to_value: str | None = None,
    note: str | None = None,
    public: bool = False,
    department_id: int | None = None,
) -> RequestEvent:
    if department_id is None:
        department_id = (None if public else _note_department(user, request)) or (
            request.department_id
        )
    event = RequestEvent(
        request_id=request.id,
        at=now,
        actor_id=user.id if user is not None else None,
        actor_label=_actor_label(user) if user is not None else None,
        kind=kind,
        from_value=from_value,
        to_value=to_value,
        note=note,
        public=public,
        department_id=department_id,
    )
    session.add(event)
    return event


def _note_department(user: User | None, request: ServiceRequest) -> int | None:
    """The department an internal event belongs to: the request's, when the author works
    for it, else the author's first (None for central staff)."""
    depts = user_department_ids(user)
    if not depts:
        return None
    return request.department_id if request.department_id in depts else min(depts)


def _touch(request: ServiceRequest, now: datetime) -> None:
    request.updated_at = now
    if request.first_response_at is None:
        request.first_response_at = now


def _clean_text(value: str | None, field: str, limit: int, required: bool = False) -> str | None:
    text = (value or "").replace("\r\n", "\n").strip()
    if not text:
        if required:
            raise InvalidInput(f"Write a {field.replace('_', ' ')}", field=field)
        return None
    if len(text) > limit:
        raise InvalidInput(f"Keep the {field.replace('_', ' ')} to {limit} characters", field=field)
    return text


def _assignment_label(session: Session, department_id: int | None, crew_id: int | None) -> str:
    dept = session.get(Department, department_id) if department_id else None
    crew = session.get(Crew, crew_id) if crew_id else None
    head = dept.name if dept else "central dispatch"
    return head + (f" / {crew.name}" if crew else "")


def _require_open(request: ServiceRequest, what: str) -> None:
    if request.status not in {s.value for s in OPEN_STATUSES}:
        label = STATUS_LABELS.get(request.status, request.status)
        raise InvalidInput(f"{request.public_id} is {label.lower()}: it cannot be {what}")


def is_triaged(session: Session, request: ServiceRequest) -> bool:
    return bool(
        session.scalar(
            sa.select(
                sa.exists().where(
                    RequestEvent.request_id == request.id, RequestEvent.kind == "triaged"
                )
            )
        )
    )


def _notify_status(
    session: Session,
    request: ServiceRequest,
    old: str | None,
    new: str,
    public_base_url: str | None,
    note: str | None = None,
) -> None:
    """The reporter (if opted in) and followers hear of a status change (notify.messages)."""
    if public_base_url:
        messages.on_status_change(session, request, old, new, public_base_url, note=note)


# --------------------------------------------------------------------------- dispatch


def triage(
    session: Session,
    user: User,
    request: ServiceRequest,
    *,
    priority: str | None = None,
    confirm: bool = True,
    now: datetime | None = None,
) -> ServiceRequest:
    """Confirm the routing and/or set the priority; the request leaves the untriaged queue."""
    require(user, "triage", request)
    _require_open(request, "triaged")
    if priority is not None:
        priority = priority.strip().lower()
        if priority not in PRIORITIES:
            raise InvalidInput(
                f"priority {priority!r} is not one of {', '.join(PRIORITIES)}", field="priority"
            )
    if not confirm and (priority is None or priority == request.priority):
        raise InvalidInput(
            "Nothing to change: confirm the routing or pick a new priority", field="priority"
        )
    now = now or now_utc()
    old = request.priority
    new = priority or old
    note = "routing confirmed" if confirm else None
    if new != old:
        note = (note + "; " if note else "") + f"priority {old} -> {new}"
    _event(session, user, request, "triaged", now, from_value=old, to_value=new, note=note)
    request.priority = new
    _touch(request, now)
    return request


def reassign(
    session: Session,
    user: User,
    request: ServiceRequest,
    *,
    department_id: int | None,
    crew_id: int | None,
    public_base_url: str | None = None,
    now: datetime | None = None,
) -> ServiceRequest:
    """Send the request to another department and/or crew (the crew must be the department's)."""
    require(user, "reassign", request)
    _require_open(request, "reassigned")
    crew = session.get(Crew, crew_id) if crew_id is not None else None
    if crew_id is not None and crew is None:
        raise InvalidInput(f"no crew with id {crew_id}", field="crew_id")
    if department_id is None and crew is not None:
        department_id = crew.department_id
    dept = session.get(Department, department_id) if department_id is not None else None
    if department_id is not None and (
        dept is None or dept.jurisdiction_id != request.jurisdiction_id
    ):
        raise InvalidInput("pick a department of this city", field="department_id")
    if crew is not None and crew.department_id != department_id:
        raise InvalidInput(f"crew {crew.name!r} does not belong to {dept.name}", field="crew_id")
    if (department_id, crew_id) == (request.department_id, request.crew_id):
        raise InvalidInput("It is already assigned there", field="crew_id")
    now = now or now_utc()
    before = _assignment_label(session, request.department_id, request.crew_id)
    after = _assignment_label(session, department_id, crew_id)
    _event(
        session,
        user,
        request,
        "reassigned",
        now,
        from_value=before,
        to_value=after,
        note=f"Now handled by {after}",
        public=True,
        department_id=department_id,
    )
    crew_changed = crew_id is not None and crew_id != request.crew_id
    request.department_id = department_id
    request.crew_id = crew_id
    request.reassigned_at = now
    # Residents read this line: no staff names in it (the event names the actor).
    request.routing_explanation = f"{after}: reassigned by dispatch"
    session.expire(request, ["department", "crew"])
    _touch(request, now)
    if crew_changed:
        _new_crew_work(session, request, now, public_base_url, crew)
    return request


def _new_crew_work(
    session: Session,
    request: ServiceRequest,
    now: datetime,
    public_base_url: str | None,
    crew: Crew | None = None,
) -> None:
    """The request is new work for its crew: it shows as new on the crew page until the
    crew acknowledges it, and the crew's members are told by e-mail."""
    request.crew_assigned_at = now
    request.crew_acknowledged_at = None
    if public_base_url:
        messages.on_crew_assigned(session, request, crew, public_base_url)


def _reroute(
    session: Session, request: ServiceRequest, now: datetime, public_base_url: str | None
) -> None:
    """Route again; a priority a dispatcher set at triage survives the new decision. A
    request that moves to another crew is that crew's new work."""
    from routing.engine import route_request

    kept = request.priority if is_triaged(session, request) else None
    crew_before = request.crew_id
    route_request(session, request)
    if kept is not None:
        request.priority = kept
    if request.crew_id is not None and request.crew_id != crew_before:
        _new_crew_work(session, request, now, public_base_url)


def recategorise(
    session: Session,
    user: User,
    request: ServiceRequest,
    *,
    service_id: int,
    public_base_url: str | None = None,
    now: datetime | None = None,
) -> ServiceRequest:
    """Change the category and route the request again (a new crew is told, with
    ``public_base_url``)."""
    require(user, "recategorise", request)
    _require_open(request, "re-categorised")
    service = session.get(Service, service_id) if service_id is not None else None
    if service is None or service.jurisdiction_id != request.jurisdiction_id or not service.active:
        raise InvalidInput("pick an active category of this city", field="service_id")
    if service.id == request.service_id:
        raise InvalidInput(f"It is already a {service.name} request", field="service_id")
    now = now or now_utc()
    old = session.get(Service, request.service_id)
    # Category names are public; a private category's name does not go on the public record.
    public = not (old.private or service.private)
    _event(
        session,
        user,
        request,
        "recategorised",
        now,
        from_value=old.name,
        to_value=service.name,
        public=public,
    )
    request.service_id = service.id
    session.expire(request, ["service"])
    # Without a pin only a category that needs none routes (by its rules for any place).
    if request.location is not None or service.location_mode in ("none", "optional"):
        _reroute(session, request, now, public_base_url)
    _touch(request, now)
    return request


def confirm_suggestion(
    session: Session,
    user: User,
    request: ServiceRequest,
    *,
    public_base_url: str | None = None,
    now: datetime | None = None,
) -> ServiceRequest:
    """Take the classifier's suggested category: re-categorise and route again
    (:func:`recategorise`), and clear the suggestion."""
    require(user, "recategorise", request)
    if request.suggested_service_id is None:
        raise InvalidInput("There is no suggested category to confirm", field="service_id")
    recategorise(
        session,
        user,
        request,
        service_id=request.suggested_service_id,
        public_base_url=public_base_url,
        now=now,
    )
    request.suggested_service_id = None
    request.suggestion_confidence = None
    return request


def dismiss_suggestion(
    session: Session, user: User, request: ServiceRequest, *, now: datetime | None = None
) -> ServiceRequest:
    """Leave the category as it is and clear the classifier's suggestion."""
    require(user, "recategorise", request)
    if request.suggested_service_id is None:
        raise InvalidInput("There is no suggested category to dismiss", field="service_id")
    now = now or now_utc()
    suggested = session.get(Service, request.suggested_service_id)
    _event(
        session,
        user,
        request,
        "suggestion",
        now,
        from_value=suggested.name if suggested else None,
        note="Suggested category dismissed",
    )
    request.suggested_service_id = None
    request.suggestion_confidence = None
    return request


def parse_coordinate(value: object, field: str, low: float, high: float) -> float:
    """A finite number within [low, high], or :class:`InvalidInput` naming ``field``."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidInput(f"{field} must be a number in degrees", field=field) from None
    if not math.isfinite(number) or not low <= number <= high:
        raise InvalidInput(f"{field} must be between {low:g} and {high:g}", field=field)
    return number


def move_pin(
    session: Session,
    user: User,
    request: ServiceRequest,
    *,
    lon: float,
    lat: float,
    public_base_url: str | None = None,
    now: datetime | None = None,
) -> ServiceRequest:
    """Put the pin somewhere else in the city (or for the first time) and route again
    (a new crew is told, with ``public_base_url``).

    The request takes the new spot's address (:func:`places.geocoder.reverse_geocode`:
    an address point, an interpolated address or "near X and Y"; none: no address, never
    the old one) and the city's address id when it is an address point. A request about
    an asset drops it when the pin leaves the asset (more than :data:`ASSET_KEEP_M`).
    The "moved" event holds the old and the new address with their coordinates.
    """
    require(user, "move_pin", request)
    _require_open(request, "moved")
    lon = parse_coordinate(lon, "lon", -180, 180)
    lat = parse_coordinate(lat, "lat", -90, 90)
    if not pieces.point_in_city(session, request.jurisdiction_id, lon, lat):
        raise InvalidInput("That spot is outside the city boundary", field="location")
    now = now or now_utc()
    before = request.address
    if request.location is not None:
        old = to_shape(request.location)
        before = _place_text(request.address, old.y, old.x)
    place = reverse_geocode(session, session.get(Jurisdiction, request.jurisdiction_id), lon, lat)
    request.address = place.address if place is not None else None
    request.address_id = place.address_id if place is not None else None
    note = _leave_asset(session, request, lon, lat)
    _event(
        session,
        user,
        request,
        "moved",
        now,
        from_value=before,
        to_value=_place_text(request.address, lat, lon),
        note=note,
    )
    request.location = from_shape(Point(lon, lat), srid=4326)
    request.needs_location = False
    _reroute(session, request, now, public_base_url)
    _touch(request, now)
    return request


# A moved pin keeps its asset within this distance (a pin nudged onto the pavement beside
# the pole); further away the report is about another spot.
ASSET_KEEP_M = 30.0

ASSET_DISTANCE_SQL = sa.text(
    """
SELECT l.title, a.ref,
       ST_DWithin(a.location::geography,
                  ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, :keep) AS near,
       ST_Distance(a.location::geography,
                   ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography) AS metres
FROM asset a JOIN asset_layer l ON l.id = a.layer_id
WHERE a.layer_id = :layer_id AND a.ref = :ref
"""
)


def _place_text(address: str | None, lat: float, lon: float) -> str:
    """An address with its coordinates ("12 ELM ST (42.37312, -71.10943)"), or the
    coordinates alone."""
    if address:
        return f"{address} ({lat:.5f}, {lon:.5f})"
    return f"{lat:.6f}, {lon:.6f}"


def _leave_asset(session: Session, request: ServiceRequest, lon: float, lat: float) -> str | None:
    """Drop the request's asset when the new pin is away from it; the event's note."""
    if request.asset_ref is None or request.asset_layer_id is None:
        return None
    row = session.execute(
        ASSET_DISTANCE_SQL,
        {
            "layer_id": request.asset_layer_id,
            "ref": request.asset_ref,
            "lon": lon,
            "lat": lat,
            "keep": ASSET_KEEP_M,
        },
    ).first()
    if row is None or row.near:
        return None  # an asset no longer in the city's set stays as the reporter named it
    request.asset_layer_id = None
    request.asset_ref = None
    return f"No longer about {row.title.lower()} {row.ref}: the pin is {row.metres:.0f} m from it"


def _root(session: Session, request: ServiceRequest) -> ServiceRequest:
    seen = {request.id}
    while request.duplicate_of_id is not None and request.duplicate_of_id not in seen:
        seen.add(request.duplicate_of_id)
        request = session.get(ServiceRequest, request.duplicate_of_id)
    return request


@dataclass
class MergeResult:
    child: ServiceRequest
    parent: ServiceRequest
    followers_moved: int


def merge(
    session: Session,
    user: User,
    child: ServiceRequest,
    parent: ServiceRequest,
    *,
    public_base_url: str | None = None,
    now: datetime | None = None,
) -> MergeResult:
    """Close ``child`` as a duplicate of ``parent``; its reporter and followers follow the parent."""
    require(user, "merge", child)
    require(user, "merge", parent)
    if child.id == parent.id:
        raise InvalidInput("A request cannot be merged into itself", field="parent")
    if child.jurisdiction_id != parent.jurisdiction_id:
        raise InvalidInput("Both requests must be in the same city", field="parent")
    _require_open(child, "merged")
    if parent.status == Status.DUPLICATE.value:
        root = _root(session, parent)
        raise InvalidInput(
            f"{parent.public_id} is itself a duplicate of {root.public_id}: merge into that",
            field="parent",
        )
    if parent.status == Status.CANCELLED.value:
        raise InvalidInput(f"{parent.public_id} is cancelled", field="parent")
    now = now or now_utc()

    # The child's reporter and followers hear of it before they move to the parent.
    _notify_status(
        session,
        child,
        child.status,
        Status.DUPLICATE.value,
        public_base_url,
        note=(
            f"Your report {child.public_id} is about the same problem as {parent.public_id}. "
            f"We will keep you updated on {parent.public_id}."
        ),
    )
    parent_emails = {
        e.lower()
        for e in session.scalars(
            sa.select(Follower.email).where(
                Follower.request_id == parent.id, Follower.email.is_not(None)
            )
        )
    }
    if parent.contact_email:
        parent_emails.add(parent.contact_email.lower())
    moved = 0
    for follower in session.scalars(
        sa.select(Follower).where(Follower.request_id == child.id).order_by(Follower.id)
    ).all():
        if follower.email is not None and follower.email.lower() in parent_emails:
            if follower.confirmed_at is not None:
                _confirm_follower(session, parent, follower.email, follower.confirmed_at)
            session.delete(follower)
            continue
        follower.request_id = parent.id
        if follower.email is not None:
            parent_emails.add(follower.email.lower())
        moved += 1
    reporter = child.contact_email
    if (
        reporter
        and child.notify_updates
        and not child.anonymous
        and reporter.lower() not in parent_emails
    ):
        # The reporter asked for their report's updates: they follow the parent without
        # confirming again, as a follower (its public page; the parent's own reporter
        # alone gets the parent's private link).
        session.add(
            Follower(request_id=parent.id, email=reporter, created_at=now, confirmed_at=now)
        )
        moved += 1
    elif reporter and child.notify_updates and not child.anonymous:
        _confirm_follower(session, parent, reporter, now)
    # Earlier duplicates of the child now point at the parent: no chains.
    session.execute(
        sa.update(ServiceRequest)
        .where(ServiceRequest.duplicate_of_id == child.id)
        .values(duplicate_of_id=parent.id)
    )
    _event(
        session,
        user,
        child,
        "merged",
        now,
        from_value=child.status,
        to_value=parent.public_id,
        public=True,
        note=f"Closed as a duplicate of {parent.public_id}",
    )
    _event(
        session,
        user,
        parent,
        "merged_in",
        now,
        to_value=child.public_id,
        public=True,
        note=f"{child.public_id} was merged into this request",
    )
    child.status = Status.DUPLICATE.value
    child.duplicate_of_id = parent.id
    child.close_reason = f"duplicate of {parent.public_id}"
    child.closed_at = now
    _touch(child, now)
    _touch(parent, now)
    return MergeResult(child, parent, moved)


def render_template_text(
    template: ResponseTemplate, request: ServiceRequest, session: Session
) -> str:
    """The template's body with ``{public_id}``, ``{service}``, ``{address}``, ``{city}``,
    ``{status}`` filled in (plain replacement: the body is never a format string)."""
    city = session.get(Jurisdiction, request.jurisdiction_id)
    service = session.get(Service, request.service_id)
    values = {
        "public_id": request.public_id,
        "service": service.name,
        "address": request.address or "the reported location",
        "city": city.name,
        "status": STATUS_LABELS.get(request.status, request.status).lower(),
    }
    text = template.body
    for key in TEMPLATE_FIELDS:
        text = text.replace("{" + key + "}", values[key])
    return text


@dataclass
class ReplyResult:
    request: ServiceRequest
    text: str
    emailed: bool


def reply_with_template(
    session: Session,
    user: User,
    request: ServiceRequest,
    *,
    template_id: int,
    extra: str | None = None,
    public_base_url: str | None = None,
    now: datetime | None = None,
) -> ReplyResult:
    """Add a standard response as a public note and e-mail it (see :func:`reply`)."""
    require(user, "reply", request)
    template = session.get(ResponseTemplate, template_id) if template_id is not None else None
    if template is None or template.jurisdiction_id != request.jurisdiction_id:
        raise InvalidInput("pick a response template of this city", field="template_id")
    if template.service_id is not None and template.service_id != request.service_id:
        raise InvalidInput(
            f"template {template.name!r} is for another category", field="template_id"
        )
    extra = _clean_text(extra, "extra", MAX_NOTE)
    text = render_template_text(template, request, session)
    if extra:
        text = f"{text}\n\n{extra}"
    return _reply(session, user, request, text, template.name, public_base_url, now)


def reply(
    session: Session,
    user: User,
    request: ServiceRequest,
    *,
    text: str | None,
    public_base_url: str | None = None,
    now: datetime | None = None,
) -> ReplyResult:
    """A dispatcher's reply in their own words (perhaps begun from a template).

    Like a standard response it is a public event, mailed to the reporter (with their
    private link) and to the confirmed followers (with the public page only). Empty or
    longer than ``MAX_REPLY`` characters: :class:`InvalidInput` on field ``reply``.
    """
    require(user, "reply", request)
    text = _clean_text(text, "reply", MAX_REPLY, required=True)
    return _reply(session, user, request, text, None, public_base_url, now)


def _reply(
    session: Session,
    user: User,
    request: ServiceRequest,
    text: str,
    template_name: str | None,
    public_base_url: str | None,
    now: datetime | None,
) -> ReplyResult:
    now = now or now_utc()
    _event(session, user, request, "reply", now, to_value=template_name, note=text, public=True)
    emailed = False
    if public_base_url:
        emailed = bool(messages.on_reply(session, request, text, public_base_url))
    _touch(request, now)
    return ReplyResult(request, text, emailed)


def add_note(
    session: Session,
    user: User,
    request: ServiceRequest,
    *,
    text: str,
    public: bool = False,
    now: datetime | None = None,
) -> ServiceRequest:
    """A note on the request: internal (the author's department sees it) or public."""
    require(user, "note", request)
    text = _clean_text(text, "note", MAX_NOTE, required=True)
    now = now or now_utc()
    _event(session, user, request, "note", now, note=text, public=bool(public))
    _touch(request, now)
    return request


def close(
    session: Session,
    user: User,
    request: ServiceRequest,
    *,
    reason: str,
    public_base_url: str | None = None,
    now: datetime | None = None,
) -> ServiceRequest:
    """Close an open request with a reason the resident sees."""
    require(user, "close", request)
    _require_open(request, "closed")
    reason = _clean_text(reason, "reason", MAX_REASON, required=True)
    now = now or now_utc()
    old = request.status
    _event(
        session,
        user,
        request,
        "status",
        now,
        from_value=old,
        to_value=Status.CLOSED.value,
        note=reason,
        public=True,
    )
    request.status = Status.CLOSED.value
    request.close_reason = reason
    request.closed_at = now
    _touch(request, now)
    _notify_status(session, request, old, Status.CLOSED.value, public_base_url, note=reason)
    return request


# --------------------------------------------------------------------------- crews


def set_status(
    session: Session,
    user: User,
    request: ServiceRequest,
    *,
    status: str,
    note: str | None = None,
    public_note: bool = True,
    photo: PhotoUpload | None = None,
    media_dir: Path | None = None,
    public_base_url: str | None = None,
    now: datetime | None = None,
) -> ServiceRequest:
    """A crew's progress: acknowledged, in progress, resolved or can't fix.

    Can't fix needs a note. A completion photo goes through the residents' photo
    pipeline (verified, EXIF stripped) and is stored with ``stage="completion"``.
    """
    require(user, "status", request)
    if status not in CREW_TRANSITIONS:
        raise InvalidInput(
            f"status {status!r} is not one of {', '.join(CREW_TRANSITIONS)}", field="status"
        )
    if request.status not in CREW_TRANSITIONS[status]:
        raise InvalidInput(
            f"{request.public_id} is {STATUS_LABELS.get(request.status, request.status).lower()}:"
            f" it cannot become {STATUS_LABELS[status].lower()}",
            field="status",
        )
    note = _clean_text(note, "note", MAX_NOTE, required=status == Status.CANT_FIX.value)
    processed = None
    if photo is not None:
        from spatial.media import process_photo, store_photo

        if media_dir is None:
            raise ValueError("media_dir is needed to store a completion photo")
        processed = process_photo(photo, field="photo")
        exists = session.scalar(
            sa.select(
                sa.exists().where(
                    Photo.request_id == request.id, Photo.content_hash == processed.content_hash
                )
            )
        )
        if exists:
            raise InvalidInput("That photo is already attached to this request", field="photo")
    now = now or now_utc()
    old = request.status
    _event(
        session,
        user,
        request,
        "status",
        now,
        from_value=old,
        to_value=status,
        note=note if public_note else None,
        public=True,
    )
    if note and not public_note:
        _event(session, user, request, "note", now, note=note, public=False)
    if processed is not None:
        store_photo(media_dir, processed)
        session.add(
            Photo(
                request_id=request.id,
                content_hash=processed.content_hash,
                stage="completion",
                mime_type=processed.mime_type,
                width=processed.width,
                height=processed.height,
                bytes=processed.size,
                original_key=processed.original_key,
                public_key=processed.public_key,
                thumb_key=processed.thumb_key,
                created_at=now,
            )
        )
        _event(
            session,
            user,
            request,
            "photo",
            now,
            to_value=processed.public_key,
            note="Completion photo",
            public=True,
        )
    request.status = status
    if status in {s.value for s in CLOSED_STATUSES}:
        request.closed_at = now
        if note:
            request.close_reason = note
    if is_new_for_crew(request):
        request.crew_acknowledged_at = now  # the crew is on it
    _touch(request, now)
    _notify_status(
        session, request, old, status, public_base_url, note=note if public_note else None
    )
    return request


def is_new_for_crew(request: ServiceRequest) -> bool:
    """New work for the request's crew: assigned to it (by routing, dispatch or a
    reopening) and not acknowledged since."""
    assigned, seen = request.crew_assigned_at, request.crew_acknowledged_at
    return (
        request.crew_id is not None
        and request.status in {s.value for s in OPEN_STATUSES}
        and assigned is not None
        and (seen is None or seen < assigned)
    )


def acknowledge(
    session: Session,
    user: User,
    request: ServiceRequest,
    now: datetime | None = None,
    *,
    public_base_url: str | None = None,
) -> ServiceRequest:
    """The crew saw its new work (a member of the request's crew, or dispatch for them).

    A 'new' request becomes 'acknowledged': the status change with its public event and
    the notice to the reporter and followers. Otherwise (the crew had it already, or it
    is under way) an internal 'crew_acknowledged' event records it. Either way the
    request no longer shows as new on the crew page.
    """
    require(user, "acknowledge", request)
    _require_open(request, "acknowledged")
    if request.crew_id is None:
        raise InvalidInput(f"{request.public_id} is not assigned to a crew")
    if not is_new_for_crew(request) and request.status != Status.NEW.value:
        raise InvalidInput(f"{request.public_id} is already acknowledged")
    now = now or now_utc()
    old = request.status
    if old == Status.NEW.value:
        new = Status.ACKNOWLEDGED.value
        _event(session, user, request, "status", now, from_value=old, to_value=new, public=True)
        request.status = new
        _notify_status(session, request, old, new, public_base_url)
    else:
        _event(
            session,
            user,
            request,
            "crew_acknowledged",
            now,
            to_value=_assignment_label(session, request.department_id, request.crew_id),
            note="The crew acknowledged its new work",
        )
    request.crew_acknowledged_at = now
    _touch(request, now)
    return request


# --------------------------------------------------------------------------- follows


def follow(
    session: Session,
    user: User,
    request: ServiceRequest,
    *,
    email: str | None = None,
    channel: str = "phone",
    now: datetime | None = None,
    public_base_url: str | None = None,
) -> ServiceRequest:
    """A caller reports the same problem again: they follow it (and count as support).

    Without an e-mail address the follow counts at once. An address counts, and gets the
    updates, once its owner opens the confirmation link mailed to it (with
    ``public_base_url``; see ``intake.duplicates.confirm_follow``).
    """
    from spatial.accounts import EMAIL_RE

    require(user, "follow", request)
    if request.status == Status.DUPLICATE.value and request.duplicate_of_id is not None:
        root = _root(session, request)
        raise InvalidInput(
            f"{request.public_id} was merged into {root.public_id}: follow that one",
            field="public_id",
        )
    email = (email or "").strip() or None
    if email is not None and (len(email) > 254 or not EMAIL_RE.match(email)):
        raise InvalidInput(f"{email!r} is not an e-mail address", field="email")
    if email is not None:
        taken = session.scalar(
            sa.select(
                sa.exists().where(
                    Follower.request_id == request.id,
                    sa.func.lower(Follower.email) == email.lower(),
                )
            )
        )
        if taken or (request.contact_email or "").lower() == email.lower():
            raise InvalidInput(f"{email} already follows {request.public_id}", field="email")
    now = now or now_utc()
    # Without an address there is nothing to confirm: the caller told the agent.
    follower = Follower(
        request_id=request.id,
        email=email,
        created_at=now,
        confirmed_at=now if email is None else None,
    )
    session.add(follower)
    if email is not None and public_base_url:
        follower.confirm_sent_at = now
        session.flush()
        messages.follow_confirmation(session, request, public_base_url, to_addr=email)
    via = {"in_person": "in person"}.get(channel, channel)
    _event(
        session,
        user,
        request,
        "followed",
        now,
        public=True,
        note=f"Another resident reported this too ({via})",
    )
    request.updated_at = now
    return request


def record_follow(
    session: Session,
    user: User,
    request: ServiceRequest,
    *,
    channel: str = "phone",
    now: datetime | None = None,
) -> None:
    """The call-taker's audit event for a follow the residents' code wrote
    (``intake.duplicates.follow``, which records the public "followed" event)."""
    require(user, "follow", request)
    via = {"in_person": "in person"}.get(channel, channel)
    _event(
        session,
        user,
        request,
        "follow_added",
        now or now_utc(),
        note=f"Caller added as a follower ({via})",
        public=False,
    )


def support_count(session: Session, request: ServiceRequest) -> int:
    """How many people follow the request (each confirmed follow counts as support)."""
    return (
        session.scalar(
            sa.select(sa.func.count())
            .select_from(Follower)
            .where(
                Follower.request_id == request.id,
                Follower.confirmed_at.is_not(None),
                Follower.unsubscribed_at.is_(None),
            )
        )
        or 0
    )


def _confirm_follower(
    session: Session, request: ServiceRequest, email: str, when: datetime
) -> None:
    """A follower of ``request`` with ``email`` who is still unconfirmed counts as confirmed
    (a merge brings the same address, already confirmed or the reporter's, onto it)."""
    session.execute(
        sa.update(Follower)
        .where(
            Follower.request_id == request.id,
            sa.func.lower(Follower.email) == email.lower(),
            Follower.confirmed_at.is_(None),
        )
        .values(confirmed_at=when)
    )
