"""The demo city, built from plain files: a boundary, zone layers, a city file and records.

A manifest (``demo.yaml``, beside the files it names) says which file is the boundary,
which files are zone layers (with their code and name fields), which city file holds the
set-up (applied with :func:`routing.city_file.apply_city`, as ``civicpin city apply``
does), and how the records' columns and values map to civicpin's. The shipped demo is Los
Angeles (``data/los_angeles``: sources and licence in the README there); nothing here
knows it.

:func:`load_demo` builds everything in one transaction (all or nothing) and is
idempotent: when the manifest's city exists it only returns its counts.
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

from routing.city_file import apply_city, parse
from routing.engine import route_bulk
from spatial.db import session_scope
from spatial.errors import InvalidInput
from spatial.models import Jurisdiction, Service
from spatial.public_ids import ensure_at_least, format_public_id
from spatial.zones import create_city, import_layer

DATA_DIR = Path(__file__).resolve().parent / "data" / "los_angeles"
MANIFEST_FILE = DATA_DIR / "demo.yaml"

Progress = Callable[[str], None]
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
    return {
        **data,
        "boundary": base / data["boundary"],
        "city_file": base / data["city_file"],
        "layers": [{**layer, "file": base / layer["file"]} for layer in data["layers"]],
        "records": {**data["records"], "file": base / data["records"]["file"]},
    }


BOUNDARY_FILE: Path = manifest()["boundary"]
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
      (SELECT count(*) FROM address_point WHERE jurisdiction_id = :j) AS address_points
    """
)
ZONES_SQL = sa.text(
    """
    SELECT l.name, count(z.id) FROM zone_layer l LEFT JOIN zone z ON z.layer_id = l.id
    WHERE l.jurisdiction_id = :j AND l.is_current GROUP BY l.name ORDER BY l.name
    """
)


def demo_counts(session: Session, city: Jurisdiction) -> dict[str, Any]:
    """What the demo city holds, for the CLI and for tests (``zones``: per layer)."""
    row = session.execute(COUNTS_SQL, {"j": city.id}).one()
    zones = {name: int(n) for name, n in session.execute(ZONES_SQL, {"j": city.id})}
    return {"city": city.slug, **{k: int(v) for k, v in row._mapping.items()}, "zones": zones}


def load_demo(
    sessions: sessionmaker[Session],
    progress: Progress | None = None,
    manifest_file: Path = MANIFEST_FILE,
) -> dict[str, Any]:
    """Load the demo city unless it is there; return its counts (``created`` says which)."""
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


# --------------------------------------------------------------------------- building


def _build(s: Session, say: Progress, m: dict[str, Any]) -> Jurisdiction:
    setup = parse(m["city_file"].read_text(encoding="utf-8"))
    c = setup["city"]
    say(f"creating the city from {m['boundary'].name}")
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
        )

    say(f"applying {m['city_file'].name} (departments, crews, categories, routing rules)")
    apply_city(s, city, setup)

    say("loading the records")
    service_ids = {
        code: sid
        for code, sid in s.execute(
            sa.select(Service.code, Service.id).where(Service.jurisdiction_id == city.id)
        )
    }
    data, last_numbers = _records(city, m["records"], service_ids)
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
