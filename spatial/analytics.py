"""Planner analytics: SQL aggregations of a city's requests by hexagon, zone, department, crew.

Every view starts from the same filtered set of requests (:class:`Filters`: dates, category
or group, department, channel, status) and computes its numbers in PostGIS:

- *time to close*: ``closed_at - requested_at`` in hours, for requests in a closing status
  whose close time is not before their request time; median and p90 are
  ``percentile_cont`` (linear interpolation);
- *SLA compliance*: of the requests with a due time that are closed (with a close time) or
  still open past their due time, the share closed by the due time
  (``closed_at <= due_at``); open requests not yet due are not counted either way;
- *open backlog*: requests in an open status (new, acknowledged, in progress); *overdue*:
  those past their due time;
- *satisfaction*: the mean survey rating (1-5);
- *per 1,000 residents*: requests / ``Zone.population`` x 1,000 where a zone has one.

Place-based views (heatmap, hexagon grid, zones, hotspots, gaps) leave out the requests that
sit on a *flagged point*: one exact coordinate pair shared by many requests with different
addresses, which is a geocoder's default point and not a place where things happen
(:func:`flagged_points`). Hexagons are PostGIS's ``ST_HexagonGrid`` cells in the city's metric
SRID; a request's cell is computed arithmetically (the nearest cell centre), which is the
cell that contains it.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import sqlalchemy as sa
from scipy import stats
from sqlalchemy.orm import Session

from spatial.errors import InvalidInput
from spatial.models import CHANNELS, CLOSED_STATUSES, OPEN_STATUSES, Jurisdiction, Status

HEX_SIZES = (250, 500, 1000, 2000)  # hexagon edge length (= circumradius) in metres
DEFAULT_HEX = 500
HEAT_CELLS = (50, 100, 200, 500)
DEFAULT_HEAT_CELL = 100
FLAG_MIN_REQUESTS = 20  # requests on one exact point ...
FLAG_MIN_ADDRESSES = 3  # ... with at least this many different addresses (or none at all)
GAP_MIN_REQUESTS = 10  # fewer requests in an area than this: no test
GAP_ALPHA = 0.05  # Benjamini-Hochberg false discovery rate for a gap
MAX_DAYS = 3700
SQRT3 = math.sqrt(3.0)

OPEN = sorted(s.value for s in OPEN_STATUSES)
CLOSED = sorted(s.value for s in CLOSED_STATUSES)
STATUS_CHOICES = ("open", "closed", *sorted(s.value for s in Status))

METRIC_LABELS = {
    "requests": "Requests",
    "median_hours": "Median time to close (h)",
    "p90_hours": "90th percentile time to close (h)",
    "sla_pct": "SLA compliance (%)",
    "backlog": "Open backlog",
    "overdue": "Overdue",
    "satisfaction": "Mean satisfaction (1-5)",
    "per_1000": "Requests per 1,000 residents",
}
# Higher is worse for these metrics; the colour ramps run the other way for the rest.
LOWER_IS_BETTER = {"requests", "median_hours", "p90_hours", "backlog", "overdue", "per_1000"}

GAP_METHOD = (
    "Each area is compared with the city for the same category mix (indirect "
    "standardisation). SLA: expected on-time closures = sum over categories of the city's "
    "on-time rate for the category x the area's counted requests of that category; the "
    "observed count is tested against it with a one-sided z-test (normal approximation of "
    "the Poisson-binomial: variance = sum of n x p x (1 - p)). Time to close: expected "
    "number of the area's closures slower than their category's city-wide median = sum over "
    "categories of the city's share of closures slower than that median x the area's closures "
    "of the category, tested the same way (a stratified sign test of the median). Areas with "
    f"fewer than {GAP_MIN_REQUESTS} counted requests are not tested. p-values are corrected "
    "for the number of areas tested with the Benjamini-Hochberg procedure; an area is a gap "
    f"when its q-value is below {GAP_ALPHA:g}. The city here is all filtered requests that "
    "lie in one of the areas shown."
)


# --------------------------------------------------------------------------- filters


@dataclass(frozen=True)
class Filters:
    """Which requests a view counts. Dates are the city's local days, both inclusive."""

    start: date | None = None
    end: date | None = None
    category: str | None = None  # a service code
    group: str | None = None  # a service group name
    department: str | None = None  # a department code
    channel: str | None = None
    status: str | None = None  # 'open', 'closed' or one status
    include_flagged: bool = False

    def query_args(self) -> dict[str, str]:
        """The filters as URL query arguments (only those that are set)."""
        out = {}
        for key, value in asdict(self).items():
            if value in (None, False, ""):
                continue
            out[key] = "1" if value is True else str(value)
        return out

    def previous(self) -> Filters:
        """The same filters over the window of equal length that ends the day before."""
        if self.start is None or self.end is None:
            raise InvalidInput("a period comparison needs both a start and an end date")
        days = (self.end - self.start).days + 1
        return replace(
            self,
            start=self.start - timedelta(days=days),
            end=self.start - timedelta(days=1),
        )


def _date(value: str | None, name: str) -> date | None:
    if value is None or not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(f"{name} {value!r} is not a date YYYY-MM-DD", field=name) from None


def _code(value: str | None, name: str) -> str | None:
    if value is None or not value.strip():
        return None
    value = value.strip()
    if len(value) > 100 or any(ord(ch) < 32 for ch in value):
        raise InvalidInput(f"{name} is not a valid value", field=name)
    return value


def parse_filters(args: Mapping[str, str]) -> Filters:
    """Filters from query arguments (``start``, ``end``, ``category``, ``group``,
    ``department``, ``channel``, ``status``, ``include_flagged``); one-line errors."""
    start, end = _date(args.get("start"), "start"), _date(args.get("end"), "end")
    if start and end and end < start:
        raise InvalidInput("the end date is before the start date", field="end")
    if start and end and (end - start).days > MAX_DAYS:
        raise InvalidInput(f"the date range is longer than {MAX_DAYS} days", field="end")
    channel = _code(args.get("channel"), "channel")
    if channel is not None and channel not in CHANNELS:
        raise InvalidInput(
            f"channel {channel!r} is not one of {', '.join(CHANNELS)}", field="channel"
        )
    status = _code(args.get("status"), "status")
    if status is not None and status not in STATUS_CHOICES:
        raise InvalidInput(
            f"status {status!r} is not one of {', '.join(STATUS_CHOICES)}", field="status"
        )
    return Filters(
        start=start,
        end=end,
        category=_code(args.get("category"), "category"),
        group=_code(args.get("group"), "group"),
        department=_code(args.get("department"), "department"),
        channel=channel,
        status=status,
        include_flagged=str(args.get("include_flagged", "")).lower() in ("1", "true", "on", "yes"),
    )


def check_filters(session: Session, city: Jurisdiction, f: Filters) -> None:
    """Raise :class:`InvalidInput` when a category, group or department is not the city's."""
    checks = (
        ("category", f.category, "SELECT 1 FROM service WHERE jurisdiction_id = :j AND code = :v"),
        ("group", f.group, "SELECT 1 FROM service WHERE jurisdiction_id = :j AND group_name = :v"),
        (
            "department",
            f.department,
            "SELECT 1 FROM department WHERE jurisdiction_id = :j AND code = :v",
        ),
    )
    for name, value, sql in checks:
        if (
            value is not None
            and session.execute(sa.text(sql), {"j": city.id, "v": value}).first() is None
        ):
            raise InvalidInput(f"{city.name} has no {name} {value!r}", field=name)


def local_midnight(day: date, tz: str) -> datetime:
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(tz))


@dataclass
class Scope:
    """The SQL ``WHERE`` of a filtered request set (alias ``r`` for the request, ``s`` for
    its service) with its bound values."""

    where: str
    params: dict[str, Any] = field(default_factory=dict)


def scope(city: Jurisdiction, f: Filters, *, dates_only: bool = False) -> Scope:
    """The filter as SQL; ``dates_only`` keeps just the city and the date window."""
    clauses = ["r.jurisdiction_id = :jid"]
    params: dict[str, Any] = {"jid": city.id, "open_statuses": OPEN}
    if f.start is not None:
        clauses.append("r.requested_at >= :start_ts")
        params["start_ts"] = local_midnight(f.start, city.timezone)
    if f.end is not None:
        clauses.append("r.requested_at < :end_ts")
        params["end_ts"] = local_midnight(f.end + timedelta(days=1), city.timezone)
    if not dates_only:
        if f.category is not None:
            clauses.append("s.code = :category")
            params["category"] = f.category
        if f.group is not None:
            clauses.append("s.group_name = :group_name")
            params["group_name"] = f.group
        if f.department is not None:
            clauses.append(
                "r.department_id = (SELECT d.id FROM department d "
                "WHERE d.jurisdiction_id = :jid AND d.code = :department)"
            )
            params["department"] = f.department
        if f.channel is not None:
            clauses.append("r.channel = :channel")
            params["channel"] = f.channel
        if f.status == "open":
            clauses.append("r.status = ANY(:open_statuses)")
        elif f.status == "closed":
            clauses.append("r.status <> ALL(:open_statuses)")
        elif f.status is not None:
            clauses.append("r.status = :status")
            params["status"] = f.status
    return Scope(" AND ".join(clauses), params)


# --------------------------------------------------------------------------- flags


@dataclass(frozen=True)
class FlaggedPoint:
    """One exact point shared by many requests with different addresses."""

    lon: float
    lat: float
    requests: int
    addresses: int
    example_address: str | None


FLAG_SQL = """
WITH cand AS MATERIALIZED (
    SELECT ST_X(r.location) AS x, ST_Y(r.location) AS y
    FROM service_request r
    WHERE {where} AND r.location IS NOT NULL
    GROUP BY 1, 2
    HAVING count(*) >= :flag_n
)
SELECT c.x, c.y, agg.n, agg.addresses, agg.example
FROM cand c
CROSS JOIN LATERAL (
    SELECT count(*) AS n, count(DISTINCT r.address) AS addresses,
           count(r.address) AS with_address, min(r.address) AS example
    FROM service_request r
    WHERE r.location && ST_SetSRID(ST_MakePoint(c.x, c.y), 4326)
      AND ST_X(r.location) = c.x AND ST_Y(r.location) = c.y AND {where}
) agg
WHERE agg.addresses >= :flag_addresses OR agg.with_address = 0
ORDER BY agg.n DESC, c.x, c.y
"""


def flagged_points(
    session: Session,
    city: Jurisdiction,
    f: Filters,
    min_requests: int = FLAG_MIN_REQUESTS,
    min_addresses: int = FLAG_MIN_ADDRESSES,
) -> list[FlaggedPoint]:
    """Exact points holding at least ``min_requests`` requests of the date window (any
    category) with ``min_addresses`` different addresses, or with no address at all.

    Many reports of one encampment at one address are a real place; the same point for
    many different addresses is where a geocoder puts what it could not find.
    """
    sc = scope(city, f, dates_only=True)
    rows = session.execute(
        sa.text(FLAG_SQL.format(where=sc.where)),
        {**sc.params, "flag_n": min_requests, "flag_addresses": min_addresses},
    ).all()
    return [
        FlaggedPoint(float(r.x), float(r.y), int(r.n), int(r.addresses), r.example) for r in rows
    ]


def base_cte(city: Jurisdiction, f: Filters, flagged: list[FlaggedPoint] | None) -> Scope:
    """``base``: the filtered requests with the per-request measures every view uses."""
    sc = scope(city, f)
    where = sc.where
    params = dict(sc.params)
    if flagged:
        where += (
            " AND NOT (r.location IS NOT NULL AND (ST_X(r.location), ST_Y(r.location)) IN "
            "(SELECT fx, fy FROM unnest(CAST(:flag_x AS float8[]), CAST(:flag_y AS float8[])) "
            "AS fl(fx, fy)))"
        )
        params["flag_x"] = [p.lon for p in flagged]
        params["flag_y"] = [p.lat for p in flagged]
    cte = f"""
base AS (
    SELECT b0.*,
           CASE WHEN NOT b0.is_open AND b0.closed_at >= b0.requested_at
                THEN extract(epoch FROM b0.closed_at - b0.requested_at) / 3600.0 END AS ttc,
           CASE WHEN b0.first_response_at >= b0.requested_at
                THEN extract(epoch FROM b0.first_response_at - b0.requested_at) / 3600.0
           END AS tfr,
           (b0.due_at IS NOT NULL AND ((NOT b0.is_open AND b0.closed_at IS NOT NULL)
                                       OR (b0.is_open AND b0.due_at < :now))) AS sla_counted,
           (b0.due_at IS NOT NULL AND NOT b0.is_open AND b0.closed_at IS NOT NULL
            AND b0.closed_at <= b0.due_at) AS sla_met
    FROM (
        SELECT r.id, r.service_id, r.location, r.address, r.status, r.channel,
               r.department_id, r.crew_id, r.requested_at, r.closed_at, r.due_at,
               r.first_response_at, r.status = ANY(:open_statuses) AS is_open
        FROM service_request r
        JOIN service s ON s.id = r.service_id
        WHERE {where}
    ) b0
)"""  # noqa: S608
    return Scope(cte, params)


METRICS_SQL = """
    count(*) AS requests,
    count(b.ttc) AS closed,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY b.ttc) AS median_hours,
    percentile_cont(0.9) WITHIN GROUP (ORDER BY b.ttc) AS p90_hours,
    count(*) FILTER (WHERE b.sla_counted) AS sla_n,
    count(*) FILTER (WHERE b.sla_met) AS sla_met,
    count(*) FILTER (WHERE b.is_open) AS backlog,
    count(*) FILTER (WHERE b.is_open AND b.due_at < :now) AS overdue,
    avg(sv.rating)::float8 AS satisfaction,
    count(sv.rating) AS ratings"""

METRIC_COLUMNS = (
    "requests",
    "closed",
    "median_hours",
    "p90_hours",
    "sla_n",
    "sla_met",
    "sla_pct",
    "backlog",
    "overdue",
    "satisfaction",
    "ratings",
)


def _finish_metrics(df: pd.DataFrame) -> pd.DataFrame:
    for col in ("requests", "closed", "sla_n", "sla_met", "backlog", "overdue", "ratings"):
        df[col] = df[col].fillna(0).astype("int64")
    for col in ("median_hours", "p90_hours", "satisfaction"):
        df[col] = df[col].astype("float64")
    df["sla_pct"] = np.where(
        df["sla_n"] > 0, 100.0 * df["sla_met"] / df["sla_n"].where(df["sla_n"] > 0), np.nan
    )
    return df


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


# --------------------------------------------------------------------------- hex grid


def hex_cell_sql(
    size_param: str = "CAST(:hex_size AS float8)", height_param: str = "CAST(:hex_h AS float8)"
) -> str:
    """SQL (over a relation ``located`` with metric ``x``, ``y``) adding the cell ``ci``,
    ``cj`` of ``ST_HexagonGrid(size)`` holding each point: the nearest of the two candidate
    cell centres (flat-topped hexagons; odd columns sit half a cell higher). Plain float8
    arithmetic throughout (a numeric literal would turn it into slow numeric maths)."""
    s, h = size_param, height_param
    return f"""
    SELECT e.*,
           CASE WHEN e.dx0 * e.dx0 + e.dy0 * e.dy0 <= e.dx1 * e.dx1 + e.dy1 * e.dy1
                THEN e.c0 ELSE e.c0 + 1 END AS ci,
           CASE WHEN e.dx0 * e.dx0 + e.dy0 * e.dy0 <= e.dx1 * e.dx1 + e.dy1 * e.dy1
                THEN e.r0 ELSE e.r1 END AS cj
    FROM (
        SELECT m.*,
               m.x - {s} * 1.5::float8 * m.c0 AS dx0,
               m.y - {h} * (m.r0 + m.p0 * 0.5::float8) AS dy0,
               m.x - {s} * 1.5::float8 * (m.c0 + 1) AS dx1,
               m.y - {h} * (m.r1 + (1 - m.p0) * 0.5::float8) AS dy1
        FROM (
            SELECT p.*,
                   round(p.y / {h} - p.p0 * 0.5::float8)::int AS r0,
                   round(p.y / {h} - (1 - p.p0) * 0.5::float8)::int AS r1
            FROM (
                SELECT c.*, (c.c0 & 1)::float8 AS p0
                FROM (SELECT l.*, floor(l.x / ({s} * 1.5::float8))::int AS c0 FROM located l) c
            ) p
        ) m
    ) e"""  # noqa: S608


def hex_cells_numpy(x: np.ndarray, y: np.ndarray, size: float) -> tuple[np.ndarray, np.ndarray]:
    """The ``ST_HexagonGrid(size)`` cell (i, j) of metric points; same rule as the SQL."""
    h = size * SQRT3
    c0 = np.floor(x / (1.5 * size)).astype(np.int64)
    c1 = c0 + 1
    r0 = np.round(y / h - 0.5 * (c0 & 1)).astype(np.int64)
    r1 = np.round(y / h - 0.5 * (c1 & 1)).astype(np.int64)
    d0 = (x - 1.5 * size * c0) ** 2 + (y - h * (r0 + 0.5 * (c0 & 1))) ** 2
    d1 = (x - 1.5 * size * c1) ** 2 + (y - h * (r1 + 0.5 * (c1 & 1))) ** 2
    first = d0 <= d1
    return np.where(first, c0, c1), np.where(first, r0, r1)


def check_hex_size(size: int | str | None) -> int:
    if size is None or size == "":
        return DEFAULT_HEX
    try:
        value = int(size)
    except (TypeError, ValueError):
        value = -1
    if value not in HEX_SIZES:
        raise InvalidInput(
            f"cell size must be one of {', '.join(map(str, HEX_SIZES))} metres", field="size"
        )
    return value


BOUNDARY_CELLS_SQL = sa.text(
    """
    WITH b AS MATERIALIZED (
        SELECT ST_Subdivide(ST_Transform(boundary, metric_srid), 128) AS g
        FROM jurisdiction WHERE id = :jid AND boundary IS NOT NULL
    ), e AS (
        SELECT ST_SetSRID(ST_Extent(g)::geometry, :srid) AS g FROM b
    )
    SELECT DISTINCT h.i, h.j
    FROM e CROSS JOIN LATERAL ST_HexagonGrid(:hex_size, e.g) AS h
    JOIN b ON ST_Intersects(h.geom, b.g)
    WHERE e.g IS NOT NULL
    ORDER BY h.i, h.j
    """
)
_cells_cache: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()
_cells_lock = threading.Lock()


def boundary_cells(session: Session, city: Jurisdiction, size: int) -> np.ndarray:
    """The (i, j) of every ``ST_HexagonGrid(size)`` cell meeting the city's boundary, as an
    ``(n, 2)`` array; cached per process for the boundary's exact bytes."""
    digest = session.execute(
        sa.text("SELECT md5(ST_AsEWKB(boundary)) FROM jurisdiction WHERE id = :jid"),
        {"jid": city.id},
    ).scalar()
    if digest is None:
        return np.empty((0, 2), dtype=np.int64)
    key = (session.get_bind().url.render_as_string(hide_password=True), city.id, size, digest)
    with _cells_lock:
        if key in _cells_cache:
            _cells_cache.move_to_end(key)
            return _cells_cache[key]
    rows = session.execute(
        BOUNDARY_CELLS_SQL, {"jid": city.id, "srid": city.metric_srid, "hex_size": size}
    ).all()
    cells = np.array([(r.i, r.j) for r in rows], dtype=np.int64).reshape(-1, 2)
    with _cells_lock:
        _cells_cache[key] = cells
        while len(_cells_cache) > 32:
            _cells_cache.popitem(last=False)
    return cells


HEX_GEOMS_SQL = sa.text(
    """
    SELECT t.i, t.j,
           ST_AsBinary(ST_Transform(ST_SetSRID(ST_Hexagon(:hex_size, t.i, t.j), :srid), 4326)) AS wkb
    FROM unnest(CAST(:ci AS int[]), CAST(:cj AS int[])) AS t(i, j)
    """
)


def hex_geometries(session: Session, city: Jurisdiction, size: int, cells: np.ndarray) -> list[Any]:
    """Shapely polygons (EPSG:4326) of ``ST_Hexagon`` cells in the order of ``cells``."""
    if len(cells) == 0:
        return []
    rows = session.execute(
        HEX_GEOMS_SQL,
        {
            "hex_size": size,
            "srid": city.metric_srid,
            "ci": cells[:, 0].tolist(),
            "cj": cells[:, 1].tolist(),
        },
    ).all()
    by_cell = {(r.i, r.j): shapely.from_wkb(bytes(r.wkb)) for r in rows}
    return [by_cell[(int(i), int(j))] for i, j in cells]


def located_cte(columns: str = "b.*") -> str:
    # Materialised: inlined, every use of x and y downstream would repeat the ST_Transform;
    # the CTE's own scan still runs in parallel workers.
    return f"""
located AS MATERIALIZED (
    SELECT {columns}, ST_X(t.g) AS x, ST_Y(t.g) AS y
    FROM base b CROSS JOIN LATERAL (
        SELECT ST_Transform(b.location, CAST(:srid AS integer)) AS g
    ) t
    WHERE b.location IS NOT NULL
)"""  # noqa: S608


def hex_params(city: Jurisdiction, size: int) -> dict[str, Any]:
    return {"srid": city.metric_srid, "hex_size": float(size), "hex_h": float(size) * SQRT3}


@dataclass
class AreaTable:
    """Metrics per area (hexagon or zone), the city over the same requests, and what was
    left out."""

    kind: str  # 'hex' or 'zones'
    title: str
    areas: gpd.GeoDataFrame
    city: dict[str, Any]
    flagged: list[FlaggedPoint]
    cell_size: int | None = None
    layer: str | None = None


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers, NaN as None (for templates and JSON)."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        return None if np.isnan(value) else float(value)
    return value


def _city_row(session: Session, sql: str, params: dict[str, Any]) -> dict[str, Any]:
    df = _finish_metrics(pd.DataFrame([session.execute(sa.text(sql), params).one()._asdict()]))
    return {col: _plain(df[col].iloc[0]) for col in df.columns}


def grid_metrics(
    session: Session,
    city: Jurisdiction,
    f: Filters,
    size: int = DEFAULT_HEX,
    now: datetime | None = None,
) -> AreaTable:
    """Metrics per hexagon (cells holding at least one request)."""
    size = check_hex_size(size)
    flagged = [] if f.include_flagged else flagged_points(session, city, f)
    base = base_cte(city, f, flagged)
    params = {**base.params, **hex_params(city, size), "now": _now(now)}
    head = f"WITH {base.where}, {located_cte()}, cells AS ({hex_cell_sql()})"
    sql = f"""{head}
        SELECT b.ci AS i, b.cj AS j, {METRICS_SQL}
        FROM cells b LEFT JOIN survey_response sv ON sv.request_id = b.id
        GROUP BY b.ci, b.cj ORDER BY b.ci, b.cj"""  # noqa: S608
    df = pd.DataFrame([r._asdict() for r in session.execute(sa.text(sql), params)])
    if df.empty:
        df = pd.DataFrame(columns=["i", "j", *[c for c in METRIC_COLUMNS if c != "sla_pct"]])
    df = _finish_metrics(df)
    df["i"] = df["i"].astype("int64")
    df["j"] = df["j"].astype("int64")
    cells = df[["i", "j"]].to_numpy()
    df.insert(0, "area", [f"{i}:{j}" for i, j in cells])
    df.insert(1, "name", [f"hexagon {i}:{j}" for i, j in cells])
    df["population"] = np.nan
    df["per_1000"] = np.nan
    gdf = gpd.GeoDataFrame(df, geometry=hex_geometries(session, city, size, cells), crs=4326)
    city_row = _city_row(
        session,
        f"""{head} SELECT {METRICS_SQL} FROM located b
            LEFT JOIN survey_response sv ON sv.request_id = b.id""",  # noqa: S608
        params,
    )
    return AreaTable("hex", f"Hexagons of {size} m", gdf, city_row, flagged, cell_size=size)


def zone_layers(session: Session, city: Jurisdiction) -> list[tuple[str, str, bool]]:
    """(name, title, has population) of the city's current zone layers."""
    rows = session.execute(
        sa.text(
            "SELECT l.name, coalesce(l.title, l.name) AS title, "
            "bool_or(z.population IS NOT NULL) AS has_population "
            "FROM zone_layer l LEFT JOIN zone z ON z.layer_id = l.id "
            "WHERE l.jurisdiction_id = :jid AND l.is_current "
            "GROUP BY l.name, l.title ORDER BY l.name"
        ),
        {"jid": city.id},
    ).all()
    return [(r.name, r.title, bool(r.has_population)) for r in rows]


def _layer(session: Session, city: Jurisdiction, name: str) -> tuple[int, str]:
    row = session.execute(
        sa.text(
            "SELECT id, coalesce(title, name) AS title FROM zone_layer "
            "WHERE jurisdiction_id = :jid AND name = :name AND is_current"
        ),
        {"jid": city.id, "name": name},
    ).first()
    if row is None:
        names = ", ".join(n for n, _, _ in zone_layers(session, city)) or "none"
        raise InvalidInput(
            f"{city.name} has no zone layer {name!r} (layers: {names})", field="layer"
        )
    return int(row.id), str(row.title)


def zone_metrics(
    session: Session,
    city: Jurisdiction,
    f: Filters,
    layer: str,
    now: datetime | None = None,
    simplify: float | None = None,
) -> AreaTable:
    """Metrics per zone of a current layer (every zone, with zero where it has none).

    A request's zone is the routing's (``request_zone``: where zones of a layer overlap,
    the smallest wins). ``simplify`` (degrees) thins outlines for maps.
    """
    layer_id, title = _layer(session, city, layer)
    flagged = [] if f.include_flagged else flagged_points(session, city, f)
    base = base_cte(city, f, flagged)
    params = {**base.params, "now": _now(now), "layer_id": layer_id, "tol": simplify or 0.0}
    head = f"""WITH {base.where},
        zoned AS (
            SELECT b.*, rz.zone_id FROM base b
            JOIN request_zone rz ON rz.request_id = b.id AND rz.layer_id = :layer_id
        )"""  # noqa: S608
    geom = "ST_SimplifyPreserveTopology(z.geom, :tol)" if simplify else "z.geom"
    sql = f"""{head},
        agg AS (
            SELECT b.zone_id, {METRICS_SQL}
            FROM zoned b LEFT JOIN survey_response sv ON sv.request_id = b.id
            GROUP BY b.zone_id
        )
        SELECT z.code AS area, z.name, z.population, ST_AsBinary({geom}) AS wkb, agg.*
        FROM zone z LEFT JOIN agg ON agg.zone_id = z.id
        WHERE z.layer_id = :layer_id
        ORDER BY z.code"""  # noqa: S608
    rows = [r._asdict() for r in session.execute(sa.text(sql), params)]
    df = pd.DataFrame(rows).drop(columns=["zone_id"])
    geoms = [shapely.from_wkb(bytes(w)) for w in df.pop("wkb")]
    df = _finish_metrics(df)
    df["population"] = df["population"].astype("float64")
    df["per_1000"] = np.where(
        df["population"] > 0,
        1000.0 * df["requests"] / df["population"].where(df["population"] > 0),
        np.nan,
    )
    gdf = gpd.GeoDataFrame(df, geometry=geoms, crs=4326)
    city_row = _city_row(
        session,
        f"""{head} SELECT {METRICS_SQL} FROM zoned b
            LEFT JOIN survey_response sv ON sv.request_id = b.id""",  # noqa: S608
        params,
    )
    return AreaTable("zones", title, gdf, city_row, flagged, layer=layer)


def area_metrics(
    session: Session,
    city: Jurisdiction,
    f: Filters,
    layer: str | None = None,
    size: int | None = None,
    now: datetime | None = None,
    simplify: float | None = None,
) -> AreaTable:
    """Zones of ``layer`` when given, else hexagons of ``size`` metres."""
    if layer:
        return zone_metrics(session, city, f, layer, now=now, simplify=simplify)
    return grid_metrics(session, city, f, check_hex_size(size), now=now)


# --------------------------------------------------------------------------- heatmap


def check_heat_cell(cell: int | str | None) -> int:
    if cell is None or cell == "":
        return DEFAULT_HEAT_CELL
    try:
        value = int(cell)
    except (TypeError, ValueError):
        value = -1
    if value not in HEAT_CELLS:
        raise InvalidInput(
            f"heat cell must be one of {', '.join(map(str, HEAT_CELLS))} metres", field="cell"
        )
    return value


def heat_points(
    session: Session, city: Jurisdiction, f: Filters, cell: int = DEFAULT_HEAT_CELL
) -> tuple[list[tuple[float, float, int]], list[FlaggedPoint]]:
    """Request density as (lat, lon, count) on a square grid of ``cell`` metres in the
    city's metric SRID (the centre of each occupied square), and the points left out."""
    cell = check_heat_cell(cell)
    flagged = [] if f.include_flagged else flagged_points(session, city, f)
    base = base_cte(city, f, flagged)
    sql = f"""WITH {base.where}, {located_cte()}
        SELECT ST_Y(c) AS lat, ST_X(c) AS lon, g.n
        FROM (
            SELECT round(x / :cell) AS gx, round(y / :cell) AS gy, count(*) AS n
            FROM located GROUP BY 1, 2
        ) g
        CROSS JOIN LATERAL (
            SELECT ST_Transform(ST_SetSRID(ST_MakePoint(g.gx * :cell, g.gy * :cell), :srid), 4326)
        ) AS t(c)
        ORDER BY g.n DESC, lat, lon"""  # noqa: S608
    params = {**base.params, "srid": city.metric_srid, "cell": float(cell), "now": _now(None)}
    rows = session.execute(sa.text(sql), params).all()
    return [(round(r.lat, 6), round(r.lon, 6), int(r.n)) for r in rows], flagged


def data_extent(session: Session, city: Jurisdiction, f: Filters) -> tuple[date, date] | None:
    """First and last local day with a request in the filter, or None."""
    sc = scope(city, f)
    row = session.execute(
        sa.text(
            "SELECT min(r.requested_at) AS lo, max(r.requested_at) AS hi FROM service_request r "  # noqa: S608
            f"JOIN service s ON s.id = r.service_id WHERE {sc.where}"
        ),
        sc.params,
    ).one()
    if row.lo is None:
        return None
    tz = ZoneInfo(city.timezone)
    return row.lo.astimezone(tz).date(), row.hi.astimezone(tz).date()


def periods(start: date, end: date) -> list[tuple[str, date, date]]:
    """Slider steps over [start, end]: days up to 31 days, weeks (Monday first) up to
    26 weeks, else calendar months; each (label, first day, last day) clipped to the range."""
    days = (end - start).days + 1
    out: list[tuple[str, date, date]] = []
    if days <= 31:
        return [(d.isoformat(), d, d) for d in (start + timedelta(n) for n in range(days))]
    if days <= 26 * 7:
        first = start - timedelta(days=start.weekday())
        while first <= end:
            last = first + timedelta(days=6)
            out.append((f"week of {first.isoformat()}", max(first, start), min(last, end)))
            first = last + timedelta(days=1)
        return out
    first = start.replace(day=1)
    while first <= end:
        nxt = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
        out.append((first.strftime("%Y-%m"), max(first, start), min(nxt - timedelta(days=1), end)))
        first = nxt
    return out


# --------------------------------------------------------------------------- gaps


def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values (NaN stays NaN)."""
    q = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        q[ok] = stats.false_discovery_control(p[ok], method="bh")
    return q


@dataclass
class GapTable:
    kind: str
    title: str
    areas: gpd.GeoDataFrame
    city: dict[str, Any]
    flagged: list[FlaggedPoint]
    method: str = GAP_METHOD
    cell_size: int | None = None
    layer: str | None = None


def service_gaps(
    session: Session,
    city: Jurisdiction,
    f: Filters,
    layer: str | None = None,
    size: int | None = None,
    now: datetime | None = None,
    simplify: float | None = None,
) -> GapTable:
    """Areas significantly worse than the city for their category mix (see GAP_METHOD)."""
    flagged = [] if f.include_flagged else flagged_points(session, city, f)
    base = base_cte(city, f, flagged)
    params: dict[str, Any] = {**base.params, "now": _now(now)}
    if layer:
        layer_id, title = _layer(session, city, layer)
        params["layer_id"] = layer_id
        area_sql = f"""WITH {base.where},
            area AS (
                SELECT b.*, rz.zone_id::text AS area FROM base b
                JOIN request_zone rz ON rz.request_id = b.id AND rz.layer_id = :layer_id
            )"""  # noqa: S608
        kind = "zones"
    else:
        size = check_hex_size(size)
        params.update(hex_params(city, size))
        title = f"Hexagons of {size} m"
        area_sql = f"""WITH {base.where}, {located_cte()}, cells AS ({hex_cell_sql()}),
            area AS (SELECT c.*, c.ci || ':' || c.cj AS area FROM cells c)"""  # noqa: S608
        kind = "hex"
    sql = f"""{area_sql},
        catmed AS (
            SELECT service_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY ttc) AS med
            FROM area GROUP BY service_id
        )
        SELECT a.area, a.service_id,
               count(*) AS requests,
               count(*) FILTER (WHERE a.sla_counted) AS sla_n,
               count(*) FILTER (WHERE a.sla_met) AS sla_met,
               count(a.ttc) AS closed,
               count(*) FILTER (WHERE a.ttc > m.med) AS slow,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY a.ttc) AS median_hours
        FROM area a JOIN catmed m USING (service_id)
        GROUP BY a.area, a.service_id"""  # noqa: S608
    cols = ["area", "service_id", "requests", "sla_n", "sla_met", "closed", "slow", "median_hours"]
    per = pd.DataFrame([r._asdict() for r in session.execute(sa.text(sql), params)], columns=cols)
    medians_sql = f"""{area_sql}
        SELECT area, percentile_cont(0.5) WITHIN GROUP (ORDER BY ttc) AS median_hours
        FROM area GROUP BY area"""  # noqa: S608
    area_medians = {r.area: r.median_hours for r in session.execute(sa.text(medians_sql), params)}
    city_median = session.execute(
        sa.text(f"{area_sql} SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ttc) FROM area"),  # noqa: S608
        params,
    ).scalar()

    table = gap_statistics(per)
    table["median_hours"] = table["area"].map(area_medians).astype("float64")
    city_row = {
        "requests": int(per["requests"].sum()),
        "sla_n": int(per["sla_n"].sum()),
        "sla_met": int(per["sla_met"].sum()),
        "sla_pct": (100.0 * per["sla_met"].sum() / per["sla_n"].sum())
        if per["sla_n"].sum()
        else np.nan,
        "closed": int(per["closed"].sum()),
        "median_hours": float(city_median) if city_median is not None else np.nan,
    }

    if kind == "zones":
        geom = "ST_SimplifyPreserveTopology(z.geom, :tol)" if simplify else "z.geom"
        zrows = session.execute(
            sa.text(
                f"SELECT z.id::text AS zid, z.code, z.name, ST_AsBinary({geom}) AS wkb "  # noqa: S608
                "FROM zone z WHERE z.layer_id = :layer_id ORDER BY z.code"
            ),
            {"layer_id": params["layer_id"], "tol": simplify or 0.0},
        ).all()
        zones = pd.DataFrame(
            {
                "zid": [r.zid for r in zrows],
                "code": [r.code for r in zrows],
                "name": [r.name for r in zrows],
            }
        )
        table = zones.merge(table, left_on="zid", right_on="area", how="left").drop(
            columns=["area", "zid"]
        )
        table = table.rename(columns={"code": "area"})
        geoms = [shapely.from_wkb(bytes(r.wkb)) for r in zrows]
    else:
        table = table.sort_values("area", key=lambda s: s.map(_cell_key)).reset_index(drop=True)
        cells = np.array([_cell_key(a) for a in table["area"]], dtype=np.int64).reshape(-1, 2)
        table.insert(1, "name", [f"hexagon {a}" for a in table["area"]])
        geoms = hex_geometries(session, city, size, cells)
    for col in ("requests", "sla_n", "sla_met", "closed", "slow"):
        table[col] = table[col].fillna(0).astype("int64")
    table["gap"] = table["sla_gap"].fillna(False).astype(bool) | table["ttc_gap"].fillna(
        False
    ).astype(bool)
    table["sla_gap"] = table["sla_gap"].fillna(False).astype(bool)
    table["ttc_gap"] = table["ttc_gap"].fillna(False).astype(bool)
    gdf = gpd.GeoDataFrame(table, geometry=geoms, crs=4326)
    return GapTable(kind, title, gdf, city_row, flagged, cell_size=size, layer=layer)


def _cell_key(area: str) -> tuple[int, int]:
    i, j = area.split(":")
    return int(i), int(j)


def gap_statistics(per: pd.DataFrame) -> pd.DataFrame:
    """Indirectly standardised SLA and time-to-close comparison per area.

    ``per`` has one row per (area, service_id) with ``requests``, ``sla_n``, ``sla_met``,
    ``closed`` and ``slow`` (closures slower than the category's city median). Returns one
    row per area with observed and expected values, z, one-sided p (worse than expected)
    and Benjamini-Hochberg q for both measures.
    """
    per = per.copy()
    for col in ("requests", "sla_n", "sla_met", "closed", "slow"):
        per[col] = per[col].astype("float64")
    cat = per.groupby("service_id")[["sla_n", "sla_met", "closed", "slow"]].sum()
    p_rate = (cat["sla_met"] / cat["sla_n"]).where(cat["sla_n"] > 0)
    q_rate = (cat["slow"] / cat["closed"]).where(cat["closed"] > 0)
    per["p"] = per["service_id"].map(p_rate).fillna(0.0)
    per["q"] = per["service_id"].map(q_rate).fillna(0.0)
    per["sla_exp"] = per["sla_n"] * per["p"]
    per["sla_var"] = per["sla_n"] * per["p"] * (1 - per["p"])
    per["slow_exp"] = per["closed"] * per["q"]
    per["slow_var"] = per["closed"] * per["q"] * (1 - per["q"])
    g = per.groupby("area")[
        [
            "requests",
            "sla_n",
            "sla_met",
            "sla_exp",
            "sla_var",
            "closed",
            "slow",
            "slow_exp",
            "slow_var",
        ]
    ].sum()
    out = pd.DataFrame({"area": g.index.astype(str)})
    for col in g.columns:
        out[col] = g[col].to_numpy()
    n_sla, n_closed = out["sla_n"].to_numpy(), out["closed"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        out["sla_pct"] = np.where(n_sla > 0, 100.0 * out["sla_met"] / n_sla, np.nan)
        out["sla_expected_pct"] = np.where(n_sla > 0, 100.0 * out["sla_exp"] / n_sla, np.nan)
        sla_sd = np.sqrt(out["sla_var"].to_numpy())
        sla_z = np.where(sla_sd > 0, (out["sla_met"] - out["sla_exp"]) / sla_sd, np.nan)
        slow_sd = np.sqrt(out["slow_var"].to_numpy())
        slow_z = np.where(slow_sd > 0, (out["slow"] - out["slow_exp"]) / slow_sd, np.nan)
        out["slow_pct"] = np.where(n_closed > 0, 100.0 * out["slow"] / n_closed, np.nan)
        out["slow_expected_pct"] = np.where(
            n_closed > 0, 100.0 * out["slow_exp"] / n_closed, np.nan
        )
    sla_z = np.where(n_sla >= GAP_MIN_REQUESTS, sla_z, np.nan)
    slow_z = np.where(n_closed >= GAP_MIN_REQUESTS, slow_z, np.nan)
    out["sla_z"] = sla_z
    out["sla_p"] = stats.norm.cdf(sla_z)  # worse = fewer on time than expected
    out["sla_q"] = _bh(out["sla_p"].to_numpy())
    out["ttc_z"] = slow_z
    out["ttc_p"] = stats.norm.sf(slow_z)  # worse = more slow closures than expected
    out["ttc_q"] = _bh(out["ttc_p"].to_numpy())
    out["sla_gap"] = (out["sla_q"] < GAP_ALPHA) & (out["sla_z"] < 0)
    out["ttc_gap"] = (out["ttc_q"] < GAP_ALPHA) & (out["ttc_z"] > 0)
    return out.drop(columns=["sla_var", "slow_var"])


# --------------------------------------------------------------------------- scorecards

REOPEN_SQL = """
reopened AS (
    SELECT DISTINCT e.request_id
    FROM request_event e JOIN base b ON b.id = e.request_id
    WHERE e.kind = 'reopen'
       OR (e.kind = 'status' AND e.from_value = ANY(:closed_statuses)
           AND e.to_value = ANY(:open_statuses))
)"""

SCORE_METRICS_SQL = (
    METRICS_SQL
    + """,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY b.tfr) AS first_response_hours,
    count(b.tfr) AS responded,
    count(ro.request_id) AS reopened,
    count(*) FILTER (WHERE b.closed_at IS NOT NULL OR ro.request_id IS NOT NULL) AS ever_closed"""
)


def scorecards(
    session: Session, city: Jurisdiction, f: Filters, now: datetime | None = None
) -> pd.DataFrame:
    """One row per department, per crew and for the whole city (``level`` says which).

    Reopen rate: requests reopened at least once (an event ``reopen``, or a ``status``
    change from a closing to an open status) over requests closed at least once.
    Scorecards count every filtered request, flagged points included.
    """
    base = base_cte(city, f, None)
    params = {**base.params, "now": _now(now), "closed_statuses": CLOSED}
    sql = f"""WITH {base.where}, {REOPEN_SQL}
        SELECT GROUPING(b.department_id) AS gd, GROUPING(b.crew_id) AS gc,
               b.department_id, b.crew_id, {SCORE_METRICS_SQL}
        FROM base b
        LEFT JOIN reopened ro ON ro.request_id = b.id
        LEFT JOIN survey_response sv ON sv.request_id = b.id
        GROUP BY GROUPING SETS ((), (b.department_id), (b.department_id, b.crew_id))"""  # noqa: S608
    df = pd.DataFrame([r._asdict() for r in session.execute(sa.text(sql), params)])
    names = session.execute(
        sa.text(
            "SELECT d.id AS did, d.code AS dcode, d.name AS dname, c.id AS cid, c.code AS ccode, "
            "c.name AS cname FROM department d LEFT JOIN crew c ON c.department_id = d.id "
            "WHERE d.jurisdiction_id = :jid"
        ),
        {"jid": city.id},
    ).all()
    dept = {r.did: (r.dcode, r.dname) for r in names}
    crew = {r.cid: (r.ccode, r.cname) for r in names if r.cid is not None}
    columns = [
        "level", "department", "department_name", "crew", "crew_name",
        *METRIC_COLUMNS, "first_response_hours", "responded", "reopened", "ever_closed",
        "reopen_pct", "share_pct",
    ]  # fmt: skip
    if df.empty:
        return pd.DataFrame(columns=columns)
    df = _finish_metrics(df)
    for col in ("responded", "reopened", "ever_closed"):
        df[col] = df[col].fillna(0).astype("int64")
    df["first_response_hours"] = df["first_response_hours"].astype("float64")
    df["reopen_pct"] = np.where(
        df["ever_closed"] > 0,
        100.0 * df["reopened"] / df["ever_closed"].where(df["ever_closed"] > 0),
        np.nan,
    )
    total = int(df.loc[(df["gd"] == 1) & (df["gc"] == 1), "requests"].iloc[0])
    df["share_pct"] = 100.0 * df["requests"] / total if total else np.nan

    def level(row: Any) -> str:
        if row.gd == 1:
            return "city"
        return "department" if row.gc == 1 else "crew"

    df["level"] = [level(r) for r in df.itertuples()]
    df["department"] = [
        None
        if lv == "city"
        else (dept.get(d, ("(none)", "No department"))[0] if pd.notna(d) else "(none)")
        for lv, d in zip(df["level"], df["department_id"], strict=True)
    ]
    df["department_name"] = [
        "City"
        if lv == "city"
        else (dept.get(d, ("", "No department"))[1] if pd.notna(d) else "No department")
        for lv, d in zip(df["level"], df["department_id"], strict=True)
    ]
    df["crew"] = [
        (crew.get(c, ("(none)", ""))[0] if pd.notna(c) else "(none)") if lv == "crew" else None
        for lv, c in zip(df["level"], df["crew_id"], strict=True)
    ]
    df["crew_name"] = [
        (crew.get(c, ("", "No crew"))[1] if pd.notna(c) else "No crew") if lv == "crew" else None
        for lv, c in zip(df["level"], df["crew_id"], strict=True)
    ]
    order = {"city": 0, "department": 1, "crew": 2}
    df["_lv"] = df["level"].map(order)
    df["_crew_sort"] = df["crew"].fillna("")
    df = df.sort_values(["_lv", "department", "_crew_sort"], na_position="first")
    # A crew row sits under its department.
    df["_dep_sort"] = df["department"].fillna("")
    df["_group"] = np.where(df["level"] == "city", 0, 1)
    df = df.sort_values(["_group", "_dep_sort", "_lv", "_crew_sort"]).reset_index(drop=True)
    return df[columns]


def weekly_trend(
    session: Session,
    city: Jurisdiction,
    f: Filters,
    department: str | None = None,
    crew: str | None = None,
    now: datetime | None = None,
) -> pd.DataFrame:
    """Per local week (Monday first): volume, median time to close and SLA % of the city
    and of one department (``department`` code) or crew (``crew`` code within it)."""
    base = base_cte(city, f, None)
    params = {**base.params, "now": _now(now), "tz": city.timezone}
    target = "false"
    if department is not None:
        dep = session.execute(
            sa.text("SELECT id FROM department WHERE jurisdiction_id = :jid AND code = :code"),
            {"jid": city.id, "code": department},
        ).scalar()
        if dep is None:
            raise InvalidInput(f"{city.name} has no department {department!r}", field="department")
        params["dep_id"] = dep
        target = "b.department_id = :dep_id"
        if crew is not None:
            cid = session.execute(
                sa.text("SELECT id FROM crew WHERE department_id = :dep AND code = :code"),
                {"dep": dep, "code": crew},
            ).scalar()
            if cid is None:
                raise InvalidInput(f"department {department!r} has no crew {crew!r}", field="crew")
            params["crew_id"] = cid
            target += " AND b.crew_id = :crew_id"
    sql = f"""WITH {base.where}
        SELECT w.week, w.is_target,
               count(*) AS requests,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY w.ttc) AS median_hours,
               count(*) FILTER (WHERE w.sla_counted) AS sla_n,
               count(*) FILTER (WHERE w.sla_met) AS sla_met
        FROM (
            SELECT b.*, date_trunc('week', b.requested_at AT TIME ZONE :tz)::date AS week,
                   ({target}) AS is_target
            FROM base b
        ) w
        GROUP BY GROUPING SETS ((week), (week, is_target))
        ORDER BY week"""  # noqa: S608
    rows = pd.DataFrame([r._asdict() for r in session.execute(sa.text(sql), params)])
    if rows.empty:
        return pd.DataFrame(
            columns=["week", "requests", "median_hours", "sla_pct", "city_requests",
                     "city_median_hours", "city_sla_pct"]
        )  # fmt: skip
    city_rows = rows[rows["is_target"].isna()].set_index("week")
    mine = rows[rows["is_target"] == True].set_index("week")  # noqa: E712
    weeks = pd.DataFrame(index=city_rows.index)

    def pct(frame: pd.DataFrame) -> pd.Series:
        return (100.0 * frame["sla_met"] / frame["sla_n"]).where(frame["sla_n"] > 0)

    weeks["requests"] = mine["requests"].reindex(weeks.index).fillna(0).astype("int64")
    weeks["median_hours"] = mine["median_hours"].reindex(weeks.index).astype("float64")
    weeks["sla_pct"] = pct(mine).reindex(weeks.index).astype("float64")
    weeks["city_requests"] = city_rows["requests"].astype("int64")
    weeks["city_median_hours"] = city_rows["median_hours"].astype("float64")
    weeks["city_sla_pct"] = pct(city_rows).astype("float64")
    return weeks.reset_index()


def summary(
    session: Session, city: Jurisdiction, f: Filters, now: datetime | None = None
) -> dict[str, Any]:
    """The city's totals for the filter (every request, flagged points included)."""
    base = base_cte(city, f, None)
    sql = f"""WITH {base.where}
        SELECT {METRICS_SQL} FROM base b LEFT JOIN survey_response sv ON sv.request_id = b.id"""  # noqa: S608
    return _city_row(session, sql, {**base.params, "now": _now(now)})
