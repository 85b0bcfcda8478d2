"""Administration: departments, crews (their zones and members) and staff membership.

Thin pages over :mod:`routing.organisation`: every view is admin-only, objects of
another city are 404, a bad field re-renders the page with status 400 and the message
beside the field after a rollback, and every change writes one admin audit event in the
change's own transaction.
"""

from __future__ import annotations

from itertools import groupby
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, flash, redirect, request, url_for

from routing import organisation as org
from spatial.errors import InvalidInput, NotFound
from spatial.models import Crew, Department, Jurisdiction, User
from webmap.admin import _audit, _city, _page
from webmap.app import db_session
from webmap.auth import roles_required
from webmap.staffkit import install_errors, install_headers

bp = Blueprint("admin_org", __name__, url_prefix="/admin")
install_headers(bp)
install_errors(bp)


def _invalid(template: str, exc: InvalidInput, ctx: Any):
    """Roll back, then show the page again (``ctx()`` read afresh) with the message."""
    db_session().rollback()
    field = exc.field or "form"
    return _page(template, 400, errors={field: str(exc)}, form=request.form, **ctx())


def _form(name: str) -> str:
    return (request.form.get(name) or "").strip()


def _int(name: str) -> int | None:
    value = _form(name)
    try:
        return int(value) if value else None
    except ValueError:
        raise InvalidInput(f"{name} must be a number", field=name) from None


def _department(city: Jurisdiction, department_id: int) -> Department:
    dept = db_session().get(Department, department_id)
    if dept is None or dept.jurisdiction_id != city.id:
        raise NotFound(f"no department {department_id}")
    return dept


def _crew(city: Jurisdiction, crew_id: int) -> Crew:
    crew = db_session().get(Crew, crew_id)
    if crew is None or crew.department.jurisdiction_id != city.id:
        raise NotFound(f"no crew {crew_id}")
    return crew


def _user(city: Jurisdiction, user_id: int) -> User:
    user = db_session().get(User, user_id)
    if user is None or user.jurisdiction_id != city.id:
        raise NotFound(f"no user {user_id}")
    return user


def _staff(city: Jurisdiction) -> list[User]:
    return list(
        db_session().scalars(
            sa.select(User).where(User.jurisdiction_id == city.id).order_by(User.email)
        )
    )


# --------------------------------------------------------------------------- departments


def _departments_ctx() -> dict[str, Any]:
    session = db_session()
    city = _city()
    depts = org.departments(session, city)
    crew_counts = dict(
        session.execute(
            sa.select(Crew.department_id, sa.func.count())
            .where(Crew.department_id.in_([d.id for d in depts]))
            .group_by(Crew.department_id)
        ).all()
    )
    return {"departments": depts, "crew_counts": crew_counts}


@bp.get("/departments")
@roles_required("admin")
def departments():
    """The city's departments, and a form for a new one."""
    return _page("org_departments.html", **_departments_ctx())


@bp.post("/departments")
@roles_required("admin")
def create_department():
    try:
        dept = org.create_department(
            db_session(), _city(), code=_form("code"), name=_form("name"), email=_form("email")
        )
    except InvalidInput as exc:
        return _invalid("org_departments.html", exc, _departments_ctx)
    what = {"code": dept.code, "name": dept.name, "email": dept.email}
    _audit("department.create", "department", dept.id, **what)
    db_session().commit()
    flash(f"Department {dept.code} ({dept.name}) created.")
    return redirect(url_for("admin_org.department", department_id=dept.id))


def _department_ctx(department_id: int) -> Any:
    def ctx() -> dict[str, Any]:
        session = db_session()
        dept = _department(_city(), department_id)
        staff = session.scalars(
            sa.select(User)
            .where(User.departments.any(Department.id == dept.id))
            .order_by(User.email)
        ).all()
        crews = session.scalars(
            sa.select(Crew).where(Crew.department_id == dept.id).order_by(Crew.code)
        ).all()
        supervisors = {u for u, _d in org.supervisor_ids(session, [dept.id])}
        return {"dept": dept, "crews": crews, "staff": staff, "supervisors": supervisors}

    return ctx


@bp.get("/departments/<int:department_id>")
@roles_required("admin")
def department(department_id: int):
    """One department: edit, its crews and staff, delete."""
    return _page("org_department.html", **_department_ctx(department_id)())


@bp.post("/departments/<int:department_id>")
@roles_required("admin")
def edit_department(department_id: int):
    dept = _department(_city(), department_id)
    email = _form("email")
    escalation_email = _form("escalation_email")
    try:
        changes = org.update_department(
            db_session(),
            dept,
            code=_form("code"),
            name=_form("name"),
            email=email or None,
            clear_email=not email,
            escalation_email=escalation_email or None,
            clear_escalation_email=not escalation_email,
        )
    except InvalidInput as exc:
        return _invalid("org_department.html", exc, _department_ctx(department_id))
    if changes:
        _audit("department.edit", "department", dept.id, code=dept.code, **changes)
        db_session().commit()
        flash(f"Department {dept.code} saved.")
    else:
        flash("Nothing changed.")
    return redirect(url_for("admin_org.department", department_id=dept.id))


@bp.post("/departments/<int:department_id>/delete")
@roles_required("admin")
def delete_department(department_id: int):
    dept = _department(_city(), department_id)
    code, name = dept.code, dept.name
    try:
        org.delete_department(db_session(), dept)
    except InvalidInput as exc:
        return _invalid("org_department.html", exc, _department_ctx(department_id))
    _audit("department.delete", "department", department_id, code=code, name=name)
    db_session().commit()
    flash(f"Department {code} deleted.")
    return redirect(url_for("admin_org.departments"))


# --------------------------------------------------------------------------- crews


def _crews_ctx() -> dict[str, Any]:
    session = db_session()
    city = _city()
    crews = org.crews(session, city)
    zone_counts = {c.id: len(org.zone_refs(session, c)) for c in crews}
    member_counts = dict(
        session.execute(
            sa.text(
                "SELECT crew_id, count(*) FROM staff_crew WHERE crew_id = ANY(:ids) GROUP BY 1"
            ),
            {"ids": [c.id for c in crews]},
        ).all()
    )
    return {
        "crews": crews,
        "departments": org.departments(session, city),
        "zone_counts": zone_counts,
        "member_counts": member_counts,
    }


@bp.get("/crews")
@roles_required("admin")
def crews():
    """The city's crews, and a form for a new one."""
    return _page("org_crews.html", **_crews_ctx())


@bp.post("/crews")
@roles_required("admin")
def create_crew():
    session = db_session()
    try:
        dept = org.department_of_city(session, _city(), _int("department_id"))
        crew = org.create_crew(session, dept, code=_form("code"), name=_form("name"))
    except InvalidInput as exc:
        return _invalid("org_crews.html", exc, _crews_ctx)
    _audit("crew.create", "crew", crew.id, department=dept.code, code=crew.code, name=crew.name)
    session.commit()
    flash(f"Crew {dept.code}/{crew.code} created: choose its zones and members.")
    return redirect(url_for("admin_org.crew", crew_id=crew.id))


def _crew_ctx(crew_id: int) -> Any:
    def ctx() -> dict[str, Any]:
        session = db_session()
        city = _city()
        crew = _crew(city, crew_id)
        zones = org.current_zones(session, city)
        owners = {c.id: c for c in org.crews(session, city)}
        members = org.members(session, crew)
        return {
            "crew": crew,
            "departments": org.departments(session, city),
            "layers": [(name, list(rows)) for name, rows in groupby(zones, key=lambda z: z.layer)],
            "owners": owners,
            "members": members,
            "candidates": [u for u in _staff(city) if u not in members],
        }

    return ctx


@bp.get("/crews/<int:crew_id>")
@roles_required("admin")
def crew(crew_id: int):
    """One crew: name, department, the zones it owns, its members, delete."""
    return _page("org_crew.html", **_crew_ctx(crew_id)())


@bp.post("/crews/<int:crew_id>")
@roles_required("admin")
def edit_crew(crew_id: int):
    session = db_session()
    city = _city()
    crew = _crew(city, crew_id)
    try:
        dept = org.department_of_city(session, city, _int("department_id"))
        changes = org.update_crew(
            session, crew, code=_form("code"), name=_form("name"), department=dept
        )
    except InvalidInput as exc:
        return _invalid("org_crew.html", exc, _crew_ctx(crew_id))
    if changes:
        _audit("crew.edit", "crew", crew.id, code=crew.code, **changes)
        session.commit()
        flash(f"Crew {crew.code} saved.")
    else:
        flash("Nothing changed.")
    return redirect(url_for("admin_org.crew", crew_id=crew.id))


@bp.post("/crews/<int:crew_id>/zones")
@roles_required("admin")
def crew_zones(crew_id: int):
    session = db_session()
    crew = _crew(_city(), crew_id)
    try:
        ids = []
        for raw in request.form.getlist("zone"):
            try:
                ids.append(int(raw))
            except ValueError:
                msg = "choose zones of this city's current layers"
                raise InvalidInput(msg, field="zones") from None
        added, released = org.set_crew_zones(session, crew, ids)
    except InvalidInput as exc:
        return _invalid("org_crew.html", exc, _crew_ctx(crew_id))
    _audit("crew.zones", "crew", crew.id, code=crew.code, added=added, released=released)
    session.commit()
    flash(f"Crew {crew.code} owns {len(org.zone_refs(session, crew))} zone(s).")
    return redirect(url_for("admin_org.crew", crew_id=crew.id))


@bp.post("/crews/<int:crew_id>/members")
@roles_required("admin")
def crew_members(crew_id: int):
    """``op`` = add | remove the user ``user_id``."""
    session = db_session()
    city = _city()
    crew = _crew(city, crew_id)
    op = _form("op") or "add"
    try:
        if op not in ("add", "remove"):
            raise InvalidInput("op must be add or remove", field="user_id")
        user = org.user_of_city(session, city, _int("user_id"))
        changed = (org.add_to_crew if op == "add" else org.remove_from_crew)(session, user, crew)
    except InvalidInput as exc:
        exc.field = "user_id"
        return _invalid("org_crew.html", exc, _crew_ctx(crew_id))
    if changed:
        _audit(f"crew.member_{op}", "crew", crew.id, code=crew.code, user=user.email)
        session.commit()
    flash(
        f"{user.email} {'is now a member of' if op == 'add' else 'has left'} {crew.name}."
        if changed
        else f"Nothing changed for {user.email}."
    )
    return redirect(url_for("admin_org.crew", crew_id=crew.id))


@bp.post("/crews/<int:crew_id>/delete")
@roles_required("admin")
def delete_crew(crew_id: int):
    crew = _crew(_city(), crew_id)
    code, dept_code = crew.code, crew.department.code
    try:
        org.delete_crew(db_session(), crew)
    except InvalidInput as exc:
        return _invalid("org_crew.html", exc, _crew_ctx(crew_id))
    _audit("crew.delete", "crew", crew_id, department=dept_code, code=code)
    db_session().commit()
    flash(f"Crew {dept_code}/{code} deleted.")
    return redirect(url_for("admin_org.crews"))


# --------------------------------------------------------------------------- membership


def _membership_ctx(user_id: int) -> Any:
    def ctx() -> dict[str, Any]:
        session = db_session()
        city = _city()
        member = _user(city, user_id)
        return {
            "member": member,
            "all_crews": org.crews(session, city),
            "all_departments": org.departments(session, city),
            "supervises": {d for u, d in org.supervisor_ids(session) if u == member.id},
        }

    return ctx


@bp.get("/users/<int:user_id>/membership")
@roles_required("admin")
def membership(user_id: int):
    """A user's crews and departments (a dispatcher's departments scope their queue)."""
    return _page("org_membership.html", **_membership_ctx(user_id)())


@bp.post("/users/<int:user_id>/membership")
@roles_required("admin")
def change_membership(user_id: int):
    """``op`` = add | remove, with ``crew_id`` or ``department_id``; supervise |
    unsupervise, with ``department_id`` (the member hears of its escalations)."""
    session = db_session()
    city = _city()
    member = _user(city, user_id)
    op = _form("op") or "add"
    try:
        if op not in ("add", "remove", "supervise", "unsupervise"):
            raise InvalidInput("op must be add, remove, supervise or unsupervise", field="form")
        if op in ("supervise", "unsupervise"):
            target = org.department_of_city(session, city, _int("department_id"))
            kind, label = "department", target.code
            changed = org.set_supervisor(session, member, target, op == "supervise")
        elif _form("crew_id"):
            target: Crew | Department = org.crew_of_city(session, city, _int("crew_id"))
            kind, label = "crew", f"{target.department.code}/{target.code}"
            fn = org.add_to_crew if op == "add" else org.remove_from_crew
        elif _form("department_id"):
            target = org.department_of_city(session, city, _int("department_id"))
            kind, label = "department", target.code
            fn = org.add_to_department if op == "add" else org.remove_from_department
        else:
            raise InvalidInput("choose a crew or a department", field="crew_id")
        if op in ("add", "remove"):
            changed = fn(session, member, target)
    except InvalidInput as exc:
        return _invalid("org_membership.html", exc, _membership_ctx(user_id))
    if changed:
        _audit(f"membership.{op}", "user", member.id, email=member.email, **{kind: label})
        session.commit()
    done = {
        "add": "joined",
        "remove": "left",
        "supervise": "supervises",
        "unsupervise": "no longer supervises",
    }[op]
    flash(
        f"{member.email} {done} {kind} {label}."
        if changed
        else f"Nothing changed for {member.email}."
    )
    return redirect(url_for("admin_org.membership", user_id=member.id))
