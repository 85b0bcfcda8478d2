"""Reading polygon files, creating cities, importing zone layers and checking them.

Files are read through geopandas (pyogrio) and reprojected to EPSG:4326. Geometry
problems are repaired with ``shapely.make_valid`` and reported; overlaps, gaps and
coverage are measured in PostGIS on the rows just inserted, in the caller's transaction,
so a failed import leaves nothing behind.
"""

from __future__ import annotations

import json
import math
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import geopandas as gpd
import pandas as pd
import pyogrio
import shapely
import sqlalchemy as sa
from geoalchemy2.shape import from_shape
from pyproj.exceptions import ProjError
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry
from sqlalchemy.orm import Session

from spatial.cities import validate_slug
from spatial.errors import InvalidInput
from spatial.models import Jurisdiction, Zone, ZoneLayer

SUFFIX_KINDS = {
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".shp": "Shapefile",
    ".zip": "zipped Shapefile",
    ".gpkg": "GeoPackage",
}
PREFIX_RE = re.compile(r"^[A-Z0-9]{1,8}$")
CODE_FIELDS = ("code", "id", "zone_code", "zone_id")
NAME_FIELDS = ("name", "title", "label", "zone_name")
MIN_AREA_M2 = 1.0
# Enough for a map and a person to act on; the counts always cover everything found.
REPORT_LIST_LIMIT = 500


# --------------------------------------------------------------------------- reading


def _gdal_detail(exc: Exception, source: str) -> str:
    """GDAL's first sentence, without the (long, repeated) path."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = text.split(";")[0].replace(f"'{source}'", "").strip().rstrip(".")
    return text or type(exc).__name__


def _single(paths: list[str], what: str, where: str) -> str:
    if not paths:
        raise InvalidInput(f"{where} holds no {what} file", field="file")
    if len(paths) > 1:
        names = ", ".join(sorted(Path(p).name for p in paths))
        raise InvalidInput(f"{where} holds several {what} files ({names}): give one", field="file")
    return paths[0]


def _source_of(path: Path) -> tuple[str, str]:
    """The GDAL data source to open for ``path`` and a word for its format."""
    if path.is_dir():
        shp = _single([str(p) for p in sorted(path.rglob("*.shp"))], ".shp", f"folder {path.name}")
        return shp, "Shapefile"
    suffix = path.suffix.lower()
    kind = SUFFIX_KINDS.get(suffix)
    if kind is None:
        raise InvalidInput(
            f"{path.name}: unsupported file type {suffix or '(none)'!r}; use .geojson, .json, "
            ".shp, a Shapefile folder or .zip, or .gpkg",
            field="file",
        )
    if suffix == ".zip":
        try:
            with zipfile.ZipFile(path) as zf:
                names = [
                    n
                    for n in zf.namelist()
                    if n.lower().endswith(".shp") and not n.startswith("__MACOSX/")
                ]
        except (zipfile.BadZipFile, OSError) as exc:
            raise InvalidInput(
                f"{path.name} is not a readable zip file ({exc})", field="file"
            ) from None
        inner = _single(names, ".shp", path.name)
        return f"/vsizip/{path.resolve()}/{inner}", kind
    return str(path), kind


def _check_lonlat(gdf: gpd.GeoDataFrame, name: str, why: str) -> None:
    minx, miny, maxx, maxy = gdf.total_bounds
    finite = all(math.isfinite(v) for v in (minx, miny, maxx, maxy))
    if not finite or minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise InvalidInput(
            f"{name}: coordinates are not longitude/latitude but {why}; "
            "save the file with its coordinate system (.prj / crs) or in EPSG:4326",
            field="file",
        )


def read_polygons(path: str | Path, layer: str | None = None) -> gpd.GeoDataFrame:
    """Read a polygon layer (GeoJSON, Shapefile file/folder/.zip, GeoPackage) in EPSG:4326.

    Rows with empty geometries are kept (the importer reports them); any other
    non-polygon geometry is an error. ``layer`` picks a layer of a multi-layer GeoPackage.
    Raises :class:`InvalidInput` with one line for every problem with the file.
    """
    path = Path(path)
    if not path.exists():
        raise InvalidInput(f"{path}: no such file or folder", field="file")
    source, kind = _source_of(path)
    name = path.name
    try:
        # Non-spatial tables (a GeoPackage may hold some) are not candidates.
        layers = [str(n) for n, geometry_type in pyogrio.list_layers(source) if geometry_type]
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, OSError) as exc:
        raise InvalidInput(
            f"{name} is not a readable {kind} file ({_gdal_detail(exc, source)})", field="file"
        ) from None
    if layer is not None and layer not in layers:
        raise InvalidInput(
            f"{name} has no layer {layer!r}; layers: {', '.join(layers)}", field="layer"
        )
    if layer is None and len(layers) > 1:
        raise InvalidInput(
            f"{name} holds several layers ({', '.join(layers)}): name the one to use",
            field="layer",
        )
    if not layers:
        raise InvalidInput(f"{name} has no layer with geometries", field="file")
    layer = layer or layers[0]
    try:
        gdf = gpd.read_file(source, layer=layer, engine="pyogrio")
    except (
        pyogrio.errors.DataSourceError,
        pyogrio.errors.DataLayerError,
        pyogrio.errors.FieldError,
        pyogrio.errors.GeometryError,
        ProjError,
        ValueError,
        OSError,
    ) as exc:
        raise InvalidInput(
            f"{name} is not a readable {kind} file ({_gdal_detail(exc, source)})", field="file"
        ) from None
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.geometry.name not in gdf.columns:
        raise InvalidInput(f"{name} has no geometry column", field="file")
    if len(gdf) == 0:
        raise InvalidInput(f"{name} has no features", field="file")

    geoms = gdf.geometry
    present = geoms.notna() & ~geoms.is_empty
    types = geoms[present].geom_type
    polygonal = types.isin(["Polygon", "MultiPolygon"])
    if not polygonal.any():
        found = ", ".join(sorted(set(types))) or "only empty geometries"
        raise InvalidInput(f"{name} has no polygon geometries (found {found})", field="file")
    if not polygonal.all():
        others = ", ".join(sorted(set(types[~polygonal])))
        raise InvalidInput(
            f"{name}: {int((~polygonal).sum())} of {len(gdf)} features are not polygons "
            f"({others}); give a polygon layer",
            field="file",
        )

    present_gdf = gdf[present]
    if gdf.crs is None:
        _check_lonlat(present_gdf, name, "the file has no coordinate system")
        return gdf.set_crs(4326)
    try:
        is_geographic = gdf.crs.is_geographic
        if is_geographic:
            # A GeoJSON without a crs member is read as 4326 whatever its numbers are.
            _check_lonlat(present_gdf, name, f"the file says {gdf.crs.to_string()}")
        out = gdf if gdf.crs.equals("EPSG:4326") else gdf.to_crs(4326)
    except ProjError as exc:
        raise InvalidInput(f"{name}: cannot reproject to EPSG:4326 ({exc})", field="file") from None
    _check_lonlat(out[present], name, f"reprojecting from {gdf.crs.to_string()} failed")
    return out


# --------------------------------------------------------------------------- geometry


def _polygon_parts(geom: BaseGeometry) -> list[Polygon]:
    if geom is None or geom.is_empty:
        return []
    if isinstance(geom, Polygon):
        return [geom]
    if hasattr(geom, "geoms"):
        return [p for part in geom.geoms for p in _polygon_parts(part)]
    return []


def as_multipolygon(geom: BaseGeometry | None) -> MultiPolygon | None:
    """The polygonal parts of ``geom`` (2D) as a MultiPolygon, or None if there are none."""
    if geom is None:
        return None
    parts = _polygon_parts(shapely.force_2d(geom))
    return MultiPolygon(parts) if parts else None


def repair(geom: BaseGeometry | None) -> tuple[MultiPolygon | None, str | None]:
    """The geometry as a valid MultiPolygon and, if it needed repair, why."""
    if geom is None or geom.is_empty:
        return None, None
    geom = shapely.force_2d(geom)
    if shapely.is_valid(geom):
        return as_multipolygon(geom), None
    return as_multipolygon(shapely.make_valid(geom)), shapely.is_valid_reason(geom)


def utm_epsg(lon: float, lat: float) -> int:
    """The EPSG code of the WGS 84 UTM zone holding (lon, lat)."""
    zone = min(max(int((lon + 180.0) // 6.0) + 1, 1), 60)
    return (32600 if lat >= 0 else 32700) + zone


# --------------------------------------------------------------------------- cities


def _initials(name: str, slug: str) -> str:
    words = re.findall(r"[A-Za-z0-9]+", name) or re.findall(r"[a-z0-9]+", slug)
    return "".join(w[0] for w in words).upper()[:4]


def validate_timezone(tz: str) -> str:
    """An IANA time zone name, or a one-line error naming the bad value."""
    tz = (tz or "").strip()
    try:
        # "localtime" and "posixrules" name whatever the server happens to be set to.
        if tz in {"localtime", "posixrules"}:
            raise ValueError(tz)
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"unknown time zone {tz!r} (use an IANA name such as 'America/Los_Angeles')",
            field="timezone",
        ) from None
    return tz


def create_city(
    session: Session,
    slug: str,
    name: str,
    timezone: str,
    boundary_path: str | Path,
    prefix: str | None = None,
    boundary_layer: str | None = None,
    fill_holes_m2: float = 10_000.0,
) -> Jurisdiction:
    """Create a jurisdiction whose boundary is the union of the polygons in a file.

    ``metric_srid`` is the UTM zone of the boundary's centroid; ``public_id_prefix`` is
    ``prefix`` or the initials of ``name``; ``boundary_layer`` picks a GeoPackage layer.
    Holes smaller than ``fill_holes_m2`` are filled: unions of district layers leave
    thousands of slivers between neighbours (LA's councils: 4,300 under 1 ha), and a pin in
    one must not count as outside the city; real enclaves are far larger.
    Everything is checked before the insert.
    """
    if fill_holes_m2 < 0:
        raise InvalidInput("the hole-filling area must not be negative", field="fill_holes_m2")
    validate_slug(slug, "slug")
    name = (name or "").strip()
    if not name:
        raise InvalidInput("the city name must not be empty", field="name")
    if len(name) > 200:
        raise InvalidInput("the city name must be at most 200 characters", field="name")
    timezone = validate_timezone(timezone)
    if prefix is not None:
        prefix = prefix.strip()
        if not PREFIX_RE.match(prefix):
            raise InvalidInput(
                f"public id prefix {prefix!r} must be 1-8 upper-case letters or digits",
                field="prefix",
            )
    else:
        prefix = _initials(name, slug)
    if session.scalar(sa.select(Jurisdiction.id).where(Jurisdiction.slug == slug)) is not None:
        raise InvalidInput(f"a city with slug {slug!r} already exists", field="slug")
    # Public ids are unique across the install: two cities numbering with one prefix would
    # hand out the same ids.
    other = session.scalar(
        sa.select(Jurisdiction.slug).where(Jurisdiction.public_id_prefix == prefix)
    )
    if other is not None:
        raise InvalidInput(
            f"public id prefix {prefix!r} is the city {other!r}'s: choose another", field="prefix"
        )

    gdf = read_polygons(boundary_path, layer=boundary_layer)
    parts = [mp for mp, _ in (repair(g) for g in gdf.geometry) if mp is not None]
    boundary = as_multipolygon(shapely.union_all(parts)) if parts else None
    if boundary is None:
        raise InvalidInput(f"{Path(boundary_path).name} holds no usable polygon", field="boundary")
    centre = boundary.centroid
    if fill_holes_m2 > 0:
        boundary = fill_small_holes(boundary, utm_epsg(centre.x, centre.y), fill_holes_m2)
    city = Jurisdiction(
        slug=slug,
        name=name,
        timezone=timezone,
        metric_srid=utm_epsg(centre.x, centre.y),
        public_id_prefix=prefix,
        boundary=from_shape(boundary, srid=4326),
    )
    session.add(city)
    session.flush()
    return city


def fill_small_holes(mp: MultiPolygon, epsg: int, max_m2: float) -> MultiPolygon:
    """``mp`` with interior rings under ``max_m2`` (measured in ``epsg``) removed."""
    rings = [(i, j, Polygon(r)) for i, p in enumerate(mp.geoms) for j, r in enumerate(p.interiors)]
    if not rings:
        return mp
    areas = gpd.GeoSeries([r for _, _, r in rings], crs=4326).to_crs(epsg).area.to_numpy()
    keep: dict[int, list] = {}
    for (i, j, _), area in zip(rings, areas, strict=True):
        if area >= max_m2:
            keep.setdefault(i, []).append(mp.geoms[i].interiors[j])
    return MultiPolygon([Polygon(p.exterior, keep.get(i, [])) for i, p in enumerate(mp.geoms)])


# --------------------------------------------------------------------------- zone layers


@dataclass
class ImportResult:
    layer: ZoneLayer
    report: dict[str, Any] = field(default_factory=dict)


def _pick_field(
    columns: list[str], given: str | None, exact: tuple[str, ...], suffix: str, what: str
) -> str | None:
    if given is not None:
        if given not in columns:
            raise InvalidInput(
                f"no field {given!r} for the zone {what}; available fields: "
                f"{', '.join(columns) or '(none)'}",
                field=f"{what}_field",
            )
        return given
    lower = {c.lower(): c for c in columns}
    for candidate in exact:
        if candidate in lower:
            return lower[candidate]
    return next((c for c in columns if c.lower().endswith(suffix)), None)


def _text(value: Any) -> str:
    """A field value as text; integer-like floats (``19.0``) lose their ``.0``."""
    if value is None:
        return ""
    if isinstance(value, float | int) and not isinstance(value, bool):
        if isinstance(value, float) and math.isnan(value):
            return ""
        if float(value).is_integer():
            return str(int(value))
        return str(value)
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalars
        return _text(value.item())
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    return str(value).strip()


def _codes_and_names(
    gdf: gpd.GeoDataFrame,
    file_name: str,
    code_field: str | None,
    name_field: str | None,
    join_parts: bool = False,
) -> tuple[list[str], list[str], str, str | None]:
    columns = [c for c in gdf.columns if c != gdf.geometry.name]
    code_field = _pick_field(columns, code_field, CODE_FIELDS, "_id", "code")
    name_field = _pick_field(columns, name_field, NAME_FIELDS, "_name", "name")
    if code_field is None:
        # Row numbers would change with the next file's order and mean nothing to a
        # rule or a crew: the admin names the field.
        raise InvalidInput(
            f"{file_name}: no field is an obvious zone code; choose the code field "
            f"(fields: {', '.join(columns) or 'none'})",
            field="code_field",
        )
    codes = [_text(v) for v in gdf[code_field].tolist()]
    empty = [i + 1 for i, c in enumerate(codes) if not c]
    if empty:
        rows = ", ".join(str(i) for i in empty[:10])
        raise InvalidInput(
            f"{file_name}: {len(empty)} features have an empty code in field {code_field!r} "
            f"(feature numbers {rows}); pick another field with --code-field",
            field="code_field",
        )
    long = [c for c in codes if len(c) > 100]
    if long:
        raise InvalidInput(
            f"zone code {long[0][:40]!r}... is longer than 100 characters", field="code_field"
        )
    seen: set[str] = set()
    dups: list[str] = []
    for c in codes:
        if c in seen and c not in dups:
            dups.append(c)
        seen.add(c)
    if dups and not join_parts:
        shown = ", ".join(repr(d) for d in dups[:10]) + (" ..." if len(dups) > 10 else "")
        raise InvalidInput(
            f"{file_name}: zone codes in field {code_field!r} must be unique; duplicated: {shown}"
            " (pick another field, or join the features that share a code into one zone)",
            field="code_field",
        )
    if name_field is None:
        names = list(codes)
    else:
        names = [
            (_text(v) or c)[:200] for v, c in zip(gdf[name_field].tolist(), codes, strict=True)
        ]
    return codes, names, code_field, name_field


def _populations(gdf: gpd.GeoDataFrame, field_name: str | None, codes: list[str]) -> list[Any]:
    """Each zone's population from ``field_name`` (whole numbers; empty is unknown)."""
    if field_name is None:
        return [None] * len(gdf)
    columns = [c for c in gdf.columns if c != gdf.geometry.name]
    if field_name not in columns:
        raise InvalidInput(
            f"no field {field_name!r} for the population; available fields: {', '.join(columns)}",
            field="population_field",
        )
    out: list[Any] = []
    for value, code in zip(gdf[field_name].tolist(), codes, strict=True):
        text = _text(value).replace(",", "")
        if not text:
            out.append(None)
            continue
        try:
            number = float(text)
        except ValueError:
            number = -1.0
        if not math.isfinite(number) or number < 0 or number > 2**31 - 1:
            raise InvalidInput(
                f"zone {code}: population {text[:40]!r} in field {field_name!r} is not a "
                "whole number of people",
                field="population_field",
            )
        out.append(round(number))
    return out


@dataclass(frozen=True)
class FileField:
    """A property of a polygon file, for choosing the code, name and population fields."""

    name: str
    sample: str  # the first non-empty value
    unique: bool  # every feature has a value, and no two the same: a code candidate
    numeric: bool


@dataclass(frozen=True)
class FileFields:
    features: int
    fields: list[FileField]
    code_field: str | None  # the obvious choices, if any
    name_field: str | None
    population_field: str | None


def file_fields(path: str | Path, source_layer: str | None = None) -> FileFields:
    """The property fields of a polygon file with a sample value each, and the fields
    that obviously hold the code, name and population (None where none does)."""
    gdf = read_polygons(path, layer=source_layer)
    columns = [c for c in gdf.columns if c != gdf.geometry.name]
    fields: list[FileField] = []
    for col in columns:
        values = [_text(v) for v in gdf[col].tolist()]
        present = [v for v in values if v]
        numeric = bool(present) and all(_is_number(v) for v in present)
        fields.append(
            FileField(
                name=str(col),
                sample=(present[0][:60] if present else ""),
                unique=len(present) == len(values) and len(set(present)) == len(present),
                numeric=numeric,
            )
        )
    population = next(
        (f.name for f in fields if f.numeric and "pop" in f.name.lower()),
        None,
    )
    return FileFields(
        features=len(gdf),
        fields=fields,
        code_field=_pick_field(columns, None, CODE_FIELDS, "_id", "code"),
        name_field=_pick_field(columns, None, NAME_FIELDS, "_name", "name"),
        population_field=population,
    )


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


def _properties(gdf: gpd.GeoDataFrame) -> list[dict[str, Any]]:
    attrs = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    if attrs.columns.empty:
        return [{} for _ in range(len(gdf))]
    return json.loads(attrs.to_json(orient="records", date_format="iso", default_handler=str))


OVERLAPS_SQL = sa.text(
    """
    WITH pairs AS (
        SELECT a.code AS a, b.code AS b,
               ST_CollectionExtract(ST_Intersection(a.geom, b.geom), 3) AS g
        FROM zone a
        JOIN zone b ON b.layer_id = a.layer_id AND a.id < b.id AND ST_Intersects(a.geom, b.geom)
        WHERE a.layer_id = :layer_id
    ), measured AS (
        SELECT a, b, g, ST_Area(g::geography) AS area_m2 FROM pairs WHERE NOT ST_IsEmpty(g)
    )
    SELECT a, b, area_m2, ST_AsGeoJSON(g, 6) AS geojson
    FROM measured WHERE area_m2 > :min_area
    ORDER BY area_m2 DESC, a, b
    """
)

# One pass: the union and the difference are the costly parts, so the coverage comes
# from the same difference (covered = city - uncovered). One row even without gaps.
GAPS_SQL = sa.text(
    """
    WITH u AS (SELECT ST_Union(geom) AS g FROM zone WHERE layer_id = :layer_id),
    d AS MATERIALIZED (
        SELECT ST_CollectionExtract(ST_Difference(j.boundary, u.g), 3) AS g,
               ST_Area(j.boundary::geography) AS city_m2
        FROM jurisdiction j, u WHERE j.id = :city_id AND j.boundary IS NOT NULL
    )
    SELECT d.city_m2, COALESCE(ST_Area(d.g::geography), 0) AS uncovered_m2,
           p.area_m2, ST_X(ST_Centroid(p.g)) AS lon, ST_Y(ST_Centroid(p.g)) AS lat,
           ST_AsGeoJSON(p.g, 6) AS geojson
    FROM d
    LEFT JOIN LATERAL (
        SELECT dump.geom AS g, ST_Area(dump.geom::geography) AS area_m2 FROM ST_Dump(d.g) dump
    ) p ON p.area_m2 > :min_area
    ORDER BY p.area_m2 DESC NULLS LAST
    """
)

# Zones reaching out of the city by more than the tolerance: more than
# OUTSIDE_SHARE of their area, and more than OUTSIDE_TOLERANCE_M past the boundary (two
# files of one city seldom share their lines exactly). ST_CoveredBy (the boundary is
# prepared once) settles almost every zone before the costly differences; the buffered
# boundary is computed only if a zone gets that far.
OUTSIDE_SHARE = 0.01
OUTSIDE_TOLERANCE_M = 10.0
OUTSIDE_SQL = sa.text(
    """
    WITH c AS MATERIALIZED (
        SELECT z.code, z.name, z.geom, ST_Area(z.geom::geography) AS area_m2,
               ST_Area(ST_Difference(z.geom, j.boundary)::geography) AS outside_m2
        FROM zone z JOIN jurisdiction j ON j.id = :city_id
        WHERE z.layer_id = :layer_id AND NOT ST_CoveredBy(z.geom, j.boundary)
    ), wide AS MATERIALIZED (
        SELECT metric_srid AS srid,
               ST_Buffer(ST_Transform(boundary, metric_srid), :tolerance_m) AS g
        FROM jurisdiction WHERE id = :city_id
    )
    SELECT c.code, c.name, c.area_m2, c.outside_m2
    FROM c
    WHERE c.outside_m2 > :share * c.area_m2
      AND ST_Area(ST_Difference(ST_Transform(c.geom, (SELECT srid FROM wide)),
                                (SELECT g FROM wide))) > :min_area
    ORDER BY c.outside_m2 DESC, c.code
    """
)


def _spatial_checks(session: Session, city: Jurisdiction, layer: ZoneLayer) -> dict[str, Any]:
    """Overlaps, gaps, coverage and zones outside the city, measured by PostGIS."""
    ids = {"layer_id": layer.id, "city_id": city.id, "min_area": MIN_AREA_M2}
    overlaps = [
        {"a": r.a, "b": r.b, "area_m2": round(r.area_m2, 2), "geometry": json.loads(r.geojson)}
        for r in session.execute(OVERLAPS_SQL, ids)
    ]
    out: dict[str, Any] = {
        "overlap_count": len(overlaps),
        "overlap_area_m2": round(sum(o["area_m2"] for o in overlaps), 2),
        "overlaps": overlaps[:REPORT_LIST_LIMIT],
        "gaps": [],
        "gap_count": 0,
        "gap_area_m2": 0.0,
        "coverage_pct": None,
        "outside_boundary": [],
        "outside": [],
    }
    rows = session.execute(GAPS_SQL, ids).all()
    if not rows:  # the city has no boundary to compare with
        return out
    gaps = [
        {
            "area_m2": round(r.area_m2, 2),
            "centroid": [round(r.lon, 6), round(r.lat, 6)],
            "geometry": json.loads(r.geojson),
        }
        for r in rows
        if r.area_m2 is not None
    ]
    out["gaps"] = gaps[:REPORT_LIST_LIMIT]
    out["gap_count"] = len(gaps)
    out["gap_area_m2"] = round(sum(g["area_m2"] for g in gaps), 2)
    city_m2, uncovered_m2 = rows[0].city_m2, rows[0].uncovered_m2
    if city_m2:
        out["coverage_pct"] = round(100.0 * max(city_m2 - uncovered_m2, 0.0) / city_m2, 4)
    outside = [
        {
            "code": r.code,
            "name": r.name,
            "outside_m2": round(r.outside_m2, 1),
            "outside_pct": round(100.0 * r.outside_m2 / r.area_m2, 1) if r.area_m2 else 100.0,
        }
        for r in session.execute(
            OUTSIDE_SQL,
            {**ids, "share": OUTSIDE_SHARE, "tolerance_m": OUTSIDE_TOLERANCE_M},
        )
    ]
    out["outside"] = outside[:REPORT_LIST_LIMIT]
    out["outside_boundary"] = [o["code"] for o in outside]
    return out


def import_layer(
    session: Session,
    city: Jurisdiction,
    path: str | Path,
    layer_name: str,
    code_field: str | None = None,
    name_field: str | None = None,
    title: str | None = None,
    source_layer: str | None = None,
    *,
    population_field: str | None = None,
    draft: bool = False,
    join_parts: bool = False,
) -> ImportResult:
    """Import a polygon file as the next version of zone layer ``layer_name`` of ``city``.

    ``code_field`` may be left out only when a field obviously holds the codes (``code``,
    ``id``, ``..._id``); codes must be present and unique. Invalid polygons are repaired,
    empty ones dropped; both are reported along with overlaps, gaps, coverage and zones
    reaching outside the city (see the module docstring). The new version becomes
    current (the previous ones stay, no longer current), or with ``draft`` it stays out
    of routing until published, a first version too. With ``join_parts``, features that
    share a code are the parts of one zone (a district drawn in pieces): their polygons
    are joined, their populations added, and the report lists them. Nothing is committed
    here.
    """
    validate_slug(layer_name, "layer")
    if title is not None and len(title.strip()) > 200:
        raise InvalidInput("the layer title must be at most 200 characters", field="title")
    path = Path(path)
    gdf = read_polygons(path, layer=source_layer)
    codes, names, code_field, name_field = _codes_and_names(
        gdf, path.name, code_field, name_field, join_parts
    )
    populations = _populations(gdf, population_field, codes)
    props = _properties(gdf)

    by_code: dict[str, dict[str, Any]] = {}
    repaired: list[dict[str, str]] = []
    dropped: list[dict[str, str]] = []
    for code, name, geom, prop, population in zip(
        codes, names, gdf.geometry, props, populations, strict=True
    ):
        mp, reason = repair(geom)
        if mp is None:
            why = "empty geometry" if reason is None else f"nothing polygonal left ({reason})"
            dropped.append({"code": code, "name": name, "reason": why})
            continue
        if reason is not None:
            repaired.append({"code": code, "name": name, "reason": reason})
        row = by_code.get(code)
        if row is None:
            by_code[code] = {
                "code": code,
                "name": name,
                "parts": [mp],
                "properties": prop,
                "population": population,
            }
            continue
        row["parts"].append(mp)  # join_parts: one more piece of this zone
        if population is not None:
            row["population"] = (row["population"] or 0) + population
    rows: list[dict[str, Any]] = []
    joined: list[dict[str, Any]] = []
    for row in by_code.values():
        parts = row.pop("parts")
        if len(parts) > 1:
            joined.append({"code": row["code"], "name": row["name"], "parts": len(parts)})
            geom_mp = as_multipolygon(shapely.union_all(parts))
        else:
            geom_mp = parts[0]
        rows.append({**row, "geom": from_shape(geom_mp, srid=4326)})
    if not rows:
        raise InvalidInput(f"{path.name}: no feature has a usable polygon", field="file")

    previous = session.scalars(
        sa.select(ZoneLayer)
        .where(ZoneLayer.jurisdiction_id == city.id, ZoneLayer.name == layer_name)
        .with_for_update()
    ).all()
    if not draft:
        for old in previous:
            old.is_current = False
    layer = ZoneLayer(
        jurisdiction_id=city.id,
        name=layer_name,
        title=(title or "").strip() or None,
        version=max((old.version for old in previous), default=0) + 1,
        is_current=not draft,
        source=path.name[:500],
    )
    session.add(layer)
    session.flush()
    session.execute(sa.insert(Zone), [{**row, "layer_id": layer.id} for row in rows])

    report: dict[str, Any] = {
        "features": len(gdf),
        "zones": len(rows),
        "code_field": code_field,
        "name_field": name_field,
        "population_field": population_field,
        "joined": joined,
        "repaired": repaired,
        "dropped": dropped,
    }
    try:
        report.update(_spatial_checks(session, city, layer))
    except sa.exc.InternalError as exc:  # GEOS failures surface as internal errors
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise InvalidInput(
            f"{path.name}: PostGIS could not compare the zones ({detail})", field="file"
        ) from None
    layer.report = report
    session.flush()
    return ImportResult(layer=layer, report=report)


def _m2(area: float) -> str:
    return f"{area / 1e6:,.3f} km2" if area >= 1e6 else f"{area:,.1f} m2"


def layer_report_text(report: dict[str, Any]) -> list[str]:
    """The validation report as lines for a person (the CLI prints them)."""
    lines = [f"features: {report.get('features', 0)}, zones stored: {report.get('zones', 0)}"]
    if report.get("code_field") or report.get("name_field"):
        lines.append(
            f"codes from field {report.get('code_field') or '(row number)'}, "
            f"names from field {report.get('name_field') or '(code)'}"
            + (
                f", population from field {report['population_field']}"
                if report.get("population_field")
                else ""
            )
        )
    joined = report.get("joined", [])
    if joined:
        lines.append(f"zones joined from several features: {len(joined)}")
        lines += [f"  joined {j['code']} ({j['name']}): {j['parts']} features" for j in joined]
    repaired = report.get("repaired", [])
    lines.append(f"repaired: {len(repaired)}")
    lines += [f"  repaired {r['code']} ({r['name']}): {r['reason']}" for r in repaired]
    dropped = report.get("dropped", [])
    lines.append(f"dropped: {len(dropped)}")
    lines += [f"  dropped {d['code']} ({d['name']}): {d['reason']}" for d in dropped]
    overlaps = report.get("overlaps", [])
    n_over = report.get("overlap_count", len(overlaps))
    lines.append(f"overlaps: {n_over} pairs, {_m2(report.get('overlap_area_m2', 0.0))} in all")
    lines += [f"  overlap {o['a']} / {o['b']}: {_m2(o['area_m2'])}" for o in overlaps]
    if n_over > len(overlaps):
        lines.append(f"  ... {n_over - len(overlaps)} smaller overlaps not listed")
    gaps = report.get("gaps", [])
    n_gaps = report.get("gap_count", len(gaps))
    lines.append(f"gaps: {n_gaps}, {_m2(report.get('gap_area_m2', 0.0))} in all")
    lines += [
        f"  gap of {_m2(g['area_m2'])} around lon {g['centroid'][0]}, lat {g['centroid'][1]}"
        for g in gaps
    ]
    if n_gaps > len(gaps):
        lines.append(f"  ... {n_gaps - len(gaps)} smaller gaps not listed")
    if report.get("coverage_pct") is not None:
        lines.append(f"coverage of the city boundary: {report['coverage_pct']:.2f} %")
    outside = report.get("outside") or [
        {"code": c, "name": c, "outside_m2": None, "outside_pct": None}
        for c in report.get("outside_boundary", [])
    ]
    lines.append(
        f"zones reaching outside the city (more than {OUTSIDE_SHARE:.0%} of their area, "
        f"over {OUTSIDE_TOLERANCE_M:g} m past the boundary): {len(outside)}"
        + (f" ({', '.join(o['code'] for o in outside)})" if outside else "")
    )
    lines += [
        f"  outside {o['code']} ({o['name']}): {_m2(o['outside_m2'])}, "
        f"{o['outside_pct']:.1f} % of the zone"
        for o in outside
        if o["outside_m2"] is not None
    ]
    return lines
