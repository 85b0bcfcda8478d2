"""The dispatch queue: requests of a city, filtered, with what a dispatcher scans for.

:func:`parse_filters` turns query-string values into :class:`QueueFilters` (or a
one-line :class:`InvalidInput`); :func:`queue` lists matching requests; :func:`arrivals`
is the "new since" look-up behind the console's live updates; :func:`changed_since`
tells a console that something it shows may have changed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from geoalchemy2 import Geography
from sqlalchemy.orm import Session

from spatial.errors import InvalidInput
from spatial.models import (
    CHANNELS,
    CLOSED_STATUSES,
    OPEN_STATUSES,
    POSSIBLE_DUPLICATE,
    PRIORITIES,
    Crew,
    Department,
    Jurisdiction,
    RequestEvent,
    RequestZone,
    Service,
    ServiceRequest,
    Status,
    Zone,
    ZoneLayer,
    now_utc,
)
from spatial.models_places import Asset, AssetLayer

STATUS_CHOICES = ("untriaged", "open", "closed", "all", *[s.value for s in Status])
SORTS = ("newest", "oldest", "due", "priority", "escalation")
PRIORITY_RANK = {p: i for i, p in enumerate(reversed(PRIORITIES))}  # urgent = 0
MAX_LIMIT = 500
# Rows may commit a little after the clock reading they carry; polls look back this far
# and the console drops what it already has.
LOOKBACK = timedelta(seconds=15)
OPEN_VALUES = frozenset(s.value for s in OPEN_STATUSES)


@dataclass
class QueueFilters:
    status: str = "open"
    zone_id: int | None = None
    department_id: int | None = None  # 0 = no department (central queue)
    crew_id: int | None = None  # 0 = no crew
    priority: str | None = None
    overdue: bool = False
    channel: str | None = None
    needs_location: bool = False
    held: bool = False  # held for review, not public yet (records.moderation)
    escalated: bool = False  # routing.escalation raised it (level 1 or 2)
    sort: str = "newest"
    limit: int = 200
    # A dispatcher scoped to departments (routing.actions.dispatch_scope) sees theirs and
    # the central queue; set by the console from the user, never from the query string.
    scope: frozenset[int] | None = None


def _int(value: str | None, field: str) -> int | None:
    if value is None or value.strip() == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise InvalidInput(f"{field} must be a whole number", field=field) from None
    if number < 0:
        raise InvalidInput(f"{field} must not be negative", field=field)
    return number


def _choice(value: str | None, field: str, choices: tuple[str, ...]) -> str | None:
    if value is None or value.strip() == "":
        return None
    value = value.strip()
    if value not in choices:
        raise InvalidInput(f"{field} must be one of {', '.join(choices)}", field=field)
    return value


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def parse_filters(args: Mapping[str, str]) -> QueueFilters:
    """Filters from a query string; raises :class:`InvalidInput` naming the bad one."""
    limit = _int(args.get("limit"), "limit")
    if limit is not None and not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    return QueueFilters(
        status=_choice(args.get("status"), "status", STATUS_CHOICES) or "open",
        zone_id=_int(args.get("zone"), "zone"),
        department_id=_int(args.get("department"), "department"),
        crew_id=_int(args.get("crew"), "crew"),
        priority=_choice(args.get("priority"), "priority", PRIORITIES),
        overdue=_flag(args.get("overdue")),
        channel=_choice(args.get("channel"), "channel", CHANNELS),
        needs_location=_flag(args.get("needs_location")),
        held=_flag(args.get("held")),
        escalated=_flag(args.get("escalated")),
        sort=_choice(args.get("sort"), "sort", SORTS) or "newest",
        limit=limit or 200,
    )


def _triaged():
    return sa.exists().where(
        RequestEvent.request_id == ServiceRequest.id, RequestEvent.kind == "triaged"
    )


def _conditions(city: Jurisdiction, f: QueueFilters, now: datetime) -> list:
    r = ServiceRequest
    open_values = [s.value for s in OPEN_STATUSES]
    conds: list = [r.jurisdiction_id == city.id]
    if f.status == "untriaged":
        conds += [r.status == Status.NEW.value, ~_triaged()]
    elif f.status == "open":
        conds.append(r.status.in_(open_values))
    elif f.status == "closed":
        conds.append(r.status.in_([s.value for s in CLOSED_STATUSES]))
    elif f.status != "all":
        conds.append(r.status == f.status)
    if f.zone_id is not None:
        conds.append(
            sa.exists().where(RequestZone.request_id == r.id, RequestZone.zone_id == f.zone_id)
        )
    if f.department_id is not None:
        conds.append(
            r.department_id.is_(None)
            if f.department_id == 0
            else r.department_id == f.department_id
        )
    if f.crew_id is not None:
        conds.append(r.crew_id.is_(None) if f.crew_id == 0 else r.crew_id == f.crew_id)
    if f.scope is not None:
        # The central queue, less internal customers' requests (routing.actions.may).
        internal = sa.select(Service.id).where(Service.internal.is_(True))
        conds.append(
            sa.or_(
                sa.and_(r.department_id.is_(None), r.service_id.not_in(internal)),
                r.department_id.in_(sorted(f.scope)),
            )
        )
    if f.priority:
        conds.append(r.priority == f.priority)
    if f.overdue:
        conds += [r.status.in_(open_values), r.due_at.is_not(None), r.due_at < now]
    if f.channel:
        conds.append(r.channel == f.channel)
    if f.needs_location:
        # The same test as the item's badge (see _item): intake flags a request that has
        # no point while its category asks for one (a 'none' category's never is).
        conds.append(r.needs_location.is_(True))
    if f.held:
        conds.append(r.held_at.is_not(None))
    if f.escalated:
        conds += [r.status.in_(open_values), r.escalation_level > 0]
    return conds


def _order(f: QueueFilters) -> list:
    r = ServiceRequest
    rank = sa.case(PRIORITY_RANK, value=r.priority, else_=len(PRIORITY_RANK))
    if f.sort == "oldest":
        return [r.requested_at.asc(), r.id.asc()]
    if f.sort == "due":
        return [r.due_at.asc().nulls_last(), r.id.asc()]
    if f.sort == "priority":
        return [rank, r.due_at.asc().nulls_last(), r.id.asc()]
    if f.sort == "escalation":
        # The most escalated first, and within a level the longest escalated.
        return [
            r.escalation_level.desc(),
            r.escalated_at.asc().nulls_last(),
            r.requested_at.asc(),
            r.id.asc(),
        ]
    return [r.requested_at.desc(), r.id.desc()]


def _select(now: datetime):
    r = ServiceRequest
    open_values = [s.value for s in OPEN_STATUSES]
    return (
        sa.select(
            r.id,
            r.public_id,
            r.status,
            r.priority,
            r.channel,
            r.address,
            r.description,
            r.requested_at,
            r.due_at,
            r.needs_location,
            r.needs_answers,
            r.held_at,
            r.escalation_level,
            r.escalated_at,
            r.reopen_count,
            r.routing_explanation,
            r.department_id,
            r.crew_id,
            r.zone_id,
            r.duplicate_of_id,
            Service.name.label("service"),
            Service.code.label("service_code"),
            Service.private.label("private"),
            Department.name.label("department"),
            Crew.name.label("crew"),
            Zone.name.label("zone"),
            Zone.code.label("zone_code"),
            # The asset the request is about (by the layer's unique key), for staff.
            AssetLayer.name.label("asset_layer"),
            AssetLayer.title.label("asset_title"),
            r.asset_ref,
            Asset.label.label("asset_label"),
            r.location.is_(None).label("no_location"),
            # The reporter wrote after the last staff reply (or before any).
            sa.and_(
                r.reporter_message_at.is_not(None),
                ~sa.exists().where(
                    RequestEvent.request_id == r.id,
                    RequestEvent.kind == "reply",
                    RequestEvent.at >= r.reporter_message_at,
                ),
            ).label("new_message"),
            sa.func.ST_X(r.location).label("lon"),
            sa.func.ST_Y(r.location).label("lat"),
            _triaged().label("triaged"),
            sa.and_(r.status.in_(open_values), r.due_at.is_not(None), r.due_at < now).label(
                "overdue"
            ),
            # intake named open requests this one may repeat, and no one merged it yet
            sa.and_(
                r.duplicate_of_id.is_(None),
                r.status.in_(open_values),
                sa.exists().where(
                    RequestEvent.request_id == r.id, RequestEvent.kind == POSSIBLE_DUPLICATE
                ),
            ).label("possible_duplicate"),
        )
        .join(Service, Service.id == r.service_id)
        .outerjoin(Department, Department.id == r.department_id)
        .outerjoin(Crew, Crew.id == r.crew_id)
        .outerjoin(Zone, Zone.id == r.zone_id)
        .outerjoin(AssetLayer, AssetLayer.id == r.asset_layer_id)
        .outerjoin(Asset, sa.and_(Asset.layer_id == r.asset_layer_id, Asset.ref == r.asset_ref))
    )


def request_asset(session: Session, request: ServiceRequest) -> dict[str, Any] | None:
    """The asset ``request`` is about, for staff pages: layer name and title, ref, label
    (None when it names none; label None when the asset left the city's set)."""
    if request.asset_layer_id is None or not request.asset_ref:
        return None
    row = session.execute(
        sa.select(AssetLayer.name, AssetLayer.title, Asset.label)
        .outerjoin(Asset, sa.and_(Asset.layer_id == AssetLayer.id, Asset.ref == request.asset_ref))
        .where(AssetLayer.id == request.asset_layer_id)
    ).first()
    if row is None:
        return None
    return {"layer": row.name, "title": row.title, "ref": request.asset_ref, "label": row.label}


def _item(row: Any) -> dict[str, Any]:
    description = row.description or ""
    if len(description) > 200:
        description = description[:199] + "…"
    return {
        "id": row.id,
        "public_id": row.public_id,
        "service": row.service,
        "service_code": row.service_code,
        "private": bool(row.private),
        "status": row.status,
        "priority": row.priority,
        "channel": row.channel,
        "address": row.address,
        "description": description,
        "requested_at": row.requested_at.isoformat() if row.requested_at else None,
        "due_at": row.due_at.isoformat() if row.due_at else None,
        "overdue": bool(row.overdue),
        "triaged": bool(row.triaged),
        # Without a place only when its category asks for one (intake sets the flag).
        "needs_location": bool(row.needs_location),
        "needs_answers": bool(row.needs_answers),
        "possible_duplicate": bool(row.possible_duplicate),
        "held": row.held_at is not None,
        "escalation_level": row.escalation_level or 0,
        "escalated_at": row.escalated_at.isoformat() if row.escalated_at else None,
        "no_location": bool(row.no_location),
        "reopened": bool(row.reopen_count) and row.status in OPEN_VALUES,
        "new_message": bool(row.new_message),
        "department": row.department,
        "department_id": row.department_id,
        "crew": row.crew,
        "crew_id": row.crew_id,
        "zone": row.zone,
        "zone_code": row.zone_code,
        "asset_layer": row.asset_layer if row.asset_ref else None,
        "asset_title": row.asset_title if row.asset_ref else None,
        "asset_ref": row.asset_ref,
        "asset_label": row.asset_label,
        "routing_explanation": row.routing_explanation,
        "duplicate_of_id": row.duplicate_of_id,
        "lat": float(row.lat) if row.lat is not None else None,
        "lon": float(row.lon) if row.lon is not None else None,
    }


def queue(
    session: Session, city: Jurisdiction, filters: QueueFilters, now: datetime | None = None
) -> list[dict[str, Any]]:
    """The requests matching ``filters``, as plain dicts, in the filters' order."""
    now = now or now_utc()
    stmt = (
        _select(now)
        .where(*_conditions(city, filters, now))
        .order_by(*_order(filters))
        .limit(filters.limit)
    )
    return [_item(row) for row in session.execute(stmt)]


def count(
    session: Session, city: Jurisdiction, filters: QueueFilters, now: datetime | None = None
) -> int:
    """How many requests match ``filters`` (the list itself is capped at ``limit``)."""
    now = now or now_utc()
    return (
        session.scalar(
            sa.select(sa.func.count())
            .select_from(ServiceRequest)
            .where(*_conditions(city, filters, now))
        )
        or 0
    )


def arrivals(
    session: Session,
    city: Jurisdiction,
    filters: QueueFilters,
    *,
    after_id: int,
    since: datetime | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Requests new since a poll: id above ``after_id``, or made after ``since``.

    Looking back by time as well catches a request whose id was taken before the last
    poll but whose transaction committed after it; callers drop ids they already have.
    """
    now = now or now_utc()
    newer = ServiceRequest.id > after_id
    if since is not None:
        newer = sa.or_(newer, ServiceRequest.requested_at > since - LOOKBACK)
    stmt = (
        _select(now)
        .where(*_conditions(city, filters, now), newer)
        .order_by(ServiceRequest.id.desc())
        .limit(MAX_LIMIT)
    )
    return [_item(row) for row in session.execute(stmt)]


def changed_since(session: Session, city: Jurisdiction, since: datetime) -> bool:
    """Whether any request of the city changed (or arrived) after ``since`` (with lookback)."""
    cutoff = since - LOOKBACK
    return bool(
        session.scalar(
            sa.select(
                sa.exists().where(
                    ServiceRequest.jurisdiction_id == city.id,
                    ServiceRequest.updated_at > cutoff,
                )
            )
        )
        or session.scalar(
            sa.select(
                sa.exists().where(
                    RequestEvent.request_id == ServiceRequest.id,
                    ServiceRequest.jurisdiction_id == city.id,
                    RequestEvent.at > cutoff,
                )
            )
        )
    )


def latest_id(session: Session, city: Jurisdiction) -> int:
    """The highest request id of the city (0 without requests): the live cursor's start."""
    return session.scalar(
        sa.select(sa.func.coalesce(sa.func.max(ServiceRequest.id), 0)).where(
            ServiceRequest.jurisdiction_id == city.id
        )
    )


def filter_options(session: Session, city: Jurisdiction) -> dict[str, Any]:
    """What the console's filter menus offer: zones by current layer, departments, crews."""
    layers = session.scalars(
        sa.select(ZoneLayer)
        .where(ZoneLayer.jurisdiction_id == city.id, ZoneLayer.is_current.is_(True))
        .order_by(ZoneLayer.name)
    ).all()
    zones = []
    for layer in layers:
        rows = session.execute(
            sa.select(Zone.id, Zone.code, Zone.name)
            .where(Zone.layer_id == layer.id)
            .order_by(Zone.name, Zone.code)
        ).all()
        zones.append(
            {
                "layer": layer.title or layer.name,
                "zones": [{"id": z.id, "code": z.code, "name": z.name} for z in rows],
            }
        )
    departments = session.execute(
        sa.select(Department.id, Department.name)
        .where(Department.jurisdiction_id == city.id)
        .order_by(Department.name)
    ).all()
    crews = session.execute(
        sa.select(Crew.id, Crew.name, Crew.department_id, Department.name.label("dept"))
        .join(Department, Department.id == Crew.department_id)
        .where(Department.jurisdiction_id == city.id)
        .order_by(Department.name, Crew.name)
    ).all()
    services = session.execute(
        sa.select(Service.id, Service.name, Service.code, Service.group)
        .where(Service.jurisdiction_id == city.id, Service.active.is_(True))
        .order_by(Service.name)
    ).all()
    return {
        "zones": zones,
        "departments": [{"id": d.id, "name": d.name} for d in departments],
        "crews": [
            {"id": c.id, "name": c.name, "department_id": c.department_id, "department": c.dept}
            for c in crews
        ],
        "services": [
            {"id": s.id, "name": s.name, "code": s.code, "group": s.group} for s in services
        ],
        "statuses": list(STATUS_CHOICES),
        "priorities": list(PRIORITIES),
        "channels": list(CHANNELS),
        "sorts": list(SORTS),
    }


def nearby_candidates(
    session: Session,
    request: ServiceRequest,
    *,
    meters: float = 250,
    days: int = 60,
    limit: int = 10,
) -> list[dict[str, Any]]:
    """Open or recent requests near this one (same city, not itself, not duplicates):
    merge candidates, closest first, same category first."""
    if request.location is None:
        return []
    r = ServiceRequest
    here = sa.select(r.location).where(r.id == request.id).scalar_subquery()
    dist = sa.func.ST_Distance(sa.cast(r.location, Geography), sa.cast(here, Geography))
    rows = session.execute(
        sa.select(
            r.id,
            r.public_id,
            r.status,
            r.requested_at,
            r.address,
            Service.name.label("service"),
            (r.service_id == request.service_id).label("same_service"),
            dist.label("meters"),
        )
        .join(Service, Service.id == r.service_id)
        .where(
            r.jurisdiction_id == request.jurisdiction_id,
            r.id != request.id,
            r.status.notin_([Status.DUPLICATE.value, Status.CANCELLED.value]),
            r.requested_at > (request.requested_at or now_utc()) - timedelta(days=days),
            sa.func.ST_DWithin(sa.cast(r.location, Geography), sa.cast(here, Geography), meters),
        )
        .order_by(sa.desc("same_service"), "meters")
        .limit(limit)
    ).all()
    return [
        {
            "id": x.id,
            "public_id": x.public_id,
            "status": x.status,
            "service": x.service,
            "address": x.address,
            "meters": round(float(x.meters)),
            "requested_at": x.requested_at.isoformat() if x.requested_at else None,
            "same_service": bool(x.same_service),
        }
        for x in rows
    ]


# --------------------------------------------------------------------------- crews

CREW_SORTS = ("priority", "due", "distance")


def parse_near(value: str | None) -> tuple[float, float] | None:
    """``"lat,lon"`` from the phone's geolocation, or None; InvalidInput if malformed."""
    if not value:
        return None
    parts = value.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        lat, lon = float(parts[0]), float(parts[1])
    except ValueError:
        raise InvalidInput("near must be 'lat,lon' in degrees", field="near") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise InvalidInput("near must be 'lat,lon' in degrees", field="near")
    return lat, lon


def crew_queue(
    session: Session,
    crew_id: int,
    *,
    sort: str = "priority",
    near: tuple[float, float] | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """The crew's open assignments. ``distance`` sorts nearest first from ``near`` (lat, lon);
    every item carries ``meters`` from ``near`` when it is given."""
    if sort not in CREW_SORTS:
        raise InvalidInput(f"sort must be one of {', '.join(CREW_SORTS)}", field="sort")
    if sort == "distance" and near is None:
        raise InvalidInput("sorting by distance needs the phone's location", field="near")
    now = now or now_utc()
    r = ServiceRequest
    stmt = _select(now).where(r.crew_id == crew_id, r.status.in_([s.value for s in OPEN_STATUSES]))
    dist = None
    if near is not None:
        here = sa.func.ST_SetSRID(sa.func.ST_MakePoint(near[1], near[0]), 4326)
        dist = sa.func.ST_Distance(sa.cast(r.location, Geography), sa.cast(here, Geography))
        stmt = stmt.add_columns(dist.label("meters"))
    rank = sa.case(PRIORITY_RANK, value=r.priority, else_=len(PRIORITY_RANK))
    if sort == "distance":
        stmt = stmt.order_by(dist.asc().nulls_last(), r.id)
    elif sort == "due":
        stmt = stmt.order_by(r.due_at.asc().nulls_last(), rank, r.id)
    else:
        stmt = stmt.order_by(rank, r.due_at.asc().nulls_last(), r.id)
    out = []
    for row in session.execute(stmt):
        item = _item(row)
        if near is not None:
            item["meters"] = None if row.meters is None else round(float(row.meters))
        out.append(item)
    return out


def crew_zones(session: Session, crew: Crew) -> list[dict[str, Any]]:
    """The crew's zone outlines (GeoJSON features): zones it owns in current layers (by
    ``zone.crew_id`` or by the ``<department code>-<zone code>`` crew code) and the zones
    its open assignments were routed by."""
    dept = session.get(Department, crew.department_id)
    prefix = f"{dept.code}-"
    zone_code = crew.code[len(prefix) :] if crew.code.startswith(prefix) else None
    owned = Zone.crew_id == crew.id
    if zone_code:
        owned = sa.or_(owned, Zone.code == zone_code)
    current = sa.select(ZoneLayer.id).where(
        ZoneLayer.jurisdiction_id == dept.jurisdiction_id, ZoneLayer.is_current.is_(True)
    )
    routed = sa.select(ServiceRequest.zone_id).where(
        ServiceRequest.crew_id == crew.id,
        ServiceRequest.status.in_([s.value for s in OPEN_STATUSES]),
        ServiceRequest.zone_id.is_not(None),
    )
    rows = session.execute(
        sa.select(
            Zone.id,
            Zone.code,
            Zone.name,
            ZoneLayer.name.label("layer"),
            sa.func.ST_AsGeoJSON(Zone.geom, 6).label("geojson"),
        )
        .join(ZoneLayer, ZoneLayer.id == Zone.layer_id)
        .where(sa.or_(sa.and_(owned, Zone.layer_id.in_(current)), Zone.id.in_(routed)))
        .order_by(ZoneLayer.name, Zone.code)
    ).all()
    return [
        {
            "type": "Feature",
            "geometry": json.loads(z.geojson),
            "properties": {"id": z.id, "code": z.code, "name": z.name, "layer": z.layer},
        }
        for z in rows
    ]


def zones_by_layer(session: Session, request_ids: list[int]) -> dict[int, dict[str, str]]:
    """request id -> {layer name: zone code} from ``request_zone`` (exports' zone columns)."""
    if not request_ids:
        return {}
    rows = session.execute(
        sa.select(RequestZone.request_id, ZoneLayer.name, Zone.code)
        .join(Zone, Zone.id == RequestZone.zone_id)
        .join(ZoneLayer, ZoneLayer.id == RequestZone.layer_id)
        .where(RequestZone.request_id.in_(request_ids))
    ).all()
    out: dict[int, dict[str, str]] = {}
    for rid, layer, code in rows:
        out.setdefault(rid, {})[layer] = code
    return out


# --------------------------------------------------------------------------- search


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def search_requests(
    session: Session, city: Jurisdiction, q: str, *, limit: int = 25
) -> list[dict[str, Any]]:
    """Requests of the city by reference, address or contact (name, e-mail, phone digits),
    exact reference first, then newest. For call-takers: a second call becomes a follow."""
    q = (q or "").strip()
    if len(q) < 2:
        raise InvalidInput("Type at least 2 characters to search", field="q")
    if len(q) > 200:
        raise InvalidInput("Keep the search to 200 characters", field="q")
    r = ServiceRequest
    pattern = _like(q)
    conds = [
        sa.func.upper(r.public_id) == q.upper(),
        r.public_id.ilike(pattern, escape="\\"),
        r.address.ilike(pattern, escape="\\"),
        r.contact_name.ilike(pattern, escape="\\"),
        r.contact_email.ilike(pattern, escape="\\"),
    ]
    digits = "".join(c for c in q if c.isdigit())
    if len(digits) >= 4:
        conds.append(sa.func.regexp_replace(r.contact_phone, "[^0-9]", "", "g").like(f"%{digits}%"))
    now = now_utc()
    exact = sa.func.upper(r.public_id) == q.upper()
    stmt = (
        _select(now)
        .add_columns(
            r.contact_name, r.contact_email, r.contact_phone, r.anonymous, exact.label("exact")
        )
        .where(r.jurisdiction_id == city.id, sa.or_(*conds))
        .order_by(exact.desc(), r.requested_at.desc(), r.id.desc())
        .limit(limit)
    )
    out = []
    for row in session.execute(stmt):
        item = _item(row)
        item.update(
            contact_name=row.contact_name,
            contact_email=row.contact_email,
            contact_phone=row.contact_phone,
            anonymous=bool(row.anonymous),
        )
        out.append(item)
    return out
