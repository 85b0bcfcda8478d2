"""Pictures and downloads of the planner views: colour classes, PNG charts and maps
(matplotlib, Agg, no pyplot state shared between requests), and CSV / GeoJSON / GeoPackage.
"""

from __future__ import annotations

import io
import math
import tempfile
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure
from matplotlib.patches import PathPatch
from matplotlib.path import Path as MplPath

# Light to dark; dark always means worse, whichever way the metric runs.
RAMP = ("#fef0d9", "#fdcc8a", "#fc8d59", "#e34a33", "#b30000")
NO_DATA = "#d9d9d9"
SPOT_COLOURS = {
    "hot 99": "#b2182b",
    "hot 95": "#ef8a62",
    "hot 90": "#fddbc7",
    "none": "#f7f7f7",
    "cold 90": "#d1e5f0",
    "cold 95": "#67a9cf",
    "cold 99": "#2166ac",
}
EMERGING_COLOURS = {
    "new hot spot": "#b2182b",
    "intensifying hot spot": "#d6604d",
    "persistent hot spot": "#f4a582",
    "former hot spot": "#fddbc7",
    "new cold spot": "#2166ac",
    "persistent cold spot": "#92c5de",
    "former cold spot": "#d1e5f0",
    "none": "#f7f7f7",
}
GAP_COLOURS = {
    "SLA and time to close": "#67001f",
    "SLA": "#d6604d",
    "time to close": "#f4a582",
    "no significant gap": "#e0e0e0",
    "too few requests": "#ffffff",
}
FORMATS = {
    "csv": "text/csv",
    "geojson": "application/geo+json",
    "gpkg": "application/geopackage+sqlite3",
}


def classes(
    values: pd.Series, worse_when_high: bool, n: int = 5
) -> tuple[list[str], list[tuple[str, str]]]:
    """Quantile classes: a fill colour per value and the legend as (colour, label)."""
    arr = values.astype("float64").to_numpy()
    ok = np.isfinite(arr)
    fills = [NO_DATA] * len(arr)
    legend: list[tuple[str, str]] = []
    if ok.any():
        breaks = np.unique(np.quantile(arr[ok], np.linspace(0, 1, n + 1)))
        if len(breaks) == 1:
            breaks = np.array([breaks[0], breaks[0]])
        k = len(breaks) - 1
        ramp = RAMP if worse_when_high else RAMP[::-1]
        # Spread the classes we have over the ramp's full length.
        picks = [ramp[round(i * (len(ramp) - 1) / max(k - 1, 1))] for i in range(k)]
        idx = np.clip(np.searchsorted(breaks, arr, side="right") - 1, 0, k - 1)
        for pos in np.flatnonzero(ok):
            fills[pos] = picks[idx[pos]]
        for i in range(k):
            legend.append((picks[i], f"{_short(breaks[i])} - {_short(breaks[i + 1])}"))
    if not ok.all():
        legend.append((NO_DATA, "no data"))
    return fills, legend


def _short(value: float) -> str:
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.1f}"


# --------------------------------------------------------------------------- downloads


def _plain_frame(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object:
            out[col] = out[col].where(out[col].notna(), None)
    return out


def export(frame: pd.DataFrame, fmt: str, layer: str) -> tuple[bytes, str]:
    """The view as CSV (geometry as WKT), GeoJSON or GeoPackage bytes, and its MIME type."""
    if fmt not in FORMATS:
        raise ValueError(fmt)
    if isinstance(frame, gpd.GeoDataFrame):
        gdf = frame
    else:
        gdf = gpd.GeoDataFrame(frame, geometry=[None] * len(frame), crs=4326)
    gdf = _plain_frame(gdf)
    if fmt == "csv":
        table = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
        if gdf.geometry.notna().any():
            table["wkt"] = [None if g is None else shapely.to_wkt(g) for g in gdf.geometry]
        return table.to_csv(index=False).encode("utf-8"), FORMATS[fmt]
    if fmt == "geojson":
        return gdf.to_json(na="null", drop_id=True).encode("utf-8"), FORMATS[fmt]
    with tempfile.TemporaryDirectory(prefix="civicpin-export-") as tmp:
        path = Path(tmp) / f"{layer}.gpkg"
        gdf.to_file(path, driver="GPKG", layer=layer, engine="pyogrio")
        return path.read_bytes(), FORMATS[fmt]


# --------------------------------------------------------------------------- pictures


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def trend_chart(weeks: pd.DataFrame, title: str) -> bytes:
    """Three small panels per week: volume, median time to close, SLA %, with the city."""
    fig = Figure(figsize=(7.2, 2.2), layout="constrained")
    axes = fig.subplots(1, 3)
    x = pd.to_datetime(weeks["week"]) if len(weeks) else pd.Series([], dtype="datetime64[ns]")
    panels = (
        ("Requests / week", "requests", None),
        ("Median hours to close", "median_hours", "city_median_hours"),
        ("SLA %", "sla_pct", "city_sla_pct"),
    )
    for ax, (label, mine, city) in zip(axes, panels, strict=True):
        ax.set_title(label, fontsize=8)
        ax.tick_params(labelsize=6)
        if len(weeks):
            ax.plot(x, weeks[mine], marker="o", markersize=2.5, linewidth=1.2, color="#2b6cb0",
                    label=title)  # fmt: skip
            if city:
                ax.plot(x, weeks[city], linewidth=1, linestyle="--", color="#718096", label="city")
            ax.tick_params(axis="x", labelrotation=30)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.grid(alpha=0.3)
    axes[2].legend(fontsize=6, loc="lower left")
    return _png(fig)


def _patches(geom: Any) -> list[PathPatch]:
    out = []
    for poly in getattr(geom, "geoms", [geom]):
        if poly.is_empty or poly.geom_type != "Polygon":
            continue
        rings = [np.asarray(poly.exterior.coords)] + [np.asarray(r.coords) for r in poly.interiors]
        verts = np.concatenate(rings)
        codes = np.concatenate(
            [
                [MplPath.MOVETO] + [MplPath.LINETO] * (len(r) - 2) + [MplPath.CLOSEPOLY]
                for r in rings
            ]
        )
        out.append(PathPatch(MplPath(verts, codes)))
    return out


def map_picture(
    gdf: gpd.GeoDataFrame, fills: list[str], title: str, legend: list[tuple[str, str]]
) -> bytes:
    """A choropleth as PNG, in Web Mercator so it looks like the map on the page."""
    fig = Figure(figsize=(7, 7), layout="constrained")
    ax = fig.subplots()
    ax.set_title(title, fontsize=10)
    ax.set_axis_off()
    shown = gdf.to_crs(3857)
    patches, colours = [], []
    for geom, fill in zip(shown.geometry, fills, strict=True):
        if geom is None:
            continue
        for patch in _patches(geom):
            patches.append(patch)
            colours.append(fill)
    if patches:
        coll = PatchCollection(patches, facecolor=colours, edgecolor="#4a5568", linewidth=0.3)
        ax.add_collection(coll)
        minx, miny, maxx, maxy = shown.total_bounds
        if all(math.isfinite(v) for v in (minx, miny, maxx, maxy)):
            ax.set_xlim(minx, maxx)
            ax.set_ylim(miny, maxy)
        ax.set_aspect("equal")
    handles = [
        PathPatch(MplPath([(0, 0), (1, 0), (1, 1), (0, 0)]), facecolor=c, edgecolor="#4a5568")
        for c, _ in legend
    ]
    if handles:
        ax.legend(handles, [label for _, label in legend], fontsize=7, loc="lower left")
    return _png(fig)
