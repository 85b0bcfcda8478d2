"""Active Dispatch: the dispatcher's live queue (map + list), request panel and actions.

The console polls ``/dispatch/api/updates`` every few seconds: new requests matching
the filters arrive at the top of the list with a banner and a beep; any other change
reloads the list. Actions are plain HTML forms (CSRF token included) that the page's
script posts with ``fetch``; the same URLs answer JSON to JSON callers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)

from intake.answers import answer_questions
from records import moderation
from routing import actions, conversation, queue
from routing import projects as project_work
from spatial.city_time import city_time, label_items
from spatial.errors import CivicpinError, InvalidInput
from spatial.models import (
    Department,
    Jurisdiction,
    Photo,
    ResponseTemplate,
    Service,
    ServiceRequest,
    now_utc,
)
from webmap.app import db_session, settings_of
from webmap.auth import current_user, roles_required
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

bp = Blueprint("dispatch", __name__)
install_headers(bp)
install_errors(bp)

POLL_MS = 3000
ACTIONS = (
    "triage",
    "reassign",
    "recategorise",
    "move",
    "merge",
    "reply",
    "reply_text",
    "note",
    "close",
    "publish",
    "moderate_text",
    "hide_photo",
    "project",
    "answers",
    "confirm_suggestion",
    "dismiss_suggestion",
)


def city_bounds(city: Jurisdiction) -> list[float] | None:
    """[west, south, east, north] of the city boundary, for fitting the map."""
    row = (
        db_session()
        .execute(
            sa.select(
                sa.func.ST_XMin(Jurisdiction.boundary),
                sa.func.ST_YMin(Jurisdiction.boundary),
                sa.func.ST_XMax(Jurisdiction.boundary),
                sa.func.ST_YMax(Jurisdiction.boundary),
            ).where(Jurisdiction.id == city.id)
        )
        .one()
    )
    return None if row[0] is None else [float(v) for v in row]


def _parse_since(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        # An unencoded "+02:00" offset arrives as " 02:00".
        value = value.strip()
        head, sep, tail = value.rpartition(" ")
        if sep and ":" in tail and "+" not in value and len(tail) == 5:
            value = f"{head}+{tail}"
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput("since must be an ISO date and time", field="since") from None
    if parsed.tzinfo is None:
        raise InvalidInput("since must carry a time zone", field="since")
    return parsed


def _db_now() -> datetime:
    return db_session().scalar(sa.select(sa.func.now()))


@bp.get("/dispatch")
@roles_required("dispatcher")
def console():
    """The console: filters, the live list, the map, and the request panel."""
    user = current_user()
    session = db_session()
    city = staff_city(user)
    try:
        filters = queue.parse_filters(request.args)
    except InvalidInput as exc:
        flash(str(exc))
        filters = queue.QueueFilters()
    filters.scope = actions.dispatch_scope(user)
    items = label_items(queue.queue(session, city, filters), city)
    settings = settings_of(current_app)
    now = _db_now()
    return render_template(
        "dispatch/console.html",
        user=user,
        city=city,
        items=items,
        total=queue.count(session, city, filters),
        filters=filters,
        options=queue.filter_options(session, city),
        bounds=city_bounds(city),
        latest_id=queue.latest_id(session, city),
        now=now.isoformat(),
        updated=city_time(now, city),
        poll_ms=POLL_MS,
        tile_url=settings.tile_url,
        tile_attribution=settings.tile_attribution,
        labels=actions.STATUS_LABELS,
    )


@bp.get("/dispatch/api/queue")
@roles_required("dispatcher")
def api_queue():
    """The filtered list as JSON, with the live cursor to poll from."""
    user = current_user()
    session = db_session()
    city = staff_city(user)
    filters = queue.parse_filters(request.args)
    filters.scope = actions.dispatch_scope(user)
    now = _db_now()
    return jsonify(
        {
            "city": city.slug,
            "total": queue.count(session, city, filters),
            "items": label_items(queue.queue(session, city, filters), city),
            "cursor": {
                "after_id": queue.latest_id(session, city),
                "since": now.isoformat(),
                "updated": city_time(now, city),
            },
        }
    )


@bp.get("/dispatch/api/updates")
@roles_required("dispatcher")
def api_updates():
    """The "new since" poll: arrivals after the cursor (matching the filters), a changed flag."""
    user = current_user()
    session = db_session()
    city = staff_city(user)
    filters = queue.parse_filters(request.args)
    filters.scope = actions.dispatch_scope(user)
    try:
        after_id = int(request.args.get("after_id", "0"))
    except ValueError:
        raise InvalidInput("after_id must be a whole number", field="after_id") from None
    since = _parse_since(request.args.get("since"))
    now = _db_now()
    new = label_items(queue.arrivals(session, city, filters, after_id=after_id, since=since), city)
    changed = since is not None and queue.changed_since(session, city, since)
    return jsonify(
        {
            "arrivals": new,
            "changed": changed,
            "cursor": {
                "after_id": max([after_id, queue.latest_id(session, city)]),
                "since": now.isoformat(),
                "updated": city_time(now, city),
            },
        }
    )


def _templates_for(req: ServiceRequest) -> list[ResponseTemplate]:
    return (
        db_session()
        .scalars(
            sa.select(ResponseTemplate)
            .where(
                ResponseTemplate.jurisdiction_id == req.jurisdiction_id,
                sa.or_(
                    ResponseTemplate.service_id.is_(None),
                    ResponseTemplate.service_id == req.service_id,
                ),
            )
            .order_by(ResponseTemplate.name)
        )
        .all()
    )


def _reply_starts(req: ServiceRequest) -> dict[int, str]:
    """Each template's text filled in for ``req``: where a reply in one's own words may
    start (the page's script copies one into the reply; without it, ``?reply_from=ID``)."""
    session = db_session()
    return {t.id: actions.render_template_text(t, req, session) for t in _templates_for(req)}


def request_context(req: ServiceRequest) -> dict[str, Any]:
    """Everything the request panel shows, scoped to the signed-in user."""
    user = current_user()
    session = db_session()
    city = session.get(Jurisdiction, req.jurisdiction_id)
    lonlat = session.execute(
        sa.select(
            sa.func.ST_X(ServiceRequest.location), sa.func.ST_Y(ServiceRequest.location)
        ).where(ServiceRequest.id == req.id)
    ).one()
    parent = session.get(ServiceRequest, req.duplicate_of_id) if req.duplicate_of_id else None
    photos = session.scalars(
        sa.select(Photo).where(Photo.request_id == req.id).order_by(Photo.created_at, Photo.id)
    ).all()
    return {
        "user": user,
        "req": req,
        "city": city,
        "service": session.get(Service, req.service_id),
        "suggested": (
            session.get(Service, req.suggested_service_id)
            if req.suggested_service_id not in (None, req.service_id)
            else None
        ),
        "department": session.get(Department, req.department_id) if req.department_id else None,
        "crew": req.crew,
        "zone": req.zone,
        "asset": queue.request_asset(session, req),
        "lon": lonlat[0],
        "lat": lonlat[1],
        "parent": parent,
        "photos": photos,
        "events": (events := actions.visible_events(session, user, req)),
        "actors": conversation.who_said(session, events),
        "private_ok": actions.sees_private_details(user, req),
        "triaged": actions.is_triaged(session, req),
        "supporters": actions.support_count(session, req),
        "overdue": bool(req.due_at and req.closed_at is None and req.due_at < now_utc()),
        "options": queue.filter_options(session, city),
        "templates": _templates_for(req),
        "reply_starts": _reply_starts(req),
        "max_reply": actions.MAX_REPLY,
        "nearby": queue.nearby_candidates(session, req),
        "labels": actions.STATUS_LABELS,
        "may": {a: actions.may(user, a, req) for a in actions.ACTION_ROLES},
        "project": project_work.get_linked(session, req),
        "projects": project_work.open_projects(session, req.jurisdiction_id),
    }


@bp.get("/dispatch/requests/<public_id>")
@roles_required("dispatcher")
def request_page(public_id: str):
    """One request: details, history, action forms (``?partial=1``: the console's panel)."""
    req = find_request(current_user(), public_id)
    if not actions.may(current_user(), "view", req):
        abort(403)  # another department's request, for a dispatcher scoped to departments
    ctx = request_context(req)
    if request.args.get("partial"):
        return render_template("dispatch/_panel.html", **ctx)
    return render_template("dispatch/request.html", **ctx)


def _int_or_none(data: dict, field: str) -> int | None:
    value = data.get(field)
    if value is None or str(value).strip() == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{field} must be a whole number", field=field) from None


def _flag(data: dict, field: str) -> bool:
    value = data.get(field)
    if isinstance(value, bool):
        return value
    return str(value or "").strip().lower() in {"1", "true", "yes", "on"}


def _run_action(action: str, req: ServiceRequest, data: dict) -> str:
    """Do ``action``; returns the message to show."""
    user = current_user()
    session = db_session()
    settings = settings_of(current_app)
    base = settings.public_base_url
    if action == "triage":
        actions.triage(
            session,
            user,
            req,
            priority=data.get("priority") or None,
            confirm=_flag(data, "confirm"),
        )
        return f"{req.public_id} triaged (priority {req.priority})"
    if action == "reassign":
        actions.reassign(
            session,
            user,
            req,
            department_id=_int_or_none(data, "department_id"),
            crew_id=_int_or_none(data, "crew_id"),
            public_base_url=base,
        )
        return f"{req.public_id} reassigned"
    if action == "recategorise":
        actions.recategorise(
            session, user, req, service_id=_int_or_none(data, "service_id"), public_base_url=base
        )
        return f"{req.public_id} re-categorised and routed again"
    if action == "confirm_suggestion":
        actions.confirm_suggestion(session, user, req, public_base_url=base)
        return f"{req.public_id} re-categorised as suggested and routed again"
    if action == "dismiss_suggestion":
        actions.dismiss_suggestion(session, user, req)
        return "Suggested category dismissed"
    if action == "move":
        actions.move_pin(
            session, user, req, lon=data.get("lon"), lat=data.get("lat"), public_base_url=base
        )
        where = req.address or "a spot with no address nearby"
        return f"{req.public_id} moved to {where} and routed again"
    if action == "merge":
        target = str(data.get("parent") or "").strip().upper()
        if not target:
            raise InvalidInput("Give the reference of the request to merge into", field="parent")
        parent = session.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == target))
        if parent is None or parent.jurisdiction_id != req.jurisdiction_id:
            raise InvalidInput(f"no request {target} in this city", field="parent")
        result = actions.merge(session, user, req, parent, public_base_url=base)
        return (
            f"{req.public_id} merged into {parent.public_id}"
            f" ({result.followers_moved} follower(s) moved)"
        )
    if action == "reply":
        result = actions.reply_with_template(
            session,
            user,
            req,
            template_id=_int_or_none(data, "template_id"),
            extra=data.get("extra"),
            public_base_url=base,
        )
        return "Reply added" + (
            " and e-mailed to the resident" if result.emailed else " (no e-mail address on file)"
        )
    if action == "reply_text":
        # One box: a public reply (mailed) or, by choice, an internal note.
        if data.get("visibility") == "internal":
            try:
                actions.add_note(session, user, req, text=data.get("reply") or "", public=False)
            except InvalidInput as exc:
                raise InvalidInput(str(exc), field="reply") from None
            return "Internal note added"
        result = actions.reply(session, user, req, text=data.get("reply"), public_base_url=base)
        return "Reply added" + (
            " and e-mailed" if result.emailed else " (no e-mail address to send it to)"
        )
    if action == "note":
        actions.add_note(session, user, req, text=data.get("text") or "", public=False)
        return "Internal note added"
    if action == "close":
        actions.close(session, user, req, reason=data.get("reason") or "", public_base_url=base)
        return f"{req.public_id} closed"
    if action == "publish":
        moderation.publish(session, user, req)
        return f"{req.public_id} confirmed: the public sees it now"
    if action == "moderate_text":
        moderation.moderate_description(
            session,
            user,
            req,
            mode=data.get("mode"),
            text=data.get("text"),
            reason=data.get("reason") or "",
        )
        return {
            "hidden": "Description hidden from the public",
            "redacted": "Description redacted for the public",
        }.get(req.description_moderation or "", "The public sees the reporter's text again")
    if action == "hide_photo":
        moderation.hide_photo(session, user, req, data.get("photo_id"), reason=data.get("reason"))
        return "Photo hidden from the public"
    if action == "project":
        project = project_work.set_request_project(session, user, req, data.get("project_id"))
        if project is None:
            return f"{req.public_id} is no longer part of a project"
        return f"{req.public_id} is now part of project {project.name}"
    if action == "answers":
        answered = answer_questions(session, user, req, _posted_answers(req, data))
        return f"Answers saved ({', '.join(answered)})" + (
            "" if req.needs_answers else "; the request no longer needs answers"
        )
    abort(404)


def _posted_answers(req: ServiceRequest, data: dict) -> dict[str, Any]:
    """The ``attribute[CODE]`` fields of the answers form (every value of a multi-select)."""
    if request.is_json:
        found = data.get("attributes")
        return found if isinstance(found, dict) else {}
    out: dict[str, Any] = {}
    for key in request.form:
        if key.startswith("attribute[") and key.endswith("]"):
            values = [v for v in request.form.getlist(key) if v.strip()]
            out[key[10:-1]] = values if len(values) > 1 else (values[0] if values else "")
    return out


@bp.post("/dispatch/requests/<public_id>/<action>")
@roles_required("dispatcher")
def act(public_id: str, action: str):
    """Run one action; JSON callers get JSON, form posts go back to the request page."""
    if action not in ACTIONS:
        abort(404)
    session = db_session()
    req = find_request(current_user(), public_id)
    data = form_data()
    try:
        message = _run_action(action, req, data)
        session.commit()
    except CivicpinError as exc:
        session.rollback()
        if wants_json():
            return json_error(exc)
        status = error_status(exc)
        if status == 403:
            abort(403)
        req = find_request(current_user(), public_id)
        ctx = request_context(req)
        return render_template(
            "dispatch/request.html", error=str(exc), error_field=getattr(exc, "field", None), **ctx
        ), status
    if wants_json():
        return jsonify(
            {
                "ok": True,
                "message": message,
                "public_id": req.public_id,
                "status": req.status,
                "priority": req.priority,
                "department_id": req.department_id,
                "crew_id": req.crew_id,
                "held": req.held_at is not None,
                "address": req.address,
            }
        )
    flash(message)
    return redirect(url_for("dispatch.request_page", public_id=req.public_id), code=303)


@bp.get("/staff/media/<path:rest>")
@roles_required("agent", "dispatcher", "crew")
def staff_media(rest: str):
    """A photo's EXIF-free copy for staff (also for private categories)."""
    key = f"public/{rest}"
    user = current_user()
    session = db_session()
    req = session.scalar(
        sa.select(ServiceRequest)
        .join(Photo, Photo.request_id == ServiceRequest.id)
        .where(sa.or_(Photo.public_key == key, Photo.thumb_key == key))
        .limit(1)
    )
    if req is None or not works_in(user, req.jurisdiction_id) or not actions.may(user, "view", req):
        abort(404)
    return send_from_directory(settings_of(current_app).media_dir, key, mimetype="image/jpeg")
