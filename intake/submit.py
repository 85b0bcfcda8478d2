"""``submit()``: the one way a request enters civicpin, whatever the channel.

Web form, Open311 POST, e-mail, agent console and bulk tools all build a :class:`Draft`
and call :func:`submit` inside one transaction. It validates everything first (category,
answers, location, contact, photos) and raises :class:`ValidationFailed` with one message
per field before anything is written; then it stores the request, its photos, routes it
and writes the acknowledgement to the outbox, all in the caller's transaction.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import struct
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from geoalchemy2.elements import WKBElement
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from intake.duplicates import (
    DEFAULT_RADIUS_M,
    DUPLICATES_COLUMN,
    DuplicateCandidate,
    candidates_from_json,
    search_params,
)
from notify import messages
from notify.outbox import DEFERRED_COLUMNS
from places import assets, geocoder
from records.moderation import holds
from routing.engine import (
    asset_params,
    decide_new,
    site_from_row,
    site_sql,
    site_without_location,
)
from spatial import pieces, public_ids
from spatial.accounts import EMAIL_RE
from spatial.db import (
    attach_inserted,
    column_keys,
    driver_execute,
    driver_sql,
    is_autocommit,
    new_object,
)
from spatial.errors import InvalidInput, NotFound
from spatial.media import PhotoUpload, ProcessedPhoto, process_photos, store_photo
from spatial.models import (
    CHANNELS,
    POSSIBLE_DUPLICATE,
    Jurisdiction,
    Photo,
    Service,
    ServiceAttribute,
    ServiceRequest,
    Status,
    now_utc,
)

NEEDS_ANSWERS = "needs_answers"  # the internal event naming the unanswered questions
MAX_DESCRIPTION = 4000
MAX_STRING = 500
HTML_TAG = re.compile(r"<\s*/?\s*[a-zA-Z!][^>]*>")
PHONE_RE = re.compile(r"^\+?[0-9 ()./-]{5,30}$")


class ValidationFailed(InvalidInput):
    """Several fields may be wrong at once; ``errors`` maps field name to message."""

    def __init__(self, errors: dict[str, str]):
        self.errors = dict(errors)
        first_field, first_msg = next(iter(self.errors.items()))
        super().__init__(
            first_msg if len(errors) == 1 else f"{first_msg} (and {len(errors) - 1} more)",
            field=first_field,
        )


@dataclass
class Draft:
    """What a channel knows about a new request; plain values only."""

    city: str | None
    service_code: str
    lat: float | None = None
    lon: float | None = None
    address: str | None = None
    # The city's own id of an address point (Open311 address_id), when the channel chose one.
    address_id: str | None = None
    # The city's own id of an asset of the category's asset layer (pole "4711").
    asset_ref: str | None = None
    description: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    photos: list[PhotoUpload] = field(default_factory=list)
    contact_name: str | None = None
    contact_email: str | None = None
    contact_phone: str | None = None
    anonymous: bool = False
    notify_updates: bool = True
    channel: str = "web"
    media_url: str | None = None
    device_id: str | None = None
    account_id: str | None = None
    allow_missing_location: bool = False
    use_photo_location: bool = True
    # The staff member filing for themselves (an internal customer: the intranet, or a
    # verified staff e-mail to a help-desk address).
    requester_id: int | None = None


@dataclass
class SubmitResult:
    """The new request (persistent in the caller's session; expired if the caller rolls
    back), and what the resident is told: public id, private token, the category's notice."""

    request: ServiceRequest
    public_id: str
    token: str
    notice: str | None
    photo_location_used: bool = False


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.replace("\r\n", "\n").strip()
    return value or None


def validate_answers(service: Service, answers: dict[str, Any]) -> tuple[dict, dict[str, str]]:
    """Check answers against the category's questions (Open311 attribute datatypes).

    Returns (clean answers, errors keyed ``attribute[CODE]``). Unknown codes are errors.
    """
    clean: dict[str, Any] = {}
    errors: dict[str, str] = {}
    by_code: dict[str, ServiceAttribute] = {a.code: a for a in service.attributes}
    for code in answers:
        if code not in by_code:
            errors[f"attribute[{code}]"] = f"{code!r} is not a question of {service.name}"
    for attr in service.attributes:
        if not attr.variable:
            continue
        key = f"attribute[{attr.code}]"
        raw = answers.get(attr.code)
        values = raw if isinstance(raw, list) else ([] if raw is None else [raw])
        values = [str(v).strip() for v in values if v is not None and str(v).strip() != ""]
        if not values:
            if attr.required:
                errors[key] = f"Please answer: {attr.description}"
            continue
        allowed = {str(v["key"]): v.get("name", v["key"]) for v in (attr.values or [])}
        dt = attr.datatype
        if dt != "multivaluelist" and len(values) > 1:
            errors[key] = "Give one answer only"
            continue
        value = values[0]
        if dt == "string":
            if len(value) > MAX_STRING or "\n" in value:
                errors[key] = f"Keep this to one line of at most {MAX_STRING} characters"
                continue
            clean[attr.code] = value
        elif dt == "text":
            if len(value) > MAX_DESCRIPTION:
                errors[key] = f"Keep this to at most {MAX_DESCRIPTION} characters"
                continue
            clean[attr.code] = value
        elif dt == "number":
            try:
                number = float(value)
                if not math.isfinite(number):
                    raise ValueError
            except ValueError:
                errors[key] = f"{value!r} is not a number"
                continue
            clean[attr.code] = int(number) if number.is_integer() else number
        elif dt == "datetime":
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                errors[key] = f"{value!r} is not a date and time (YYYY-MM-DDTHH:MM)"
                continue
            clean[attr.code] = parsed.isoformat()
        elif dt == "singlevaluelist":
            if value not in allowed:
                errors[key] = f"{value!r} is not one of the choices"
                continue
            clean[attr.code] = value
        elif dt == "multivaluelist":
            bad = [v for v in values if v not in allowed]
            if bad:
                errors[key] = f"{bad[0]!r} is not one of the choices"
                continue
            clean[attr.code] = sorted(set(values), key=values.index)
    return clean, errors


# The channels that cannot ask the reporter a question before filing: a required question
# without an answer takes its default, else the request "needs answers" (the dispatcher
# asks). Every other channel shows the questions and must have them answered.
CANNOT_ASK = frozenset({"email"})


def unanswered_required(service: Service, answers: dict[str, Any]) -> list[ServiceAttribute]:
    """The required questions of ``service`` that ``answers`` leave empty."""
    out = []
    for attr in service.attributes:
        if not (attr.variable and attr.required):
            continue
        raw = answers.get(attr.code)
        values = raw if isinstance(raw, list) else ([] if raw is None else [raw])
        if not any(v is not None and str(v).strip() for v in values):
            out.append(attr)
    return out


def with_defaults(service: Service, answers: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``answers`` with each unanswered required question's default value filled in, and
    the codes of the required questions still unanswered (they have no default)."""
    filled = dict(answers)
    missing = []
    for attr in unanswered_required(service, answers):
        if attr.default_value not in (None, "", []):
            filled[attr.code] = attr.default_value
        else:
            missing.append(attr.code)
    return filled, missing


def find_service(
    session: Session, city: Jurisdiction, code: str, *, public: bool = False
) -> Service | None:
    """The active category ``code`` of ``city``; ``public``: not an internal (staff-only)
    one, which public pages treat as unknown."""
    query = sa.select(Service).where(
        Service.jurisdiction_id == city.id, Service.code == code, Service.active.is_(True)
    )
    if public:
        query = query.where(Service.internal.is_(False))
    return session.scalar(query)


def point_in_city(session: Session, city: Jurisdiction, lon: float, lat: float) -> bool:
    return pieces.point_in_city(session, city.id, lon, lat)


def _valid_coordinates(lat, lon) -> tuple[float, float] | None:
    try:
        lat_f, lon_f = float(lat), float(lon)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(lat_f) and math.isfinite(lon_f)):
        return None
    if not (-90 <= lat_f <= 90 and -180 <= lon_f <= 180):
        return None
    return lat_f, lon_f


def submit(
    session: Session,
    draft: Draft,
    *,
    media_dir: Path,
    public_base_url: str,
    now: datetime | None = None,
    city: Jurisdiction | None = None,
    service: Service | None = None,
    duplicate_radius_m: float | None = None,
) -> SubmitResult:
    """Validate, store, route and acknowledge one request in the caller's transaction.

    ``city`` and ``service``: the draft's jurisdiction and category, when the caller has
    loaded them already (the Open311 POST has), so that they are not looked up again.
    Ones that are not what the draft names are ignored.

    Duplicate detection: open requests of the same category within ``duplicate_radius_m``
    (default 50 m) from the last 30 days are named in an internal "possible duplicate"
    event, which the dispatch queue flags, so that a dispatcher merges them. Whoever
    reports is not stopped (the web form already offered to follow instead; an API
    client or an e-mail cannot be asked).
    """
    from spatial.cities import get_city

    errors: dict[str, str] = {}
    if city is None or (draft.city is not None and city.slug != draft.city):
        city = get_city(session, draft.city)
    code = (draft.service_code or "").strip()
    if service is None or (service.jurisdiction_id, service.code) != (city.id, code):
        service = find_service(session, city, code)
    elif not service.active:
        service = None
    if service is not None and service.internal and not _may_file_internal(draft):
        service = None  # a staff-only category does not exist for the public channels
    if service is None:
        raise ValidationFailed({"service_code": f"unknown category {draft.service_code!r}"})
    if draft.channel not in CHANNELS:
        errors["channel"] = f"unknown channel {draft.channel!r}"

    given = draft.attributes or {}
    missing: list[str] = []
    defaulted: list[str] = []
    if draft.channel in CANNOT_ASK:
        filled, missing = with_defaults(service, given)
        defaulted = [code for code in filled if code not in given]
        given = filled
    answers, answer_errors = validate_answers(service, given)
    for code in missing:
        answer_errors.pop(f"attribute[{code}]", None)
    for code in defaulted:
        # A default that no longer fits its question (its choices changed): the question
        # is left for the dispatcher rather than the report refused.
        if answer_errors.pop(f"attribute[{code}]", None) is not None:
            missing.append(code)
    errors.update(answer_errors)

    description = _clean(draft.description)
    if description and len(description) > MAX_DESCRIPTION:
        errors["description"] = f"Keep the description to at most {MAX_DESCRIPTION} characters"
    elif description and HTML_TAG.search(description):
        errors["description"] = "The description must be plain text, without HTML"

    name = _clean(draft.contact_name)
    email = _clean(draft.contact_email)
    phone = _clean(draft.contact_phone)
    if name and len(name) > 200:
        errors["contact_name"] = "Keep the name to at most 200 characters"
    if email and (len(email) > 254 or not EMAIL_RE.match(email)):
        errors["contact_email"] = f"{email!r} is not an e-mail address"
    if phone and not PHONE_RE.match(phone):
        errors["contact_phone"] = f"{phone!r} is not a phone number"
    anonymous = bool(draft.anonymous) or not (name or email or phone)
    if draft.anonymous:
        name = email = phone = None
    if service.contact_required and not (email or phone):
        errors["contact_email"] = f"{service.name} reports need an e-mail address or phone number"

    media_url = _clean(draft.media_url)
    if media_url and not re.match(r"^https?://[^\s<>\"]+$", media_url):
        errors["media_url"] = "media_url must be an http(s) URL"

    processed: list[ProcessedPhoto] = []
    try:
        processed = process_photos(draft.photos)
    except InvalidInput as exc:
        errors[exc.field or "photos"] = str(exc)

    coords = None
    photo_location_used = False
    mode = service.location_mode or "required"
    address = _clean(draft.address)
    if mode == "none":
        # The category asks for no place (a help-desk request). A client that sends one
        # anyway (an Open311 app sends its GPS with every report) is not refused: the
        # place is dropped, so that such a request never shows on a map.
        address = None
    elif draft.lat is not None or draft.lon is not None:
        coords = _valid_coordinates(draft.lat, draft.lon)
        if coords is None:
            errors["location"] = "The location must be a latitude and longitude in degrees"
    asset_ref = None
    if _clean(draft.asset_ref) is not None:
        asset_ref, asset_coords = _asset(session, city, service, draft, coords, errors)
        if asset_coords is not None and mode != "none":
            coords = asset_coords  # the pin snaps to the asset
    if coords is None and "location" not in errors and mode != "none" and draft.use_photo_location:
        gps = next((p.gps for p in processed if p.gps), None)
        if gps is not None:
            coords = (gps[1], gps[0])
            photo_location_used = True
    address_id = _clean(draft.address_id)
    if address_id is not None and len(address_id) > 100:
        errors["address_id"] = "An address id has at most 100 characters"
    now = now or now_utc()
    year = now.astimezone(ZoneInfo(city.timezone)).year
    site = None
    public_number = None
    duplicates: list[DuplicateCandidate] = []
    if coords is not None and "location" not in errors:
        # The boundary check, the routing's reads and the duplicate search: one statement,
        # which also reserves the public id when it runs in a transaction of its own and
        # the request is valid so far (the pin's check in the statement itself).
        params = search_params(
            city,
            service,
            coords[1],
            coords[0],
            radius_m=duplicate_radius_m or DEFAULT_RADIUS_M,
            now=now,
            limit=3,
            public_only=False,
        )
        params["year"] = year
        # The asset's attributes are read with the pin (rules on an asset's attributes).
        params.update(asset_params(service.asset_layer_id, asset_ref))
        params["reserve"] = not errors and is_autocommit(session)
        row = driver_execute(session, _READS_DRIVER_SQL, params).fetchone()
        site = site_from_row(row, service.id)
        duplicates = candidates_from_json(row.duplicates, service)
        public_number = row.public_number
        if not site.in_city:
            errors["location"] = (
                f"This spot is outside {city.name}. Move the pin inside the city boundary."
            )
    if (
        coords is None
        and mode == "required"
        and "location" not in errors
        and "asset" not in errors  # the asset would have placed it
        and not draft.allow_missing_location
    ):
        errors["location"] = "Show where the problem is: put a pin on the map or give an address"

    if errors:
        raise ValidationFailed(errors)

    if coords is not None and address is None:
        # A pin without words gets the nearest address (or "near X and Y"), so that a
        # crew reads where to go; one statement, only for such a pin.
        place = geocoder.reverse_geocode(session, city, coords[1], coords[0])
        if place is not None:
            address = place.address
            address_id = address_id or place.address_id

    if public_number is not None:
        public_id = public_ids.format_public_id(city.public_id_prefix, year, public_number)
    else:
        public_id = public_ids.allocate_one(session, city, year)
    token = secrets.token_urlsafe(24)
    request = new_object(
        ServiceRequest,
        jurisdiction_id=city.id,
        public_id=public_id,
        token=token,
        service_id=service.id,
        status=Status.NEW.value,
        priority=service.default_priority or "normal",
        location=_point(coords[1], coords[0]) if coords else None,
        address=address,
        address_id=None if mode == "none" else address_id,
        asset_layer_id=service.asset_layer_id if asset_ref else None,
        asset_ref=asset_ref,
        description=description,
        channel=draft.channel,
        contact_name=name,
        contact_email=email,
        contact_phone=phone,
        anonymous=anonymous,
        notify_updates=bool(draft.notify_updates),
        # Only a category that asks for a place waits for one.
        needs_location=coords is None and mode == "required",
        needs_answers=bool(missing),
        attributes=answers or None,
        media_url=media_url,
        device_id=_clean(draft.device_id),
        account_id=_clean(draft.account_id),
        requested_at=now,
        updated_at=now,
        held_at=now if holds(city, draft.channel) else None,
        requester_id=draft.requester_id,
    )
    request.service = service
    # Decided before it is written: the request is inserted once, routed (an UPDATE
    # after the INSERT would write a second row version and entries in every index).
    zones: dict = {}
    if site is None and mode != "required":
        # No place, none needed: routed now, by the rules that hold anywhere.
        site = site_without_location(session, city.id, service.id)
    if site is not None:
        with session.no_autoflush:
            zones, _decision = decide_new(session, request, site)
    events = [
        {
            "kind": "submitted",
            "to_value": Status.NEW.value,
            "note": f"Reported via {draft.channel}",
            "public": True,
            "actor_label": (
                "resident" if draft.channel in ("web", "mobile", "api") else draft.channel
            ),
        }
    ]
    if missing:
        events.append(_needs_answers_event(request, service, missing))
    if duplicates:
        events.append(_duplicate_event(request, duplicates))
    # The acknowledgement and the dispatcher alert are rendered now and written by the
    # request's own statement. They read only settings (mail, templates); nothing pending
    # need be flushed before them.
    outbox: list[dict] = []
    # Routed to a crew: new work for the crew, whose members are told by e-mail (not of
    # history: an import's requests are not news).
    tell_crew = request.crew_id is not None and draft.channel not in messages.QUIET_CHANNELS
    if tell_crew:
        request.crew_assigned_at = now
    with session.no_autoflush:
        messages.acknowledge(session, request, public_base_url, outbox=outbox)
        messages.on_new_request(session, request, public_base_url, outbox=outbox)
        if tell_crew:
            messages.on_crew_assigned(session, request, None, public_base_url, outbox=outbox)
    _write_new(session, request, zones.values(), events, outbox)
    for photo in processed:
        store_photo(media_dir, photo)
        session.add(
            Photo(
                request_id=request.id,
                content_hash=photo.content_hash,
                stage="report",
                mime_type=photo.mime_type,
                width=photo.width,
                height=photo.height,
                bytes=photo.size,
                original_key=photo.original_key,
                public_key=photo.public_key,
                thumb_key=photo.thumb_key,
            )
        )
    session.flush()  # the photos
    return SubmitResult(request, public_id, token, service.notice, photo_location_used)


# Channels staff type into for someone else (the agent console): they may file a request
# of an internal category; every other channel only for a signed-in or verified requester.
STAFF_CHANNELS = frozenset({"phone", "in_person", "mail"})


def _may_file_internal(draft: Draft) -> bool:
    return draft.requester_id is not None or draft.channel in STAFF_CHANNELS


def _asset(
    session: Session,
    city: Jurisdiction,
    service: Service,
    draft: Draft,
    coords: tuple[float, float] | None,
    errors: dict[str, str],
) -> tuple[str | None, tuple[float, float] | None]:
    """The asset ``draft.asset_ref`` names in the category's layer: (its ref as the city
    writes it, its (lat, lon)); an error under "asset" when there is none, or when the
    draft's own pin is too far from it to be the same place (never moved silently)."""
    wanted = _clean(draft.asset_ref) or ""
    layer = assets.layer_of_service(session, service)
    if layer is None:
        errors["asset"] = f"{service.name} reports are not about a numbered asset"
        return None, None
    if len(wanted) > assets.MAX_REF or "\n" in wanted:
        errors["asset"] = f"An asset number has at most {assets.MAX_REF} characters"
        return None, None
    near = coords if coords is not None and "location" not in errors else None
    found = assets.find_asset(
        session,
        layer,
        wanted,
        lon=near[1] if near else None,
        lat=near[0] if near else None,
    )
    noun = assets.asset_noun(layer)
    if found is None:
        errors["asset"] = f"No {noun} {wanted} in {city.name}"
        return None, None
    if found.distance_m is not None and found.distance_m > assets.NEAR_RADIUS_M:
        errors["asset"] = (
            f"The {noun} {found.asset.ref} is {found.distance_m:,.0f} m from the pin: "
            "check the number, or put the pin at it"
        )
        return None, None
    return found.asset.ref, (found.lat, found.lon)


def _point(lon: float, lat: float) -> WKBElement:
    """The pin as a WKB point (little-endian, type 1, x y), in WGS 84: the bytes Shapely
    writes for ``Point(lon, lat)``, without building a geometry to write them."""
    return WKBElement(_WKB_POINT.pack(1, 1, lon, lat), srid=4326)


_WKB_POINT = struct.Struct("<BIdd")


def _needs_answers_event(
    request: ServiceRequest, service: Service, missing: list[str]
) -> dict[str, Any]:
    """The internal event telling the dispatcher which required questions to ask."""
    asked = {a.code: a.description for a in service.attributes}
    return {
        "kind": NEEDS_ANSWERS,
        "to_value": ", ".join(missing),
        "note": "Needs answers: " + "; ".join(asked.get(c) or c for c in missing),
        "public": False,
        "actor_label": "intake",
        "department_id": request.department_id,
    }


def _duplicate_event(request: ServiceRequest, found: list[DuplicateCandidate]) -> dict[str, Any]:
    """The internal event naming the open requests this one may repeat."""
    near = found[0]
    return {
        "kind": POSSIBLE_DUPLICATE,
        "to_value": ", ".join(c.public_id for c in found),
        "note": (
            f"Possible duplicate of {near.public_id}: same category, still open, "
            f"{near.distance_m:.0f} m away"
            + (f" (and {len(found) - 1} more nearby)" if len(found) > 1 else "")
        ),
        "public": False,
        "actor_label": "intake",
        "department_id": request.department_id,
    }


# A new request is written by one statement: its row (every column but the id), its zone
# in each layer, its first events and its messages. The ORM's unit of work and one
# statement each would cost more Python than the database spends on the rows. The rows
# of the other tables come as JSON, which the driver adapts at less cost than arrays (and
# the server reads at less cost than the request's own columns as one JSON record).
_COLUMNS = [c for c in column_keys(ServiceRequest) if c != "id"]
_JSON_COLUMNS = [c.key for c in ServiceRequest.__table__.columns if isinstance(c.type, JSONB)]
# A transient request holds only what submit set; the columns' scalar defaults fill the rest
# (the ORM would apply them at flush, which this statement replaces).
_DEFAULTS = {
    c.key: c.default.arg
    for c in ServiceRequest.__table__.columns
    if c.default is not None and c.default.is_scalar and c.key in _COLUMNS
}


def _placeholder(column: str) -> str:
    if column == "location":
        return "ST_SetSRID(ST_GeomFromWKB(:location), 4326)"
    if column in _JSON_COLUMNS:
        return f"CAST(:{column} AS jsonb)"
    return f":{column}"


_MESSAGE_FIELDS = ", ".join(f"{name} {kind}" for name, kind in DEFERRED_COLUMNS)
_MESSAGE_NAMES = ", ".join(name for name, _ in DEFERRED_COLUMNS)
_NEW_REQUEST_SQL = sa.text(
    f"""
    WITH new AS (
        INSERT INTO service_request ({", ".join(_COLUMNS)})
        VALUES ({", ".join(_placeholder(c) for c in _COLUMNS)})
        RETURNING id
    ), zones AS (
        INSERT INTO request_zone (request_id, layer_id, zone_id)
        SELECT new.id, z.layer_id, z.zone_id
        FROM new, jsonb_to_recordset(CAST(:zones AS jsonb)) AS z(layer_id integer, zone_id integer)
    ), events AS (
        INSERT INTO request_event (request_id, at, actor_label, kind, to_value, note, public,
                                   department_id)
        SELECT new.id, CAST(:requested_at AS timestamptz), e.actor_label, e.kind, e.to_value,
               e.note, e.public, e.department_id
        FROM new, ROWS FROM (
                 jsonb_to_recordset(CAST(:events AS jsonb))
                 AS (actor_label text, kind text, to_value text, note text, public boolean,
                     department_id integer)
             ) WITH ORDINALITY AS e(actor_label, kind, to_value, note, public, department_id, n)
        ORDER BY e.n
    ), messages AS (
        INSERT INTO outbox_message (jurisdiction_id, request_id, kind, to_addr, subject,
                                    body_text, body_html, headers, message_id, status,
                                    attempts, next_attempt_at, created_at)
        SELECT m.jurisdiction_id, new.id, m.kind, m.to_addr, m.subject, m.body_text,
               m.body_html, m.headers, m.message_id, 'pending', 0, m.created_at, m.created_at
        FROM new, ROWS FROM (
                 jsonb_to_recordset(CAST(:messages AS jsonb)) AS ({_MESSAGE_FIELDS})
             ) WITH ORDINALITY AS m({_MESSAGE_NAMES}, n)
        -- a new request has no unsubscriptions of its own yet: only "no mail at all" (of
        -- the city) or "none of this kind" counts
        WHERE NOT EXISTS (
            SELECT 1 FROM mail_unsubscribe u
            WHERE lower(u.email) = m.unsub_email AND u.request_id IS NULL
              AND (u.kind IS NULL OR u.kind = m.kind)
              AND (u.jurisdiction_id IS NULL OR u.jurisdiction_id = m.jurisdiction_id)
        )
        ORDER BY m.n
    )
    SELECT id FROM new
    """  # noqa: S608 - the names are the model's own columns
)

_NEW_REQUEST_DRIVER_SQL = driver_sql(_NEW_REQUEST_SQL)
# What a new request at a pin reads before it is decided, in one statement: whether the
# pin is in the city, the routing's inputs (routing.engine), the possible duplicates, and
# (with :reserve, see submit) its public id's number.
_READS_DRIVER_SQL = driver_sql(
    site_sql(
        f"{DUPLICATES_COLUMN},\n       (SELECT last_value FROM reserved) AS public_number",  # noqa: S608
        public_ids.reserve_cte(":reserve AND (SELECT in_city FROM place)"),
    )
)


def _write_new(
    session: Session, request: ServiceRequest, zones, events: list[dict], outbox: list[dict]
) -> None:
    """INSERT ``request`` (transient, decided), its ``request_zone`` rows (``zones``: the
    routing's zone picks), ``events`` (at its ``requested_at``) and its messages
    (``outbox``: deferred by :func:`notify.outbox.enqueue`), in one statement, and make
    it persistent in ``session``."""
    for column, default in _DEFAULTS.items():
        if request.__dict__.get(column) is None:
            setattr(request, column, default)
    values: dict[str, Any] = {c: request.__dict__.get(c) for c in _COLUMNS}
    location = values["location"]
    values["location"] = bytes(location.data) if location is not None else None
    for column in _JSON_COLUMNS:
        if values[column] is not None:
            values[column] = json.dumps(values[column])
    values["zones"] = json.dumps([{"layer_id": z.layer_id, "zone_id": z.zone_id} for z in zones])
    values["events"] = json.dumps(events)
    values["messages"] = json.dumps(outbox)
    new_id = driver_execute(session, _NEW_REQUEST_DRIVER_SQL, values).fetchone()[0]
    attach_inserted(session, request, new_id)


def tracking_url(public_base_url: str, request: ServiceRequest) -> str:
    return f"{public_base_url}/requests/{request.public_id}?token={request.token}"


def get_request(session: Session, public_id: str) -> ServiceRequest:
    req = session.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == public_id))
    if req is None:
        raise NotFound(f"no request {public_id!r}")
    return req
