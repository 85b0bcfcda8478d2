"""The Open311 resources as plain values, read from the database.

Each function takes a session and a jurisdiction and returns the dicts the renderer turns
into JSON or XML, fields in the spec's order. Privacy lives here, in the queries: no
function selects reporter contact, device or account columns, and every request query
excludes private categories and held requests and shows the description as moderated
(records.moderation), so no GET can leak them whatever the parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased, joinedload

from places.assets import asset_noun
from records import moderation
from spatial.models import (
    OPEN_STATUSES,
    Crew,
    Department,
    Jurisdiction,
    Photo,
    RequestEvent,
    RuleSet,
    Service,
    ServiceAttribute,
    ServiceRequest,
    Status,
    Zone,
    ZoneLayer,
)
from spatial.models_places import AssetLayer

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
OPEN_VALUES = tuple(sorted(s.value for s in OPEN_STATUSES))
STATUS_VALUES = tuple(s.value for s in Status)

# Internal status -> the status words FixMyStreet's Open311 update client understands.
FMS_STATUS = {
    Status.NEW: "open",
    Status.ACKNOWLEDGED: "investigating",
    Status.IN_PROGRESS: "in_progress",
    Status.REFERRED: "internal_referral",
    Status.RESOLVED: "fixed",
    Status.CANT_FIX: "no_further_action",
    Status.DUPLICATE: "duplicate",
    Status.CANCELLED: "closed",
    Status.CLOSED: "closed",
}


@lru_cache(maxsize=64)
def zone_of(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def w3c(value: datetime | None, tz: ZoneInfo) -> str | None:
    """``2010-04-14T06:37:38-08:00``: W3C date-time, in the jurisdiction's time zone."""
    if value is None:
        return None
    return value.astimezone(tz).isoformat(timespec="seconds")


def open_or_closed(status: str) -> str:
    return "open" if status in OPEN_VALUES else "closed"


def media_path(key: str) -> str:
    """The URL path of a stored public photo key (``public/ab/abcd....jpg``)."""
    return f"/media/{key}"


# --- discovery ---------------------------------------------------------------------


def _jurisdiction_ids(city: Jurisdiction) -> str:
    ids = " or ".join([city.slug, *(city.open311_ids or [])])
    return f"{city.name} (jurisdiction_id {ids})"


def discovery(session: Session, cities: list[Jurisdiction], base_url: str) -> dict[str, Any]:
    """The service discovery document for this endpoint."""
    ids = [c.id for c in cities]
    stamps = [
        session.scalar(
            sa.select(sa.func.max(Jurisdiction.created_at)).where(Jurisdiction.id.in_(ids))
        ),
        session.scalar(
            sa.select(sa.func.max(RuleSet.published_at)).where(RuleSet.jurisdiction_id.in_(ids))
        ),
        session.scalar(
            sa.select(sa.func.max(ZoneLayer.imported_at)).where(ZoneLayer.jurisdiction_id.in_(ids))
        ),
    ]
    latest = max((s for s in stamps if s is not None), default=None)
    changeset = (
        latest.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ") if latest else "none"
    )
    names = ", ".join(_jurisdiction_ids(c) for c in cities) or "no city yet"
    return {
        "changeset": changeset,
        "contact": f"311 service requests for {names}. Web: {base_url}/",
        "key_service": (
            "Reading needs no key. To submit requests, ask the city's civicpin administrators "
            "for an API key (they create one with 'civicpin apikey create')."
        ),
        "endpoints": [
            {
                "specification": SPECIFICATION,
                "url": f"{base_url}/open311/v2",
                "changeset": changeset,
                "type": "production",
                "formats": ["text/xml", "application/json"],
            }
        ],
    }


# --- services ----------------------------------------------------------------------


def _public_services(city: Jurisdiction):
    return sa.select(Service).where(
        Service.jurisdiction_id == city.id,
        Service.private.is_(False),
        Service.internal.is_(False),
        Service.active.is_(True),
    )


def _keywords(value: Any) -> str | None:
    """The spec's comma-separated keywords, from the stored list (or a stray string)."""
    if not value:
        return None
    if isinstance(value, str):
        return value
    return ", ".join(str(k) for k in value if str(k).strip()) or None


def services(session: Session, city: Jurisdiction) -> list[dict[str, Any]]:
    """GET Service List: the public, active categories."""
    # A category tied to an asset layer has the asset's attribute (asset_attribute).
    has_attrs = sa.or_(
        sa.select(ServiceAttribute.id).where(ServiceAttribute.service_id == Service.id).exists(),
        Service.asset_layer_id.is_not(None),
    )
    rows = session.execute(
        _public_services(city).add_columns(has_attrs).order_by(Service.name, Service.code)
    ).all()
    return [
        {
            "service_code": svc.code,
            "service_name": svc.name,
            "description": svc.description or None,
            "metadata": bool(metadata),
            "type": svc.type if svc.type in ("realtime", "batch", "blackbox") else "realtime",
            "keywords": _keywords(svc.keywords),
            "group": svc.group or None,
        }
        for svc, metadata in rows
    ]


def find_public_service(session: Session, city: Jurisdiction, code: str) -> Service | None:
    """The public, active category ``code``, its questions loaded with it (one query)."""
    return (
        session.scalars(
            _public_services(city)
            .where(Service.code == code)
            .options(joinedload(Service.attributes))
        )
        .unique()
        .first()
    )


# The attribute of a category tied to an asset layer in which a client names the asset
# (pole "4711"): the request stores it and snaps to it (places.assets).
ASSET_ATTRIBUTE = "asset_id"


def asset_attribute(
    service: Service, layer: AssetLayer | None, order: int
) -> dict[str, Any] | None:
    """The extra attribute naming an asset of ``service``'s layer, unless the city asks a
    question of that code itself (then the answer is the city's)."""
    if layer is None or any(a.code == ASSET_ATTRIBUTE for a in service.attributes):
        return None
    noun = asset_noun(layer)
    return {
        "variable": True,
        "code": ASSET_ATTRIBUTE,
        "datatype": "string",
        "required": False,
        "datatype_description": f"The city's number of the {noun}; the request is placed at it.",
        "order": order,
        "description": f"{noun[:1].upper()}{noun[1:]}: the number on it",
        "values": None,
    }


def service_definition(service: Service, session: Session | None = None) -> dict[str, Any]:
    """GET Service Definition. ``order`` is renumbered 1..n in the stored order, because
    the spec wants distinct positive integers and stored positions may start at 0. A
    category tied to an asset layer gets the asset's attribute last (with a session)."""
    attrs = sorted(service.attributes, key=lambda a: (a.order, a.id))
    layer = (
        session.get(AssetLayer, service.asset_layer_id)
        if session is not None and service.asset_layer_id is not None
        else None
    )
    extra = asset_attribute(service, layer, len(attrs) + 1)
    return {
        "service_code": service.code,
        "attributes": [
            {
                "variable": bool(a.variable),
                "code": a.code,
                "datatype": a.datatype,
                "required": bool(a.required),
                "datatype_description": a.datatype_description or None,
                "order": position,
                "description": a.description,
                "values": (
                    [{"key": str(v["key"]), "name": str(v.get("name", v["key"]))} for v in a.values]
                    if a.datatype in ("singlevaluelist", "multivaluelist") and a.values
                    else None
                ),
            }
            for position, a in enumerate(attrs, start=1)
        ]
        + ([extra] if extra else []),
    }


# --- requests ----------------------------------------------------------------------


@dataclass
class RequestQuery:
    """Filters of GET Service Requests; ``ids`` overrides all the others."""

    ids: list[str] | None = None
    service_codes: list[str] | None = None
    start: datetime | None = None
    end: datetime | None = None
    statuses: set[str] | None = None
    bbox: tuple[float, float, float, float] | None = None
    updated_after: datetime | None = None
    page: int = 1
    page_size: int = 1000
    extended: bool = False


def _latest_public_note():
    """The latest public note on a request, apart from the automatic 'submitted' one."""
    return (
        sa.select(RequestEvent.note)
        .where(
            RequestEvent.request_id == ServiceRequest.id,
            RequestEvent.public.is_(True),
            RequestEvent.note.is_not(None),
            RequestEvent.note != "",
            RequestEvent.kind != "submitted",
        )
        .order_by(RequestEvent.at.desc(), RequestEvent.id.desc())
        .limit(1)
        .correlate(ServiceRequest)
        .scalar_subquery()
    )


def requests(
    session: Session, city: Jurisdiction, q: RequestQuery, base_url: str
) -> list[dict[str, Any]]:
    """GET Service Requests (also GET Service Request, with one id)."""
    tz = zone_of(city.timezone)
    cols = [
        ServiceRequest.id,
        ServiceRequest.public_id,
        ServiceRequest.status,
        _latest_public_note().label("note"),
        Service.name.label("service_name"),
        Service.code.label("service_code"),
        moderation.shown_description_sql().label("description"),
        Department.name.label("department"),
        Service.notice,
        ServiceRequest.requested_at,
        ServiceRequest.updated_at,
        ServiceRequest.due_at,
        ServiceRequest.address,
        ServiceRequest.address_id,
        sa.func.ST_Y(ServiceRequest.location).label("lat"),
        sa.func.ST_X(ServiceRequest.location).label("lon"),
        ServiceRequest.media_url,
    ]
    if q.extended:
        cols += [
            ServiceRequest.channel,
            ServiceRequest.external_id,
            ServiceRequest.routing_explanation,
            Zone.name.label("zone"),
            Zone.code.label("zone_code"),
            Crew.name.label("crew"),
        ]
    query = (
        sa.select(*cols)
        .join(Service, Service.id == ServiceRequest.service_id)
        .outerjoin(Department, Department.id == ServiceRequest.department_id)
        .where(
            ServiceRequest.jurisdiction_id == city.id,
            Service.private.is_(False),
            moderation.PUBLISHED,
        )
    )
    if q.extended:
        query = query.outerjoin(Zone, Zone.id == ServiceRequest.zone_id).outerjoin(
            Crew, Crew.id == ServiceRequest.crew_id
        )
    if q.ids is not None:
        query = query.where(ServiceRequest.public_id.in_(q.ids))
    else:
        if q.service_codes:
            query = query.where(Service.code.in_(q.service_codes))
        if q.start is not None:
            query = query.where(ServiceRequest.requested_at >= q.start)
        if q.end is not None:
            query = query.where(ServiceRequest.requested_at <= q.end)
        if q.statuses and q.statuses != {"open", "closed"}:
            if q.statuses == {"open"}:
                query = query.where(ServiceRequest.status.in_(OPEN_VALUES))
            else:
                query = query.where(ServiceRequest.status.not_in(OPEN_VALUES))
        if q.bbox is not None:
            envelope = sa.func.ST_MakeEnvelope(*q.bbox, 4326)
            query = query.where(sa.func.ST_Intersects(ServiceRequest.location, envelope))
        if q.updated_after is not None:
            query = query.where(ServiceRequest.updated_at > q.updated_after)
    query = (
        query.order_by(ServiceRequest.requested_at.desc(), ServiceRequest.id.desc())
        .limit(q.page_size)
        .offset((q.page - 1) * q.page_size)
    )
    rows = session.execute(query).all()
    photos = _photos(session, [r.id for r in rows], base_url)
    out = []
    for r in rows:
        own = photos.get(r.id, [])
        first_report = next((p for p in own if p["stage"] == "report"), None)
        item: dict[str, Any] = {
            "service_request_id": r.public_id,
            "status": open_or_closed(r.status),
            "status_notes": r.note or None,
            "service_name": r.service_name,
            "service_code": r.service_code,
            "description": r.description or None,
            "agency_responsible": r.department,
            "service_notice": r.notice or None,
            "requested_datetime": w3c(r.requested_at, tz),
            "updated_datetime": w3c(r.updated_at, tz),
            "expected_datetime": w3c(r.due_at, tz),
            "address": r.address or None,
            "address_id": r.address_id or None,
            "lat": r.lat,
            "long": r.lon,
            "media_url": r.media_url or (first_report["media_url"] if first_report else None),
        }
        if q.extended:
            # What joins the request back to the city's own records: the imported
            # record's id, the address and the category's name (all public already).
            item["extended_attributes"] = {
                "external_id": r.external_id or None,
                "address": r.address or None,
                "service_name": r.service_name,
                "channel": r.channel,
                "zone": r.zone,
                "zone_code": r.zone_code,
                "crew": r.crew,
                "routing_explanation": r.routing_explanation or None,
                "photos": [{**p, "created_datetime": w3c(p["created_datetime"], tz)} for p in own]
                or None,
            }
        out.append(item)
    return out


def _photos(session: Session, request_ids: list[int], base_url: str) -> dict[int, list[dict]]:
    if not request_ids:
        return {}
    rows = session.scalars(
        sa.select(Photo)
        .where(Photo.request_id.in_(request_ids), moderation.PHOTO_SHOWN)
        .order_by(Photo.request_id, Photo.created_at, Photo.id)
    ).all()
    out: dict[int, list[dict]] = {}
    for p in rows:
        out.setdefault(p.request_id, []).append(
            {
                "media_url": base_url + media_path(p.public_key),
                "thumbnail_url": base_url + media_path(p.thumb_key),
                "stage": p.stage,
                "width": p.width,
                "height": p.height,
                "created_datetime": p.created_at,
            }
        )
    return out


def request_by_token(session: Session, city: Jurisdiction, token: str) -> str | None:
    """The public id of the (non-private) request with ``token``, if any."""
    return session.scalar(
        sa.select(ServiceRequest.public_id)
        .join(Service, Service.id == ServiceRequest.service_id)
        .where(
            ServiceRequest.jurisdiction_id == city.id,
            ServiceRequest.token == token,
            Service.private.is_(False),
            moderation.PUBLISHED,
        )
    )


# --- updates (FixMyStreet's servicerequestupdates) ------------------------------------


def updates(
    session: Session,
    city: Jurisdiction,
    start: datetime,
    end: datetime | None,
    page: int,
    page_size: int,
    base_url: str,
) -> list[dict[str, Any]]:
    """The public events of public requests between ``start`` and ``end``, oldest first.

    Each carries the request's status as it was just after the event: the last event up
    to it whose ``to_value`` is a status.
    """
    tz = zone_of(city.timezone)
    earlier = aliased(RequestEvent)
    status_then = (
        sa.select(earlier.to_value)
        .where(
            earlier.request_id == RequestEvent.request_id,
            earlier.to_value.in_(STATUS_VALUES),
            sa.tuple_(earlier.at, earlier.id) <= sa.tuple_(RequestEvent.at, RequestEvent.id),
        )
        .order_by(earlier.at.desc(), earlier.id.desc())
        .limit(1)
        .correlate(RequestEvent)
        .scalar_subquery()
    )
    rows = session.execute(
        sa.select(
            RequestEvent.id,
            ServiceRequest.public_id,
            sa.func.coalesce(status_then, ServiceRequest.status).label("status"),
            RequestEvent.at,
            RequestEvent.note,
        )
        .join(ServiceRequest, ServiceRequest.id == RequestEvent.request_id)
        .join(Service, Service.id == ServiceRequest.service_id)
        .where(
            ServiceRequest.jurisdiction_id == city.id,
            Service.private.is_(False),
            moderation.PUBLISHED,
            RequestEvent.public.is_(True),
            # An update says something: a note, or a status change.
            sa.or_(
                sa.func.coalesce(RequestEvent.note, "") != "",
                RequestEvent.to_value.in_(STATUS_VALUES),
            ),
            RequestEvent.at >= start,
            RequestEvent.at <= end if end is not None else sa.true(),
        )
        .order_by(RequestEvent.at, RequestEvent.id)
        .limit(page_size)
        .offset((page - 1) * page_size)
    ).all()
    return [
        {
            "update_id": str(r.id),
            "service_request_id": r.public_id,
            "status": FMS_STATUS.get(r.status, open_or_closed(r.status)),
            "updated_datetime": w3c(r.at, tz),
            "description": r.note or None,
            "media_url": None,
        }
        for r in rows
    ]
