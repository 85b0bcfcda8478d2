"""``civicpin requests import``: the real command on real CSV files against a real PostGIS."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from intake.history_import import ImportOptions, import_history, parse_column_map
from spatial.errors import InvalidInput
from tests.support.city import make_small_city

MAP = (
    "id=Case ID,lat=Lat,lon=Long,category=Type,created=Opened,closed=Closed,status=State,"
    "address=Address,description=Details"
)
HEADER = ["Case ID", "Lat", "Long", "Type", "Opened", "Closed", "State", "Address", "Details"]
PLACEHOLDER = ("34.0522", "-118.2437")


def history_rows() -> list[list[str]]:
    rows = [
        ["A1", "34.05", "-118.27", "Pothole", "2021-03-01 08:00", "2021-03-02 09:30", "Closed",
         "1 West St", "deep, near the curb"],
        ["A2", "34.06", "-118.22", "Pothole", "2021-03-01T10:00:00-05:00", "", "Open", "2 East St", ""],
        ["A3", "", "", "pothole", "2021-03-02 11:00", "", "Pending", "", ""],
        ["A4", "34.50", "-118.60", "Pothole", "2021-03-02 12:00", "", "Open", "far away", ""],
        ["A5", "34.05", "-118.27", "Pothole", "not a date", "", "Open", "", ""],
        ["A6", "34.05", "-118.26", "Pothole", "2021-03-03 09:00", "2021-02-28 00:00", "Closed", "", ""],
        ["A7", "34.05", "-118.26", "Pothole", "2021-03-03 10:00", "31/31/2021", "Closed", "", ""],
        ["A8", "34.07", "-118.21", "Graffiti", "2021-03-04 10:00", "", "Open", "", ""],
        ["A9", "34.07", "-118.21", "Graffiti", "2021-03-04 11:00", "", "Open", "", ""],
        ["A1", "34.05", "-118.27", "Pothole", "2021-03-05 08:00", "", "Open", "again", ""],
        ["", "34.05", "-118.27", "Pothole", "2021-03-05 09:00", "", "Open", "", ""],
    ]  # fmt: skip
    for n in range(1, 26):
        rows.append([f"P{n}", *PLACEHOLDER, "Pothole", f"2021-03-06 {n % 24:02d}:00", "",
                     "Open", f"{n} Main St", ""])  # fmt: skip
    return rows


def write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture
def city(sessions):
    with sessions.begin() as s:
        make_small_city(s)


@pytest.fixture
def history(tmp_path) -> Path:
    return write_csv(tmp_path / "old-system.csv", history_rows())


def counts(sessions) -> dict[str, int]:
    with sessions() as s:
        return {
            t: s.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar()
            for t in (
                "service_request",
                "request_zone",
                "public_id_counter",
                "service",
                "request_event",
            )
        }


def one_line_error(res) -> str:
    assert res.returncode != 0, res.stdout
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("civicpin: error:")]
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr
    return lines[0]


def test_dry_run_reports_every_problem_and_writes_nothing(cli, city, sessions, history):
    before = counts(sessions)
    res = cli("requests", "import", str(history), "--city", "testville", "--map", MAP, "--dry-run")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "old-system.csv: 36 rows" in out
    assert "to import: 33 rows; skipped: 3" in out
    assert "rows without coordinates: 1 " in out
    assert "rows outside the city: 1 " in out
    assert (
        "placeholder coordinates: 1 point(s) shared by 25 rows with different addresses: "
        "(34.052200, -118.243700): 25 rows, 25 addresses" in out
    )
    assert "unparseable dates: 2 (created 1 - rows skipped; closed 1 - close time dropped" in out
    assert "row 5 created 'not a date'" in out and "row 7 closed '31/31/2021'" in out
    assert "closed before created: 1 - close time dropped" in out
    assert "unknown categories: 1: 'Graffiti' (2 rows)" in out
    assert "'Closed' -> closed (3)" in out and "'Pending' -> in_progress (1)" in out
    assert (
        "ids: 1 missing, 0 longer than 100 characters, 1 repeated in the file, "
        "0 already imported" in out
    )
    assert "row 10: 'A1' repeated" in out
    assert "dry run: nothing was written" in out
    assert counts(sessions) == before


def test_unknown_categories_stop_the_import(cli, city, sessions, history):
    before = counts(sessions)
    res = cli("requests", "import", str(history), "--city", "testville", "--map", MAP)
    line = one_line_error(res)
    assert "1 unknown category: 'Graffiti'" in line
    assert "--category-map" in line and "--create-categories" in line
    assert counts(sessions) == before


def test_import_routes_every_row_and_keeps_external_ids(cli, city, sessions, history, tmp_path):
    cmap = tmp_path / "categories.csv"
    cmap.write_text("their category,our code\nGraffiti,pothole\n", encoding="utf-8")
    res = cli("requests", "import", str(history), "--city", "testville", "--map", MAP,
              "--category-map", str(cmap))  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "imported 33 requests and routed 33" in res.stdout
    # A progress bar per phase on stderr.
    for phase in ("checking", "importing", "routing"):
        assert f"{phase} " in res.stderr and "100%" in res.stderr
    with sessions() as s:
        rows = {
            r.external_id: r
            for r in s.execute(
                sa.text(
                    "SELECT r.*, ST_X(r.location) AS lon, ST_Y(r.location) AS lat, "
                    "d.code AS dept, z.code AS zone_code, s.code AS service "
                    "FROM service_request r JOIN service s ON s.id = r.service_id "
                    "LEFT JOIN department d ON d.id = r.department_id "
                    "LEFT JOIN request_zone rz ON rz.request_id = r.id "
                    "LEFT JOIN zone z ON z.id = rz.zone_id"
                )
            )
        }
        counter = s.execute(sa.text("SELECT year, last_value FROM public_id_counter")).all()
    assert len(rows) == 33
    assert set(rows) == {"A1", "A2", "A3", "A4", "A6", "A7", "A8", "A9"} | {
        f"P{n}" for n in range(1, 26)
    }
    assert all(r.routed_at is not None and r.dept == "streets" for r in rows.values())
    a1, a2, a3 = rows["A1"], rows["A2"], rows["A3"]
    # Naive times are the city's local time; an offset is kept.
    assert a1.requested_at == datetime(2021, 3, 1, 16, 0, tzinfo=UTC)
    assert a1.closed_at == datetime(2021, 3, 2, 17, 30, tzinfo=UTC)
    assert a2.requested_at == datetime(2021, 3, 1, 15, 0, tzinfo=UTC)
    assert a1.due_at == a1.requested_at + timedelta(hours=72)
    assert (a1.status, a2.status, a3.status) == ("closed", "new", "in_progress")
    assert (a1.zone_code, a2.zone_code, a3.zone_code) == ("W", "E", None)
    assert (a1.lon, a1.lat) == (-118.27, 34.05)
    assert a3.location is None and a3.needs_location
    assert rows["A4"].zone_code is None and rows["A4"].location is not None
    assert rows["A6"].closed_at is None and rows["A6"].status == "closed"
    assert rows["A7"].closed_at is None
    assert rows["A8"].service == "pothole"
    assert a1.address == "1 West St" and a1.description == "deep, near the curb"
    assert a1.channel == "import" and a1.public_id.startswith("TV-2021-")
    assert sorted(r.public_id for r in rows.values()) == [f"TV-2021-{n:06d}" for n in range(1, 34)]
    assert counter == [(2021, 33)]

    # The same file again: nothing new, nothing doubled.
    again = cli("requests", "import", str(history), "--city", "testville", "--map", MAP,
                "--category-map", str(cmap))  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "33 already imported" in again.stdout
    assert "imported 0 requests" in again.stdout
    assert counts(sessions)["service_request"] == 33


def test_create_categories_and_time_zone(cli, city, sessions, history):
    res = cli("requests", "import", str(history), "--city", "testville", "--map", MAP,
              "--create-categories", "--tz", "America/New_York")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "created categories: graffiti" in res.stdout
    with sessions() as s:
        svc = s.execute(
            sa.text("SELECT code, name, group_name FROM service WHERE code = 'graffiti'")
        ).one()
        a1 = s.execute(
            sa.text("SELECT requested_at FROM service_request WHERE external_id = 'A1'")
        ).scalar()
        a8 = s.execute(sa.text(
            "SELECT r.department_id, r.routing_explanation, s.code FROM service_request r "
            "JOIN service s ON s.id = r.service_id WHERE external_id = 'A8'")).one()  # fmt: skip
    assert tuple(svc) == ("graffiti", "Graffiti", "Imported")
    assert a1 == datetime(2021, 3, 1, 13, 0, tzinfo=UTC)
    assert a8.code == "graffiti" and a8.department_id is None
    assert a8.routing_explanation.startswith("no rule matched")


def test_drop_placeholders_imports_those_rows_without_a_location(cli, city, sessions, history):
    res = cli("requests", "import", str(history), "--city", "testville", "--map", MAP,
              "--create-categories", "--drop-placeholders")  # fmt: skip
    assert res.returncode == 0, res.stderr
    with sessions() as s:
        n = s.execute(sa.text(
            "SELECT count(*) FILTER (WHERE location IS NULL AND needs_location), count(*) "
            "FROM service_request WHERE external_id LIKE 'P%'")).one()  # fmt: skip
    assert tuple(n) == (25, 25)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--map", "id=Case ID,category=Type"], "--map: created must be mapped"),
        (["--map", MAP + ",colour=Paint"], "--map: unknown key 'colour'"),
        (["--map", MAP.replace("lon=Long,", "")], "lat and lon go together"),
        (
            ["--map", MAP.replace("Opened", "opened")],
            "has no column 'opened' (did you mean 'Opened'?)",
        ),
        (["--map", MAP, "--tz", "Mars/Olympus"], "--tz 'Mars/Olympus' is not a time zone"),
        (["--map", MAP, "--category-map", "/nonexistent/map.csv"], "no such file"),
        (["--map", MAP, "--encoding", "klingon"], "not a known encoding"),
    ],
)
def test_a_bad_map_is_one_line_and_writes_nothing(cli, city, sessions, history, args, message):
    before = counts(sessions)
    res = cli("requests", "import", str(history), "--city", "testville", *args)
    assert message in one_line_error(res)
    assert counts(sessions) == before


def test_a_bad_file_is_one_line_and_writes_nothing(cli, city, sessions, tmp_path):
    before = counts(sessions)
    missing = cli(
        "requests", "import", str(tmp_path / "nope.csv"), "--city", "testville", "--map", MAP
    )
    assert "nope.csv: no such file" in one_line_error(missing)

    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert "empty.csv is empty" in one_line_error(
        cli("requests", "import", str(empty), "--city", "testville", "--map", MAP)
    )

    latin = tmp_path / "latin.csv"
    write_csv(latin, [["B1", "34.05", "-118.27", "Pothole", "2021-03-01", "", "Open", "x", "y"]])
    latin.write_bytes(
        latin.read_bytes() + "B2,34.05,-118.27,Pothole,2021-03-01,,Open,Café,\n".encode("latin-1")
    )
    assert "latin.csv is not utf-8 text" in one_line_error(
        cli("requests", "import", str(latin), "--city", "testville", "--map", MAP)
    )

    ragged = tmp_path / "ragged.csv"
    write_csv(
        ragged,
        [["B1", "34.05", "-118.27", "Pothole", "2021-03-01", "", "Open", "x", "y"]] * 3
        + [["B4", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10"]],
    )
    assert "ragged.csv: cannot read it as CSV" in one_line_error(
        cli("requests", "import", str(ragged), "--city", "testville", "--map", MAP)
    )

    header_only = write_csv(tmp_path / "header.csv", [])
    assert "has a header but no rows" in one_line_error(
        cli("requests", "import", str(header_only), "--city", "testville", "--map", MAP)
    )

    bad_json = tmp_path / "map.json"
    bad_json.write_text(json.dumps(["Graffiti", "pothole"]))
    assert "must be an object" in one_line_error(
        cli("requests", "import", str(write_csv(tmp_path / "ok.csv", history_rows())), "--city",
            "testville", "--map", MAP, "--category-map", str(bad_json)))  # fmt: skip

    nowhere = cli(
        "requests", "import", str(tmp_path / "ok.csv"), "--city", "atlantis", "--map", MAP
    )
    assert "no city with slug 'atlantis'" in one_line_error(nowhere)
    assert counts(sessions) == before


def test_small_chunks_give_the_same_result(city, sessions, history, tmp_path):
    """Repeated ids and placeholder points are found across chunk boundaries."""
    cols = parse_column_map(MAP)
    big = import_history(
        sessions, "testville", ImportOptions(history, cols, create_categories=True), dry_run=True
    ).report
    small = import_history(
        sessions, "testville", ImportOptions(history, cols, create_categories=True, chunk_rows=4),
        dry_run=True,
    ).report  # fmt: skip
    assert small.text() == big.text()
    assert small.duplicate_ids == 1 and small.placeholder_rows == 25
    # A repeat far from its first occurrence, in another chunk.
    rows = history_rows() + [
        ["P3", "34.05", "-118.27", "Pothole", "2021-03-07 08:00", "", "Open", "", ""]
    ]
    path = write_csv(tmp_path / "later-repeat.csv", rows)
    found = import_history(
        sessions, "testville", ImportOptions(path, cols, create_categories=True, chunk_rows=5),
        dry_run=True,
    ).report  # fmt: skip
    assert found.duplicate_ids == 2
    result = import_history(
        sessions, "testville", ImportOptions(path, cols, create_categories=True, chunk_rows=5)
    )
    assert result.imported == 33 and result.routed == 33
    with sessions() as s:
        p3 = s.execute(
            sa.text("SELECT requested_at FROM service_request WHERE external_id = 'P3'")
        ).scalar()
    assert p3 == datetime(2021, 3, 6, 11, 0, tzinfo=UTC)  # the first P3 row won


def test_a_later_export_adds_only_its_new_rows(city, sessions, tmp_path):
    cols = parse_column_map(MAP)
    first = write_csv(tmp_path / "jan.csv", history_rows()[:4])
    assert import_history(sessions, "testville", ImportOptions(first, cols)).imported == 4
    later = history_rows()[:4] + [
        ["B7", "34.02", "-118.29", "Pothole", "2021-04-01 08:00", "", "Open", "7 Elm St", ""],
        ["B8", "34.03", "-118.21", "Pothole", "2021-04-02 08:00", "", "Open", "8 Elm St", ""],
    ]
    path = write_csv(tmp_path / "feb.csv", later)
    result = import_history(sessions, "testville", ImportOptions(path, cols, chunk_rows=3))
    assert result.report.already_imported == 4
    assert result.imported == 2 and result.routed == 2
    assert set(result.phases) == {"checking", "importing", "routing"}
    with sessions() as s:
        rows = s.execute(sa.text(
            "SELECT r.external_id, z.code FROM service_request r "
            "JOIN request_zone rz ON rz.request_id = r.id JOIN zone z ON z.id = rz.zone_id "
            "ORDER BY r.external_id")).all()  # fmt: skip
    assert [tuple(r) for r in rows] == [("A1", "W"), ("A2", "E"), ("B7", "W"), ("B8", "E")]


def test_date_format_reads_other_layouts(city, sessions, tmp_path):
    rows = [["C1", "34.05", "-118.27", "Pothole", "1/2/21 7:05", "1/3/21 17:45", "Closed", "", ""]]
    path = write_csv(tmp_path / "us-dates.csv", rows)
    cols = parse_column_map(MAP)
    iso = import_history(sessions, "testville", ImportOptions(path, cols), dry_run=True).report
    assert iso.bad_created == 1 and iso.importable == 0
    with pytest.raises(InvalidInput, match="no row can be imported"):
        import_history(sessions, "testville", ImportOptions(path, cols))
    result = import_history(
        sessions, "testville", ImportOptions(path, cols, date_format="%m/%d/%y %H:%M")
    )
    assert result.imported == 1
    with sessions() as s:
        row = s.execute(sa.text("SELECT requested_at, closed_at FROM service_request")).one()
    assert row.requested_at == datetime(2021, 1, 2, 15, 5, tzinfo=UTC)
    assert row.closed_at == datetime(2021, 1, 4, 1, 45, tzinfo=UTC)
