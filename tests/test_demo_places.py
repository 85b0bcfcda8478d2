"""The demo's places: Los Angeles' address points taken apart from its records, and
Cambridge, the second demo city, with its streets, intersections and street lights.

The truth comes from the data files, read here with pandas, geopandas and shapely: the
records' own coordinates, the centrelines' ranges and shared nodes, the lights' fields.
"""

from __future__ import annotations

from collections import defaultdict

import geopandas as gpd
import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import make_settings
from pyproj import Geod
from shapely.geometry import Point

from intake.demo import DEMO_MANIFESTS, RECORDS_FILE, manifest
from intake.submit import Draft, submit
from places.geocoder import geocode
from places.parse import normalise_street
from spatial.cities import default_city
from spatial.db import make_sessionmaker
from spatial.models import Crew, Jurisdiction, Service
from spatial.models_places import AssetLayer, PlaceDataset
from webmap.app import create_app

CAMBRIDGE = manifest(DEMO_MANIFESTS[1])
GEOD = Geod(ellps="WGS84")


def metres(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    return GEOD.inv(lon1, lat1, lon2, lat2)[2]


@pytest.fixture(scope="module")
def demo_sessions(demo_engine):
    return make_sessionmaker(demo_engine)


def city(s, slug: str) -> Jurisdiction:
    return s.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == slug))


def rows(engine, sql: str, **params) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).all()


# --------------------------------------------------------------------------- Los Angeles


def test_los_angeles_address_points_have_their_parts(demo_engine):
    points = pd.read_sql(
        "SELECT a.address, a.number, a.street, a.street_core, a.zip, a.source_id, "
        "a.dataset_id, ST_X(a.location) AS lon, ST_Y(a.location) AS lat "
        "FROM address_point a JOIN jurisdiction j ON j.id = a.jurisdiction_id "
        "WHERE j.slug = 'los-angeles'",
        demo_engine,
    )
    assert points.address.is_unique
    assert points.number.notna().all() and points.street_core.str.len().gt(0).all()
    assert points.zip.str.fullmatch(r"\d{5}").all() and points.source_id.isna().all()

    # Truth: the records' "<number> <street>, <zip>" texts, each at its first record's point
    # (street corners such as "VANOWEN ST AT HAZELTINE AVE" are not addresses).
    records = pd.read_csv(RECORDS_FILE, dtype=str, keep_default_na=False)
    parts = records.address.str.extract(r"^(\d+) [^,]+, (\d{5})$")
    records = records.assign(number=parts[0], zip=parts[1])
    records = records[records.number.notna() & (records.latitude != "")]
    first = records.sort_values(["created_at", "request_id"]).drop_duplicates("address")
    assert len(first) > 7400
    at = defaultdict(list)
    for number, zip_code, lon, lat in zip(
        points.number, points.zip, points.lon, points.lat, strict=True
    ):
        at[(str(number), zip_code)].append((lon, lat))

    def placed(number: str, zip_code: str, lon: float, lat: float) -> bool:
        return any(metres(lon, lat, x, y) < 1.0 for x, y in at.get((number, zip_code), []))

    found = sum(
        placed(r.number, r.zip, float(r.longitude), float(r.latitude)) for r in first.itertuples()
    )
    # Only two spellings of one address ("ROAD", "RD") share a point.
    assert found / len(first) >= 0.99, found
    assert len(first) - len(points) < 0.01 * len(first)
    vanowen = points[points.address == "16815 W VANOWEN ST, 91406"].iloc[0]
    assert (vanowen.number, vanowen.street, vanowen.street_core, vanowen.zip) == (
        16815,
        "W VANOWEN ST",
        "VANOWEN",
        "91406",
    )
    # One dataset, as an imported address file would be, and the street names refreshed
    ds = rows(
        demo_engine,
        "SELECT d.id, d.kind, d.version, d.imported_by, d.rows_written, d.source_name "
        "FROM place_dataset d JOIN jurisdiction j ON j.id = d.jurisdiction_id "
        "WHERE j.slug = 'los-angeles'",
    )
    assert len(ds) == 1
    assert ds[0][1:] == ("addresses", 1, "demo", len(points), RECORDS_FILE.name)
    assert set(points.dataset_id) == {ds[0][0]}
    names = rows(
        demo_engine,
        "SELECT n.points FROM street_name n JOIN jurisdiction j ON j.id = n.jurisdiction_id "
        "WHERE j.slug = 'los-angeles' AND n.name = 'W VANOWEN ST'",
    )
    assert names and names[0][0] == points.street.eq("W VANOWEN ST").sum() > 5


def test_the_geocoder_finds_a_record_address_on_the_record_point(demo_sessions):
    records = pd.read_csv(RECORDS_FILE, dtype=str, keep_default_na=False)
    first = records[records.request_id == "1-1523590121"].iloc[0]
    assert first.address == "16815 W VANOWEN ST, 91406"
    with demo_sessions() as s:
        found = geocode(s, city(s, "los-angeles"), "16815 W Vanowen St")
    best = found.confident
    assert best is not None and best.match_type == "address_point"
    assert best.address == "16815 W VANOWEN ST, 91406"
    assert metres(best.lon, best.lat, float(first.longitude), float(first.latitude)) < 1.0


def test_los_angeles_stays_the_default_city(demo_sessions):
    with demo_sessions() as s:
        assert default_city(s, None).slug == "los-angeles"


# --------------------------------------------------------------------------- Cambridge


def test_cambridge_has_its_streets_and_intersections(demo_engine):
    lines = gpd.read_file(CAMBRIDGE["streets"]["file"])
    named = lines[lines.Street.fillna("").str.strip() != ""]
    segments = rows(
        demo_engine,
        "SELECT s.source_id, s.name, s.from_left, s.to_left FROM street_segment s "
        "JOIN jurisdiction j ON j.id = s.jurisdiction_id WHERE j.slug = 'cambridge'",
    )
    assert len(segments) == len(named) > 2600
    by_id = {sid: (name, fl, tl) for sid, name, fl, tl in segments}
    assert by_id["Cambrid_St_29"] == ("CAMBRIDGE ST", 1334, 1378)

    # Truth: two differently named streets whose segments share an end meet there (a
    # street meeting its own continuation, "1ST ST" and "N 1ST ST", is no corner).
    ends: dict[tuple[float, float], set] = defaultdict(set)
    for street, geom in zip(named.Street, named.geometry, strict=True):
        street = normalise_street(street)
        for part in getattr(geom, "geoms", [geom]):
            for x, y, *_ in (part.coords[0], part.coords[-1]):
                ends[(round(x, 6), round(y, 6))].add((street.name, street.core))
    truth = {
        (a, b): Point(xy)
        for xy, names in ends.items()
        for a, core_a in names
        for b, core_b in names
        if a < b and core_a != core_b
    }
    assert len(truth) > 1000
    found = defaultdict(list)
    for a, b, lon, lat in rows(
        demo_engine,
        "SELECT i.name_a, i.name_b, ST_X(i.location), ST_Y(i.location) "
        "FROM street_intersection i JOIN jurisdiction j ON j.id = i.jurisdiction_id "
        "WHERE j.slug = 'cambridge'",
    ):
        found[(a, b)].append((lon, lat))
    near = [
        pair
        for pair, p in truth.items()
        if any(metres(p.x, p.y, lon, lat) <= 30 for lon, lat in found.get(pair, []))
    ]
    assert len(near) / len(truth) >= 0.99, sorted(set(truth) - set(near))[:10]
    assert ("CAMBRIDGE ST", "PROSPECT ST") in found


def test_cambridge_addresses_and_corners_are_found_on_the_centrelines(demo_sessions):
    lines = gpd.read_file(CAMBRIDGE["streets"]["file"])
    segment = lines[lines.ID == "Cambrid_St_29"].iloc[0]
    assert (segment.L_From, segment.L_To) == (1334, 1378)
    # 1350 is even: the left side, 16/44 of the way along (measured in metres)
    line = gpd.GeoSeries([segment.geometry], crs=4326).to_crs(26986).iloc[0]
    truth = gpd.GeoSeries([line.interpolate((1350 - 1334) / (1378 - 1334), normalized=True)],
                          crs=26986).to_crs(4326).iloc[0]  # fmt: skip
    with demo_sessions() as s:
        cambridge = city(s, "cambridge")
        house = geocode(s, cambridge, "1350 Cambridge Street, Cambridge MA 02139").confident
        corner = geocode(s, cambridge, "Cambridge St and Prospect St").confident
    assert house is not None and house.match_type == "range"
    assert metres(house.lon, house.lat, truth.x, truth.y) <= 25
    assert corner is not None and corner.match_type == "intersection"


def test_cambridge_has_its_street_lights_as_an_asset_layer(demo_engine):
    lights = gpd.read_file(CAMBRIDGE["assets"][0]["file"])
    assert len(lights) == 6117
    stored = pd.read_sql(
        "SELECT l.name, l.title, a.ref, a.label, a.attributes, ST_X(a.location) AS lon, "
        "ST_Y(a.location) AS lat FROM asset a JOIN asset_layer l ON l.id = a.layer_id "
        "JOIN jurisdiction j ON j.id = a.jurisdiction_id WHERE j.slug = 'cambridge'",
        demo_engine,
    )
    assert len(stored) == 6117 and set(stored.name) == {"streetlights"}
    assert set(stored.title) == {"Street lights"}
    assert set(stored.ref) == set(lights.PoleID)
    pole = stored.set_index("ref").loc["791-2"]
    assert pole.label == "Pole 791-2, SEAGRAVE RD"
    assert pole.attributes["Owner"] == "City" and pole.attributes["FixtureType"] == "A2"
    first = lights[lights.PoleID == "791-2"].geometry.iloc[0]
    assert metres(pole.lon, pole.lat, first.x, first.y) < 0.01
    no_street = lights[lights.Intersection.isna()].PoleID.iloc[0]
    assert stored.set_index("ref").loc[no_street].label == f"Pole {no_street}"
    owners = stored.attributes.map(lambda a: a.get("Owner")).value_counts(dropna=False)
    assert owners.to_dict() == lights.Owner.value_counts(dropna=False).to_dict()
    datasets = rows(
        demo_engine,
        "SELECT d.kind, d.version, d.imported_by, d.rows_read, d.rows_written "
        "FROM place_dataset d JOIN jurisdiction j ON j.id = d.jurisdiction_id "
        "WHERE j.slug = 'cambridge' ORDER BY d.kind",
    )
    assert [d[:3] for d in datasets] == [("assets", 1, "demo"), ("streets", 1, "demo")]
    assert datasets[0][3:] == (6117, 6117)


def test_cambridge_city_file_ties_street_lights_to_the_layer_and_private_lights_to_the_desk(
    demo_sessions,
):
    with demo_sessions() as s:
        cambridge = city(s, "cambridge")
        layer = s.scalar(
            sa.select(AssetLayer).where(
                AssetLayer.jurisdiction_id == cambridge.id, AssetLayer.name == "streetlights"
            )
        )
        services = {
            svc.code: svc
            for svc in s.scalars(sa.select(Service).where(Service.jurisdiction_id == cambridge.id))
        }
        assert services["streetlight-out"].asset_layer_id == layer.id
        assert services["pothole"].asset_layer_id is None
        rules = s.execute(
            sa.text(
                "SELECT r.name, r.asset_attribute, r.asset_value, c.code FROM routing_rule r "
                "JOIN routing_ruleset rs ON rs.id = r.ruleset_id "
                "LEFT JOIN crew c ON c.id = r.crew_id "
                "WHERE rs.jurisdiction_id = :j AND rs.status = 'published' ORDER BY r.position"
            ),
            {"j": cambridge.id},
        ).all()
        names = [r[0] for r in rules]
        assert ("Private lights", "Owner", "Private", "ELEC-PRIVATE") in rules
        assert names.index("Private lights") < names.index("Street lights")
        assert s.scalar(sa.select(sa.func.count()).select_from(PlaceDataset)) >= 3


@pytest.mark.parametrize("owner, crew", [("Private", "ELEC-PRIVATE"), ("City", "ELEC-LIGHTS")])
def test_a_street_light_report_goes_by_the_light_owner(demo_sessions, tmp_path, owner, crew):
    lights = gpd.read_file(CAMBRIDGE["assets"][0]["file"])
    light = lights[lights.Owner == owner].iloc[0]
    with demo_sessions() as s:
        draft = Draft(
            city="cambridge",
            service_code="streetlight-out",
            asset_ref=light.PoleID,
            attributes={"problem": "out"},
            description="The light has been out for a week.",
            anonymous=True,
        )
        done = submit(s, draft, media_dir=tmp_path, public_base_url="http://127.0.0.1:5000")
        r = done.request
        assert r.asset_ref == light.PoleID
        assert done.public_id.startswith("CAM-")
        assert s.get(Crew, r.crew_id).code == crew
        if owner == "Private":
            assert "asset Owner = Private" in r.routing_explanation
        lon, lat = s.execute(
            sa.text("SELECT ST_X(location), ST_Y(location) FROM service_request WHERE id = :i"),
            {"i": r.id},
        ).one()
        assert metres(lon, lat, light.geometry.x, light.geometry.y) < 1.0  # snapped
        s.rollback()


def test_cambridge_is_served_at_its_own_address(demo_engine, demo_db_url, tmp_path):
    app = create_app(make_settings(tmp_path, demo_db_url), engine=demo_engine)
    client = app.test_client()
    home = client.get("/c/cambridge/")
    assert home.status_code == 200 and "Cambridge" in home.get_data(as_text=True)
    assert "Street light out" in client.get("/c/cambridge/report").get_data(as_text=True)
    assert "Los Angeles" in client.get("/").get_data(as_text=True)


def test_cambridge_help_desk_is_staff_only_and_routes_without_a_place(
    demo_sessions, demo_engine, demo_db_url, tmp_path
):
    from spatial.accounts import create_user
    from spatial.models_work import EscalationPolicy

    with demo_sessions() as s:
        cambridge = city(s, "cambridge")
        reset = s.scalar(
            sa.select(Service).where(
                Service.jurisdiction_id == cambridge.id, Service.code == "password-reset"
            )
        )
        assert reset.internal and reset.private and reset.location_mode == "none"
        policy = s.scalar(
            sa.select(EscalationPolicy).where(
                EscalationPolicy.jurisdiction_id == cambridge.id,
                EscalationPolicy.service_id.is_(None),
            )
        )
        assert (policy.untriaged_minutes, policy.when_overdue) == (120, True)
        clerk, _ = create_user(
            s, email="clerk@cambridge.example", role="requester", city_slug="cambridge"
        )
        s.flush()
        draft = Draft(
            city="cambridge",
            service_code="password-reset",
            channel="web",
            requester_id=clerk.id,
            attributes={"system": "email"},
            description="Locked out of my e-mail since this morning.",
        )
        done = submit(s, draft, media_dir=tmp_path, public_base_url="http://127.0.0.1:5000")
        r = done.request
        assert r.location is None and not r.needs_location
        assert s.get(Crew, r.crew_id).code == "ITD-HELP"
        s.rollback()
    # Never offered to the public: the report form and Open311 do not know it.
    client = create_app(make_settings(tmp_path, demo_db_url), engine=demo_engine).test_client()
    assert "Password reset" not in client.get("/c/cambridge/report").get_data(as_text=True)
    codes = {s["service_code"] for s in client.get("/c/cambridge/open311/v2/services.json").json}
    assert "pothole" in codes and not codes & {"password-reset", "computer-equipment"}
