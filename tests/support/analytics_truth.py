"""Independent computations on the LA demo's source files, for the analytics tests.

Everything here starts from the CSV and the Neighborhood Council GeoJSON with pandas,
geopandas and pyproj, never from civicpin's analytics code: the per-request measures, the
zone of each point (geopandas spatial join; overlaps go to the smallest council, as the
routing promises), and the same aggregations written out the plain way.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime

import esda
import geopandas as gpd
import libpysal
import numpy as np
import pandas as pd
import shapely
import sqlalchemy as sa
from scipy import stats

from intake.demo import catalog
from spatial.settings import PROJECT_ROOT

DATA = str(PROJECT_ROOT / "intake" / "demo" / "data" / "los_angeles") + "/"
CSV = DATA + "la_311_2020_sample_normalized.csv"
NC = DATA + "la_neighborhood_councils.geojson"
TZ = "America/Los_Angeles"
STATUS = {
    "Closed": "closed",
    "Cancelled": "cancelled",
    "Open": "new",
    "Pending": "in_progress",
    "Referred Out": "referred",
}
OPEN = {"new", "acknowledged", "in_progress"}
# Any time after the demo's due dates: every open demo request is overdue by now.
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _local(values: pd.Series) -> pd.Series:
    parsed = pd.to_datetime(values.replace("", None), format="ISO8601")
    return parsed.dt.tz_localize(
        TZ, ambiguous=np.zeros(len(parsed), dtype=bool), nonexistent="shift_forward"
    ).dt.tz_convert("UTC")


@functools.cache
def requests() -> pd.DataFrame:
    """One row per CSV record with the measures the planner pages show."""
    df = pd.read_csv(CSV, dtype=str, keep_default_na=False)
    sla = {s["source"]: float(s["sla_hours"]) for s in catalog.SERVICES}
    dept = {s["source"]: s["department"] for s in catalog.SERVICES}
    code = {s["source"]: s["code"] for s in catalog.SERVICES}
    out = pd.DataFrame(
        {
            "external_id": df["request_id"],
            "category": df["category"].map(code),
            "department": df["category"].map(dept),
            "status": df["status"].map(STATUS),
            "requested": _local(df["created_at"]),
            "closed": _local(df["closed_at"]),
            "lat": pd.to_numeric(df["latitude"], errors="coerce"),
            "lon": pd.to_numeric(df["longitude"], errors="coerce"),
            "address": df["address"].replace("", None),
        }
    )
    out["is_open"] = out["status"].isin(OPEN)
    out["due"] = out["requested"] + pd.to_timedelta(df["category"].map(sla), unit="h")
    done = ~out["is_open"] & out["closed"].notna() & (out["closed"] >= out["requested"])
    out["ttc"] = np.where(
        done, (out["closed"] - out["requested"]).dt.total_seconds() / 3600, np.nan
    )
    closed_known = ~out["is_open"] & out["closed"].notna()
    out["sla_counted"] = closed_known | (out["is_open"] & (out["due"] < NOW))
    out["sla_met"] = closed_known & (out["closed"] <= out["due"])
    out["overdue"] = out["is_open"] & (out["due"] < NOW)
    return out


@functools.cache
def councils() -> gpd.GeoDataFrame:
    nc = gpd.read_file(NC)[["nc_id", "name", "geometry"]]
    nc["area"] = nc.to_crs(3310).area  # California Albers (equal area)
    return nc


@functools.cache
def council_of_request() -> pd.Series:
    """The council code of each located request (smallest council where they overlap)."""
    df = requests()
    pts = gpd.GeoDataFrame(
        df[["external_id"]],
        geometry=gpd.points_from_xy(df["lon"], df["lat"]),
        crs=4326,
    )[df["lat"].notna().to_numpy()]
    hits = gpd.sjoin(pts, councils(), predicate="intersects", how="inner")
    hits = hits.sort_values(["area", "nc_id"]).drop_duplicates("external_id", keep="first")
    return hits.set_index("external_id")["nc_id"].astype(str)


def aggregate(frame: pd.DataFrame) -> dict:
    """The metrics of a set of request rows, computed the plain way."""
    ttc = frame["ttc"].dropna()
    sla_n = int(frame["sla_counted"].sum())
    met = int(frame["sla_met"].sum())
    return {
        "requests": len(frame),
        "closed": len(ttc),
        "median_hours": float(ttc.quantile(0.5)) if len(ttc) else None,
        "p90_hours": float(ttc.quantile(0.9)) if len(ttc) else None,
        "sla_n": sla_n,
        "sla_met": met,
        "sla_pct": 100.0 * met / sla_n if sla_n else None,
        "backlog": int(frame["is_open"].sum()),
        "overdue": int(frame["overdue"].sum()),
    }


def by_council() -> dict[str, dict]:
    df = requests().copy()
    zone = council_of_request()
    df["nc"] = df["external_id"].map(zone)
    out = {str(code): aggregate(df[df["nc"] == str(code)]) for code in councils()["nc_id"]}
    return out


def fmt(value, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return f"{value:,.{digits}f}"


# --------------------------------------------------------------------------- hexagons


def points(srid: int, frame=None) -> gpd.GeoDataFrame:
    df = requests() if frame is None else frame
    df = df[df["lat"].notna()]
    return gpd.GeoDataFrame(
        df.reset_index(drop=True), geometry=gpd.points_from_xy(df["lon"], df["lat"]), crs=4326
    ).to_crs(srid)


def hex_grid(s, city, size: int, frames: list) -> tuple[gpd.GeoDataFrame, list]:
    """ST_HexagonGrid cells over the city and the points, with point counts per frame."""
    srid = city.metric_srid
    boundary = shapely.from_wkb(bytes(s.execute(
        sa.text("SELECT ST_AsBinary(ST_Transform(boundary, metric_srid)) FROM jurisdiction "
                "WHERE id = :j"), {"j": city.id}).scalar()))  # fmt: skip
    pts = [points(srid, f) for f in frames]
    xs = [boundary.bounds] + [tuple(p.total_bounds) for p in pts if len(p)]
    x0, y0 = min(b[0] for b in xs), min(b[1] for b in xs)
    x1, y1 = max(b[2] for b in xs), max(b[3] for b in xs)
    rows = s.execute(
        sa.text(
            "SELECT i, j, ST_AsBinary(geom) AS wkb FROM ST_HexagonGrid(:size, "
            "ST_MakeEnvelope(:x0, :y0, :x1, :y1, :srid))"
        ),
        {"size": size, "x0": x0, "y0": y0, "x1": x1, "y1": y1, "srid": srid},
    ).all()
    grid = gpd.GeoDataFrame(
        {"i": [r.i for r in rows], "j": [r.j for r in rows]},
        geometry=[shapely.from_wkb(bytes(r.wkb)) for r in rows],
        crs=srid,
    )
    counts = []
    for p in pts:
        hit = gpd.sjoin(p, grid, predicate="within", how="inner")
        assert len(hit) == len(p)  # every point in exactly one hexagon
        counts.append(hit.groupby(["i", "j"]).size().to_dict())
    keep = grid.intersects(boundary)
    for c in counts:
        keep |= np.array([(i, j) in c for i, j in zip(grid["i"], grid["j"], strict=True)])
    return grid[keep].reset_index(drop=True), counts


def esda_z(grid: gpd.GeoDataFrame, counts: dict) -> dict:
    y = np.array([counts.get((i, j), 0) for i, j in zip(grid["i"], grid["j"], strict=True)], float)
    # Contiguity from the polygons themselves (a hair of buffer: shared edges are computed
    # per cell and need not be bit-identical).
    w = libpysal.weights.fuzzy_contiguity(grid, tolerance=1e-7, buffering=True)
    g = esda.G_Local(y, w, transform="B", star=True, permutations=0)
    return {(i, j): z for i, j, z in zip(grid["i"], grid["j"], g.Zs, strict=True)}, w


# --------------------------------------------------------------------------- gaps


def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg by hand: q(i) = min over j >= i of p(j) m / j."""
    order = np.argsort(p)
    m = len(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1)
    out = np.empty(m)
    out[order] = q
    return out


def council_gaps() -> pd.DataFrame:
    """The stated gap method, written out per council and category."""
    df = requests().copy()
    df["nc"] = df["external_id"].map(council_of_request())
    df = df[df["nc"].notna()]
    # City rates per category, over the requests in the areas.
    cat = df.groupby("category").agg(n=("sla_counted", "sum"), met=("sla_met", "sum"))
    p_c = cat["met"] / cat["n"]
    med = df.groupby("category")["ttc"].median()
    df["slow"] = df["ttc"] > df["category"].map(med)
    q_c = df.groupby("category")["slow"].sum() / df.groupby("category")["ttc"].count()
    rows = []
    for nc, part in df.groupby("nc"):
        n_ac = part.groupby("category")["sla_counted"].sum()
        closed_ac = part.groupby("category")["ttc"].count()
        e = float((n_ac * p_c.reindex(n_ac.index)).sum())
        v = float((n_ac * p_c.reindex(n_ac.index) * (1 - p_c.reindex(n_ac.index))).sum())
        es = float((closed_ac * q_c.reindex(closed_ac.index)).sum())
        vs = float(
            (closed_ac * q_c.reindex(closed_ac.index) * (1 - q_c.reindex(closed_ac.index))).sum()
        )
        o, n = int(part["sla_met"].sum()), int(part["sla_counted"].sum())
        so, nclosed = int(part["slow"].sum()), int(part["ttc"].count())
        rows.append({
            "area": nc, "o": o, "e": e, "z": (o - e) / np.sqrt(v) if n >= 10 and v > 0 else np.nan,
            "so": so, "es": es, "zs": (so - es) / np.sqrt(vs) if nclosed >= 10 and vs > 0 else np.nan,
            "n": n, "nclosed": nclosed,
        })  # fmt: skip
    exp = pd.DataFrame(rows).set_index("area")
    p = stats.norm.cdf(exp["z"].dropna().to_numpy())
    exp.loc[exp["z"].notna(), "q"] = _bh(p)
    ps = stats.norm.sf(exp["zs"].dropna().to_numpy())
    exp.loc[exp["zs"].notna(), "qs"] = _bh(ps)

    return exp
