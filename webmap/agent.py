"""The agent (call-taker) console: enter a request for a caller, find existing ones.

A new request goes through the same ``intake.submit()`` as the residents' form, with the
channel set to phone, in person or mail. A caller reporting something already reported
is added as a follower of it instead (a follow counts as support).

The place: the call-taker types what the caller says and picks one of the geocoder's
candidates (``places.geocoder``), or drops the pin, which is put into words by reverse
geocoding. A typed address alone is geocoded on submit: a confident candidate places the
request; otherwise the form comes back with the candidates to choose from. An address the
city does not know is only accepted without a pin when the call-taker says so ("place it
later": dispatch drops the pin).
"""

from __future__ import annotations

from dataclasses import dataclass
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
    url_for,
)

from intake import duplicates
from intake.submit import Draft, ValidationFailed, submit, tracking_url
from places.geocoder import CONFIDENT, Candidate, address_by_id, geocode, reverse_geocode
from routing import actions, classify, queue
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
MATCH_WORDS = {
    "address_point": "the city's address point",
    "range": "on the street's address range",
    "intersection": "intersection",
    "street": "the street only",
}


def score_words(score: float) -> str:
    """A candidate's score as the call-taker reads it."""
    if score >= 0.95:
        return "exact"
    if score >= CONFIDENT:
        return "confident"
    if score >= 0.5:
        return "possible"
    return "unlikely"


def candidate_json(c: Candidate) -> dict[str, Any]:
    """A candidate for the console: the geocoder's fields, the score and match in words."""
    return {
        **c.as_json(),
        "score_words": score_words(c.score),
        "match_words": MATCH_WORDS.get(c.match_type, c.match_type),
        "confident": c.score >= CONFIDENT,
    }


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
    candidates: list[Candidate] | None = None,
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
        candidates=[candidate_json(c) for c in candidates] if candidates is not None else None,
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


@dataclass
class _Place:
    """Where the new request is, as the form and the geocoder settle it."""

    lat: float | str | None
    lon: float | str | None
    address: str | None
    address_id: str | None = None
    later: bool = False


class _Unsure(InvalidInput):
    """The typed address needs the call-taker's choice among ``candidates``."""

    def __init__(self, message: str, candidates: list[Candidate]):
        super().__init__(message, field="address")
        self.candidates = candidates


def _place(session, city: Jurisdiction, service: Service | None, form: dict[str, str]) -> _Place:
    """The form's place: a pin (lat/lon, maybe from a chosen candidate), else the typed
    address geocoded (a confident candidate, or the one chosen from the list), else
    "place it later" when the call-taker chose it. Raises :class:`_Unsure` when the
    typed address needs a choice, ``InvalidInput`` for an unknown ``address_id``."""
    address = (form.get("address") or "").strip() or None
    address_id = (form.get("address_id") or "").strip() or None
    later = form.get("place_later") == "1"
    lat, lon = _float_or_none("lat"), _float_or_none("lon")
    if lat is not None or lon is not None:
        if address_id is not None:
            known = address_by_id(session, city, address_id)
            if known is None:
                raise InvalidInput(f"{city.name} has no address with id {address_id}", "address")
            address = known.address
        return _Place(lat, lon, address, address_id)
    if address is None or (service is not None and service.location_mode == "none"):
        return _Place(None, None, address)
    chosen = (form.get("candidate") or "").strip()
    if later and not chosen:
        # The call-taker's word: the text stays as the caller said it, for dispatch.
        return _Place(None, None, address, later=True)
    found = geocode(session, city, address)
    pick = next((c for c in found.candidates if c.address == chosen), None) if chosen else None
    if pick is None and not later:
        pick = found.confident
    if pick is not None:
        return _Place(pick.lat, pick.lon, pick.address, pick.address_id)
    if later:
        return _Place(None, None, address, later=True)
    if not found.candidates:
        raise _Unsure(
            f"{city.name} does not know {address!r}: check it with the caller, put the pin "
            "on the map, or choose to place it later",
            [],
        )
    raise _Unsure(
        f"Not sure where {address!r} is: choose the caller's place below, put the pin on "
        "the map, or choose to place it later",
        found.candidates,
    )


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
    try:
        place = _place(session, city, service, form)
    except _Unsure as exc:
        session.rollback()
        return _page(
            city,
            form=form,
            errors={"address": str(exc)},
            candidates=exc.candidates,
            status=400,
        )
    except InvalidInput as exc:
        session.rollback()
        return _page(city, form=form, errors={exc.field or "address": str(exc)}, status=400)
    photos = [
        PhotoUpload(f.filename or "photo", f.read())
        for f in request.files.getlist("photos")
        if f and f.filename
    ]
    draft = Draft(
        city=city.slug,
        service_code=code,
        lat=place.lat,
        lon=place.lon,
        address=place.address,
        address_id=place.address_id,
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
        # Only on the call-taker's word: dispatch places the pin ("needs location").
        allow_missing_location=place.later,
    )
    try:
        result = submit(
            session,
            draft,
            media_dir=settings.media_dir,
            public_base_url=settings.public_base_url,
            duplicate_radius_m=settings.duplicate_radius_m,
        )
        classify.record_suggestion(
            session, city, result.request, actor_label="agent console", always=True
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


# ------------------------------------------------------------------- the console's JSON


def _point_args() -> tuple[float, float]:
    try:
        lat = float(request.args.get("lat", ""))
        lon = float(request.args.get("lon", ""))
    except ValueError:
        lat = lon = float("nan")
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise InvalidInput("lat and lon must be decimal degrees", field="location")
    return lat, lon


@bp.get("/agent/api/places")
@roles_required("agent")
def places():
    """``?q=`` what the caller says -> the city's candidates, best first."""
    city = staff_city(current_user())
    q = (request.args.get("q") or "").strip()
    if not q:
        raise InvalidInput("type an address, an intersection or a street", field="q")
    found = geocode(db_session(), city, q)
    best = found.candidates[0] if found.candidates else None
    return jsonify(
        {
            "query": found.query,
            "confident": found.confident is not None,
            "best": candidate_json(best) if best else None,
            "candidates": [candidate_json(c) for c in found.candidates],
        }
    )


@bp.get("/agent/api/reverse")
@roles_required("agent")
def reverse():
    """``?lat=&lon=`` a dropped pin -> its address, or "near <street> and <cross street>"."""
    city = staff_city(current_user())
    lat, lon = _point_args()
    found = reverse_geocode(db_session(), city, lon, lat)
    if found is None:
        return jsonify({"place": None})
    return jsonify(
        {
            "place": {
                "address": found.address,
                "match_type": found.match_type,
                "distance_m": round(found.distance_m, 1),
                "address_id": found.address_id,
            }
        }
    )


@bp.get("/agent/api/categories")
@roles_required("agent")
def suggest_categories():
    """``?text=`` what the caller says -> up to three categories the city's classifier
    suggests, most probable first (none until ``civicpin categories train`` has run)."""
    city = staff_city(current_user())
    text = (request.args.get("text") or "")[: classify.MAX_TEXT]
    found = classify.suggest(db_session(), city, text)
    return jsonify(
        {
            "suggestions": [
                {
                    "code": s.service.code,
                    "name": s.service.name,
                    "probability": round(s.probability, 4),
                    "percent": round(s.probability * 100),
                }
                for s in found
            ]
        }
    )


@bp.get("/agent/api/duplicates")
@roles_required("agent")
def nearby():
    """``?service=&lat=&lon=`` -> open requests of that category within the duplicate
    radius, each with the route that makes the caller a follower."""
    city = staff_city(current_user())
    session = db_session()
    lat, lon = _point_args()
    code = (request.args.get("service") or "").strip()
    service = session.scalar(
        sa.select(Service).where(Service.jurisdiction_id == city.id, Service.code == code)
    )
    if service is None:
        raise InvalidInput("unknown category", field="service")
    radius = settings_of(current_app).duplicate_radius_m or duplicates.DEFAULT_RADIUS_M
    found = duplicates.find_duplicates(session, city, service, lon, lat, radius_m=radius)
    return jsonify(
        {
            "radius_m": radius,
            "candidates": [
                {
                    "public_id": c.public_id,
                    "service": c.service,
                    "status": c.status,
                    "status_label": actions.STATUS_LABELS.get(c.status, c.status),
                    "distance_m": round(c.distance_m),
                    "address": c.address,
                    "description": (c.description or "")[:160] or None,
                    "supporters": c.supporters,
                    "follow_url": url_for("agent.follow", public_id=c.public_id),
                }
                for c in found
            ],
        }
    )


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
