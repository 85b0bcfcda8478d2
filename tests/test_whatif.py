"""What-if equals reality: the numbers it shows for a draft are the changes that publishing
the draft and running ``route_bulk`` then make; and it writes nothing."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import geopandas as gpd
import pytest
import sqlalchemy as sa
from shapely.geometry import box

from routing import rules
from routing.engine import route_bulk
from routing.whatif import what_if
from spatial.models import Jurisdiction, ServiceRequest, now_utc
from spatial.zones import import_layer
from tests.support.city import BOUNDS
from tests.support.dispatch_city import EAST, WEST, csrf_from, login, make_dispatch_city, report

TABLES = ("service_request", "request_zone", "request_event", "routing_ruleset", "zone_layer")


def fingerprint(engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {
            t: conn.execute(
                sa.text(
                    f"SELECT count(*) || ':' || coalesce(md5(string_agg(x::text, '|' "  # noqa: S608
                    f"ORDER BY x::text)), '') FROM {t} x"
                )
            ).scalar()
            for t in TABLES
        }


@pytest.fixture
def city(sessions, settings):
    with sessions.begin() as s:
        info = make_dispatch_city(s)
        points = [
            WEST,
            EAST,
            (34.02, -118.29),
            (34.08, -118.21),
            (34.06, -118.26),
            (34.03, -118.23),
        ]
        for i, where in enumerate(points):
            req = report(s, settings.media_dir, where=where, description=f"pothole {i}")
            if i == 0:  # outside the what-if window
                req.requested_at = now_utc() - timedelta(days=60)
    return info


def _city(s) -> Jurisdiction:
    return s.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == "testville"))


def _state(s) -> dict[int, tuple]:
    return {
        r.id: (
            r.department_id,
            r.crew_id,
            r.zone.layer.name + ":" + r.zone.code if r.zone else None,
        )
        for r in s.scalars(sa.select(ServiceRequest))
    }


def _diff(before: dict, after: dict) -> dict[str, int]:
    changed = [k for k in before if before[k] != after[k]]
    return {
        "changed": len(changed),
        "department": sum(before[k][0] != after[k][0] for k in changed),
        "crew": sum(before[k][1] != after[k][1] for k in changed),
        "zone": sum(before[k][2] != after[k][2] for k in changed),
    }


def test_ruleset_whatif_equals_publish_then_route_bulk(sessions, engine, city):
    with sessions.begin() as s:
        c = _city(s)
        draft = rules.create_draft(s, c)
        rules.add_rule(
            s,
            draft,
            rules.parse_rule(
                s,
                c,
                {
                    "name": "East to parks",
                    "match": "any",
                    "layer_name": "districts",
                    "zone_code": "E",
                    "department": "parks",
                    "crew": "parks-1",
                },
            ),
            position=1,
        )
        draft_id = draft.id
    before_db = fingerprint(engine)
    with sessions() as s:
        result = what_if(s, _city(s), 30, ruleset_id=draft_id)
        s.commit()  # even a commit afterwards must write nothing
    assert fingerprint(engine) == before_db
    assert result.examined == 5
    with sessions.begin() as s:
        c = _city(s)
        before = _state(s)
        rules.publish(s, c, draft_id)
        route_bulk(s, c, since=now_utc() - timedelta(days=30))
        after = _state(s)
    real = _diff(before, after)
    assert real["changed"] == 3  # the three eastern requests in the window
    assert {k: getattr(result, k) for k in real} == real
    assert len(result.geojson["features"]) == 3
    props = result.geojson["features"][0]["properties"]
    assert props["department"] == ["Streets", "Parks"] and props["crew"] == [
        "East crew",
        "Park rangers",
    ]


def test_whatif_and_re_routing_leave_a_closed_request_as_it_was(sessions, engine, city):
    with sessions.begin() as s:
        c = _city(s)
        closed = s.scalar(
            sa.select(ServiceRequest).where(ServiceRequest.description == "pothole 1")
        )  # an eastern request, closed with its crew
        closed.status, closed.closed_at = "resolved", now_utc()
        closed_id, closed_crew, closed_pid = closed.id, closed.crew_id, closed.public_id
        draft = rules.create_draft(s, c)
        rules.add_rule(
            s,
            draft,
            rules.parse_rule(
                s,
                c,
                {
                    "name": "East to parks",
                    "match": "any",
                    "layer_name": "districts",
                    "zone_code": "E",
                    "department": "parks",
                    "crew": "parks-1",
                },
            ),
            position=1,
        )
        draft_id = draft.id
    with sessions() as s:
        result = what_if(s, _city(s), 30, ruleset_id=draft_id)
    assert (result.examined, result.changed) == (4, 2)
    assert closed_pid not in [f["properties"]["public_id"] for f in result.geojson["features"]]
    with sessions.begin() as s:
        c = _city(s)
        rules.publish(s, c, draft_id)
        route_bulk(s, c, since=now_utc() - timedelta(days=30))
        assert s.get(ServiceRequest, closed_id).crew_id == closed_crew


def test_layer_draft_whatif_equals_publishing_the_layer(sessions, engine, city, tmp_path):
    w, s_, e, n = BOUNDS
    path = tmp_path / "districts2.geojson"
    # The boundary moves west: requests between -118.27 and -118.25 go from W to E.
    gpd.GeoDataFrame(
        {"code": ["W", "E"], "name": ["West", "East"]},
        geometry=[box(w, s_, -118.27, n), box(-118.27, s_, e, n)],
        crs=4326,
    ).to_file(path, driver="GeoJSON")
    with sessions.begin() as s:
        c = _city(s)
        layer = import_layer(s, c, path, "districts").layer
        rules.hold_as_draft(s, c, layer)
        layer_id = layer.id
    before_db = fingerprint(engine)
    with sessions() as s:
        result = what_if(s, _city(s), 30, layer_id=layer_id)
    assert fingerprint(engine) == before_db
    with sessions.begin() as s:
        c = _city(s)
        before = _state(s)
        rules.publish_layer(s, c, layer_id)
        route_bulk(s, c, since=now_utc() - timedelta(days=30))
        after = _state(s)
    real = _diff(before, after)
    assert real["changed"] == 1 and real["zone"] == 1 and real["crew"] == 1
    assert {k: getattr(result, k) for k in real} == real


def test_whatif_page_shows_numbers_and_map(client, sessions, city):
    with sessions.begin() as s:
        c = _city(s)
        draft = rules.create_draft(s, c)
        rules.add_rule(
            s,
            draft,
            rules.parse_rule(s, c, {"name": "All to parks", "match": "any", "department": "parks"}),
            position=1,
        )
        draft_id = draft.id
    login(client, "admin")
    csrf_from(client, "/admin/rules")
    html = client.get(f"/admin/whatif?ruleset={draft_id}&days=30").get_data(as_text=True)
    assert re.search(r'id="wi-examined">5<', html)
    assert re.search(r'id="wi-department">5<', html)
    data = json.loads(re.search(r'id="map-data">(.*?)</script>', html, re.S).group(1))
    assert len(data["features"]) == 5
    res = client.get(f"/admin/whatif?ruleset={draft_id}&days=abc")
    assert res.status_code == 400 and 'id="error-days"' in res.get_data(as_text=True)
