"""Planner pages on the LA demo: who may see them, and every number they show against an
independent computation from the source files (tests/support/analytics_truth.py)."""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser

import geopandas as gpd
import pandas as pd
import pytest
from PIL import Image

from spatial.accounts import create_user
from spatial.db import make_sessionmaker
from tests.conftest import make_settings
from tests.support import analytics_truth as truth

CITY = "los-angeles"
NC = "neighborhood-councils"


@pytest.fixture(scope="module")
def planner_app(demo_engine, tmp_path_factory):
    from webmap.app import create_app

    url = demo_engine.url.render_as_string(hide_password=False)
    app = create_app(make_settings(tmp_path_factory.mktemp("planner"), url), engine=demo_engine)
    app.config["TESTING"] = True
    with make_sessionmaker(demo_engine).begin() as s:
        for email, role in (("plan@city.example", "planner"), ("disp@city.example", "dispatcher"),
                            ("boss@city.example", "admin")):  # fmt: skip
            create_user(s, email=email, role=role, password="correct horse 7", city_slug=CITY)
    return app


def login(app, email: str):
    client = app.test_client()
    html = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    res = client.post(
        "/login", data={"email": email, "password": "correct horse 7", "csrf_token": token}
    )
    assert res.status_code == 302
    return client


@pytest.fixture(scope="module")
def planner(planner_app):
    return login(planner_app, "plan@city.example")


class Table(HTMLParser):
    """Rows of ``<tr data-...>`` with their ``<td data-col>`` texts."""

    def __init__(self, table_id: str):
        super().__init__()
        self.table_id, self.inside, self.rows = table_id, False, []
        self.row: dict | None = None
        self.col: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and a.get("id") == self.table_id:
            self.inside = True
        elif self.inside and tag == "tr" and any(k.startswith("data-") for k in a):
            self.row = {k[5:]: v for k, v in a.items() if k.startswith("data-")}
        elif self.inside and tag == "td" and self.row is not None and "data-col" in a:
            self.col = a["data-col"]
            self.row[self.col] = ""

    def handle_endtag(self, tag):
        if tag == "td":
            self.col = None
        elif tag == "tr" and self.row is not None:
            self.rows.append(self.row)
            self.row = None
        elif tag == "table":
            self.inside = False

    def handle_data(self, data):
        if self.col is not None:
            self.row[self.col] += data


def table(html: str, table_id: str) -> list[dict]:
    parser = Table(table_id)
    parser.feed(html)
    return [{k: v.strip() for k, v in r.items()} for r in parser.rows]


def test_only_planners_and_admins_get_in(planner_app):
    anon = planner_app.test_client()
    res = anon.get(f"/planner?city={CITY}")
    assert res.status_code == 302 and "/login" in res.headers["Location"]
    assert anon.get(f"/planner/export/areas.csv?city={CITY}").status_code == 302
    disp = login(planner_app, "disp@city.example")
    for path in ("/planner", "/planner/heatmap/data.json", "/planner/export/scorecards.csv",
                 "/planner/scorecards/trend.png"):  # fmt: skip
        assert disp.get(f"{path}?city={CITY}").status_code == 403, path
    boss = login(planner_app, "boss@city.example")
    assert boss.get(f"/planner?city={CITY}").status_code == 200
    staff = boss.get("/staff").get_data(as_text=True)
    assert 'href="/planner/"' in staff


def test_overview_numbers_and_strict_csp(planner):
    res = planner.get(f"/planner/?city={CITY}")
    assert res.status_code == 200
    csp = res.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    html = res.get_data(as_text=True)
    assert "<script>" not in html and " style=" not in html
    exp = truth.aggregate(truth.requests())
    shown = dict(re.findall(r'data-col="(\w+)">([^<]*)<', html))
    assert shown["requests"] == "10,000" == truth.fmt(exp["requests"])
    assert shown["median_hours"] == truth.fmt(exp["median_hours"], 1)
    assert shown["p90_hours"] == truth.fmt(exp["p90_hours"], 1)
    assert shown["sla_pct"].startswith(truth.fmt(exp["sla_pct"], 1) + " %")
    assert shown["backlog"] == truth.fmt(exp["backlog"]) and shown["overdue"] == truth.fmt(
        exp["overdue"]
    )
    assert "Data quality" not in html  # the demo has no geocoder default points


def test_zone_table_shows_the_independent_numbers_for_every_council(planner):
    res = planner.get(f"/planner/areas?city={CITY}&layer={NC}&metric=sla_pct")
    assert res.status_code == 200
    rows = {r["area"]: r for r in table(res.get_data(as_text=True), "areas-table")}
    expected = truth.by_council()
    assert set(rows) == set(expected) | {"__city__"}
    for code, exp in expected.items():
        row = rows[code]
        assert row["requests"] == truth.fmt(exp["requests"]), code
        assert row["closed"] == truth.fmt(exp["closed"]), code
        assert row["median_hours"] == truth.fmt(exp["median_hours"], 1), code
        assert row["p90_hours"] == truth.fmt(exp["p90_hours"], 1), code
        assert row["sla_pct"] == truth.fmt(exp["sla_pct"], 1), code
        assert row["backlog"] == truth.fmt(exp["backlog"]), code
        assert row["overdue"] == truth.fmt(exp["overdue"]), code
    assert rows["__city__"]["requests"] == "9,850"


def test_zone_view_downloads_as_csv_geojson_and_geopackage(planner, tmp_path):
    args = f"city={CITY}&layer={NC}"
    expected = truth.by_council()
    csv = planner.get(f"/planner/export/areas.csv?{args}")
    assert csv.status_code == 200 and csv.mimetype == "text/csv"
    assert "attachment" in csv.headers["Content-Disposition"]
    df = pd.read_csv(io.BytesIO(csv.data), dtype={"area": str})
    assert len(df) == 99 and df["wkt"].str.startswith("MULTIPOLYGON").all()
    gj = planner.get(f"/planner/export/areas.geojson?{args}")
    assert gj.mimetype == "application/geo+json"
    (tmp_path / "areas.geojson").write_bytes(gj.data)
    gpkg = planner.get(f"/planner/export/areas.gpkg?{args}")
    (tmp_path / "areas.gpkg").write_bytes(gpkg.data)
    for frame in (
        df,
        gpd.read_file(tmp_path / "areas.geojson"),
        gpd.read_file(tmp_path / "areas.gpkg"),
    ):
        frame = frame.set_index(frame["area"].astype(str))
        for code, exp in expected.items():
            assert int(frame.loc[code, "requests"]) == exp["requests"]
            got = frame.loc[code, "median_hours"]
            if exp["median_hours"] is None:
                assert pd.isna(got)
            else:
                assert float(got) == pytest.approx(exp["median_hours"], rel=1e-12)
            if exp["sla_pct"] is not None:
                assert float(frame.loc[code, "sla_pct"]) == pytest.approx(exp["sla_pct"], rel=1e-12)
    geo = gpd.read_file(tmp_path / "areas.gpkg")
    assert geo.crs.to_epsg() == 4326 and (geo.geom_type == "MultiPolygon").all()


def test_choropleth_map_data_and_picture(planner):
    data = planner.get(
        f"/planner/areas/map.geojson?city={CITY}&layer={NC}&metric=median_hours"
    ).json
    assert len(data["features"]) == 99
    from webmap.planner_charts import RAMP

    feats = sorted(data["features"], key=lambda f: f["properties"]["value"])
    shade = [RAMP.index(f["properties"]["fill"]) for f in feats]
    assert shade == sorted(shade) and set(shade) == set(range(5))  # quantile classes
    expected = truth.by_council()
    for f in feats:
        p = f["properties"]
        assert p["label"] == truth.fmt(expected[p["area"]]["median_hours"], 1)
    png = planner.get(f"/planner/areas/map.png?city={CITY}&layer={NC}&metric=median_hours")
    assert png.mimetype == "image/png"
    assert Image.open(io.BytesIO(png.data)).size == (700, 700)


def test_hotspot_page_shows_esda_z_scores(planner, demo_engine):
    res = planner.get(f"/planner/hotspots?city={CITY}&size=1000")
    html = res.get_data(as_text=True)
    assert res.status_code == 200
    assert "six hexagons that share an edge with it, plus itself (Gi*), binary weights" in html
    rows = table(html, "hotspot-table")
    assert rows
    from spatial.cities import get_city

    with make_sessionmaker(demo_engine)() as s:
        grid, (counts,) = truth.hex_grid(s, get_city(s, CITY), 1000, [None])
    z, _ = truth.esda_z(grid, counts)
    for row in rows:
        i, j = map(int, row["area"].split(":"))
        assert row["requests"] == truth.fmt(counts.get((i, j), 0))
        assert row["z"] == truth.fmt(z[(i, j)], 2)
    hot99 = sum(1 for v in z.values() if v >= 2.576)
    assert re.search(rf'data-class="hot 99">{hot99:,}<', html)
    compare = planner.get(
        f"/planner/hotspots?city={CITY}&size=1000&compare=1&start=2020-01-02&end=2020-01-03"
    ).get_data(as_text=True)
    assert "2019-12-31 to 2020-01-01" in compare and "new hot spot" in compare
    feats = planner.get(f"/planner/hotspots/map.geojson?city={CITY}&size=1000").json["features"]
    assert len(feats) == sum(1 for v in z.values() if abs(v) >= 1.645)


def test_gap_page_states_the_method_and_shows_the_tests(planner):
    res = planner.get(f"/planner/gaps?city={CITY}&layer={NC}")
    html = res.get_data(as_text=True)
    assert "indirect standardisation" in html and "Benjamini-Hochberg" in html
    assert "one-sided z-test" in html
    exp = truth.council_gaps()
    rows = {r["area"]: r for r in table(html, "gaps-table")}
    assert set(rows) == {a for a, e in exp.iterrows() if pd.notna(e["z"]) or pd.notna(e["zs"])}
    for area, row in rows.items():
        e = exp.loc[area]
        assert row["sla_pct"] == (truth.fmt(100 * e["o"] / e["n"], 1) if e["n"] else "–")
        assert row["sla_expected_pct"] == (truth.fmt(100 * e["e"] / e["n"], 1) if e["n"] else "–")
        assert row["sla_z"] == truth.fmt(e["z"], 2)
        assert row["sla_q"] == truth.fmt(e["q"], 4)
        assert row["slow_pct"] == truth.fmt(100 * e["so"] / e["nclosed"], 1)
        assert row["ttc_z"] == truth.fmt(e["zs"], 2)
        assert row["ttc_q"] == truth.fmt(e["qs"], 4)
        sla_gap = bool(e["q"] < 0.05 and e["z"] < 0)
        ttc_gap = bool(e["qs"] < 0.05 and e["zs"] > 0)
        want = {(True, True): "SLA and time to close", (True, False): "SLA",
                (False, True): "time to close", (False, False): "no significant gap"}  # fmt: skip
        assert row["verdict"] == want[(sla_gap, ttc_gap)], area
    csv = pd.read_csv(io.BytesIO(planner.get(f"/planner/export/gaps.csv?city={CITY}&layer={NC}").data),
                      dtype={"area": str})  # fmt: skip
    assert len(csv) == 99 and set(csv["verdict"]) >= {"no significant gap", "too few requests"}


def test_scorecards_page_and_trend_charts(planner):
    res = planner.get(f"/planner/scorecards?city={CITY}")
    html = res.get_data(as_text=True)
    rows = table(html, "scorecards-table")
    df = truth.requests()
    depts = {r["department"]: r for r in rows if r["level"] == "department"}
    for code, part in df.groupby("department"):
        exp = truth.aggregate(part)
        row = depts[code]
        assert row["requests"] == truth.fmt(exp["requests"])
        assert row["median_hours"].split()[0] == truth.fmt(exp["median_hours"], 1)
        assert row["sla_pct"].split()[0] == truth.fmt(exp["sla_pct"], 1)
        assert row["share_pct"] == truth.fmt(100 * exp["requests"] / 10_000, 1)
    city = next(r for r in rows if r["level"] == "city")
    assert city["requests"] == "10,000"
    crews = [r for r in rows if r["level"] == "crew"]
    assert sum(int(r["requests"].replace(",", "")) for r in crews) == 10_000
    charts = re.findall(r'<img src="([^"]+trend\.png[^"]*)"', html)
    assert len(charts) == len(rows)
    png = planner.get(charts[1].replace("&amp;", "&"))
    assert png.status_code == 200 and png.mimetype == "image/png"
    assert Image.open(io.BytesIO(png.data)).size == (720, 220)
    gpkg = planner.get(f"/planner/export/scorecards.gpkg?city={CITY}")
    assert gpkg.status_code == 200 and gpkg.data[:16] == b"SQLite format 3\x00"


def test_heatmap_data_per_day_equals_the_csv(planner):
    page = planner.get(f"/planner/heatmap?city={CITY}").get_data(as_text=True)
    assert 'data-mode="heat"' in page and "leaflet-heat.js" in page
    steps = re.search(r'data-steps="([^"]+)"', page).group(1)
    assert "2020-01-01" in steps and "2020-01-03" in steps
    df = truth.requests()
    located = df[df["lat"].notna()]
    days = located["requested"].dt.tz_convert(truth.TZ).dt.date.astype(str).value_counts()
    whole = planner.get(f"/planner/heatmap/data.json?city={CITY}").json
    assert whole["requests"] == len(located) == 9989
    assert whole["max"] == max(p[2] for p in whole["points"])
    for day, n in days.items():
        data = planner.get(f"/planner/heatmap/data.json?city={CITY}&start={day}&end={day}").json
        assert data["requests"] == n, day
    heat = pd.read_csv(io.BytesIO(planner.get(f"/planner/export/heat.csv?city={CITY}").data))
    assert heat["requests"].sum() == 9989 and {"lat", "lon"} <= set(heat.columns)


def test_bad_input_is_a_clear_400(planner):
    res = planner.get(f"/planner/areas?city={CITY}&start=2020-02-30")
    assert res.status_code == 400
    assert "start &#39;2020-02-30&#39; is not a date YYYY-MM-DD" in res.get_data(as_text=True)
    res = planner.get(f"/planner/areas?city={CITY}&layer=wards")
    assert res.status_code == 400 and "no zone layer" in res.get_data(as_text=True)
    res = planner.get(f"/planner/heatmap/data.json?city={CITY}&department=NOPE")
    assert res.status_code == 400 and "no department 'NOPE'" in res.json["error"]
    assert planner.get(f"/planner/export/areas.xlsx?city={CITY}").status_code == 404
    assert planner.get(f"/planner/hotspots?city={CITY}&compare=1").status_code == 400


def test_flagged_points_are_listed_not_drawn(planner, demo_engine):
    """A geocoder's default point shows up as a data-quality flag and stays out of the map."""
    import sqlalchemy as sa

    with make_sessionmaker(demo_engine).begin() as s:
        s.execute(
            sa.text(
                "INSERT INTO service_request (jurisdiction_id, public_id, token, service_id, "
                "status, priority, location, address, channel, anonymous, notify_updates, "
                "requested_at, updated_at, needs_location) "
                "SELECT j.id, 'FLAG-' || n, 'flagtok-' || n, "
                "(SELECT id FROM service WHERE jurisdiction_id = j.id ORDER BY id LIMIT 1), "
                "'new', 'normal', ST_SetSRID(ST_MakePoint(-118.2437, 34.0522), 4326), "
                "n || ' Main St', 'web', false, false, "
                "timestamptz '2020-01-02 12:00+00', timestamptz '2020-01-02 12:00+00', false "
                "FROM jurisdiction j, generate_series(1, 40) n WHERE j.slug = :slug"
            ),
            {"slug": CITY},
        )
    try:
        html = planner.get(f"/planner/?city={CITY}").get_data(as_text=True)
        assert "Data quality: 1 flagged point" in html
        flags = table(html, "flagged-table")
        assert [r["requests"] for r in flags] == ["40"]
        data = planner.get(f"/planner/heatmap/data.json?city={CITY}").json
        assert data["requests"] == 9989 and data["flagged"][0]["requests"] == 40
        both = planner.get(f"/planner/heatmap/data.json?city={CITY}&include_flagged=1").json
        assert both["requests"] == 9989 + 40
        exported = pd.read_csv(
            io.BytesIO(planner.get(f"/planner/export/flags.csv?city={CITY}").data)
        )
        assert exported[["lat", "lon", "requests", "addresses"]].values.tolist() == [
            [34.0522, -118.2437, 40, 40]
        ]
    finally:
        with make_sessionmaker(demo_engine).begin() as s:
            s.execute(sa.text("DELETE FROM service_request WHERE public_id LIKE 'FLAG-%'"))
