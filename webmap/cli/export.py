"""``civicpin requests export``: requests with their routing and every layer's zone.

Each row carries what joins it back to the city's own records: ``external_id`` (the id
a history import kept), the ``address`` with the city's ``address_id``, the asset
(``asset_layer`` name, the city's ``asset_ref``, ``asset_label``) and the category's code
and name.

Rows stream from a server-side cursor in batches, so the memory used does not grow with
the number of requests. Contact details (name, e-mail, phone, device and account ids)
are never selected. One ``zone:<layer>`` column per current layer holds the code of the
request's zone in that layer, from ``request_zone`` (by layer name, so a request routed
with an older version of the layer still shows its zone).
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import click
import sqlalchemy as sa
from sqlalchemy.orm import Session

from spatial.cities import city_for_cli, validate_slug
from spatial.errors import InvalidInput
from spatial.models import OPEN_STATUSES, Jurisdiction
from webmap.cli import Runtime, pass_runtime
from webmap.cli.requests import requests_group
from webmap.cli.route import parse_day

BASE_COLUMNS = (
    "public_id",
    "external_id",
    "service_code",
    "service_name",
    "status",
    "priority",
    "requested_at",
    "closed_at",
    "due_at",
    "overdue",
    "department",
    "crew",
    "zone",
    "rule",
    "ruleset_version",
    "routing_explanation",
    "channel",
    "address",
    "address_id",
    "asset_layer",
    "asset_ref",
    "asset_label",
    "lon",
    "lat",
)
TIME_COLUMNS = ("requested_at", "closed_at", "due_at")
BATCH = 5000

EXPORT_SQL = """
SELECT r.public_id, r.external_id, s.code AS service_code, s.name AS service_name,
       r.status, r.priority,
       r.requested_at, r.closed_at, r.due_at,
       (r.status = ANY(:open) AND r.due_at IS NOT NULL AND r.due_at < now()) AS overdue,
       d.code AS department, c.code AS crew, z.code AS zone, ru.name AS rule,
       r.ruleset_version, r.routing_explanation, r.channel, r.address, r.address_id,
       al.name AS asset_layer, r.asset_ref, a.label AS asset_label,
       ST_X(r.location) AS lon, ST_Y(r.location) AS lat{layer_cols}
FROM service_request r
JOIN service s ON s.id = r.service_id
LEFT JOIN asset_layer al ON al.id = r.asset_layer_id
LEFT JOIN asset a ON a.layer_id = r.asset_layer_id AND a.ref = r.asset_ref
LEFT JOIN department d ON d.id = r.department_id
LEFT JOIN crew c ON c.id = r.crew_id
LEFT JOIN zone z ON z.id = r.zone_id
LEFT JOIN routing_rule ru ON ru.id = r.rule_id
WHERE r.jurisdiction_id = :jid{where}
ORDER BY r.id
"""

LAYER_COL = """,
       (SELECT zz.code FROM request_zone rz
        JOIN zone zz ON zz.id = rz.zone_id
        JOIN zone_layer ll ON ll.id = rz.layer_id
        WHERE rz.request_id = r.id AND ll.name = :layer{i}
        ORDER BY ll.version DESC LIMIT 1) AS layer{i}"""


def current_layer_names(conn: sa.Connection, city: Jurisdiction) -> list[str]:
    return list(
        conn.scalars(
            sa.text(
                "SELECT name FROM zone_layer WHERE jurisdiction_id = :jid AND is_current "
                "ORDER BY name"
            ),
            {"jid": city.id},
        )
    )


def export_query(
    city: Jurisdiction, layers: list[str], since: date | None, until: date | None
) -> tuple[sa.TextClause, dict[str, Any]]:
    """The export's SQL and parameters (``until`` is inclusive, in the city's days)."""
    tz = ZoneInfo(city.timezone)
    params: dict[str, Any] = {"jid": city.id, "open": [s.value for s in OPEN_STATUSES]}
    where = ""
    if since is not None:
        where += " AND r.requested_at >= :since"
        params["since"] = datetime.combine(since, time(0), tzinfo=tz)
    if until is not None:
        where += " AND r.requested_at < :until"
        params["until"] = datetime.combine(until + timedelta(days=1), time(0), tzinfo=tz)
    cols = ""
    for i, name in enumerate(layers):
        cols += LAYER_COL.format(i=i)
        params[f"layer{i}"] = name
    return sa.text(EXPORT_SQL.format(layer_cols=cols, where=where)), params  # noqa: S608


def _value(key: str, value: Any, tz: ZoneInfo) -> Any:
    if value is None:
        return None
    if key in TIME_COLUMNS:
        return value.astimezone(tz).isoformat()
    return value


def iter_rows(
    conn: sa.Connection, city: Jurisdiction, since: date | None, until: date | None
) -> tuple[list[str], Iterator[dict[str, Any]]]:
    """The header and a lazy stream of rows (server-side cursor, ``BATCH`` at a time)."""
    layers = current_layer_names(conn, city)
    header = list(BASE_COLUMNS) + [f"zone:{name}" for name in layers]
    query, params = export_query(city, layers, since, until)
    tz = ZoneInfo(city.timezone)

    def rows() -> Iterator[dict[str, Any]]:
        result = conn.execute(
            query, params, execution_options={"stream_results": True, "yield_per": BATCH}
        )
        for row in result:
            m = row._mapping
            out = {key: _value(key, m[key], tz) for key in BASE_COLUMNS}
            for i, name in enumerate(layers):
                out[f"zone:{name}"] = m[f"layer{i}"]
            yield out

    return header, rows()


def write_csv(out: IO[str], header: list[str], rows: Iterator[dict[str, Any]]) -> int:
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    n = 0
    for row in rows:
        if row["overdue"] is not None:
            row["overdue"] = "true" if row["overdue"] else "false"
        writer.writerow(row)
        n += 1
    return n


def write_geojson(out: IO[str], header: list[str], rows: Iterator[dict[str, Any]]) -> int:
    out.write('{"type": "FeatureCollection", "features": [\n')
    n = 0
    for row in rows:
        lon, lat = row.pop("lon"), row.pop("lat")
        geometry = {"type": "Point", "coordinates": [lon, lat]} if lon is not None else None
        feature = {"type": "Feature", "geometry": geometry, "properties": row}
        out.write(("," if n else "") + json.dumps(feature, ensure_ascii=False) + "\n")
        n += 1
    out.write("]}\n")
    return n


@contextmanager
def _target(output: str | None) -> Iterator[IO[str]]:
    """stdout, or a file written beside its final name and renamed when complete."""
    if output is None:
        yield sys.stdout
        return
    path = Path(output)
    if not path.parent.is_dir():
        raise InvalidInput(f"--output: folder {str(path.parent)!r} does not exist", field="output")
    tmp = path.with_name(f".{path.name}.part")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            yield fh
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@requests_group.command("export")
@click.option(
    "--city",
    "city_slug",
    default=None,
    help="The city's slug (default: CIVICPIN_CITY, else the only city).",
)
@click.option("--format", "fmt", default="csv", help="csv or geojson.")
@click.option("--since", default=None, help="Requests made on or after YYYY-MM-DD (local).")
@click.option("--until", default=None, help="Requests made on or before YYYY-MM-DD (local).")
@click.option("--output", default=None, help="File to write (default: standard output).")
@pass_runtime
def export(
    rt: Runtime,
    city_slug: str | None,
    fmt: str,
    since: str | None,
    until: str | None,
    output: str | None,
) -> None:
    """Export requests with routing columns and one zone:<layer> column per layer.

    Each row has the imported record's own id (external_id), the address and the
    category's name, to join the export back to the city's records.
    """
    if city_slug is not None:
        validate_slug(city_slug, "city")
    fmt = fmt.strip().lower()
    if fmt not in ("csv", "geojson"):
        raise InvalidInput(f"--format {fmt!r} is not csv or geojson", field="format")
    since_day = parse_day(since, "--since")
    until_day = parse_day(until, "--until")
    if since_day and until_day and since_day > until_day:
        raise InvalidInput("--since is after --until", field="since")
    engine = rt.ready_engine()
    with engine.connect() as conn, conn.begin():
        with Session(conn) as session:
            city = city_for_cli(session, city_slug, rt.settings.default_city)
            # Plain values: the rows stream on ``conn`` after this session is gone.
            city = Jurisdiction(id=city.id, slug=city.slug, timezone=city.timezone)
        header, rows = iter_rows(conn, city, since_day, until_day)
        with _target(output) as out:
            n = (write_csv if fmt == "csv" else write_geojson)(out, header, rows)
    click.echo(f"exported {n} requests", err=True)
