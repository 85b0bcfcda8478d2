"""The demo city: what it holds, routing correctness on real data, idempotency, the CLI."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import geopandas as gpd
import pandas as pd
import pytest
import sqlalchemy as sa

from intake.demo import BOUNDARY_FILE, RECORDS_FILE, load_demo
from routing.engine import route_request
from spatial.db import make_sessionmaker
from spatial.models import OPEN_LOCATION_PREDICATE, Jurisdiction, ServiceRequest
from spatial.public_ids import allocate

LA = ZoneInfo("America/Los_Angeles")


@pytest.fixture(scope="module")
def demo_sessions(demo_engine):
    return make_sessionmaker(demo_engine)


def scalar(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def test_the_demo_city_holds_councils_districts_categories_and_records(demo_engine):
    e = demo_engine
    assert scalar(e, "SELECT count(*) FROM service_request") >= 9900
    # Los Angeles' own set-up (the demo's second city, Cambridge, has its own)
    la = scalar(e, "SELECT id FROM jurisdiction WHERE slug = 'los-angeles'")
    layers = dict(
        pd.read_sql(
            "SELECT l.name, count(*) AS n FROM zone z JOIN zone_layer l ON l.id = z.layer_id "
            f"WHERE l.is_current AND l.jurisdiction_id = {la} GROUP BY l.name",
            e,
        ).values
    )
    assert set(layers) == {"neighborhood-councils", "crew-districts"}
    assert layers["neighborhood-councils"] == 99
    assert 4 <= layers["crew-districts"] <= 8
    services = pd.read_sql(
        "SELECT s.code, s.group_name, s.sla_hours, count(a.id) AS questions, "
        "count(a.id) FILTER (WHERE a.required) AS required "
        "FROM service s LEFT JOIN service_attribute a ON a.service_id = s.id "
        f"WHERE s.jurisdiction_id = {la} GROUP BY s.id",
        e,
    )
    assert len(services) == 11
    assert services.questions.between(1, 3).all() and services.required.sum() > 0
    assert services.sla_hours.notna().all()
    assert "bulky-items" in set(services.code)
    notice = scalar(
        e, f"SELECT notice FROM service WHERE code = 'bulky-items' AND jurisdiction_id = {la}"
    )
    assert "book" in notice
    datatypes = set(
        pd.read_sql(
            "SELECT a.datatype FROM service_attribute a JOIN service s ON s.id = a.service_id "
            f"WHERE s.jurisdiction_id = {la}",
            e,
        ).datatype
    )
    assert {"number", "singlevaluelist", "multivaluelist", "text", "datetime"} <= datatypes
    values = scalar(
        e, "SELECT \"values\" FROM service_attribute WHERE datatype = 'singlevaluelist' LIMIT 1"
    )
    assert all(set(v) == {"key", "name"} for v in values)
    depts = set(pd.read_sql(f"SELECT code FROM department WHERE jurisdiction_id = {la}", e).code)
    assert {"BOS", "OCB", "BSL", "ITA", "LASAN", "LADWP", "BSS"} <= depts
    # one crew per department and district, coded <dept>-<district>
    crews = scalar(
        e,
        "SELECT count(*) FROM crew c JOIN department d ON d.id = c.department_id "
        f"WHERE c.code LIKE d.code || '-%' AND d.jurisdiction_id = {la}",
    )
    assert crews == len(depts) * layers["crew-districts"]
    assert scalar(e, f"SELECT count(*) FROM address_point WHERE jurisdiction_id = {la}") > 7000
    assert scalar(e, f"SELECT status FROM routing_ruleset WHERE jurisdiction_id = {la}") == (
        "published"
    )


def test_records_keep_their_times_status_channel_and_ids(demo_engine):
    first = pd.read_sql(
        "SELECT * FROM service_request WHERE external_id = '1-1523590121'", demo_engine
    ).iloc[0]
    assert first.requested_at.astimezone(LA) == datetime(2020, 1, 1, 0, 5, tzinfo=LA)
    assert first.closed_at.astimezone(LA) == datetime(2020, 1, 2, 8, 43, tzinfo=LA)
    assert (first.status, first.channel) == ("closed", "phone")
    assert first.address == "16815 W VANOWEN ST, 91406"
    earliest = pd.read_sql(
        "SELECT public_id, requested_at FROM service_request ORDER BY public_id LIMIT 1",
        demo_engine,
    ).iloc[0]
    assert earliest.public_id == "LA-2020-000001"
    assert earliest.requested_at.astimezone(LA) == datetime(2020, 1, 1, 0, 2, tzinfo=LA)
    statuses = dict(
        pd.read_sql("SELECT status, count(*) FROM service_request GROUP BY 1", demo_engine).values
    )
    assert statuses == {
        "closed": 9723,
        "cancelled": 244,
        "new": 16,
        "in_progress": 15,
        "referred": 2,
    }
    channels = set(pd.read_sql("SELECT DISTINCT channel FROM service_request", demo_engine).channel)
    assert {"phone", "mobile", "web", "email", "in_person"} <= channels
    tokens = pd.read_sql("SELECT token FROM service_request", demo_engine).token
    assert tokens.is_unique and tokens.str.len().min() >= 43
    no_place = pd.read_sql(
        "SELECT needs_location, department_id, routing_explanation FROM service_request "
        "WHERE location IS NULL",
        demo_engine,
    )
    assert len(no_place) == 11 and no_place.needs_location.all()
    assert (
        no_place.routing_explanation == "no rule matched: sent to the central dispatch queue"
    ).all()


def test_later_public_ids_continue_after_the_records(demo_sessions):
    with demo_sessions() as s:
        city = s.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == "los-angeles"))
        assert allocate(s, city, 2020) == ["LA-2020-010001"]
        s.rollback()


def test_every_located_request_has_a_department_and_a_named_crew(demo_engine):
    rows = pd.read_sql(
        "SELECT r.external_id, r.department_id, c.name AS crew, r.routing_explanation, "
        "r.due_at, r.requested_at FROM service_request r LEFT JOIN crew c ON c.id = r.crew_id "
        "WHERE r.location IS NOT NULL",
        demo_engine,
    )
    assert len(rows) == 9989
    assert rows.department_id.notna().all() and rows.crew.notna().all()
    assert all(
        f" / {crew}: " in text
        for crew, text in zip(rows.crew, rows.routing_explanation, strict=True)
    )
    assert rows.due_at.notna().all() and (rows.due_at > rows.requested_at).all()
    lake_balboa = rows[rows.external_id == "1-1523590121"].iloc[0]
    assert lake_balboa.routing_explanation == (
        "Bureau of Sanitation / West Valley crew: pin inside zone 'West Valley' (WV) of layer "
        "'crew-districts'; rule 4 'Illegal dumping by crew district'"
    )


def test_council_zone_matches_an_independent_geopandas_join(demo_engine):
    records = pd.read_csv(RECORDS_FILE, dtype=str, keep_default_na=False)
    records = records[(records.latitude != "") & (records.longitude != "")]
    points = gpd.GeoDataFrame(
        records[["request_id"]],
        geometry=gpd.points_from_xy(
            records.longitude.astype(float), records.latitude.astype(float)
        ),
        crs=4326,
    )
    councils = gpd.read_file(BOUNDARY_FILE)[["nc_id", "geometry"]]
    joined = gpd.sjoin(points, councils, how="left", predicate="within")
    expected = joined.groupby("request_id").nc_id.agg(lambda s: set(s.dropna()))

    ours = (
        pd.read_sql(
            "SELECT r.external_id AS request_id, z.code FROM service_request r "
            "LEFT JOIN (request_zone rz JOIN zone z ON z.id = rz.zone_id "
            "           JOIN zone_layer l ON l.id = rz.layer_id AND l.name = 'neighborhood-councils')"
            "  ON rz.request_id = r.id "
            "WHERE r.location IS NOT NULL",
            demo_engine,
        )
        .set_index("request_id")
        .code
    )
    report = scalar(
        demo_engine,
        "SELECT report FROM zone_layer WHERE name = 'neighborhood-councils' AND is_current",
    )
    overlap_pairs = {frozenset((o["a"], o["b"])) for o in report["overlaps"]}

    assert set(ours.index) == set(expected.index)
    single = double = outside = 0
    for request_id, councils_there in expected.items():
        code = ours[request_id]
        code = None if pd.isna(code) else code
        if not councils_there:
            assert code is None, request_id
            outside += 1
        elif len(councils_there) == 1:
            assert code == next(iter(councils_there)), request_id
            single += 1
        else:
            assert code in councils_there, request_id
            for other in councils_there - {code}:
                assert frozenset((code, other)) in overlap_pairs, (request_id, code, other)
            double += 1
    assert single > 9700 and double >= 10 and outside > 50


def test_route_request_agrees_with_route_bulk(demo_sessions):
    with demo_sessions() as s:
        ids = s.scalars(
            sa.select(ServiceRequest.id).where(
                (ServiceRequest.id % 10 == 0)
                | ServiceRequest.location.is_(None)
                | ServiceRequest.routing_explanation.like("%picked the smallest%")
            )
        ).all()
        columns = (
            "department_id",
            "crew_id",
            "zone_id",
            "rule_id",
            "ruleset_version",
            "routing_explanation",
            "due_at",
            "priority",
        )
        stored = {
            r.id: tuple(getattr(r, c) for c in columns)
            for r in s.scalars(sa.select(ServiceRequest).where(ServiceRequest.id.in_(ids)))
        }
        zones_before = s.execute(sa.text("SELECT * FROM request_zone ORDER BY 1, 2")).all()
        for request_id in ids:
            r = s.get(ServiceRequest, request_id)
            decision = route_request(s, r)
            assert not decision.changed, r.external_id
            assert tuple(getattr(r, c) for c in columns) == stored[request_id], r.external_id
        s.flush()
        assert s.execute(sa.text("SELECT * FROM request_zone ORDER BY 1, 2")).all() == zones_before
        s.rollback()
    assert len(ids) > 1000


def test_loading_again_changes_nothing(demo_engine, demo_sessions):
    before = load_demo(demo_sessions)
    again = load_demo(demo_sessions)
    assert again == before and again["created"] is False
    assert again["requests"] == scalar(demo_engine, "SELECT count(*) FROM service_request")


def test_cli_demo_load_twice_then_route(cli, engine):
    first = cli("demo", "load")
    assert first.returncode == 0, first.stderr
    assert "demo city los-angeles: loaded" in first.stdout
    assert "demo city cambridge: loaded" in first.stdout
    assert "requests: 10000" in first.stdout
    assert first.stdout.splitlines()[-1] == (
        "next: civicpin serve (City of Los Angeles at /, City of Cambridge at /c/cambridge/)"
    )
    second = cli("demo", "load")
    assert second.returncode == 0, second.stderr
    assert "demo city los-angeles: already loaded, nothing changed" in second.stdout
    assert "demo city cambridge: already loaded, nothing changed" in second.stdout

    def counts(out: str) -> list[str]:
        return [line for line in out.splitlines() if not line.startswith("demo city ")]

    assert counts(second.stdout) == counts(first.stdout)

    routed = cli("route", "--city", "los-angeles", "--include-closed")
    assert routed.returncode == 0, routed.stderr
    assert routed.stdout.strip() == "routed 10000 requests; 0 moved to another team or zone"
    assert "routing: 10,000/10,000" in routed.stderr
    recent = cli("route", "--city", "los-angeles", "--since", "2020-01-03", "--include-closed")
    assert recent.returncode == 0, recent.stderr
    n = int(recent.stdout.split()[1])
    assert 0 < n < 10000
    # without --include-closed only the open requests are looked at
    open_now = scalar(
        engine, f"SELECT count(*) FROM service_request WHERE {OPEN_LOCATION_PREDICATE}"
    )
    only_open = cli("route", "--city", "los-angeles")
    assert only_open.stdout.strip() == (
        f"routed {open_now} requests (closed requests left as they were); "
        "0 moved to another team or zone"
    )
    assert 0 < open_now < 100
    status = cli("db", "status")
    assert "requests: 10000" in status.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (("route", "--city", "los-angeles", "--since", "3 Jan"), "'3 Jan' is not a date"),
        (("route", "--city", "nowhere"), "no city with slug 'nowhere'"),
        (("route", "--city", "Bad Slug"), "must be lower-case"),
    ],
)
def test_cli_route_refuses_bad_input_in_one_line(cli, args, message):
    res = cli(*args)
    assert res.returncode != 0
    assert res.stderr.count("\n") == 1 and message in res.stderr, res.stderr
    assert res.stderr.startswith("civicpin: error: ")
