"""The Open311 GeoReport v2 blueprint: thin adapters from HTTP to the resources.

Every URL under ``/open311/v2/`` answers in the format its suffix names, errors included:
unknown paths (404), wrong methods (405) and our own failures come back as Open311 error
lists, never as an HTML page.
"""

from __future__ import annotations

import logging
import math
import re

import sqlalchemy as sa
from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import PathConverter

from intake.submit import Draft, ValidationFailed, submit
from places import geocoder
from places.geocoder import GeocodeRefused
from records import moderation
from spatial.apikeys import (
    ApiKeyRejected,
    TokenBuckets,
    hash_key,
    parse_rate_limit,
    verify_key,
)
from spatial.cities import city_base_url, city_by_open311_id, default_city
from spatial.errors import CivicpinError
from spatial.errors import NotFound as DomainNotFound
from spatial.media import PhotoUpload
from spatial.models import Jurisdiction, Photo, Service, ServiceRequest, now_utc
from webmap.app import db_session, path_city, settings_of
from webmap.open311 import catalog, params, resources
from webmap.open311.errors import (
    RATE_LIMITED_CODE,
    Open311Error,
    bad_request,
    error_response,
    not_found,
)
from webmap.open311.openapi import openapi_document
from webmap.open311.render import render

log = logging.getLogger(__name__)

PREFIX = "/open311/v2"
FMT = "<any(json,xml):fmt>"
DEFAULT_RATE_LIMIT = "10/60"  # 10 POSTs a second per key, bursts of 60
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_ATTRIBUTE = re.compile(r"^attribute\[([^\[\]]{1,64})\](\[\])?$")
_PUBLIC_MEDIA = re.compile(r"^public/[0-9a-f]{2}/[0-9a-f]{64}(?:_t)?\.jpg$")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Submit's field names -> the Open311 parameter a client has to fix.
_PARAM_OF_FIELD = {
    "location": "lat/long",
    "contact_email": "email",
    "contact_phone": "phone",
    "contact_name": "first_name/last_name",
    "photos": "media",
    "asset": f"attribute[{resources.ASSET_ATTRIBUTE}]",
}

bp = Blueprint("open311", __name__, template_folder="templates")


class _AnyPath(PathConverter):
    """Like ``path``, but also across line breaks (``%0A``), which ``path`` does not match:
    without it such a URL would miss the catch-all and get Flask's HTML 404."""

    regex = "(?s:[^/].*?)"


@bp.record_once
def _register_converter(state) -> None:
    # Runs before the blueprint's rules are added (it is recorded first).
    state.app.url_map.converters.setdefault("open311_anypath", _AnyPath)


# --- plumbing ----------------------------------------------------------------------


def _is_api_path() -> bool:
    return request.path == PREFIX or request.path.startswith(PREFIX + "/")


@bp.before_request
def _reject_nul() -> None:
    # PostgreSQL text cannot hold NUL; refuse it here rather than fail in the driver.
    if "\x00" in request.path or any(
        "\x00" in str(k) or "\x00" in str(v) for k, v in request.values.items(multi=True)
    ):
        raise bad_request("parameters must not contain NUL characters")


@bp.after_request
def _cors(resp: Response) -> Response:
    if _is_api_path():
        # Public data, and keys are not cookies: any web app may call the API.
        resp.headers["Access-Control-Allow-Origin"] = "*"
    return resp


@bp.errorhandler(Exception)
def _on_error(exc: Exception):
    session = g.get("db_session")
    if session is not None:
        try:
            session.rollback()
        except Exception:  # noqa: BLE001 - a dead connection must not turn into an HTML 500
            log.exception("rollback after a failed Open311 request failed too")
    if not _is_api_path():
        if isinstance(exc, HTTPException):
            return exc
        raise exc
    if isinstance(exc, Open311Error):
        return error_response(exc)
    if isinstance(exc, HTTPException):
        code = exc.code or 400
        if code == 404:
            return error_response(not_found("not found"))
        if code == 405:
            return error_response(Open311Error(405, f"method {request.method} is not allowed here"))
        if code == 413:
            return error_response(bad_request("the request is too large"))
        return error_response(bad_request(exc.description or exc.name))
    if isinstance(exc, CivicpinError):
        return error_response(bad_request(str(exc)))
    # The spec's "general service error": 400, and the client should tell us.
    log.exception("Open311 %s %s failed", request.method, request.path)
    return error_response(
        bad_request("general service error: the request could not be processed; please tell us")
    )


def _buckets() -> TokenBuckets:
    ext = current_app.extensions.setdefault("open311", {})
    if "buckets" not in ext:
        rate, burst = parse_rate_limit(
            str(current_app.config.get("OPEN311_RATE_LIMIT", DEFAULT_RATE_LIMIT))
        )
        ext["buckets"] = TokenBuckets(rate, burst)
    return ext["buckets"]


def _base_url() -> str:
    """The endpoint's address: the city's own (``/c/<slug>``, its host) when called there."""
    settings = settings_of(current_app)
    if (slug := request.environ.get("civicpin.city")) is not None:
        return city_base_url(settings, slug)
    if (slug := path_city()) is not None:  # the city's own host name
        city = db_session().scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == slug))
        return city_base_url(settings, city)
    return settings.public_base_url


def _city(session, key_city_id: int | None = None) -> Jurisdiction:
    """The jurisdiction a call is about.

    Called at a city's address (``/c/<slug>/open311/v2``): that city. Else
    ``jurisdiction_id``, a city's slug or one of its alias ids (``lacity.org``); an
    install serving one city ignores an id it does not know (the spec needs the id only
    where an endpoint serves several), with several cities it is 404. Without one: the
    city of the POST's API key, else the install's default (``CIVICPIN_CITY``, else the
    oldest city), so adding a city changes nothing for the clients of the first.
    """
    given = params.opt("jurisdiction_id")
    prefixed = path_city()
    if prefixed is not None:
        city = session.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == prefixed))
        if city is None:
            raise not_found(f"no jurisdiction {params.shown(prefixed)} is served here")
        if given is not None:
            named = city_by_open311_id(session, given)
            if named is not None and named.id != city.id:
                raise not_found(f"jurisdiction_id {params.shown(given)} is not served here")
        return city
    if given is not None:
        city = city_by_open311_id(session, given) if len(given) <= 100 else None
        if city is not None:
            return city
        cities = session.scalars(sa.select(Jurisdiction).limit(2)).all()
        if len(cities) == 1:
            return cities[0]
        if not cities:
            raise not_found("no jurisdiction is served here yet")
        raise not_found(f"jurisdiction_id {params.shown(given)} was not found")
    if key_city_id is not None:
        city = session.get(Jurisdiction, key_city_id)
        if city is not None:
            return city
    try:
        return default_city(session, settings_of(current_app).default_city)
    except DomainNotFound:
        raise not_found("no jurisdiction is served here yet") from None


def _tz(city: Jurisdiction):
    return resources.zone_of(city.timezone)


# --- read endpoints ----------------------------------------------------------------


@bp.get(f"{PREFIX}/discovery.{FMT}")
def discovery(fmt: str):
    session = db_session()
    if params.opt("jurisdiction_id") is not None or path_city() is not None:
        cities = [_city(session)]
    else:
        cities = list(session.scalars(sa.select(Jurisdiction).order_by(Jurisdiction.slug)))
    return render(fmt, "discovery", resources.discovery(session, cities, _base_url()))


@bp.get(f"{PREFIX}/services.{FMT}")
def services(fmt: str):
    session = db_session()
    return render(fmt, "services", resources.services(session, _city(session)))


@bp.get(f"{PREFIX}/services/<code>.{FMT}")
def service_definition(code: str, fmt: str):
    session = db_session()
    city = _city(session)
    service = resources.find_public_service(session, city, code) if len(code) <= 64 else None
    if service is None:
        raise not_found(f"service_code {params.shown(code)} was not found")
    return render(fmt, "service_definition", resources.service_definition(service, session))


def _request_query(city: Jurisdiction) -> resources.RequestQuery:
    tz = _tz(city)
    extended = params.flag("extensions")
    page = params.integer("page", 1, 1, 1_000_000)
    page_size = params.integer("page_size", params.MAX_PAGE_SIZE, 1, params.MAX_PAGE_SIZE)
    ids = params.comma_list("service_request_id", max_len=32)
    if ids is not None:
        return resources.RequestQuery(ids=ids, page=page, page_size=page_size, extended=extended)
    start, end = params.when("start_date", tz), params.when("end_date", tz)
    updated_after = params.when("updated_after", tz)
    if not (updated_after is not None and start is None and end is None):
        # Without a date range, a client asking for changes wants them whatever the
        # request date; otherwise the spec's 90-day window applies.
        start, end = params.window(start, end, now_utc())
    return resources.RequestQuery(
        service_codes=params.comma_list("service_code", max_len=64),
        start=start,
        end=end,
        statuses=params.statuses(),
        bbox=params.bbox(),
        updated_after=updated_after,
        page=page,
        page_size=page_size,
        extended=extended,
    )


@bp.get(f"{PREFIX}/requests.{FMT}")
def list_requests(fmt: str):
    session = db_session()
    city = _city(session)
    query = _request_query(city)
    return render(fmt, "service_requests", resources.requests(session, city, query, _base_url()))


@bp.get(f"{PREFIX}/requests/<request_id>.{FMT}")
def one_request(request_id: str, fmt: str):
    session = db_session()
    city = _city(session)
    found = []
    if len(request_id) <= 32:
        query = resources.RequestQuery(ids=[request_id], extended=params.flag("extensions"))
        found = resources.requests(session, city, query, _base_url())
    if not found:
        raise not_found(f"service_request_id {params.shown(request_id)} was not found")
    return render(fmt, "service_requests", found)


@bp.get(f"{PREFIX}/tokens/<token>.{FMT}")
def token(token: str, fmt: str):
    session = db_session()
    city = _city(session)
    public_id = resources.request_by_token(session, city, token) if _TOKEN.match(token) else None
    if public_id is None:
        raise not_found(f"token {params.shown(token, 12)} was not found")
    return render(fmt, "service_requests", [{"service_request_id": public_id, "token": token}])


@bp.get(f"{PREFIX}/servicerequestupdates.{FMT}")
def request_updates(fmt: str):
    session = db_session()
    city = _city(session)
    tz = _tz(city)
    start, end = params.window(
        params.when("start_date", tz), params.when("end_date", tz), now_utc()
    )
    page = params.integer("page", 1, 1, 1_000_000)
    page_size = params.integer("page_size", params.MAX_PAGE_SIZE, 1, params.MAX_PAGE_SIZE)
    rows = resources.updates(session, city, start, end, page, page_size, _base_url())
    return render(fmt, "service_request_updates", rows)


# --- POST a request ----------------------------------------------------------------


def _attributes() -> dict[str, str | list[str]]:
    answers: dict[str, str | list[str]] = {}
    for key in request.values.keys():
        if not key.startswith("attribute["):
            continue
        m = _ATTRIBUTE.match(key)
        if m is None:
            raise bad_request(
                f"{params.shown(key)} is not an attribute parameter: "
                "use attribute[CODE]=value or attribute[CODE][]=value"
            )
        code, multi = m[1], bool(m[2])
        values = request.values.getlist(key)
        if multi or len(values) > 1 or isinstance(answers.get(code), list):
            previous = answers.get(code)
            merged = previous if isinstance(previous, list) else ([previous] if previous else [])
            answers[code] = merged + values
        else:
            answers[code] = values[0]
    return answers


def _limited(name: str, limit: int) -> str | None:
    value = params.opt(name)
    if value is not None and len(value) > limit:
        raise bad_request(f"{name} is longer than {limit} characters")
    return value


def _location(
    session, city: Jurisdiction
) -> tuple[float | None, float | None, str | None, str | None]:
    """(lat, long, address, address_id) from lat/long, address_id or address_string, in
    that order. ``address_id`` is the city's own id of an address point; an
    ``address_string`` places the request only when the geocoder is confident, else the
    answer is 400 naming the best candidates (a report is never moved silently)."""
    lat_s, lon_s = params.opt("lat"), params.opt("long")
    address = _limited("address_string", 500)
    address_id = _limited("address_id", 100)
    if lat_s is not None or lon_s is not None:
        if lat_s is None or lon_s is None:
            raise bad_request("lat and long must be sent together")
        lat, lon = params.number("lat", lat_s), params.number("long", lon_s)
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise bad_request("lat must be within -90..90 and long within -180..180 degrees")
        return lat, lon, address, None
    if address_id is not None:
        point = geocoder.address_by_id(session, city, address_id)
        if point is None:
            raise bad_request(
                f"address_id {params.shown(address_id)} is not an address id of {city.name}"
            )
        return point.lat, point.lon, address or point.address, point.address_id or address_id
    if address is not None:
        try:
            found = geocoder.geocode(session, city, address, limit=3)
        except GeocodeRefused as exc:
            raise bad_request(f"address_string: {exc}") from None
        best = found.confident
        if best is not None:
            return best.lat, best.lon, best.address, best.address_id
        if not found.candidates:
            raise bad_request(
                f"address_string {params.shown(address)} matches no address of "
                f"{city.name}: send lat and long, or address_id"
            )
        named = "; ".join(f"{c.address} ({c.score:.2f})" for c in found.candidates)
        raise bad_request(
            f"address_string {params.shown(address)} is not certain: did you mean {named}? "
            "send lat and long, or address_id"
        )
    return None, None, None, None


def _asset_ref(service: Service, attributes: dict) -> str | None:
    """The asset a POST names in ``attribute[asset_id]`` for a category tied to an asset
    layer (unless the city asks a question of that code): taken out of the answers."""
    if service.asset_layer_id is None or resources.ASSET_ATTRIBUTE not in attributes:
        return None
    if any(a.code == resources.ASSET_ATTRIBUTE for a in service.attributes):
        return None
    value = attributes.pop(resources.ASSET_ATTRIBUTE)
    if isinstance(value, list):
        raise bad_request(f"attribute[{resources.ASSET_ATTRIBUTE}] takes one asset number")
    if len(value) > 100:
        raise bad_request(f"attribute[{resources.ASSET_ATTRIBUTE}] is longer than 100 characters")
    return value.strip() or None


@bp.post(f"{PREFIX}/requests.{FMT}")
def create_request(fmt: str):
    # Without a photo every write of a POST is one statement (the API key's last use; the
    # request with its zones, events and messages), so it runs without a transaction
    # around it. A photo's rows are written after the request's, in one transaction.
    session = db_session(autocommit=not request.files)
    api_key = params.opt("api_key")
    digest = hash_key(api_key) if api_key else None
    current, key_row = catalog.stamp_and_key(session, digest)
    key_city_id = key_row.jurisdiction_id if digest else None
    city = catalog.city(
        session,
        current,
        (
            path_city(),
            params.opt("jurisdiction_id"),
            key_city_id,
            settings_of(current_app).default_city,
        ),
        lambda s: _city(s, key_city_id),
    )
    try:
        key = verify_key(session, api_key, city, found=(digest, key_row) if digest else None)
    except ApiKeyRejected as exc:
        raise Open311Error(403, f"{exc} -- can't proceed with create_request") from None
    if key.touched:
        session.commit()  # keep last_used_at even if the request below is refused
    wait = _buckets().take(key.id)
    if wait > 0:
        raise Open311Error(
            403,
            [
                (
                    RATE_LIMITED_CODE,
                    f"rate limit of this api_key exceeded: retry in {math.ceil(wait)} s",
                )
            ],
            headers={"Retry-After": str(math.ceil(wait))},
        )
    code = params.opt("service_code")
    if code is None:
        raise bad_request("service_code was not provided")
    service = None
    if len(code) <= 64:
        service = catalog.public_service(
            session,
            current,
            city.id,
            code,
            lambda s: resources.find_public_service(s, city, code),
        )
    if service is None:
        raise not_found(f"service_code {params.shown(code)} was not found")
    attributes = _attributes()
    asset_ref = _asset_ref(service, attributes)
    # A category that asks for no place ignores the one an app sends (intake.submit
    # drops it): an address it cannot match must not refuse the request either.
    if service.location_mode == "none":
        lat = lon = address = address_id = None
    elif asset_ref is not None and params.opt("lat") is None and params.opt("long") is None:
        # The asset places the request (intake.submit snaps to it).
        lat = lon = address_id = None
        address = _limited("address_string", 500)
    else:
        lat, lon, address, address_id = _location(session, city)
    first, last = _limited("first_name", 100), _limited("last_name", 100)
    draft = Draft(
        city=city.slug,
        service_code=code,
        lat=lat,
        lon=lon,
        address=address,
        address_id=address_id,
        asset_ref=asset_ref,
        description=request.values.get("description"),
        attributes=attributes,
        photos=[
            PhotoUpload(f.filename or "media", f.read()) for f in request.files.getlist("media")
        ],
        contact_name=" ".join(p for p in (first, last) if p) or None,
        contact_email=_limited("email", 254),
        contact_phone=_limited("phone", 50),
        channel="api",
        media_url=_limited("media_url", 2000),
        device_id=_limited("device_id", 200),
        account_id=_limited("account_id", 200),
    )
    settings = settings_of(current_app)
    try:
        result = submit(
            session,
            draft,
            media_dir=settings.media_dir,
            public_base_url=settings.public_base_url,
            city=city,
            service=service,
            duplicate_radius_m=settings.duplicate_radius_m,
        )
    except ValidationFailed as exc:
        raise Open311Error(
            400,
            [(400, f"{_PARAM_OF_FIELD.get(f, f)}: {msg}") for f, msg in exc.errors.items()],
        ) from None
    answer = {
        "service_request_id": result.public_id,
        "token": result.token,
        "service_notice": result.notice or None,
    }
    session.commit()
    return render(fmt, "service_requests", [answer])


# --- description, docs, media, and the catch-all ----------------------------------------


@bp.get(f"{PREFIX}/openapi.json")
def openapi():
    return jsonify(openapi_document(db_session()))


@bp.get(f"{PREFIX}/")
def root():
    return redirect(url_for("open311.docs"))


@bp.get(f"{PREFIX}/docs")
def docs():
    return render_template(
        "open311/docs.html", spec=openapi_document(db_session()), base_url=_base_url() + PREFIX
    )


@bp.get("/media/public/<path:rest>")
def public_media(rest: str):
    """A public (EXIF-free) photo copy, only if it belongs to a non-private request that
    is published, and staff have not hidden it (records.moderation)."""
    key = f"public/{rest}"
    if not _PUBLIC_MEDIA.match(key):
        raise NotFound()
    session = db_session()
    allowed = session.scalar(
        sa.select(Photo.id)
        .join(ServiceRequest, ServiceRequest.id == Photo.request_id)
        .join(Service, Service.id == ServiceRequest.service_id)
        .where(
            sa.or_(Photo.public_key == key, Photo.thumb_key == key),
            Service.private.is_(False),
            moderation.PHOTO_SHOWN,
            moderation.PUBLISHED,
        )
        .limit(1)
    )
    if allowed is None:
        raise NotFound()
    return send_from_directory(
        settings_of(current_app).media_dir, key, mimetype="image/jpeg", max_age=86400
    )


@bp.route(f"{PREFIX}/<open311_anypath:rest>", methods=ALL_METHODS)
def unknown(rest: str):
    """Paths we do not serve (404) and methods a resource does not have (405)."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    allowed = set()
    for method in ("GET", "POST"):
        try:
            rule, _ = adapter.match(method=method, return_rule=True)
        except HTTPException:
            continue
        if rule.endpoint != request.endpoint:
            allowed |= set(rule.methods or ())
    if allowed and request.method not in allowed:
        allow = ", ".join(sorted(allowed | {"OPTIONS"}))
        raise Open311Error(
            405, f"method {request.method} is not allowed here (use {allow})", {"Allow": allow}
        )
    raise not_found(
        f"{params.shown(request.path, 100)} is not an Open311 resource (see {PREFIX}/discovery.xml)"
    )
