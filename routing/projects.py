"""Projects: work that groups requests ("Repave Main St").

Dispatchers and planners of a city (and its administrators) create and edit projects: a
name, a description, an owner (a staff member of the city), a department, a status, a
target date, milestones and, optionally, an area drawn on the map. Requests join a project
one at a time or by picking open requests inside its area; a request belongs to at most
one project, and only to one of its own city. Each link and unlink writes a public
``project`` event, so the resident's history says "Part of project Repave Main St".

Finishing a project (status ``done``) may resolve its open requests with one message: each
gets the status ``resolved`` with that message as its public note, ``closed_at``, a
``status`` event by the acting user and the reporter's resolution mail with its survey, all
in the caller's transaction. A cancelled project resolves nothing.

Like :mod:`routing.actions`, every function takes a session, the acting user and plain
values, validates everything before it writes anything and never commits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from geoalchemy2.shape import from_shape, to_shape
from shapely.geometry import mapping, shape
from sqlalchemy.orm import Session

from notify import messages
from routing.actions import Forbidden, may, require
from routing.actions import _event as staff_event
from spatial.errors import InvalidInput, NotFound
from spatial.models import (
    OPEN_STATUSES,
    Department,
    Jurisdiction,
    Service,
    ServiceRequest,
    Status,
    User,
    now_utc,
)
from spatial.models_work import (
    OPEN_PROJECT_STATUSES,
    PROJECT_STATUSES,
    Project,
    ProjectMilestone,
)

MAX_NAME = 200
MAX_DESCRIPTION = 4000
MAX_MILESTONE_TITLE = 200
MAX_MILESTONES = 50
MAX_CLOSE_MESSAGE = 1000
# An area is drawn by hand or pasted: a few thousand corners is plenty for a street or a park.
MAX_AREA_TEXT = 200_000
MAX_AREA_VERTICES = 5000
# Requests offered for linking from inside the area, nearest the area's centre first.
AREA_CANDIDATES = 200

STATUS_LABELS = {
    "planned": "Planned",
    "active": "Under way",
    "on_hold": "On hold",
    "done": "Done",
    "cancelled": "Cancelled",
}
_OPEN_REQUEST = tuple(s.value for s in OPEN_STATUSES)
# Roles that never act on projects, whatever else they hold.
_STAFF_ROLES = frozenset({"agent", "dispatcher", "crew", "planner", "admin"})


# --------------------------------------------------------------------------- permissions


def may_edit(user: User | None, city_id: int | None = None) -> bool:
    """Whether ``user`` may create and edit projects (of the city ``city_id``, if given)."""
    if not may(user, "project"):
        return False
    return city_id is None or user.jurisdiction_id in (None, city_id)


def require_edit(user: User | None, city_id: int) -> None:
    """Raise :class:`Forbidden` unless ``user`` may edit the projects of ``city_id``."""
    if not may_edit(user, city_id):
        raise Forbidden("your role may not change projects")


# --------------------------------------------------------------------------- reading


def get_project(session: Session, city_id: int, project_id: Any) -> Project:
    """The project ``project_id`` of the city ``city_id`` (:class:`NotFound` otherwise)."""
    try:
        pid = int(project_id)
    except (TypeError, ValueError):
        raise NotFound(f"no project {project_id!r}") from None
    project = session.get(Project, pid)
    if project is None or project.jurisdiction_id != city_id:
        raise NotFound(f"no project {pid} in this city")
    return project


def list_projects(
    session: Session, city_id: int, status: str | None = None
) -> list[dict[str, Any]]:
    """The city's projects (optionally of one status; ``open``: not done nor cancelled),
    each with its counts of linked and open linked requests, open ones first."""
    if status and status != "open" and status not in PROJECT_STATUSES:
        raise InvalidInput(
            f"status must be open or one of {', '.join(PROJECT_STATUSES)}", field="status"
        )
    linked = (
        sa.select(
            ServiceRequest.project_id,
            sa.func.count().label("linked"),
            sa.func.count().filter(ServiceRequest.status.in_(_OPEN_REQUEST)).label("open"),
        )
        .where(ServiceRequest.project_id.is_not(None))
        .group_by(ServiceRequest.project_id)
        .subquery()
    )
    query = (
        sa.select(Project, User.name, User.email, Department.name, linked.c.linked, linked.c.open)
        .outerjoin(User, User.id == Project.owner_id)
        .outerjoin(Department, Department.id == Project.department_id)
        .outerjoin(linked, linked.c.project_id == Project.id)
        .where(Project.jurisdiction_id == city_id)
    )
    if status == "open":
        query = query.where(Project.status.in_(OPEN_PROJECT_STATUSES))
    elif status:
        query = query.where(Project.status == status)
    order = sa.case((Project.status.in_(OPEN_PROJECT_STATUSES), 0), else_=1)
    query = query.order_by(order, Project.target_date.asc().nulls_last(), Project.name)
    return [
        {
            "project": p,
            "owner": owner_name or owner_email,
            "department": dept,
            "linked": n or 0,
            "open": n_open or 0,
        }
        for p, owner_name, owner_email, dept, n, n_open in session.execute(query)
    ]


def linked_requests(session: Session, project: Project, *, public_only: bool = False) -> list:
    """The project's requests as rows (public id, category, status, address, lat, lon),
    newest first; ``public_only``: only those anybody may see on the public pages."""
    query = (
        sa.select(
            ServiceRequest.id,
            ServiceRequest.public_id,
            Service.name.label("service"),
            ServiceRequest.status,
            ServiceRequest.address,
            ServiceRequest.requested_at,
            sa.func.ST_Y(ServiceRequest.location).label("lat"),
            sa.func.ST_X(ServiceRequest.location).label("lon"),
        )
        .join(Service, Service.id == ServiceRequest.service_id)
        .where(ServiceRequest.project_id == project.id)
        .order_by(ServiceRequest.requested_at.desc(), ServiceRequest.id.desc())
    )
    if public_only:
        query = query.where(*_public_request_clauses())
    return session.execute(query).all()


def _public_request_clauses() -> list:
    return [
        ServiceRequest.held_at.is_(None),
        Service.private.is_(False),
        Service.internal.is_(False),
    ]


def is_public_request(session: Session, request: ServiceRequest) -> bool:
    """Whether anybody may see ``request`` on the public pages (not held, not of a private
    or internal category)."""
    service = session.get(Service, request.service_id)
    return request.held_at is None and not service.private and not service.internal


def area_candidates(session: Session, project: Project) -> list:
    """Open requests of the city inside the project's area that belong to no project."""
    if project.area is None:
        return []
    return session.execute(
        sa.select(
            ServiceRequest.public_id,
            Service.name.label("service"),
            ServiceRequest.status,
            ServiceRequest.address,
        )
        .join(Service, Service.id == ServiceRequest.service_id)
        .join(Project, Project.id == project.id)
        .where(
            ServiceRequest.jurisdiction_id == project.jurisdiction_id,
            ServiceRequest.project_id.is_(None),
            ServiceRequest.status.in_(_OPEN_REQUEST),
            ServiceRequest.location.is_not(None),
            sa.func.ST_Intersects(Project.area, ServiceRequest.location),
        )
        .order_by(ServiceRequest.requested_at.desc())
        .limit(AREA_CANDIDATES)
    ).all()


def next_milestone(project: Project) -> ProjectMilestone | None:
    """The first milestone not done yet (by its order on the page)."""
    return next((m for m in project.milestones if m.done_at is None), None)


def area_geojson(project: Project) -> dict | None:
    return None if project.area is None else mapping(to_shape(project.area))


def area_text(project: Project) -> str:
    found = area_geojson(project)
    return json.dumps(found) if found else ""


def public_summary(session: Session, request: ServiceRequest) -> dict[str, Any] | None:
    """The project a request's public page shows: None unless the request is linked and
    itself public. Nothing staff-only (no owner, no description)."""
    if request.project_id is None or not is_public_request(session, request):
        return None
    project = session.get(Project, request.project_id)
    if project is None:
        return None
    upcoming = next_milestone(project)
    return {
        "id": project.id,
        "name": project.name,
        "status": project.status,
        "status_label": STATUS_LABELS[project.status],
        "target_date": project.target_date,
        "next_milestone": (
            {"title": upcoming.title, "due_date": upcoming.due_date} if upcoming else None
        ),
    }


# --------------------------------------------------------------------------- validation


@dataclass
class MilestoneInput:
    """One row of the milestones form; ``id`` is an existing milestone's."""

    title: str | None = None
    due_date: str | date | None = None
    done: bool = False
    id: int | None = None


@dataclass
class ProjectInput:
    """The project form's values, as posted (text) or as Python values."""

    name: str | None = None
    description: str | None = None
    owner_id: int | str | None = None
    department_id: int | str | None = None
    status: str | None = "planned"
    target_date: str | date | None = None
    area: str | dict | None = None
    milestones: list[MilestoneInput] = field(default_factory=list)


def parse_date(value: str | date | None, field_name: str) -> date | None:
    """A calendar date from ``YYYY-MM-DD`` (empty: None)."""
    if value is None or isinstance(value, date):
        return value
    text = str(value).strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"{text!r} is not a date: write it as YYYY-MM-DD", field=field_name
        ) from None


def _int_or_none(value: Any, field_name: str, what: str) -> int | None:
    if value is None or str(value).strip() == "":
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        raise InvalidInput(f"pick {what} from the list", field=field_name) from None


def _text(value: str | None, field_name: str, label: str, limit: int, required=False):
    text = (value or "").replace("\r\n", "\n").strip()
    if not text:
        if required:
            raise InvalidInput(f"Give the {label}", field=field_name)
        return None
    if len(text) > limit:
        raise InvalidInput(
            f"Keep the {label} to {limit} characters (it has {len(text)})", field=field_name
        )
    return text


def _owner(session: Session, city_id: int, value: Any) -> int | None:
    owner_id = _int_or_none(value, "owner_id", "the owner")
    if owner_id is None:
        return None
    owner = session.get(User, owner_id)
    if (
        owner is None
        or owner.jurisdiction_id != city_id
        or not owner.active
        or owner.role not in _STAFF_ROLES
    ):
        raise InvalidInput("The owner must be an active staff member of this city", "owner_id")
    return owner.id


def _department(session: Session, city_id: int, value: Any) -> int | None:
    department_id = _int_or_none(value, "department_id", "the department")
    if department_id is None:
        return None
    dept = session.get(Department, department_id)
    if dept is None or dept.jurisdiction_id != city_id:
        raise InvalidInput("Pick a department of this city", field="department_id")
    return dept.id


def _area(session: Session, city_id: int, value: str | dict | None):
    """A Polygon or MultiPolygon (GeoJSON, lon/lat) that touches the city, or None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        if len(value) > MAX_AREA_TEXT:
            raise InvalidInput("The area is too detailed: draw it with fewer corners", "area")
        try:
            value = json.loads(value)
        except ValueError:
            raise InvalidInput("The area must be a GeoJSON polygon", field="area") from None
    if isinstance(value, dict) and value.get("type") == "Feature":
        value = value.get("geometry")
    if not isinstance(value, dict) or value.get("type") not in ("Polygon", "MultiPolygon"):
        raise InvalidInput("The area must be a GeoJSON polygon", field="area")
    try:
        geom = shape(value)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        raise InvalidInput("The area must be a GeoJSON polygon", field="area") from None
    polygons = list(geom.geoms) if geom.geom_type == "MultiPolygon" else [geom]
    vertices = sum(
        len(p.exterior.coords) + sum(len(r.coords) for r in p.interiors) for p in polygons
    )
    if vertices > MAX_AREA_VERTICES:
        raise InvalidInput("The area is too detailed: draw it with fewer corners", "area")
    if geom.is_empty or not geom.is_valid or geom.area == 0:
        raise InvalidInput(
            "The area's outline crosses itself or has no inside: draw it again", field="area"
        )
    minx, miny, maxx, maxy = geom.bounds
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise InvalidInput("The area must be in longitude and latitude degrees", "area")
    area = from_shape(geom, srid=4326)
    inside = session.scalar(
        sa.select(sa.func.ST_Intersects(Jurisdiction.boundary, area)).where(
            Jurisdiction.id == city_id
        )
    )
    if inside is False:
        raise InvalidInput("The area is outside the city", field="area")
    return area


def _milestones(rows: list[MilestoneInput]) -> list[tuple[MilestoneInput, str, date | None]]:
    """The filled-in rows, validated; a row with neither title nor date is skipped."""
    out = []
    for n, row in enumerate(rows, start=1):
        title = (row.title or "").strip()
        due = parse_date(row.due_date, f"milestone_due_{n}")
        if not title:
            if due is not None or row.done:
                raise InvalidInput(f"Milestone {n} needs a title", field=f"milestone_title_{n}")
            continue
        if len(title) > MAX_MILESTONE_TITLE:
            raise InvalidInput(
                f"Keep milestone {n}'s title to {MAX_MILESTONE_TITLE} characters",
                field=f"milestone_title_{n}",
            )
        out.append((row, title, due))
    if len(out) > MAX_MILESTONES:
        raise InvalidInput(f"A project holds at most {MAX_MILESTONES} milestones", "milestones")
    return out


@dataclass
class _Clean:
    name: str
    description: str | None
    owner_id: int | None
    department_id: int | None
    status: str
    target_date: date | None
    area: Any
    milestones: list[tuple[MilestoneInput, str, date | None]]


def _clean(session: Session, city_id: int, data: ProjectInput) -> _Clean:
    status = (data.status or "planned").strip()
    if status not in PROJECT_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(PROJECT_STATUSES)}", "status")
    return _Clean(
        name=_text(data.name, "name", "project's name", MAX_NAME, required=True),
        description=_text(data.description, "description", "description", MAX_DESCRIPTION),
        owner_id=_owner(session, city_id, data.owner_id),
        department_id=_department(session, city_id, data.department_id),
        status=status,
        target_date=parse_date(data.target_date, "target_date"),
        area=_area(session, city_id, data.area),
        milestones=_milestones(data.milestones),
    )


def _set_milestones(project: Project, rows, now: datetime) -> None:
    existing = {m.id: m for m in project.milestones}
    kept = []
    for position, (row, title, due) in enumerate(rows):
        milestone = existing.get(row.id) if row.id is not None else None
        if milestone is None:
            milestone = ProjectMilestone(title=title)
        milestone.title = title
        milestone.due_date = due
        milestone.position = position
        if row.done and milestone.done_at is None:
            milestone.done_at = now
        elif not row.done:
            milestone.done_at = None
        kept.append(milestone)
    project.milestones = kept


# --------------------------------------------------------------------------- writing


def create_project(session: Session, user: User, city: Jurisdiction, data: ProjectInput) -> Project:
    """A new project of ``city``. Finishing one is :func:`update_project`'s work, so a
    new project starts planned, under way or on hold."""
    require_edit(user, city.id)
    clean = _clean(session, city.id, data)
    if clean.status not in OPEN_PROJECT_STATUSES:
        raise InvalidInput("A new project starts planned, under way or on hold", "status")
    now = now_utc()
    project = Project(
        jurisdiction_id=city.id,
        name=clean.name,
        description=clean.description,
        owner_id=clean.owner_id,
        department_id=clean.department_id,
        status=clean.status,
        target_date=clean.target_date,
        area=clean.area,
        created_at=now,
        updated_at=now,
    )
    _set_milestones(project, clean.milestones, now)
    session.add(project)
    session.flush()
    return project


@dataclass
class UpdateResult:
    project: Project
    resolved: list[str]  # public ids of the requests resolved with the closing message


def update_project(
    session: Session,
    user: User,
    project: Project,
    data: ProjectInput,
    *,
    resolve_message: str | None = None,
    public_base_url: str | None = None,
) -> UpdateResult:
    """Save the form; a project becoming ``done`` with ``resolve_message`` resolves its
    open requests with that message (:func:`resolve_linked`)."""
    require_edit(user, project.jurisdiction_id)
    clean = _clean(session, project.jurisdiction_id, data)
    message = _text(resolve_message, "resolve_message", "message", MAX_CLOSE_MESSAGE)
    if message and clean.status != "done":
        raise InvalidInput(
            "Only a project marked done resolves its requests: set the status to done"
            if clean.status != "cancelled"
            else "A cancelled project resolves nothing: its requests stay open",
            field="resolve_message",
        )
    now = now_utc()
    to_resolve = _open_linked(session, project) if message else []
    for req in to_resolve:
        # A dispatcher scoped to departments resolves only what they work.
        if not may(user, "project", req):
            raise Forbidden(
                f"{req.public_id} belongs to a department you do not work for: it cannot be"
                " resolved by you"
            )
    was_open = project.status in OPEN_PROJECT_STATUSES
    project.name = clean.name
    project.description = clean.description
    project.owner_id = clean.owner_id
    project.department_id = clean.department_id
    project.status = clean.status
    project.target_date = clean.target_date
    project.area = clean.area
    project.updated_at = now
    if clean.status in OPEN_PROJECT_STATUSES:
        project.closed_at = None
        project.close_message = None
    elif was_open:
        project.closed_at = now
    _set_milestones(project, clean.milestones, now)
    resolved = []
    if message:
        project.close_message = message
        resolved = _resolve(session, user, to_resolve, message, now, public_base_url)
    return UpdateResult(project, resolved)


def close_project(
    session: Session,
    user: User,
    project: Project,
    *,
    status: str = "done",
    resolve_message: str | None = None,
    public_base_url: str | None = None,
) -> UpdateResult:
    """Finish (``done``) or cancel the project, keeping everything else as it is; a
    finished one resolves its open requests with ``resolve_message`` when given."""
    if status not in ("done", "cancelled"):
        raise InvalidInput("A project closes as done or cancelled", field="status")
    if project.status not in OPEN_PROJECT_STATUSES:
        raise InvalidInput(
            f"Project {project.name} is already {STATUS_LABELS[project.status].lower()}",
            field="status",
        )
    if resolve_message is not None and not resolve_message.strip():
        raise InvalidInput("Write the message the reporters will read", "resolve_message")
    data = ProjectInput(
        name=project.name,
        description=project.description,
        owner_id=project.owner_id,
        department_id=project.department_id,
        status=status,
        target_date=project.target_date,
        area=area_geojson(project),
        milestones=[
            MilestoneInput(m.title, m.due_date, m.done_at is not None, m.id)
            for m in project.milestones
        ],
    )
    return update_project(
        session,
        user,
        project,
        data,
        resolve_message=resolve_message,
        public_base_url=public_base_url,
    )


def _open_linked(session: Session, project: Project) -> list[ServiceRequest]:
    return list(
        session.scalars(
            sa.select(ServiceRequest)
            .where(
                ServiceRequest.project_id == project.id,
                ServiceRequest.status.in_(_OPEN_REQUEST),
            )
            .order_by(ServiceRequest.id)
            .with_for_update()
        )
    )


def _resolve(
    session: Session,
    user: User,
    requests: list[ServiceRequest],
    message: str,
    now: datetime,
    public_base_url: str | None,
) -> list[str]:
    done = []
    for req in requests:
        old = req.status
        staff_event(
            session,
            user,
            req,
            "status",
            now,
            from_value=old,
            to_value="resolved",
            note=message,
            public=True,
        )
        req.status = Status.RESOLVED.value
        req.closed_at = now
        req.close_reason = message
        req.updated_at = now
        if req.first_response_at is None:
            req.first_response_at = now
        if public_base_url:
            messages.on_status_change(
                session, req, old, Status.RESOLVED.value, public_base_url, note=message
            )
        done.append(req.public_id)
    return done


def find_city_request(session: Session, city_id: int, public_id: str | None) -> ServiceRequest:
    """The request ``public_id`` of the city (another city's is "not found", as staff of
    one city learn nothing of another's)."""
    text = (public_id or "").strip().upper()
    if not text:
        raise InvalidInput("Give the reference of the request", field="public_id")
    req = session.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == text))
    if req is None or req.jurisdiction_id != city_id:
        raise InvalidInput(f"no request {text} in this city", field="public_id")
    return req


def link_request(
    session: Session, user: User, project: Project, request: ServiceRequest
) -> ServiceRequest:
    """Make ``request`` part of ``project`` (a public ``project`` event says so)."""
    require_edit(user, project.jurisdiction_id)
    if request.jurisdiction_id != project.jurisdiction_id:
        raise InvalidInput(f"no request {request.public_id} in this city", field="public_id")
    require(user, "project", request)
    if project.status not in OPEN_PROJECT_STATUSES:
        raise InvalidInput(
            f"Project {project.name} is {STATUS_LABELS[project.status].lower()}: "
            "reopen it before linking requests",
            field="public_id",
        )
    if request.project_id == project.id:
        raise InvalidInput(
            f"{request.public_id} is already part of this project", field="public_id"
        )
    if request.project_id is not None:
        other = session.get(Project, request.project_id)
        raise InvalidInput(
            f"{request.public_id} is already part of project {other.name}: unlink it there first",
            field="public_id",
        )
    now = now_utc()
    staff_event(
        session,
        user,
        request,
        "project",
        now,
        to_value=project.name,
        note=f"Part of project {project.name}",
        public=True,
    )
    request.project_id = project.id
    request.updated_at = now
    return request


def link_requests(
    session: Session, user: User, project: Project, public_ids: list[str]
) -> list[ServiceRequest]:
    """Link several requests at once: all of them, or none when one is refused."""
    wanted = [p.strip().upper() for p in public_ids if p and p.strip()]
    if not wanted:
        raise InvalidInput("Pick at least one request", field="public_ids")
    return [
        link_request(session, user, project, find_city_request(session, project.jurisdiction_id, p))
        for p in dict.fromkeys(wanted)
    ]


def unlink_request(
    session: Session, user: User, project: Project, request: ServiceRequest
) -> ServiceRequest:
    """Take ``request`` out of ``project`` (a public ``project`` event says so)."""
    require_edit(user, project.jurisdiction_id)
    if request.project_id != project.id:
        raise InvalidInput(
            f"{request.public_id} is not part of project {project.name}", field="public_id"
        )
    require(user, "project", request)
    now = now_utc()
    staff_event(
        session,
        user,
        request,
        "project",
        now,
        from_value=project.name,
        note=f"No longer part of project {project.name}",
        public=True,
    )
    request.project_id = None
    request.updated_at = now
    return request


def set_request_project(
    session: Session, user: User, request: ServiceRequest, project_id: Any
) -> Project | None:
    """The request panel's choice: link to ``project_id``, or (empty) unlink."""
    if project_id is None or str(project_id).strip() == "":
        if request.project_id is None:
            raise InvalidInput(f"{request.public_id} is part of no project", "project_id")
        project = session.get(Project, request.project_id)
        unlink_request(session, user, project, request)
        return None
    try:
        project = get_project(session, request.jurisdiction_id, project_id)
    except NotFound:
        raise InvalidInput("Pick a project of this city", field="project_id") from None
    if request.project_id == project.id:
        raise InvalidInput(f"{request.public_id} is already part of {project.name}", "project_id")
    if request.project_id is not None:
        # Moving it: out of the old project, into the new one, both on the record.
        unlink_request(session, user, session.get(Project, request.project_id), request)
    link_request(session, user, project, request)
    return project


def get_linked(session: Session, request: ServiceRequest) -> Project | None:
    """The project ``request`` is part of, if any."""
    return session.get(Project, request.project_id) if request.project_id else None


def open_projects(session: Session, city_id: int) -> list[Project]:
    """The projects a request may join (for the request panel's list)."""
    return list(
        session.scalars(
            sa.select(Project)
            .where(
                Project.jurisdiction_id == city_id,
                Project.status.in_(OPEN_PROJECT_STATUSES),
            )
            .order_by(Project.name)
        )
    )


def owner_choices(session: Session, city_id: int) -> list[User]:
    """Active staff of the city, by name."""
    return list(
        session.scalars(
            sa.select(User)
            .where(
                User.jurisdiction_id == city_id,
                User.active.is_(True),
                User.role.in_(_STAFF_ROLES),
            )
            .order_by(sa.func.coalesce(User.name, User.email))
        )
    )
