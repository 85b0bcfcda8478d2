"""Projects: the staff pages (list, detail with its map, form, linking requests, closing)
and the public page of a project.

Staff pages live under ``/staff/projects`` for dispatchers, planners and administrators of
the city (:mod:`routing.projects` holds the rules); ``/projects/<id>`` is the public page,
which shows only what anybody may see: no owner, no department, no held, private or
internal request.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)

from routing import projects
from routing.actions import STATUS_LABELS as REQUEST_LABELS
from spatial.cities import city_base_url
from spatial.errors import CivicpinError, NotFound
from spatial.models import OPEN_STATUSES, Department, Jurisdiction, User
from spatial.models_work import PROJECT_STATUSES, Project
from webmap.app import db_session, settings_of
from webmap.auth import current_user, roles_required
from webmap.mapping import LEAFLET_CSS, LEAFLET_JS
from webmap.public import current_city
from webmap.staffkit import error_status, install_errors, install_headers, staff_city

bp = Blueprint("projects", __name__)
install_headers(bp)
install_errors(bp)

ROLES = ("dispatcher", "planner")
BLANK_MILESTONES = 3


def _project(project_id: int) -> tuple[Jurisdiction, Project]:
    city = staff_city(current_user())
    try:
        return city, projects.get_project(db_session(), city.id, project_id)
    except NotFound:
        abort(404)


def _map_data(project: Project, rows, endpoint: str) -> dict[str, Any]:
    """The map's GeoJSON: the area, and one point per request that has a place."""
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [r.lon, r.lat]},
            "properties": {
                "public_id": r.public_id,
                "service": r.service,
                "status": REQUEST_LABELS.get(r.status, r.status),
                "open": r.status in OPEN_STATUSES,
                "url": url_for(endpoint, public_id=r.public_id),
            },
        }
        for r in rows
        if r.lat is not None
    ]
    return {
        "area": projects.area_geojson(project),
        "requests": {"type": "FeatureCollection", "features": features},
    }


def _common() -> dict[str, Any]:
    settings = settings_of(current_app)
    return {
        "status_labels": projects.STATUS_LABELS,
        "request_labels": REQUEST_LABELS,
        "tile_url": settings.tile_url,
        "tile_attribution": settings.tile_attribution,
    }


# --------------------------------------------------------------------------- staff pages


@bp.get("/staff/projects")
@roles_required(*ROLES)
def index():
    """The city's projects, open ones first; ``?status=`` filters."""
    user = current_user()
    city = staff_city(user)
    status = (request.args.get("status") or "").strip() or None
    rows = projects.list_projects(db_session(), city.id, status)
    return render_template(
        "projects/index.html",
        city=city,
        rows=rows,
        status=status,
        statuses=PROJECT_STATUSES,
        can_edit=projects.may_edit(user, city.id),
        **_common(),
    )


@bp.get("/staff/projects/<int:project_id>")
@roles_required(*ROLES)
def detail(project_id: int):
    """One project: facts, map, milestones, its requests, linking and closing."""
    city, project = _project(project_id)
    return _render_detail(city, project)


def _render_detail(city, project, *, error=None, error_field=None, form=None, status=200):
    session = db_session()
    rows = projects.linked_requests(session, project)
    owner = session.get(User, project.owner_id) if project.owner_id else None
    dept = session.get(Department, project.department_id) if project.department_id else None
    user = current_user()
    return render_template(
        "projects/detail.html",
        city=city,
        project=project,
        owner=owner,
        department=dept,
        rows=rows,
        open_count=sum(1 for r in rows if r.status in OPEN_STATUSES),
        candidates=projects.area_candidates(session, project),
        map_data=_map_data(project, rows, "dispatch.request_page"),
        can_edit=projects.may_edit(user, city.id),
        is_open=project.status in projects.OPEN_PROJECT_STATUSES,
        error=error,
        error_field=error_field,
        form=form or {},
        **_common(),
    ), status


def _milestone_rows(form) -> list[projects.MilestoneInput]:
    rows = []
    n = 1
    while f"milestone_title_{n}" in form or f"milestone_due_{n}" in form:
        raw_id = (form.get(f"milestone_id_{n}") or "").strip()
        rows.append(
            projects.MilestoneInput(
                title=form.get(f"milestone_title_{n}"),
                due_date=form.get(f"milestone_due_{n}"),
                done=bool(form.get(f"milestone_done_{n}")),
                id=int(raw_id) if raw_id.isdigit() else None,
            )
        )
        n += 1
    return rows


def _input(form) -> projects.ProjectInput:
    return projects.ProjectInput(
        name=form.get("name"),
        description=form.get("description"),
        owner_id=form.get("owner_id"),
        department_id=form.get("department_id"),
        status=form.get("status") or "planned",
        target_date=form.get("target_date"),
        area=form.get("area"),
        milestones=_milestone_rows(form),
    )


def _values(project: Project | None) -> dict[str, Any]:
    """The form's fields for ``project`` (empty for a new one)."""
    if project is None:
        return {"status": "planned"}
    values: dict[str, Any] = {
        "name": project.name,
        "description": project.description or "",
        "owner_id": str(project.owner_id or ""),
        "department_id": str(project.department_id or ""),
        "status": project.status,
        "target_date": project.target_date.isoformat() if project.target_date else "",
        "area": projects.area_text(project),
    }
    for n, m in enumerate(project.milestones, start=1):
        values[f"milestone_id_{n}"] = str(m.id)
        values[f"milestone_title_{n}"] = m.title
        values[f"milestone_due_{n}"] = m.due_date.isoformat() if m.due_date else ""
        values[f"milestone_done_{n}"] = "1" if m.done_at else ""
    return values


def _render_form(city, project, values, *, error=None, error_field=None, status=200):
    session = db_session()
    filled = 0
    while f"milestone_title_{filled + 1}" in values:
        filled += 1
    departments = session.scalars(
        sa.select(Department).where(Department.jurisdiction_id == city.id).order_by(Department.name)
    ).all()
    return render_template(
        "projects/form.html",
        city=city,
        project=project,
        values=values,
        milestone_count=filled + BLANK_MILESTONES,
        owners=projects.owner_choices(session, city.id),
        departments=departments,
        statuses=PROJECT_STATUSES,
        error=error,
        error_field=error_field,
        bounds=_city_bounds(city),
        **_common(),
    ), status


def _city_bounds(city: Jurisdiction) -> list[float] | None:
    from webmap.dispatch import city_bounds

    return city_bounds(city)


def _form_error(city, project, exc: CivicpinError):
    db_session().rollback()
    status = error_status(exc)
    if status == 403:
        abort(403)
    values = request.form.to_dict()
    return _render_form(
        city,
        project,
        values,
        error=str(exc),
        error_field=getattr(exc, "field", None),
        status=status,
    )


@bp.route("/staff/projects/new", methods=["GET", "POST"])
@roles_required(*ROLES)
def new():
    """Create a project."""
    user = current_user()
    city = staff_city(user)
    if not projects.may_edit(user, city.id):
        abort(403)
    if request.method == "GET":
        return _render_form(city, None, _values(None))
    session = db_session()
    try:
        project = projects.create_project(session, user, city, _input(request.form))
        session.commit()
    except CivicpinError as exc:
        return _form_error(city, None, exc)
    flash(f"Project {project.name} created")
    return redirect(url_for("projects.detail", project_id=project.id), code=303)


@bp.route("/staff/projects/<int:project_id>/edit", methods=["GET", "POST"])
@roles_required(*ROLES)
def edit(project_id: int):
    """Edit a project: every field, the milestones, the area."""
    user = current_user()
    city, project = _project(project_id)
    if not projects.may_edit(user, city.id):
        abort(403)
    if request.method == "GET":
        return _render_form(city, project, _values(project))
    session = db_session()
    try:
        result = projects.update_project(
            session,
            user,
            project,
            _input(request.form),
            resolve_message=request.form.get("resolve_message"),
            public_base_url=settings_of(current_app).public_base_url,
        )
        name = result.project.name
        session.commit()
    except CivicpinError as exc:
        session.rollback()
        return _form_error(city, session.get(Project, project_id), exc)
    flash(f"Project {name} saved" + _resolved_text(result.resolved))
    return redirect(url_for("projects.detail", project_id=project_id), code=303)


def _resolved_text(resolved: list[str]) -> str:
    if not resolved:
        return ""
    n = len(resolved)
    return f"; {n} open request{'' if n == 1 else 's'} resolved and {'its' if n == 1 else 'their'} reporters told"


def _detail_action(project_id: int, run) -> Any:
    """Run a detail page's action; its error shows on the page, nothing changed."""
    user = current_user()
    city, project = _project(project_id)
    session = db_session()
    try:
        message = run(session, user, project)
        session.commit()
    except CivicpinError as exc:
        session.rollback()
        status = error_status(exc)
        if status == 403:
            abort(403)
        project = session.get(Project, project_id)
        return _render_detail(
            city,
            project,
            error=str(exc),
            error_field=getattr(exc, "field", None),
            form=request.form.to_dict(),
            status=status,
        )
    flash(message)
    return redirect(url_for("projects.detail", project_id=project_id), code=303)


@bp.post("/staff/projects/<int:project_id>/link")
@roles_required(*ROLES)
def link(project_id: int):
    """Link requests: references typed in ``public_id`` (several: separated by commas or
    spaces), or those ticked among the open requests inside the area (``public_ids``)."""

    def run(session, user, project):
        typed = (request.form.get("public_id") or "").replace(",", " ").split()
        ticked = request.form.getlist("public_ids")
        done = projects.link_requests(session, user, project, typed + ticked)
        refs = ", ".join(r.public_id for r in done)
        return f"{refs} {'is' if len(done) == 1 else 'are'} now part of {project.name}"

    return _detail_action(project_id, run)


@bp.post("/staff/projects/<int:project_id>/unlink")
@roles_required(*ROLES)
def unlink(project_id: int):
    """Take one request out of the project."""

    def run(session, user, project):
        req = projects.find_city_request(
            session, project.jurisdiction_id, request.form.get("public_id")
        )
        projects.unlink_request(session, user, project, req)
        return f"{req.public_id} is no longer part of {project.name}"

    return _detail_action(project_id, run)


@bp.post("/staff/projects/<int:project_id>/close")
@roles_required(*ROLES)
def close(project_id: int):
    """Finish (or cancel) the project; finishing may resolve its open requests."""

    def run(session, user, project):
        status = request.form.get("status") or "done"
        resolve = bool(request.form.get("resolve"))
        result = projects.close_project(
            session,
            user,
            project,
            status=status,
            resolve_message=request.form.get("resolve_message") if resolve else None,
            public_base_url=settings_of(current_app).public_base_url,
        )
        label = projects.STATUS_LABELS[result.project.status].lower()
        return f"Project {result.project.name} is {label}" + _resolved_text(result.resolved)

    return _detail_action(project_id, run)


# --------------------------------------------------------------------------- public page


@bp.get("/projects/<int:project_id>")
def public_page(project_id: int):
    """A project as anybody sees it: its public requests only, no staff data.

    A project is public once one of its requests is (the link from that request's page
    leads here)."""
    session = db_session()
    project = session.get(Project, project_id)
    if project is None:
        return _not_found(project_id)
    home = session.get(Jurisdiction, project.jurisdiction_id)
    try:
        here = current_city(session)
    except NotFound:
        here = None
    if here is None or here.id != home.id:
        # The project lives at its own city's address.
        target = f"{city_base_url(settings_of(current_app), home)}/projects/{project.id}"
        return redirect(target, 302)
    rows = projects.linked_requests(session, project, public_only=True)
    if not rows:
        # Only the public requests' projects are public: a help desk's project, or one
        # whose requests are all held or private, does not exist for the public.
        return _not_found(project_id)
    return render_template(
        "projects/public.html",
        city=home,
        project=project,
        rows=rows,
        upcoming=projects.next_milestone(project),
        map_data=_map_data(project, rows, "resident.track"),
        leaflet_css=url_for("static", filename=LEAFLET_CSS),
        leaflet_js=url_for("static", filename=LEAFLET_JS),
        **_common(),
    )


def _not_found(project_id: int):
    return render_template(
        "message.html", heading="Project not found", message=f"There is no project {project_id}."
    ), 404
