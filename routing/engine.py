"""Who is responsible for a request: zone look-up, ordered rules, a stored decision.

A jurisdiction has at most one *published* :class:`~spatial.models.RuleSet`. Its active
rules are walked in ``position`` order; the first rule that matches wins:

- category: ``service_id`` (one category), else ``service_group`` (a group), else any;
- place: ``layer_name`` + ``zone_code`` (one zone), ``layer_name`` only (any zone of the
  layer's current version), or no layer (anywhere, even without a location);
- asset: ``asset_attribute`` + ``asset_value``: only a request about an asset
  (``asset_layer_id`` + ``asset_ref``) whose attribute has that value, both compared
  without case and surrounding spaces (a light whose "Owner" is "State" goes to the
  state); a rule without them matches with or without an asset.

The request's zone in a layer is the zone of that layer's current version containing the
pin; where zones of one layer overlap, the smallest zone wins (then the lowest code, in
byte order) and the explanation says so. Every request also gets one ``request_zone`` row
per current layer, so exports and analytics know its zone in every layer.

The crew: a rule's fixed ``crew_id``, or with ``crew_from_zone`` the crew that owns the
matched zone. Crews belong to departments, so "owns" means, in this order:

1. ``Zone.crew_id`` when that crew belongs to the rule's department (one crew per zone,
   e.g. a street-crew layer drawn for one department);
2. else the rule's department's crew whose code is ``<department code>-<zone code>``
   (one district layer shared by all departments, e.g. ``BOS-WV`` for zone ``WV``);
3. else the rule's fixed ``crew_id`` (may be none: the department's queue).

No matching rule sends the request to the central dispatch queue: the category's
default department if it has one, no crew, and the reason "no rule matched".

:func:`route_request` routes one request inside the caller's transaction;
:func:`route_bulk` re-routes many in set-based SQL with the same results, and
:func:`route_staged` routes an import's staged rows the same way and inserts them once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from geoalchemy2.shape import to_shape
from sqlalchemy.orm import Session

from routing.sla import business_intervals, due_at
from spatial.db import database_key
from spatial.models import (
    OPEN_STATUSES,
    Crew,
    Department,
    Jurisdiction,
    RequestEvent,
    RuleSet,
    ServiceRequest,
    now_utc,
)
from spatial.pieces import IN_CITY_EXPR

NO_RULE = "no rule matched: sent to the central dispatch queue"
CHUNK_SIZE = 100_000
TEMP_TABLES = (
    "_route_layers, _route_zone, _route_rules, _route_anywhere, _route_rule_zone, "
    "_route_pick, _route_biz"
)
# What routing decides; never carried over from an import's staged rows.
ROUTED_COLUMNS = frozenset(
    {"id", "department_id", "crew_id", "zone_id", "rule_id", "ruleset_version",
     "routing_explanation", "routed_at", "due_at", "priority"}
)  # fmt: skip
ROUTER_LABEL = "routing"
# The internal event a bulk re-route writes for each request it moves to another
# department, crew or zone (one by one, routing writes a public "routed" event).
REROUTED = "rerouted"
BULK_LABEL = "bulk re-route"
# Closed requests keep the decision they were closed with, unless asked: a re-route
# then touches only open requests, and closed ones never routed yet.
OPEN_OR_UNROUTED = (
    "(r.status IN ("
    + ", ".join(f"'{s.value}'" for s in sorted(OPEN_STATUSES))
    + ") OR r.routed_at IS NULL)"
)

# The zone of every current layer that holds each request of ``src`` (id, location), with
# the overlap winner and the losers' labels. Points are matched against the zones' small
# pieces (``zone_piece``, see spatial/pieces.py), not the whole outlines; a point on a cut
# line falls in two pieces of one zone, hence the DISTINCT. ``_route_zone`` holds the
# current layers' zones with their geodesic areas (the overlap tie-break).
PICK_CTES = """
inside AS (
    SELECT DISTINCT src.id AS request_id, p.zone_id
    FROM src
    JOIN zone_piece p ON ST_Intersects(p.geom, src.location)
), hits AS (
    SELECT i.request_id, z.layer_id, z.id AS zone_id, z.code, z.name, z.crew_id, z.area,
           count(*) OVER (PARTITION BY i.request_id, z.layer_id) AS n
    FROM inside i
    JOIN _route_zone z ON z.id = i.zone_id
), cand AS (
    SELECT h.*,
           row_number() OVER (
               PARTITION BY h.request_id, h.layer_id
               ORDER BY CASE WHEN h.n > 1 THEN h.area END, h.code COLLATE "C"
           ) AS rn
    FROM hits h
), pick AS (
    SELECT request_id, layer_id,
           min(zone_id) FILTER (WHERE rn = 1) AS zone_id,
           min(code) FILTER (WHERE rn = 1) AS code,
           min(name) FILTER (WHERE rn = 1) AS name,
           min(crew_id) FILTER (WHERE rn = 1) AS crew_id,
           string_agg('''' || name || ''' (' || code || ')', ', ' ORDER BY rn)
               FILTER (WHERE rn > 1) AS others
    FROM cand GROUP BY request_id, layer_id
)"""

# One request: the zones of the current layers under the pin, each with its layer, and
# (only where a layer's zones overlap) the zone's geodesic area, for the tie-break.
# Small statements on purpose: one large CTE took ~7 ms to plan, more than it ran.
_ZONES_AT = """
SELECT z.layer_id, l.name AS layer_name, z.id AS zone_id, z.code, z.name, z.crew_id
FROM zone z
JOIN zone_layer l ON l.id = z.layer_id
WHERE z.id IN (
        SELECT p.zone_id FROM zone_piece p
        WHERE ST_Intersects(p.geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))
    )
  AND l.jurisdiction_id = :jid AND l.is_current
"""
ZONES_AT_SQL = sa.text(_ZONES_AT)
ZONE_AREAS_SQL = sa.text(
    "SELECT id, ST_Area(geom::geography) AS area FROM zone WHERE id IN :ids"
).bindparams(sa.bindparam("ids", expanding=True))
_META = """
SELECT rs.id AS ruleset_id, rs.version, rs.published_at,
       s.group_name, s.default_department_id, s.sla_hours, s.default_priority, s.sla_clock,
       j.timezone, j.business_calendar,
       (SELECT version FROM settings_stamp WHERE id = 1) AS stamp,
       -- The request's asset's attributes (NULL without one): by the unique key.
       (SELECT a.attributes FROM asset a
        WHERE a.layer_id = CAST(:asset_layer_id AS integer)
          AND a.ref = CAST(:asset_ref AS text)) AS asset_attrs
FROM service s
JOIN jurisdiction j ON j.id = :jid
LEFT JOIN routing_ruleset rs ON rs.id = (
    SELECT id FROM routing_ruleset
    WHERE jurisdiction_id = :jid AND status = 'published'
    ORDER BY version DESC LIMIT 1
)
WHERE s.id = :service_id
"""
META_SQL = sa.text(_META)


# All a new request's routing reads, and whether its pin is in the city, in one
# statement: the meta row (with the asset's attributes), the zones at the pin (JSON) and
# the boundary check (the CTE ``place``). ``ctes``: more CTEs after ``place``, and
# ``extra``: more columns, that the caller needs at the same time (intake.submit adds the
# duplicate search and the public id's reservation), with parameters of their own
# besides :jid, :service_id, :lon, :lat and :asset_layer_id, :asset_ref
# (:func:`asset_params`).
def asset_params(layer_id: int | None, ref: str | None) -> dict[str, Any]:
    """The parameters of :data:`META_SQL` and :func:`site_sql` naming a request's asset
    (both None: no asset, and no asset rule matches)."""
    if layer_id is None or not ref:
        return {"asset_layer_id": None, "asset_ref": None}
    return {"asset_layer_id": layer_id, "asset_ref": ref}


def site_sql(extra: str = "", ctes: str = "") -> sa.TextClause:
    more = f",{extra}" if extra else ""
    more_ctes = f", {ctes}" if ctes else ""
    return sa.text(
        f"""
WITH place AS (SELECT {IN_CITY_EXPR} AS in_city){more_ctes}
SELECT m.*, place.in_city,
       (SELECT json_agg(z) FROM ({_ZONES_AT}) AS z) AS zones{more}
FROM ({_META}) AS m, place
"""  # noqa: S608 - composed of constant SQL
    )


# The request's zone rows: the current layers' picks upserted (unchanged rows not
# rewritten), rows of any other layer dropped; one statement.
STORE_ZONES_SQL = sa.text(
    """
WITH gone AS (
    DELETE FROM request_zone
    WHERE request_id = :request_id AND layer_id <> ALL(CAST(:layers AS integer[]))
)
INSERT INTO request_zone (request_id, layer_id, zone_id)
SELECT :request_id, layer_id, zone_id
FROM unnest(CAST(:layers AS integer[]), CAST(:zones AS integer[])) AS t(layer_id, zone_id)
ON CONFLICT (request_id, layer_id) DO UPDATE SET zone_id = EXCLUDED.zone_id
WHERE request_zone.zone_id <> EXCLUDED.zone_id
"""
)


# --------------------------------------------------------------------------- decisions


@dataclass
class RoutingDecision:
    """The outcome of routing one request (also stored on the request)."""

    department_id: int | None
    crew_id: int | None
    zone_id: int | None
    rule_id: int | None
    ruleset_version: int | None
    priority: str
    sla_hours: float | None
    due_at: datetime | None
    explanation: str
    zones: dict[str, int] = field(default_factory=dict)  # layer name -> zone id
    changed: bool = False  # a re-route that changed department, crew or zone


@dataclass(frozen=True)
class _Rule:
    id: int
    position: int
    name: str
    service_id: int | None
    service_group: str | None
    layer_name: str | None
    zone_code: str | None
    department_id: int
    crew_id: int | None
    crew_from_zone: bool
    priority: str | None  # None: the category's default
    sla_hours: float | None
    asset_attribute: str | None
    asset_value: str | None


@dataclass(frozen=True)
class _Catalog:
    """A published rule set with the names it needs; immutable once published."""

    version: int
    rules: tuple[_Rule, ...]
    departments: dict[int, tuple[str, str]]  # id -> (code, name)
    crews: dict[int, tuple[int, str]]  # id -> (department id, name)
    crew_by_code: dict[tuple[int, str], int]  # (department id, code) -> id


@dataclass(frozen=True)
class _ZonePick:
    layer_id: int
    zone_id: int
    code: str
    name: str
    crew_id: int | None
    others: str | None


def explanation(
    department: str,
    crew: str | None,
    rule_position: int,
    rule_name: str,
    layer_name: str | None = None,
    zone_code: str | None = None,
    zone_name: str | None = None,
    others: str | None = None,
    asset_attribute: str | None = None,
    asset_value: str | None = None,
) -> str:
    """The one-line reason for a rule match (route_bulk builds the same line in SQL)."""
    head = department + (f" / {crew}" if crew else "")
    if layer_name is None:
        where = "any location"
    else:
        where = f"pin inside zone '{zone_name}' ({zone_code}) of layer '{layer_name}'"
        if others:
            where += f" (also inside {others}; picked the smallest)"
    why = f": asset {asset_attribute} = {asset_value}" if asset_attribute is not None else ""
    return f"{head}: {where}; rule {rule_position} '{rule_name}'{why}"


# --------------------------------------------------------------------------- rule cache

# A published rule set with the city's departments and crews, kept per process under the
# rule set's version and the settings stamp (META's ``stamp``), which every committed
# change to departments or crews raises (spatial.models.STAMPED_TABLES).
_CACHE_MAX = 64
_cache: OrderedDict[tuple[Any, ...], _Catalog] = OrderedDict()
_cache_lock = threading.Lock()


def forget_rules() -> None:
    """Drop cached rule sets (after editing a published set in place, which admins don't)."""
    with _cache_lock:
        _cache.clear()


def _load_catalog(session: Session, jid: int, ruleset_id: int, version: int) -> _Catalog:
    rules = tuple(
        _Rule(**dict(row._mapping))
        for row in session.execute(
            sa.text(
                "SELECT id, position, name, service_id, service_group, layer_name, zone_code, "
                "department_id, crew_id, crew_from_zone, priority, sla_hours, "
                "asset_attribute, asset_value "
                "FROM routing_rule WHERE ruleset_id = :rs AND active ORDER BY position, id"
            ),
            {"rs": ruleset_id},
        )
    )
    departments: dict[int, tuple[str, str]] = {}
    crews: dict[int, tuple[int, str]] = {}
    crew_by_code: dict[tuple[int, str], int] = {}
    rows = session.execute(
        sa.text(
            "SELECT d.id AS did, d.code AS dcode, d.name AS dname, "
            "c.id AS cid, c.code AS ccode, c.name AS cname "
            "FROM department d LEFT JOIN crew c ON c.department_id = d.id "
            "WHERE d.jurisdiction_id = :jid"
        ),
        {"jid": jid},
    )
    for r in rows:
        departments[r.did] = (r.dcode, r.dname)
        if r.cid is not None:
            crews[r.cid] = (r.did, r.cname)
            crew_by_code[(r.did, r.ccode)] = r.cid
    return _Catalog(version, rules, departments, crews, crew_by_code)


def _catalog(session: Session, jid: int, meta: Any) -> _Catalog | None:
    if meta.ruleset_id is None:
        return None
    key = (
        database_key(session.get_bind()),
        jid,
        meta.ruleset_id,
        meta.version,
        meta.published_at,
        meta.stamp,
    )
    with _cache_lock:
        found = _cache.get(key)
        if found is not None:
            _cache.move_to_end(key)
            return found
    catalog = _load_catalog(session, jid, meta.ruleset_id, meta.version)
    with _cache_lock:
        _cache[key] = catalog
        while len(_cache) > _CACHE_MAX:
            _cache.popitem(last=False)
    return catalog


# --------------------------------------------------------------------------- one request


def _coords(request: ServiceRequest) -> tuple[float | None, float | None]:
    if request.location is None:
        return None, None
    point = to_shape(request.location)
    return float(point.x), float(point.y)


def _crew_for(catalog: _Catalog, rule: _Rule, zone: _ZonePick | None) -> int | None:
    if rule.crew_from_zone and zone is not None:
        if zone.crew_id is not None:
            owner = catalog.crews.get(zone.crew_id)
            if owner is not None and owner[0] == rule.department_id:
                return zone.crew_id
        dept_code = catalog.departments.get(rule.department_id, ("", ""))[0]
        by_code = catalog.crew_by_code.get((rule.department_id, f"{dept_code}-{zone.code}"))
        if by_code is not None:
            return by_code
    return rule.crew_id


def asset_key(text: str | None) -> str:
    """An attribute name or value as rules compare it: no case, no surrounding spaces."""
    return (text or "").strip().lower()


def normal_attributes(attributes: dict[str, Any] | None) -> dict[str, str]:
    """An asset's attributes as rules compare them (:func:`asset_key` on both sides)."""
    return {asset_key(k): asset_key(str(v)) for k, v in (attributes or {}).items() if v is not None}


def _matches(
    rule: _Rule,
    service_id: int,
    group: str | None,
    zones: dict[str, _ZonePick],
    asset: dict[str, str] | None = None,
) -> bool:
    if rule.asset_attribute is not None:
        if asset is None or asset.get(asset_key(rule.asset_attribute)) != asset_key(
            rule.asset_value
        ):
            return False
    if rule.service_id is not None and rule.service_id != service_id:
        return False
    if rule.service_group is not None and rule.service_group != group:
        return False
    if rule.layer_name is not None:
        zone = zones.get(rule.layer_name)
        if zone is None:
            return False
        if rule.zone_code is not None and rule.zone_code != zone.code:
            return False
    return True


def _department_name(session: Session, catalog: _Catalog, department_id: int) -> str:
    if department_id in catalog.departments:
        return catalog.departments[department_id][1]
    return session.get(Department, department_id).name  # another jurisdiction's department


def _crew_name(session: Session, catalog: _Catalog, crew_id: int | None) -> str | None:
    if crew_id is None:
        return None
    if crew_id in catalog.crews:
        return catalog.crews[crew_id][1]
    crew = session.get(Crew, crew_id)  # a fixed crew of another jurisdiction's department
    return crew.name if crew else None


def _zones_at(
    session: Session, jurisdiction_id: int, lon: float | None, lat: float | None
) -> dict[str, _ZonePick]:
    """The pin's zone in each current layer: where zones of a layer overlap, the smallest
    (geodesic area), then the lowest code in byte order; the others are named."""
    if lon is None or lat is None:
        return {}
    rows = session.execute(ZONES_AT_SQL, {"lon": lon, "lat": lat, "jid": jurisdiction_id}).all()
    return _pick_zones(session, rows)


def _pick_zones(session: Session, rows) -> dict[str, _ZonePick]:
    """:func:`_zones_at` from the zone rows found at the pin."""
    by_layer: dict[int, list[Any]] = {}
    for r in rows:
        by_layer.setdefault(r.layer_id, []).append(r)
    overlapping = [r.zone_id for group in by_layer.values() if len(group) > 1 for r in group]
    areas: dict[int, float] = {}
    if overlapping:
        areas = {i: a for i, a in session.execute(ZONE_AREAS_SQL, {"ids": overlapping})}
    zones: dict[str, _ZonePick] = {}
    for group in by_layer.values():
        group.sort(key=lambda r: (areas.get(r.zone_id, 0.0), r.code.encode()))
        top = group[0]
        others = ", ".join(f"'{r.name}' ({r.code})" for r in group[1:]) or None
        zones[top.layer_name] = _ZonePick(
            top.layer_id, top.zone_id, top.code, top.name, top.crew_id, others
        )
    return zones


def _store_zones(
    session: Session, request: ServiceRequest, zones: dict[str, _ZonePick], *, first: bool
) -> None:
    """One ``request_zone`` row per current layer holding the pin, and no other."""
    if first and not zones:
        return  # a first routing has no rows to drop, and here none to add
    session.execute(
        STORE_ZONES_SQL,
        {
            "request_id": request.id,
            "layers": [z.layer_id for z in zones.values()],
            "zones": [z.zone_id for z in zones.values()],
        },
    )


def route_request(session: Session, request: ServiceRequest) -> RoutingDecision:
    """Route one request and store the decision on it, in the caller's transaction.

    Replaces the request's ``request_zone`` rows (one per current layer), sets department,
    crew, zone, rule, rule-set version, priority, SLA due time and the explanation, and
    writes a public ``routed`` event when a re-route changes department, crew or zone.

    A new request may come pending (not flushed yet): it is decided first and then
    inserted once with its decision, instead of inserted and updated (the UPDATE would
    write a new row version and an entry in each of the table's indexes).
    """
    with session.no_autoflush:
        first, zones, decision = _decide(session, request)
    session.flush()  # inserts a new request: its request_zone rows need its id
    _store_zones(session, request, zones, first=first)
    # The relationships may hold the previous routing's objects.
    session.expire(request, ["department", "crew", "zone"])
    return decision


@dataclass(frozen=True)
class Site:
    """What routing a new request at a pin reads, looked up before the request exists
    (:func:`site_sql`): whether the pin is in the city, and the routing inputs."""

    in_city: bool
    meta: Any
    zone_rows: list[Any]


def site_from_row(row, service_id: int) -> Site:
    """The :class:`Site` of a row of :func:`site_sql` (None: the service does not exist)."""
    if row is None:
        raise ValueError(f"service {service_id} does not exist")
    zone_rows = [SimpleNamespace(**z) for z in row.zones or ()]
    return Site(bool(row.in_city), row, zone_rows)


def site_without_location(
    session: Session,
    jurisdiction_id: int,
    service_id: int,
    asset_layer_id: int | None = None,
    asset_ref: str | None = None,
) -> Site:
    """The :class:`Site` of a new request that has no location (its category's location
    mode allows that): the routing inputs only, so only rules for any location match."""
    row = session.execute(
        META_SQL,
        {
            "jid": jurisdiction_id,
            "service_id": service_id,
            **asset_params(asset_layer_id, asset_ref),
        },
    ).first()
    if row is None:
        raise ValueError(f"service {service_id} does not exist")
    return Site(True, row, [])


def decide_new(
    session: Session, request: ServiceRequest, site: Site
) -> tuple[dict[str, _ZonePick], RoutingDecision]:
    """Route a new request that is not saved yet, at the pin ``site`` was looked up for:
    the decision is set on the object and nothing is written, so that the caller inserts
    it once, routed, with one ``request_zone`` row for each zone returned (by layer name;
    ``layer_id``, ``zone_id``)."""
    _first, zones, decision = _decide(session, request, site)
    return zones, decision


def _decide(
    session: Session, request: ServiceRequest, site: Site | None = None
) -> tuple[bool, dict[str, _ZonePick], RoutingDecision]:
    """Decide ``request``'s routing and set it on the object (no flush): (first routing,
    zones by layer name, decision). ``site``: its inputs, already looked up."""
    if site is not None:
        meta, zones = site.meta, _pick_zones(session, site.zone_rows)
    else:
        lon, lat = _coords(request)
        meta = session.execute(
            META_SQL,
            {
                "jid": request.jurisdiction_id,
                "service_id": request.service_id,
                **asset_params(request.asset_layer_id, request.asset_ref),
            },
        ).one_or_none()
        if meta is None:
            raise ValueError(f"service {request.service_id} of request {request.id} does not exist")
        zones = _zones_at(session, request.jurisdiction_id, lon, lat)
    catalog = _catalog(session, request.jurisdiction_id, meta)
    # A site row of a statement that does not read the asset (no asset_attrs column)
    # leaves asset rules unmatched, as a request without an asset.
    attrs = getattr(meta, "asset_attrs", None)
    asset = normal_attributes(attrs) if attrs is not None and request.asset_ref else None

    rule = None
    if catalog is not None:
        rule = next(
            (
                ru
                for ru in catalog.rules
                if _matches(ru, request.service_id, meta.group_name, zones, asset)
            ),
            None,
        )
    # Without a rule's priority, a request routed for the first time takes its
    # category's default priority; a re-routed one keeps the priority it has (a
    # dispatcher may have set it).
    first_time = request.routed_at is None
    kept = (meta.default_priority if first_time else request.priority) or "normal"
    if rule is None or catalog is None:
        department_id, crew_id, zone_id = meta.default_department_id, None, None
        priority = kept
        hours = meta.sla_hours
        text = NO_RULE
    else:
        zone = zones.get(rule.layer_name) if rule.layer_name is not None else None
        department_id = rule.department_id
        crew_id = _crew_for(catalog, rule, zone)
        zone_id = zone.zone_id if zone else None
        priority = rule.priority or kept
        hours = rule.sla_hours if rule.sla_hours is not None else meta.sla_hours
        crew_name = _crew_name(session, catalog, crew_id)
        text = explanation(
            _department_name(session, catalog, rule.department_id),
            crew_name,
            rule.position,
            rule.name,
            rule.layer_name,
            zone.code if zone else None,
            zone.name if zone else None,
            zone.others if zone else None,
            rule.asset_attribute,
            rule.asset_value,
        )

    requested = request.requested_at or now_utc()
    # A category on the 'calendar' clock counts elapsed hours even in a city with
    # business hours (a health hazard does not wait for Monday).
    calendar = meta.business_calendar if meta.sla_clock != "calendar" else None
    due = due_at(requested, hours, calendar, meta.timezone)
    old = (request.department_id, request.crew_id, request.zone_id)
    old_routed_at = request.routed_at
    changed = old_routed_at is not None and old != (department_id, crew_id, zone_id)
    if changed:
        session.add(
            RequestEvent(
                request_id=request.id,
                at=now_utc(),
                actor_label=ROUTER_LABEL,
                kind="routed",
                from_value=request.routing_explanation,
                to_value=text,
                public=True,
                department_id=department_id,
            )
        )
    request.department_id = department_id
    request.crew_id = crew_id
    request.zone_id = zone_id
    request.rule_id = rule.id if rule is not None and catalog is not None else None
    request.ruleset_version = catalog.version if catalog is not None else None
    request.routing_explanation = text
    request.routed_at = now_utc()
    request.reassigned_at = None  # routed again one by one: the rules decide once more
    request.due_at = due
    request.priority = priority
    return (
        old_routed_at is None,
        zones,
        RoutingDecision(
            department_id=department_id,
            crew_id=crew_id,
            zone_id=zone_id,
            rule_id=request.rule_id,
            ruleset_version=request.ruleset_version,
            priority=priority,
            sla_hours=hours,
            due_at=due,
            explanation=text,
            zones={name: z.zone_id for name, z in zones.items()},
            changed=changed,
        ),
    )


# --------------------------------------------------------------------------- bulk

# The zones of all the requests in scope go to a temp table first, in one statement: the
# join then walks the zone pieces and probes the requests' GiST index (each piece is
# prepared once), which is several times faster than probing the pieces point by point.
# The request_zone rows are then brought in step with it, chunk by chunk (only rows that
# change are written), and the rule pick reads it by key.
_BULK_PICK_HEAD = """
INSERT INTO _route_pick (request_id, layer_id, zone_id, code, name, crew_id, others)
WITH src AS (
    SELECT r.id, r.location FROM {table} r
    WHERE {scope} AND r.location IS NOT NULL
),"""
_BULK_PICK_TAIL = """
SELECT request_id, layer_id, zone_id, code, name, crew_id, others FROM pick
"""
BULK_PICK_SQL = _BULK_PICK_HEAD + PICK_CTES + _BULK_PICK_TAIL  # noqa: S608

# request_zone rows of the chunk that no longer hold (zone changed, layer gone, pin gone).
BULK_DELETE_SQL = """
DELETE FROM request_zone rz USING service_request r
WHERE rz.request_id = r.id AND {scope} AND r.id BETWEEN :lo AND :hi
  AND rz.request_id BETWEEN :lo AND :hi
  AND NOT EXISTS (
      SELECT 1 FROM _route_pick p
      WHERE p.request_id = rz.request_id AND p.layer_id = rz.layer_id
        AND p.zone_id = rz.zone_id
  )
"""
# ... and the ones missing (after the delete, a row that is there is right).
BULK_INSERT_SQL = """
INSERT INTO request_zone (request_id, layer_id, zone_id)
SELECT p.request_id, p.layer_id, p.zone_id FROM _route_pick p
WHERE p.request_id BETWEEN :lo AND :hi AND NOT EXISTS (
    SELECT 1 FROM request_zone rz
    WHERE rz.request_id = p.request_id AND rz.layer_id = p.layer_id
)
"""

STATS_SQL = """
SELECT count(*) AS n, min(r.id) AS lo, max(r.id) AS hi,
       min(r.requested_at) AS first, max(r.requested_at) AS last
FROM {table} r WHERE {scope}"""

DUE_PLAIN = "res.requested_at + res.hours * interval '1 hour'"

# B(t) = business seconds before t; the due time is where B reaches B(t) + hours.
DUE_CALENDAR = """(
    SELECT b.start_ts + (tgt.t - b.cum_before) * interval '1 second'
    FROM _route_biz b WHERE b.cum_before < tgt.t
    ORDER BY b.cum_before DESC LIMIT 1
)"""

CALENDAR_TARGET_JOIN = """
LEFT JOIN LATERAL (
    SELECT coalesce((
        SELECT b.cum_before
               + greatest(0, extract(epoch FROM least(res.requested_at, b.end_ts) - b.start_ts))
        FROM _route_biz b WHERE b.start_ts <= res.requested_at
        ORDER BY b.start_ts DESC LIMIT 1
    ), 0) + res.hours * 3600 AS t
) tgt ON res.hours > 0"""

# The decision for each request of the chunk, in columns ``fin`` (``{table}`` is
# service_request, or an import's staging table of the same shape).
DECIDE_CTES = """
req AS MATERIALIZED (
    SELECT r.id, r.service_id, r.requested_at, r.priority AS old_priority,
           r.department_id AS old_dept, r.crew_id AS old_crew, r.zone_id AS old_zone,
           r.routed_at AS old_routed, r.routing_explanation AS old_expl,
           s.default_department_id, s.sla_hours AS service_sla,
           s.default_priority, s.sla_clock, s.group_name,
           -- The asset's attributes as rules compare them (names and values without
           -- case or surrounding spaces); NULL for a request without an asset.
           CASE WHEN r.asset_ref IS NOT NULL THEN (
               SELECT jsonb_object_agg(lower(btrim(e.key)), lower(btrim(e.value)))
               FROM asset a, jsonb_each_text(a.attributes) e
               WHERE a.layer_id = r.asset_layer_id AND a.ref = r.asset_ref
                 AND e.value IS NOT NULL) END AS asset_attrs
    FROM {table} r
    JOIN service s ON s.id = r.service_id
    WHERE {scope} AND r.id BETWEEN :lo AND :hi
), first_rule AS (
    -- The first rule, in rule-set order, whose category and place both match: the first
    -- that matches anywhere for the category, or one that matches a zone holding the pin.
    SELECT m.id, min(m.rk) AS rk
    FROM (
        SELECT q.id, a.rk FROM req q JOIN _route_anywhere a ON a.service_id = q.service_id
        UNION ALL
        SELECT q.id, rs.rk
        FROM req q
        JOIN _route_pick p ON p.request_id = q.id AND p.request_id BETWEEN :lo AND :hi
        JOIN _route_rule_zone rs ON rs.service_id = q.service_id AND rs.layer_id = p.layer_id
             AND (rs.zone_code IS NULL OR rs.zone_code = p.code)
        UNION ALL
        -- Rules on an asset's attribute: only requests about an asset reach them.
        SELECT q.id, ru.rk
        FROM req q
        JOIN _route_rules ru ON ru.asset_key IS NOT NULL
             AND q.asset_attrs ->> ru.asset_key = ru.asset_val
             AND (ru.service_id IS NULL OR ru.service_id = q.service_id)
             AND (ru.service_group IS NULL OR ru.service_group = q.group_name)
        WHERE q.asset_attrs IS NOT NULL
          AND (ru.layer_name IS NULL OR EXISTS (
                SELECT 1 FROM _route_pick p
                WHERE p.request_id = q.id AND p.layer_id = ru.layer_id
                  AND (ru.zone_code IS NULL OR ru.zone_code = p.code)))
    ) m
    GROUP BY m.id
), dec AS (
    SELECT q.*, ru.id AS rule_id, ru.position, ru.name AS rule_name,
           ru.department_id AS rule_dept, ru.crew_id AS rule_crew, ru.crew_from_zone,
           ru.priority AS rule_priority, ru.sla_hours AS rule_sla, ru.layer_name,
           ru.asset_attribute, ru.asset_value, rz.zone_id, rz.others, rz.code AS zone_code, rz.name AS zone_name,
           rz.crew_id AS zone_crew
    FROM req q
    LEFT JOIN first_rule f ON f.id = q.id
    LEFT JOIN _route_rules ru ON ru.rk = f.rk
    LEFT JOIN _route_pick rz ON rz.request_id = q.id AND rz.layer_id = ru.layer_id
                             AND rz.request_id BETWEEN :lo AND :hi
), res AS (
    SELECT dec.*,
           CASE WHEN dec.rule_id IS NULL THEN dec.default_department_id
                ELSE dec.rule_dept END AS new_dept,
           CASE WHEN dec.rule_id IS NULL THEN NULL
                WHEN dec.crew_from_zone THEN coalesce(zc.id, nc.id, dec.rule_crew)
                ELSE dec.rule_crew END AS new_crew,
           CASE WHEN dec.rule_id IS NULL THEN dec.service_sla
                ELSE coalesce(dec.rule_sla, dec.service_sla) END AS hours,
           rd.name AS dept_name
    FROM dec
    LEFT JOIN department rd ON rd.id = dec.rule_dept
    LEFT JOIN crew zc ON dec.crew_from_zone AND zc.id = dec.zone_crew
                      AND zc.department_id = dec.rule_dept
    LEFT JOIN crew nc ON dec.crew_from_zone AND nc.department_id = dec.rule_dept
                      AND nc.code = rd.code || '-' || dec.zone_code
), fin AS (
    SELECT res.id, res.new_dept, res.new_crew, res.zone_id AS new_zone, res.rule_id,
           -- No rule, or a rule without a priority: first routing takes the category's
           -- default, a re-route keeps the request's.
           coalesce(res.rule_priority,
                    CASE WHEN res.old_routed IS NULL THEN res.default_priority
                         ELSE res.old_priority END) AS new_priority,
           CASE WHEN res.hours IS NULL THEN NULL
                WHEN res.hours <= 0 THEN res.requested_at
                ELSE {due} END AS new_due,
           CASE WHEN res.rule_id IS NULL THEN :no_rule
                ELSE res.dept_name || coalesce(' / ' || c.name, '') || ': '
                     || CASE WHEN res.layer_name IS NULL THEN 'any location'
                             ELSE 'pin inside zone ''' || res.zone_name || ''' ('
                                  || res.zone_code || ') of layer ''' || res.layer_name || ''''
                                  || coalesce(' (also inside ' || res.others
                                              || '; picked the smallest)', '')
                        END
                     || '; rule ' || res.position || ' ''' || res.rule_name || ''''
                     || coalesce(': asset ' || res.asset_attribute || ' = ' || res.asset_value,
                                 '')
           END AS expl,
           res.old_dept, res.old_crew, res.old_zone, res.old_routed, res.old_expl
    FROM res
    LEFT JOIN crew c ON c.id = res.new_crew
    {calendar_join}
)"""

BULK_UPDATE_SQL = (
    "WITH"  # noqa: S608
    + DECIDE_CTES
    + """, upd AS (
    UPDATE service_request t
    SET department_id = fin.new_dept, crew_id = fin.new_crew, zone_id = fin.new_zone,
        rule_id = fin.rule_id, ruleset_version = CAST(:version AS integer),
        routing_explanation = fin.expl, routed_at = now(), due_at = fin.new_due,
        priority = fin.new_priority,
        -- Moved to another crew (not routed for the first time): the crew's new work.
        crew_assigned_at = CASE WHEN t.routed_at IS NOT NULL AND fin.new_crew IS NOT NULL
                                     AND fin.new_crew IS DISTINCT FROM t.crew_id
                                THEN now() ELSE t.crew_assigned_at END,
        crew_acknowledged_at = CASE WHEN t.routed_at IS NOT NULL AND fin.new_crew IS NOT NULL
                                         AND fin.new_crew IS DISTINCT FROM t.crew_id
                                    THEN NULL ELSE t.crew_acknowledged_at END
    FROM fin
    WHERE t.id = fin.id AND t.id BETWEEN :lo AND :hi
      -- A dispatcher's reassignment stands until the request is routed one by one again
      -- (pin moved, re-categorised); its zones in every layer are still brought up to date.
      AND t.reassigned_at IS NULL
      -- Unchanged decisions are not rewritten: re-routing after a small rule change
      -- writes only the requests it moves.
      AND (t.department_id, t.crew_id, t.zone_id, t.rule_id, t.ruleset_version,
           t.routing_explanation, t.due_at, t.priority, t.routed_at IS NULL)
          IS DISTINCT FROM
          (fin.new_dept, fin.new_crew, fin.new_zone, fin.rule_id, CAST(:version AS integer),
           fin.expl, fin.new_due, fin.new_priority, false)
    RETURNING fin.*
), ev AS (
    INSERT INTO request_event
        (request_id, at, actor_label, kind, from_value, to_value, public, department_id)
    SELECT id, now(), :actor, :event_kind, old_expl, expl, false, new_dept FROM upd
    WHERE old_routed IS NOT NULL
      -- Moved: another department, crew or zone. A zone is compared by layer name and
      -- code, so that a new version of a layer does not "move" every request in it.
      AND ((old_dept, old_crew) IS DISTINCT FROM (new_dept, new_crew)
           OR (SELECT (l.name, z.code) FROM zone z JOIN zone_layer l ON l.id = z.layer_id
               WHERE z.id = old_zone)
              IS DISTINCT FROM
              (SELECT (l.name, z.code) FROM zone z JOIN zone_layer l ON l.id = z.layer_id
               WHERE z.id = new_zone))
    RETURNING 1
)
SELECT (SELECT count(*) FROM fin) AS routed, (SELECT count(*) FROM ev) AS moved,
       (SELECT json_object_agg(c.new_crew, c.n) FROM (
            SELECT new_crew, count(*) AS n FROM upd
            WHERE old_routed IS NOT NULL AND new_crew IS NOT NULL
              AND new_crew IS DISTINCT FROM old_crew
            GROUP BY new_crew) c) AS crews
"""
)

# Staged rows (an import) go into service_request once, with their decision; a due time
# the city's own records gave (staged due_at) stands before the SLA's.
STAGED_INSERT_SQL = (
    "WITH"  # noqa: S608
    + DECIDE_CTES
    + """, ins AS (
    INSERT INTO service_request ({columns}, department_id, crew_id, zone_id, rule_id,
        ruleset_version, routing_explanation, routed_at, due_at, priority)
    SELECT {r_columns}, fin.new_dept, fin.new_crew, fin.new_zone, fin.rule_id,
           CAST(:version AS integer), fin.expl, now(), coalesce(r.due_at, fin.new_due),
           fin.new_priority
    FROM {table} r JOIN fin ON fin.id = r.id
    RETURNING 1
)
SELECT count(*) AS routed FROM ins
"""
)


def _start_of(since: date | datetime, tz: str) -> datetime:
    if isinstance(since, datetime):
        return since if since.tzinfo else since.replace(tzinfo=ZoneInfo(tz))
    return datetime.combine(since, time(0), tzinfo=ZoneInfo(tz))


def _fill_business_table(
    session: Session, city: Jurisdiction, first: datetime, last: datetime, max_hours: float
) -> None:
    """Business intervals from ``first``'s local day until ``max_hours`` past ``last``."""
    rows: list[dict[str, Any]] = []
    cum = 0.0
    after_last = 0.0
    tz = ZoneInfo(city.timezone)
    for begin, end in business_intervals(
        city.business_calendar, city.timezone, first.astimezone(tz).date()
    ):
        span = (end - begin).total_seconds()
        rows.append({"s": begin, "e": end, "c": cum})
        cum += span
        if end > last:
            after_last += span
            if after_last > max_hours * 3600 + 86400:
                break
    if rows:
        session.execute(
            sa.text("INSERT INTO _route_biz (start_ts, end_ts, cum_before) VALUES (:s, :e, :c)"),
            rows,
        )
    session.execute(sa.text("ANALYZE _route_biz"))


def published(session: Session, city: Jurisdiction) -> RuleSet | None:
    """The city's published rule set (the newest version), if any."""
    return session.scalar(
        sa.select(RuleSet)
        .where(RuleSet.jurisdiction_id == city.id, RuleSet.status == "published")
        .order_by(RuleSet.version.desc())
        .limit(1)
    )


# Each active rule with the categories it accepts (one, a group, or all of the city's).
RULE_SERVICES = (
    "FROM _route_rules ru JOIN service s ON s.jurisdiction_id = :jid "
    "AND (ru.service_id IS NULL OR ru.service_id = s.id) "
    "AND (ru.service_group IS NULL OR ru.service_group = s.group_name) "
)


def _setup(session: Session, city: Jurisdiction, stats: Any) -> tuple[Any, str, str]:
    """The temp tables every chunk reads; returns (published rule set, due SQL, calendar
    join)."""
    ruleset = published(session, city)
    for ddl in (
        # One sort of every request's zones: let it stay in memory.
        "SET LOCAL work_mem = '256MB'",
        f"DROP TABLE IF EXISTS {TEMP_TABLES}",
        "CREATE TEMP TABLE _route_layers ON COMMIT DROP AS "
        "SELECT id, name FROM zone_layer WHERE jurisdiction_id = :jid AND is_current",
        "CREATE TEMP TABLE _route_zone ON COMMIT DROP AS "
        "SELECT z.id, z.layer_id, z.code, z.name, z.crew_id, "
        "ST_Area(z.geom::geography) AS area FROM zone z "
        "JOIN _route_layers l ON l.id = z.layer_id",
        "ALTER TABLE _route_zone ADD PRIMARY KEY (id)",
        # rk: the rule's rank in the rule set's order; asset_key/asset_val: an asset
        # rule's attribute and value as the requests' asset_attrs hold them.
        "CREATE TEMP TABLE _route_rules ON COMMIT DROP AS "
        "SELECT ru.*, l.id AS layer_id, "
        "row_number() OVER (ORDER BY ru.position, ru.id) AS rk, "
        "lower(btrim(ru.asset_attribute)) AS asset_key, "
        "lower(btrim(ru.asset_value)) AS asset_val FROM routing_rule ru "
        "LEFT JOIN _route_layers l ON l.name = ru.layer_name "
        "WHERE ru.ruleset_id = :rs AND ru.active",
        # Per category: the first rule that applies anywhere ...
        "CREATE TEMP TABLE _route_anywhere ON COMMIT DROP AS "
        "SELECT s.id AS service_id, min(ru.rk) AS rk "
        + RULE_SERVICES
        + "WHERE ru.layer_name IS NULL AND ru.asset_key IS NULL GROUP BY s.id",
        # ... and the rules tied to a current layer (one zone, or any zone of it).
        "CREATE TEMP TABLE _route_rule_zone ON COMMIT DROP AS "
        "SELECT s.id AS service_id, ru.layer_id, ru.zone_code, min(ru.rk) AS rk "
        + RULE_SERVICES
        + "WHERE ru.layer_id IS NOT NULL AND ru.asset_key IS NULL GROUP BY 1, 2, 3",
        "CREATE TEMP TABLE _route_pick (request_id bigint, layer_id integer, zone_id integer, "
        "code text, name text, crew_id integer, others text, "
        "PRIMARY KEY (request_id, layer_id)) ON COMMIT DROP",
        "CREATE TEMP TABLE _route_biz (start_ts timestamptz PRIMARY KEY, "
        "end_ts timestamptz NOT NULL, cum_before float8 NOT NULL) ON COMMIT DROP",
        "CREATE INDEX ON _route_biz (cum_before)",
        "ANALYZE _route_layers",
        "ANALYZE _route_zone",
        "ANALYZE _route_rules",
        "ANALYZE _route_anywhere",
        "ANALYZE _route_rule_zone",
    ):
        session.execute(sa.text(ddl), {"jid": city.id, "rs": ruleset.id if ruleset else None})
    if city.business_calendar is None:
        return ruleset, DUE_PLAIN, ""
    max_hours = session.execute(
        sa.text(
            "SELECT greatest((SELECT max(sla_hours) FROM service WHERE jurisdiction_id = :jid),"
            " (SELECT max(sla_hours) FROM _route_rules))"
        ),
        {"jid": city.id},
    ).scalar()
    _fill_business_table(session, city, stats.first, stats.last, float(max_hours or 0))
    # Categories on the 'calendar' clock count elapsed hours even here.
    due = f"CASE WHEN res.sla_clock = 'calendar' THEN {DUE_PLAIN} ELSE {DUE_CALENDAR} END"
    return ruleset, due, CALENDAR_TARGET_JOIN


def _route_chunks(
    session: Session,
    city: Jurisdiction,
    scope: str,
    params: dict[str, Any],
    progress: Callable[[int, int], None] | None,
    staged: tuple[str, tuple[str, ...]] | None = None,
    actor: str = BULK_LABEL,
) -> Rerouted:
    """Route the requests of ``scope`` chunk by chunk: in service_request (UPDATE of the
    decisions that change, with a :data:`REROUTED` event by ``actor`` for each request
    moved), or ``staged = (table, columns)``: rows of a staging table of service_request's
    shape, INSERTed into service_request with their decision."""
    session.flush()  # raw SQL below does not autoflush
    table = staged[0] if staged else "service_request"
    stats = session.execute(sa.text(STATS_SQL.format(table=table, scope=scope)), params).one()
    total = int(stats.n)
    if total == 0:
        if progress:
            progress(0, 0)
        return Rerouted(0, 0)
    ruleset, due_sql, calendar_join = _setup(session, city, stats)
    parts = {"table": table, "scope": scope, "due": due_sql, "calendar_join": calendar_join}
    pick_sql = sa.text(BULK_PICK_SQL.format(**parts))
    delete_sql = sa.text(BULK_DELETE_SQL.format(**parts))
    insert_sql = sa.text(BULK_INSERT_SQL)
    if staged:
        carried = [c for c in staged[1] if c not in ROUTED_COLUMNS]
        apply_sql = sa.text(
            STAGED_INSERT_SQL.format(
                **parts,
                columns=", ".join(["id", *carried]),
                r_columns=", ".join(f"r.{c}" for c in ["id", *carried]),
            )
        )
    else:
        apply_sql = sa.text(BULK_UPDATE_SQL.format(**parts))
    session.execute(pick_sql, params)
    session.execute(sa.text("ANALYZE _route_pick"))
    done = moved = 0
    crews: dict[int, int] = {}
    lo = int(stats.lo)
    while lo <= int(stats.hi):
        hi = lo + CHUNK_SIZE - 1
        chunk = {**params, "lo": lo, "hi": hi}
        if not staged:
            session.execute(delete_sql, chunk)
            session.execute(insert_sql, chunk)
        counts = session.execute(
            apply_sql,
            {
                **chunk,
                "version": ruleset.version if ruleset else None,
                "no_rule": NO_RULE,
                "actor": actor,
                "event_kind": REROUTED,
            },
        ).one()
        if staged:  # the requests exist now: their zones can refer to them
            session.execute(insert_sql, chunk)
        done += int(counts.routed)
        moved += int(counts._mapping.get("moved", 0))
        for crew_id, n in (counts._mapping.get("crews") or {}).items():
            crews[int(crew_id)] = crews.get(int(crew_id), 0) + int(n)
        if progress:
            progress(done, total)
        lo = hi + 1
    session.execute(sa.text(f"DROP TABLE IF EXISTS {TEMP_TABLES}"))
    return Rerouted(done, moved, crews)


@dataclass(frozen=True)
class Rerouted:
    """What a bulk re-route did: requests routed, and how many of them moved to another
    department, crew or zone (one :data:`REROUTED` event each); ``crews``: how many
    moved to each crew (crew id -> count), the crews' new work."""

    routed: int
    moved: int
    crews: dict[int, int] = field(default_factory=dict)


def route_bulk(
    session: Session,
    city: Jurisdiction,
    since: date | datetime | None = None,
    only_unrouted: bool = False,
    progress: Callable[[int, int], None] | None = None,
    include_closed: bool = False,
    by: str | None = None,
) -> int:
    """:func:`reroute`, returning the number of requests routed."""
    return reroute(session, city, since, only_unrouted, progress, include_closed, by).routed


def reroute(
    session: Session,
    city: Jurisdiction,
    since: date | datetime | None = None,
    only_unrouted: bool = False,
    progress: Callable[[int, int], None] | None = None,
    include_closed: bool = False,
    by: str | None = None,
    ids: tuple[int, int] | None = None,
) -> Rerouted:
    """Re-route the city's requests (those made ``since``, or not yet routed) in SQL.

    Works in id-range chunks of :data:`CHUNK_SIZE`, calling ``progress(done, total)``
    after each; the result per request equals :func:`route_request`'s, except that a
    request whose decision did not change keeps its ``routed_at`` and is not rewritten,
    and a request a dispatcher reassigned by hand keeps that assignment (its zones in
    every layer are still brought up to date). Closed requests already routed are left
    as they are unless ``include_closed``. Each request moved to another department,
    crew or zone gets an internal :data:`REROUTED` event, written by the same statement,
    whose actor is "bulk re-route by ``by``". ``ids``: only requests whose id lies in
    this closed range (a re-route job's chunk). Runs in the caller's transaction.
    """
    scope = "r.jurisdiction_id = :jid"
    params: dict[str, Any] = {"jid": city.id}
    if not include_closed:
        scope += " AND " + OPEN_OR_UNROUTED
    if since is not None:
        scope += " AND r.requested_at >= :since"
        params["since"] = _start_of(since, city.timezone)
    if only_unrouted:
        scope += " AND r.routed_at IS NULL"
    if ids is not None:
        scope += " AND r.id BETWEEN :first_id AND :last_id"
        params["first_id"], params["last_id"] = ids
    actor = f"{BULK_LABEL} by {by}" if by else BULK_LABEL
    result = _route_chunks(session, city, scope, params, progress, actor=actor)
    # ORM objects loaded before hold the previous routing.
    session.expire_all()
    return result


def route_staged(
    session: Session,
    city: Jurisdiction,
    table: str,
    columns: tuple[str, ...],
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Route the new requests waiting in ``table`` (a temp table made ``LIKE
    service_request INCLUDING DEFAULTS``, so each row has its id) and insert them into
    service_request with their decisions and ``request_zone`` rows: each row is written
    once, routed, as :func:`route_bulk` would route it. ``columns`` are the staged columns
    to carry over. Runs in the caller's transaction; returns the number inserted."""
    if not table.isidentifier() or not all(c.isidentifier() for c in columns):
        raise ValueError("table and column names must be plain identifiers")
    scope = "r.jurisdiction_id = :jid"
    return _route_chunks(session, city, scope, {"jid": city.id}, progress, (table, columns)).routed
