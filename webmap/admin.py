"""Administration: zone layers, rule sets with what-if, users, API keys, response templates.

Every view is admin-only (403 for any other role, before anything is read or written).
Forms post back to the server; a bad field re-renders the page with the message next to
that field and status 400, after a rollback, so nothing is written. Maps read their data
from ``<script type="application/json">`` blocks (data, not code: the strict CSP stays).
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.utils import secure_filename

from notify.account_mail import send_password_reset
from routing import reroute_jobs, setup_checklist
from routing import rules as rulesmod
from routing.whatif import what_if
from spatial import admin_audit, apikeys
from spatial.accounts import (
    INSTALL_ADMIN,
    ROLE_IMPLIES,
    create_user,
    is_install_admin,
    may_manage_user,
    roles_granted_by,
)
from spatial.cities import validate_slug
from spatial.errors import InvalidInput, NotFound
from spatial.models import (
    PRIORITIES,
    ApiKey,
    Crew,
    Department,
    Jurisdiction,
    ResponseTemplate,
    Service,
    User,
    Zone,
    ZoneLayer,
)
from spatial.zones import SUFFIX_KINDS, file_fields, import_layer, layer_report_text
from webmap.app import db_session, settings_of
from webmap.auth import current_user, roles_required
from webmap.staffkit import install_errors, install_headers, staff_city

bp = Blueprint("admin", __name__, url_prefix="/admin")
install_headers(bp)
install_errors(bp)

MAX_TEMPLATE_CHARS = 4000


def _page(template: str, status: int = 200, **ctx: Any):
    user = current_user()
    ctx.setdefault("errors", {})
    ctx.setdefault("form", {})
    return render_template(f"admin/{template}", user=user, city=staff_city(user), **ctx), status


def _invalid(template: str, exc: InvalidInput, **ctx: Any):
    """Roll back and show the page again with the message next to its field."""
    db_session().rollback()
    field = exc.field or "form"
    return _page(template, 400, errors={field: str(exc)}, form=request.form, **ctx)


def _city() -> Jurisdiction:
    return staff_city(current_user())


def _audit(action: str, object_type: str, object_id: Any = None, **what: Any) -> None:
    """Log the change the view is about to commit (see :mod:`spatial.admin_audit`)."""
    admin_audit.record(
        db_session(), action, object_type, object_id, city=_city(), actor=current_user(), what=what
    )


def index_page(status: int = 200, **ctx: Any):
    """The admin home with the city's set-up checklist (``routing.setup_checklist``)."""
    items = setup_checklist.checklist(db_session(), _city())
    return _page(
        "index.html",
        status,
        checklist=items,
        setup_complete=setup_checklist.is_complete(items),
        install_admin=is_install_admin(current_user()),
        **ctx,
    )


@bp.get("/")
@roles_required("admin")
def index():
    if (
        is_install_admin(current_user())
        and db_session().scalar(sa.select(Jurisdiction.id).limit(1)) is None
    ):
        # A fresh install: the first thing to do is the first city.
        return redirect(url_for("admin_setup.new_city"))
    return index_page()


# --------------------------------------------------------------------------- layers


def _reroute(city: Jurisdiction, kind: str, subject_id: int | None = None) -> dict[str, Any]:
    """The newest re-route job after a publish (of ``kind``, about ``subject_id``), as
    the ``_reroute.html`` partial shows it."""
    session = db_session()
    job = reroute_jobs.latest(session, city, kind, subject_id)
    if job is None:
        return {"reroute": None}
    view = reroute_jobs.job_view(session, job)
    view["url"] = url_for("admin.reroute_job", job_id=job.id)
    return {"reroute": view}


def _layers_ctx(city: Jurisdiction) -> dict[str, Any]:
    session = db_session()
    counts = dict(
        session.execute(
            sa.select(Zone.layer_id, sa.func.count())
            .join(ZoneLayer, ZoneLayer.id == Zone.layer_id)
            .where(ZoneLayer.jurisdiction_id == city.id)
            .group_by(Zone.layer_id)
        ).all()
    )
    return {
        "layers": rulesmod.layer_versions(session, city),
        "zone_counts": counts,
        **_reroute(city, "layer"),
    }


@bp.get("/layers")
@roles_required("admin")
def layers():
    return _page("layers.html", **_layers_ctx(_city()))


# An upload waits for its field choice in var/uploads/<token>/<file name>: kept between
# the two steps (a zipped Shapefile or GeoPackage cannot ride in a form field), removed
# once imported, and swept after a day if the admin walks away.
UPLOAD_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")
UPLOAD_MAX_AGE = 24 * 3600


def _uploads_dir() -> Path:
    return settings_of(current_app).var_dir / "uploads"


def _sweep_uploads(root: Path) -> None:
    cutoff = time.time() - UPLOAD_MAX_AGE
    for old in root.iterdir() if root.is_dir() else ():
        try:
            if old.is_dir() and old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass


def _save_upload(upload) -> tuple[str, Path]:
    """Keep an uploaded file for the field choice: (token, path)."""
    filename = secure_filename(upload.filename or "") or "upload"
    if Path(filename).suffix.lower() not in SUFFIX_KINDS:
        raise InvalidInput(
            f"{upload.filename}: use a .geojson, .json, .zip (Shapefile) or .gpkg file",
            field="file",
        )
    root = _uploads_dir()
    root.mkdir(parents=True, exist_ok=True)
    _sweep_uploads(root)
    token = secrets.token_urlsafe(16)
    folder = root / token
    folder.mkdir(mode=0o700)
    path = folder / filename
    upload.save(path)
    return token, path


def _saved_upload(token: str) -> Path:
    folder = _uploads_dir() / token
    files = sorted(folder.iterdir()) if UPLOAD_TOKEN_RE.match(token) and folder.is_dir() else []
    if len(files) != 1:
        raise InvalidInput(
            "the uploaded file is gone (kept for a day): upload it again", field="file"
        )
    return files[0]


def _drop_upload(token: str | None) -> None:
    if token and UPLOAD_TOKEN_RE.match(token):
        shutil.rmtree(_uploads_dir() / token, ignore_errors=True)


def _chooser(token: str, path: Path) -> dict[str, Any]:
    return {"chooser": {"token": token, "file": path.name, "fields": file_fields(path)}}


@bp.post("/layers")
@roles_required("admin")
def upload_layer():
    """A zone file in two steps: the file is read and its fields listed (with a sample
    value each), then imported with the code, name and population fields chosen.
    A form that names its code field with the file is imported at once."""
    city = _city()
    session = db_session()
    form = request.form
    upload = request.files.get("file")
    token = (form.get("upload") or "").strip() or None
    path: Path | None = None
    try:
        layer_name = (form.get("layer_name") or "").strip()
        validate_slug(layer_name, "layer")
        if upload is not None and upload.filename:
            _drop_upload(token)
            token, path = _save_upload(upload)
        elif token is not None:
            path = _saved_upload(token)
        else:
            raise InvalidInput(
                "choose a GeoJSON, zipped Shapefile or GeoPackage file", field="file"
            )
        if "code_field" not in form:
            chooser = _chooser(token, path)
            return _page("layers.html", form=form, **chooser, **_layers_ctx(city))
        code_field = (form.get("code_field") or "").strip()
        if not code_field:
            raise InvalidInput(
                "choose the field that holds each zone's code (zone codes are what rules "
                "and crews refer to)",
                field="code_field",
            )
        draft = bool(form.get("draft"))
        result = import_layer(
            session,
            city,
            path,
            layer_name,
            code_field=code_field,
            name_field=(form.get("name_field") or "").strip() or None,
            population_field=(form.get("population_field") or "").strip() or None,
            title=(form.get("title") or "").strip() or None,
            draft=draft,
            join_parts=bool(form.get("join_parts")),
        )
        if not draft:
            rulesmod.layer_made_current(session, city, result.layer, current_user().email)
    except InvalidInput as exc:
        extra: dict[str, Any] = {}
        if path is not None and exc.field != "file":
            try:
                extra = _chooser(token, path)
            except InvalidInput:
                extra = {}
        if not extra:
            _drop_upload(token)
        return _invalid("layers.html", exc, **extra, **_layers_ctx(city))
    _audit(
        "layer.import",
        "zone_layer",
        result.layer.id,
        name=result.layer.name,
        version=result.layer.version,
        file=path.name,
        zones=result.report.get("zones"),
        draft=draft,
    )
    session.commit()
    _drop_upload(token)
    if draft:
        flash(
            f"Imported layer {result.layer.name} version {result.layer.version} as a draft: "
            "routing does not use it until you make it current."
        )
    else:
        flash(
            f"Imported layer {result.layer.name} version {result.layer.version}; it is current. "
            "Every request gets its zone in it and the open ones are re-routed (progress below)."
        )
    return redirect(url_for("admin.layer", layer_id=result.layer.id))


def _layer_of(city: Jurisdiction, layer_id: int) -> ZoneLayer:
    layer = db_session().get(ZoneLayer, layer_id)
    if layer is None or layer.jurisdiction_id != city.id:
        raise NotFound(f"no layer version {layer_id} in this city")
    return layer


def _report_geojson(layer: ZoneLayer) -> dict[str, Any]:
    """Zones, overlaps and gaps of one layer version as one FeatureCollection."""
    features: list[dict[str, Any]] = []
    rows = db_session().execute(
        sa.select(Zone.code, Zone.name, sa.func.ST_AsGeoJSON(Zone.geom, 6))
        .where(Zone.layer_id == layer.id)
        .order_by(Zone.code)
    )
    for code, name, geojson in rows:
        features.append(
            {
                "type": "Feature",
                "geometry": json.loads(geojson),
                "properties": {"kind": "zone", "label": f"{name} ({code})"},
            }
        )
    report = layer.report or {}
    for o in report.get("overlaps", []):
        features.append(
            {
                "type": "Feature",
                "geometry": o["geometry"],
                "properties": {
                    "kind": "overlap",
                    "label": f"overlap {o['a']} / {o['b']}",
                    "area_m2": o["area_m2"],
                },
            }
        )
    for g in report.get("gaps", []):
        features.append(
            {
                "type": "Feature",
                "geometry": g["geometry"],
                "properties": {"kind": "gap", "label": "gap", "area_m2": g["area_m2"]},
            }
        )
    return {"type": "FeatureCollection", "features": features}


@bp.get("/layers/<int:layer_id>")
@roles_required("admin")
def layer(layer_id: int):
    city = _city()
    lay = _layer_of(city, layer_id)
    drafts = rulesmod.rulesets(db_session(), city)
    return _page(
        "layer.html",
        layer=lay,
        report=lay.report or {},
        report_lines=layer_report_text(lay.report or {}),
        geojson=_report_geojson(lay),
        drafts=[d for d in drafts if d.status == "draft"],
        **_reroute(city, "layer", lay.id),
    )


@bp.post("/layers/<int:layer_id>/publish")
@roles_required("admin")
def publish_layer(layer_id: int):
    city = _city()
    lay = rulesmod.publish_layer(db_session(), city, layer_id, current_user().email)
    _audit("layer.publish", "zone_layer", lay.id, name=lay.name, version=lay.version)
    db_session().commit()
    flash(
        f"Layer {lay.name} version {lay.version} is now current. Every request gets its "
        "zone in it and the open ones are re-routed (progress below)."
    )
    return redirect(url_for("admin.layer", layer_id=lay.id))


@bp.get("/reroute/<int:job_id>.json")
@roles_required("admin")
def reroute_job(job_id: int):
    """A re-route job's progress, polled by the admin pages (admin.js)."""
    session = db_session()
    job = reroute_jobs.get_job(session, _city(), job_id)
    view = reroute_jobs.job_view(session, job)
    session.rollback()
    response = jsonify(view)
    response.headers["Cache-Control"] = "no-store"
    return response


# --------------------------------------------------------------------------- rules


@bp.get("/rules")
@roles_required("admin")
def rules():
    city = _city()
    return _page(
        "rules.html", rulesets=rulesmod.rulesets(db_session(), city), **_reroute(city, "rules")
    )


@bp.post("/rules")
@roles_required("admin")
def new_draft():
    city = _city()
    draft = rulesmod.create_draft(db_session(), city, request.form.get("note"))
    _audit("rules.draft", "ruleset", draft.id, version=draft.version, note=draft.note)
    db_session().commit()
    flash(f"Draft version {draft.version} created from the published rules.")
    return redirect(url_for("admin.ruleset", ruleset_id=draft.id))


def _ruleset_ctx(city: Jurisdiction, ruleset_id: int) -> dict[str, Any]:
    session = db_session()
    rs = rulesmod.get_ruleset(session, city, ruleset_id)
    departments = session.scalars(
        sa.select(Department).where(Department.jurisdiction_id == city.id).order_by(Department.code)
    ).all()
    crews = session.execute(
        sa.select(Crew, Department.code)
        .join(Department, Department.id == Crew.department_id)
        .where(Department.jurisdiction_id == city.id)
        .order_by(Crew.code)
    ).all()
    services = session.scalars(
        sa.select(Service).where(Service.jurisdiction_id == city.id).order_by(Service.code)
    ).all()
    layer_rows = rulesmod.layer_versions(session, city)
    return {
        "ruleset": rs,
        "rule_list": rulesmod.ordered_rules(session, rs),
        "departments": departments,
        "dept_by_id": {d.id: d for d in departments},
        "crews": crews,
        "crew_by_id": {c.id: c for c, _ in crews},
        "services": services,
        "service_by_id": {s.id: s for s in services},
        "groups": sorted({s.group for s in services if s.group}),
        "current_layers": sorted({lay.name for lay in layer_rows if lay.is_current}),
        "draft_layers": [
            lay
            for lay in layer_rows
            if not lay.is_current
            and lay.version
            > max((o.version for o in layer_rows if o.name == lay.name and o.is_current), default=0)
        ],
        "priorities": PRIORITIES,
        **_reroute(city, "rules", rs.id),
    }


@bp.get("/rules/<int:ruleset_id>")
@roles_required("admin")
def ruleset(ruleset_id: int):
    return _page("ruleset.html", **_ruleset_ctx(_city(), ruleset_id))


def _rule_action(ruleset_id: int, action, audit: str) -> Any:
    """Run ``action`` on the draft; log it as ``audit`` with the dict it returns."""
    city = _city()
    session = db_session()
    try:
        draft = rulesmod.get_draft(session, city, ruleset_id)
        what = action(session, city, draft) or {}
    except InvalidInput as exc:
        db_session().rollback()
        return _page(
            "ruleset.html",
            400,
            errors={exc.field or "form": str(exc)},
            form=request.form,
            **_ruleset_ctx(city, ruleset_id),
        )
    _audit(audit, "ruleset", ruleset_id, version=draft.version, **what)
    session.commit()
    return redirect(url_for("admin.ruleset", ruleset_id=ruleset_id))


def _position() -> int | None:
    text = (request.form.get("position") or "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise InvalidInput("position must be a whole number from 1", field="position")
    return int(text)


@bp.post("/rules/<int:ruleset_id>/rules")
@roles_required("admin")
def add_rule(ruleset_id: int):
    def act(session, city, draft):
        values = rulesmod.parse_rule(session, city, request.form)
        rule = rulesmod.add_rule(session, draft, values, _position())
        session.flush()
        return {"rule_id": rule.id, "position": rule.position, **values.as_dict()}

    return _rule_action(ruleset_id, act, "rule.add")


@bp.post("/rules/<int:ruleset_id>/rules/<int:rule_id>")
@roles_required("admin")
def edit_rule(ruleset_id: int, rule_id: int):
    def act(session, city, draft):
        values = rulesmod.parse_rule(session, city, request.form)
        before = rulesmod.rule_values(session, draft, rule_id)
        rulesmod.update_rule(session, draft, rule_id, values)
        return {"rule_id": rule_id, **admin_audit.changes(before, values.as_dict())}

    return _rule_action(ruleset_id, act, "rule.edit")


@bp.post("/rules/<int:ruleset_id>/rules/<int:rule_id>/delete")
@roles_required("admin")
def delete_rule(ruleset_id: int, rule_id: int):
    def act(session, city, draft):
        before = rulesmod.rule_values(session, draft, rule_id)
        rulesmod.remove_rule(session, draft, rule_id)
        return {"rule_id": rule_id, **before}

    return _rule_action(ruleset_id, act, "rule.delete")


@bp.post("/rules/<int:ruleset_id>/rules/<int:rule_id>/move")
@roles_required("admin")
def move_rule(ruleset_id: int, rule_id: int):
    def act(session, city, draft):
        position = _position()
        if position is None:
            raise InvalidInput("give the new position", field="position")
        rulesmod.move_rule(session, draft, rule_id, position)
        return {"rule_id": rule_id, "position": position}

    return _rule_action(ruleset_id, act, "rule.move")


@bp.post("/rules/<int:ruleset_id>/publish")
@roles_required("admin")
def publish(ruleset_id: int):
    city = _city()
    try:
        rs = rulesmod.publish(db_session(), city, ruleset_id, current_user().email)
    except InvalidInput as exc:
        return _invalid("ruleset.html", exc, **_ruleset_ctx(city, ruleset_id))
    _audit("rules.publish", "ruleset", rs.id, version=rs.version)
    db_session().commit()
    flash(
        f"Rule set version {rs.version} is published; new requests use it now, and the "
        "open requests are re-routed (progress below; closed ones keep their decision)."
    )
    return redirect(url_for("admin.rules"))


@bp.post("/rules/<int:ruleset_id>/discard")
@roles_required("admin")
def discard(ruleset_id: int):
    city = _city()
    rulesmod.discard_draft(db_session(), city, ruleset_id)
    _audit("rules.discard", "ruleset", ruleset_id)
    db_session().commit()
    flash("Draft discarded.")
    return redirect(url_for("admin.rules"))


@bp.get("/whatif")
@roles_required("admin")
def whatif():
    """What-if of a draft rule set and/or a draft layer version (read-only, GET)."""
    city = _city()
    session = db_session()
    args = request.args
    try:
        days_text = (args.get("days") or "30").strip()
        if not days_text.isdigit():
            raise InvalidInput(f"days {days_text!r} is not a whole number", field="days")
        ruleset_id = int(args["ruleset"]) if (args.get("ruleset") or "").isdigit() else None
        layer_id = int(args["layer"]) if (args.get("layer") or "").isdigit() else None
        result = what_if(session, city, int(days_text), ruleset_id=ruleset_id, layer_id=layer_id)
    except InvalidInput as exc:
        session.rollback()
        return _page("whatif.html", 400, errors={exc.field or "form": str(exc)}, result=None)
    session.rollback()
    return _page("whatif.html", result=result, ruleset_id=ruleset_id, layer_id=layer_id)


# --------------------------------------------------------------------------- users


def _users_ctx(city: Jurisdiction) -> dict[str, Any]:
    # A city's admin sees that city's accounts; an install administrator also the
    # accounts of no one city (install administrators, accounts made before any city).
    me = current_user()
    users = (
        db_session()
        .scalars(
            sa.select(User)
            .where(
                sa.or_(User.jurisdiction_id == city.id, User.jurisdiction_id.is_(None))
                if is_install_admin(me)
                else User.jurisdiction_id == city.id
            )
            .order_by(User.email)
        )
        .all()
    )
    return {"users": [u for u in users if may_manage_user(me, u)], "roles": roles_granted_by(me)}


def _user_of(city: Jurisdiction, user_id: int) -> User:
    """An account the signed-in admin may manage, of ``city`` (or of no city): else 404."""
    user = db_session().get(User, user_id)
    if (
        user is None
        or user.jurisdiction_id not in (city.id, None)
        or not may_manage_user(current_user(), user)
    ):
        raise NotFound(f"no user {user_id}")
    return user


def _check_grant(role: str) -> None:
    granted = roles_granted_by(current_user())
    if role not in granted:
        raise InvalidInput(f"role {role!r} is not one of {', '.join(granted)}", field="role")


@bp.get("/users")
@roles_required("admin")
def users():
    return _page("users.html", **_users_ctx(_city()))


@bp.post("/users")
@roles_required("admin")
def create_user_view():
    city = _city()
    form = request.form
    role = (form.get("role") or "").strip()
    try:
        _check_grant(role)
        password = form.get("password") or None
        user, generated = create_user(
            db_session(),
            email=form.get("email", ""),
            role=role,
            city_slug=None if role == INSTALL_ADMIN else city.slug,
            name=(form.get("name") or "").strip() or None,
            password=password,
        )
    except InvalidInput as exc:
        return _invalid("users.html", exc, **_users_ctx(city))
    _audit("user.create", "user", user.id, email=user.email, role=user.role, name=user.name)
    db_session().commit()
    msg = f"User {user.email} created as {user.role}."
    if generated:
        msg += f" Their password (shown once): {generated}"
    flash(msg)
    return redirect(url_for("admin.users"))


@bp.post("/users/<int:user_id>/role")
@roles_required("admin")
def change_role(user_id: int):
    city = _city()
    user = _user_of(city, user_id)
    role = (request.form.get("role") or "").strip()
    me = current_user()
    try:
        _check_grant(role)
        if user.id == me.id and not ROLE_IMPLIES[role] >= ROLE_IMPLIES[me.role]:
            raise InvalidInput("you cannot take the admin role from yourself", field="role")
    except InvalidInput as exc:
        return _invalid("users.html", exc, **_users_ctx(city))
    _audit("user.role", "user", user.id, email=user.email, role=[user.role, role])
    # An install administrator belongs to no city; any other account to this one.
    user.jurisdiction_id = None if role == INSTALL_ADMIN else (user.jurisdiction_id or city.id)
    user.role = role
    db_session().commit()
    flash(f"{user.email} is now {role}.")
    return redirect(url_for("admin.users"))


@bp.post("/users/<int:user_id>/active")
@roles_required("admin")
def set_active(user_id: int):
    city = _city()
    user = _user_of(city, user_id)
    active = request.form.get("active") == "1"
    if user.id == current_user().id and not active:
        return _invalid(
            "users.html",
            InvalidInput("you cannot deactivate yourself", field="active"),
            **_users_ctx(city),
        )
    _audit("user.active", "user", user.id, email=user.email, active=[user.active, active])
    user.active = active
    db_session().commit()
    flash(f"{user.email} is {'active' if active else 'deactivated'}.")
    return redirect(url_for("admin.users"))


@bp.post("/users/<int:user_id>/reset")
@roles_required("admin")
def send_reset(user_id: int):
    """Mail the user a one-time link to set a new password (their earlier links end)."""
    city = _city()
    user = _user_of(city, user_id)
    if not user.active:
        return _invalid(
            "users.html",
            InvalidInput(f"{user.email} is deactivated: reactivate them first", field="reset"),
            **_users_ctx(city),
        )
    send_password_reset(db_session(), user, settings_of(current_app).public_base_url)
    _audit("user.password_reset", "user", user.id, email=user.email)
    db_session().commit()
    flash(f"A link to set a new password is on its way to {user.email}; it works for one hour.")
    return redirect(url_for("admin.users"))


# --------------------------------------------------------------------------- API keys


def _keys_ctx(city: Jurisdiction) -> dict[str, Any]:
    return {"keys": [k for k, _ in apikeys.list_keys(db_session(), city.slug)]}


@bp.get("/apikeys")
@roles_required("admin")
def keys():
    return _page("apikeys.html", **_keys_ctx(_city()))


@bp.post("/apikeys")
@roles_required("admin")
def create_key():
    city = _city()
    try:
        row, key = apikeys.create_key(db_session(), city.slug, request.form.get("name", ""))
    except InvalidInput as exc:
        return _invalid("apikeys.html", exc, **_keys_ctx(city))
    _audit("apikey.create", "api_key", row.id, name=row.name, key_prefix=row.prefix)
    db_session().commit()
    # Rendered, not redirected: the key exists only in this response.
    return _page("apikeys.html", new_key=key, new_row=row, **_keys_ctx(city))


@bp.post("/apikeys/<int:key_id>/revoke")
@roles_required("admin")
def revoke_key(key_id: int):
    city = _city()
    row = db_session().get(ApiKey, key_id)
    if row is None or row.jurisdiction_id != city.id:
        raise NotFound(f"no API key {key_id}")
    try:
        apikeys.revoke_key(db_session(), row.prefix)
    except InvalidInput as exc:
        return _invalid("apikeys.html", exc, **_keys_ctx(city))
    _audit("apikey.revoke", "api_key", row.id, name=row.name, key_prefix=row.prefix)
    db_session().commit()
    flash(f"API key {row.prefix}... ({row.name}) revoked.")
    return redirect(url_for("admin.keys"))


# --------------------------------------------------------------------------- templates


def _templates_ctx(city: Jurisdiction) -> dict[str, Any]:
    session = db_session()
    return {
        "templates": session.scalars(
            sa.select(ResponseTemplate)
            .where(ResponseTemplate.jurisdiction_id == city.id)
            .order_by(ResponseTemplate.name)
        ).all(),
        "services": session.scalars(
            sa.select(Service).where(Service.jurisdiction_id == city.id).order_by(Service.code)
        ).all(),
    }


def _template_values(city: Jurisdiction, exclude_id: int | None = None) -> dict[str, Any]:
    session = db_session()
    name = (request.form.get("name") or "").strip()
    body = (request.form.get("body") or "").strip()
    if not name or len(name) > 200:
        raise InvalidInput("the template needs a name of 1-200 characters", field="name")
    clash = session.scalar(
        sa.select(ResponseTemplate.id).where(
            ResponseTemplate.jurisdiction_id == city.id,
            ResponseTemplate.name == name,
            ResponseTemplate.id != (exclude_id or 0),
        )
    )
    if clash:
        raise InvalidInput(f"a template named {name!r} already exists", field="name")
    if not body or len(body) > MAX_TEMPLATE_CHARS:
        raise InvalidInput(f"the text must be 1-{MAX_TEMPLATE_CHARS} characters", field="body")
    code = (request.form.get("service_code") or "").strip()
    service_id = None
    if code:
        service_id = session.scalar(
            sa.select(Service.id).where(Service.jurisdiction_id == city.id, Service.code == code)
        )
        if service_id is None:
            raise InvalidInput(f"no category with code {code!r}", field="service_code")
    return {"name": name, "body": body, "service_id": service_id}


def _template_of(city: Jurisdiction, template_id: int) -> ResponseTemplate:
    row = db_session().get(ResponseTemplate, template_id)
    if row is None or row.jurisdiction_id != city.id:
        raise NotFound(f"no response template {template_id}")
    return row


@bp.get("/templates")
@roles_required("admin")
def templates():
    return _page("templates.html", **_templates_ctx(_city()))


@bp.post("/templates")
@roles_required("admin")
def create_template():
    city = _city()
    try:
        values = _template_values(city)
    except InvalidInput as exc:
        return _invalid("templates.html", exc, **_templates_ctx(city))
    row = ResponseTemplate(jurisdiction_id=city.id, **values)
    db_session().add(row)
    db_session().flush()
    _audit("template.create", "response_template", row.id, **values)
    db_session().commit()
    flash(f"Template {values['name']!r} created.")
    return redirect(url_for("admin.templates"))


@bp.post("/templates/<int:template_id>")
@roles_required("admin")
def edit_template(template_id: int):
    city = _city()
    row = _template_of(city, template_id)
    try:
        values = _template_values(city, exclude_id=row.id)
    except InvalidInput as exc:
        return _invalid("templates.html", exc, edit_id=template_id, **_templates_ctx(city))
    before = {key: getattr(row, key) for key in values}
    _audit("template.edit", "response_template", row.id, **admin_audit.changes(before, values))
    for key, value in values.items():
        setattr(row, key, value)
    db_session().commit()
    flash(f"Template {row.name!r} saved.")
    return redirect(url_for("admin.templates"))


@bp.post("/templates/<int:template_id>/delete")
@roles_required("admin")
def delete_template(template_id: int):
    city = _city()
    row = _template_of(city, template_id)
    _audit("template.delete", "response_template", row.id, name=row.name)
    db_session().delete(row)
    db_session().commit()
    flash(f"Template {row.name!r} deleted.")
    return redirect(url_for("admin.templates"))
