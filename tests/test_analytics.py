"""Planner analytics on the LA demo, checked against independent pandas/geopandas sums of
the source CSV and council polygons (tests/support/analytics_truth.py)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from geoalchemy2.shape import from_shape
from shapely.geometry import Point

from intake.demo import catalog
from spatial import analytics as an
from spatial.cities import get_city
from spatial.db import make_sessionmaker
from spatial.errors import InvalidInput
from spatial.models import RequestEvent, ServiceRequest, SurveyResponse
from tests.support import analytics_truth as truth

NC_LAYER = "neighborhood-councils"


@pytest.fixture(scope="module")
def la(demo_engine):
    return make_sessionmaker(demo_engine)


def close(a, b) -> bool:
    if a is None or (isinstance(a, float) and np.isnan(a)):
        return b is None or (isinstance(b, float) and np.isnan(b))
    return b is not None and a == pytest.approx(b, rel=1e-12, abs=1e-12)


def test_zone_metrics_equal_an_independent_count_per_council(la):
    expected = truth.by_council()
    with la() as s:
        table = an.zone_metrics(
            s, get_city(s, "los-angeles"), an.Filters(), NC_LAYER, now=truth.NOW
        )
    got = table.areas.set_index("area")
    assert sorted(got.index) == sorted(expected)
    assert len(got) == 99
    for code, exp in expected.items():
        row = got.loc[code]
        for col in ("requests", "closed", "sla_n", "sla_met", "backlog", "overdue"):
            assert int(row[col]) == exp[col], (code, col)
        for col in ("median_hours", "p90_hours", "sla_pct"):
            assert close(row[col], exp[col]), (code, col, row[col], exp[col])
    # The city row is the same requests: those inside some council.
    df = truth.requests()
    inside = df[df["external_id"].isin(truth.council_of_request().index)]
    city = truth.aggregate(inside)
    assert table.city["requests"] == city["requests"] == 9850
    assert close(table.city["median_hours"], city["median_hours"])
    assert close(table.city["sla_pct"], city["sla_pct"])


def test_per_1000_residents_and_satisfaction_per_council(la):
    df = truth.requests()
    council = df["external_id"].map(truth.council_of_request())
    rng = np.random.default_rng(3)
    ratings = {ext: int(r) for ext, r in zip(df["external_id"][::7], rng.integers(1, 6, 1429),
                                             strict=False)}  # fmt: skip
    with la() as s:
        city = get_city(s, "los-angeles")
        layer_id = s.execute(
            sa.text("SELECT id FROM zone_layer WHERE jurisdiction_id = :j AND name = :n"),
            {"j": city.id, "n": NC_LAYER},
        ).scalar()
        # Population on every other council only: the rest have none, so no rate.
        pop = {
            code: 1000 + 37 * int(code)
            for code in sorted(truth.councils()["nc_id"].astype(str), key=int)[::2]
        }
        for code, n in pop.items():
            s.execute(sa.text("UPDATE zone SET population = :p WHERE layer_id = :l AND code = :c"),
                      {"p": n, "l": layer_id, "c": code})  # fmt: skip
        ids = dict(s.execute(sa.text(
            "SELECT external_id, id FROM service_request WHERE jurisdiction_id = :j"),
            {"j": city.id}).all())  # fmt: skip
        s.add_all([SurveyResponse(request_id=ids[e], rating=r) for e, r in ratings.items()])
        s.flush()
        table = an.zone_metrics(s, city, an.Filters(), NC_LAYER, now=truth.NOW)
        layers = an.zone_layers(s, city)
        s.rollback()
    got = table.areas.set_index("area")
    assert (NC_LAYER, "Neighborhood Councils", True) in layers
    rated = pd.DataFrame({"nc": council, "rating": df["external_id"].map(ratings)})
    for code in got.index:
        n = truth.by_council()[code]["requests"]
        if code in pop:
            assert got.loc[code, "per_1000"] == pytest.approx(1000.0 * n / pop[code])
        else:
            assert np.isnan(got.loc[code, "per_1000"])
        mine = rated[(rated["nc"] == code) & rated["rating"].notna()]["rating"]
        assert int(got.loc[code, "ratings"]) == len(mine)
        if len(mine):
            assert got.loc[code, "satisfaction"] == pytest.approx(mine.mean(), rel=1e-12)
    assert table.city["ratings"] == int(rated["rating"][rated["nc"].notna()].notna().sum())


def test_summary_sla_and_times_equal_the_csv(la):
    exp = truth.aggregate(truth.requests())
    with la() as s:
        got = an.summary(s, get_city(s, "los-angeles"), an.Filters(), now=truth.NOW)
    assert got["requests"] == 10_000
    for col in ("closed", "sla_n", "sla_met", "backlog", "overdue"):
        assert got[col] == exp[col], col
    for col in ("median_hours", "p90_hours", "sla_pct"):
        assert close(got[col], exp[col]), col
    assert got["sla_pct"] == pytest.approx(7402 / 9982 * 100)


@pytest.mark.parametrize(
    ("args", "pick"),
    [
        ({"category": "graffiti"}, lambda d: d["category"] == "graffiti"),
        ({"department": "BSL"}, lambda d: d["department"] == "BSL"),
        ({"status": "open"}, lambda d: d["is_open"]),
        ({"status": "cancelled"}, lambda d: d["status"] == "cancelled"),
        ({"group": "Sanitation"}, lambda d: d["category"].isin(
            [s["code"] for s in catalog.SERVICES if s["group"] == "Sanitation"])),
        (
            {"start": "2020-01-02", "end": "2020-01-02"},
            lambda d: d["requested"].dt.tz_convert(truth.TZ).dt.date == date(2020, 1, 2),
        ),
    ],
)  # fmt: skip
def test_filters_pick_the_same_requests_as_pandas(la, args, pick):
    df = truth.requests()
    exp = truth.aggregate(df[pick(df)])
    with la() as s:
        city = get_city(s, "los-angeles")
        f = an.parse_filters(args)
        an.check_filters(s, city, f)
        got = an.summary(s, city, f, now=truth.NOW)
    assert got["requests"] == exp["requests"] > 0
    assert got["sla_met"] == exp["sla_met"]
    assert close(got["median_hours"], exp["median_hours"])


def test_channel_filter_uses_the_recorded_channel(la):
    raw = pd.read_csv(truth.CSV, dtype=str, keep_default_na=False)
    phone = raw["source"].map(lambda v: catalog.CHANNELS.get(v, catalog.DEFAULT_CHANNEL)) == "phone"
    with la() as s:
        got = an.summary(s, get_city(s, "los-angeles"), an.Filters(channel="phone"), now=truth.NOW)
    assert got["requests"] == int(phone.sum()) == 4550


def test_bad_filters_are_one_line_errors(la):
    with pytest.raises(InvalidInput, match="not a date"):
        an.parse_filters({"start": "2020-02-30"})
    with pytest.raises(InvalidInput, match="before the start"):
        an.parse_filters({"start": "2020-02-03", "end": "2020-02-01"})
    with pytest.raises(InvalidInput, match="channel"):
        an.parse_filters({"channel": "pigeon"})
    with la() as s:
        city = get_city(s, "los-angeles")
        with pytest.raises(InvalidInput, match="no category 'potholes'"):
            an.check_filters(s, city, an.Filters(category="potholes"))
        with pytest.raises(InvalidInput, match="no zone layer 'wards'"):
            an.zone_metrics(s, city, an.Filters(), "wards")
        with pytest.raises(InvalidInput, match="cell size"):
            an.grid_metrics(s, city, an.Filters(), 333)


def test_service_gaps_follow_the_stated_method(la):
    exp = truth.council_gaps()

    with la() as s:
        table = an.service_gaps(
            s, get_city(s, "los-angeles"), an.Filters(), layer=NC_LAYER, now=truth.NOW
        )
    got = table.areas.set_index("area")
    assert table.method.startswith("Each area is compared with the city for the same category mix")
    assert "Benjamini-Hochberg" in table.method
    for nc, e in exp.iterrows():
        g = got.loc[nc]
        assert int(g["sla_met"]) == e["o"] and int(g["slow"]) == e["so"], nc
        assert g["sla_exp"] == pytest.approx(e["e"], rel=1e-9)
        assert g["slow_exp"] == pytest.approx(e["es"], rel=1e-9)
        assert close(g["sla_z"], e["z"]) or g["sla_z"] == pytest.approx(e["z"], rel=1e-9), nc
        assert close(g["ttc_z"], e["zs"]) or g["ttc_z"] == pytest.approx(e["zs"], rel=1e-9), nc
        if pd.notna(e.get("q")):
            assert g["sla_q"] == pytest.approx(e["q"], rel=1e-9)
            assert g["sla_gap"] == bool(e["q"] < 0.05 and e["z"] < 0)
        if pd.notna(e.get("qs")):
            assert g["ttc_q"] == pytest.approx(e["qs"], rel=1e-9)
            assert g["ttc_gap"] == bool(e["qs"] < 0.05 and e["zs"] > 0)
    # Councils without requests are listed, untested.
    assert len(got) == 99
    assert got["gap"].sum() > 0  # the demo does have councils slower than their mix


def test_scorecards_per_department_and_crew(la):
    df = truth.requests()
    with la() as s:
        city = get_city(s, "los-angeles")
        table = an.scorecards(s, city, an.Filters(), now=truth.NOW)
        stored = pd.DataFrame(
            s.execute(
                sa.text(
                    "SELECT r.external_id, d.code AS department, c.code AS crew "
                    "FROM service_request r JOIN department d ON d.id = r.department_id "
                    "LEFT JOIN crew c ON c.id = r.crew_id WHERE r.jurisdiction_id = :j"
                ),
                {"j": city.id},
            ).all()
        )
    city_row = table[table["level"] == "city"].iloc[0]
    assert city_row["requests"] == 10_000 and city_row["share_pct"] == 100.0
    depts = table[table["level"] == "department"].set_index("department")
    for code, part in df.groupby("department"):
        exp = truth.aggregate(part)
        row = depts.loc[code]
        assert row["requests"] == exp["requests"], code
        assert row["sla_met"] == exp["sla_met"] and row["sla_n"] == exp["sla_n"], code
        assert close(row["median_hours"], exp["median_hours"]), code
        assert close(row["p90_hours"], exp["p90_hours"]), code
        assert row["share_pct"] == pytest.approx(100.0 * exp["requests"] / 10_000)
    # Crews: the stored assignment, aggregated by pandas.
    merged = df.merge(stored, on="external_id", suffixes=("", "_db"))
    assert (merged["department"] == merged["department_db"]).all()
    crews = table[table["level"] == "crew"].set_index(["department", "crew"])
    for (dcode, ccode), part in merged.groupby(["department", "crew"]):
        exp = truth.aggregate(part)
        row = crews.loc[(dcode, ccode)]
        assert row["requests"] == exp["requests"]
        assert close(row["median_hours"], exp["median_hours"])
        assert close(row["sla_pct"], exp["sla_pct"])
    assert crews["requests"].sum() == 10_000


def test_reopen_rate_first_response_and_satisfaction(la):
    with la() as s:
        city = get_city(s, "los-angeles")
        bos = s.execute(
            sa.text(
                "SELECT r.id, r.requested_at FROM service_request r JOIN department d "
                "ON d.id = r.department_id WHERE d.code = 'BOS' AND r.closed_at IS NOT NULL "
                "AND r.status = 'closed' ORDER BY r.id LIMIT 10"
            )
        ).all()
        ids = [r.id for r in bos]
        # Two ways of reopening: an explicit event, and a status change closed -> open.
        s.add_all([RequestEvent(request_id=i, kind="reopen") for i in ids[:3]])
        s.add_all(
            [RequestEvent(request_id=i, kind="status", from_value="closed", to_value="in_progress")
             for i in ids[3:5]]
        )  # fmt: skip
        s.add(RequestEvent(request_id=ids[5], kind="status", from_value="new", to_value="closed"))
        hours = [2.0, 4.0, 9.0]
        for i, h in zip(ids[:3], hours, strict=True):
            req = s.get(ServiceRequest, i)
            req.first_response_at = req.requested_at + timedelta(hours=h)
        for i, rating in zip(ids, [5, 4, 4, 3, 1, 5, 2, 4, 4, 3], strict=True):
            s.add(SurveyResponse(request_id=i, rating=rating))
        s.flush()
        table = an.scorecards(s, city, an.Filters(), now=truth.NOW)
        s.rollback()
    bos_row = table[(table["level"] == "department") & (table["department"] == "BOS")].iloc[0]
    closed_once = int(truth.requests().query("department == 'BOS'")["closed"].notna().sum())
    assert bos_row["reopened"] == 5
    assert bos_row["ever_closed"] == closed_once
    assert bos_row["reopen_pct"] == pytest.approx(100 * 5 / closed_once)
    assert bos_row["first_response_hours"] == pytest.approx(4.0)
    assert bos_row["responded"] == 3
    assert bos_row["satisfaction"] == pytest.approx(np.mean([5, 4, 4, 3, 1, 5, 2, 4, 4, 3]))
    city_row = table[table["level"] == "city"].iloc[0]
    assert city_row["ratings"] == 10 and city_row["reopened"] == 5
    other = table[(table["level"] == "department") & (table["department"] == "BSL")].iloc[0]
    assert other["reopened"] == 0 and np.isnan(other["satisfaction"])


def test_weekly_trend_counts_local_weeks(la):
    df = truth.requests()
    local = df["requested"].dt.tz_convert(truth.TZ)
    week = (local.dt.normalize() - pd.to_timedelta(local.dt.day_of_week, unit="D")).dt.date
    with la() as s:
        weeks = an.weekly_trend(s, get_city(s, "los-angeles"), an.Filters(), department="BOS")
    bos = df["department"] == "BOS"
    exp = df[bos].groupby(week[bos]).size()
    assert list(weeks["week"]) == sorted(set(week))
    assert weeks.set_index("week")["requests"].to_dict() == exp.to_dict()
    assert weeks["city_requests"].sum() == 10_000


def _add_points(s, city, lon, lat, n, addresses):
    service_id = s.execute(sa.text("SELECT id FROM service WHERE jurisdiction_id = :j LIMIT 1"),
                           {"j": city.id}).scalar()  # fmt: skip
    for k in range(n):
        s.add(
            ServiceRequest(
                jurisdiction_id=city.id,
                public_id=f"TEST-{lon}-{k}",
                token=f"tok-{lon}-{lat}-{k}",
                service_id=service_id,
                location=from_shape(Point(lon, lat), srid=4326),
                address=addresses[k % len(addresses)],
                requested_at=pd.Timestamp("2020-01-02T12:00:00Z").to_pydatetime(),
            )
        )
    s.flush()


def test_many_requests_on_one_exact_point_are_flagged_and_left_out(la):
    with la() as s:
        city = get_city(s, "los-angeles")
        before = an.grid_metrics(s, city, an.Filters(), 1000, now=truth.NOW).city["requests"]
        # A geocoder's default point: 30 requests, 30 different addresses.
        _add_points(s, city, -118.2437, 34.0522, 30, [f"{n} Main St" for n in range(30)])
        # One address reported 30 times is a real place, not a placeholder.
        _add_points(s, city, -118.3, 34.1, 30, ["1 Same St"])
        flagged = an.flagged_points(s, city, an.Filters())
        grid = an.grid_metrics(s, city, an.Filters(), 1000, now=truth.NOW)
        with_flags = an.grid_metrics(s, city, an.Filters(include_flagged=True), 1000, now=truth.NOW)
        points, left_out = an.heat_points(s, city, an.Filters())
        s.rollback()
    assert [(p.lon, p.lat, p.requests, p.addresses) for p in flagged] == [
        (-118.2437, 34.0522, 30, 30)
    ]
    assert grid.city["requests"] == before + 30
    assert with_flags.city["requests"] == before + 60
    assert [p.lat for p in left_out] == [34.0522]
    assert sum(n for _, _, n in points) == before + 30
