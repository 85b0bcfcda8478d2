"""The demo cities, built from plain files: a boundary, zone layers, a city file, the
city's streets and assets, and records.

A manifest (``demo.yaml``, beside the files it names) says which file is the boundary,
which files are zone layers (with their code and name fields), which files hold the street
centrelines and the asset layers (with the map from their fields to civicpin's), which city
file holds the set-up (applied with :func:`routing.city_file.apply_city`, as ``civicpin
city apply`` does), and how the records' columns and values map to civicpin's. The records
also give the city its address points: each distinct address with its point, taken apart by
:mod:`places.parse` and written through :mod:`places.store` like an imported address file.

The shipped demo is Los Angeles (``data/los_angeles``: 10,000 real records, the default
city) and Cambridge, MA (``data/cambridge``: streets with address ranges and street
lights, no records); sources and licences in the READMEs there. Nothing here knows either.

:func:`load_demo` builds each city in one transaction (all or nothing) and is idempotent:
a city that exists is only counted.
"""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
import yaml
from sqlalchemy.orm import Session, sessionmaker

from places import importers, store
from places.parse import parse_place
from routing import classify
from routing.city_file import apply_city, parse
from routing.engine import route_bulk
from spatial.db import session_scope
from spatial.errors import InvalidInput
from spatial.models import Jurisdiction, Service, ServiceRequest
from spatial.public_ids import ensure_at_least, format_public_id
from spatial.zones import create_city, import_layer

DATA_ROOT = Path(__file__).resolve().parent / "data"
DATA_DIR = DATA_ROOT / "los_angeles"
MANIFEST_FILE = DATA_DIR / "demo.yaml"
# Every demo city, the default city first: it is created first, so it stays the install's
# default (spatial.cities.default_city) and serves the addresses without /c/<slug>/.
DEMO_MANIFESTS: tuple[Path, ...] = (MANIFEST_FILE, DATA_ROOT / "cambridge" / "demo.yaml")

Progress = Callable[[str], None]
IMPORTED_BY = "demo"  # the imported_by of the demo's place datasets
# The record fields the manifest's ``records.columns`` maps to the file's column names.
RECORD_FIELDS = (
    "external_id",
    "category",
    "status",
    "channel",
    "requested_at",
    "updated_at",
    "closed_at",
    "lat",
    "lon",
    "address",
)


@cache
def manifest(path: Path = MANIFEST_FILE) -> dict[str, Any]:
    """The demo's manifest, its file names resolved next to it."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    base = path.parent
    records, streets = data.get("records"), data.get("streets")
    return {
        **data,
        "boundary": base / data["boundary"],
        "city_file": base / data["city_file"],
        "layers": [{**layer, "file": base / layer["file"]} for layer in data.get("layers") or []],
        "records": {**records, "file": base / records["file"]} if records else None,
        "streets": {**streets, "file": base / streets["file"]} if streets else None,
        "assets": [{**a, "file": base / a["file"]} for a in data.get("assets") or []],
        "texts": base / data["texts"] if data.get("texts") else None,
    }


BOUNDARY_FILE: Path = manifest()["boundary"]  # Los Angeles'

RECORDS_FILE: Path = manifest()["records"]["file"]

COUNTS_SQL = sa.text(
    """
    SELECT
      (SELECT count(*) FROM zone_layer WHERE jurisdiction_id = :j AND is_current) AS layers,
      (SELECT count(*) FROM department WHERE jurisdiction_id = :j) AS departments,
      (SELECT count(*) FROM crew c JOIN department d ON d.id = c.department_id
        WHERE d.jurisdiction_id = :j) AS crews,
      (SELECT count(*) FROM service WHERE jurisdiction_id = :j) AS services,
      (SELECT count(*) FROM routing_rule r JOIN routing_ruleset s ON s.id = r.ruleset_id
        WHERE s.jurisdiction_id = :j AND s.status = 'published') AS rules,
      (SELECT count(*) FROM service_request WHERE jurisdiction_id = :j) AS requests,
      (SELECT count(*) FROM service_request
        WHERE jurisdiction_id = :j AND department_id IS NOT NULL) AS routed,
      (SELECT count(*) FROM address_point WHERE jurisdiction_id = :j) AS address_points,
      (SELECT count(*) FROM street_segment WHERE jurisdiction_id = :j) AS street_segments,
      (SELECT count(*) FROM street_intersection WHERE jurisdiction_id = :j) AS intersections
    """
)
ZONES_SQL = sa.text(
    """
    SELECT l.name, count(z.id) FROM zone_layer l LEFT JOIN zone z ON z.layer_id = l.id
    WHERE l.jurisdiction_id = :j AND l.is_current GROUP BY l.name ORDER BY l.name
    """
)
ASSETS_SQL = sa.text(
    """
    SELECT l.name, count(a.id) FROM asset_layer l LEFT JOIN asset a ON a.layer_id = l.id
    WHERE l.jurisdiction_id = :j GROUP BY l.name ORDER BY l.name
    """
)


def demo_counts(session: Session, city: Jurisdiction) -> dict[str, Any]:
    """What a demo city holds, for the CLI and for tests (``zones`` and ``assets``: per
    layer)."""
    row = session.execute(COUNTS_SQL, {"j": city.id}).one()
    zones = {name: int(n) for name, n in session.execute(ZONES_SQL, {"j": city.id})}
    assets = {name: int(n) for name, n in session.execute(ASSETS_SQL, {"j": city.id})}
    return {
        "city": city.slug,
        "name": city.name,
        **{k: int(v) for k, v in row._mapping.items()},
        "zones": zones,
        "assets": assets,
    }


def load_demo(
    sessions: sessionmaker[Session],
    progress: Progress | None = None,
    manifests: tuple[Path, ...] = DEMO_MANIFESTS,
) -> dict[str, Any]:
    """Load every demo city that is not there, each in its own transaction.

    Returns the first (default) city's counts, ``created`` saying whether it was built now,
    and ``other_cities``: the same for each further city.
    """
    results = [load_demo_city(sessions, progress, path) for path in manifests]
    return {**results[0], "other_cities": results[1:]}


def load_demo_city(
    sessions: sessionmaker[Session],
    progress: Progress | None = None,
    manifest_file: Path = MANIFEST_FILE,
) -> dict[str, Any]:
    """Load one demo city unless it is there; return its counts (``created`` says which)."""
    say = progress or (lambda _msg: None)
    m = manifest(manifest_file)
    with session_scope(sessions) as s:
        city = s.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == m["slug"]))
        if city is not None:
            return {**demo_counts(s, city), "created": False}
        # Serialise concurrent first loads: the loser waits, then sees the city.
        s.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('civicpin-demo-load'))"))
        city = s.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == m["slug"]))
        if city is not None:
            return {**demo_counts(s, city), "created": False}
        city = _build(s, say, m)
        return {**demo_counts(s, city), "created": True}


# --------------------------------------------------------------------------- records


def _local_times(values: pd.Series, tz: str) -> pd.Series:
    parsed = pd.to_datetime(values, format="ISO8601", errors="coerce")
    # Ambiguous fall-back hours count as standard time; skipped spring hours move on.
    return parsed.dt.tz_localize(
        tz, ambiguous=np.zeros(len(parsed), dtype=bool), nonexistent="shift_forward"
    )


def _unknown(values: pd.Series, known: dict[str, Any], what: str) -> None:
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise InvalidInput(f"demo records hold unknown {what}: {', '.join(unknown)}")


def _records(
    city: Jurisdiction, spec: dict[str, Any], service_ids: dict[str, int]
) -> tuple[str, dict[int, int]]:
    """The records as CSV for COPY, in public-id order; and the last number per year."""
    columns = spec["columns"]
    raw = pd.read_csv(spec["file"], dtype=str, keep_default_na=False)
    missing = [columns[f] for f in RECORD_FIELDS if columns[f] not in raw.columns]
    if missing:
        raise InvalidInput(f"demo records have no column {', '.join(missing)}")
    df = pd.DataFrame({f: raw[columns[f]] for f in RECORD_FIELDS})
    categories = spec["categories"]
    _unknown(df["category"], categories, "categories")
    missing_codes = sorted(set(categories.values()) - set(service_ids))
    if missing_codes:
        raise InvalidInput(f"the demo's city file has no category {', '.join(missing_codes)}")
    _unknown(df["status"], spec["statuses"], "statuses")
    tz = city.timezone
    df["requested"] = _local_times(df["requested_at"], tz)
    df["closed"] = _local_times(df["closed_at"], tz)  # empty -> NaT
    df["updated"] = _local_times(df["updated_at"], tz)
    if df["requested"].isna().any():
        raise InvalidInput("demo records: some creation times are not dates")
    df = df.sort_values(["requested", "external_id"], kind="stable").reset_index(drop=True)
    years = df["requested"].dt.year
    df["number"] = df.groupby(years).cumcount() + 1
    last = {int(y): int(n) for y, n in df.groupby(years)["number"].max().items()}

    lat = pd.to_numeric(df["lat"], errors="coerce")
    lon = pd.to_numeric(df["lon"], errors="coerce")
    has_point = lat.notna() & lon.notna()
    channels, default_channel = spec["channels"], spec["default_channel"]
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
                row.external_id,
                service_ids[categories[row.category]],
                spec["statuses"][row.status],
                "normal",
                point,
                row.address or None,
                channels.get(row.channel, default_channel),
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


# --------------------------------------------------------------------------- places


def _address_points(s: Session, city: Jurisdiction, spec: dict[str, Any]) -> None:
    """Each distinct address of the records at its first record's point, as the city's
    address points (no city ids: the records carry none). Two spellings of one address
    ("W PALMYRA ROAD", "W PALMYRA RD") make one point; texts that are not a number on a
    street ("MAIN ST AT 5TH ST") are counted as bad rows."""
    rows = s.execute(
        sa.text(
            """
            SELECT address, lon, lat FROM (
              SELECT DISTINCT ON (address) address, ST_X(location) AS lon,
                     ST_Y(location) AS lat, requested_at, id
              FROM service_request
              WHERE jurisdiction_id = :j AND location IS NOT NULL AND address IS NOT NULL
              ORDER BY address, requested_at, id
            ) first ORDER BY requested_at, id
            """
        ),
        {"j": city.id},
    ).all()
    good: list[store.AddressRow] = []
    seen: set[str] = set()
    for address, lon, lat in rows:
        place = parse_place(address)
        if place is None or place.kind != "address" or place.number is None:
            continue
        if (text := place.normalised()) in seen:
            continue
        seen.add(text)
        good.append(
            store.AddressRow(
                lon=lon,
                lat=lat,
                number=place.number,
                street=place.street,
                number_suffix=place.number_suffix,
                unit=place.unit,
                zip=place.zip,
            )
        )
    columns = spec["columns"]
    dataset = store.begin(
        s,
        city,
        "addresses",
        source_name=spec["file"].name,
        mapping={"address": columns["address"], "lat": columns["lat"], "lon": columns["lon"]},
        imported_by=IMPORTED_BY,
    )
    store.add_addresses(s, dataset, good)
    store.finish(s, dataset, rows_read=len(rows), rows_bad=len(rows) - len(good))


def _streets(s: Session, city: Jurisdiction, spec: dict[str, Any]) -> None:
    """The street centrelines, imported as ``civicpin streets import`` does; a segment
    without a street name is left out (it cannot be looked up)."""
    importers.import_streets(
        s, city, spec["file"], dict(spec["mapping"]), imported_by=IMPORTED_BY, skip_bad=True
    )


def _assets(s: Session, city: Jurisdiction, spec: dict[str, Any]) -> None:
    """An asset layer, imported as ``civicpin assets import`` does: ``id_field`` gives the
    city's id, ``label`` a field or a text with fields in braces ("Pole {PoleID},
    {Intersection}"); the other fields become the attributes."""
    importers.import_assets(
        s,
        city,
        spec["file"],
        layer=spec["layer"],
        id_field=spec["id_field"],
        label_field=spec.get("label"),
        title=spec.get("title"),
        imported_by=IMPORTED_BY,
    )


# --------------------------------------------------------------------------- building


def _build(s: Session, say: Progress, m: dict[str, Any]) -> Jurisdiction:
    setup = parse(m["city_file"].read_text(encoding="utf-8"))
    c = setup["city"]
    say(f"creating the city {m['slug']} from {m['boundary'].name}")
    city = create_city(
        s, m["slug"], c["name"], c["timezone"], m["boundary"], prefix=c.get("public_id_prefix")
    )
    for layer in m["layers"]:
        say(f"importing the zone layer {layer['name']}")
        import_layer(
            s,
            city,
            layer["file"],
            layer["name"],
            code_field=layer.get("code_field"),
            name_field=layer.get("name_field"),
            title=layer.get("title"),
            population_field=layer.get("population_field"),
            join_parts=bool(layer.get("join_parts")),
        )
    if m["streets"]:
        say(f"importing the streets from {m['streets']['file'].name}")
        _streets(s, city, m["streets"])
    for spec in m["assets"]:
        say(f"importing the asset layer {spec['layer']} from {spec['file'].name}")
        _assets(s, city, spec)

    # After the asset layers: a category of the city file may be tied to one.
    say(f"applying {m['city_file'].name} (departments, crews, categories, routing rules)")
    apply_city(s, city, setup)

    if m["records"]:
        _load_records(s, say, city, m["records"])
    if m["texts"]:
        say(f"giving records residents' words from {m['texts'].name}")
        _give_texts(s, city, m["texts"])
        say("training the category suggestion")
        try:
            classify.train(s, city)
        except classify.NotEnoughHistory as exc:
            say(f"no category suggestion: {exc}")
    return city


def _give_texts(s: Session, city: Jurisdiction, spec_file: Path) -> None:
    """Describe records with real residents' texts (``texts`` of the manifest): each demo
    category's texts go to its records spread evenly over the history, in the source's
    time order, one text per record."""
    spec = yaml.safe_load(spec_file.read_text(encoding="utf-8"))
    raw = pd.read_csv(spec_file.parent / spec["file"], dtype=str, keep_default_na=False)
    raw = raw[raw[spec["text_column"]].str.strip() != ""]
    raw = raw.assign(_t=pd.to_numeric(raw[spec["time_column"]])).sort_values("_t", kind="stable")
    codes = raw[spec["category_column"]].map(lambda c: spec["categories"].get(c, spec["default"]))
    services = {
        code: sid
        for code, sid in s.execute(
            sa.select(Service.code, Service.id).where(Service.jurisdiction_id == city.id)
        )
    }
    pairs: list[dict[str, Any]] = []
    for code, texts in raw[spec["text_column"]].groupby(codes, sort=True):
        if code not in services:
            raise InvalidInput(f"demo texts: the city has no category {code}")
        ids = s.scalars(
            sa.select(ServiceRequest.id)
            .where(ServiceRequest.service_id == services[code])
            .order_by(ServiceRequest.requested_at, ServiceRequest.id)
        ).all()
        step = len(ids) / len(texts) if len(texts) else 0
        for i, text in enumerate(texts.tolist()[: len(ids)]):
            pairs.append({"rid": ids[int(i * step)], "text": text})
    if pairs:
        table = ServiceRequest.__table__
        s.connection().execute(
            sa.update(table)
            .where(table.c.id == sa.bindparam("rid"))
            .values(description=sa.bindparam("text")),
            pairs,
        )


def _load_records(s: Session, say: Progress, city: Jurisdiction, spec: dict[str, Any]) -> None:
    say("loading the records")
    service_ids = {
        code: sid
        for code, sid in s.execute(
            sa.select(Service.code, Service.id).where(Service.jurisdiction_id == city.id)
        )
    }
    data, last_numbers = _records(city, spec, service_ids)
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
    say("taking the address points from the records")
    _address_points(s, city, spec)

    say("routing the records")
    # The records' rows are new in this transaction: without statistics the planner's
    # guess for the set-based routing took 20 s instead of 1.5 s (the history import
    # analyses its staging table for the same reason).
    s.execute(sa.text("ANALYZE service_request"))
    route_bulk(s, city)
    s.execute(sa.text("ANALYZE service_request"))
