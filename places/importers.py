"""Reading a city's address points, street centrelines and assets from its own files.

One function per kind (:func:`import_addresses`, :func:`import_streets`,
:func:`import_assets`) serves ``civicpin addresses|streets|assets import`` and the admin
page. Each reads CSV, GeoJSON, Shapefile (``.shp``, or a ``.zip`` holding one) or
GeoPackage in batches (pyogrio's Arrow stream; the csv module), reprojects to EPSG:4326,
checks every row, and writes through :mod:`places.store` in the caller's transaction.

What goes wrong is said in the city's terms:

- a problem with the file or the column map (missing file, unknown format, a mapped
  column the file lacks, no readable geometry at all) raises
  :class:`spatial.errors.InvalidInput` before anything is written;
- a bad row (no number, no street, an unreadable point or one far outside the city, a
  duplicate id) is counted and the first :data:`BAD_SHOWN` are named; unless the caller
  skips bad rows, the import then raises :class:`BadRows` and the caller's rollback
  leaves the city's current set as it was.

A MultiLineString centreline is merged (shapely ``line_merge``); when its parts still do
not join, they are chained into one line if each gap is under :data:`JOIN_GAP_M` (a
digitising gap: the address range stays meaningful along the chain), else the row is
bad: a range cannot be shared by separate pieces of street.
"""

from __future__ import annotations

import csv
import math
import re
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from shapely.geometry.base import BaseGeometry
from sqlalchemy.orm import Session

from places import store
from places.parse import normalise_street, parse_place
from spatial.cities import validate_slug
from spatial.errors import InvalidInput
from spatial.models import Jurisdiction
from spatial.models_places import AssetLayer, PlaceDataset

BATCH = 5000
BAD_SHOWN = 10
# A row this far beyond the city's boundary is not the city's (a county file's, or a
# point with swapped coordinates); nearer ones are kept: streets cross the city line.
FAR_OUTSIDE_M = 2000.0
JOIN_GAP_M = 15.0
MAX_ID = 100

FORMATS = {
    ".csv": "CSV",
    ".txt": "CSV",
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".shp": "Shapefile",
    ".zip": "Shapefile",
    ".gpkg": "GeoPackage",
}
FORMAT_NAMES = "CSV, GeoJSON, Shapefile (.shp, or a .zip holding one) or GeoPackage"

ADDRESS_KEYS = ("number", "street", "address", "suffix", "unit", "zip", "id", "lat", "lon", "wkt")
STREET_KEYS = (
    "name",
    "from_left",
    "to_left",
    "from_right",
    "to_right",
    "zip_left",
    "zip_right",
    "id",
    "wkt",
)


class BadRows(InvalidInput):
    """The file has bad rows and the caller did not skip them: nothing may be written.
    ``report`` names the first ones."""

    def __init__(self, report: ImportReport):
        good = report.rows_read - report.rows_bad
        super().__init__(
            f"{report.rows_bad:,} bad row{'s' if report.rows_bad != 1 else ''} in "
            f"{report.source_name}: nothing written (correct the file, or skip the bad "
            f"rows to import the other {good:,})",
            field="file",
        )
        self.report = report


@dataclass
class ImportReport:
    """What an import read, wrote and refused."""

    kind: str
    source_name: str
    mapping: dict[str, str]
    columns: list[str] = field(default_factory=list)
    rows_read: int = 0
    rows_written: int = 0
    rows_bad: int = 0
    # The first BAD_SHOWN bad rows: ("line 12" / "feature 12", reason).
    bad: list[tuple[str, str]] = field(default_factory=list)
    version: int | None = None
    intersections: int | None = None
    layer: str | None = None
    dry_run: bool = False

    def lines(self) -> list[str]:
        """The report as a person reads it, one fact a line."""
        what = f"{self.kind} of layer {self.layer}" if self.layer else self.kind
        head = f"{what} from {self.source_name}: {self.rows_read:,} rows read, "
        if self.dry_run:
            head += f"{self.rows_read - self.rows_bad:,} good, {self.rows_bad:,} bad"
        else:
            head += f"{self.rows_written:,} written, {self.rows_bad:,} bad"
        out = [head]
        if self.intersections is not None:
            out.append(f"{self.intersections:,} intersections derived")
        if self.version is not None:
            out.append(
                f"dry run: nothing written (the import would be version {self.version})"
                if self.dry_run
                else f"version {self.version}"
            )
        for where, reason in self.bad:
            out.append(f"  {where}: {reason}")
        if self.rows_bad > len(self.bad):
            out.append(f"  ... and {self.rows_bad - len(self.bad):,} more")
        return out


# --- the column map --------------------------------------------------------------------


def parse_mapping(text: str | None) -> dict[str, str]:
    """``"number=ADDR_NUM,street=STREET"`` as a dict, or InvalidInput (field "map")."""
    mapping: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, sep, column = part.partition("=")
        key, column = key.strip().lower(), column.strip()
        if not sep or not key or not column:
            raise InvalidInput(f"--map entry {part.strip()!r} must be KEY=COLUMN", field="map")
        if key in mapping:
            raise InvalidInput(f"--map names {key!r} twice", field="map")
        mapping[key] = column
    return mapping


def _check_keys(mapping: dict[str, str], allowed: tuple[str, ...], required: list[list[str]]):
    unknown = [k for k in mapping if k not in allowed]
    if unknown:
        raise InvalidInput(
            f"unknown map key {unknown[0]!r} (known: {', '.join(allowed)})", field="map"
        )
    for choice in required:
        if not any(all(k in mapping for k in option.split("+")) for option in choice):
            wanted = " or ".join(option.replace("+", " and ") for option in choice)
            raise InvalidInput(f"the map needs {wanted}", field="map")
    if ("lat" in mapping) != ("lon" in mapping):
        raise InvalidInput("the map needs both lat and lon, or neither", field="map")


def _resolve(mapping: dict[str, str], columns: list[str]) -> dict[str, list[str]]:
    """Each key's file column(s). A value naming no column but joined with '+' is several
    columns read as one text ("street=PREDIR+NAME+TYPE"); a Shapefile's upper-cased or
    shortened names are matched without regard to case."""
    by_lower: dict[str, list[str]] = {}
    for c in columns:
        by_lower.setdefault(c.lower(), []).append(c)

    def find(name: str) -> str | None:
        if name in columns:
            return name
        found = by_lower.get(name.lower(), [])
        return found[0] if len(found) == 1 else None

    resolved: dict[str, list[str]] = {}
    for key, value in mapping.items():
        parts = [value] if find(value) or "+" not in value else value.split("+")
        cols = []
        for part in parts:
            col = find(part.strip())
            if col is None:
                listed = ", ".join(columns) if columns else "none"
                raise InvalidInput(
                    f"the file has no column {part.strip()!r} (mapped to {key}); "
                    f"its columns: {listed}",
                    field="map",
                )
            cols.append(col)
        resolved[key] = cols
    return resolved


# --- reading files ---------------------------------------------------------------------


@dataclass
class _Record:
    where: str
    values: dict[str, Any]
    geom: BaseGeometry | None
    geom_error: str | None = None
    # A point's (lon, lat), read straight from the columns or the geometry, and whether it
    # lies far outside the city (decided for a whole batch at once: _Checker.mark).
    xy: tuple[float, float] | None = None
    far: bool = False


class _Source:
    """An open file: its columns, its feature count if known, and batches of records."""

    columns: list[str]
    total: int | None
    fmt: str

    def batches(self, *, lonlat: tuple[str, str] | None, wkt: str | None) -> Iterator[list]:
        raise NotImplementedError


def _text(value: Any) -> str | None:
    """A file value as text (None when empty); integral floats without ".0"."""
    if type(value) is str:  # the common case first: every CSV value
        return value.strip() or None
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return None
    text = str(value).strip()
    return text or None


def _point_from(lon: Any, lat: Any) -> tuple[tuple[float, float] | None, str | None]:
    lon_t, lat_t = _text(lon), _text(lat)
    if lon_t is None or lat_t is None:
        return None, "no coordinates"
    try:
        return (float(lon_t), float(lat_t)), None
    except ValueError:
        return None, f"unreadable coordinates ({lat_t!r}, {lon_t!r})"


class _CsvSource(_Source):
    def __init__(self, path: Path):
        self.fmt = "CSV"
        self.total = None
        self._file = open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115
        try:
            sample = self._file.read(65536)
            self._file.seek(0)
            try:
                dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
            except csv.Error:
                dialect = csv.excel
            self._reader = csv.reader(self._file, dialect)
            header = next(self._reader, None)
        except UnicodeDecodeError:
            self._file.close()
            raise InvalidInput(
                f"{path.name} is not a UTF-8 text file (save the CSV as UTF-8)", field="file"
            ) from None
        if not header:
            self._file.close()
            raise InvalidInput(f"{path.name} is empty: no header row", field="file")
        self.columns = [h.strip() for h in header]
        self._name = path.name

    def close(self) -> None:
        self._file.close()

    def batches(self, *, lonlat, wkt):
        batch: list[_Record] = []
        n = len(self.columns)
        try:
            for row in self._reader:
                if not any(row):  # a blank line
                    continue
                values = dict(zip(self.columns, row + [""] * (n - len(row)), strict=False))
                where = f"line {self._reader.line_num}"
                xy = None
                if lonlat is not None:
                    geom = None
                    xy, err = _point_from(values[lonlat[0]], values[lonlat[1]])
                elif wkt is not None:
                    geom, err = _from_wkt(values[wkt])
                else:
                    geom, err = None, "no coordinates (map lat and lon, or wkt)"
                batch.append(_Record(where, values, geom, err, xy))
                if len(batch) >= BATCH:
                    yield batch
                    batch = []
        except UnicodeDecodeError:
            raise InvalidInput(
                f"{self._name} is not a UTF-8 text file (save the CSV as UTF-8)", field="file"
            ) from None
        except csv.Error as exc:
            raise InvalidInput(f"{self._name}: unreadable CSV ({exc})", field="file") from None
        if batch:
            yield batch


def _from_wkt(text: Any) -> tuple[BaseGeometry | None, str | None]:
    t = _text(text)
    if t is None:
        return None, "no geometry"
    try:
        return shapely.from_wkt(t), None
    except shapely.errors.GEOSException:
        return None, "unreadable geometry (WKT)"


class _OgrSource(_Source):
    def __init__(self, path: Path, fmt: str, file_layer: str | None):
        import pyogrio
        import pyogrio.raw

        self.fmt = fmt
        target = str(path)
        if path.suffix.lower() == ".zip":
            target = _zip_target(path)
        try:
            layers = pyogrio.list_layers(target)
            names = [str(n) for n, _ in layers]
            if file_layer is not None and file_layer not in names:
                raise InvalidInput(
                    f"{path.name} has no layer {file_layer!r} (its layers: {', '.join(names)})",
                    field="layer_name",
                )
            layer = file_layer if file_layer is not None else (names[0] if names else None)
            info = pyogrio.read_info(target, layer=layer)
            self._cm = pyogrio.raw.open_arrow(
                target, layer=layer, batch_size=BATCH, use_pyarrow=True
            )
            self._meta, self._reader = self._cm.__enter__()
        except InvalidInput:
            raise
        except Exception as exc:  # pyogrio raises its own and GDAL's errors
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InvalidInput(
                f"{path.name} cannot be read as {fmt}: {message}", field="file"
            ) from None
        self.columns = [str(c) for c in info["fields"]]
        total = info.get("features")
        self.total = int(total) if total is not None and total >= 0 else None
        self._geometry_column = self._meta.get("geometry_name") or "wkb_geometry"
        self._has_geometry = info.get("geometry_type") is not None
        self._crs = self._meta.get("crs")
        self._name = path.name

    def close(self) -> None:
        self._cm.__exit__(None, None, None)

    def batches(self, *, lonlat, wkt):
        transformer = _transformer(self._crs, self._name) if lonlat is None else None
        if lonlat is None and wkt is None and not self._has_geometry:
            raise InvalidInput(
                f"{self._name} has no geometry (map lat and lon columns)", field="file"
            )
        start = 0
        for batch in self._reader:
            names = batch.schema.names
            cols = {
                name: batch.column(i).to_pylist()
                for i, name in enumerate(names)
                if name != self._geometry_column
            }
            n = batch.num_rows
            errors: list[str | None] = [None] * n
            xys: list[tuple[float, float] | None] = [None] * n
            if lonlat is not None:
                pairs = [
                    _point_from(a, b) for a, b in zip(cols[lonlat[0]], cols[lonlat[1]], strict=True)
                ]
                geoms = [None] * n
                xys = [xy for xy, _ in pairs]
                errors = [e for _, e in pairs]
            elif wkt is not None:
                pairs = [_from_wkt(t) for t in cols[wkt]]
                geoms = [g for g, _ in pairs]
                errors = [e for _, e in pairs]
            else:
                wkb = batch.column(names.index(self._geometry_column)).to_pylist()
                geoms = []
                for i, blob in enumerate(wkb):
                    if blob is None:
                        geoms.append(None)
                        errors[i] = "no geometry"
                        continue
                    try:
                        geoms.append(shapely.from_wkb(blob))
                    except shapely.errors.GEOSException:
                        geoms.append(None)
                        errors[i] = "unreadable geometry"
                if transformer is not None:
                    geoms = _reproject(geoms, transformer)
            records = []
            for i in range(n):
                values = {c: v[i] for c, v in cols.items()}
                records.append(
                    _Record(f"feature {start + i + 1}", values, geoms[i], errors[i], xys[i])
                )
            start += n
            yield records


def _zip_target(path: Path) -> str:
    """The GDAL path of the one Shapefile (or other supported file) inside a zip."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if not n.startswith("__MACOSX/")]
    except (zipfile.BadZipFile, OSError):
        raise InvalidInput(f"{path.name} is not a readable zip file", field="file") from None
    shps = [n for n in names if n.lower().endswith(".shp")]
    if len(shps) != 1:
        others = [n for n in names if Path(n).suffix.lower() in (".gpkg", ".geojson", ".json")]
        if len(shps) == 0 and len(others) == 1:
            return f"/vsizip/{path}/{others[0]}"
        raise InvalidInput(
            f"{path.name} must hold exactly one Shapefile (it holds {len(shps)})", field="file"
        )
    return f"/vsizip/{path}/{shps[0]}"


def _transformer(crs: str | None, name: str):
    """A transformer from the file's CRS to EPSG:4326 (None when it is already)."""
    from pyproj import CRS, Transformer
    from pyproj.exceptions import CRSError

    if not crs:
        return None  # taken as longitude/latitude; the range check catches projected files
    try:
        source = CRS.from_user_input(crs)
    except CRSError:
        raise InvalidInput(
            f"{name}: unknown coordinate reference system {crs!r}", field="file"
        ) from None
    if source.equals(CRS.from_epsg(4326), ignore_axis_order=True):
        return None
    return Transformer.from_crs(source, 4326, always_xy=True)


def _reproject(geoms: list, transformer) -> list:
    def move(coords: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return [g if g is None else shapely.transform(g, move) for g in geoms]


@contextmanager
def open_source(path: str | Path, *, file_layer: str | None = None) -> Iterator[_Source]:
    """The file opened for reading in batches, or InvalidInput (field "file")."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None and not path.is_dir():
        raise InvalidInput(
            f"{path.name}: not a supported format (use {FORMAT_NAMES})", field="file"
        )
    if not path.exists():
        raise InvalidInput(f"file not found: {path}", field="file")
    if path.is_dir():
        fmt = "Shapefile"
    elif not path.is_file() or not _readable(path):
        raise InvalidInput(f"{path.name} cannot be read", field="file")
    if fmt == "CSV":
        if file_layer is not None:
            raise InvalidInput("a CSV file has no layers", field="layer_name")
        source: _Source = _CsvSource(path)
    else:
        source = _OgrSource(path, fmt, file_layer)
    try:
        yield source
    finally:
        source.close()


def _readable(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError:
        return False
    return True


def columns_of(path: str | Path, *, file_layer: str | None = None) -> list[str]:
    """The file's columns (what a column map may name)."""
    with open_source(path, file_layer=file_layer) as source:
        return list(source.columns)


# --- checking rows ---------------------------------------------------------------------


class _Bad(Exception):
    """One row's problem, in words."""


class _BadGeometry(_Bad):
    """A row whose geometry cannot be used."""


_NUMBER_RE = re.compile(r"^(\d+)\s*(?:(\d+/\d+)|-\s*(\d+[A-Z]?)|([A-Z]{1,3}))?$")


def parse_number(value: Any) -> tuple[int, str | None]:
    """A house number and its suffix: "12" -> (12, None), "12A" -> (12, "A"),
    "12 1/2" -> (12, "1/2"), "12-14" -> (12, "-14"); else ``_Bad``."""
    text = _text(value)
    if text is None:
        raise _Bad("no house number")
    match = _NUMBER_RE.match(text.upper())
    if match is None:
        raise _Bad(f"house number {text!r} is not a number")
    number = int(match.group(1))
    if number > 2_000_000_000:
        raise _Bad(f"house number {text!r} is too large")
    if match.group(2):
        return number, match.group(2)
    if match.group(3):
        return number, "-" + match.group(3)
    return number, match.group(4)


def _range_end(value: Any, what: str) -> int | None:
    """A street range end; empty, 0 and negative values are "no addresses on this side"
    (files write -1 or 0 for it)."""
    text = _text(value)
    if text is None:
        return None
    try:
        number = int(float(text))
    except ValueError:
        raise _Bad(f"{what} {text!r} is not a number") from None
    if number > 2_000_000_000:
        raise _Bad(f"{what} {text!r} is too large")
    return number if number > 0 else None


def normalise_zip(value: Any) -> str | None:
    """ "02139", "02139-4321" -> "02139"; a number that lost its leading zero (2139) too."""
    text = _text(value)
    if text is None:
        return None
    if text.isdigit() and len(text) < 5:
        return text.zfill(5)
    match = re.match(r"^(\d{5})(?:-?\d{4})?$", text)
    return match.group(1) if match else text[:10]


def _joined(values: dict[str, Any], cols: list[str]) -> str | None:
    if len(cols) == 1:
        return _text(values[cols[0]])
    parts = [t for t in (_text(values[c]) for c in cols) if t]
    return " ".join(parts) or None


class _Checker:
    """Checks points and lines: longitude/latitude, and not far outside the city."""

    def __init__(self, session: Session, city: Jurisdiction):
        wkb = session.execute(
            sa.text(
                "SELECT ST_AsBinary(ST_Transform(ST_Simplify(ST_Buffer("
                "ST_Transform(boundary, metric_srid), :m), 10), 4326)) "
                "FROM jurisdiction WHERE id = :j AND boundary IS NOT NULL"
            ),
            {"j": city.id, "m": FAR_OUTSIDE_M},
        ).scalar()
        self.area = shapely.from_wkb(bytes(wkb)) if wkb is not None else None
        if self.area is not None:
            shapely.prepare(self.area)
        self.city = city.name

    def mark(self, batch: list[_Record]) -> None:
        """Find the batch's points far outside the city in one call (a call per point
        would cost more than the rest of the row's checks)."""
        for rec in batch:
            if rec.xy is None and rec.geom is not None and rec.geom.geom_type == "Point":
                rec.xy = (rec.geom.x, rec.geom.y)
        if self.area is None:
            return
        points = [rec for rec in batch if rec.xy is not None]
        if not points:
            return
        xs = np.fromiter((r.xy[0] for r in points), float, len(points))
        ys = np.fromiter((r.xy[1] for r in points), float, len(points))
        for rec, inside in zip(points, shapely.contains_xy(self.area, xs, ys), strict=True):
            rec.far = not inside

    def point(self, rec: _Record) -> tuple[float, float]:
        if rec.xy is not None:
            x, y = rec.xy
            self._lonlat(x, y)
            if rec.far:
                raise _BadGeometry(f"the point ({y:.6f}, {x:.6f}) is far outside {self.city}")
            return x, y
        geom = self._geometry(rec)
        if geom.geom_type == "MultiPoint" and len(geom.geoms) == 1:
            geom = geom.geoms[0]
        elif geom.geom_type in ("Polygon", "MultiPolygon"):
            geom = geom.point_on_surface()
        if geom.geom_type != "Point":
            raise _BadGeometry(f"not a point ({geom.geom_type})")
        x, y = geom.x, geom.y
        self._lonlat(x, y)
        if self.area is not None and not shapely.contains_xy(self.area, x, y):
            raise _BadGeometry(f"the point ({y:.6f}, {x:.6f}) is far outside {self.city}")
        return x, y

    def line(self, rec: _Record) -> list[tuple[float, float]]:
        geom = self._geometry(rec)
        if geom.geom_type == "MultiLineString":
            geom = _one_line(geom)
        if geom.geom_type != "LineString":
            raise _BadGeometry(f"not a line ({geom.geom_type})")
        coords = [(x, y) for x, y, *_ in geom.coords]
        if len(coords) < 2:
            raise _BadGeometry("a line needs two points")
        for x, y in coords:
            self._lonlat(x, y)
        if self.area is not None and not self.area.intersects(geom):
            raise _BadGeometry(f"the line is far outside {self.city}")
        return coords

    def _geometry(self, rec: _Record) -> BaseGeometry:
        if rec.geom is None:
            raise _BadGeometry(rec.geom_error or "no geometry")
        if rec.geom.is_empty:
            raise _BadGeometry("empty geometry")
        return rec.geom

    @staticmethod
    def _lonlat(x: float, y: float) -> None:
        if not (math.isfinite(x) and math.isfinite(y) and -180 <= x <= 180 and -90 <= y <= 90):
            raise _BadGeometry(f"({x:.6g}, {y:.6g}) is not a longitude and latitude")


def _one_line(geom: BaseGeometry) -> BaseGeometry:
    """A MultiLineString as one line (see the module docstring), or ``_Bad``."""
    merged = shapely.line_merge(geom)
    if merged.geom_type == "LineString":
        return merged
    parts = list(merged.geoms)
    chain = list(parts[0].coords)
    for part in parts[1:]:
        coords = list(part.coords)
        # The part may run either way; take the end nearer the chain's end.
        if _metres(chain[-1], coords[-1]) < _metres(chain[-1], coords[0]):
            coords.reverse()
        if _metres(chain[-1], coords[0]) > JOIN_GAP_M:
            raise _BadGeometry(
                f"a MultiLineString of {len(parts)} separate parts "
                "(one segment per part, each with its own range)"
            )
        chain.extend(coords)
    return shapely.LineString(chain)


def _metres(a: tuple, b: tuple) -> float:
    """Rough distance in metres between two lon/lat points (enough for a gap check)."""
    kx = 111_320 * math.cos(math.radians((a[1] + b[1]) / 2))
    return math.hypot((a[0] - b[0]) * kx, (a[1] - b[1]) * 110_540)


# --- the imports -----------------------------------------------------------------------


Progress = Callable[[int], None]


def _next_version(session: Session, city: Jurisdiction, kind: str, layer_id: int | None) -> int:
    return session.execute(
        sa.select(sa.func.coalesce(sa.func.max(PlaceDataset.version), 0) + 1).where(
            PlaceDataset.jurisdiction_id == city.id,
            PlaceDataset.kind == kind,
            PlaceDataset.asset_layer_id.is_not_distinct_from(layer_id),
        )
    ).scalar_one()


def _run(
    session: Session,
    city: Jurisdiction,
    source: _Source,
    report: ImportReport,
    *,
    checker: _Checker,
    convert: Callable[[_Record], Any],
    row_id: Callable[[Any], str | None],
    write: Callable[[Session, PlaceDataset, list], int],
    lonlat: tuple[str, str] | None,
    wkt: str | None,
    begin: Callable[[], PlaceDataset] | None,
    skip_bad: bool,
    progress: Progress | None,
) -> PlaceDataset | None:
    """Read every batch, check each row, write the good ones while writing still makes
    sense (no bad row yet, or bad rows are skipped). ``begin`` None: a dry run."""
    dataset = begin() if begin is not None else None
    seen: dict[str, str] = {}
    geometry_errors = 0
    for batch in source.batches(lonlat=lonlat, wkt=wkt):
        checker.mark(batch)
        good = []
        for rec in batch:
            report.rows_read += 1
            try:
                row = convert(rec)
                rid = row_id(row)
                if rid is not None:
                    if rid in seen:
                        raise _Bad(f"duplicate id {rid!r} (also {seen[rid]})")
                    seen[rid] = rec.where
            except _Bad as bad:
                report.rows_bad += 1
                if isinstance(bad, _BadGeometry):
                    geometry_errors += 1
                if len(report.bad) < BAD_SHOWN:
                    report.bad.append((rec.where, str(bad)))
                continue
            good.append(row)
        if dataset is not None and good and (skip_bad or report.rows_bad == 0):
            report.rows_written += write(session, dataset, good)
        if progress is not None:
            progress(len(batch))
    if report.rows_read == 0:
        raise InvalidInput(f"{report.source_name} holds no rows", field="file")
    if geometry_errors == report.rows_read:
        raise InvalidInput(
            f"{report.source_name}: no row has a usable geometry "
            f"({report.bad[0][0]}: {report.bad[0][1]})",
            field="file",
        )
    if report.rows_bad and not skip_bad:
        raise BadRows(report)
    if report.rows_bad == report.rows_read:
        raise InvalidInput(
            f"{report.source_name}: every row is bad, nothing to import", field="file"
        )
    return dataset


def import_addresses(
    session: Session,
    city: Jurisdiction,
    path: str | Path,
    mapping: dict[str, str],
    *,
    imported_by: str,
    source_name: str | None = None,
    file_layer: str | None = None,
    dry_run: bool = False,
    skip_bad: bool = False,
    progress: Progress | None = None,
    on_open: Callable[[_Source], None] | None = None,
) -> ImportReport:
    """Import an address point file as the city's next addresses version.

    ``mapping`` keys: ``number`` and ``street`` (or ``address``: the whole address in one
    column, parsed), and optionally ``suffix``, ``unit``, ``zip``, ``id`` (the city's
    address id, kept), ``lat``/``lon`` (CSV) or ``wkt``. Raises InvalidInput, or
    :class:`BadRows`; the caller rolls back then.
    """
    _check_keys(mapping, ADDRESS_KEYS, [["number+street", "address"]])
    name = source_name or Path(path).name
    report = ImportReport("addresses", name, dict(mapping), dry_run=dry_run)
    with open_source(path, file_layer=file_layer) as source:
        report.columns = list(source.columns)
        cols = _resolve(mapping, source.columns)
        if on_open is not None:
            on_open(source)
        checker = _Checker(session, city)
        one = {k: v[0] for k, v in cols.items()}

        def convert(rec: _Record) -> store.AddressRow:
            v = rec.values
            unit = _text(v[one["unit"]]) if "unit" in one else None
            zip_ = normalise_zip(v[one["zip"]]) if "zip" in one else None
            if "number" in cols:
                number, suffix = parse_number(_joined(v, cols["number"]))
                street_text = _joined(v, cols["street"])
                street = normalise_street(street_text) if street_text else None
                if street is None:
                    raise _Bad("no street")
            else:
                text = _joined(v, cols["address"])
                parsed = parse_place(text) if text else None
                if parsed is None or parsed.number is None or parsed.kind != "address":
                    raise _Bad(f"address {text!r} has no house number and street")
                number, suffix, street = parsed.number, parsed.number_suffix, parsed.street
                unit = unit or parsed.unit
                zip_ = zip_ or parsed.zip
            if "suffix" in one:
                suffix = _text(v[one["suffix"]]) or suffix
            source_id = _text(v[one["id"]]) if "id" in one else None
            if "id" in one and source_id is None:
                raise _Bad("no address id")
            if source_id is not None and len(source_id) > MAX_ID:
                raise _Bad(f"the address id is longer than {MAX_ID} characters")
            lon, lat = checker.point(rec)
            return store.AddressRow(
                lon=lon,
                lat=lat,
                number=number,
                street=street,
                number_suffix=(suffix or None) and suffix.upper()[:16],
                unit=unit and unit.upper()[:50],
                zip=zip_,
                source_id=source_id,
            )

        dataset = _run(
            session,
            city,
            source,
            report,
            checker=checker,
            convert=convert,
            row_id=lambda r: r.source_id,
            write=store.add_addresses,
            lonlat=(one["lon"], one["lat"]) if "lat" in one else None,
            wkt=one.get("wkt"),
            begin=None
            if dry_run
            else lambda: store.begin(
                session,
                city,
                "addresses",
                source_name=name,
                mapping=mapping,
                imported_by=imported_by,
            ),
            skip_bad=skip_bad,
            progress=progress,
        )
    _close(session, city, report, dataset, "addresses", None)
    return report


def import_streets(
    session: Session,
    city: Jurisdiction,
    path: str | Path,
    mapping: dict[str, str],
    *,
    imported_by: str,
    source_name: str | None = None,
    file_layer: str | None = None,
    dry_run: bool = False,
    skip_bad: bool = False,
    progress: Progress | None = None,
    on_open: Callable[[_Source], None] | None = None,
) -> ImportReport:
    """Import street centrelines with address ranges as the city's next streets version,
    and derive their intersections.

    ``mapping`` keys: ``name`` (the full street name, or parts joined with '+'), and
    optionally ``from_left``, ``to_left``, ``from_right``, ``to_right``, ``zip_left``,
    ``zip_right``, ``id``, ``wkt`` (CSV). A segment without ranges still makes
    intersections.
    """
    _check_keys(mapping, STREET_KEYS, [["name"]])
    name = source_name or Path(path).name
    report = ImportReport("streets", name, dict(mapping), dry_run=dry_run)
    with open_source(path, file_layer=file_layer) as source:
        report.columns = list(source.columns)
        if source.fmt == "CSV" and "wkt" not in mapping:
            raise InvalidInput(
                "a CSV of streets needs its lines as WKT: map wkt=COLUMN", field="map"
            )
        cols = _resolve(mapping, source.columns)
        if on_open is not None:
            on_open(source)
        checker = _Checker(session, city)
        one = {k: v[0] for k, v in cols.items()}

        def convert(rec: _Record) -> store.StreetRow:
            v = rec.values
            street_text = _joined(v, cols["name"])
            street = normalise_street(street_text) if street_text else None
            if street is None:
                raise _Bad("no street name")
            ends = {
                k: _range_end(v[one[k]], one[k]) if k in one else None
                for k in ("from_left", "to_left", "from_right", "to_right")
            }
            source_id = _text(v[one["id"]]) if "id" in one else None
            if source_id is not None and len(source_id) > MAX_ID:
                raise _Bad(f"the segment id is longer than {MAX_ID} characters")
            coords = checker.line(rec)
            return store.StreetRow(
                coords=coords,
                street=street,
                **ends,
                zip_left=normalise_zip(v[one["zip_left"]]) if "zip_left" in one else None,
                zip_right=normalise_zip(v[one["zip_right"]]) if "zip_right" in one else None,
                source_id=source_id,
            )

        dataset = _run(
            session,
            city,
            source,
            report,
            checker=checker,
            convert=convert,
            row_id=lambda r: r.source_id,
            write=store.add_streets,
            lonlat=None,
            wkt=one.get("wkt"),
            begin=None
            if dry_run
            else lambda: store.begin(
                session, city, "streets", source_name=name, mapping=mapping, imported_by=imported_by
            ),
            skip_bad=skip_bad,
            progress=progress,
        )
    _close(session, city, report, dataset, "streets", None)
    return report


_TEMPLATE_RE = re.compile(r"\{([^{}]+)\}")
LAT_NAMES = ("lat", "latitude", "y")
LON_NAMES = ("lon", "lng", "long", "longitude", "x")


def _default_title(name: str) -> str:
    return re.sub(r"[_\-.]+", " ", name).strip().capitalize() or name


def import_assets(
    session: Session,
    city: Jurisdiction,
    path: str | Path,
    *,
    layer: str,
    id_field: str,
    label_field: str | None = None,
    title: str | None = None,
    lat_field: str | None = None,
    lon_field: str | None = None,
    imported_by: str,
    source_name: str | None = None,
    file_layer: str | None = None,
    dry_run: bool = False,
    skip_bad: bool = False,
    progress: Progress | None = None,
    on_open: Callable[[_Source], None] | None = None,
) -> ImportReport:
    """Import point assets as the next version of asset layer ``layer`` (created when new).

    ``id_field`` holds the city's id of each asset (a pole number), unique in the file;
    ``label_field`` a column, or a text with columns in braces ("Pole {PoleID},
    {Intersection}"); the other columns become the asset's attributes, as text. A CSV
    takes its points from ``lat_field``/``lon_field`` (found by name when not given).
    """
    validate_slug(layer, "layer")
    if title is not None:
        title = title.strip()
        if not title or len(title) > 200:
            raise InvalidInput("the layer title must be 1-200 characters", field="title")
    id_field = (id_field or "").strip()
    if not id_field:
        raise InvalidInput("the id field is required", field="id_field")
    label_field = (label_field or "").strip() or None
    if label_field is not None and len(label_field) > 100:
        raise InvalidInput("the label must be at most 100 characters", field="label_field")
    name = source_name or Path(path).name
    existing = session.scalar(
        sa.select(AssetLayer).where(AssetLayer.jurisdiction_id == city.id, AssetLayer.name == layer)
    )
    mapping = {"id": id_field}
    if label_field:
        mapping["label"] = label_field
    report = ImportReport("assets", name, mapping, layer=layer, dry_run=dry_run)
    with open_source(path, file_layer=file_layer) as source:
        report.columns = list(source.columns)
        id_col = _resolve({"id": id_field}, source.columns)["id"][0]
        label_cols: list[str] = []
        template: str | None = None
        if label_field is not None:
            if _TEMPLATE_RE.search(label_field):
                template = label_field
                fields = _TEMPLATE_RE.findall(label_field)
                label_cols = [_resolve({"label": f}, source.columns)["label"][0] for f in fields]
            else:
                label_cols = _resolve({"label": label_field}, source.columns)["label"]
        lonlat = None
        if lat_field or lon_field or source.fmt == "CSV":
            lat_col = _pick(source.columns, lat_field, LAT_NAMES, "lat_field", "latitude")
            lon_col = _pick(source.columns, lon_field, LON_NAMES, "lon_field", "longitude")
            lonlat = (lon_col, lat_col)
            mapping.update(lat=lat_col, lon=lon_col)
        if on_open is not None:
            on_open(source)
        checker = _Checker(session, city)
        skip = {id_col, *(lonlat or ())}

        def label_of(v: dict[str, Any], ref: str) -> str | None:
            if template is None:
                return _text(v[label_cols[0]]) if label_cols else None
            values = iter(label_cols)
            text = _TEMPLATE_RE.sub(lambda _m: _text(v[next(values)]) or "", template)
            # A missing part leaves ", " or a trailing space: tidy, keep the rest.
            text = re.sub(r"(\s*,\s*)+$", "", re.sub(r"\s+", " ", text)).strip(" ,")
            return text or ref

        def convert(rec: _Record) -> store.AssetRow:
            v = rec.values
            ref = _text(v[id_col])
            if ref is None:
                raise _Bad(f"no id ({id_col})")
            if len(ref) > MAX_ID:
                raise _Bad(f"the id is longer than {MAX_ID} characters")
            lon, lat = checker.point(rec)
            attributes = {}
            for key, value in v.items():
                if key in skip:
                    continue
                text = _text(value)
                if text is not None:
                    attributes[key] = text
            return store.AssetRow(
                lon=lon, lat=lat, ref=ref, label=label_of(v, ref), attributes=attributes
            )

        def begin() -> PlaceDataset:
            target = existing
            if target is None:
                target = AssetLayer(
                    jurisdiction_id=city.id, name=layer, title=title or _default_title(layer)
                )
                session.add(target)
            elif title:
                target.title = title
            target.id_field = id_field[:100]
            target.label_field = label_field
            session.flush()
            return store.begin(
                session,
                city,
                "assets",
                source_name=name,
                mapping=mapping,
                imported_by=imported_by,
                layer=target,
            )

        dataset = _run(
            session,
            city,
            source,
            report,
            checker=checker,
            convert=convert,
            row_id=lambda r: r.ref,
            write=store.add_assets,
            lonlat=lonlat,
            wkt=None,
            begin=None if dry_run else begin,
            skip_bad=skip_bad,
            progress=progress,
        )
    _close(session, city, report, dataset, "assets", existing.id if existing else None)
    return report


def _pick(
    columns: list[str], given: str | None, names: tuple[str, ...], option: str, what: str
) -> str:
    """The column of a CSV's latitude or longitude: ``given``, or found by its name."""
    if given:
        return _resolve({what: given}, columns)[what][0]
    lower = {c.lower(): c for c in columns}
    for n in names:
        if n in lower:
            return lower[n]
    raise InvalidInput(
        f"which column holds the {what}? (give --{option.replace('_', '-')}; "
        f"the file's columns: {', '.join(columns)})",
        field=option,
    )


def _close(
    session: Session,
    city: Jurisdiction,
    report: ImportReport,
    dataset: PlaceDataset | None,
    kind: str,
    layer_id: int | None,
) -> None:
    if dataset is None:
        # A dry run: the version the import would make (a new layer's first).
        new_layer = kind == "assets" and layer_id is None
        report.version = 1 if new_layer else _next_version(session, city, kind, layer_id)
        return
    report.intersections = store.finish(
        session, dataset, rows_read=report.rows_read, rows_bad=report.rows_bad
    )
    report.rows_written = dataset.rows_written
    report.version = dataset.version
