"""The agent (call-taker) console: enter a request for a caller, find existing ones.

A new request goes through the same ``intake.submit()`` as the residents' form, with the
channel set to phone, in person or mail. A caller reporting something already reported
is added as a follower of it instead (a follow counts as support).
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

from intake import duplicates
from intake.submit import Draft, ValidationFailed, submit, tracking_url
from routing import actions, queue
from spatial.errors import CivicpinError, InvalidInput
from spatial.media import PhotoUpload
from spatial.models import Jurisdiction, Service, ServiceRequest
from webmap.app import db_session, settings_of
from webmap.auth import current_user, roles_required
from webmap.staffkit import (
    error_status,
    find_request,
    install_errors,
    install_headers,
    staff_city,
)

bp = Blueprint("agent", __name__)
install_headers(bp)
install_errors(bp)

AGENT_CHANNELS = (("phone", "Phone"), ("in_person", "In person"), ("mail", "Mail"))


def _follow(
    session, user, req: ServiceRequest, email: str | None, channel: str, public_base_url: str
) -> None:
    """A caller with an e-mail follows like a resident does (``intake.duplicates.follow``:
    subscription, public event, confirmation e-mail) and the agent's action is audited;
    a caller without one still counts as support (``routing.actions.follow``)."""
    actions.require(user, "follow", req)
    if email is None:
        actions.follow(session, user, req, email=None, channel=channel)
        return
    result = duplicates.follow(session, req, email, public_base_url=public_base_url)
    if not result.created:
        raise InvalidInput(f"{email} already follows {req.public_id}", field="email")
    actions.record_follow(session, user, req, channel=channel)


def _services(city: Jurisdiction) -> list[Service]:
    return (
        db_session()
        .scalars(
            sa.select(Service)
            .where(Service.jurisdiction_id == city.id, Service.active.is_(True))
            .order_by(Service.group.nulls_last(), Service.name)
        )
        .all()
    )


def _page(
    city: Jurisdiction,
    *,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    results=None,
    q: str = "",
    search_error: str | None = None,
    status: int = 200,
):
    settings = settings_of(current_app)
    from webmap.dispatch import city_bounds

    return render_template(
        "agent/index.html",
        user=current_user(),
        city=city,
        services=_services(city),
        channels=AGENT_CHANNELS,
        form=form or {"channel": "phone", "notify_updates": "1"},
        errors=errors or {},
        results=results,
        q=q,
        search_error=search_error,
        labels=actions.STATUS_LABELS,
        bounds=city_bounds(city),
        tile_url=settings.tile_url,
        tile_attribution=settings.tile_attribution,
    ), status


@bp.get("/agent")
@roles_required("agent")
def index():
    """The call-taker's page: search box, results, and the new-request form."""
    user = current_user()
    city = staff_city(user)
    q = (request.args.get("q") or "").strip()
    results = None
    search_error = None
    if q:
        try:
            results = queue.search_requests(db_session(), city, q)
            for item in results:
                req = db_session().get(ServiceRequest, item["id"])
                item["supporters"] = actions.support_count(db_session(), req)
        except InvalidInput as exc:
            search_error = str(exc)
    return _page(city, results=results, q=q, search_error=search_error)


def _answers(service: Service | None) -> dict[str, Any]:
    """The chosen category's answers (fields ``attr:<service>:<question>``)."""
    if service is None:
        return {}
    answers: dict[str, Any] = {}
    for attr in service.attributes:
        key = f"attr:{service.code}:{attr.code}"
        if attr.datatype == "multivaluelist":
            values = [v for v in request.form.getlist(key) if v]
            if values:
                answers[attr.code] = values
        else:
            value = (request.form.get(key) or "").strip()
            if value:
                answers[attr.code] = value
    return answers


def _float_or_none(field: str) -> float | str | None:
    raw = (request.form.get(field) or "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        return raw  # submit() names the bad location


@bp.post("/agent/requests")
@roles_required("agent")
def create():
    """Submit a request for a caller through ``intake.submit()``."""
    user = current_user()
    session = db_session()
    city = staff_city(user)
    settings = settings_of(current_app)
    form = request.form.to_dict()
    channel = form.get("channel") or "phone"
    if channel not in dict(AGENT_CHANNELS):
        return _page(
            city, form=form, errors={"channel": "Pick phone, in person or mail"}, status=400
        )
    code = (form.get("service_code") or "").strip()
    service = session.scalar(
        sa.select(Service).where(Service.jurisdiction_id == city.id, Service.code == code)
    )
    photos = [
        PhotoUpload(f.filename or "photo", f.read())
        for f in request.files.getlist("photos")
        if f and f.filename
    ]
    draft = Draft(
        city=city.slug,
        service_code=code,
        lat=_float_or_none("lat"),
        lon=_float_or_none("lon"),
        address=form.get("address"),
        description=form.get("description"),
        attributes=_answers(service),
        photos=photos,
        contact_name=form.get("contact_name"),
        contact_email=form.get("contact_email"),
        contact_phone=form.get("contact_phone"),
        anonymous=form.get("anonymous") == "1",
        notify_updates=form.get("notify_updates") == "1",
        channel=channel,
        account_id=f"agent:{user.id}",
        # A caller may only know the address: dispatch places the pin ("needs location").
        allow_missing_location=bool((form.get("address") or "").strip()),
    )
    try:
        result = submit(
            session,
            draft,
            media_dir=settings.media_dir,
            public_base_url=settings.public_base_url,
            duplicate_radius_m=settings.duplicate_radius_m,
        )
        session.commit()
    except ValidationFailed as exc:
        session.rollback()
        return _page(city, form=form, errors=exc.errors, status=400)
    except CivicpinError as exc:
        session.rollback()
        return _page(
            city,
            form=form,
            errors={getattr(exc, "field", None) or "form": str(exc)},
            status=error_status(exc),
        )
    req = result.request
    return render_template(
        "agent/created.html",
        user=user,
        req=req,
        service=service,
        notice=result.notice,
        tracking=tracking_url(settings.public_base_url, req),
    ), 201


@bp.post("/agent/requests/<public_id>/follow")
@roles_required("agent")
def follow(public_id: str):
    """Add the caller as a follower of an existing request (their support counts)."""
    user = current_user()
    session = db_session()
    req = find_request(user, public_id)
    email = request.form.get("email")
    channel = request.form.get("channel") or "phone"
    if channel not in dict(AGENT_CHANNELS):
        channel = "phone"
    try:
        _follow(
            session,
            user,
            req,
            (email or "").strip() or None,
            channel,
            settings_of(current_app).public_base_url,
        )
        session.commit()
    except CivicpinError as exc:
        session.rollback()
        status = error_status(exc)
        if status == 403:
            abort(403)
        city = session.get(Jurisdiction, req.jurisdiction_id)
        results = queue.search_requests(session, city, req.public_id)
        return _page(city, results=results, q=req.public_id, search_error=str(exc), status=status)
    flash(
        f"The caller now follows {req.public_id}"
        + (
            f". Updates go to {email.strip()} once the caller opens the link we e-mailed there"
            if email and email.strip()
            else ""
        )
    )
    return redirect(url_for("agent.index", q=req.public_id), code=303)
