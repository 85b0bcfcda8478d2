"""``civicpin demo generate``: synthetic history, through the real CLI and real PostGIS."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import shapely
import sqlalchemy as sa
from geoalchemy2.shape import from_shape
from shapely.geometry import MultiPolygon, box

from intake.generate import CityModel, Generator, parse_count
from spatial.db import make_engine, make_sessionmaker
from spatial.errors import InvalidInput
from spatial.models import (
    Department,
    Jurisdiction,
    PublicIdCounter,
    Service,
    ServiceRequest,
    Zone,
    ZoneLayer,
)
from tests.conftest import TEMPLATE, run_cli

N = 20_000
TZ = "America/Los_Angeles"
# About 18 x 22 km of central Los Angeles.
BOUNDS = (-118.40, 33.95, -118.20, 34.15)
SEED_POINTS = [
    (-118.3801, 33.9702),
    (-118.3555, 34.1310),
    (-118.2420, 34.0505),
    (-118.2310, 33.9850),
    (-118.2180, 34.1350),
    (-118.3080, 34.0380),
    (-118.3650, 34.0550),
    (-118.2560, 34.1080),
    (-118.2950, 34.1460),
    (-118.3320, 33.9650),
]
MIX = {"pothole": 0.6, "graffiti": 0.3, "streetlight": 0.1}
YEAR_NOW = datetime.now(ZoneInfo(TZ)).year
COUNTERS = {YEAR_NOW: 20, YEAR_NOW - 1: 500}  # the 20 seeds are TV-<this year>-000001..20
GEN = "external_id LIKE 'GEN-%'"
NEW_BOUNDS = (13.30, 52.45, 13.50, 52.57)  # central Berlin


def build_city(session) -> None:
    """A square city with 3 categories, 20 real requests (mix 12/6/2) and one zone."""
    boundary = MultiPolygon([box(*BOUNDS)])
    city = Jurisdiction(
        slug="genville",
        name="Genville",
        timezone=TZ,
        metric_srid=32611,
        public_id_prefix="GV",
        boundary=from_shape(boundary, srid=4326),
    )
    session.add(city)
    session.flush()
    dept = Department(jurisdiction_id=city.id, code="public-works", name="Public Works")
    layer = ZoneLayer(jurisdiction_id=city.id, name="districts", version=1, is_current=True)
    session.add_all([dept, layer])
    session.flush()
    session.add(
        Zone(
            layer_id=layer.id,
            code="ALL",
            name="Everywhere",
            geom=from_shape(boundary, srid=4326),
            department_id=dept.id,
        )
    )
    services = {
        code: Service(
            jurisdiction_id=city.id,
            code=code,
            name=code.title(),
            default_department_id=dept.id,
            sla_hours=48.0,
        )
        for code in MIX
    }
    session.add_all(services.values())
    session.flush()
    codes = ["pothole"] * 12 + ["graffiti"] * 6 + ["streetlight"] * 2
    now = datetime.now(UTC)
    for i, code in enumerate(codes):
        lon, lat = SEED_POINTS[i % len(SEED_POINTS)]
        session.add(
            ServiceRequest(
                jurisdiction_id=city.id,
                public_id=f"GV-{YEAR_NOW}-{i + 1:06d}",
                token=f"seed-{i}",
                external_id=f"seed-{i}",
                service_id=services[code].id,
                status="new",
                priority="normal",
                location=f"SRID=4326;POINT({lon} {lat})",
                channel="web",
                anonymous=False,
                notify_updates=False,
                needs_location=False,
                requested_at=now,
                updated_at=now,
            )
        )
    for year, value in COUNTERS.items():
        session.add(PublicIdCounter(jurisdiction_id=city.id, year=year, last_value=value))
    # A city that exists but has no categories yet.
    session.add(
        Jurisdiction(
            slug="bareville",
            name="Bareville",
            timezone=TZ,
            public_id_prefix="BV",
            boundary=from_shape(boundary, srid=4326),
        )
    )
    # A city with categories but no requests at all.
    newville = Jurisdiction(
        slug="newville",
        name="Newville",
        timezone="Europe/Berlin",
        public_id_prefix="NV",
        boundary=from_shape(MultiPolygon([box(*NEW_BOUNDS)]), srid=4326),
    )
    session.add(newville)
    session.flush()
    session.add_all([Service(jurisdiction_id=newville.id, code=c, name=c) for c in ("a", "b")])


@pytest.fixture(scope="module")
def gen_db(pg):
    """One database with the city and 20,000 generated requests, shared by this module."""
    name = "gen_module"
    url = pg.create_db(name, template=TEMPLATE)
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    with make_sessionmaker(engine).begin() as session:
        build_city(session)

    def run(*args: str):
        return run_cli(list(args), env={"DATABASE_URL": url, "VAR_DIR": "/nonexistent"})

    before = state(engine)
    result = run("demo", "generate", "--requests", str(N), "--city", "genville", "--seed", "4242")
    yield {"engine": engine, "run": run, "before": before, "result": result}
    engine.dispose()
    pg.drop_db(name)


def state(engine) -> dict:
    """What a failed command must leave untouched: row count and the id counters."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT count(*) FROM service_request")).scalar_one()
        counters = dict(
            conn.execute(
                sa.text(
                    "SELECT year, last_value FROM public_id_counter c JOIN jurisdiction j "
                    "ON j.id = c.jurisdiction_id WHERE j.slug = 'genville'"
                )
            ).all()
        )
    return {"rows": rows, "counters": counters}


def scalar(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar_one()


def test_cli_reports_progress_and_adds_exactly_n_rows(gen_db):
    res = gen_db["result"]
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().startswith(f"generated {N} requests for genville in ")
    assert f"generated {N}/{N} (" in res.stderr
    assert "seed: 4242" in res.stderr
    assert state(gen_db["engine"])["rows"] == gen_db["before"]["rows"] + N
    assert scalar(gen_db["engine"], f"SELECT count(*) FROM service_request WHERE {GEN}") == N


def test_points_are_inside_the_boundary_and_clustered(gen_db):
    engine = gen_db["engine"]
    outside = scalar(
        engine,
        f"""
        SELECT count(*) FROM service_request r JOIN jurisdiction j ON j.id = r.jurisdiction_id
        WHERE r.{GEN} AND NOT ST_Within(r.location, j.boundary)""",
    )
    assert outside == 0
    nn = """
        SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d) FROM {src} a, LATERAL (
            SELECT ST_Distance(a.geom::geography, b.geom::geography) AS d FROM {src} b
            WHERE b.id <> a.id ORDER BY b.geom <-> a.geom LIMIT 1) x"""
    with engine.begin() as conn:
        conn.execute(
            sa.text(f"""
            CREATE TEMP TABLE gen_pts AS SELECT id, location AS geom
            FROM service_request WHERE {GEN};
            CREATE INDEX ON gen_pts USING gist (geom);
            CREATE TEMP TABLE uni_pts AS
            SELECT row_number() OVER () AS id, d.geom FROM jurisdiction j,
                   ST_Dump(ST_GeneratePoints(j.boundary, {N}, 7)) d WHERE j.slug = 'genville';
            CREATE INDEX ON uni_pts USING gist (geom);
            ANALYZE gen_pts; ANALYZE uni_pts;""")
        )
        clustered = conn.execute(sa.text(nn.format(src="gen_pts"))).scalar_one()
        uniform = conn.execute(sa.text(nn.format(src="uni_pts"))).scalar_one()
    # Median nearest-neighbour distance: uniform points in this square sit ~60 m apart;
    # clusters of a few hundred metres around ten seeds put most points several times closer.
    assert clustered < 0.4 * uniform, (clustered, uniform)


def test_category_mix_follows_the_real_requests(gen_db):
    with gen_db["engine"].connect() as conn:
        shares = dict(
            conn.execute(
                sa.text(f"""
            SELECT s.code, count(*)::float / {N} FROM service_request r
            JOIN service s ON s.id = r.service_id WHERE r.{GEN} GROUP BY s.code""")
            ).all()
        )
    assert set(shares) == set(MIX)
    for code, share in MIX.items():
        assert abs(shares[code] - share) <= 0.03, shares


def test_times_span_three_years_with_consistent_status(gen_db):
    engine = gen_db["engine"]
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(f"""
            SELECT min(requested_at) >= now() - interval '3 years',
                   max(requested_at) <= now(),
                   min(requested_at) <= now() - interval '34 months',
                   count(*) FILTER (WHERE closed_at < requested_at),
                   count(*) FILTER (WHERE closed_at > now() OR updated_at > now()),
                   count(*) FILTER (WHERE (closed_at IS NULL)
                                    <> (status IN ('new', 'acknowledged', 'in_progress'))),
                   avg((closed_at IS NOT NULL)::int)
                       FILTER (WHERE requested_at < now() - interval '1 year'),
                   avg((closed_at IS NOT NULL)::int)
                       FILTER (WHERE requested_at > now() - interval '3 days'),
                   count(DISTINCT channel), count(DISTINCT token),
                   count(*) FILTER (WHERE extract(isodow FROM requested_at AT TIME ZONE :tz) < 6),
                   count(*) FILTER (WHERE extract(hour FROM requested_at AT TIME ZONE :tz)
                                    BETWEEN 8 AND 17)
            FROM service_request WHERE {GEN}"""),
            {"tz": TZ},
        ).one()
        growth = conn.execute(
            sa.text(f"""
            SELECT count(*) FILTER (WHERE requested_at > now() - interval '1 year')::float
                 / count(*) FILTER (WHERE requested_at < now() - interval '2 years')
            FROM service_request WHERE {GEN}""")
        ).scalar_one()
        channels = {
            c
            for (c,) in conn.execute(
                sa.text(f"SELECT DISTINCT channel FROM service_request WHERE {GEN}")
            )
        }
    (
        in_window,
        not_future,
        spans,
        closed_before,
        closed_future,
        status_mismatch,
        closed_old,
        closed_recent,
        _n_channels,
        tokens,
        weekdays,
        office_hours,
    ) = row
    assert in_window and not_future and spans
    assert closed_before == 0 and closed_future == 0 and status_mismatch == 0
    assert closed_old >= 0.95 and closed_recent <= 0.6, (closed_old, closed_recent)
    assert channels == {"web", "mobile", "phone", "email", "api"}
    assert tokens == N
    assert weekdays / N > 5 / 7 + 0.03  # busier on weekdays
    assert office_hours / N > 10 / 24 + 0.15  # and in the daytime
    assert 1.1 < growth < 1.6  # a mild growth trend


def test_public_ids_continue_the_counters(gen_db):
    engine = gen_db["engine"]
    before = gen_db["before"]["counters"]
    after = state(engine)["counters"]
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(f"""
            SELECT split_part(public_id, '-', 2)::int AS year,
                   extract(year FROM requested_at AT TIME ZONE :tz)::int AS local_year,
                   split_part(public_id, '-', 3)::int AS n, split_part(public_id, '-', 1) AS p
            FROM service_request WHERE {GEN} ORDER BY id"""),
            {"tz": TZ},
        ).all()
    assert {r.p for r in rows} == {"GV"}
    assert all(r.year == r.local_year for r in rows)
    assert len({(r.year, r.n) for r in rows}) == N
    for year in {r.year for r in rows}:
        numbers = sorted(r.n for r in rows if r.year == year)
        start = before.get(year, 0)
        assert numbers == list(range(start + 1, start + len(numbers) + 1)), year
        assert after[year] == start + len(numbers)
    # Generated in time order: ids and public numbers grow with requested_at.
    years = [r.year for r in rows]
    assert years == sorted(years)


def test_requests_are_routed_to_the_zone(gen_db):
    res = gen_db["result"]
    engine = gen_db["engine"]
    assert "routing skipped" not in res.stderr, res.stderr
    unzoned = scalar(
        engine,
        f"""
        SELECT count(*) FROM service_request r WHERE r.{GEN} AND NOT EXISTS (
            SELECT 1 FROM request_zone rz JOIN zone z ON z.id = rz.zone_id
            WHERE rz.request_id = r.id AND z.code = 'ALL')""",
    )
    assert unzoned == 0
    assert (
        scalar(engine, f"SELECT count(*) FROM service_request WHERE {GEN} AND routed_at IS NULL")
        == 0
    )


def test_city_without_requests_gets_uniform_mix_around_random_seeds(gen_db):
    engine = gen_db["engine"]
    res = gen_db["run"](
        "demo", "generate", "--requests", "3000", "--city", "newville", "--no-route"
    )
    assert res.returncode == 0, res.stderr
    assert "cluster seeds from random points in the city" in res.stderr
    assert "rout" not in res.stderr  # --no-route: no routing step at all
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("""
            SELECT count(*), count(*) FILTER (WHERE s.code = 'a')::float / count(*),
                   count(*) FILTER (WHERE NOT ST_Within(r.location, j.boundary)),
                   count(r.routed_at)
            FROM service_request r JOIN jurisdiction j ON j.id = r.jurisdiction_id
            JOIN service s ON s.id = r.service_id WHERE j.slug = 'newville'""")
        ).one()
    total, share_a, outside, routed = row
    assert total == 3000 and outside == 0 and routed == 0
    assert abs(share_a - 0.5) <= 0.05


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--requests", "0", "--city", "genville"], "--requests must be a whole number"),
        (["--requests", "-5", "--city", "genville"], "--requests must be a whole number"),
        (["--requests", "abc", "--city", "genville"], "--requests must be a whole number"),
        (["--requests", "10", "--city", "atlantis"], "no city with slug 'atlantis'"),
        (["--requests", "10", "--city", "bareville"], "has no active categories"),
        (["--requests", "10", "--city", "genville", "--seed", "4242"], "seed 4242 was already"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(gen_db, args, message):
    engine = gen_db["engine"]
    before = state(engine)
    res = gen_db["run"]("demo", "generate", *args)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("civicpin: error: "), res.stderr
    assert message in lines[0]
    assert res.stdout == ""
    assert state(engine) == before


def test_parse_count():
    assert parse_count("1_000_000") == 1_000_000
    assert parse_count(20_000_000) == 20_000_000
    for bad in ("0", "-5", "abc", "1.5", "", "20000001"):
        with pytest.raises(InvalidInput):
            parse_count(bad)


def _model() -> CityModel:
    boundary = MultiPolygon([box(*BOUNDS)])
    shapely.prepare(boundary)
    lon = np.array([p[0] for p in SEED_POINTS])
    lat = np.array([p[1] for p in SEED_POINTS])
    return CityModel(
        jurisdiction_id=1,
        slug="x",
        timezone=TZ,
        service_ids=np.array([1, 2, 3]),
        service_weights=np.array([0.6, 0.3, 0.1]),
        duration_mu=np.log([48.0, 24.0, 200.0]),
        duration_sigma=np.ones(3),
        seed_lon=lon,
        seed_lat=lat,
        seed_service=np.full(lon.size, -1),
        boundary=boundary,
        seeds_from_requests=True,
    )


def test_same_seed_gives_the_same_rows_and_chunks_are_bounded():
    now = datetime(2026, 3, 8, 12, tzinfo=UTC)  # a DST change day in Los Angeles
    runs = [list(Generator(_model(), 25_000, seed, now=now).chunks(10_000)) for seed in (1, 1, 2)]
    sizes = [len(c) for c in runs[0]]
    assert sum(sizes) == 25_000 and len(sizes) == 3 and max(sizes) <= 10_000
    for a, b in zip(runs[0], runs[1], strict=True):
        assert np.array_equal(a.lon, b.lon) and np.array_equal(a.requested, b.requested)
        assert np.array_equal(a.service, b.service) and np.array_equal(a.status, b.status)
    assert not np.array_equal(runs[0][0].lon, runs[2][0].lon)
    requested = np.concatenate([c.requested for c in runs[0]])
    assert requested.max() <= now.timestamp()
    assert np.all(np.diff(requested) >= 0)  # in time order, across chunks too
