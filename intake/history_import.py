"""Historical import: a city's old 311 records from a CSV file, streamed in chunks.

The file is read twice, ``chunk_rows`` rows at a time, so memory stays flat whatever its
size:

1. *check*: every row is parsed and judged (coordinates, dates, category, status, id); the
   result is a :class:`ScanReport`. Unknown categories stop the import here unless
   ``create_categories`` is set. Nothing has been written yet.
2. *import*: the rows are parsed again and written with ``COPY`` into a staging table
   (keeping each row's id as ``external_id``), then :func:`routing.engine.route_staged`
   routes them (zones in every layer, department, crew, due time) and inserts them into
   ``service_request``, each row written once. Both happen in one transaction: a failure
   leaves nothing behind.

What happens to imperfect rows:

- no id, an id longer than 100 characters, or an empty or unreadable created date:
  skipped, and the report names the rows and why;
- an id seen earlier in the file: skipped (the first row wins); an id already imported
  for the city: skipped, so running the same file twice imports it once;
- no (or impossible) coordinates: imported without a location, ``needs_location`` set;
  with ``geocode``, a row with an address is first looked up by the city's geocoder
  (``places.geocoder``, once per distinct address during the check) and a confident
  candidate gives it its point (and the city's address id); the report counts each match
  type, the unsure addresses and those with no match;
- outside the city: imported with its location (no zone will hold it);
- on a placeholder point (:data:`PLACEHOLDER_MIN_ROWS` or more rows on one exact point with
  :data:`PLACEHOLDER_MIN_ADDRESSES` or more different addresses, or none): imported with
  it, unless ``drop_placeholders`` (then without a location);
- an unreadable close time, or one before the created time: imported without a close
  time;
- a channel value that neither ``channel_map`` nor the usual words (``Call``, ``Web``,
  ...) name: imported with ``default_channel``; the report lists each such value with
  its rows;
- the city's own target date (the ``due`` column) is the request's SLA due time; where
  it is empty or unreadable the routing's SLA gives the due time.

Naive times are in ``tz`` (default: the city's time zone); times with an offset keep it.
Dates are ISO 8601 unless ``date_format`` (``strftime`` codes) is given.
"""

from __future__ import annotations

import base64
import codecs
import csv
import io
import json
import os
import queue
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import psycopg.errors
import shapely
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from places.geocoder import MATCH_TYPES, GeocodeRefused, geocode
from routing.engine import route_staged
from spatial.cities import get_city
from spatial.errors import InvalidInput
from spatial.models import CHANNELS, Jurisdiction, PublicIdCounter, Service, Status
from spatial.public_ids import format_public_id

KEYS = (
    "id",
    "lat",
    "lon",
    "category",
    "created",
    "closed",
    "status",
    "address",
    "description",
    "channel",
    "first_response",
    "updated",
    "due",
)
REQUIRED = ("id", "category", "created")
CHUNK_ROWS = 50_000
MAX_DISTINCT = 10_000  # distinct categories / statuses / channels before we call the map wrong
MAX_ID_LENGTH = 100
MAX_ADDRESS_LENGTH = 500
PLACEHOLDER_MIN_ROWS = 20
PLACEHOLDER_MIN_ADDRESSES = 3
EXAMPLES = 5
ROW_LIST = 20  # rows named per problem in the report before "and N more"
IMPORT_CHANNEL = "import"

STATUS_WORDS = {
    "new": "new",
    "open": "new",
    "submitted": "new",
    "received": "new",
    "acknowledged": "acknowledged",
    "assigned": "acknowledged",
    "in progress": "in_progress",
    "pending": "in_progress",
    "work in progress": "in_progress",
    "referred": "referred",
    "referred out": "referred",
    "transferred": "referred",
    "resolved": "resolved",
    "completed": "resolved",
    "fixed": "resolved",
    "closed": "closed",
    "cancelled": "cancelled",
    "canceled": "cancelled",
    "duplicate": "duplicate",
    "cant fix": "cant_fix",
    "can't fix": "cant_fix",
    "unable to fix": "cant_fix",
}
CHANNEL_WORDS = {
    "web": "web",
    "website": "web",
    "online": "web",
    "self service": "web",
    "mobile": "mobile",
    "mobile app": "mobile",
    "app": "mobile",
    "api": "api",
    "email": "email",
    "e-mail": "email",
    "phone": "phone",
    "call": "phone",
    "telephone": "phone",
    "voicemail": "phone",
    "in person": "in_person",
    "in_person": "in_person",
    "walk in": "in_person",
    "mail": "mail",
    "letter": "mail",
    "import": "import",
}
ISO_OFFSET = r"(?:Z|z|[+-]\d{2}(?::?\d{2})?)$"

Progress = Callable[[str, int, int], None]


def _words(value: str) -> str:
    return re.sub(r"[\s_\-]+", " ", value.strip().lower())


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class ColumnMap:
    """Which CSV column holds each field (``id``, ``lat``, ``lon``, ``category``, ...)."""

    columns: dict[str, str]

    def get(self, key: str) -> str | None:
        return self.columns.get(key)

    def __str__(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.columns.items())


def parse_column_map(text: str) -> ColumnMap:
    """``id=SR,lat=Latitude,...`` as a :class:`ColumnMap`; one-line errors."""
    if not text or not text.strip():
        raise InvalidInput("--map is empty: give id=COLUMN,category=COLUMN,created=COLUMN,...")
    columns: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, column = part.partition("=")
        key = key.strip().lower()
        if not sep or not column.strip():
            raise InvalidInput(f"--map: {part.strip()!r} is not KEY=COLUMN", field="map")
        if key not in KEYS:
            raise InvalidInput(f"--map: unknown key {key!r} (keys: {', '.join(KEYS)})", field="map")
        if key in columns:
            raise InvalidInput(f"--map: {key!r} is given twice", field="map")
        columns[key] = column.strip()
    missing = [k for k in REQUIRED if k not in columns]
    if missing:
        raise InvalidInput(f"--map: {', '.join(missing)} must be mapped", field="map")
    if ("lat" in columns) != ("lon" in columns):
        raise InvalidInput("--map: lat and lon go together: map both or neither", field="map")
    return ColumnMap(columns)


def parse_channel_map(text: str) -> dict[str, str]:
    """``Call=phone,Self Service=web`` as {their value: our channel}; one-line errors.

    Their values are matched ignoring case and spacing; ours must be channels civicpin
    knows (:data:`spatial.models.CHANNELS`).
    """
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        theirs, sep, ours = part.rpartition("=")
        theirs, ours = theirs.strip(), ours.strip().lower()
        if not sep or not theirs or not ours:
            raise InvalidInput(
                f"--channel-map: {part.strip()!r} is not VALUE=CHANNEL", field="channel_map"
            )
        if ours not in CHANNELS:
            raise InvalidInput(
                f"--channel-map {theirs}={ours}: {ours!r} is not a channel "
                f"(channels: {', '.join(CHANNELS)})",
                field="channel_map",
            )
        key = _words(theirs)
        if key in out and out[key] != ours:
            raise InvalidInput(f"--channel-map: {theirs!r} is mapped twice", field="channel_map")
        out[key] = ours
    if not out:
        raise InvalidInput("--channel-map is empty: give VALUE=CHANNEL,...", field="channel_map")
    return out


def check_channel(channel: str) -> str:
    """A channel civicpin knows (``--default-channel``)."""
    value = (channel or "").strip().lower()
    if value not in CHANNELS:
        raise InvalidInput(
            f"--default-channel {channel!r} is not a channel (channels: {', '.join(CHANNELS)})",
            field="default_channel",
        )
    return value


def check_timezone(tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"--tz {tz!r} is not a time zone (e.g. America/Los_Angeles)", field="tz"
        ) from None
    return tz


def check_encoding(encoding: str) -> str:
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise InvalidInput(
            f"--encoding {encoding!r} is not a known encoding", field="encoding"
        ) from None
    return encoding


def check_delimiter(delimiter: str) -> str:
    if delimiter.lower() in ("tab", "\\t"):
        return "\t"
    if len(delimiter) != 1 or delimiter in '\r\n"':
        raise InvalidInput(f"--delimiter {delimiter!r} must be one character (or 'tab')")
    return delimiter


def load_category_map(path: str | Path) -> dict[str, str]:
    """A foreign category name -> our category code map, from JSON (an object) or a CSV
    with two columns and a header line."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"--category-map {path}: no such file", field="category_map")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"--category-map {path.name}: cannot read it ({exc})") from None
    pairs: list[tuple[Any, Any]] = []
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"--category-map {path.name}: not valid JSON ({exc.msg}, line {exc.lineno})"
            ) from None
        if not isinstance(data, dict):
            raise InvalidInput(
                f"--category-map {path.name}: the JSON must be an object {{name: code}}"
            )
        pairs = list(data.items())
    else:
        try:
            rows = list(csv.reader(io.StringIO(text)))
        except csv.Error as exc:
            raise InvalidInput(f"--category-map {path.name}: not a CSV file ({exc})") from None
        for n, row in enumerate(rows[1:], start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != 2:
                raise InvalidInput(
                    f"--category-map {path.name}, line {n}: expected 2 columns "
                    "(their category, our category code), found {len(row)}"
                )
            pairs.append((row[0], row[1]))
    out: dict[str, str] = {}
    for theirs, ours in pairs:
        if (
            not isinstance(theirs, str)
            or not isinstance(ours, str)
            or not theirs.strip()
            or not ours.strip()
        ):
            raise InvalidInput(
                f"--category-map {path.name}: names and codes must be non-empty text"
            )
        key = theirs.strip()
        if key in out and out[key] != ours.strip():
            raise InvalidInput(f"--category-map {path.name}: {key!r} is mapped twice")
        out[key] = ours.strip()
    if not out:
        raise InvalidInput(f"--category-map {path.name} maps no category")
    return out


@dataclass(frozen=True)
class ImportOptions:
    """Everything about one file; built and checked before the database is touched."""

    path: Path
    columns: ColumnMap
    tz: str | None = None  # None: the city's
    category_map: dict[str, str] = field(default_factory=dict)
    create_categories: bool = False
    drop_placeholders: bool = False
    date_format: str | None = None
    encoding: str = "utf-8"
    delimiter: str = ","
    chunk_rows: int = CHUNK_ROWS
    # their channel value (as _words() writes it) -> ours; before the usual words
    channel_map: dict[str, str] = field(default_factory=dict)
    default_channel: str = IMPORT_CHANNEL  # for values no map names
    geocode: bool = False  # rows with an address and no coordinates: the city's geocoder

    def channel_of(self, value: str) -> str | None:
        """Our channel for their ``value``; None when nothing names it."""
        key = _words(value)
        return self.channel_map.get(key) or CHANNEL_WORDS.get(key)


def _open(path: Path) -> BinaryIO:
    try:
        return open(path, "rb")  # noqa: SIM115 -- closed by the callers' with blocks
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot open it ({exc.strerror})", field="file") from None


def read_header(opts: ImportOptions) -> list[str]:
    """The file's column names; a one-line error for a missing, empty or unreadable file."""
    path = opts.path
    if not path.exists():
        raise InvalidInput(f"{path}: no such file", field="file")
    if not path.is_file():
        raise InvalidInput(f"{path}: not a file", field="file")
    with _open(path) as fh:
        text = io.TextIOWrapper(fh, encoding=opts.encoding, newline="")
        try:
            header = next(csv.reader(text, delimiter=opts.delimiter), None)
        except UnicodeDecodeError:
            raise InvalidInput(
                f"{path.name} is not {opts.encoding} text: give its --encoding", field="file"
            ) from None
        except csv.Error as exc:
            raise InvalidInput(f"{path.name}: not a CSV file ({exc})", field="file") from None
    if not header or not any(h.strip() for h in header):
        raise InvalidInput(f"{path.name} is empty: expected a header line", field="file")
    header = [h.lstrip("\ufeff") for h in header]
    return header


def check_columns(opts: ImportOptions, header: list[str]) -> None:
    """Every mapped column is in the header exactly once."""
    counts = Counter(header)
    lower = {h.lower(): h for h in header}
    for key, column in opts.columns.columns.items():
        if column not in counts:
            hint = f" (did you mean {lower[column.lower()]!r}?)" if column.lower() in lower else ""
            shown = ", ".join(header[:12]) + (", ..." if len(header) > 12 else "")
            raise InvalidInput(
                f"--map {key}={column}: {opts.path.name} has no column {column!r}{hint}; "
                f"its columns: {shown}",
                field="map",
            )
        if counts[column] > 1:
            raise InvalidInput(f"{opts.path.name} has the column {column!r} twice", field="file")


# --------------------------------------------------------------------------- parsing


def parse_times(values: pd.Series, tz: str, fmt: str | None = None) -> tuple[pd.Series, pd.Series]:
    """Texts as UTC times and a mask of the non-empty ones that could not be read.

    Naive times are local to ``tz`` (a repeated autumn hour counts as standard time, a
    skipped spring hour moves forward); times with an offset keep it.
    """
    text = values.fillna("").astype(str).str.strip()
    empty = text == ""
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[us, UTC]")
    if fmt is not None:
        parts = [(~empty, None)]
    else:
        aware = text.str.contains(ISO_OFFSET, regex=True) & ~empty
        parts = [(~empty & ~aware, False), (aware, True)]
    for mask, is_aware in parts:
        if not mask.any():
            continue
        chunk = text[mask]
        if fmt is not None:
            parsed = pd.to_datetime(chunk, format=fmt, errors="coerce")
        elif is_aware:
            parsed = pd.to_datetime(chunk, format="ISO8601", errors="coerce", utc=True)
        else:
            parsed = pd.to_datetime(chunk, format="ISO8601", errors="coerce")
        if isinstance(parsed.dtype, pd.DatetimeTZDtype):
            parsed = parsed.dt.tz_convert("UTC")
        else:
            parsed = parsed.dt.tz_localize(
                tz, ambiguous=np.zeros(len(parsed), dtype=bool), nonexistent="shift_forward"
            ).dt.tz_convert("UTC")
        out[mask] = parsed.astype("datetime64[us, UTC]")
    bad = out.isna() & ~empty
    return out, bad


def parse_coordinates(lat: pd.Series, lon: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Floats (NaN where missing), and a mask of rows with text that is not a position."""
    lat_t = lat.fillna("").astype(str).str.strip()
    lon_t = lon.fillna("").astype(str).str.strip()
    y = pd.to_numeric(lat_t, errors="coerce").to_numpy(dtype=np.float64)
    x = pd.to_numeric(lon_t, errors="coerce").to_numpy(dtype=np.float64)
    given = ((lat_t != "") | (lon_t != "")).to_numpy()
    ok = np.isfinite(x) & np.isfinite(y) & (np.abs(y) <= 90) & (np.abs(x) <= 180)
    # Exactly (0, 0) is what many exports write for "no position".
    ok &= ~((x == 0) & (y == 0))
    x = np.where(ok, x, np.nan)
    y = np.where(ok, y, np.nan)
    invalid = given & ~ok & ~((lat_t == "0").to_numpy() & (lon_t == "0").to_numpy())
    return y, x, invalid


def _hash(values: pd.Series) -> np.ndarray:
    return pd.util.hash_pandas_object(values, index=False).to_numpy(dtype=np.uint64)


def _hash_frame(frame: pd.DataFrame) -> np.ndarray:
    return pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)


# --------------------------------------------------------------------------- reading


@dataclass
class Chunk:
    """One parsed chunk: row numbers (1-based, header excluded) and per-row values."""

    first_row: int
    frame: pd.DataFrame
    ids: pd.Series
    id_hash: np.ndarray
    created: pd.Series
    created_bad: pd.Series
    closed: pd.Series
    closed_bad: pd.Series
    lat: np.ndarray
    lon: np.ndarray
    coords_invalid: np.ndarray
    bytes_read: int

    def __len__(self) -> int:
        return len(self.frame)


def read_chunks(opts: ImportOptions, tz: str) -> Iterator[Chunk]:
    """Parse the file chunk by chunk (every value as text, then typed)."""
    cols = opts.columns
    usecols = sorted(set(cols.columns.values()))
    first = 1
    with _open(opts.path) as fh:
        try:
            # Every column is read (not usecols) so that a row with more fields than the
            # header, the mark of an unquoted separator, is an error and not a shifted row.
            reader = pd.read_csv(
                fh,
                dtype=str,
                keep_default_na=False,
                na_filter=False,
                chunksize=opts.chunk_rows,
                encoding=opts.encoding,
                sep=opts.delimiter,
                engine="c",
                encoding_errors="strict",
            )
            for frame in reader:
                frame = frame[usecols].reset_index(drop=True)
                ids = frame[cols.get("id")].str.strip()
                created, created_bad = parse_times(frame[cols.get("created")], tz, opts.date_format)
                if cols.get("closed"):
                    closed, closed_bad = parse_times(
                        frame[cols.get("closed")], tz, opts.date_format
                    )
                else:
                    closed = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us, UTC]")
                    closed_bad = pd.Series(False, index=frame.index)
                if cols.get("lat"):
                    lat, lon, invalid = parse_coordinates(
                        frame[cols.get("lat")], frame[cols.get("lon")]
                    )
                else:
                    lat = lon = np.full(len(frame), np.nan)
                    invalid = np.zeros(len(frame), dtype=bool)
                yield Chunk(
                    first, frame, ids, _hash(ids), created, created_bad, closed, closed_bad,
                    lat, lon, invalid, fh.tell(),
                )  # fmt: skip
                first += len(frame)
        except UnicodeDecodeError:
            raise InvalidInput(
                f"{opts.path.name} is not {opts.encoding} text (near row {first}): "
                "give its --encoding",
                field="file",
            ) from None
        except (pd.errors.ParserError, ValueError) as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InvalidInput(
                f"{opts.path.name}: cannot read it as CSV ({detail})", field="file"
            ) from None


class SeenIds:
    """Ids met so far (as 64-bit hashes): flags repeats of earlier rows with flat memory."""

    def __init__(self) -> None:
        self.sorted = np.empty(0, dtype=np.uint64)

    def repeats(self, hashes: np.ndarray, present: np.ndarray) -> np.ndarray:
        """Rows whose id appeared in an earlier row (this chunk or before); remembers them."""
        seen_before = np.zeros(len(hashes), dtype=bool)
        if self.sorted.size:
            pos = np.minimum(np.searchsorted(self.sorted, hashes), self.sorted.size - 1)
            seen_before = self.sorted[pos] == hashes
        within = pd.Series(hashes).duplicated(keep="first").to_numpy()
        repeat = (seen_before | within) & present
        new = np.unique(hashes[present & ~repeat])
        merged = np.concatenate([self.sorted, new])
        # Two sorted runs: the stable sort (timsort) merges them in linear time.
        merged.sort(kind="stable")
        self.sorted = merged
        return repeat


# --------------------------------------------------------------------------- the check


@dataclass
class ScanReport:
    """What the check found in the file (every count is of data rows)."""

    file: str
    rows: int = 0
    importable: int = 0
    no_id: int = 0
    long_id: int = 0
    duplicate_ids: int = 0
    already_imported: int = 0
    no_coordinates: int = 0
    invalid_coordinates: int = 0
    outside_city: int = 0
    placeholder_points: list[tuple[float, float, int, int]] = field(default_factory=list)
    placeholder_rows: int = 0
    bad_created: int = 0
    empty_created: int = 0
    created_rows: list[str] = field(default_factory=list)  # "row N: why", first ROW_LIST
    due_given: int = 0
    bad_due: int = 0
    bad_closed: int = 0
    bad_other_dates: int = 0
    closed_before_created: int = 0
    categories: dict[str, int] = field(default_factory=dict)  # their name -> rows
    category_targets: dict[str, str] = field(default_factory=dict)  # their name -> our code
    unknown_categories: dict[str, int] = field(default_factory=dict)
    new_categories: dict[str, str] = field(default_factory=dict)  # our new code -> name
    statuses: dict[str, int] = field(default_factory=dict)
    channels: dict[str, int] = field(default_factory=dict)
    channel_rows: dict[str, list[int]] = field(default_factory=dict)  # unmapped -> rows
    channel_mapped: dict[str, str] = field(default_factory=dict)  # their value -> ours
    default_channel: str = IMPORT_CHANNEL
    years: dict[int, int] = field(default_factory=dict)  # local year -> importable rows
    examples: dict[str, list[str]] = field(default_factory=dict)
    geocoding: bool = False
    geocoded: dict[str, int] = field(default_factory=dict)  # match type -> rows placed
    geocode_unsure: int = 0  # rows whose address the geocoder was not confident of
    geocode_no_match: int = 0  # rows whose address matched nothing (or could not be read)
    # address text -> (lon, lat, match type, the city's address id); None: not placed
    places: dict[str, tuple[float, float, str, str | None] | None] = field(
        default_factory=dict, repr=False
    )
    unsure_texts: set[str] = field(default_factory=set, repr=False)

    def example(self, kind: str, text: str) -> None:
        found = self.examples.setdefault(kind, [])
        if len(found) < EXAMPLES:
            found.append(text)

    def _ex(self, kind: str) -> str:
        found = self.examples.get(kind)
        return f" (e.g. {'; '.join(found)})" if found else ""

    def geocode_text(self) -> str:
        """The line "geocoded: 812 address_point, 95 range; 31 not confident, 4 no match"."""
        placed = ", ".join(
            f"{self.geocoded[kind]:,} {kind}" for kind in MATCH_TYPES if self.geocoded.get(kind)
        )
        return (
            f"geocoded: {placed or '0'}; {self.geocode_unsure:,} not confident, "
            f"{self.geocode_no_match:,} no match - imported without a location"
        )

    def unmapped_channels(self) -> dict[str, int]:
        """Their channel values no map names, with their rows' counts."""
        return {
            raw: n for raw, n in self.channels.items() if raw and raw not in self.channel_mapped
        }

    def status_mapping(self) -> dict[str, tuple[str | None, int]]:
        return {raw: (STATUS_WORDS.get(_words(raw)), n) for raw, n in self.statuses.items()}

    def text(self) -> str:
        """The report as lines for a person."""
        skipped = self.rows - self.importable
        lines = [
            f"{self.file}: {self.rows:,} rows",
            f"  to import: {self.importable:,} rows; skipped: {skipped:,}",
            f"  rows without coordinates: {self.no_coordinates:,}"
            + (f" (of which {self.invalid_coordinates:,} not a valid position)"
               if self.invalid_coordinates else "")
            + (" - geocoded where they have an address, the rest imported without a location"
               if self.geocoding else " - imported without a location"),
            f"  rows outside the city: {self.outside_city:,} - imported; no zone holds them",
        ]  # fmt: skip
        if self.geocoding:
            lines.append(f"  {self.geocode_text()}")
        if self.placeholder_points:
            shown = "; ".join(
                f"({lat:.6f}, {lon:.6f}): {n:,} rows, {a:,} addresses"
                for lat, lon, n, a in self.placeholder_points[:EXAMPLES]
            )
            more = len(self.placeholder_points) - EXAMPLES
            lines.append(
                f"  placeholder coordinates: {len(self.placeholder_points):,} point(s) shared by "
                f"{self.placeholder_rows:,} rows with different addresses: {shown}"
                + (f"; and {more:,} more" if more > 0 else "")
            )
        else:
            lines.append("  placeholder coordinates: none")
        lines.append(
            f"  unparseable dates: {self.bad_created + self.bad_closed + self.bad_other_dates:,}"
            f" (created {self.bad_created:,} - rows skipped; closed {self.bad_closed:,} - "
            f"close time dropped; other {self.bad_other_dates:,}){self._ex('dates')}"
        )
        without_created = self.empty_created + self.bad_created
        if without_created:
            more = without_created - len(self.created_rows)
            lines.append(
                f"  rows without a usable created date: {without_created:,} - skipped: "
                + "; ".join(self.created_rows)
                + (f"; and {more:,} more" if more > 0 else "")
            )
        else:
            lines.append("  rows without a usable created date: none")
        lines.append(
            f"  closed before created: {self.closed_before_created:,} - close time dropped"
            + self._ex("closed_before")
        )
        if self.due_given or self.bad_due:
            lines.append(
                f"  due times from the file: {self.due_given:,} rows"
                + (
                    f"; {self.bad_due:,} unreadable - due time from the SLA" + self._ex("due")
                    if self.bad_due
                    else ""
                )
            )
        if self.channels:
            shown = ", ".join(
                f"{raw!r} -> {self.channel_mapped[raw]} ({n:,})"
                for raw, n in sorted(self.channels.items())
                if raw in self.channel_mapped
            )
            lines.append(f"  channels: {shown or 'none mapped'}")
            unmapped = self.unmapped_channels()
            if unmapped:
                parts = []
                for raw, n in sorted(unmapped.items()):
                    rows = self.channel_rows.get(raw, [])
                    listed = ", ".join(str(r) for r in rows)
                    parts.append(
                        f"{raw!r} ({n:,} rows: {listed}{', ...' if n > len(rows) else ''})"
                    )
                lines.append(
                    f"  channels not mapped - imported as {self.default_channel}: "
                    + "; ".join(parts)
                )
            if self.channels.get(""):
                lines.append(
                    f"  rows without a channel: {self.channels['']:,} - imported as "
                    f"{self.default_channel}"
                )
        if self.unknown_categories:
            names = ", ".join(
                f"{name!r} ({n:,} rows)" for name, n in sorted(self.unknown_categories.items())
            )
            lines.append(f"  unknown categories: {len(self.unknown_categories):,}: {names}")
        else:
            lines.append("  unknown categories: none")
        if self.new_categories:
            lines.append(
                "  categories to create: "
                + ", ".join(
                    f"{code} ({name!r})" for code, name in sorted(self.new_categories.items())
                )
            )
        mapping = self.status_mapping()
        if mapping:
            shown = ", ".join(
                f"{raw!r} -> {ours or 'closed if it has a close time, else new'} ({n:,})"
                for raw, (ours, n) in sorted(mapping.items())
            )
            lines.append(f"  statuses: {shown}")
        lines.append(
            f"  ids: {self.no_id:,} missing, {self.long_id:,} longer than {MAX_ID_LENGTH} "
            f"characters, {self.duplicate_ids:,} repeated in the file, "
            f"{self.already_imported:,} already imported - all skipped{self._ex('ids')}"
        )
        return "\n".join(lines)


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return (slug or "category")[:60]


def resolve_categories(
    session: Session, city: Jurisdiction, names: dict[str, int], opts: ImportOptions
) -> tuple[dict[str, str], dict[str, int], dict[str, str]]:
    """Map every category name in the file to one of our codes.

    Returns (their name -> our code, unknown names -> rows, new code -> name to create).
    A name maps through the category map, else to a category with that code or name
    (case and spacing ignored).
    """
    services = session.execute(
        sa.select(Service.code, Service.name).where(Service.jurisdiction_id == city.id)
    ).all()
    codes = {code for code, _ in services}
    by_name = {_words(name): code for code, name in services}
    by_code = {_words(code): code for code in codes}
    targets: dict[str, str] = {}
    unknown: dict[str, int] = {}
    new: dict[str, str] = {}
    used = set(codes)
    for name in sorted(names):
        mapped = opts.category_map.get(name)
        if mapped is not None:
            if mapped in codes:
                targets[name] = mapped
                continue
            if opts.create_categories:
                if mapped not in new:
                    if len(mapped) > 64:
                        raise InvalidInput(f"--category-map: code {mapped!r} is longer than 64")
                    new[mapped] = mapped
                    used.add(mapped)
                targets[name] = mapped
            else:
                unknown[f"{name} -> {mapped}"] = names[name]
            continue
        found = by_code.get(_words(name)) or by_name.get(_words(name))
        if found is not None:
            targets[name] = found
        elif opts.create_categories:
            code = _slug(name)
            base, n = code, 2
            while code in used:
                code = f"{base}-{n}"
                n += 1
            used.add(code)
            new[code] = name[:200]
            targets[name] = code
        else:
            unknown[name] = names[name]
    return targets, unknown, new


def _boundary(session: Session, city: Jurisdiction) -> Any:
    wkb = session.execute(
        sa.text("SELECT ST_AsBinary(boundary) FROM jurisdiction WHERE id = :j"), {"j": city.id}
    ).scalar()
    if wkb is None:
        return None
    geom = shapely.from_wkb(bytes(wkb))
    shapely.prepare(geom)
    return geom


class ExistingIds:
    """The city's external ids already stored, as a sorted array of 64-bit hashes (8 bytes
    an id), so that most chunks need no database look-up; a hash hit is confirmed in the
    database before a row counts as already imported."""

    def __init__(self, session: Session, city: Jurisdiction, enabled: bool = True):
        self.session, self.city = session, city
        self.hashes = np.empty(0, dtype=np.uint64)
        if not enabled:
            return
        parts = []
        result = session.execute(
            sa.text(
                "SELECT external_id FROM service_request "
                "WHERE jurisdiction_id = :j AND external_id IS NOT NULL"
            ).execution_options(yield_per=100_000),
            {"j": city.id},
        )
        for rows in result.scalars().partitions():
            parts.append(_hash(pd.Series(rows, dtype=object)))
        if parts:
            self.hashes = np.unique(np.concatenate(parts))

    def flags(self, ids: pd.Series, id_hash: np.ndarray) -> np.ndarray:
        """Rows of a chunk whose id is already imported for the city."""
        out = np.zeros(len(ids), dtype=bool)
        if not self.hashes.size:
            return out
        pos = np.minimum(np.searchsorted(self.hashes, id_hash), self.hashes.size - 1)
        hit = (self.hashes[pos] == id_hash) & (ids != "").to_numpy()
        if not hit.any():
            return out
        found = (
            self.session.execute(
                sa.text(
                    "SELECT external_id FROM service_request "
                    "WHERE jurisdiction_id = :j AND external_id = ANY(:ids)"
                ),
                {"j": self.city.id, "ids": ids[hit].unique().tolist()},
            )
            .scalars()
            .all()
        )
        return ids.isin(set(found)).to_numpy() & hit


@dataclass
class _RowFate:
    """Per-row decisions of one chunk, shared by the check and the import."""

    keep: np.ndarray
    closed: pd.Series  # close time to store (NaT where dropped)
    before: np.ndarray  # closed before created


def _fate(
    chunk: Chunk, seen: SeenIds, existing: np.ndarray
) -> tuple[_RowFate, dict[str, np.ndarray]]:
    ids = chunk.ids
    no_id = (ids == "").to_numpy()
    long_id = (ids.str.len() > MAX_ID_LENGTH).to_numpy()
    present = ~no_id & ~long_id
    repeat = seen.repeats(chunk.id_hash, present)
    existing = existing & present & ~repeat
    created_ok = chunk.created.notna().to_numpy()
    keep = present & ~repeat & ~existing & created_ok
    closed = chunk.closed
    before = (closed < chunk.created).fillna(False).to_numpy(dtype=bool)
    closed = closed.where(~before)
    return _RowFate(keep, closed, before), {
        "no_id": no_id,
        "long_id": long_id,
        "repeat": repeat,
        "existing": existing,
    }


def point_keys(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """One exact key per coordinate pair (a complex number: lat + lon i)."""
    return lat.astype(np.float64) + 1j * lon.astype(np.float64)


class _PointCounter:
    """Rows and distinct addresses per exact point: per-chunk summaries, merged at the end
    (16-24 bytes per distinct value, whatever the width of the rows)."""

    def __init__(self) -> None:
        self.points: list[np.ndarray] = []
        self.counts: list[np.ndarray] = []
        self.pair_hashes: list[np.ndarray] = []
        self.pair_points: list[np.ndarray] = []

    def add(self, lat: np.ndarray, lon: np.ndarray, address: pd.Series | None) -> None:
        ok = np.isfinite(lat)
        if not ok.any():
            return
        keys = point_keys(lat[ok], lon[ok])
        uniq, counts = np.unique(keys, return_counts=True)
        self.points.append(uniq)
        self.counts.append(counts)
        if address is not None:
            addr = address[ok].fillna("").astype(str).str.strip().str.upper()
            has = (addr != "").to_numpy()
            if has.any():
                pair = pd.DataFrame(
                    {"lat": lat[ok][has], "lon": lon[ok][has], "a": addr[has].to_numpy()}
                )
                h = _hash_frame(pair)
                h_uniq, first = np.unique(h, return_index=True)
                self.pair_hashes.append(h_uniq)
                self.pair_points.append(keys[has][first])

    def placeholders(self) -> list[tuple[float, float, int, int]]:
        """(lat, lon, rows, distinct addresses) of the placeholder points, most rows first."""
        if not self.points:
            return []
        keys = np.concatenate(self.points)
        uniq, inverse = np.unique(keys, return_inverse=True)
        counts = np.bincount(inverse.ravel(), weights=np.concatenate(self.counts)).astype(np.int64)
        many = counts >= PLACEHOLDER_MIN_ROWS
        if not many.any():
            return []
        distinct = {}
        if self.pair_hashes:
            _, first = np.unique(np.concatenate(self.pair_hashes), return_index=True)
            pts = np.concatenate(self.pair_points)[first]
            cand = np.isin(pts, uniq[many])
            p_uniq, p_counts = np.unique(pts[cand], return_counts=True)
            distinct = dict(zip(p_uniq.tolist(), p_counts.tolist(), strict=True))
        out = []
        for key, n in zip(uniq[many].tolist(), counts[many].tolist(), strict=True):
            d = int(distinct.get(key, 0))
            if d >= PLACEHOLDER_MIN_ADDRESSES or d == 0:
                out.append((float(key.real), float(key.imag), int(n), d))
        out.sort(key=lambda t: (-t[2], t[0], t[1]))
        return out


def _geocode_chunk(
    session: Session, city: Jurisdiction, report: ScanReport, addresses: pd.Series
) -> None:
    """Look up the chunk's addresses not seen before (one statement each) and count
    every row: placed by match type, not confident, or no match."""
    addresses = addresses[addresses != ""].str.slice(0, MAX_ADDRESS_LENGTH)
    if addresses.empty:
        return
    for text in addresses.unique():
        if text in report.places:
            continue
        try:
            found = geocode(session, city, text, limit=1)
        except GeocodeRefused:
            report.places[text] = None
            continue
        best = found.confident
        if best is not None:
            report.places[text] = (best.lon, best.lat, best.match_type, best.address_id)
        else:
            report.places[text] = None
            if found.candidates:
                report.unsure_texts.add(text)
    for text, n in addresses.value_counts().items():
        placed = report.places[text]
        if placed is not None:
            report.geocoded[placed[2]] = report.geocoded.get(placed[2], 0) + int(n)
        elif text in report.unsure_texts:
            report.geocode_unsure += int(n)
        else:
            report.geocode_no_match += int(n)


def scan(
    session: Session,
    city: Jurisdiction,
    opts: ImportOptions,
    progress: Progress | None = None,
) -> ScanReport:
    """Read the whole file and judge every row; writes nothing."""
    header = read_header(opts)
    check_columns(opts, header)
    tz = opts.tz or city.timezone
    cols = opts.columns
    report = ScanReport(file=opts.path.name, geocoding=opts.geocode)
    boundary = _boundary(session, city)
    existing_ids = ExistingIds(session, city)
    seen = SeenIds()
    points = _PointCounter()
    categories: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    channels: Counter[str] = Counter()
    years: Counter[int] = Counter()
    size = max(opts.path.stat().st_size, 1)
    city_tz = city.timezone
    other_dates = [k for k in ("first_response", "updated") if cols.get(k)]

    for chunk in read_chunks(opts, tz):
        n = len(chunk)
        report.rows += n
        existing = existing_ids.flags(chunk.ids, chunk.id_hash)
        fate, why = _fate(chunk, seen, existing)
        keep = fate.keep
        report.no_id += int(why["no_id"].sum())
        report.long_id += int((why["long_id"] & ~why["no_id"]).sum())
        report.duplicate_ids += int(why["repeat"].sum())
        report.already_imported += int(why["existing"].sum())
        for kind in ("repeat", "existing"):
            for k in np.flatnonzero(why[kind])[:EXAMPLES]:
                label = "repeated" if kind == "repeat" else "already imported"
                report.example("ids", f"row {chunk.first_row + k}: {chunk.ids.iat[k]!r} {label}")
        report.importable += int(keep.sum())

        located = np.isfinite(chunk.lat)
        report.no_coordinates += int((~located & keep).sum())
        report.invalid_coordinates += int((chunk.coords_invalid & keep).sum())
        if boundary is not None and located.any():
            inside = np.zeros(n, dtype=bool)
            inside[located] = shapely.intersects_xy(
                boundary, chunk.lon[located], chunk.lat[located]
            )
            report.outside_city += int((located & ~inside & keep).sum())
        address = chunk.frame[cols.get("address")] if cols.get("address") else None
        points.add(np.where(keep, chunk.lat, np.nan), chunk.lon, address)
        if opts.geocode and address is not None:
            _geocode_chunk(session, city, report, address[keep & ~located].str.strip())

        bad_created = chunk.created_bad.to_numpy()
        report.bad_created += int(bad_created.sum())
        for k in np.flatnonzero(bad_created)[:EXAMPLES]:
            raw = chunk.frame[cols.get("created")].iat[k]
            report.example("dates", f"row {chunk.first_row + k} created {raw!r}")
        created_text = chunk.frame[cols.get("created")].str.strip()
        empty_created = (created_text == "").to_numpy()
        report.empty_created += int(empty_created.sum())
        for k in np.flatnonzero(empty_created | bad_created):
            if len(report.created_rows) >= ROW_LIST:
                break
            report.created_rows.append(
                f"row {chunk.first_row + k}: "
                + (
                    "the created date is empty"
                    if empty_created[k]
                    else f"the created date {created_text.iat[k]!r} is not a date"
                    + (f" in the format {opts.date_format!r}" if opts.date_format else "")
                )
            )
        if cols.get("due"):
            due, bad_due = parse_times(chunk.frame[cols.get("due")], tz, opts.date_format)
            report.due_given += int((due.notna().to_numpy() & keep).sum())
            bad_due = bad_due.to_numpy() & keep
            report.bad_due += int(bad_due.sum())
            for k in np.flatnonzero(bad_due)[:EXAMPLES]:
                raw = chunk.frame[cols.get("due")].iat[k]
                report.example("due", f"row {chunk.first_row + k} due {raw!r}")
        bad_closed = chunk.closed_bad.to_numpy() & keep
        report.bad_closed += int(bad_closed.sum())
        for k in np.flatnonzero(bad_closed)[:EXAMPLES]:
            raw = chunk.frame[cols.get("closed")].iat[k]
            report.example("dates", f"row {chunk.first_row + k} closed {raw!r}")
        for key in other_dates:
            _, bad = parse_times(chunk.frame[cols.get(key)], tz, opts.date_format)
            report.bad_other_dates += int((bad.to_numpy() & keep).sum())
        before = fate.before & keep
        report.closed_before_created += int(before.sum())
        for k in np.flatnonzero(before)[:EXAMPLES]:
            report.example(
                "closed_before",
                f"row {chunk.first_row + k}: created {chunk.created.iat[k]:%Y-%m-%d %H:%M}Z, "
                f"closed {chunk.closed.iat[k]:%Y-%m-%d %H:%M}Z",
            )

        kept = chunk.frame[keep]
        categories.update(kept[cols.get("category")].str.strip().value_counts().to_dict())
        if cols.get("status"):
            statuses.update(kept[cols.get("status")].str.strip().value_counts().to_dict())
        if cols.get("channel"):
            values = kept[cols.get("channel")].str.strip()
            channels.update(values.value_counts().to_dict())
            rows = np.flatnonzero(keep) + chunk.first_row
            for value in values.unique():
                if not value or opts.channel_of(value) is not None:
                    continue
                listed = report.channel_rows.setdefault(value, [])
                room = ROW_LIST - len(listed)
                if room > 0:
                    listed.extend(int(r) for r in rows[(values == value).to_numpy()][:room])
        for name, counter in (
            ("categories", categories),
            ("statuses", statuses),
            ("channels", channels),
        ):
            if len(counter) > MAX_DISTINCT:
                raise InvalidInput(
                    f"{opts.path.name}: more than {MAX_DISTINCT:,} different {name}; "
                    "is --map pointing at the right column?",
                    field="map",
                )
        local_years = chunk.created[keep].dt.tz_convert(city_tz).dt.year
        years.update(local_years.value_counts().to_dict())
        if progress:
            progress("checking", min(chunk.bytes_read, size), size)

    if report.rows == 0:
        raise InvalidInput(f"{opts.path.name} has a header but no rows", field="file")
    report.placeholder_points = points.placeholders()
    report.placeholder_rows = sum(n for _, _, n, _ in report.placeholder_points)
    report.categories = dict(categories)
    report.statuses = dict(statuses)
    report.channels = dict(channels)
    report.channel_mapped = {
        raw: ours for raw in channels if raw and (ours := opts.channel_of(raw)) is not None
    }
    report.default_channel = opts.default_channel
    report.years = {int(y): int(n) for y, n in years.items()}
    if "" in report.categories:
        report.unknown_categories["(empty)"] = report.categories.pop("")
    targets, unknown, new = resolve_categories(session, city, report.categories, opts)
    report.category_targets = targets
    report.unknown_categories.update(unknown)
    report.new_categories = new
    return report


# --------------------------------------------------------------------------- the import


@dataclass
class ImportResult:
    report: ScanReport
    imported: int
    routed: int | None
    created_categories: list[str]
    seconds: float
    dry_run: bool
    phases: dict[str, float] = field(default_factory=dict)  # phase -> seconds

    def timing(self) -> str:
        return ", ".join(f"{name} {secs:.1f} s" for name, secs in self.phases.items())


STAGE = "_import_stage"
COPY_COLUMNS = (
    "jurisdiction_id",
    "public_id",
    "token",
    "external_id",
    "service_id",
    "status",
    "priority",
    "location",
    "address",
    "address_id",
    "description",
    "channel",
    "anonymous",
    "notify_updates",
    "needs_location",
    "requested_at",
    "updated_at",
    "first_response_at",
    "closed_at",
    "due_at",  # the city's own target date; routing's SLA where empty (routing.engine)
)
EWKB_POINT = np.dtype(
    [("order", "u1"), ("type", "<u4"), ("srid", "<u4"), ("x", "<f8"), ("y", "<f8")]
)


def _ewkb_hex(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Hex EWKB points (SRID 4326), None where there is no position."""
    rec = np.empty(lon.size, dtype=EWKB_POINT)
    rec["order"], rec["type"], rec["srid"] = 1, 0x20000001, 4326
    rec["x"], rec["y"] = lon, lat
    width = 2 * EWKB_POINT.itemsize
    text = np.frombuffer(rec.tobytes().hex().encode("ascii"), dtype=f"S{width}").astype(f"U{width}")
    text = text.astype(object)
    return np.where(np.isfinite(lon), text, None)


def _tokens(n: int) -> list[str]:
    # 24 random bytes are exactly 32 URL-safe characters: one encode splits into tokens.
    blob = base64.urlsafe_b64encode(os.urandom(24 * n))
    return np.frombuffer(blob, dtype="S32").astype("U32").tolist()


def _iso(times: pd.Series) -> np.ndarray:
    arr = times.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    text = np.datetime_as_string(arr, unit="s") + "Z"
    return np.where(np.isnat(arr), None, text.astype(object))


def _map_values(values: pd.Series, words: dict[str, str]) -> pd.Series:
    distinct = values.unique()
    lookup = {v: words.get(_words(v)) for v in distinct}
    return values.map(lookup)


def _reserve(
    sessions: sessionmaker[Session], city: Jurisdiction, years: dict[int, int]
) -> dict[int, int]:
    """First number of a block of public ids per year, reserved in a short transaction of
    its own (a long import must not hold the counter's lock against live submissions)."""
    out = {}
    with sessions.begin() as session:
        for year, count in sorted(years.items()):
            stmt = (
                insert(PublicIdCounter)
                .values(jurisdiction_id=city.id, year=year, last_value=count)
                .on_conflict_do_update(
                    index_elements=["jurisdiction_id", "year"],
                    set_={"last_value": PublicIdCounter.last_value + count},
                )
                .returning(PublicIdCounter.last_value)
            )
            last = session.execute(stmt).scalar_one()
            out[year] = last - count + 1
    return out


def _chunk_csv(
    city: Any,
    chunk: Chunk,
    fate: _RowFate,
    opts: ImportOptions,
    tz: str,
    service_ids: dict[str, int],
    next_number: dict[int, int],
    limits: dict[int, int],
    placeholders: np.ndarray | None,
    places: dict[str, tuple[float, float, str, str | None] | None] | None = None,
) -> tuple[str, int]:
    """The chunk's rows to import as CSV for COPY (columns :data:`COPY_COLUMNS`)."""
    keep = fate.keep
    rows = int(keep.sum())
    if rows == 0:
        return "", 0
    cols = opts.columns
    frame = chunk.frame[keep]
    created = chunk.created[keep]
    closed = fate.closed[keep]
    lat, lon = chunk.lat[keep], chunk.lon[keep]
    if placeholders is not None and placeholders.size and np.isfinite(lat).any():
        on = np.isin(point_keys(lat, lon), placeholders)
        lat = np.where(on, np.nan, lat)
        lon = np.where(on, np.nan, lon)
    address_id = None
    if places and cols.get("address"):
        # The check geocoded each address once: its point for rows that have none.
        texts = frame[cols.get("address")].str.strip().str.slice(0, MAX_ADDRESS_LENGTH)
        found = [
            places.get(t) if not np.isfinite(y) else None
            for t, y in zip(texts.tolist(), lat.tolist(), strict=True)
        ]
        if any(found):
            lon = np.array([p[0] if p else x for p, x in zip(found, lon.tolist(), strict=True)])
            lat = np.array([p[1] if p else y for p, y in zip(found, lat.tolist(), strict=True)])
            address_id = np.array([p[3] if p else None for p in found], dtype=object)

    service = frame[cols.get("category")].str.strip().map(service_ids)
    if service.isna().any():
        raise InvalidInput("the file changed while it was being imported: run the import again")
    has_closed = closed.notna()
    if cols.get("status"):
        status = _map_values(frame[cols.get("status")].str.strip(), STATUS_WORDS)
    else:
        status = pd.Series(None, index=frame.index, dtype=object)
    fallback = np.where(has_closed, Status.CLOSED.value, Status.NEW.value)
    status = status.where(status.notna(), pd.Series(fallback, index=frame.index))
    if cols.get("channel"):
        raw = frame[cols.get("channel")].str.strip()
        channel = raw.map({v: opts.channel_of(v) for v in raw.unique()})
        channel = channel.where(channel.isin(CHANNELS), opts.default_channel)
    else:
        channel = pd.Series(opts.default_channel, index=frame.index)

    first_response = None
    if cols.get("first_response"):
        first_response, _ = parse_times(frame[cols.get("first_response")], tz, opts.date_format)
    due = None
    if cols.get("due"):
        due, _ = parse_times(frame[cols.get("due")], tz, opts.date_format)
    updated = None
    if cols.get("updated"):
        updated, _ = parse_times(frame[cols.get("updated")], tz, opts.date_format)
    fallback_updated = closed.where(has_closed & (closed > created), created)
    updated = (
        fallback_updated if updated is None else updated.where(updated.notna(), fallback_updated)
    )

    years = created.dt.tz_convert(city.timezone).dt.year.to_numpy()
    numbers = np.empty(rows, dtype=np.int64)
    order = pd.Series(years).groupby(years).cumcount().to_numpy()
    for year in np.unique(years):
        mask = years == year
        numbers[mask] = next_number[int(year)] + order[mask]
        next_number[int(year)] += int(mask.sum())
        if next_number[int(year)] > limits[int(year)]:
            raise InvalidInput("the file changed while it was being imported: run the import again")
    prefix = city.public_id_prefix
    public = [format_public_id(prefix, int(y), int(n)) for y, n in zip(years, numbers, strict=True)]

    def text(key: str, limit: int | None = None) -> Any:
        if not cols.get(key):
            return None
        values = frame[cols.get(key)].str.strip()
        if limit:
            values = values.str.slice(0, limit)
        return values.where(values != "", None).to_numpy(dtype=object)

    out = pd.DataFrame(
        {
            "jurisdiction_id": city.id,
            "public_id": public,
            "token": _tokens(rows),
            "external_id": chunk.ids[keep].to_numpy(dtype=object),
            "service_id": service.astype("int64").to_numpy(),
            "status": status.to_numpy(dtype=object),
            "priority": "normal",
            "location": _ewkb_hex(lon, lat),
            "address": text("address", MAX_ADDRESS_LENGTH),
            "address_id": address_id,
            "description": text("description"),
            "channel": channel.to_numpy(dtype=object),
            "anonymous": "f",
            "notify_updates": "f",
            "needs_location": np.where(np.isfinite(lon), "f", "t"),
            "requested_at": _iso(created),
            "updated_at": _iso(updated),
            "first_response_at": None if first_response is None else _iso(first_response),
            "closed_at": _iso(closed),
            "due_at": None if due is None else _iso(due),
        },
        columns=list(COPY_COLUMNS),
    )
    return out.to_csv(header=False, index=False), rows


def _ahead(items: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """``items`` produced by a worker thread up to ``depth`` ahead of the consumer.

    The import parses and formats the next chunks while PostgreSQL ingests this one
    (psycopg releases the GIL while it waits on the server). Errors in the worker are
    raised in the consumer; stopping early stops the worker.
    """
    box: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(done)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)

    worker = threading.Thread(target=work, name="history-import-reader", daemon=True)
    worker.start()
    try:
        while True:
            item = box.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=30)


def import_history(
    sessions: sessionmaker[Session],
    slug: str | None,
    opts: ImportOptions,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ImportResult:
    """Check the file, then (unless ``dry_run``) import and route it in one transaction.

    Raises :class:`InvalidInput` (nothing written) for a bad file or map, for unknown
    categories without ``create_categories``, and when no row can be imported.
    """
    started = time.perf_counter()
    read_header(opts)  # a bad file fails before the database is touched
    with sessions() as session:
        city = get_city(session, slug)
        tz = check_timezone(opts.tz or city.timezone)
        report = scan(session, city, opts, progress)
        slug = city.slug
    phases = {"checking": time.perf_counter() - started}
    if dry_run:
        return ImportResult(report, 0, None, [], time.perf_counter() - started, True, phases)
    if report.unknown_categories:
        names = ", ".join(repr(n) for n in sorted(report.unknown_categories))
        raise InvalidInput(
            f"{len(report.unknown_categories)} unknown categor"
            f"{'y' if len(report.unknown_categories) == 1 else 'ies'}: {names}; "
            "map them with --category-map or create them with --create-categories",
            field="category",
        )
    if report.importable == 0:
        if report.already_imported:
            # Running the same file again is fine: there is just nothing new in it.
            return ImportResult(report, 0, 0, [], time.perf_counter() - started, False, phases)
        raise InvalidInput(
            f"{opts.path.name}: no row can be imported (see --dry-run)", field="file"
        )

    with sessions() as session:
        city = get_city(session, slug)
    starts = _reserve(sessions, city, report.years)
    limits = {y: starts[y] + n for y, n in report.years.items()}
    next_number = dict(starts)
    placeholders = None
    if opts.drop_placeholders and report.placeholder_points:
        placeholders = point_keys(
            np.array([p[0] for p in report.placeholder_points]),
            np.array([p[1] for p in report.placeholder_points]),
        )
    with sessions() as session, session.begin():
        city = get_city(session, slug)
        for code, name in sorted(report.new_categories.items()):
            session.add(Service(jurisdiction_id=city.id, code=code, name=name, group="Imported"))
        session.flush()
        ids = dict(
            session.execute(
                sa.select(Service.code, Service.id).where(Service.jurisdiction_id == city.id)
            ).all()
        )
        service_ids = {name: ids[code] for name, code in report.category_targets.items()}
        # Ids imported between the check and now would make COPY fail on the unique
        # (city, external id) index and roll everything back, so only the ids the check
        # found need looking up again.
        existing_ids = ExistingIds(session, city, enabled=report.already_imported > 0)
        seen = SeenIds()

        # Plain values: the reader thread must not touch the session's ORM objects.
        info = SimpleNamespace(
            id=city.id, timezone=city.timezone, public_id_prefix=city.public_id_prefix
        )

        def prepared() -> Iterator[tuple[str, int]]:
            for chunk in read_chunks(opts, tz):
                existing = existing_ids.flags(chunk.ids, chunk.id_hash)
                fate, _ = _fate(chunk, seen, existing)
                yield _chunk_csv(
                    info,
                    chunk,
                    fate,
                    opts,
                    tz,
                    service_ids,
                    next_number,
                    limits,
                    placeholders,
                    report.places if opts.geocode else None,
                )

        # Look-ups of already imported ids share the session's connection with COPY, so
        # only an import without them is read ahead in a second thread.
        chunks = prepared() if existing_ids.hashes.size else _ahead(prepared())
        # The rows wait in a staging table (temporary: no WAL, no indexes) with their ids
        # drawn already, are routed there, and go into service_request once, routed: the
        # table and its indexes are written once per row, not inserted then updated.
        session.execute(
            sa.text(f"CREATE TEMP TABLE {STAGE} (LIKE service_request INCLUDING DEFAULTS) "
                    "ON COMMIT DROP")
        )  # fmt: skip
        copy_sql = f"COPY {STAGE} ({', '.join(COPY_COLUMNS)}) FROM STDIN WITH (FORMAT csv)"
        cursor = session.connection().connection.dbapi_connection.cursor()
        imported = 0
        try:
            for text, rows in chunks:
                if rows:
                    with cursor.copy(copy_sql) as copy:
                        copy.write(text)
                imported += rows
                if progress:
                    progress("importing", imported, report.importable)
        finally:
            cursor.close()
        if imported != report.importable:
            raise InvalidInput("the file changed while it was being imported: run the import again")
        session.execute(sa.text(f"CREATE INDEX ON {STAGE} (id)"))
        # The zone look-up walks the zone pieces and probes the points (a sorted build).
        session.execute(sa.text(f"CREATE INDEX ON {STAGE} USING gist (location)"))
        session.execute(sa.text(f"ANALYZE {STAGE}"))
        phases["importing"] = time.perf_counter() - started - phases["checking"]

        def routed(done: int, total: int) -> None:
            if progress:
                progress("routing", done, total)

        try:
            n_routed = route_staged(session, city, STAGE, COPY_COLUMNS, progress=routed)
        except sa.exc.IntegrityError as exc:
            if not isinstance(exc.orig, psycopg.errors.UniqueViolation):
                raise
            raise InvalidInput(
                "some of these ids were imported meanwhile by someone else: run the import again"
            ) from None
        session.execute(sa.text(f"DROP TABLE {STAGE}"))
        # Fresh statistics for the table's new size.
        session.execute(sa.text("ANALYZE service_request"))
        routed_at = time.perf_counter()
    phases["routing"] = routed_at - started - phases["checking"] - phases["importing"]
    return ImportResult(
        report,
        imported,
        n_routed,
        sorted(report.new_categories),
        time.perf_counter() - started,
        False,
        phases,
    )
