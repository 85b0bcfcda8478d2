"""Residents: report a problem, track it, follow one.

Two ways to report, one handler: the map page (``/report``: pin by map, location,
address search or a photo's GPS) and the map-free form (``/report/plain``: address search
or coordinates, every step a plain HTML form that works without JavaScript, for keyboard
and screen-reader users). Both POST to ``/report``, which calls :func:`intake.submit`.

Small JSON endpoints serve the map page: address search and reverse look-up (the city's
geocoder, :mod:`places.geocoder`), possible duplicates, and the public details of one
request (map popups). A typed address is placed only when the geocoder is confident;
otherwise the person chooses among its candidates, never silently moved.
"""

from __future__ import annotations

import math
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

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
from flask import session as browser_session
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import RequestEntityTooLarge

from intake import faq as faq_domain
from intake.duplicates import (
    DEFAULT_DAYS,
    DEFAULT_RADIUS_M,
    DuplicateCandidate,
    confirm_follow,
    find_duplicates,
    follow,
    follow_link_address,
    supporters,
)
from intake.locate import (
    LocateRefused,
    check_may_locate,
    needs_resident_location,
    set_location_by_resident,
    token_matches,
)
from intake.submit import Draft, ValidationFailed, find_service, point_in_city, submit
from notify.links import BadLink, ExpiredLink
from places.geocoder import (
    REVERSE_MAX_M,
    Candidate,
    GeocodeRefused,
    address_by_id,
    check_text,
    geocode,
    reverse_geocode,
)
from records import moderation
from routing import conversation
from routing.projects import public_summary as project_summary
from spatial.apikeys import parse_rate_limit
from spatial.cities import city_base_url, default_city
from spatial.errors import CivicpinError, InvalidInput, NotFound
from spatial.media import MAX_BYTES, MAX_PHOTOS, PhotoUpload
from spatial.models import (
    OPEN_STATUSES,
    Jurisdiction,
    Photo,
    RequestEvent,
    Service,
    ServiceRequest,
    now_utc,
)
from spatial.models_places import AssetLayer
from webmap.app import db_session, path_city, settings_of
from webmap.mapping import LEAFLET_CSS, LEAFLET_JS, city_boundary
from webmap.public import (
    STATUS_LABELS,
    content_security_policy,
    current_city,
    grouped_categories,
)

bp = Blueprint("resident", __name__)

# Five reports at once, then one every two minutes, per client address (see ClientLimiter).
DEFAULT_REPORT_RATE_LIMIT = "0.0083/5"
PUBLIC_ID_RE = re.compile(r"^[A-Za-z0-9-]{1,32}$")
ATTRIBUTE_FIELD = re.compile(r"^attribute\[([^\]]{1,64})\]$")
REMEMBERED_REPORTS = 5
EVENT_LABELS = {
    "submitted": "Reported",
    "routed": "Sent to another team",
    "followed": "Another resident reported this too",
    "status": "Status changed",
    "status_changed": "Status changed",
    "comment": "Update from the city",
    "public_note": "Update from the city",
    "merged": "Merged with another report",
    "assigned": "Assigned",
    "resolved": "Resolved",
    "closed": "Closed",
    "reopened": "Reopened",
    "located": "Location added",
    "reply": "Reply from the city",
    "reopen": "Reopened by the reporter: not fixed",
    "message": "You wrote",
}


# ----------------------------------------------------------------------- rate limiting


class ClientLimiter:
    """Token buckets per client address: ``burst`` reports at once, then ``rate`` per second.

    In-process on purpose: it damps floods from one address without a shared store or a
    database write per request. With N worker processes a client may get N times the
    limit, which is acceptable for abuse damping (it is not a quota). Full buckets are
    pruned, so memory stays bounded by the clients active in the last few minutes.
    """

    def __init__(self, rate: float, burst: int, clock=time.monotonic, max_clients=100_000):
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._max = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Spend one token: 0.0 if allowed, else the seconds until one is back."""
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
            if len(self._buckets) > self._max:
                self._prune(now)
            return wait

    def _prune(self, now: float) -> None:
        full = [
            k
            for k, (tokens, at) in self._buckets.items()
            if tokens + (now - at) * self.rate >= self.burst
        ]
        for k in full:
            del self._buckets[k]


def _limiter() -> ClientLimiter:
    ext = current_app.extensions.setdefault("resident", {})
    spec = str(current_app.config.get("REPORT_RATE_LIMIT", DEFAULT_REPORT_RATE_LIMIT))
    if ext.get("limiter_spec") != spec:
        rate, burst = parse_rate_limit(spec)
        ext["limiter"] = ClientLimiter(rate, burst)
        ext["limiter_spec"] = spec
    return ext["limiter"]


def _client_key() -> str:
    # Behind a proxy the app must be wrapped in ProxyFix so remote_addr is the client's.
    return request.remote_addr or "unknown"


# ------------------------------------------------------------------------------ helpers


@bp.after_request
def _security_headers(response: Response) -> Response:
    settings = settings_of(current_app)
    response.headers.setdefault(
        "Content-Security-Policy", content_security_policy(None, settings.tile_url)
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    # Tracking links carry a secret token: never send it on in a Referer header.
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_exc):
    limit = current_app.config.get("MAX_CONTENT_LENGTH") or 0
    return _message(
        "Too much to upload",
        f"The report with its photos is over {limit // 1048576} MB. Use at most "
        f"{MAX_PHOTOS} photos of at most {MAX_BYTES // 1048576} MB each, and try again.",
        413,
    )


def _message(heading: str, message: str, status: int):
    return render_template("message.html", heading=heading, message=message), status


def _json_error(exc: CivicpinError):
    status = 404 if isinstance(exc, NotFound) else 400
    body: dict[str, Any] = {"error": str(exc)}
    if getattr(exc, "field", None):
        body["field"] = exc.field
    return jsonify(body), status


def _city() -> Jurisdiction:
    """The page's city: its address's, else ``?city=``, else the install's default."""
    return current_city()


def _settings():
    return settings_of(current_app)


def duplicate_radius_m() -> float:
    return float(current_app.config.get("DUPLICATE_RADIUS_M", DEFAULT_RADIUS_M))


def _float(value: str | None) -> float | None:
    try:
        number = float(value) if value not in (None, "") else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


def local_time(city: Jurisdiction, value: datetime | None, with_time: bool = True) -> str:
    if value is None:
        return ""
    local = value.astimezone(ZoneInfo(city.timezone))
    return local.strftime("%-d %b %Y, %H:%M" if with_time else "%-d %b %Y")


def age_text(value: datetime, now: datetime | None = None) -> str:
    """How long ago, in words a resident reads at a glance."""
    seconds = max(0.0, ((now or now_utc()) - value).total_seconds())
    if seconds < 3600:
        minutes = int(seconds // 60)
        return "just now" if minutes < 1 else f"{minutes} min ago"
    if seconds < 86400:
        hours = int(seconds // 3600)
        return f"{hours} hour{'s' if hours != 1 else ''} ago"
    days = int(seconds // 86400)
    if days < 14:
        return f"{days} day{'s' if days != 1 else ''} ago"
    if days < 60:
        return f"{days // 7} weeks ago"
    return f"{days // 30} months ago"


def media_url(key: str | None) -> str | None:
    if not key:
        return None
    return url_for("open311.public_media", rest=key.removeprefix("public/"))


def _categories(session, city: Jurisdiction):
    return grouped_categories(session, city, include_private=True, active_only=True)


def _all_services(groups) -> list[Service]:
    return [s for _, services in groups for s in services]


def _candidate_json(city: Jurisdiction, c: DuplicateCandidate) -> dict[str, Any]:
    return {
        "public_id": c.public_id,
        "service": c.service,
        "status": c.status,
        "status_label": STATUS_LABELS.get(c.status, c.status),
        "requested_at": c.requested_at.isoformat(),
        "reported": local_time(city, c.requested_at),
        "age": age_text(c.requested_at),
        "distance_m": round(c.distance_m),
        "address": c.address,
        "description": (c.description or "")[:160] or None,
        "thumb_url": media_url(c.thumb_key),
        "supporters": c.supporters,
        "url": url_for("resident.track", public_id=c.public_id),
        "follow_url": url_for("resident.follow_request", public_id=c.public_id),
    }


# ------------------------------------------------------------------------- places

# The geocoder's match types, in the words a resident reads beside each candidate.
MATCH_WORDS = {
    "address_point": "exact address",
    "range": "estimated along the street",
    "intersection": "intersection",
    "street": "street only",
}
CANDIDATE_LIMIT = 6
MIN_QUERY = 3
NOT_SURE = (
    "We are not sure which place you mean: choose one of the places listed, "
    "or put the pin on the map."
)


def place_json(c: Candidate) -> dict[str, Any]:
    """A geocoder candidate for the page's script, with its match type in words."""
    out = c.as_json()
    out["match_label"] = MATCH_WORDS.get(c.match_type, c.match_type)
    return out


@dataclass
class TypedPlace:
    """Where typed text leads: one place (``chosen``), or candidates to choose among."""

    chosen: Candidate | None = None
    candidates: list[Candidate] | None = None


def typed_place(s, city: Jurisdiction, query: str, choice: str | None = None) -> TypedPlace:
    """Look up ``query``: the confident candidate, the one the person chose from the list
    they were shown (``choice``: its position), or the candidates to choose among.

    Raises :class:`InvalidInput` (field ``q``) for text that cannot be looked up or that
    matches nothing. Never returns an unsure candidate the person did not choose.
    """
    if len(query) < MIN_QUERY:
        raise InvalidInput(f"Type at least {MIN_QUERY} characters of the address", field="q")
    try:
        found = geocode(s, city, query, limit=CANDIDATE_LIMIT)
    except GeocodeRefused as exc:
        raise InvalidInput(str(exc), field="q") from exc
    if not found.candidates:
        raise InvalidInput(
            f"No place in {city.name} matches {query!r}. Check the spelling, "
            "or put the pin on the map.",
            field="q",
        )
    index = int(choice) if choice and choice.isdigit() and len(choice) < 3 else None
    if index is not None and index < len(found.candidates):
        return TypedPlace(chosen=found.candidates[index])
    if found.confident is not None:
        return TypedPlace(chosen=found.confident)
    return TypedPlace(candidates=found.candidates)


def _chosen_choice(values: MultiDict, query: str) -> str | None:
    """The candidate the person ticked, if the list they saw was for this very text."""
    if query and query == (values.get("q_searched") or "").strip():
        return (values.get("place_choice") or "").strip() or None
    return None


def asset_layers(s, services: list[Service]) -> dict[str, AssetLayer]:
    """category code -> its asset layer, for the categories that have one."""
    ids = {svc.asset_layer_id for svc in services if svc.asset_layer_id}
    if not ids:
        return {}
    layers = {
        layer.id: layer for layer in s.scalars(sa.select(AssetLayer).where(AssetLayer.id.in_(ids)))
    }
    return {
        svc.code: layers[svc.asset_layer_id] for svc in services if svc.asset_layer_id in layers
    }


def _metres_between(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    rad = math.pi / 180
    x = (lon2 - lon1) * rad * math.cos((lat1 + lat2) / 2 * rad)
    return 6_371_000 * math.hypot(x, (lat2 - lat1) * rad)


# ------------------------------------------------------------------------- the report


@dataclass
class FormState:
    """What a report form page shows: the values typed, the errors, the chosen category."""

    values: MultiDict
    errors: dict[str, str]
    service: Service | None = None
    had_photos: bool = False
    # The places a typed address may mean, when the geocoder was not sure.
    candidates: list[Candidate] | None = None

    def get(self, name: str, default: str = "") -> str:
        return self.values.get(name, default) or default

    def getlist(self, name: str) -> list[str]:
        return self.values.getlist(name)


def error_links(state: FormState, location_target: str) -> dict[str, str]:
    """The element id each error in the summary at the top links to."""
    links = {
        name: name
        for name in ("service_code", "description", "photos", "contact_email", "contact_phone")
    }
    links.update(contact_name="contact_name", location=location_target, form="main")
    links.update(q="address-q", place_choice="place-choice-0", asset="asset_ref")
    if state.service is not None:
        for attr in state.service.attributes:
            links[f"attribute[{attr.code}]"] = f"q-{state.service.code}-{attr.code}"
    return links


def _answers(form: MultiDict) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for key in form:
        match = ATTRIBUTE_FIELD.match(key)
        if match:
            values = [v for v in form.getlist(key) if v.strip()]
            if values:
                answers[match.group(1)] = values if len(values) > 1 else values[0]
    return answers


def _photos() -> list[PhotoUpload]:
    return [
        PhotoUpload(f.filename or "photo", f.read())
        for f in request.files.getlist("photos")
        if f and (f.filename or "").strip()
    ]


def _coordinate(text: str | None) -> float | str | None:
    """A number; text that is not one goes to submit() as is, which names the field."""
    text = (text or "").strip()
    if not text:
        return None
    number = _float(text)
    return number if number is not None else text


def _draft(city: Jurisdiction, form: MultiDict, photos: list[PhotoUpload]) -> Draft:
    return Draft(
        city=city.slug,
        service_code=(form.get("service_code") or "").strip(),
        lat=_coordinate(form.get("lat")),
        lon=_coordinate(form.get("lon")),
        address=(form.get("address") or "").strip() or None,
        address_id=(form.get("address_id") or "").strip()[:100] or None,
        asset_ref=(form.get("asset_ref") or "").strip() or None,
        description=form.get("description"),
        attributes=_answers(form),
        photos=photos,
        contact_name=form.get("contact_name"),
        contact_email=form.get("contact_email"),
        contact_phone=form.get("contact_phone"),
        anonymous=bool(form.get("anonymous")),
        notify_updates=form.get("notify_updates", "1") != "0",
        channel="web",
    )


@bp.get("/report")
def report():
    """The report page with the map (pin, location, address search, photo GPS)."""
    try:
        city = _city()
    except CivicpinError as exc:
        return _message("City not found", str(exc), 404 if isinstance(exc, NotFound) else 400)
    values = MultiDict(request.args)
    service = None
    if values.get("service"):
        service = find_service(db_session(), city, values["service"], public=True)
        if service is not None:
            values["service_code"] = service.code
    return _render_map_form(city, FormState(values, {}, service))


def _help_view(article) -> dict[str, Any]:
    return {
        "title": article.title,
        "slug": article.slug,
        "blocks": faq_domain.body_blocks(article.body),
    }


def help_articles(s, services: list[Service]) -> dict[str, dict[str, Any]]:
    """category code -> its published help article, ready for ``_form.help_article``."""
    found = faq_domain.articles_for_services(s, [svc.id for svc in services])
    return {svc.code: _help_view(found[svc.id]) for svc in services if svc.id in found}


def _render_map_form(city: Jurisdiction, state: FormState, status: int = 200):
    s = db_session()
    groups = _categories(s, city)
    services = _all_services(groups)
    settings = _settings()
    return (
        render_template(
            "resident/report.html",
            city=city,
            groups=groups,
            services=services,
            help_articles=help_articles(s, services),
            asset_layers=asset_layers(s, services),
            match_words=MATCH_WORDS,
            state=state,
            links=error_links(state, "address-q"),
            boundary=city_boundary(s, city),
            tile_url=settings.tile_url,
            tile_attribution=settings.tile_attribution,
            leaflet_js=url_for("static", filename=LEAFLET_JS),
            leaflet_css=url_for("static", filename=LEAFLET_CSS),
            duplicates=_duplicates_for_state(city, state),
            radius_m=duplicate_radius_m(),
            days=DEFAULT_DAYS,
            max_photos=MAX_PHOTOS,
            max_mb=MAX_BYTES // 1048576,
        ),
        status,
    )


def _duplicates_for_state(city: Jurisdiction, state: FormState) -> list[dict[str, Any]]:
    lat, lon = _float(state.get("lat")), _float(state.get("lon"))
    if state.service is None or lat is None or lon is None:
        return []
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return []
    found = find_duplicates(
        db_session(), city, state.service, lon, lat, radius_m=duplicate_radius_m()
    )
    return [_candidate_json(city, c) for c in found]


@bp.post("/report")
def report_submit():
    """Validate and store a report from either form; errors go back next to the fields."""
    try:
        city = _city()
    except CivicpinError as exc:
        return _message("City not found", str(exc), 404 if isinstance(exc, NotFound) else 400)
    s = db_session()
    form = request.form
    service = find_service(s, city, (form.get("service_code") or "").strip(), public=True)
    wait = _limiter().take(_client_key())
    sent_photos = any((f.filename or "").strip() for f in request.files.getlist("photos"))
    state = FormState(MultiDict(form), {}, service, had_photos=sent_photos)
    if wait > 0:
        minutes = max(1, math.ceil(wait / 60))
        state.errors["form"] = (
            "You have sent several reports in a short time. Please wait "
            f"{minutes} minute{'s' if minutes != 1 else ''} and send this one again."
        )
        response, status = _render_again(city, state, 429)
        return response, status, {"Retry-After": str(math.ceil(wait))}
    if not (form.get("service_code") or "").strip():
        state.errors["service_code"] = "Choose what the problem is"
        return _render_again(city, state, 422)

    draft = _draft(city, form, _photos())
    settings = _settings()
    try:
        if not _place_draft(s, city, service, draft, state):
            return _render_again(city, state, 422)
        result = submit(
            s,
            draft,
            media_dir=settings.media_dir,
            public_base_url=settings.public_base_url,
            duplicate_radius_m=duplicate_radius_m(),
        )
        req = result.request
        public_id = req.public_id
        s.commit()
    except ValidationFailed as exc:
        s.rollback()
        state.errors.update(exc.errors)
        return _render_again(city, state, 422)
    except InvalidInput as exc:
        s.rollback()
        state.errors[exc.field or "form"] = str(exc)
        return _render_again(city, state, 422)
    remembered = dict(session_reports())
    remembered[public_id] = result.token
    browser_session["reports"] = dict(list(remembered.items())[-REMEMBERED_REPORTS:])
    browser_session["photo_location_used"] = public_id if result.photo_location_used else None
    return redirect(url_for("resident.report_done", public_id=public_id, city=city.slug), 303)


def _place_draft(s, city: Jurisdiction, service, draft: Draft, state: FormState) -> bool:
    """Settle the draft's place from the form: a pin stays where the person put it (its
    address point id kept only if the pin is still on it); a typed address without a
    pin is geocoded. False (with the error in ``state``) when the person must choose
    among candidates or fix the text; nothing is placed on a guess."""
    if service is not None and service.location_mode == "none":
        draft.address_id = None
        return True
    if draft.lat is not None or draft.lon is not None:
        if draft.address_id:
            point = address_by_id(s, city, draft.address_id)
            lat, lon = draft.lat, draft.lon
            on_point = (
                point is not None
                and isinstance(lat, float)
                and isinstance(lon, float)
                and _metres_between(lat, lon, point.lat, point.lon) <= REVERSE_MAX_M
            )
            if on_point:
                draft.address = point.address
            else:
                draft.address_id = None
        return True
    draft.address_id = None
    query = state.get("q").strip()
    if not query:
        return True  # submit() says a place is needed, if the category needs one
    try:
        found = typed_place(s, city, query, _chosen_choice(state.values, query))
    except InvalidInput as exc:
        state.errors["q"] = str(exc)
        return False
    if found.chosen is None:
        state.candidates = found.candidates
        state.errors["place_choice"] = NOT_SURE
        return False
    chosen = found.chosen
    draft.lat, draft.lon, draft.address = chosen.lat, chosen.lon, chosen.address
    draft.address_id = chosen.address_id
    # The page shown again after another error keeps the place that was found.
    for key, value in (
        ("lat", f"{chosen.lat:.6f}"),
        ("lon", f"{chosen.lon:.6f}"),
        ("address", chosen.address),
        ("address_id", chosen.address_id or ""),
    ):
        state.values[key] = value  # replaces, where update() would add a second value
    return True


def session_reports() -> dict[str, str]:
    """public id -> token of the reports this browser sent (for the confirmation page)."""
    value = browser_session.get("reports")
    return value if isinstance(value, dict) else {}


def _render_again(city: Jurisdiction, state: FormState, status: int):
    if state.get("form") == "plain":
        return _render_plain_details(city, state, status)
    return _render_map_form(city, state, status)


@bp.get("/report/done/<public_id>")
def report_done(public_id: str):
    """The confirmation: public id and the private tracking link (this browser only)."""
    token = session_reports().get(public_id)
    if not PUBLIC_ID_RE.match(public_id) or token is None:
        return redirect(url_for("resident.track", public_id=public_id))
    s = db_session()
    req = s.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == public_id))
    if req is None or not secrets.compare_digest(req.token, token):
        abort(404)
    city = s.get(Jurisdiction, req.jurisdiction_id)
    link = url_for("resident.track", public_id=public_id, token=token, _external=False)
    base = _settings().public_base_url
    return render_template(
        "resident/done.html",
        city=city,
        req=req,
        tracking_link=base + link,
        tracking_path=link,
        notice=req.service.notice,
        photo_location_used=browser_session.get("photo_location_used") == public_id,
        view=public_view(s, city, req),
    )


# ------------------------------------------------------------------- the map-free form


@bp.get("/report/plain")
def report_plain():
    """The report form without a map: address search or coordinates, then the details."""
    try:
        city = _city()
    except CivicpinError as exc:
        return _message("City not found", str(exc), 404 if isinstance(exc, NotFound) else 400)
    s = db_session()
    args = request.args
    groups = _categories(s, city)
    started = any(args.get(k) for k in ("service_code", "q", "lat", "lon", "go"))
    errors: dict[str, str] = {}
    candidates: list[Candidate] | None = None
    if not started:
        return render_template(
            "resident/plain_start.html",
            city=city,
            groups=groups,
            values=args,
            errors={},
            match_words=MATCH_WORDS,
        )

    code = (args.get("service_code") or "").strip()
    service = find_service(s, city, code, public=True) if code else None
    if not code:
        errors["service_code"] = "Choose what the problem is"
    elif service is None:
        errors["service_code"] = f"There is no category {code!r}; choose one from the list"

    location: tuple[float, float] | None = None  # (lat, lon)
    address = address_id = None
    query = (args.get("q") or "").strip()
    # A category that needs no place skips the place, one where it is optional may.
    place_mode = service.location_mode if service is not None else "required"
    if place_mode == "none":
        pass
    elif query:
        try:
            found = typed_place(s, city, query, _chosen_choice(args, query))
        except InvalidInput as exc:
            errors["q"] = str(exc)
        else:
            if found.chosen is not None:
                chosen = found.chosen
                location, address = (chosen.lat, chosen.lon), chosen.address
                address_id = chosen.address_id
            else:
                candidates = found.candidates
                errors["place_choice"] = NOT_SURE
    elif args.get("lat") or args.get("lon"):
        lat, lon = _float(args.get("lat")), _float(args.get("lon"))
        if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
            errors["location"] = (
                "Give the latitude (-90 to 90) and longitude (-180 to 180) in decimal degrees"
            )
        else:
            location = (lat, lon)
    elif place_mode == "required":
        errors["q"] = "Search an address, or give the coordinates"
    if location is not None and not point_in_city(s, city, location[1], location[0]):
        errors["location"] = (
            f"This spot is outside {city.name}. Choose a place inside the city boundary."
        )
        location = None
    if location is not None and address is None:
        near = reverse_geocode(s, city, location[1], location[0])
        address, address_id = (near.address, near.address_id) if near else (None, None)

    if errors or (location is None and place_mode == "required") or service is None:
        return (
            render_template(
                "resident/plain_start.html",
                city=city,
                groups=groups,
                values=args,
                errors=errors,
                candidates=candidates,
                match_words=MATCH_WORDS,
            ),
            422,
        )
    values = MultiDict(
        {
            "service_code": service.code,
            "lat": f"{location[0]:.6f}" if location else "",
            "lon": f"{location[1]:.6f}" if location else "",
            "address": address or "",
            "address_id": address_id or "",
            "form": "plain",
            "q": query,
        }
    )
    article = faq_domain.article_for_service(s, service)
    if (service.notice or article is not None) and args.get("continue") != "1":
        return render_template(
            "resident/plain_notice.html",
            city=city,
            service=service,
            values=values,
            help_article=_help_view(article) if article is not None else None,
        )
    return _render_plain_details(city, FormState(values, {}, service))


def _render_plain_details(city: Jurisdiction, state: FormState, status: int = 200):
    if state.service is None:
        # Only reachable by a hand-made POST: start again with the category question.
        return redirect(url_for("resident.report_plain", city=city.slug))
    return (
        render_template(
            "resident/plain_details.html",
            city=city,
            state=state,
            links=error_links(state, "summary"),
            service=state.service,
            asset_layer=asset_layers(db_session(), [state.service]).get(state.service.code),
            duplicates=_duplicates_for_state(city, state),
            radius_m=duplicate_radius_m(),
            days=DEFAULT_DAYS,
            max_photos=MAX_PHOTOS,
            max_mb=MAX_BYTES // 1048576,
        ),
        status,
    )


# ------------------------------------------------------------------ tracking, following


def public_view(
    s, city: Jurisdiction, req: ServiceRequest, *, owner: bool = False
) -> dict[str, Any]:
    """The public fields of a request, ready for a template or JSON (never contact data).

    ``owner`` (the reporter, with their private link): the timeline also holds the
    reporter's own messages, which nobody else outside staff sees.
    """
    lon, lat = s.execute(
        sa.select(
            sa.func.ST_X(ServiceRequest.location), sa.func.ST_Y(ServiceRequest.location)
        ).where(ServiceRequest.id == req.id)
    ).one()
    # Photos staff hid are never shown; a held request's photos are not served to anyone
    # (records.moderation), so its reporter's page lists none until it is published.
    photos = s.scalars(
        sa.select(Photo)
        .where(Photo.request_id == req.id, moderation.PHOTO_SHOWN)
        .order_by(Photo.stage.desc(), Photo.id)
    ).all()
    if moderation.is_held(req):
        photos = []
    shown = RequestEvent.public.is_(True)
    if owner:
        shown = sa.or_(shown, RequestEvent.kind == "message")
    events = s.scalars(
        sa.select(RequestEvent)
        .where(RequestEvent.request_id == req.id, shown)
        .order_by(RequestEvent.at, RequestEvent.id)
    ).all()
    timeline = []
    first_routing = next((e.from_value for e in events if e.kind == "routed"), None)
    # A request first routed when its reporter dropped the missing pin shows that after it.
    routed_after = "located" if any(e.kind == "located" for e in events) else "submitted"
    for e in events:
        label = EVENT_LABELS.get(e.kind, e.kind.replace("_", " ").capitalize())
        detail = e.note
        if e.kind == "submitted" and (e.note or "").startswith("Reported"):
            label, detail = e.note, None  # "Reported via web", not "Reported: Reported via web"
        elif e.kind == "routed":
            detail = e.to_value
        elif e.kind == "located":
            detail = f"{e.note}: {e.to_value}" if e.note and e.to_value else e.note or e.to_value
        elif e.kind in ("reopen", "message", "reply"):
            detail = e.note
        elif e.to_value in STATUS_LABELS and e.kind != "submitted":
            detail = f"{STATUS_LABELS[e.to_value]}" + (f": {e.note}" if e.note else "")
        timeline.append(
            {
                "at": e.at,
                "when": local_time(city, e.at),
                "label": label,
                "detail": detail,
                "kind": e.kind,
            }
        )
        if e.kind == routed_after and (first_routing or req.routing_explanation) and req.routed_at:
            timeline.append(
                {
                    "at": req.routed_at,
                    "when": local_time(city, req.routed_at),
                    "label": "Sent to the responsible team",
                    "detail": first_routing or req.routing_explanation,
                }
            )
    return {
        "public_id": req.public_id,
        "service": req.service.name,
        "group": req.service.group,
        "status": req.status,
        "status_label": STATUS_LABELS.get(req.status, req.status),
        "open": req.status in {s_.value for s_ in OPEN_STATUSES},
        "requested_at": req.requested_at,
        "reported": local_time(city, req.requested_at),
        "age": age_text(req.requested_at),
        "address": req.address,
        "asset": asset_text(s, req),
        "description": moderation.shown_description(req),
        "text_removed": moderation.text_removed(req),
        "held": moderation.is_held(req),
        "lat": lat,
        "lon": lon,
        "needs_location": bool(req.needs_location),
        "department": req.department.name if req.department else None,
        "crew": req.crew.name if req.crew else None,
        "explanation": req.routing_explanation,
        "due": local_time(city, req.due_at),
        "due_at": req.due_at,
        "overdue": bool(req.due_at and req.due_at < now_utc() and req.closed_at is None),
        "closed": local_time(city, req.closed_at),
        "photos": [
            {
                "url": media_url(p.public_key),
                "thumb_url": media_url(p.thumb_key),
                "stage": p.stage,
                "width": p.width,
                "height": p.height,
            }
            for p in photos
        ],
        "timeline": timeline,
        "supporters": supporters(s, req),
        # Only a public request shows the project it is part of.
        "project": project_summary(s, req),
    }


def asset_text(s, req: ServiceRequest) -> str | None:
    """The thing the report is about, as people read it: "Street light 791-2"."""
    if not req.asset_ref or req.asset_layer_id is None:
        return None
    layer = s.get(AssetLayer, req.asset_layer_id)
    return f"{layer.title} {req.asset_ref}" if layer else req.asset_ref


def _find_request(s, public_id: str) -> ServiceRequest | None:
    if not PUBLIC_ID_RE.match(public_id):
        return None
    return s.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == public_id))


def _owner(req: ServiceRequest, token: str | None) -> bool:
    return token_matches(req, token)


@dataclass
class LocateForm:
    """The "show us where" part of the tracking page: values, errors, address matches."""

    state: FormState
    q: str = ""
    candidates: list[Candidate] | None = None
    focus: bool = False


@dataclass
class TalkForm:
    """The reporter's forms on their tracking page: write to the city, and reopen."""

    message: str = ""
    note: str = ""
    errors: dict[str, str] | None = None


def _private_answers(req: ServiceRequest) -> list[tuple[str, str]]:
    answers = []
    by_code = {a.code: a for a in req.service.attributes}
    for code, value in (req.attributes or {}).items():
        attr = by_code.get(code)
        names = (
            {str(v["key"]): v.get("name", v["key"]) for v in (attr.values or [])} if attr else {}
        )
        shown = value if isinstance(value, list) else [value]
        answers.append(
            (
                attr.description if attr else code,
                ", ".join(str(names.get(str(v), v)) for v in shown),
            )
        )
    return answers


def _render_track(
    s,
    req: ServiceRequest,
    token: str | None,
    *,
    locate: LocateForm | None = None,
    talk: TalkForm | None = None,
    status: int = 200,
):
    owner = _owner(req, token)
    city = s.get(Jurisdiction, req.jurisdiction_id)
    settings = _settings()
    return (
        render_template(
            "resident/track.html",
            city=city,
            req=req,
            view=public_view(s, city, req, owner=owner),
            owner=owner,
            talk=(talk or TalkForm()) if owner else None,
            archived=owner and conversation.is_archived(s, req),
            may_reopen=owner and conversation.may_reopen(s, req),
            reopen_days=city.reopen_days,
            max_message=conversation.MAX_MESSAGE,
            token=token if owner else None,
            bad_token=bool(token) and not owner,
            answers=_private_answers(req) if owner else [],
            locate=locate,
            match_words=MATCH_WORDS,
            locate_asked=request.args.get("locate") == "1",
            boundary=city_boundary(s, city) if locate else None,
            leaflet_js=url_for("static", filename=LEAFLET_JS),
            leaflet_css=url_for("static", filename=LEAFLET_CSS),
            tile_url=settings.tile_url,
            tile_attribution=settings.tile_attribution,
        ),
        status,
    )


def _locate_search(s, city: Jurisdiction, form: LocateForm) -> None:
    """The map-free address search of the locate form (``?q=``): the places to choose
    from, the best first (a confident match is ticked, never saved unasked)."""
    try:
        found = geocode(s, city, form.q, limit=CANDIDATE_LIMIT)
    except GeocodeRefused as exc:
        form.state.errors["q"] = str(exc)
        return
    if found.candidates:
        form.candidates = found.candidates
    elif len(form.q) < MIN_QUERY:
        form.state.errors["q"] = f"Type at least {MIN_QUERY} characters of the address"
    else:
        form.state.errors["q"] = (
            f"No place in {city.name} matches {form.q!r}. Check the spelling, "
            "or give the coordinates instead."
        )


@bp.get("/requests/<public_id>")
def track(public_id: str):
    """The status page; with the private ``?token=`` it also shows the reporter's details.

    When the request still waits for a location, the reporter (token holder) gets the
    map to drop the pin (the auto-reply links here with ``&locate=1``) and, without
    JavaScript, an address search (``?q=``) and coordinate fields.
    """
    s = db_session()
    req = _find_request(s, public_id)
    token = request.args.get("token")
    owner = req is not None and _owner(req, token)
    # A private category's report, or one held for review, does not exist for anyone
    # without its token.
    if req is None or ((req.service.private or moderation.is_held(req)) and not owner):
        return _message("Report not found", f"There is no public report {public_id}.", 404)
    home = s.get(Jurisdiction, req.jurisdiction_id)
    at = path_city() or default_city(s, _settings().default_city).slug
    if at != home.slug:
        # Another city's address (or a link from before cities had addresses of their
        # own, which now reaches the default city): the report lives at its city's.
        target = f"{city_base_url(_settings(), home)}/requests/{req.public_id}"
        query = request.query_string.decode("ascii", "replace")
        return redirect(f"{target}?{query}" if query else target, 302)
    locate = None
    if owner and needs_resident_location(req):
        locate = LocateForm(
            FormState(MultiDict(), {}),
            q=(request.args.get("q") or "").strip(),
            focus=request.args.get("locate") == "1",
        )
        if locate.q:
            _locate_search(s, s.get(Jurisdiction, req.jurisdiction_id), locate)
    return _render_track(s, req, token, locate=locate)


def _locate_refused(s, req: ServiceRequest, token: str | None, exc: LocateRefused):
    owner = _owner(req, token)
    link = url_for("resident.track", public_id=req.public_id, token=token if owner else None)
    return (
        render_template(
            "resident/locate_refused.html",
            city=s.get(Jurisdiction, req.jurisdiction_id),
            req=req,
            heading=(
                "This link cannot set the location"
                if exc.reason == "token"
                else "The location cannot be changed here"
            ),
            message=str(exc),
            link=link,
        ),
        403 if exc.reason == "token" else 409,
    )


@bp.post("/requests/<public_id>/locate")
def locate_submit(public_id: str):
    """Save the pin the reporter dropped on a request that arrived without a location."""
    s = db_session()
    req = _find_request(s, public_id)
    form = request.form
    token = form.get("token")
    if req is None or (req.service.private and not _owner(req, token)):
        return _message("Report not found", f"There is no public report {public_id}.", 404)
    city = s.get(Jurisdiction, req.jurisdiction_id)
    values = MultiDict({k: form.get(k, "") for k in ("lat", "lon")})
    locate = LocateForm(FormState(values, {}), focus=True)
    wait = _limiter().take(_client_key())
    if wait > 0:
        minutes = max(1, math.ceil(wait / 60))
        message = (
            "You have sent several forms in a short time. Please wait "
            f"{minutes} minute{'s' if minutes != 1 else ''} and send this one again."
        )
        headers = {"Retry-After": str(math.ceil(wait))}
        if not (_owner(req, token) and needs_resident_location(req)):
            return _message("Please wait a moment", message, 429)[0], 429, headers
        locate.state.errors["form"] = message
        return (*_render_track(s, req, token, locate=locate, status=429), headers)
    try:
        check_may_locate(req, token)
    except LocateRefused as exc:
        return _locate_refused(s, req, token, exc)

    address = address_id = None
    lat: object = form.get("lat", "").strip()
    lon: object = form.get("lon", "").strip()
    query = (form.get("q") or "").strip()
    if query and not lat and not lon:
        # A place chosen from the map-free search's list.
        locate.q = query
        try:
            found = typed_place(s, city, query, (form.get("place_choice") or "").strip())
        except InvalidInput as exc:
            locate.state.errors["q"] = str(exc)
        else:
            if found.chosen is None:
                locate.candidates = found.candidates
                locate.state.errors["place_choice"] = "Choose a place from the list"
            else:
                chosen = found.chosen
                lat, lon, address = chosen.lat, chosen.lon, chosen.address
                address_id = chosen.address_id
    elif lat and lon and form.get("address_id"):
        # The map's pin on an address point chosen from the search: kept while the pin
        # is on it. Otherwise the pin's address comes from the reverse look-up.
        wanted = (form.get("address_id") or "").strip()[:100]
        point = address_by_id(s, city, wanted)
        lat_f, lon_f = _float(str(lat)), _float(str(lon))
        if (
            point is not None
            and lat_f is not None
            and lon_f is not None
            and _metres_between(lat_f, lon_f, point.lat, point.lon) <= REVERSE_MAX_M
        ):
            address, address_id = point.address, point.address_id
    elif not lat and not lon:
        locate.state.errors["location"] = (
            "Put the pin on the map, search an address, or give the coordinates"
        )
    if not locate.state.errors:
        try:
            set_location_by_resident(
                s,
                req,
                token,
                lon=lon,
                lat=lat,
                address=address,
                address_id=address_id,
                public_base_url=_settings().public_base_url,
            )
            s.commit()
        except LocateRefused as exc:  # another submission got there first
            s.rollback()
            return _locate_refused(s, req, token, exc)
        except InvalidInput as exc:
            s.rollback()
            locate.state.errors[exc.field or "location"] = str(exc)
    if locate.state.errors:
        return _render_track(s, req, token, locate=locate, status=422)
    flash(
        "Thank you: the location is saved and your report has gone to the team responsible.",
        "located",
    )
    return redirect(url_for("resident.track", public_id=req.public_id, token=token), 303)


def _reporter_post(public_id: str, what: str):
    """A form the reporter posts from their tracking page: ``message`` or ``reopen``.

    Only the private link's token may post; anyone else gets nothing written and learns
    nothing (a private category's report does not exist for them)."""
    s = db_session()
    req = _find_request(s, public_id)
    token = request.form.get("token")
    owner = req is not None and _owner(req, token)
    if req is None or ((req.service.private or moderation.is_held(req)) and not owner):
        return _message("Report not found", f"There is no public report {public_id}.", 404)
    if not owner:
        return _message(
            "This link cannot write to the city",
            "Only the person who made the report can, with the private link from their e-mail.",
            403,
        )
    field = "message" if what == "message" else "note"
    talk = TalkForm(**{field: (request.form.get(field) or "")[: conversation.MAX_MESSAGE * 2]})
    wait = _limiter().take(_client_key())
    if wait > 0:
        minutes = max(1, math.ceil(wait / 60))
        talk.errors = {
            field: "You have sent several forms in a short time. Please wait "
            f"{minutes} minute{'s' if minutes != 1 else ''} and send this one again."
        }
        headers = {"Retry-After": str(math.ceil(wait))}
        return (*_render_track(s, req, token, talk=talk, status=429), headers)
    base = _settings().public_base_url
    try:
        if what == "message":
            conversation.reporter_message(s, req, talk.message, via="web", public_base_url=base)
            done = "Thank you: your message is with the city's staff."
        else:
            conversation.reopen(s, req, talk.note, public_base_url=base)
            done = "Your report is open again: the team responsible will look at it again."
        s.commit()
    except InvalidInput as exc:
        s.rollback()
        talk.errors = {exc.field or field: str(exc)}
        return _render_track(s, req, token, talk=talk, status=422)
    flash(done, "talk")
    target = url_for("resident.track", public_id=req.public_id, token=token)
    return redirect(target + "#conversation", 303)


@bp.post("/requests/<public_id>/message")
def message_post(public_id: str):
    """The reporter writes to the city from their tracking page (private link only)."""
    return _reporter_post(public_id, "message")


@bp.post("/requests/<public_id>/reopen")
def reopen_post(public_id: str):
    """The reporter says "not fixed" within the city's reopen window (private link only)."""
    return _reporter_post(public_id, "reopen")


@bp.route("/requests/<public_id>/follow", methods=["GET", "POST"])
def follow_request(public_id: str):
    """Follow an open public report instead of sending the same one again.

    The answer is the same whatever the address (new, already following, the reporter's):
    a stranger learns nothing of who follows. Follows share the reports' rate limit."""
    s = db_session()
    req = _find_request(s, public_id)
    if req is None or req.service.private or moderation.is_held(req):
        return _message("Report not found", f"There is no public report {public_id}.", 404)
    city = s.get(Jurisdiction, req.jurisdiction_id)
    email = ""
    error = None
    status = 422
    headers: dict[str, str] = {}
    if request.method == "POST":
        email = (
            request.form.get("follow_email") or request.form.get("contact_email") or ""
        ).strip()
        wait = _limiter().take(_client_key())
        if wait > 0:
            error = "Too many requests from your connection. Please wait a few minutes."
            status, headers = 429, {"Retry-After": str(math.ceil(wait))}
        else:
            try:
                follow(s, req, email, public_base_url=_settings().public_base_url)
                s.commit()
            except InvalidInput as exc:
                s.rollback()
                error = str(exc)
            else:
                return render_template(
                    "resident/follow_check_mail.html",
                    city=city,
                    req=req,
                    email=email,
                    view=public_view(s, city, req),
                )
    return (
        render_template(
            "resident/follow.html",
            city=city,
            req=req,
            email=email,
            error=error,
            view=public_view(s, city, req),
        ),
        status if error else 200,
        headers,
    )


@bp.route("/requests/<public_id>/follow/confirm/<token>", methods=["GET", "POST"])
def follow_confirm(public_id: str, token: str):
    """The link in the confirmation e-mail: a button (so that a mail scanner opening the
    link confirms nothing), and its POST starts the updates."""
    s = db_session()
    req = _find_request(s, public_id)
    if req is not None and req.duplicate_of_id is not None:
        # merged since the link was mailed: its followers follow the request it joined
        req = s.get(ServiceRequest, req.duplicate_of_id)
    if req is None or req.service.private or moderation.is_held(req):
        return _message("Report not found", f"There is no public report {public_id}.", 404)
    city = s.get(Jurisdiction, req.jurisdiction_id)
    try:
        if request.method == "POST":
            confirm_follow(s, req, token)
            s.commit()
            return render_template(
                "resident/followed.html", city=city, req=req, view=public_view(s, city, req)
            )
        email = follow_link_address(s, req, token)
    except ExpiredLink:
        s.rollback()
        return _message(
            "Link expired", "This link has expired. Ask to follow the report again.", 410
        )
    except BadLink as exc:
        s.rollback()
        return _message("Link not valid", str(exc), 404)
    return render_template(
        "resident/follow_confirm.html",
        city=city,
        req=req,
        email=email,
        view=public_view(s, city, req),
    )


# ------------------------------------------------------------------------ JSON helpers


@bp.get("/api/addresses/search")
def address_search():
    """``?q=`` text -> the places it may mean, best first, with the geocoder's verdict.

    ``{"query", "confident", "candidates": [{score, match_type, match_label, lat, lon,
    address, address_id?}]}``; ``confident`` says the first candidate may be used without
    asking. Text that cannot be looked up (too long, control characters) is a 400.
    """
    try:
        city = _city()
        query = request.args.get("q") or ""
        if len(query.strip()) < MIN_QUERY:
            check_text(query)
            return jsonify({"query": query.strip(), "confident": False, "candidates": []})
        found = geocode(db_session(), city, query, limit=CANDIDATE_LIMIT)
    except CivicpinError as exc:
        return _json_error(exc)
    return jsonify(
        {
            "query": found.query,
            "confident": found.confident is not None,
            "candidates": [place_json(c) for c in found.candidates],
        }
    )


def _point_args() -> tuple[float, float]:
    lat, lon = _float(request.args.get("lat")), _float(request.args.get("lon"))
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise InvalidInput("lat and lon must be decimal degrees", field="location")
    return lat, lon


@bp.get("/api/addresses/reverse")
def address_reverse():
    """``?lat=&lon=`` -> is it inside the city, and its words: an address near the pin
    ("12 ELM ST"), else "near MAIN ST and 5TH ST" (``match_type`` 'near'), else null."""
    try:
        city = _city()
        lat, lon = _point_args()
    except CivicpinError as exc:
        return _json_error(exc)
    s = db_session()
    inside = point_in_city(s, city, lon, lat)
    place = reverse_geocode(s, city, lon, lat) if inside else None
    body: dict[str, Any] = {
        "inside": inside,
        "address": place.address if place else None,
        "match_type": place.match_type if place else None,
        "distance_m": round(place.distance_m, 1) if place else None,
        "address_id": place.address_id if place else None,
    }
    if not inside:
        body["message"] = (
            f"This spot is outside {city.name}. Move the pin inside the city boundary."
        )
    return jsonify(body)


@bp.get("/api/report/duplicates")
def duplicates():
    """Open reports of ``?service=`` near ``?lat=&lon=`` from the last 30 days."""
    try:
        city = _city()
        lat, lon = _point_args()
        code = (request.args.get("service") or "").strip()
        service = find_service(db_session(), city, code, public=True)
        if service is None:
            raise InvalidInput("unknown category", field="service")
        radius = duplicate_radius_m()
        found = find_duplicates(db_session(), city, service, lon, lat, radius_m=radius)
    except CivicpinError as exc:
        return _json_error(exc)
    return jsonify(
        {
            "radius_m": radius,
            "days": DEFAULT_DAYS,
            "candidates": [_candidate_json(city, c) for c in found],
        }
    )


@bp.get("/api/requests/<public_id>")
def request_json(public_id: str):
    """Public details of one request (the map's popups); 404 for private categories."""
    s = db_session()
    req = _find_request(s, public_id)
    if req is None or req.service.private or moderation.is_held(req):
        return jsonify({"error": f"no public request {public_id!r}"}), 404
    city = s.get(Jurisdiction, req.jurisdiction_id)
    view = public_view(s, city, req)
    return jsonify(
        {
            "public_id": view["public_id"],
            "service": view["service"],
            "status": view["status"],
            "status_label": view["status_label"],
            "requested_at": req.requested_at.isoformat(),
            "reported": view["reported"],
            "age": view["age"],
            "address": view["address"],
            "department": view["department"],
            "crew": view["crew"],
            "due": view["due"] or None,
            "thumb_url": next((p["thumb_url"] for p in view["photos"]), None),
            "supporters": view["supporters"],
            "url": url_for("resident.track", public_id=req.public_id),
        }
    )
