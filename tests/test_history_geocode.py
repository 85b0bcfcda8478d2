"""``civicpin requests import --geocode``: rows with an address and no coordinates placed
by the city's geocoder (the real command, a real CSV, a city with its real centrelines);
the report counts each match type; without the flag nothing changes."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import sqlalchemy as sa
from geoalchemy2.shape import to_shape

from spatial.models import ServiceRequest
from tests.support.cambridge_calls import (
    intersection_truth,
    make_cambridge_calls,
    metres,
    range_truth,
)

MAP = "id=Case,lat=Lat,lon=Lon,category=Type,created=Opened,address=Address"
HEADER = ["Case", "Lat", "Lon", "Type", "Opened", "Address"]
GIVEN = ("42.3736", "-71.1097")  # a row's own coordinates, inside Cambridge
ROWS = [
    ["G1", "", "", "Street light out", "2024-05-01 08:00", "1334 Cambridge St"],
    ["G2", "", "", "Street light out", "2024-05-01 09:00", "1334 cambridge street"],
    ["G3", "", "", "Street light out", "2024-05-02 10:00", "Cambridge St & Prospect St"],
    ["G4", "", "", "Street light out", "2024-05-02 11:00", "9999 Cambridge St"],
    ["G5", "", "", "Street light out", "2024-05-03 12:00", "Zyzzyva Qwerty Xylophone"],
    ["G6", *GIVEN, "Street light out", "2024-05-03 13:00", "1334 Cambridge St"],
    ["G7", "", "", "Street light out", "2024-05-04 14:00", ""],
]


@pytest.fixture
def city(sessions):
    with sessions.begin() as s:
        return make_cambridge_calls(s)


@pytest.fixture
def history(tmp_path) -> Path:
    path = tmp_path / "lights.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        w.writerows(ROWS)
    return path


def _points(sessions) -> dict[str, tuple[float, float] | None]:
    with sessions() as s:
        rows = s.execute(sa.select(ServiceRequest.external_id, ServiceRequest.location)).all()
    return {ext: ((pt := to_shape(loc)).y, pt.x) if loc is not None else None for ext, loc in rows}


def _geocode_line(stdout: str) -> str:
    (line,) = [x.strip() for x in stdout.splitlines() if x.strip().startswith("geocoded:")]
    return line


def test_geocode_places_rows_by_address_and_counts_each_match_type(cli, city, sessions, history):
    res = cli("requests", "import", str(history), "--city", city.slug, "--map", MAP, "--geocode")
    assert res.returncode == 0, res.stderr
    line = _geocode_line(res.stdout)
    assert line.startswith("geocoded: 2 range, 1 intersection; "), line
    # 9999 Cambridge St (the street, no such number) and a street the city does not have.
    unsure = int(line.split("; ")[1].split(" not confident")[0])
    no_match = int(line.split(", ")[-1].split(" no match")[0])
    assert unsure >= 1 and unsure + no_match == 2, line
    points = _points(sessions)
    assert len(points) == 7
    assert metres(points["G1"], range_truth("Cambridge St", 1334)) < 25
    assert metres(points["G2"], range_truth("Cambridge St", 1334)) < 25
    assert metres(points["G3"], intersection_truth("Cambridge St", "Prospect St")) < 30
    assert points["G4"] is None and points["G5"] is None and points["G7"] is None
    # A row's own coordinates win over its address.
    assert metres(points["G6"], (float(GIVEN[0]), float(GIVEN[1]))) < 0.01
    with sessions() as s:
        waiting = s.scalars(
            sa.select(ServiceRequest.external_id).where(ServiceRequest.needs_location)
        ).all()
        assert sorted(waiting) == ["G4", "G5", "G7"]
        # Routed where the geocoder placed them, like any located row.
        g1 = s.scalar(sa.select(ServiceRequest).where(ServiceRequest.external_id == "G1"))
        assert g1.address == "1334 Cambridge St" and g1.department_id is not None


def test_a_dry_run_reports_the_counts_and_writes_nothing(cli, city, sessions, history):
    res = cli(
        "requests", "import", str(history), "--city", city.slug, "--map", MAP,
        "--geocode", "--dry-run",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert _geocode_line(res.stdout).startswith("geocoded: 2 range, 1 intersection; ")
    assert _points(sessions) == {}


def test_without_geocode_rows_without_coordinates_stay_unplaced(cli, city, sessions, history):
    res = cli("requests", "import", str(history), "--city", city.slug, "--map", MAP)
    assert res.returncode == 0, res.stderr
    assert "geocoded:" not in res.stdout
    points = _points(sessions)
    assert [k for k, v in sorted(points.items()) if v is not None] == ["G6"]


def test_geocode_needs_the_address_column(cli, city, sessions, history):
    no_address = MAP.replace(",address=Address", "")
    res = cli(
        "requests", "import", str(history), "--city", city.slug, "--map", no_address, "--geocode"
    )
    assert res.returncode != 0
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("civicpin: error:") and "address" in line
    assert _points(sessions) == {}
