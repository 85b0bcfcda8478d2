"""A city's old records come in with ``civicpin requests import`` (their channels mapped,
their own target dates as due times, rows without a created date named) and go out again
with ``civicpin requests export`` and Open311 carrying what joins them back: the record's
own id, the address and the category's name."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from spatial.models import ServiceRequest
from tests.support.city import make_small_city

LA = ZoneInfo("America/Los_Angeles")
HEADER = ["SR Number", "Lat", "Long", "Type", "Opened", "Target Date", "Source", "Location"]
MAP = (
    "id=SR Number,lat=Lat,lon=Long,category=Type,created=Opened,due=Target Date,"
    "channel=Source,address=Location"
)
CHANNEL_MAP = "Call Center=phone,Self Service=web"
ROWS = [
    ["SR-100", "34.05", "-118.27", "Pothole", "2021-03-01 08:00", "2021-03-05 17:00",
     "Call Center", "100 West St"],
    ["SR-101", "34.06", "-118.22", "Pothole", "2021-03-01 09:00", "", "self service",
     "101 East St"],
    ["SR-102", "34.05", "-118.26", "Pothole", "2021-03-02 10:00", "2021-03-09 12:00", "Fax",
     "102 West St"],
    ["SR-103", "34.05", "-118.26", "Pothole", "", "2021-03-09 12:00", "Call Center", "103 West St"],
    ["SR-104", "34.05", "-118.26", "Pothole", "yesterday", "", "Call Center", "104 West St"],
    ["SR-105", "34.07", "-118.21", "Pothole", "2021-03-03 11:00", "someday", "Fax", "105 East St"],
    ["SR-106", "34.07", "-118.21", "Pothole", "2021-03-03 12:00", "", "", "106 East St"],
]  # fmt: skip
IMPORTED = {"SR-100", "SR-101", "SR-102", "SR-105", "SR-106"}


@pytest.fixture
def history(tmp_path) -> Path:
    path = tmp_path / "their-311.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        w.writerows(ROWS)
    return path


@pytest.fixture
def city(sessions):
    with sessions.begin() as s:
        make_small_city(s)


def _import(cli, history, *extra):
    return cli(
        "requests",
        "import",
        str(history),
        "--city",
        "testville",
        "--map",
        MAP,
        "--channel-map",
        CHANNEL_MAP,
        *extra,
    )


def test_dry_run_names_unmapped_channels_due_times_and_rows_without_created(
    cli, city, history, sessions
):
    res = _import(cli, history, "--dry-run")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "to import: 5 rows; skipped: 2" in out
    assert (
        "rows without a usable created date: 2 - skipped: row 4: the created date is empty; "
        "row 5: the created date 'yesterday' is not a date" in out
    )
    assert "channels: 'Call Center' -> phone (1), 'self service' -> web (1)" in out
    assert "channels not mapped - imported as import: 'Fax' (2 rows: 3, 6)" in out
    assert "rows without a channel: 1 - imported as import" in out
    assert "due times from the file: 2 rows; 1 unreadable - due time from the SLA" in out
    assert "row 6 due 'someday'" in out
    assert "dry run: nothing was written" in out
    with sessions() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(ServiceRequest)) == 0


def test_bad_channel_map_is_one_line_and_writes_nothing(cli, city, history, sessions):
    for args, needle in [
        (("--channel-map", "Call Center=telepathy"), "'telepathy' is not a channel"),
        (("--channel-map", "Call Center"), "is not VALUE=CHANNEL"),
        (("--channel-map", "Call Center=phone", "--default-channel", "fax"), "--default-channel"),
    ]:
        res = cli("requests", "import", str(history), "--city", "testville", "--map", MAP, *args)
        assert res.returncode == 1
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("civicpin: error:"), res.stderr
        assert needle in lines[0]
    with sessions() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(ServiceRequest)) == 0


def test_imported_records_come_back_out_joinable(cli, city, history, sessions, client, tmp_path):
    res = _import(cli, history, "--default-channel", "mail")
    assert res.returncode == 0, res.stderr
    assert "channels not mapped - imported as mail: 'Fax' (2 rows: 3, 6)" in res.stdout
    assert "imported 5 requests" in res.stdout

    with sessions() as s:
        rows = {
            r.external_id: r
            for r in s.scalars(
                sa.select(ServiceRequest).where(ServiceRequest.external_id.is_not(None))
            )
        }
    assert set(rows) == IMPORTED
    assert {k: r.channel for k, r in rows.items()} == {
        "SR-100": "phone",
        "SR-101": "web",
        "SR-102": "mail",
        "SR-105": "mail",
        "SR-106": "mail",
    }
    # The city's own target date is the due time, read on the city's clock.
    assert rows["SR-100"].due_at == datetime(2021, 3, 5, 17, 0, tzinfo=LA)
    assert rows["SR-102"].due_at == datetime(2021, 3, 9, 12, 0, tzinfo=LA)
    # Without one (or an unreadable one) the category's SLA gives it: 72 hours later.
    for key in ("SR-101", "SR-105", "SR-106"):
        assert rows[key].due_at is not None and rows[key].due_at > rows[key].requested_at
        assert rows[key].due_at not in (datetime(2021, 3, 9, 12, 0, tzinfo=LA),)

    # CSV: joined back to the file by its own id, with the address and category name.
    out = tmp_path / "out.csv"
    res = cli("requests", "export", "--city", "testville", "--output", str(out))
    assert res.returncode == 0, res.stderr
    with out.open(encoding="utf-8") as fh:
        exported = {r["external_id"]: r for r in csv.DictReader(fh)}
    source = {r[0]: r for r in ROWS}
    assert set(exported) == IMPORTED
    for key, row in exported.items():
        assert row["address"] == source[key][7]
        assert row["service_name"] == "Pothole" and row["service_code"] == "pothole"
        assert row["public_id"] == rows[key].public_id
    assert datetime.fromisoformat(exported["SR-100"]["due_at"]) == datetime(
        2021, 3, 5, 17, 0, tzinfo=LA
    )

    # GeoJSON: the same keys in each feature's properties.
    out = tmp_path / "out.geojson"
    res = cli(
        "requests", "export", "--city", "testville", "--format", "geojson", "--output", str(out)
    )
    assert res.returncode == 0, res.stderr
    features = json.loads(out.read_text(encoding="utf-8"))["features"]
    props = {f["properties"]["external_id"]: f["properties"] for f in features}
    assert set(props) == IMPORTED
    assert props["SR-101"]["address"] == "101 East St"
    assert props["SR-101"]["service_name"] == "Pothole"
    assert features[0]["geometry"]["type"] == "Point"

    # Open311: extended attributes carry them when asked for...
    public_id = rows["SR-100"].public_id
    res = client.get(f"/open311/v2/requests/{public_id}.json?extensions=true")
    assert res.status_code == 200
    (item,) = res.get_json()
    assert item["extended_attributes"]["external_id"] == "SR-100"
    assert item["extended_attributes"]["address"] == "100 West St"
    assert item["extended_attributes"]["service_name"] == "Pothole"
    assert item["extended_attributes"]["channel"] == "phone"
    listing = client.get(
        "/open311/v2/requests.json?extensions=true&start_date=2021-03-01T00:00:00Z"
    )
    by_id = {
        r["extended_attributes"]["external_id"]: r["service_request_id"] for r in listing.get_json()
    }
    assert by_id == {k: r.public_id for k, r in rows.items()}
    # ... and without extensions the answer is the plain GeoReport v2 one.
    (plain,) = client.get(f"/open311/v2/requests/{public_id}.json").get_json()
    assert "extended_attributes" not in plain and "external_id" not in plain
    assert plain["address"] == "100 West St" and plain["service_name"] == "Pothole"
    xml = client.get(f"/open311/v2/requests/{public_id}.xml?extensions=true").get_data(as_text=True)
    assert "<external_id>SR-100</external_id>" in xml
