"""The console and crew pages on the demo city (10,000 real Los Angeles requests): the
zone filter agrees with the stored zone of every layer, and the pages answer quickly."""

from __future__ import annotations

import csv
import io
import time

import pytest
import sqlalchemy as sa
from conftest import make_settings

from spatial.accounts import create_user
from spatial.db import make_sessionmaker
from spatial.models import Crew, Jurisdiction, Status
from tests.support.dispatch_city import PASSWORD, login


@pytest.fixture(scope="module")
def demo(demo_engine, demo_db_url, tmp_path_factory):
    sessions = make_sessionmaker(demo_engine)
    with sessions.begin() as s:
        city = s.scalar(sa.select(Jurisdiction))
        # The crew with the most open work.
        crew = s.get(
            Crew,
            s.execute(
                sa.text(
                    "SELECT crew_id FROM service_request WHERE crew_id IS NOT NULL "
                    "AND status IN ('new', 'acknowledged', 'in_progress') "
                    "GROUP BY crew_id ORDER BY count(*) DESC, crew_id LIMIT 1"
                )
            ).scalar(),
        )
        d, _ = create_user(
            s,
            email="dispatcher@city.example",
            role="dispatcher",
            city_slug=city.slug,
            password=PASSWORD,
        )
        c, _ = create_user(
            s, email="crew@city.example", role="crew", city_slug=city.slug, password=PASSWORD
        )
        c.crews.append(crew)
        info = {"slug": city.slug, "city_id": city.id, "crew_id": crew.id}
    from webmap.app import create_app

    settings = make_settings(tmp_path_factory.mktemp("demo-dispatch"), demo_db_url)
    app = create_app(settings, engine=demo_engine)
    app.config["TESTING"] = True
    return app, sessions, info


def test_zone_filter_matches_the_stored_zone_in_every_layer(demo):
    app, sessions, info = demo
    client = app.test_client()
    login(client, "dispatcher")
    with sessions() as s:
        # The council with the most open requests.
        zone_id, expected = s.execute(
            sa.text(
                "SELECT rz.zone_id, count(*) AS n FROM service_request r "
                "JOIN request_zone rz ON rz.request_id = r.id "
                "JOIN zone_layer l ON l.id = rz.layer_id AND l.name = 'neighborhood-councils' "
                "WHERE r.status = ANY(:open) GROUP BY rz.zone_id ORDER BY n DESC, rz.zone_id "
                "LIMIT 1"
            ),
            {"open": ["new", "acknowledged", "in_progress"]},
        ).one()
    assert expected > 0
    started = time.perf_counter()
    body = client.get(f"/dispatch/api/queue?zone={zone_id}&limit=500").get_json()
    elapsed = time.perf_counter() - started
    assert body["total"] == expected
    ids = [i["id"] for i in body["items"]]
    with sessions() as s:
        inside = s.execute(
            sa.text(
                "SELECT count(*) FROM request_zone WHERE zone_id = :z AND request_id = ANY(:ids)"
            ),
            {"z": zone_id, "ids": ids},
        ).scalar()
    assert inside == len(ids) == min(expected, 500)
    assert elapsed < 5, f"zone-filtered queue took {elapsed:.2f}s"


def test_console_and_live_poll_on_ten_thousand_requests(demo):
    app, sessions, info = demo
    client = app.test_client()
    login(client, "dispatcher")
    started = time.perf_counter()
    page = client.get("/dispatch")
    first = time.perf_counter() - started
    assert page.status_code == 200
    body = client.get("/dispatch/api/queue").get_json()
    with sessions() as s:
        open_count = s.execute(
            sa.text("SELECT count(*) FROM service_request WHERE status = ANY(:o)"),
            {"o": [st.value for st in (Status.NEW, Status.ACKNOWLEDGED, Status.IN_PROGRESS)]},
        ).scalar()
    assert body["total"] == open_count
    assert len(body["items"]) == min(open_count, 200)
    started = time.perf_counter()
    poll = client.get("/dispatch/api/updates", query_string=body["cursor"])
    polled = time.perf_counter() - started
    assert poll.status_code == 200
    assert poll.get_json()["arrivals"] == []
    print(f"console {first * 1000:.0f} ms, poll {polled * 1000:.0f} ms")
    assert polled < 2, f"a live poll took {polled:.2f}s"


def test_crew_layer_export_on_the_demo_city(demo):
    app, sessions, info = demo
    client = app.test_client()
    login(client, "crew")
    res = client.get("/crew/layer.csv")
    rows = list(csv.DictReader(io.StringIO(res.get_data(as_text=True))))
    with sessions() as s:
        n = s.execute(
            sa.text(
                "SELECT count(*) FROM service_request WHERE crew_id = :c "
                "AND status IN ('new', 'acknowledged', 'in_progress')"
            ),
            {"c": info["crew_id"]},
        ).scalar()
    assert len(rows) == n > 0
    assert all(r["zone:neighborhood-councils"] for r in rows if r["lat"])
    assert all(r["zone:crew-districts"] for r in rows if r["lat"])
