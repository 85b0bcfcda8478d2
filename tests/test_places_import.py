"""Importing a city's address points, streets and assets from its own files:
``civicpin addresses|streets|assets import`` on real CSV, GeoJSON, Shapefile and
GeoPackage files, versions, dry runs, bad files and bad rows."""

from __future__ import annotations

import csv
import zipfile

import geopandas as gpd
import pytest
import sqlalchemy as sa
from shapely.geometry import LineString, Point

from places import importers
from spatial.errors import InvalidInput
from spatial.models import Jurisdiction, Service
from spatial.models_ops import AdminEvent
from spatial.zones import create_city
from tests.support.city import make_small_city
from tests.support.places_city import BOUNDARY as CAMBRIDGE_BOUNDARY
from tests.support.places_city import (
    CENTERLINES,
    KNOWN_POLE,
    STREETLIGHTS,
    make_cambridge_city,
)

# Three addresses in Testville (downtown Los Angeles), as a city's address file has them.
ROWS = [
    {"ADDR_ID": "A-100", "HSE_NBR": "1111", "STREET": "S Figueroa Street", "UNIT": "",
     "ZIP": "90015", "LAT": "34.0430", "LON": "-118.2673"},
    {"ADDR_ID": "A-101", "HSE_NBR": "12A", "STREET": "west 5th st", "UNIT": "Apt 4",
     "ZIP": "90013", "LAT": "34.0470", "LON": "-118.2510"},
    {"ADDR_ID": "A-102", "HSE_NBR": "200 1/2", "STREET": "N SPRING ST", "UNIT": "",
     "ZIP": "90012", "LAT": "34.0540", "LON": "-118.2430"},
]  # fmt: skip
ADDRESS_MAP = "number=HSE_NBR,street=STREET,unit=UNIT,zip=ZIP,id=ADDR_ID,lat=LAT,lon=LON"
GIS_MAP = "number=HSE_NBR,street=STREET,unit=UNIT,zip=ZIP,id=ADDR_ID"


@pytest.fixture
def city(sessions):
    with sessions.begin() as s:
        make_small_city(s)


def write_csv(path, rows, fields=None):
    fields = fields or list(rows[0])
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return path


def frame(rows, crs="EPSG:4326"):
    gdf = gpd.GeoDataFrame(
        [{k: v for k, v in r.items() if k not in ("LAT", "LON")} for r in rows],
        geometry=[Point(float(r["LON"]), float(r["LAT"])) for r in rows],
        crs="EPSG:4326",
    )
    return gdf.to_crs(crs)


def points(engine) -> list[dict]:
    with engine.connect() as c:
        return [
            dict(r._mapping)
            for r in c.execute(
                sa.text(
                    "SELECT source_id, address, number, number_suffix, street, street_core, "
                    "unit, zip, ST_X(location) AS lon, ST_Y(location) AS lat, dataset_id "
                    "FROM address_point ORDER BY source_id"
                )
            )
        ]


def counts(engine) -> dict[str, int]:
    with engine.connect() as c:
        return {
            t: c.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in (
                "place_dataset",
                "address_point",
                "street_segment",
                "street_intersection",
                "asset_layer",
                "asset",
                "admin_event",
            )
        }


def test_csv_addresses_keep_the_citys_ids_and_parts(cli, engine, city, tmp_path):
    path = write_csv(tmp_path / "addresses.csv", ROWS)
    run = cli("addresses", "import", str(path), "--city", "testville", "--map", ADDRESS_MAP)
    assert run.returncode == 0, run.stderr
    assert "addresses from addresses.csv: 3 rows read, 3 written, 0 bad" in run.stdout
    assert "version 1" in run.stdout
    got = {p["source_id"]: p for p in points(engine)}
    assert set(got) == {"A-100", "A-101", "A-102"}
    fig = got["A-100"]
    assert (fig["number"], fig["number_suffix"], fig["street"], fig["street_core"]) == (
        1111,
        None,
        "S FIGUEROA ST",
        "FIGUEROA",
    )
    assert fig["address"] == "1111 S FIGUEROA ST, 90015"
    assert fig["lon"] == pytest.approx(-118.2673) and fig["lat"] == pytest.approx(34.0430)
    fifth = got["A-101"]
    assert (fifth["number"], fifth["number_suffix"], fifth["street"], fifth["unit"]) == (
        12,
        "A",
        "W 5TH ST",
        "APT 4",
    )
    assert fifth["address"].startswith("12A W 5TH ST")
    half = got["A-102"]
    assert (half["number"], half["number_suffix"]) == (200, "1/2")
    assert half["address"] == "200 1/2 N SPRING ST, 90012"
    with engine.connect() as c:
        event = c.execute(sa.select(AdminEvent.action, AdminEvent.what)).one()
    assert event.action == "addresses.import"
    assert event.what["file"] == "addresses.csv" and event.what["rows"] == 3


@pytest.mark.parametrize("fmt", ["geojson", "shp", "zip", "gpkg"])
def test_gis_formats_are_read_and_reprojected(cli, engine, city, tmp_path, fmt):
    # A projected file (California zone 5, US feet) must land where the points are.
    gdf = frame(ROWS, crs="EPSG:2229")
    if fmt == "geojson":
        path = tmp_path / "addresses.geojson"
        gdf.to_file(path, driver="GeoJSON")
    elif fmt in ("shp", "zip"):
        folder = tmp_path / "shape"
        folder.mkdir()
        gdf.to_file(folder / "addresses.shp")
        path = folder / "addresses.shp"
        if fmt == "zip":
            path = tmp_path / "addresses.zip"
            with zipfile.ZipFile(path, "w") as zf:
                for part in folder.iterdir():
                    zf.write(part, f"addresses/{part.name}")
    else:
        path = tmp_path / "city.gpkg"
        # The addresses are the second layer: --layer-name picks them.
        frame(ROWS[:1]).rename(columns={"STREET": "OTHER"}).to_file(path, layer="parcels")
        gdf.to_file(path, layer="addresses")
    args = ["addresses", "import", str(path), "--city", "testville", "--map", GIS_MAP]
    if fmt == "gpkg":
        args += ["--layer-name", "addresses"]
    run = cli(*args)
    assert run.returncode == 0, run.stderr
    assert "3 rows read, 3 written, 0 bad" in run.stdout
    got = {p["source_id"]: p for p in points(engine)}
    assert got["A-100"]["street"] == "S FIGUEROA ST"
    for row in ROWS:
        p = got[row["ADDR_ID"]]
        assert p["lon"] == pytest.approx(float(row["LON"]), abs=1e-6)
        assert p["lat"] == pytest.approx(float(row["LAT"]), abs=1e-6)


def test_a_reimport_is_version_2_and_replaces_version_1(cli, engine, city, tmp_path):
    first = write_csv(tmp_path / "v1.csv", ROWS)
    assert cli("addresses", "import", str(first), "--map", ADDRESS_MAP).returncode == 0
    second = write_csv(tmp_path / "v2.csv", [dict(ROWS[0], HSE_NBR="1113"), ROWS[1]])
    run = cli("addresses", "import", str(second), "--map", ADDRESS_MAP)
    assert run.returncode == 0, run.stderr
    assert "version 2" in run.stdout
    got = {p["source_id"]: p for p in points(engine)}
    assert set(got) == {"A-100", "A-101"}
    assert got["A-100"]["number"] == 1113
    with engine.connect() as c:
        versions = c.execute(
            sa.text("SELECT version, rows_written FROM place_dataset ORDER BY version")
        ).all()
        current = c.execute(sa.text("SELECT id FROM place_dataset WHERE version = 2")).scalar()
    assert versions == [(1, 3), (2, 2)]
    assert {p["dataset_id"] for p in got.values()} == {current}
    listing = cli("addresses", "list", "--city", "testville")
    assert listing.returncode == 0
    assert "version 2 is current" in listing.stdout
    assert "v1\t3 rows" in listing.stdout and "v2\t2 rows" in listing.stdout
    assert "v2.csv" in listing.stdout and "cli:" in listing.stdout


def test_a_dry_run_reports_and_writes_nothing(cli, engine, city, tmp_path):
    path = write_csv(tmp_path / "addresses.csv", ROWS + [dict(ROWS[0], ADDR_ID="A-9", HSE_NBR="")])
    before = counts(engine)
    run = cli("addresses", "import", str(path), "--map", ADDRESS_MAP, "--dry-run", "--skip-bad")
    assert run.returncode == 0, run.stderr
    assert "4 rows read, 3 good, 1 bad" in run.stdout
    assert "dry run: nothing written (the import would be version 1)" in run.stdout
    assert "line 5: no house number" in run.stdout
    assert counts(engine) == before


def _no_geometry(tmp_path):
    path = tmp_path / "broken.csv"
    write_csv(path, [dict(r, LAT="north", LON="west") for r in ROWS])
    return path, ADDRESS_MAP


BAD_FILES = {
    "missing file": (
        lambda tmp: (tmp / "nowhere.csv", ADDRESS_MAP),
        "civicpin: error: file not found: ",
    ),
    "unsupported format": (
        lambda tmp: (write_csv(tmp / "addresses.xlsx", ROWS), ADDRESS_MAP),
        "civicpin: error: addresses.xlsx: not a supported format (use CSV, GeoJSON, "
        "Shapefile (.shp, or a .zip holding one) or GeoPackage)",
    ),
    "not a GIS file": (
        lambda tmp: (write_csv(tmp / "addresses.gpkg", ROWS), GIS_MAP),
        "civicpin: error: addresses.gpkg cannot be read as GeoPackage",
    ),
    "mapped column missing": (
        lambda tmp: (write_csv(tmp / "a.csv", ROWS), ADDRESS_MAP.replace("HSE_NBR", "HOUSE")),
        "civicpin: error: the file has no column 'HOUSE' (mapped to number); its columns: "
        "ADDR_ID, HSE_NBR, STREET, UNIT, ZIP, LAT, LON",
    ),
    "unknown map key": (
        lambda tmp: (write_csv(tmp / "a.csv", ROWS), ADDRESS_MAP + ",colour=ZIP"),
        "civicpin: error: unknown map key 'colour' (known: number, street, address, ",
    ),
    "required key missing": (
        lambda tmp: (write_csv(tmp / "a.csv", ROWS), "number=HSE_NBR,lat=LAT,lon=LON"),
        "civicpin: error: the map needs number and street or address",
    ),
    "unreadable geometry": (
        _no_geometry,
        "civicpin: error: broken.csv: no row has a usable geometry (line 2: unreadable "
        "coordinates ('north', 'west'))",
    ),
    "empty file": (
        lambda tmp: (write_csv(tmp / "a.csv", [], fields=list(ROWS[0])), ADDRESS_MAP),
        "civicpin: error: a.csv holds no rows",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_file_gets_one_line_and_changes_nothing(cli, engine, city, tmp_path, case):
    # A current set exists: a failed import must leave it as it was.
    good = write_csv(tmp_path / "good.csv", ROWS)
    assert cli("addresses", "import", str(good), "--map", ADDRESS_MAP).returncode == 0
    before, kept = counts(engine), points(engine)
    make, message = BAD_FILES[case]
    path, mapping = make(tmp_path)
    run = cli("addresses", "import", str(path), "--map", mapping, "--skip-bad")
    assert run.returncode != 0
    assert run.stderr.startswith(message), run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert counts(engine) == before and points(engine) == kept


BAD_ROWS = [
    (dict(ROWS[0], ADDR_ID="B-1", HSE_NBR=""), "no house number"),
    (dict(ROWS[0], ADDR_ID="B-2", HSE_NBR="one"), "house number 'one' is not a number"),
    (dict(ROWS[0], ADDR_ID="B-3", STREET=" "), "no street"),
    (dict(ROWS[0], ADDR_ID="B-4", LAT="x"), "unreadable coordinates ('x', '-118.2673')"),
    (dict(ROWS[0], ADDR_ID="B-5", LAT="134.05"), "(-118.267, 134.05) is not a longitude and"),
    (dict(ROWS[0], ADDR_ID="B-6", LAT="40.7", LON="-74.0"), "is far outside Testville"),
    (dict(ROWS[1]), "duplicate id 'A-101' (also line 3)"),
]


def test_bad_rows_write_nothing_unless_skipped(cli, engine, city, tmp_path):
    path = write_csv(tmp_path / "addresses.csv", ROWS + [r for r, _ in BAD_ROWS])
    before = counts(engine)
    run = cli("addresses", "import", str(path), "--map", ADDRESS_MAP)
    assert run.returncode == 1
    assert run.stderr.strip() == (
        "civicpin: error: 7 bad rows in addresses.csv: nothing written (correct the file, "
        "or skip the bad rows to import the other 3)"
    )
    named = dict(
        line.strip().split(": ", 1) for line in run.stdout.splitlines() if line.startswith("  ")
    )
    for n, (_row, reason) in enumerate(BAD_ROWS, start=5):
        assert reason in named[f"line {n}"]
    assert counts(engine) == before

    skipped = cli("addresses", "import", str(path), "--map", ADDRESS_MAP, "--skip-bad")
    assert skipped.returncode == 0, skipped.stderr
    assert "10 rows read, 3 written, 7 bad" in skipped.stdout
    assert "  line 11: duplicate id 'A-101' (also line 3)" in skipped.stdout
    assert {p["source_id"] for p in points(engine)} == {"A-100", "A-101", "A-102"}
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT rows_read, rows_bad FROM place_dataset")).one() == (
            10,
            7,
        )


def test_only_the_first_ten_bad_rows_are_named(cli, engine, city, tmp_path):
    bad = [dict(ROWS[0], ADDR_ID=f"X-{i}", HSE_NBR="") for i in range(25)]
    path = write_csv(tmp_path / "addresses.csv", ROWS + bad)
    run = cli("addresses", "import", str(path), "--map", ADDRESS_MAP)
    assert run.returncode == 1
    named = [line for line in run.stdout.splitlines() if ": no house number" in line]
    assert len(named) == 10
    assert "  ... and 15 more" in run.stdout


def test_a_10000_row_file_streams_in_batches(sessions, engine, city, tmp_path):
    rows = [
        dict(
            ADDR_ID=f"S-{i}",
            HSE_NBR=str(100 + i),
            STREET=f"{['Main', 'Spring', 'Hill', 'Olive'][i % 4]} St",
            UNIT="",
            ZIP="90012",
            LAT=f"{34.01 + (i % 100) * 0.0008:.6f}",
            LON=f"{-118.29 + (i // 100) * 0.0008:.6f}",
        )
        for i in range(10_000)
    ]
    path = write_csv(tmp_path / "big.csv", rows)
    batches: list[int] = []
    with sessions.begin() as s:
        testville = s.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == "testville"))
        report = importers.import_addresses(
            s,
            testville,
            path,
            importers.parse_mapping(ADDRESS_MAP),
            imported_by="test",
            progress=batches.append,
        )
    assert report.rows_written == 10_000
    # Read and written a batch at a time, never the whole file at once.
    assert len(batches) >= 2 and max(batches) <= importers.BATCH and sum(batches) == 10_000
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM address_point")).scalar() == 10_000
        assert (
            c.execute(
                sa.text("SELECT address FROM address_point WHERE source_id = 'S-9999'")
            ).scalar()
            == "10099 OLIVE ST, 90012"
        )


def test_a_whole_address_in_one_column_is_parsed(cli, engine, city, tmp_path):
    rows = [
        {"id": "F-1", "full": "1111 S Figueroa St, Los Angeles, CA 90015", "lat": "34.043",
         "lon": "-118.2673"},
    ]  # fmt: skip
    path = write_csv(tmp_path / "full.csv", rows)
    run = cli("addresses", "import", str(path), "--map", "address=full,id=id,lat=lat,lon=lon")
    assert run.returncode == 0, run.stderr
    (p,) = points(engine)
    assert (p["number"], p["street"], p["zip"]) == (1111, "S FIGUEROA ST", "90015")


# --- streets -----------------------------------------------------------------------------

STREET_MAP = (
    "name=Street,from_left=L_From,to_left=L_To,from_right=R_From,to_right=R_To,"
    "zip_left=ZIP_Left,zip_right=ZIP_Right,id=ID"
)


@pytest.fixture
def cambridge(sessions):
    with sessions.begin() as s:
        create_city(s, "cambridge", "Cambridge", "America/New_York", CAMBRIDGE_BOUNDARY)


def test_cambridge_streets_import_derives_the_intersections(cli, engine, cambridge):
    # One segment of the file has no street name: a bad row.
    refused = cli("streets", "import", str(CENTERLINES), "--map", STREET_MAP)
    assert refused.returncode == 1
    assert "no street name" in refused.stdout
    assert counts(engine)["street_segment"] == 0

    run = cli("streets", "import", str(CENTERLINES), "--map", STREET_MAP, "--skip-bad")
    assert run.returncode == 0, run.stderr
    assert "2,643 rows read, 2,642 written, 1 bad" in run.stdout
    with engine.connect() as c:
        derived = c.execute(sa.text("SELECT count(*) FROM street_intersection")).scalar()
        assert derived > 1000
        assert f"{derived:,} intersections derived" in run.stdout
        meet = c.execute(
            sa.text(
                "SELECT count(*) FROM street_intersection WHERE "
                "(name_a, name_b) IN (('CAMBRIDGE ST', 'PROSPECT ST'), "
                "('PROSPECT ST', 'CAMBRIDGE ST'))"
            )
        ).scalar()
        assert meet >= 1
        # The MultiLineString of Chauncy St (two touching parts) is one segment.
        chauncy = c.execute(
            sa.text(
                "SELECT GeometryType(geom), from_left, zip_left FROM street_segment "
                "WHERE source_id = (SELECT source_id FROM street_segment "
                "WHERE name = 'CHAUNCY ST' ORDER BY ST_NPoints(geom) DESC LIMIT 1)"
            )
        ).one()
        assert chauncy[0] == "LINESTRING"
        # Cambridge writes -1 for "no addresses on this side".
        assert (
            c.execute(sa.text("SELECT count(*) FROM street_segment WHERE from_left < 0")).scalar()
            == 0
        )
        assert (
            c.execute(
                sa.text("SELECT zip_left FROM street_segment WHERE source_id = 'Cambrid_St_29'")
            ).scalar()
            == "02139"
        )


def test_a_multilinestring_in_pieces_is_a_bad_row(cli, engine, cambridge, tmp_path):
    far_apart = [
        LineString([(-71.110, 42.370), (-71.109, 42.370)]),
        LineString([(-71.100, 42.370), (-71.099, 42.370)]),
    ]
    from shapely.geometry import MultiLineString

    gdf = gpd.GeoDataFrame(
        {"NAME": ["Elm St", "Oak St"], "LF": [1, 2], "LT": [99, 98]},
        geometry=[MultiLineString(far_apart), LineString([(-71.105, 42.371), (-71.104, 42.371)])],
        crs="EPSG:4326",
    )
    path = tmp_path / "streets.gpkg"
    gdf.to_file(path)
    run = cli("streets", "import", str(path), "--map", "name=NAME,from_left=LF,to_left=LT")
    assert run.returncode == 1
    assert "feature 1: a MultiLineString of 2 separate parts" in run.stdout
    assert counts(engine)["street_segment"] == 0


def test_a_csv_of_streets_needs_wkt(cli, engine, cambridge, tmp_path):
    path = write_csv(
        tmp_path / "streets.csv",
        [{"name": "Elm St", "geom": "LINESTRING (-71.105 42.371, -71.104 42.371)"}],
    )
    refused = cli("streets", "import", str(path), "--map", "name=name")
    assert refused.returncode != 0
    assert refused.stderr.startswith("civicpin: error: a CSV of streets needs its lines as WKT")
    run = cli("streets", "import", str(path), "--map", "name=name,wkt=geom")
    assert run.returncode == 0, run.stderr
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT name, name_core FROM street_segment")).one() == (
            "ELM ST",
            "ELM",
        )


# --- assets ------------------------------------------------------------------------------


def test_street_lights_become_an_asset_layer_with_versions(cli, engine, sessions, cambridge):
    run = cli(
        "assets", "import", str(STREETLIGHTS), "--layer", "streetlights", "--id-field", "PoleID",
        "--label-field", "Pole {PoleID}, {Intersection}", "--title", "Street light",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "assets of layer streetlights from INFRA_StreetLights.geojson: 6,117 rows read, " in (
        run.stdout
    )
    assert "version 1" in run.stdout
    with engine.connect() as c:
        pole = c.execute(
            sa.text(
                "SELECT a.label, a.attributes, l.title, l.id_field FROM asset a "
                "JOIN asset_layer l ON l.id = a.layer_id WHERE a.ref = :r"
            ),
            {"r": KNOWN_POLE},
        ).one()
    assert pole.label == "Pole 791-2, SEAGRAVE RD"
    assert pole.attributes["Owner"] == "City" and pole.attributes["NumLamps"] == "1"
    assert pole.attributes["Neighborhood"] == "11"
    assert "PoleID" not in pole.attributes
    assert (pole.title, pole.id_field) == ("Street light", "PoleID")

    again = cli(
        "assets", "import", str(STREETLIGHTS), "--layer", "streetlights", "--id-field", "PoleID",
        "--label-field", "Intersection",
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "version 2" in again.stdout
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM asset")).scalar() == 6117
        assert (
            c.execute(sa.text("SELECT label FROM asset WHERE ref = :r"), {"r": KNOWN_POLE}).scalar()
            == "SEAGRAVE RD"
        )
    listing = cli("assets", "list", "--city", "cambridge")
    assert listing.stdout.startswith("streetlights\tStreet light\t6,117 assets\tversion 2")


def test_a_layer_in_use_is_not_removed(cli, engine, sessions, tmp_path):
    with sessions.begin() as s:
        city = make_cambridge_city(s, streets=False)
        layer_id = s.execute(sa.text("SELECT id FROM asset_layer")).scalar()
        s.add(Service(jurisdiction_id=city.id, code="light-out", name="Light out",
                      asset_layer_id=layer_id))  # fmt: skip
    refused = cli("assets", "remove", "streetlights", "--city", "cambridge")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "civicpin: error: asset layer 'streetlights' is used by the category light-out: "
        "untie them from the layer first"
    )
    assert counts(engine)["asset"] == 6117
    titled = cli("assets", "set", "streetlights", "--title", "Street lamp", "--city", "cambridge")
    assert titled.returncode == 0, titled.stderr
    with sessions.begin() as s:
        s.execute(sa.text("UPDATE service SET asset_layer_id = NULL"))
    removed = cli("assets", "remove", "streetlights", "--city", "cambridge")
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.strip() == "asset layer streetlights removed with its 6,117 assets"
    assert counts(engine)["asset"] == 0 and counts(engine)["asset_layer"] == 0


def test_a_csv_of_assets_finds_its_coordinates(cli, engine, cambridge, tmp_path):
    path = write_csv(
        tmp_path / "hydrants.csv",
        [
            {"HYD": "H-1", "Latitude": "42.3736", "Longitude": "-71.1097", "Owner": "Water"},
            {"HYD": "H-2", "Latitude": "42.3740", "Longitude": "-71.1100", "Owner": "Water"},
        ],
    )
    run = cli("assets", "import", str(path), "--layer", "hydrants", "--id-field", "HYD")
    assert run.returncode == 0, run.stderr
    with engine.connect() as c:
        rows = c.execute(
            sa.text("SELECT ref, ST_Y(location), attributes FROM asset ORDER BY ref")
        ).all()
        title = c.execute(sa.text("SELECT title FROM asset_layer")).scalar()
    assert [(r[0], round(r[1], 4), r[2]) for r in rows] == [
        ("H-1", 42.3736, {"Owner": "Water"}),
        ("H-2", 42.374, {"Owner": "Water"}),
    ]
    assert title == "Hydrants"
    bad = cli("assets", "import", str(path), "--layer", "Hydrants!", "--id-field", "HYD")
    assert bad.returncode != 0 and bad.stderr.startswith("civicpin: error: ")
    assert len(bad.stderr.strip().splitlines()) == 1


def test_the_shared_cambridge_city_has_streets_and_lights(sessions, engine):
    with sessions.begin() as s:
        make_cambridge_city(s)
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM street_segment")).scalar() == 2642
        assert c.execute(sa.text("SELECT count(*) FROM asset")).scalar() == 6117
        assert c.execute(sa.text("SELECT count(*) FROM street_intersection")).scalar() > 1000
        assert c.execute(sa.text("SELECT count(*) FROM street_name")).scalar() > 400


def test_mapping_text_is_checked():
    assert importers.parse_mapping("number=N, street = S ") == {"number": "N", "street": "S"}
    with pytest.raises(InvalidInput, match="must be KEY=COLUMN"):
        importers.parse_mapping("number")
    with pytest.raises(InvalidInput, match="names 'number' twice"):
        importers.parse_mapping("number=A,number=B")
    assert importers.parse_number("12") == (12, None)
    assert importers.parse_number("12a") == (12, "A")
    assert importers.parse_number("12-14") == (12, "-14")
    assert importers.parse_number(12.0) == (12, None)
    assert importers.normalise_zip(2139) == "02139"
    assert importers.normalise_zip("02139-1234") == "02139"
