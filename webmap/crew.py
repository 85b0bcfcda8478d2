"""The crew's page, made for a phone: a map layer of the crew's open work and its zones,
a list sorted by priority, due date or distance, status updates with a note and a
completion photo, and exports of the layer (GeoJSON, CSV) for GIS field apps.

New work (assigned to the crew by routing, by dispatch or by a reopening, and not
acknowledged since) shows as "New" in the list and on the map, with a count; the e-mail
that tells the crew's members of it links to the crew's page of the request, where they
acknowledge it.

A crew member works on their own crew's requests. Another crew's open request answers
403 with the reason; other requests (the department's queue, closed work, an asset's
past requests) show without the resident's contact details and without actions.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from routing import actions, queue
from spatial.city_time import label_items
from spatial.errors import CivicpinError, InvalidInput
from spatial.media import PhotoUpload
from spatial.models import (
    OPEN_STATUSES,
    Crew,
    Department,
    Jurisdiction,
    ServiceRequest,
    User,
)
from webmap.app import db_session, settings_of
from webmap.auth import current_user, has_role, roles_required
from webmap.staffkit import (
    error_status,
    find_request,
    form_data,
    install_errors,
    install_headers,
    json_error,
    staff_city,
    wants_json,
    works_in,
)

bp = Blueprint("crew", __name__)
install_headers(bp)
install_errors(bp)

EXPORT_COLUMNS = (
    "public_id",
    "service",
    "status",
    "priority",
    "requested_at",
    "due_at",
    "overdue",
    "address",
    "description",
    "department",
    "crew",
    "zone_code",
    "zone",
    # The asset the request is about: its layer's name and title, the city's id, label.
    "asset_layer",
    "asset_title",
    "asset_ref",
    "asset_label",
    "lat",
    "lon",
)


def _my_crews(user: User) -> list[Crew]:
    """The crews the user is a member of, in the city they work in."""
    return [c for c in user.crews if works_in(user, c.department.jurisdiction_id)]


def _choosing(user: User) -> bool:
    """Whether the user picks a crew with ``?crew=``: admins, and members of several crews."""
    return has_role(user, "admin") or len(_my_crews(user)) > 1


def _crew_of(user: User) -> Crew | None:
    """The crew whose page this is: the member's only crew; admins (any crew of the city)
    and members of several crews (one of theirs) pick one with ``?crew=``."""
    session = db_session()
    staff_city(user)  # 403 when the address names another city than the user's
    mine = _my_crews(user)
    raw = request.args.get("crew")
    if raw is None:
        return mine[0] if len(mine) == 1 else None
    try:
        crew = session.get(Crew, int(raw))
    except ValueError:
        raise InvalidInput("crew must be a crew id", field="crew") from None
    if crew is None or not works_in(user, crew.department.jurisdiction_id):
        abort(404)
    if not has_role(user, "admin") and crew not in mine:
        abort(403)  # a crew of the city, but not one of theirs
    return crew


def _city_admins(user: User) -> list[User]:
    """The active admins of the user's city: the people who add a user to a crew."""
    return list(
        db_session().scalars(
            sa.select(User)
            .where(
                User.jurisdiction_id == staff_city(user).id,
                User.role == "admin",
                User.active.is_(True),
            )
            .order_by(User.email)
        )
    )


def _need_crew(user: User) -> Crew:
    crew = _crew_of(user)
    if crew is None:
        if _choosing(user):
            message = "Choose a crew on the crew page, or with ?crew=ID."
        else:
            admins = ", ".join(
                f"{a.name} <{a.email}>" if a.name else a.email for a in _city_admins(user)
            )
            message = "Your account is not in a crew yet. " + (
                f"An administrator of the city adds you to one: {admins}."
                if admins
                else "An administrator of the city adds you to one."
            )
        page = render_template("message.html", heading="No crew", message=message)
        abort(Response(page, status=404))
    return crew


def _crew_args(crew: Crew, user: User) -> dict[str, Any]:
    return {"crew": crew.id} if _choosing(user) else {}


def _new_work(crew: Crew) -> set[int]:
    """Ids of the crew's open requests that are new to it (see
    :func:`routing.actions.is_new_for_crew`)."""
    r = ServiceRequest
    return set(
        db_session().scalars(
            sa.select(r.id).where(
                r.crew_id == crew.id,
                r.status.in_([s.value for s in OPEN_STATUSES]),
                r.crew_assigned_at.is_not(None),
                sa.or_(
                    r.crew_acknowledged_at.is_(None), r.crew_acknowledged_at < r.crew_assigned_at
                ),
            )
        )
    )


def _mark_new(items: list[dict[str, Any]], crew: Crew) -> int:
    new = _new_work(crew)
    for item in items:
        item["new"] = item["id"] in new
    return sum(1 for item in items if item["new"])


def _city_of(crew: Crew) -> Jurisdiction:
    session = db_session()
    return session.get(Jurisdiction, session.get(Department, crew.department_id).jurisdiction_id)


@bp.get("/crew")
@roles_required("crew")
def index():
    """The crew's map and list."""
    user = current_user()
    session = db_session()
    if _choosing(user) and request.args.get("crew") is None and len(_my_crews(user)) != 1:
        query = (
            sa.select(Crew.id, Crew.name, Department.name.label("dept"))
            .join(Department, Department.id == Crew.department_id)
            .where(Department.jurisdiction_id == staff_city(user).id)
            .order_by(Department.name, Crew.name)
        )
        if not has_role(user, "admin"):
            query = query.where(Crew.id.in_([c.id for c in _my_crews(user)]))
        crews = session.execute(query).all()
        return render_template("crew/choose.html", user=user, crews=crews)
    crew = _need_crew(user)
    sort = request.args.get("sort") or "priority"
    if sort not in queue.CREW_SORTS or sort == "distance":
        sort = "priority"
    items = queue.crew_queue(session, crew.id, sort=sort)
    new_count = _mark_new(items, crew)
    dept = session.get(Department, crew.department_id)
    city = session.get(Jurisdiction, dept.jurisdiction_id)
    label_items(items, city)
    settings = settings_of(current_app)
    args = _crew_args(crew, user)
    return render_template(
        "crew/index.html",
        user=user,
        crew=crew,
        department=dept,
        city=city,
        items=items,
        new_count=new_count,
        sort=sort,
        labels=actions.STATUS_LABELS,
        api_url=url_for("crew.api_requests", **args),
        zones_url=url_for("crew.zones", **args),
        tile_url=settings.tile_url,
        tile_attribution=settings.tile_attribution,
        args=args,
    )


@bp.get("/crew/api/requests")
@roles_required("crew")
def api_requests():
    """The crew's open requests as JSON: ``sort`` = priority | due | distance,
    ``near=lat,lon`` (the phone's position) for distances."""
    user = current_user()
    crew = _need_crew(user)
    near = queue.parse_near(request.args.get("near"))
    sort = request.args.get("sort") or "priority"
    items = queue.crew_queue(db_session(), crew.id, sort=sort, near=near)
    new_count = _mark_new(items, crew)
    label_items(items, _city_of(crew))
    for item in items:
        item["url"] = url_for("crew.request_page", public_id=item["public_id"])
    return jsonify({"crew": crew.name, "sort": sort, "items": items, "new": new_count})


@bp.get("/crew/zones.geojson")
@roles_required("crew")
def zones():
    """The crew's zone outlines."""
    crew = _need_crew(current_user())
    body = {"type": "FeatureCollection", "features": queue.crew_zones(db_session(), crew)}
    return current_app.response_class(current_app.json.dumps(body), mimetype="application/geo+json")


def _export_rows(crew: Crew) -> tuple[list[dict[str, Any]], list[str]]:
    session = db_session()
    items = queue.crew_queue(session, crew.id, sort="priority")
    zones_of = queue.zones_by_layer(session, [i["id"] for i in items])
    layers = sorted({layer for z in zones_of.values() for layer in z})
    for item in items:
        for layer in layers:
            item[f"zone:{layer}"] = zones_of.get(item["id"], {}).get(layer)
    return items, layers


def _filename(crew: Crew, ext: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in crew.code)
    return f"crew-{safe}.{ext}"


@bp.get("/crew/layer.geojson")
@roles_required("crew")
def export_geojson():
    """The crew layer (open assignments) as GeoJSON points, for GIS field apps."""
    crew = _need_crew(current_user())
    items, layers = _export_rows(crew)
    features = []
    for item in items:
        props = {k: item[k] for k in EXPORT_COLUMNS if k not in ("lat", "lon")}
        props.update({f"zone:{layer}": item[f"zone:{layer}"] for layer in layers})
        geometry = (
            {"type": "Point", "coordinates": [item["lon"], item["lat"]]}
            if item["lat"] is not None
            else None
        )
        features.append({"type": "Feature", "geometry": geometry, "properties": props})
    body = current_app.json.dumps({"type": "FeatureCollection", "features": features})
    return Response(
        body,
        mimetype="application/geo+json",
        headers={"Content-Disposition": f'attachment; filename="{_filename(crew, "geojson")}"'},
    )


def _cell(value: Any) -> Any:
    # Spreadsheets run cells starting like a formula; residents' text must not.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


@bp.get("/crew/layer.csv")
@roles_required("crew")
def export_csv():
    """The crew layer as CSV with lat/lon columns and one ``zone:<layer>`` column per layer."""
    crew = _need_crew(current_user())
    items, layers = _export_rows(crew)
    out = io.StringIO()
    writer = csv.writer(out)
    header = list(EXPORT_COLUMNS) + [f"zone:{layer}" for layer in layers]
    writer.writerow(header)
    for item in items:
        writer.writerow([_cell(item.get(col)) for col in header])
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{_filename(crew, "csv")}"'},
    )


def _check_not_others(user: User, req: ServiceRequest) -> None:
    """403, saying why, when a crew member (no dispatcher) opens another crew's open
    request: a link forwarded from another crew's mail, or an old one after a
    reassignment."""
    if (
        req.crew_id is None
        or actions.roles_of(user) & {"dispatcher", "admin"}
        or req.crew_id in {c.id for c in user.crews}
        or req.status not in {s.value for s in OPEN_STATUSES}
    ):
        return
    session = db_session()
    crew = session.get(Crew, req.crew_id)
    dept = session.get(Department, crew.department_id)
    message = (
        f"{req.public_id} is assigned to {crew.name} ({dept.name}), not to your crew, so "
        "it is theirs to work. If it was assigned to your crew before, dispatch has since "
        "given it to them; ask dispatch if you think it should be yours."
    )
    page = render_template("message.html", heading="Not your crew's work", message=message)
    abort(Response(page, status=403))


def _detail(req, error: str | None = None, status: int = 200):
    from webmap.dispatch import request_context

    ctx = request_context(req)
    ctx["is_new"] = actions.is_new_for_crew(req)
    waiting = ctx["is_new"] or (req.crew_id is not None and req.status == "new")
    ctx["may_acknowledge"] = waiting and actions.may(ctx["user"], "acknowledge", req)
    ctx["may_status"] = actions.may(ctx["user"], "status", req)
    ctx["transitions"] = [
        (s, actions.STATUS_LABELS[s])
        for s, froms in actions.CREW_TRANSITIONS.items()
        if req.status in froms
    ]
    return render_template("crew/request.html", error=error, **ctx), status


@bp.get("/crew/requests/<public_id>")
@roles_required("crew")
def request_page(public_id: str):
    """One request for a crew member: details (contact only for own work), history, actions."""
    user = current_user()
    req = find_request(user, public_id)
    if actions.internal_outsider(user, req):
        abort(404)  # a staff member's request to another department: not theirs to see
    _check_not_others(user, req)
    return _detail(req)


@bp.post("/crew/requests/<public_id>/<action>")
@roles_required("crew")
def act(public_id: str, action: str):
    """``status`` (with note, public flag and photo), ``note`` or ``acknowledge``."""
    if action not in ("status", "note", "acknowledge"):
        abort(404)
    user = current_user()
    session = db_session()
    req = find_request(user, public_id)
    _check_not_others(user, req)
    data = form_data()
    settings = settings_of(current_app)
    try:
        if action == "status":
            upload = request.files.get("photo")
            photo = None
            if upload is not None and upload.filename:
                photo = PhotoUpload(upload.filename, upload.read())
            actions.set_status(
                session,
                user,
                req,
                status=str(data.get("status") or ""),
                note=data.get("note"),
                public_note=str(data.get("public", "1")).lower() in ("1", "true", "on", "yes"),
                photo=photo,
                media_dir=settings.media_dir,
                public_base_url=settings.public_base_url,
            )
            message = f"{req.public_id} is now {actions.STATUS_LABELS[req.status].lower()}"
        elif action == "acknowledge":
            actions.acknowledge(session, user, req, public_base_url=settings.public_base_url)
            message = f"{req.public_id} acknowledged"
        else:
            actions.add_note(
                session,
                user,
                req,
                text=data.get("note") or "",
                public=str(data.get("public", "")).lower() in ("1", "true", "on"),
            )
            message = "Note added"
        session.commit()
    except CivicpinError as exc:
        session.rollback()
        if wants_json():
            return json_error(exc)
        if error_status(exc) == 403:
            abort(403)
        return _detail(find_request(user, public_id), error=str(exc), status=error_status(exc))
    if wants_json():
        return jsonify(
            {"ok": True, "message": message, "public_id": req.public_id, "status": req.status}
        )
    flash(message)
    return redirect(url_for("crew.request_page", public_id=req.public_id), code=303)
