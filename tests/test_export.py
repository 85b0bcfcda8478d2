"""``civicpin requests export``: routing columns, one zone:<layer> column per layer equal to
``request_zone``, no contact data, date filters, and one-line errors."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from zoneinfo import ZoneInfo

import geopandas as gpd
import pytest
import sqlalchemy as sa
from shapely.geometry import box

from routing.engine import route_bulk
from spatial.models import Jurisdiction, ServiceRequest
from spatial.zones import import_layer
from tests.support.city import BOUNDS
from tests.support.dispatch_city import EAST, WEST, make_dispatch_city, report
from webmap.cli.export import BASE_COLUMNS

CONTACT = (
    "contact_name",
    "contact_email",
    "contact_phone",
    "device_id",
    "account_id",
    "Rosa Resident",
    "resident@example.org",
)
TZ = ZoneInfo("America/Los_Angeles")


@pytest.fixture
def city(sessions, settings, tmp_path):
    w, s_, e, n = BOUNDS
    path = tmp_path / "wards.geojson"
    # Only the south half is covered: northern requests have no ward.
    gpd.GeoDataFrame(
        {"code": ["S1", "S2"], "name": ["South 1", "South 2"]},
        geometry=[box(w, s_, -118.25, 34.04), box(-118.25, s_, e, 34.04)],
        crs=4326,
    ).to_file(path, driver="GeoJSON")
    with sessions.begin() as s:
        info = make_dispatch_city(s)
        c = s.get(Jurisdiction, info.city_id)
        import_layer(s, c, path, "wards")
        days = [datetime(2026, 3, d, 12, tzinfo=TZ) for d in (1, 2, 3, 4)]
        points = [WEST, EAST, (34.02, -118.29), (34.02, -118.21)]
        for day, where in zip(days, points, strict=True):
            req = report(s, settings.media_dir, where=where, contact_phone="555-0100")
            req.requested_at = day
        route_bulk(s, c)
    return info


def _zones(sessions) -> dict[str, dict[str, str]]:
    with sessions() as s:
        rows = s.execute(
            sa.text(
                "SELECT r.public_id, l.name, z.code FROM request_zone rz "
                "JOIN service_request r ON r.id = rz.request_id JOIN zone z ON z.id = rz.zone_id "
                "JOIN zone_layer l ON l.id = rz.layer_id"
            )
        ).all()
    out: dict[str, dict[str, str]] = {}
    for pid, layer, code in rows:
        out.setdefault(pid, {})[layer] = code
    return out


def test_csv_has_routing_and_layer_columns_and_no_contact(cli, city, sessions, tmp_path):
    out = tmp_path / "requests.csv"
    res = cli("requests", "export", "--city", "testville", "--format", "csv", "--output", str(out))
    assert res.returncode == 0, res.stderr
    text = out.read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0].keys()) == list(BASE_COLUMNS) + ["zone:districts", "zone:wards"]
    assert len(rows) == 4
    for needle in CONTACT + ("555-0100",):
        assert needle not in text
    zones = _zones(sessions)
    for row in rows:
        pid = row["public_id"]
        assert row["zone:districts"] == zones[pid]["districts"]
        assert row["zone:wards"] == zones[pid].get("wards", "")
    assert sorted(r["zone:wards"] for r in rows) == ["", "", "S1", "S2"]
    with sessions() as s:
        for row in rows:
            req = s.scalar(
                sa.select(ServiceRequest).where(ServiceRequest.public_id == row["public_id"])
            )
            assert row["department"] == req.department.code
            assert row["crew"] == req.crew.code
            assert row["zone"] == req.zone.code
            assert row["rule"] == "Potholes by district"
            assert row["ruleset_version"] == "1"
            assert row["routing_explanation"] == req.routing_explanation
            assert row["channel"] == "web" and row["service_code"] == "pothole"
            assert row["overdue"] == "true"  # 72 h after March 2026 has passed
            assert datetime.fromisoformat(row["requested_at"]) == req.requested_at
            assert datetime.fromisoformat(row["due_at"]) == req.due_at


def test_geojson_and_date_filters(cli, city, sessions):
    res = cli(
        "requests",
        "export",
        "--city",
        "testville",
        "--format",
        "geojson",
        "--since",
        "2026-03-02",
        "--until",
        "2026-03-03",
    )
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["type"] == "FeatureCollection"
    feats = data["features"]
    assert len(feats) == 2
    days = sorted(datetime.fromisoformat(f["properties"]["requested_at"]).day for f in feats)
    assert days == [2, 3]
    zones = _zones(sessions)
    for f in feats:
        p = f["properties"]
        assert f["geometry"]["type"] == "Point"
        assert p["zone:districts"] == zones[p["public_id"]]["districts"]
        assert not set(p) & set(CONTACT)
    assert "555-0100" not in res.stdout


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--since", "2026-13-01"], "--since"),
        (["--until", "yesterday"], "--until"),
        (["--since", "2026-03-05", "--until", "2026-03-01"], "after"),
        (["--format", "xlsx"], "--format"),
        (["--city", "nowhere"], "nowhere"),
    ],
)
def test_bad_arguments_give_one_line_error(cli, city, tmp_path, args, needle):
    out = tmp_path / "x.csv"
    base = {"--city": "testville", "--format": "csv", "--output": str(out)}
    for i in range(0, len(args), 2):
        base[args[i]] = args[i + 1]
    res = cli("requests", "export", *[x for kv in base.items() for x in kv])
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("civicpin: error:") and needle in lines[0]
    assert not out.exists()


def test_export_streams_with_server_side_cursor(engine, city):
    """The rows come from a named (server-side) cursor, not a fetched-all list."""
    from webmap.cli.export import iter_rows

    with engine.connect() as conn, conn.begin():
        c = conn.execute(sa.text("SELECT id, slug, timezone FROM jurisdiction")).one()
        header, rows = iter_rows(
            conn, Jurisdiction(id=c.id, slug=c.slug, timezone=c.timezone), None, None
        )
        first = next(rows)
        cursors = conn.execute(sa.text("SELECT count(*) FROM pg_cursors")).scalar()
        assert cursors == 1  # psycopg named cursor is open while rows are read
        assert first["public_id"] and len(list(rows)) == 3


def test_since_is_city_local_midnight(cli, city):
    res = cli("requests", "export", "--city", "testville", "--since", "2026-03-04")
    assert res.returncode == 0
    assert len(list(csv.DictReader(io.StringIO(res.stdout)))) == 1
