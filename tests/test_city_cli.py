"""``civicpin city ...`` and ``civicpin zones ...`` through the real command line."""

from __future__ import annotations

import shutil

import geopandas as gpd
import pytest
import sqlalchemy as sa
from shapely.geometry import box

from spatial.models import Jurisdiction, Service, ServiceRequest, User
from spatial.settings import PROJECT_ROOT
from spatial.zones import create_city, import_layer

LA_NC = PROJECT_ROOT / "intake/demo/data/los_angeles/la_neighborhood_councils.geojson"
TABLES = ("jurisdiction", "zone_layer", "zone")


def counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}


def write_squares(path, codes: list[str]) -> None:
    """One 0.01-degree square per code, side by side, near downtown Los Angeles."""
    gpd.GeoDataFrame(
        {"code": codes, "name": [f"Zone {c}" for c in codes]},
        geometry=[
            box(-118.3 + 0.01 * i, 34.0, -118.29 + 0.01 * i, 34.01) for i in range(len(codes))
        ],
        crs=4326,
    ).to_file(path, driver="GeoJSON")


@pytest.fixture
def files(tmp_path):
    good = tmp_path / "good.geojson"
    write_squares(good, ["1", "2", "3"])
    dup = tmp_path / "dup.geojson"
    write_squares(dup, ["1", "2", "1"])
    text = tmp_path / "notes.geojson"
    text.write_text("Zones to draw next week: north, south\n")
    points = tmp_path / "points.geojson"
    gpd.GeoDataFrame(geometry=gpd.points_from_xy([-118.3], [34.0]), crs=4326).to_file(points)
    return {
        "good": good,
        "dup": dup,
        "text": text,
        "points": points,
        "missing": tmp_path / "nope.geojson",
    }


@pytest.fixture
def city_with_layer(sessions, files):
    with sessions.begin() as s:
        city = create_city(s, "sq", "Squares", "America/Los_Angeles", files["good"])
        import_layer(s, city, files["good"], "blocks")


BAD_COMMANDS = {
    "missing file": (
        ["zones", "import", "{missing}", "--city", "sq", "--layer", "x"],
        "does not exist",
    ),
    "text renamed .geojson": (
        ["zones", "import", "{text}", "--city", "sq", "--layer", "x"],
        "notes.geojson is not a readable GeoJSON file",
    ),
    "unknown code field": (
        ["zones", "import", "{good}", "--city", "sq", "--layer", "blocks", "--code-field", "ward"],
        "no field 'ward' for the zone code; available fields: code, name",
    ),
    "duplicate codes": (
        ["zones", "import", "{dup}", "--city", "sq", "--layer", "blocks"],
        "must be unique; duplicated: '1'",
    ),
    "unknown city": (
        ["zones", "import", "{good}", "--city", "atlantis", "--layer", "x"],
        "no city with slug 'atlantis'",
    ),
    "bad layer name": (
        ["zones", "import", "{good}", "--city", "sq", "--layer", "Bad Name"],
        "layer 'Bad Name' must be lower-case",
    ),
    "bad timezone": (
        [
            "city",
            "create",
            "new",
            "--name",
            "New",
            "--timezone",
            "Mars/Olympus_Mons",
            "--boundary",
            "{good}",
        ],
        "unknown time zone 'Mars/Olympus_Mons'",
    ),
    "duplicate slug": (
        ["city", "create", "sq", "--name", "Again", "--timezone", "UTC", "--boundary", "{good}"],
        "a city with slug 'sq' already exists",
    ),
    "bad prefix": (
        [
            "city",
            "create",
            "new",
            "--name",
            "New",
            "--timezone",
            "UTC",
            "--boundary",
            "{good}",
            "--prefix",
            "no-way",
        ],
        "prefix 'no-way' must be 1-8 upper-case letters or digits",
    ),
    "boundary of points": (
        ["city", "create", "new", "--name", "New", "--timezone", "UTC", "--boundary", "{points}"],
        "points.geojson has no polygon geometries (found Point)",
    ),
}


@pytest.mark.parametrize("case", list(BAD_COMMANDS))
def test_bad_input_gives_one_line_and_writes_nothing(cli, engine, files, city_with_layer, case):
    args, expected = BAD_COMMANDS[case]
    before = counts(engine)
    assert before == {"jurisdiction": 1, "zone_layer": 1, "zone": 3}
    res = cli(*[a.format(**files) for a in args])
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("civicpin: error: ")
    assert expected in lines[0]
    assert res.stdout == ""
    assert counts(engine) == before


def test_city_create_then_list(cli, tmp_path):
    boundary = tmp_path / "la.geojson"
    shutil.copy(LA_NC, boundary)
    res = cli("city", "list")
    assert res.returncode == 0 and res.stdout == ""
    res = cli(
        "city",
        "create",
        "los-angeles",
        "--name",
        "Los Angeles",
        "--timezone",
        "America/Los_Angeles",
        "--boundary",
        str(boundary),
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout == "created city los-angeles (Los Angeles), public ids LA-YYYY-NNNNNN\n"
    res = cli(
        "city",
        "create",
        "springfield",
        "--name",
        "Springfield",
        "--timezone",
        "America/Chicago",
        "--boundary",
        str(boundary),
        "--prefix",
        "SPR1",
    )
    assert res.returncode == 0, res.stderr
    assert "public ids SPR1-YYYY-NNNNNN" in res.stdout
    res = cli("city", "list", env={"PUBLIC_BASE_URL": "https://311.example.org"})
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        "los-angeles\tLos Angeles (default)\t0 requests"
        "\thttps://311.example.org/c/los-angeles/\topen311 los-angeles",
        "springfield\tSpringfield\t0 requests"
        "\thttps://311.example.org/c/springfield/\topen311 springfield",
    ]
    # CIVICPIN_CITY moves the default: the addresses without /c/<slug>/ serve it
    res = cli("city", "list", env={"CIVICPIN_CITY": "springfield"})
    assert [line.split("\t")[1] for line in res.stdout.splitlines()] == [
        "Los Angeles",
        "Springfield (default)",
    ]


def test_city_list_counts_each_citys_requests(cli, sessions, files):
    with sessions.begin() as s:
        busy = create_city(s, "busy", "Busy Town", "UTC", files["good"])
        create_city(s, "quiet", "Quiet Town", "UTC", files["good"])
        service = Service(jurisdiction_id=busy.id, code="pothole", name="Pothole")
        s.add(service)
        s.flush()
        s.add_all(
            ServiceRequest(
                jurisdiction_id=busy.id,
                service_id=service.id,
                public_id=f"BT-2024-{n:06d}",
                token=f"token-{n}",
            )
            for n in (1, 2)
        )
    res = cli("city", "list")
    assert res.returncode == 0, res.stderr
    assert [line.split("\t")[:3] for line in res.stdout.splitlines()] == [
        ["busy", "Busy Town (default)", "2 requests"],
        ["quiet", "Quiet Town", "0 requests"],
    ]


def test_city_set_open311_ids(cli, sessions, files):
    with sessions.begin() as s:
        create_city(s, "busy", "Busy Town", "UTC", files["good"])
        create_city(s, "quiet", "Quiet Town", "UTC", files["good"])
    res = cli("city", "set", "busy", "--open311-id", "Busy.example.org", "--open311-id", "bt")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "city busy: Open311 ids busy, busy.example.org, bt\n"
    listed = cli("city", "list").stdout.splitlines()
    assert listed[0].endswith("\topen311 busy,busy.example.org,bt")
    # one id names one city; bad input is one line and changes nothing
    for args, message in (
        (("quiet", "--open311-id", "bt"), "Open311 id 'bt' already names the city 'busy'"),
        (("quiet", "--open311-id", "busy"), "Open311 id 'busy' already names the city 'busy'"),
        (("quiet", "--open311-id", "no spaces"), "must be lower-case letters, digits, dots"),
        (("nowhere", "--open311-id", "x.org"), "no city with slug 'nowhere'"),
        (("quiet",), "nothing to change"),
    ):
        res = cli("city", "set", *args)
        assert res.returncode == 1, args
        assert res.stderr.count("\n") == 1 and message in res.stderr, res.stderr
    with sessions() as s:
        ids = dict(s.execute(sa.select(Jurisdiction.slug, Jurisdiction.open311_ids)).all())
    assert ids == {"busy": ["busy.example.org", "bt"], "quiet": []}
    res = cli("city", "set", "busy", "--no-open311-ids")
    assert res.returncode == 0 and res.stdout == "city busy: Open311 ids busy\n"


def test_city_set_host(cli, sessions, files):
    with sessions.begin() as s:
        create_city(s, "busy", "Busy Town", "UTC", files["good"])
        create_city(s, "quiet", "Quiet Town", "UTC", files["good"])
    env = {"PUBLIC_BASE_URL": "https://311.example.org"}
    res = cli("city", "set", "busy", "--host", "311.Busy.example", env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "city busy: address https://311.busy.example/\n"
    listed = cli("city", "list", env=env).stdout.splitlines()
    assert [line.split("\t")[3] for line in listed] == [
        "https://311.busy.example/",
        "https://311.example.org/c/quiet/",
    ]
    for args, message in (
        (("quiet", "--host", "311.busy.example"), "host '311.busy.example' already serves"),
        (("quiet", "--host", "https://quiet.example/"), "must be a host name"),
        (("quiet", "--host", "q.example", "--no-host"), "not both"),
    ):
        res = cli("city", "set", *args)
        assert res.returncode == 1, args
        assert res.stderr.count("\n") == 1 and message in res.stderr, res.stderr
    with sessions() as s:
        hosts = dict(s.execute(sa.select(Jurisdiction.slug, Jurisdiction.host)).all())
    assert hosts == {"busy": "311.busy.example", "quiet": None}
    res = cli("city", "set", "busy", "--no-host", env=env)
    assert res.stdout == "city busy: address https://311.example.org/c/busy/\n"


def test_users_create_admin_without_a_city_is_an_install_admin(cli, sessions, files):
    with sessions.begin() as s:
        create_city(s, "busy", "Busy Town", "UTC", files["good"])
        create_city(s, "quiet", "Quiet Town", "UTC", files["good"])
    res = cli("users", "create", "--email", "root@example.org", "--role", "admin")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("created install_admin root@example.org\n")
    res = cli("users", "create", "--email", "a@example.org", "--role", "admin", "--city", "quiet")
    assert res.returncode == 0 and res.stdout.startswith("created admin a@example.org\n")
    # with several cities, a city role must name its city
    res = cli("users", "create", "--email", "d@example.org", "--role", "dispatcher")
    assert res.returncode == 1
    assert res.stderr.strip() == "civicpin: error: several cities exist: name one with --city SLUG"
    res = cli(
        "users",
        "create",
        "--email",
        "d@example.org",
        "--role",
        "dispatcher",
        env={"CIVICPIN_CITY": "busy"},
    )
    assert res.returncode == 0, res.stderr
    res = cli(
        "users", "create", "--email", "i@example.org", "--role", "install_admin", "--city", "busy"
    )
    assert res.returncode == 1 and "belongs to no one city" in res.stderr
    with sessions() as s:
        rows = s.execute(sa.select(User.email, User.role, User.jurisdiction_id)).all()
        ids = dict(s.execute(sa.select(Jurisdiction.slug, Jurisdiction.id)).all())
    assert sorted(rows) == [
        ("a@example.org", "admin", ids["quiet"]),
        ("d@example.org", "dispatcher", ids["busy"]),
        ("root@example.org", "install_admin", None),
    ]


def test_zones_import_twice_and_list(cli, engine, tmp_path):
    boundary = tmp_path / "la.geojson"
    shutil.copy(LA_NC, boundary)
    assert (
        cli(
            "city",
            "create",
            "los-angeles",
            "--name",
            "Los Angeles",
            "--timezone",
            "America/Los_Angeles",
            "--boundary",
            str(boundary),
        ).returncode
        == 0
    )
    args = (
        "zones",
        "import",
        str(boundary),
        "--city",
        "los-angeles",
        "--layer",
        "neighborhood-councils",
        "--code-field",
        "nc_id",
        "--name-field",
        "name",
        "--title",
        "Neighborhood Councils",
    )
    first = cli(*args)
    assert first.returncode == 0, first.stderr
    out = first.stdout.splitlines()
    assert out[0] == "imported layer neighborhood-councils v1: 99 zones"
    assert "features: 99, zones stored: 99" in out
    assert "repaired: 0" in out
    assert any(line.startswith("overlaps: ") and "pairs" in line for line in out)
    assert any(line.startswith("  overlap 19 / 18: 8.1") for line in out)
    # the only gaps are the slivers between councils that the city boundary fills
    assert any(line.startswith("gaps: ") and not line.startswith("gaps: 0,") for line in out)
    assert any(line.startswith("coverage of the city boundary: 99.9") for line in out), out

    second = cli(*args)
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[0] == "imported layer neighborhood-councils v2: 99 zones"
    listing = cli("zones", "list", "--city", "los-angeles")
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.splitlines() == [
        "neighborhood-councils\tv1\told\t99 zones\tNeighborhood Councils",
        "neighborhood-councils\tv2\tcurrent\t99 zones\tNeighborhood Councils",
    ]
    assert counts(engine) == {"jurisdiction": 1, "zone_layer": 2, "zone": 198}
