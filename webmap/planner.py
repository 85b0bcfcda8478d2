"""Planner analytics pages: heatmap, grid and zone maps, hotspots, gaps, scorecards.

Every page takes the same filters in its query string (``spatial.analytics.Filters``) and
every view downloads as CSV, GeoJSON and GeoPackage at ``/planner/export/<view>.<fmt>``.
Maps are Leaflet (self-hosted) fed with GeoJSON from this blueprint; charts and the static
map pictures are PNGs rendered by matplotlib on the server. No inline script: the strict
CSP of the public map applies here too.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import sqlalchemy as sa
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    render_template,
    request,
    url_for,
)
from sqlalchemy.orm import Session

from spatial import analytics as an
from spatial import hotspots as hs
from spatial.errors import CivicpinError, InvalidInput, NotFound
from spatial.models import CHANNELS, Department, Jurisdiction, Service
from webmap import planner_charts as charts
from webmap.app import db_session, settings_of
from webmap.auth import current_user, roles_required
from webmap.public import content_security_policy
from webmap.staffkit import staff_city

bp = Blueprint("planner", __name__, url_prefix="/planner")

MAP_SIMPLIFY = 0.0002  # degrees (~20 m): outlines for the page's map only
TABLE_ROWS = 50  # hexagon tables show the worst cells; downloads hold all
VIEWS = ("heat", "areas", "hotspots", "gaps", "scorecards", "flags")
VIEW_ARGS = ("layer", "size", "metric", "compare", "cell")


@bp.after_request
def _security_headers(response: Response) -> Response:
    settings = settings_of(current_app)
    response.headers.setdefault(
        "Content-Security-Policy", content_security_policy(None, settings.tile_url)
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


@bp.errorhandler(CivicpinError)
def _bad_input(exc: CivicpinError):
    status = 404 if isinstance(exc, NotFound) else 400
    if request.path.endswith((".json", ".geojson")):
        return jsonify({"error": str(exc)}), status
    if request.path.endswith(".png"):
        return Response(str(exc), status=status, mimetype="text/plain")
    return render_template("message.html", heading="Cannot show this", message=str(exc)), status


# --------------------------------------------------------------------------- helpers


def _city(session: Session) -> Jurisdiction:
    # The planner's own city; ``?city=`` or the address's city prefix may only name it
    # (install administrators pick any city).
    return staff_city(current_user())


def _setup() -> tuple[Session, Jurisdiction, an.Filters]:
    session = db_session()
    city = _city(session)
    f = an.parse_filters(request.args)
    an.check_filters(session, city, f)
    return session, city, f


def _args(city: Jurisdiction, f: an.Filters, **extra: Any) -> dict[str, str]:
    """Query arguments that rebuild this view (filters, city, view options)."""
    out = {"city": city.slug, **f.query_args()}
    for key in VIEW_ARGS:
        if key in request.args and request.args[key] != "":
            out[key] = request.args[key]
    for key, value in extra.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = str(value)
    return out


def _choices(session: Session, city: Jurisdiction) -> dict[str, Any]:
    services = session.execute(
        sa.select(Service.code, Service.name, Service.group)
        .where(Service.jurisdiction_id == city.id)
        .order_by(Service.name)
    ).all()
    departments = session.execute(
        sa.select(Department.code, Department.name)
        .where(Department.jurisdiction_id == city.id)
        .order_by(Department.name)
    ).all()
    return {
        "categories": [(s.code, s.name) for s in services],
        "groups": sorted({s.group for s in services if s.group}),
        "departments": [(d.code, d.name) for d in departments],
        "channels": CHANNELS,
        "statuses": an.STATUS_CHOICES,
        "layers": an.zone_layers(session, city),
        "hex_sizes": an.HEX_SIZES,
        "heat_cells": an.HEAT_CELLS,
        "metrics": an.METRIC_LABELS,
    }


def _city_bounds(session: Session, city: Jurisdiction) -> list[list[float]] | None:
    row = session.execute(
        sa.text(
            "SELECT ST_XMin(e) AS x0, ST_YMin(e) AS y0, ST_XMax(e) AS x1, ST_YMax(e) AS y1 "
            "FROM (SELECT ST_Extent(boundary) AS e FROM jurisdiction WHERE id = :j) t"
        ),
        {"j": city.id},
    ).one()
    if row.x0 is None:
        return None
    return [[row.y0, row.x0], [row.y1, row.x1]]


def _page(template: str, session: Session, city: Jurisdiction, f: an.Filters, **ctx: Any) -> str:
    settings = settings_of(current_app)
    args = _args(city, f)
    return render_template(
        template,
        city=city,
        filters=f,
        choices=_choices(session, city),
        args=args,
        nav_args={k: v for k, v in args.items() if k not in VIEW_ARGS},
        bounds=_city_bounds(session, city),
        tile_url="" if settings.tile_url.lower() == "none" else settings.tile_url,
        tile_attribution=settings.tile_attribution,
        fmt=fmt,
        **ctx,
    )


def fmt(value: Any, digits: int = 0) -> str:
    """A number for a table cell: thousands separators, ``digits`` decimals, '–' for none."""
    if value is None:
        return "–"
    if isinstance(value, float | np.floating) and not math.isfinite(value):
        return "–"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    return f"{value:,.{digits}f}"


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for row in frame.drop(columns=[c for c in ("geometry",) if c in frame.columns]).to_dict(
        "records"
    ):
        out.append(
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        )
    return out


def _metric() -> str:
    metric = request.args.get("metric") or "requests"
    if metric not in an.METRIC_LABELS:
        raise InvalidInput(f"metric must be one of {', '.join(an.METRIC_LABELS)}", field="metric")
    return metric


def _compare() -> bool:
    return request.args.get("compare", "").lower() in ("1", "true", "on", "yes")


def _areas(session: Session, city: Jurisdiction, f: an.Filters, simplify: float | None = None):
    return an.area_metrics(
        session,
        city,
        f,
        layer=request.args.get("layer") or None,
        size=request.args.get("size") or None,
        simplify=simplify,
    )


def _geojson(gdf: gpd.GeoDataFrame) -> Response:
    return Response(gdf.to_json(na="null", drop_id=True), mimetype="application/geo+json")


def _flag_rows(flagged: list[an.FlaggedPoint]) -> list[dict[str, Any]]:
    return [
        {"lat": p.lat, "lon": p.lon, "requests": p.requests, "addresses": p.addresses,
         "example": p.example_address}
        for p in flagged
    ]  # fmt: skip


# --------------------------------------------------------------------------- pages


@bp.get("")
@bp.get("/")
@roles_required("planner")
def overview():
    """The city's numbers for the filter, and the way to every view."""
    session, city, f = _setup()
    totals = an.summary(session, city, f)
    flagged = an.flagged_points(session, city, f)
    extent = an.data_extent(session, city, f)
    return _page(
        "planner/overview.html", session, city, f, totals=totals, flagged=flagged, extent=extent
    )


@bp.get("/heatmap")
@roles_required("planner")
def heatmap():
    """Request density as a Leaflet heat layer, with a slider over days, weeks or months."""
    session, city, f = _setup()
    cell = an.check_heat_cell(request.args.get("cell"))
    extent = an.data_extent(session, city, f)
    steps: list[dict[str, str]] = []
    if extent is not None:
        start = f.start or extent[0]
        end = f.end or extent[1]
        for label, first, last in an.periods(start, end):
            steps.append(
                {
                    "label": label,
                    "url": url_for(
                        "planner.heat_data", **_args(city, f, start=first, end=last, cell=cell)
                    ),
                }
            )
    data_url = url_for("planner.heat_data", **_args(city, f, cell=cell))
    return _page(
        "planner/heatmap.html", session, city, f, steps=steps, data_url=data_url, cell=cell,
        extent=extent,
    )  # fmt: skip


@bp.get("/heatmap/data.json")
@roles_required("planner")
def heat_data():
    """Aggregated heat points [lat, lon, requests] for the filter, and flagged points."""
    session, city, f = _setup()
    points, flagged = an.heat_points(session, city, f, an.check_heat_cell(request.args.get("cell")))
    return jsonify(
        {
            "points": [list(p) for p in points],
            "max": max((p[2] for p in points), default=0),
            "requests": sum(p[2] for p in points),
            "flagged": _flag_rows(flagged),
        }
    )


@bp.get("/areas")
@roles_required("planner")
def areas():
    """Choropleth of one metric over hexagons or a zone layer, with the table behind it."""
    session, city, f = _setup()
    metric = _metric()
    table = _areas(session, city, f)
    frame = table.areas
    if table.kind == "hex":
        order = frame.sort_values(
            metric, ascending=metric not in an.LOWER_IS_BETTER, na_position="last"
        )
        rows = _records(order.head(TABLE_ROWS))
    else:
        rows = _records(frame)
    has_population = bool(frame["population"].notna().any())
    return _page(
        "planner/areas.html",
        session,
        city,
        f,
        table=table,
        rows=rows,
        total_areas=len(frame),
        metric=metric,
        has_population=has_population,
        map_url=url_for("planner.areas_map", **_args(city, f)),
        picture_url=url_for("planner.areas_picture", **_args(city, f)),
    )


def _area_fills(table: an.AreaTable, metric: str) -> tuple[list[str], list[tuple[str, str]]]:
    return charts.classes(table.areas[metric], metric in an.LOWER_IS_BETTER)


@bp.get("/areas/map.geojson")
@roles_required("planner")
def areas_map():
    """The choropleth's features: simplified outlines, the metric, its class colour."""
    session, city, f = _setup()
    metric = _metric()
    table = _areas(session, city, f, simplify=MAP_SIMPLIFY)
    fills, _ = _area_fills(table, metric)
    digits = 0 if metric in ("requests", "backlog", "overdue") else 1
    out = gpd.GeoDataFrame(
        {
            "area": table.areas["area"],
            "name": table.areas["name"],
            "value": table.areas[metric],
            "label": [fmt(_num(v), digits) for v in table.areas[metric]],
            "requests": table.areas["requests"],
            "fill": fills,
        },
        geometry=table.areas.geometry,
        crs=4326,
    )
    return _geojson(out)


def _num(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


@bp.get("/areas/map.png")
@roles_required("planner")
def areas_picture():
    """The choropleth as a PNG picture (for reports)."""
    session, city, f = _setup()
    metric = _metric()
    table = _areas(session, city, f, simplify=MAP_SIMPLIFY)
    fills, legend = _area_fills(table, metric)
    title = f"{city.name}: {an.METRIC_LABELS[metric]} by {table.title.lower()}"
    png = charts.map_picture(table.areas, fills, title, legend)
    return Response(png, mimetype="image/png")


@bp.get("/hotspots")
@roles_required("planner")
def hotspots():
    """Getis-Ord Gi* hot and cold spots on the hexagon grid, optionally against the
    previous period."""
    session, city, f = _setup()
    compare = _compare()
    if compare and (f.start is None or f.end is None):
        raise InvalidInput("to compare with the previous period, give a start and an end date")
    result = hs.hotspots(session, city, f, an.check_hex_size(request.args.get("size")), compare)
    cells = result.cells
    counts = cells["spot"].value_counts().to_dict()
    spots = [(label, int(counts.get(label, 0))) for label in charts.SPOT_COLOURS]
    emerging = []
    if compare:
        ecounts = cells["emerging"].value_counts().to_dict()
        emerging = [(label, int(ecounts.get(label, 0))) for label in charts.EMERGING_COLOURS]
    hot = cells[cells["spot"] != "none"].sort_values("z", ascending=False)
    return _page(
        "planner/hotspots.html",
        session,
        city,
        f,
        result=result,
        spots=spots,
        emerging=emerging,
        compare=compare,
        rows=_records(hot.head(TABLE_ROWS)),
        total_cells=len(cells),
        significant=len(hot),
        colours=charts.SPOT_COLOURS,
        emerging_colours=charts.EMERGING_COLOURS,
        map_url=url_for("planner.hotspots_map", **_args(city, f)),
    )


@bp.get("/hotspots/map.geojson")
@roles_required("planner")
def hotspots_map():
    """Cells that are a hot or cold spot (or changed class), coloured by class."""
    session, city, f = _setup()
    compare = _compare()
    result = hs.hotspots(session, city, f, an.check_hex_size(request.args.get("size")), compare)
    cells = result.cells
    key = "emerging" if compare else "spot"
    palette = charts.EMERGING_COLOURS if compare else charts.SPOT_COLOURS
    shown = cells[cells[key] != "none"]
    out = gpd.GeoDataFrame(
        {
            "area": shown["area"],
            "name": [f"hexagon {a}" for a in shown["area"]],
            "label": [f"{k}: {n:,} requests, z = {z:.2f}" for k, n, z in
                      zip(shown[key], shown["requests"], shown["z"], strict=True)],
            "fill": [palette[k] for k in shown[key]],
        },
        geometry=shown.geometry,
        crs=4326,
    )  # fmt: skip
    return _geojson(out)


def _gap_label(row: Any) -> str:
    if row["sla_gap"] and row["ttc_gap"]:
        return "SLA and time to close"
    if row["sla_gap"]:
        return "SLA"
    if row["ttc_gap"]:
        return "time to close"
    tested = pd.notna(row["sla_z"]) or pd.notna(row["ttc_z"])
    return "no significant gap" if tested else "too few requests"


@bp.get("/gaps")
@roles_required("planner")
def gaps():
    """Areas whose SLA compliance or time to close is significantly worse than the city's
    for the same category mix (method stated on the page)."""
    session, city, f = _setup()
    table = an.service_gaps(
        session,
        city,
        f,
        layer=request.args.get("layer") or None,
        size=request.args.get("size") or None,
    )
    frame = table.areas.copy()
    frame["verdict"] = [_gap_label(r) for _, r in frame.iterrows()]
    tested = frame[frame["verdict"] != "too few requests"].copy()
    tested["_q"] = tested[["sla_q", "ttc_q"]].min(axis=1)
    tested = tested.sort_values(["gap", "_q"], ascending=[False, True], na_position="last")
    counts = frame["verdict"].value_counts().to_dict()
    verdicts = [(label, int(counts.get(label, 0))) for label in charts.GAP_COLOURS]
    return _page(
        "planner/gaps.html",
        session,
        city,
        f,
        table=table,
        rows=_records(
            tested.drop(columns=["_q"]).head(TABLE_ROWS if table.kind == "hex" else len(tested))
        ),
        tested=len(tested),
        verdicts=verdicts,
        colours=charts.GAP_COLOURS,
        map_url=url_for("planner.gaps_map", **_args(city, f)),
    )


@bp.get("/gaps/map.geojson")
@roles_required("planner")
def gaps_map():
    session, city, f = _setup()
    table = an.service_gaps(
        session,
        city,
        f,
        layer=request.args.get("layer") or None,
        size=request.args.get("size") or None,
        simplify=MAP_SIMPLIFY,
    )
    frame = table.areas
    verdict = [_gap_label(r) for _, r in frame.iterrows()]
    out = gpd.GeoDataFrame(
        {
            "area": frame["area"],
            "name": frame["name"],
            "label": verdict,
            "fill": [charts.GAP_COLOURS[v] for v in verdict],
        },
        geometry=frame.geometry,
        crs=4326,
    )
    return _geojson(out)


@bp.get("/scorecards")
@roles_required("planner")
def scorecards():
    """Per department and crew: volume, first response, time to close, SLA, reopen rate,
    satisfaction, each beside the city's, with a weekly trend chart."""
    session, city, f = _setup()
    table = an.scorecards(session, city, f)
    rows = _records(table)
    city_row = next((r for r in rows if r["level"] == "city"), None)
    for row in rows:
        chart_args = {}
        if row["level"] == "department":
            chart_args = {"department": row["department"]}
        elif row["level"] == "crew":
            chart_args = {"department": row["department"], "crew": row["crew"]}
        row["chart_url"] = url_for("planner.trend_chart", **_args(city, f, **chart_args))
    return _page("planner/scorecards.html", session, city, f, rows=rows, city_row=city_row)


@bp.get("/scorecards/trend.png")
@roles_required("planner")
def trend_chart():
    """Weekly volume, median time to close and SLA % of one department or crew (or the
    city), beside the city's."""
    session, city, f = _setup()
    department = request.args.get("department") or None
    crew = request.args.get("crew") or None
    if department in ("(none)",) or crew in ("(none)",):
        department = department if department != "(none)" else None
        crew = None
    weeks = an.weekly_trend(session, city, f, department=department, crew=crew)
    title = crew or department or city.name
    return Response(charts.trend_chart(weeks, title), mimetype="image/png")


# --------------------------------------------------------------------------- downloads


def _export_frame(view: str, session: Session, city: Jurisdiction, f: an.Filters) -> pd.DataFrame:
    if view == "heat":
        points, _ = an.heat_points(session, city, f, an.check_heat_cell(request.args.get("cell")))
        lat = np.array([p[0] for p in points], dtype=np.float64)
        lon = np.array([p[1] for p in points], dtype=np.float64)
        return gpd.GeoDataFrame(
            {"lat": lat, "lon": lon, "requests": [p[2] for p in points]},
            geometry=gpd.points_from_xy(lon, lat),
            crs=4326,
        )
    if view == "areas":
        return _areas(session, city, f).areas
    if view == "hotspots":
        result = hs.hotspots(
            session, city, f, an.check_hex_size(request.args.get("size")), _compare()
        )
        return result.cells
    if view == "gaps":
        table = an.service_gaps(
            session,
            city,
            f,
            layer=request.args.get("layer") or None,
            size=request.args.get("size") or None,
        )
        frame = table.areas.copy()
        frame["verdict"] = [_gap_label(r) for _, r in frame.iterrows()]
        return frame
    if view == "scorecards":
        return an.scorecards(session, city, f)
    flagged = an.flagged_points(session, city, f)
    rows = _flag_rows(flagged)
    frame = pd.DataFrame(rows, columns=["lat", "lon", "requests", "addresses", "example"])
    return gpd.GeoDataFrame(
        frame, geometry=gpd.points_from_xy(frame["lon"], frame["lat"]), crs=4326
    )


@bp.get("/export/<view>.<fmt_name>")
@roles_required("planner")
def export(view: str, fmt_name: str):
    """Any view as CSV (geometry as WKT), GeoJSON or GeoPackage."""
    if view not in VIEWS or fmt_name not in charts.FORMATS:
        abort(404)
    session, city, f = _setup()
    frame = _export_frame(view, session, city, f)
    layer = f"{city.slug}-{view}".replace("-", "_")
    body, mimetype = charts.export(frame, fmt_name, layer)
    stamp = date.today().isoformat()
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{city.slug}-{view}-{stamp}.{fmt_name}"'
    )
    return response
