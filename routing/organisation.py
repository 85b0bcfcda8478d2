"""A city's organisation: departments, crews, the zones crews own, and staff membership.

Every function takes a session and plain values (or model objects of the city), checks
everything before it writes, raises :class:`~spatial.errors.InvalidInput` naming the bad
field, and commits nothing: the admin page and the CLI hold the transaction and write
the admin audit event beside the change.

Owning a zone is how a "crew from zone" routing rule picks its crew: the zone's
``crew_id`` (with the crew's department as the zone's ``department_id``). A department
or crew that requests, routing rules, categories or mail addresses refer to is not
deleted: the message says what refers to it, so no history cascades away silently.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

# Department and crew codes follow the catalogue's codes (letters, digits, dots, dashes,
# underscores): they appear in crew codes ("<department>-<zone>"), in the CLI's
# DEPARTMENT/CREW and in the city's YAML file, whose schema checks every code with it.
from routing.categories import CODE_RE
from spatial.accounts import validate_email
from spatial.errors import InvalidInput
from spatial.models import (
    Crew,
    Department,
    Jurisdiction,
    RequestEvent,
    RoutingRule,
    Service,
    ServiceRequest,
    User,
    Zone,
    ZoneLayer,
    staff_department,
)
from spatial.models_mail import MailAddress

MAX_NAME = 200


# --------------------------------------------------------------------------- values


def clean_code(value: str | None, field: str = "code") -> str:
    """A department or crew code: 1-64 letters, digits, dots, dashes or underscores."""
    code = (value or "").strip()
    if not CODE_RE.match(code):
        raise InvalidInput(
            f"code {code!r} must be 1-64 letters, digits, dots, dashes or underscores,"
            " starting with a letter or digit"
            if code
            else "give a code (letters, digits, dots, dashes or underscores)",
            field=field,
        )
    return code


def clean_name(value: str | None, field: str = "name") -> str:
    name = " ".join((value or "").split())
    if not name or len(name) > MAX_NAME:
        raise InvalidInput(f"give a name of 1-{MAX_NAME} characters", field=field)
    return name


def clean_email(value: str | None, field: str = "email") -> str | None:
    """A contact address, or None when left empty."""
    value = (value or "").strip()
    return validate_email(value, field).lower() if value else None


def _plural(count: int, word: str, words: str | None = None) -> str:
    return f"{count} {word if count == 1 else words or word + 's'}"


def _names(values: list[str], limit: int = 5) -> str:
    shown = ", ".join(values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


# --------------------------------------------------------------------------- departments


def departments(session: Session, city: Jurisdiction) -> list[Department]:
    """The city's departments, by code."""
    return list(
        session.scalars(
            sa.select(Department)
            .where(Department.jurisdiction_id == city.id)
            .order_by(Department.code)
        )
    )


def department_by_code(session: Session, city: Jurisdiction, code: str) -> Department:
    dept = session.scalar(
        sa.select(Department).where(
            Department.jurisdiction_id == city.id, Department.code == (code or "").strip()
        )
    )
    if dept is None:
        raise InvalidInput(f"{city.slug} has no department {code!r}", field="department")
    return dept


def department_of_city(
    session: Session, city: Jurisdiction, department_id: int | None
) -> Department:
    dept = session.get(Department, department_id) if department_id else None
    if dept is None or dept.jurisdiction_id != city.id:
        raise InvalidInput("choose a department of this city", field="department_id")
    return dept


def _department_code_free(
    session: Session, city: Jurisdiction, code: str, exclude_id: int | None = None
) -> None:
    clash = session.scalar(
        sa.select(Department.id).where(
            Department.jurisdiction_id == city.id,
            sa.func.lower(Department.code) == code.lower(),
            Department.id != (exclude_id or 0),
        )
    )
    if clash:
        raise InvalidInput(f"{city.slug} already has a department {code!r}", field="code")


def create_department(
    session: Session, city: Jurisdiction, *, code: str, name: str, email: str | None = None
) -> Department:
    """A new department of ``city``; its code is unique in the city (any letter case)."""
    code = clean_code(code)
    name = clean_name(name)
    email = clean_email(email)
    _department_code_free(session, city, code)
    dept = Department(jurisdiction_id=city.id, code=code, name=name, email=email)
    session.add(dept)
    session.flush()
    return dept


def update_department(
    session: Session,
    dept: Department,
    *,
    code: str | None = None,
    name: str | None = None,
    email: str | None = None,
    clear_email: bool = False,
    escalation_email: str | None = None,
    clear_escalation_email: bool = False,
) -> dict[str, list]:
    """Change what is given; returns the changes as ``{field: [old, new]}``.

    ``escalation_email``: who hears of the second level of an escalation (a director)."""
    city = session.get(Jurisdiction, dept.jurisdiction_id)
    new = {
        "code": clean_code(code) if code is not None else dept.code,
        "name": clean_name(name) if name is not None else dept.name,
        "email": None if clear_email else (clean_email(email) if email is not None else dept.email),
        "escalation_email": None
        if clear_escalation_email
        else (
            clean_email(escalation_email, "escalation_email")
            if escalation_email is not None
            else dept.escalation_email
        ),
    }
    if new["code"] != dept.code:
        _department_code_free(session, city, new["code"], exclude_id=dept.id)
    changes = {k: [getattr(dept, k), v] for k, v in new.items() if getattr(dept, k) != v}
    for key, (_, value) in changes.items():
        setattr(dept, key, value)
    session.flush()
    return changes


def _department_references(session: Session, dept: Department) -> list[str]:
    out = []
    crews = session.scalars(
        sa.select(Crew.code).where(Crew.department_id == dept.id).order_by(Crew.code)
    ).all()
    if crews:
        out.append(f"{_plural(len(crews), 'crew')} ({_names(list(crews))})")
    requests = session.scalar(
        sa.select(sa.func.count()).where(ServiceRequest.department_id == dept.id)
    )
    if requests:
        out.append(_plural(requests, "request"))
    # Events keep the department whose staff alone may read an internal note.
    events = session.scalar(sa.select(sa.func.count()).where(RequestEvent.department_id == dept.id))
    if events and not requests:
        out.append(_plural(events, "request event"))
    rules = session.scalars(
        sa.select(RoutingRule.name)
        .where(RoutingRule.department_id == dept.id)
        .order_by(RoutingRule.name)
    ).all()
    if rules:
        names = list(dict.fromkeys(f"{r!r}" for r in rules))
        out.append(f"{_plural(len(rules), 'routing rule')} ({_names(names)})")
    services = session.scalars(
        sa.select(Service.code)
        .where(Service.default_department_id == dept.id)
        .order_by(Service.code)
    ).all()
    if services:
        label = _plural(len(services), "category", "categories")
        out.append(f"{label} ({_names(list(services))})")
    addresses = session.scalars(
        sa.select(MailAddress.address)
        .where(MailAddress.department_id == dept.id)
        .order_by(MailAddress.address)
    ).all()
    if addresses:
        label = _plural(len(addresses), "mail address", "mail addresses")
        out.append(f"{label} ({_names(list(addresses))})")
    return out


def delete_department(session: Session, dept: Department) -> None:
    """Delete a department nothing refers to (its memberships and zone links go with it)."""
    refs = _department_references(session, dept)
    if refs:
        raise InvalidInput(
            f"department {dept.code} cannot be deleted: it is used by {'; '.join(refs)}",
            field="delete",
        )
    session.delete(dept)
    session.flush()


# --------------------------------------------------------------------------- crews


def crews(session: Session, city: Jurisdiction) -> list[Crew]:
    """The city's crews, by department code and crew code."""
    return list(
        session.scalars(
            sa.select(Crew)
            .join(Department, Department.id == Crew.department_id)
            .where(Department.jurisdiction_id == city.id)
            .order_by(Department.code, Crew.code)
        )
    )


def crew_of_city(session: Session, city: Jurisdiction, crew_id: int | None) -> Crew:
    crew = session.get(Crew, crew_id) if crew_id else None
    if crew is None or crew.department.jurisdiction_id != city.id:
        raise InvalidInput("choose a crew of this city", field="crew_id")
    return crew


def crew_by_ref(session: Session, city: Jurisdiction, ref: str) -> Crew:
    """The crew named ``DEPARTMENT/CREW`` (codes)."""
    dept_code, sep, crew_code = (ref or "").strip().partition("/")
    if not sep or not dept_code or not crew_code:
        raise InvalidInput(f"name the crew as DEPARTMENT/CREW, not {ref!r}", field="crew")
    dept = department_by_code(session, city, dept_code)
    crew = session.scalar(
        sa.select(Crew).where(Crew.department_id == dept.id, Crew.code == crew_code)
    )
    if crew is None:
        raise InvalidInput(f"department {dept.code} has no crew {crew_code!r}", field="crew")
    return crew


def _crew_code_free(
    session: Session, dept: Department, code: str, exclude_id: int | None = None
) -> None:
    clash = session.scalar(
        sa.select(Crew.id).where(
            Crew.department_id == dept.id,
            sa.func.lower(Crew.code) == code.lower(),
            Crew.id != (exclude_id or 0),
        )
    )
    if clash:
        raise InvalidInput(f"department {dept.code} already has a crew {code!r}", field="code")


def create_crew(session: Session, dept: Department, *, code: str, name: str) -> Crew:
    """A new crew of ``dept``; its code is unique in the department."""
    code = clean_code(code)
    name = clean_name(name)
    _crew_code_free(session, dept, code)
    crew = Crew(department_id=dept.id, code=code, name=name)
    session.add(crew)
    session.flush()
    return crew


def update_crew(
    session: Session,
    crew: Crew,
    *,
    code: str | None = None,
    name: str | None = None,
    department: Department | None = None,
) -> dict[str, list]:
    """Change what is given; a crew moved to another department takes its zones along.

    Returns the changes as ``{field: [old, new]}`` (the department by code).
    """
    old_dept = crew.department
    dept = department or old_dept
    if dept.jurisdiction_id != old_dept.jurisdiction_id:
        raise InvalidInput("choose a department of this city", field="department_id")
    new_code = clean_code(code) if code is not None else crew.code
    new_name = clean_name(name) if name is not None else crew.name
    if dept.id != old_dept.id or new_code != crew.code:
        _crew_code_free(session, dept, new_code, exclude_id=crew.id)
    changes: dict[str, list] = {}
    if new_code != crew.code:
        changes["code"] = [crew.code, new_code]
    if new_name != crew.name:
        changes["name"] = [crew.name, new_name]
    if dept.id != old_dept.id:
        changes["department"] = [old_dept.code, dept.code]
        session.execute(
            sa.update(Zone).where(Zone.crew_id == crew.id).values(department_id=dept.id)
        )
    crew.code, crew.name, crew.department_id = new_code, new_name, dept.id
    session.flush()
    session.expire(crew, ["department"])
    return changes


def _crew_references(session: Session, crew: Crew) -> list[str]:
    out = []
    requests = session.scalar(sa.select(sa.func.count()).where(ServiceRequest.crew_id == crew.id))
    if requests:
        out.append(_plural(requests, "request"))
    rules = session.scalars(
        sa.select(RoutingRule.name).where(RoutingRule.crew_id == crew.id).order_by(RoutingRule.name)
    ).all()
    if rules:
        names = list(dict.fromkeys(f"{r!r}" for r in rules))
        out.append(f"{_plural(len(rules), 'routing rule')} ({_names(names)})")
    return out


def delete_crew(session: Session, crew: Crew) -> None:
    """Delete a crew no request or rule refers to; its zones become unowned."""
    refs = _crew_references(session, crew)
    if refs:
        raise InvalidInput(
            f"crew {crew.code} cannot be deleted: it is used by {'; '.join(refs)}", field="delete"
        )
    _release_zones(session, crew, keep=set())
    session.delete(crew)
    session.flush()


# --------------------------------------------------------------------------- zones


@dataclass(frozen=True)
class ZoneChoice:
    """A zone of a current layer version, as the crew page lists it."""

    id: int
    layer: str
    code: str
    name: str
    crew_id: int | None


def current_zones(session: Session, city: Jurisdiction) -> list[ZoneChoice]:
    """The zones of the city's current layer versions, by layer name and zone code."""
    rows = session.execute(
        sa.select(Zone.id, ZoneLayer.name, Zone.code, Zone.name, Zone.crew_id)
        .join(ZoneLayer, ZoneLayer.id == Zone.layer_id)
        .where(ZoneLayer.jurisdiction_id == city.id, ZoneLayer.is_current.is_(True))
        .order_by(ZoneLayer.name, Zone.code)
    ).all()
    return [ZoneChoice(*row) for row in rows]


def zones_by_refs(session: Session, city: Jurisdiction, refs: list[str]) -> list[int]:
    """Zone ids from ``LAYER:CODE`` references to the city's current layer versions."""
    by_ref = {(z.layer, z.code): z.id for z in current_zones(session, city)}
    out = []
    for ref in refs:
        ref = ref.strip()
        if not ref:
            continue
        layer, sep, code = ref.partition(":")
        if not sep or (layer, code) not in by_ref:
            raise InvalidInput(
                f"{ref!r} is not LAYER:CODE of a zone in a current layer of {city.slug}",
                field="zones",
            )
        out.append(by_ref[(layer, code)])
    return out


def zone_refs(session: Session, crew: Crew) -> list[str]:
    """The ``LAYER:CODE`` of the current-layer zones the crew owns."""
    rows = session.execute(
        sa.select(ZoneLayer.name, Zone.code)
        .join(ZoneLayer, ZoneLayer.id == Zone.layer_id)
        .where(Zone.crew_id == crew.id, ZoneLayer.is_current.is_(True))
        .order_by(ZoneLayer.name, Zone.code)
    ).all()
    return [f"{layer}:{code}" for layer, code in rows]


def _release_zones(session: Session, crew: Crew, keep: set[int]) -> list[int]:
    owned = session.scalars(
        sa.select(Zone.id)
        .join(ZoneLayer, ZoneLayer.id == Zone.layer_id)
        .where(Zone.crew_id == crew.id, ZoneLayer.is_current.is_(True))
    ).all()
    gone = [z for z in owned if z not in keep]
    if gone:
        # The department came with the crew; a zone's own department link stays.
        session.execute(
            sa.update(Zone)
            .where(Zone.id.in_(gone), Zone.department_id == crew.department_id)
            .values(crew_id=None, department_id=None)
        )
        session.execute(sa.update(Zone).where(Zone.id.in_(gone)).values(crew_id=None))
    return gone


def set_crew_zones(
    session: Session, crew: Crew, zone_ids: list[int]
) -> tuple[list[str], list[str]]:
    """Make the crew own exactly these zones of its city's current layer versions.

    A zone another crew owned moves to this one. Returns the ``LAYER:CODE`` of the zones
    added and of those released.
    """
    city = session.get(Jurisdiction, crew.department.jurisdiction_id)
    choices = {z.id: z for z in current_zones(session, city)}
    wanted = set()
    for zid in zone_ids:
        if zid not in choices:
            raise InvalidInput("choose zones of this city's current layers", field="zones")
        wanted.add(zid)
    released = _release_zones(session, crew, keep=wanted)
    added = sorted(z for z in wanted if choices[z].crew_id != crew.id)
    if added:
        session.execute(
            sa.update(Zone)
            .where(Zone.id.in_(added))
            .values(crew_id=crew.id, department_id=crew.department_id)
        )
    session.flush()

    def ref(zid: int) -> str:
        return f"{choices[zid].layer}:{choices[zid].code}"

    return [ref(z) for z in added], [ref(z) for z in released]


# --------------------------------------------------------------------------- membership


def _same_city(user: User, city_id: int, what: str) -> None:
    if user.jurisdiction_id != city_id:
        raise InvalidInput(f"{user.email} does not work in this {what}'s city", field="user")


def add_to_crew(session: Session, user: User, crew: Crew) -> bool:
    """Make ``user`` (any staff role of the crew's city) a member; False if already one."""
    _same_city(user, crew.department.jurisdiction_id, "crew")
    if crew in user.crews:
        return False
    user.crews.append(crew)
    session.flush()
    return True


def remove_from_crew(session: Session, user: User, crew: Crew) -> bool:
    """End the membership; False if ``user`` was not a member."""
    if crew not in user.crews:
        return False
    user.crews.remove(crew)
    session.flush()
    return True


def add_to_department(session: Session, user: User, dept: Department) -> bool:
    """Make ``user`` work for ``dept`` (a dispatcher or agent is then scoped to their
    departments); False if already a member."""
    _same_city(user, dept.jurisdiction_id, "department")
    if dept in user.departments:
        return False
    user.departments.append(dept)
    session.flush()
    return True


def remove_from_department(session: Session, user: User, dept: Department) -> bool:
    if dept not in user.departments:
        return False
    user.departments.remove(dept)
    session.flush()
    return True


def set_supervisor(session: Session, user: User, dept: Department, supervisor: bool) -> bool:
    """Make a member of ``dept`` one of its supervisors (who hear of its escalations and
    get its morning digest), or not; False if nothing changed."""
    if dept not in user.departments:
        raise InvalidInput(f"{user.email} does not work for {dept.code}", field="department_id")
    result = session.execute(
        sa.update(staff_department)
        .where(
            staff_department.c.user_id == user.id,
            staff_department.c.department_id == dept.id,
            staff_department.c.supervisor.is_not(supervisor),
        )
        .values(supervisor=supervisor)
    )
    return bool(result.rowcount)


def supervisor_ids(session: Session, dept_ids: list[int] | None = None) -> set[tuple[int, int]]:
    """(user id, department id) of every supervisor membership (of ``dept_ids``)."""
    stmt = sa.select(staff_department.c.user_id, staff_department.c.department_id).where(
        staff_department.c.supervisor.is_(True)
    )
    if dept_ids is not None:
        stmt = stmt.where(staff_department.c.department_id.in_(dept_ids))
    return {(u, d) for u, d in session.execute(stmt)}


def members(session: Session, crew: Crew) -> list[User]:
    """The crew's members, by e-mail."""
    return list(
        session.scalars(
            sa.select(User).where(User.crews.any(Crew.id == crew.id)).order_by(User.email)
        )
    )


def user_of_city(session: Session, city: Jurisdiction, user_id: int | None) -> User:
    user = session.get(User, user_id) if user_id else None
    if user is None or user.jurisdiction_id != city.id:
        raise InvalidInput("choose a user of this city", field="user")
    return user


def user_by_email(session: Session, city: Jurisdiction, email: str) -> User:
    """A staff user of ``city`` by e-mail (any letter case)."""
    address = validate_email(email).lower()
    user = session.scalar(sa.select(User).where(sa.func.lower(User.email) == address))
    if user is None or user.jurisdiction_id != city.id:
        raise InvalidInput(f"{city.slug} has no user {address}", field="user")
    return user
