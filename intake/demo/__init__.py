"""The demo city: Los Angeles, its Neighborhood Councils and 10,000 real MyLA311 records.

:func:`load_demo` builds everything in one transaction (all or nothing) and is
idempotent: when the city ``los-angeles`` exists it only returns its counts. The set-up
itself is plain data in :mod:`intake.demo.catalog`; the records and polygons are in
``data/los_angeles`` (source and licence in the README there).
"""

from __future__ import annotations

import csv
import io
import secrets
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import sqlalchemy as sa
from shapely.geometry import MultiPoint, Polygon
from sqlalchemy.orm import Session, sessionmaker

from intake.demo import catalog
from routing.engine import route_bulk
from spatial.db import session_scope
from spatial.errors import InvalidInput
from spatial.models import (
    Crew,
    Department,
    Jurisdiction,
    RoutingRule,
    RuleSet,
    Service,
    ServiceAttribute,
)
from spatial.public_ids import ensure_at_least, format_public_id
from spatial.zones import as_multipolygon, create_city, import_layer, read_polygons

DATA_DIR = Path(__file__).resolve().parent / "data" / "los_angeles"
NC_FILE = DATA_DIR / "la_neighborhood_councils.geojson"
RECORDS_FILE = DATA_DIR / "la_311_2020_sample_normalized.csv"

Progress = Callable[[str], None]

COUNTS_SQL = sa.text(
    """
    SELECT
      (SELECT count(*) FROM zone_layer WHERE jurisdiction_id = :j AND is_current) AS layers,
      (SELECT count(*) FROM zone z JOIN zone_layer l ON l.id = z.layer_id
        WHERE l.jurisdiction_id = :j AND l.is_current AND l.name = :nc) AS council_zones,
      (SELECT count(*) FROM zone z JOIN zone_layer l ON l.id = z.layer_id
        WHERE l.jurisdiction_id = :j AND l.is_current AND l.name = :districts) AS crew_districts,
      (SELECT count(*) FROM department WHERE jurisdiction_id = :j) AS departments,
      (SELECT count(*) FROM crew c JOIN department d ON d.id = c.department_id
        WHERE d.jurisdiction_id = :j) AS crews,
      (SELECT count(*) FROM service WHERE jurisdiction_id = :j) AS services,
      (SELECT count(*) FROM routing_rule r JOIN routing_ruleset s ON s.id = r.ruleset_id
        WHERE s.jurisdiction_id = :j AND s.status = 'published') AS rules,
      (SELECT count(*) FROM service_request WHERE jurisdiction_id = :j) AS requests,
      (SELECT count(*) FROM service_request
        WHERE jurisdiction_id = :j AND department_id IS NOT NULL) AS routed,
      (SELECT count(*) FROM address_point WHERE jurisdiction_id = :j) AS address_points
    """
)


def demo_counts(session: Session, city: Jurisdiction) -> dict[str, Any]:
    """What the demo city holds, for the CLI and for tests."""
    row = session.execute(
        COUNTS_SQL,
        {"j": city.id, "nc": catalog.NC_LAYER["name"], "districts": catalog.DISTRICT_LAYER["name"]},
    ).one()
    return {"city": city.slug, **{k: int(v) for k, v in row._mapping.items()}}


def load_demo(sessions: sessionmaker[Session], progress: Progress | None = None) -> dict[str, Any]:
    """Load the demo city unless it is there; return its counts (``created`` says which)."""
    say = progress or (lambda _msg: None)
    with session_scope(sessions) as s:
        city = s.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == catalog.CITY["slug"]))
        if city is not None:
            return {**demo_counts(s, city), "created": False}
        # Serialise concurrent first loads: the loser waits, then sees the city.
        s.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('civicpin-demo-load'))"))
        city = s.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == catalog.CITY["slug"]))
        if city is not None:
            return {**demo_counts(s, city), "created": False}
        city = _build(s, say)
        return {**demo_counts(s, city), "created": True}


# --------------------------------------------------------------------------- zones


def district_of(lon: float, lat: float) -> str:
    """The crew-district code for a council centroid (first matching box wins)."""
    for district in catalog.DISTRICTS:
        for x0, y0, x1, y1 in district["boxes"]:
            if x0 <= lon < x1 and y0 <= lat < y1:
                return district["code"]
    raise ValueError(f"no crew district for ({lon}, {lat})")  # the last box holds everything


def _rings(geom: Any, min_hole_m2: float) -> list[Any]:
    rings = []
    for poly in getattr(geom, "geoms", [geom]):
        rings.append(poly.exterior)
        rings += [r for r in poly.interiors if Polygon(r).area >= min_hole_m2]
    return rings


def _without_slivers(geom: Any, max_hole_m2: float = 1e4) -> Any:
    """``geom`` (metric) with its small holes (slivers between councils) filled."""
    return shapely.union_all(
        [
            Polygon(p.exterior, [r for r in p.interiors if Polygon(r).area > max_hole_m2])
            for p in getattr(geom, "geoms", [geom])
        ]
    )


def build_crew_districts(councils: gpd.GeoDataFrame, metric_srid: int) -> gpd.GeoDataFrame:
    """Crew districts (code, name, geometry in 4326): councils grouped per district, and
    the land around them (gaps between councils, and up to :data:`catalog.DISTRICT_REACH_M`
    beyond within the councils' convex hull) given to the nearest district, so together
    they cover the whole city."""
    metric = councils.to_crs(metric_srid)
    centroids = gpd.GeoSeries(metric.geometry.centroid, crs=metric_srid).to_crs(4326)
    codes = [district_of(p.x, p.y) for p in centroids]
    metric = metric.assign(district=codes)
    groups = {
        code: _without_slivers(
            shapely.union_all(shapely.make_valid(metric.geometry[metric.district == code].values))
        )
        for code in dict.fromkeys(d["code"] for d in catalog.DISTRICTS)
        if (metric.district == code).any()
    }
    councils_union = shapely.union_all(list(groups.values()))
    outline = shapely.union_all(
        [Polygon(p.exterior) for p in getattr(councils_union, "geoms", [councils_union])]
    )
    reach = outline.convex_hull.intersection(outline.buffer(catalog.DISTRICT_REACH_M))
    fill = reach.difference(councils_union)

    # Nearest district for the fill: Voronoi cells of points along each district's edges.
    owners: dict[tuple[float, float], str] = {}
    for code, geom in groups.items():
        simple = geom.simplify(50)
        for ring in _rings(simple, 1e5):
            for x, y in shapely.segmentize(ring, 250).coords:
                owners.setdefault((round(x, 1), round(y, 1)), code)
    points = list(owners)
    cells = shapely.voronoi_polygons(MultiPoint(points), extend_to=reach, ordered=True)
    by_code: dict[str, list[Any]] = {code: [] for code in groups}
    for point, cell in zip(points, cells.geoms, strict=True):
        by_code[owners[point]].append(cell)

    names = {d["code"]: d["name"] for d in catalog.DISTRICTS}
    rows = []
    for code, geom in groups.items():
        near = shapely.union_all(by_code[code]).intersection(fill)
        whole = shapely.union_all([geom, near])
        rows.append({"code": code, "name": names[code], "geometry": whole})
    out = gpd.GeoDataFrame(rows, geometry="geometry", crs=metric_srid).to_crs(4326)
    out["geometry"] = [as_multipolygon(shapely.make_valid(g)) for g in out.geometry]
    return out


# --------------------------------------------------------------------------- records


def _local_times(values: pd.Series, tz: str) -> pd.Series:
    parsed = pd.to_datetime(values, format="ISO8601", errors="coerce")
    # Ambiguous fall-back hours count as standard time; skipped spring hours move on.
    return parsed.dt.tz_localize(
        tz, ambiguous=np.zeros(len(parsed), dtype=bool), nonexistent="shift_forward"
    )


def _records(city: Jurisdiction, service_ids: dict[str, int]) -> tuple[str, dict[int, int]]:
    """The records as CSV for COPY, in public-id order; and the last number per year."""
    df = pd.read_csv(RECORDS_FILE, dtype=str, keep_default_na=False)
    unknown = sorted(set(df["category"]) - set(service_ids))
    if unknown:
        raise InvalidInput(f"demo records hold unknown categories: {', '.join(unknown)}")
    bad_status = sorted(set(df["status"]) - set(catalog.STATUSES))
    if bad_status:
        raise InvalidInput(f"demo records hold unknown statuses: {', '.join(bad_status)}")
    tz = city.timezone
    df["requested"] = _local_times(df["created_at"], tz)
    df["closed"] = _local_times(df["closed_at"], tz)  # empty -> NaT
    df["updated"] = _local_times(df["updated_at"], tz)
    if df["requested"].isna().any():
        raise InvalidInput("demo records: some created_at values are not dates")
    df = df.sort_values(["requested", "request_id"], kind="stable").reset_index(drop=True)
    years = df["requested"].dt.year
    df["number"] = df.groupby(years).cumcount() + 1
    last = {int(y): int(n) for y, n in df.groupby(years)["number"].max().items()}

    lat = pd.to_numeric(df["latitude"], errors="coerce")
    lon = pd.to_numeric(df["longitude"], errors="coerce")
    has_point = lat.notna() & lon.notna()
    buf = io.StringIO()
    out = csv.writer(buf)
    for i, row in enumerate(df.itertuples(index=False)):
        requested = row.requested
        point = (
            f"SRID=4326;POINT({float(lon.iat[i])!r} {float(lat.iat[i])!r})"
            if has_point.iat[i]
            else None
        )
        closed = None if pd.isna(row.closed) else row.closed.isoformat()
        updated = requested if pd.isna(row.updated) else row.updated
        out.writerow(
            [
                city.id,
                format_public_id(city.public_id_prefix, requested.year, row.number),
                secrets.token_urlsafe(32),
                row.request_id,
                service_ids[row.category],
                catalog.STATUSES[row.status],
                "normal",
                point,
                row.address or None,
                catalog.CHANNELS.get(row.source, catalog.DEFAULT_CHANNEL),
                "f",
                "f",
                requested.isoformat(),
                updated.isoformat(),
                closed,
                "f" if point else "t",
            ]
        )
    return buf.getvalue(), last


COPY_COLUMNS = (
    "jurisdiction_id, public_id, token, external_id, service_id, status, priority, location, "
    "address, channel, anonymous, notify_updates, requested_at, updated_at, closed_at, "
    "needs_location"
)


# --------------------------------------------------------------------------- building


def _build(s: Session, say: Progress) -> Jurisdiction:
    c = catalog.CITY
    say("creating the city from the Neighborhood Council outlines")
    city = create_city(s, c["slug"], c["name"], c["timezone"], NC_FILE, prefix=c["prefix"])

    say("importing the Neighborhood Councils")
    nc = catalog.NC_LAYER
    import_layer(
        s,
        city,
        NC_FILE,
        nc["name"],
        code_field=nc["code_field"],
        name_field=nc["name_field"],
        title=nc["title"],
    )

    say("building the crew districts")
    districts = build_crew_districts(read_polygons(NC_FILE), city.metric_srid)
    with tempfile.TemporaryDirectory(prefix="civicpin-demo-") as tmp:
        path = Path(tmp) / "crew-districts.geojson"
        districts.to_file(path, driver="GeoJSON")
        dl = catalog.DISTRICT_LAYER
        import_layer(
            s,
            city,
            path,
            dl["name"],
            code_field=dl["code_field"],
            name_field=dl["name_field"],
            title=dl["title"],
        )

    say("adding departments, crews, categories and routing rules")
    departments = {}
    for d in catalog.DEPARTMENTS:
        dept = Department(jurisdiction_id=city.id, code=d["code"], name=d["name"])
        s.add(dept)
        departments[d["code"]] = dept
    s.flush()
    for dept in departments.values():
        for row in districts.itertuples(index=False):
            s.add(
                Crew(department_id=dept.id, code=f"{dept.code}-{row.code}", name=f"{row.name} crew")
            )

    services: dict[str, Service] = {}
    for spec in catalog.SERVICES:
        service = Service(
            jurisdiction_id=city.id,
            code=spec["code"],
            name=spec["name"],
            description=spec["description"],
            group=spec["group"],
            keywords=spec["keywords"],
            notice=spec["notice"],
            default_department_id=departments[spec["department"]].id,
            sla_hours=float(spec["sla_hours"]),
            attributes=[
                ServiceAttribute(
                    code=a["code"],
                    datatype=a["datatype"],
                    description=a["description"],
                    datatype_description=a.get("datatype_description"),
                    required=a["required"],
                    order=i + 1,
                    values=a.get("values"),
                )
                for i, a in enumerate(spec["attributes"])
            ],
        )
        s.add(service)
        services[spec["source"]] = service
    s.flush()

    ruleset = RuleSet(
        jurisdiction_id=city.id,
        version=1,
        status="published",
        note="Demo: each category to its department and the crew of its crew district.",
        published_at=datetime.now(UTC),
    )
    s.add(ruleset)
    s.flush()
    for position, spec in enumerate(catalog.SERVICES, start=1):
        s.add(
            RoutingRule(
                ruleset_id=ruleset.id,
                position=position,
                name=f"{spec['name']} by crew district",
                service_id=services[spec["source"]].id,
                layer_name=catalog.DISTRICT_LAYER["name"],
                department_id=departments[spec["department"]].id,
                crew_from_zone=True,
                priority=spec["priority"],
            )
        )
    s.flush()

    say("loading the 311 records")
    data, last_numbers = _records(city, {k: v.id for k, v in services.items()})
    cursor = s.connection().connection.cursor()
    try:
        with cursor.copy(
            f"COPY service_request ({COPY_COLUMNS}) FROM STDIN WITH (FORMAT csv)"
        ) as copy:
            copy.write(data)
    finally:
        cursor.close()
    for year, number in last_numbers.items():
        ensure_at_least(s, city.id, year, number)
    s.execute(
        sa.text(
            """
            INSERT INTO address_point (jurisdiction_id, address, location)
            SELECT DISTINCT ON (address) jurisdiction_id, address, location
            FROM service_request
            WHERE jurisdiction_id = :j AND location IS NOT NULL AND address IS NOT NULL
            ORDER BY address, requested_at, id
            """
        ),
        {"j": city.id},
    )

    say("routing the records")
    route_bulk(s, city)
    s.execute(sa.text("ANALYZE service_request"))
    return city
