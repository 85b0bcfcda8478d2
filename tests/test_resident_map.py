"""The public map's data: filters by category, status and date, and counts per grid cell
(clusters) when a view holds too many requests, from stored counts or counted live."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from spatial.errors import InvalidInput
from spatial.models import Jurisdiction, Service
from tests.support.resident_city import add_request, make_resident_city
from webmap.mapping import MapFilter, map_data, parse_map_filter

WHOLE = (-118.31, 33.99, -118.19, 34.11)
TZ = ZoneInfo("America/Los_Angeles")


@pytest.fixture
def city(sessions):
    """Testville with 120 public requests (3 categories' worth) and 5 private ones."""
    rng = random.Random(3)
    with sessions.begin() as s:
        made = make_resident_city(s)
        town, pothole, graffiti, private = (
            made["city"],
            made["pothole"],
            made["graffiti"],
            made["private"],
        )
        for i in range(120):
            add_request(
                s,
                town,
                pothole if i % 3 else graffiti,
                rng.uniform(-118.30, -118.20),
                rng.uniform(34.00, 34.10),
                status=("new", "in_progress", "closed", "resolved")[i % 4],
                days_ago=i,  # one a day, going back four months
            )
        for _ in range(5):
            add_request(s, town, private, -118.25, 34.05)
        return {k: v.id for k, v in made.items() if hasattr(v, "id")}


def _bbox(values) -> str:
    return ",".join(str(v) for v in values)


def ids_of(client, **params) -> list[str]:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    res = client.get(f"/api/map/requests?bbox={_bbox(WHOLE)}&{query}")
    assert res.status_code == 200, res.get_json()
    body = res.get_json()
    assert body["mode"] == "points"
    return [f["properties"]["public_id"] for f in body["features"]]


def test_filters_by_category_status_and_date(client, sessions, city):
    assert len(ids_of(client)) == 120  # the 5 private ones never show
    assert len(ids_of(client, service="graffiti")) == 40
    assert len(ids_of(client, status="open")) == 60
    assert len(ids_of(client, status="closed")) == 60
    assert len(ids_of(client, status="new,closed")) == 60
    assert len(ids_of(client, service="pothole", status="in_progress")) == 20
    # dates are local days in the city's time zone, both ends included
    today = datetime.now(TZ).date()
    week = ids_of(client, since=(today - timedelta(days=7)).isoformat())
    assert 7 <= len(week) <= 8
    older = ids_of(client, until=(today - timedelta(days=100)).isoformat())
    assert 19 <= len(older) <= 20
    window = ids_of(
        client,
        since=(today - timedelta(days=30)).isoformat(),
        until=(today - timedelta(days=21)).isoformat(),
    )
    assert 9 <= len(window) <= 11


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ("service=abuse", "service"),  # private: as unknown as a made-up code
        ("service=nope", "service"),
        ("service=%3Cscript%3E", "service"),
        ("status=lost", "status"),
        ("since=yesterday", "since"),
        ("since=2024-02-30", "since"),
        ("until=2024-01-01&since=2024-02-01", "since"),
    ],
)
def test_bad_filters_are_400_json_errors(client, city, params, field):
    res = client.get(f"/api/map/requests?bbox={_bbox(WHOLE)}&zoom=12&{params}")
    assert res.status_code == 400
    assert res.get_json()["field"] == field


def test_parse_map_filter_defaults_to_everything():
    assert parse_map_filter({}) == MapFilter()
    assert parse_map_filter({"status": "any"}).statuses is None
    with pytest.raises(InvalidInput):
        parse_map_filter({"status": ","})


def _data(sessions, city_id, **kw):
    with sessions() as s:
        return map_data(s, s.get(Jurisdiction, city_id), WHOLE, **kw)


def _cells(body) -> dict:
    return {
        f["id"]: (f["properties"]["count"], f["properties"]["statuses"]) for f in body["features"]
    }


def test_a_crowded_view_comes_as_counts_per_cell(sessions, city):
    body = _data(sessions, city["city"], zoom=11, cluster_above=50)
    assert body["mode"] == "clusters"
    assert body["total"] == 120
    assert sum(f["properties"]["count"] for f in body["features"]) == 120
    statuses: dict[str, int] = {}
    for f in body["features"]:
        props = f["properties"]
        assert sum(props["statuses"].values()) == props["count"]
        assert props["statuses"][props["status"]] == max(props["statuses"].values())
        for k, v in props["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
        lon, lat = f["geometry"]["coordinates"]
        assert -118.30 <= lon <= -118.20 and 34.00 <= lat <= 34.10
    assert statuses == {"new": 30, "in_progress": 30, "closed": 30, "resolved": 30}
    # the list beside the map: the newest 50 in view, newest first
    newest = [f["properties"]["requested_at"] for f in body["newest"]]
    assert len(newest) == 50 and newest == sorted(newest, reverse=True)
    assert body["cell_degrees"] == 90 / 2**11


def test_stored_and_live_counts_agree(sessions, city):
    stored = _data(sessions, city["city"], zoom=12, cluster_above=10)
    # A date filter that covers everything takes the live path: same cells, same counts.
    live = _data(
        sessions,
        city["city"],
        zoom=12,
        cluster_above=10,
        filters=MapFilter(since=datetime(2000, 1, 1).date()),
    )
    assert stored["mode"] == live["mode"] == "clusters"
    assert _cells(stored) == _cells(live)
    filtered = MapFilter(service_code="graffiti", statuses=("new", "closed"))
    stored = _data(sessions, city["city"], zoom=13, cluster_above=5, filters=filtered)
    live = _data(
        sessions,
        city["city"],
        zoom=13,
        cluster_above=5,
        filters=MapFilter("graffiti", ("new", "closed"), since=datetime(2000, 1, 1).date()),
    )
    assert _cells(stored) == _cells(live)
    assert stored["total"] == 20
    # zoom 17: cells of the finest stored level (128 px there), counted from storage
    street = _data(sessions, city["city"], zoom=17, cluster_above=5)
    assert street["total"] == 120 and street["cell_degrees"] == 90 / 2**16


def test_few_requests_in_view_come_as_single_pins_at_any_zoom(sessions, city):
    body = _data(sessions, city["city"], zoom=9)
    assert body["mode"] == "points" and len(body["features"]) == 120
    body = _data(sessions, city["city"], zoom=9, cluster_above=119)
    assert body["mode"] == "clusters"
    # at house zoom: the newest `limit`, never counts
    body = _data(sessions, city["city"], zoom=18, limit=10)
    assert body["mode"] == "points" and body["truncated"] is True and len(body["features"]) == 10


def test_new_and_changed_requests_show_in_the_counts_at_once(sessions, city):
    with sessions.begin() as s:
        town = s.get(Jurisdiction, city["city"])
        add_request(s, town, s.get(Service, city["graffiti"]), -118.25, 34.05, status="new")
        s.execute(
            sa.text("UPDATE service_request SET status = 'closed' WHERE status = 'in_progress'")
        )
    body = _data(sessions, city["city"], zoom=10, cluster_above=10)
    totals: dict[str, int] = {}
    for f in body["features"]:
        for k, v in f["properties"]["statuses"].items():
            totals[k] = totals.get(k, 0) + v
    assert totals == {"new": 31, "closed": 60, "resolved": 30}


def test_api_switches_to_cells_above_two_thousand(client, sessions, city):
    with sessions.begin() as s:
        s.execute(
            sa.text(
                """
                INSERT INTO service_request (jurisdiction_id, public_id, token, service_id,
                    status, priority, location, channel, anonymous, notify_updates,
                    needs_location, requested_at, updated_at)
                SELECT :j, 'BULK-' || g, md5(g::text) || md5('x' || g), :s, 'new', 'normal',
                    ST_SetSRID(ST_MakePoint(-118.29 + (g % 97) * 0.0008,
                                            34.01 + (g % 89) * 0.0009), 4326),
                    'web', true, false, false, now() - g * interval '1 hour', now()
                FROM generate_series(1, 2000) AS g
                """
            ),
            {"j": city["city"], "s": city["pothole"]},
        )
    res = client.get(f"/api/map/requests?bbox={_bbox(WHOLE)}&zoom=12")
    body = res.get_json()
    assert body["mode"] == "clusters" and body["total"] == 2120
    assert len(res.data) < 60_000  # a few hundred cells, not 2,000 pins
    res = client.get(f"/api/map/requests?bbox={_bbox(WHOLE)}&zoom=12&service=graffiti")
    assert res.get_json()["mode"] == "points"  # only 40 graffiti reports: pins again
    body = client.get(f"/api/map/requests?bbox={_bbox(WHOLE)}&zoom=18").get_json()
    assert body["mode"] == "points" and body["truncated"] is True


def test_map_page_has_labelled_filters_a_list_and_the_report_link(client, city):
    html = client.get("/").get_data(as_text=True)
    for control in ("f-service", "f-status", "f-period", "f-since", "f-until"):
        assert f'<label for="{control}">' in html
    assert '<option value="graffiti">Graffiti</option>' in html
    assert "Abuse report" not in html  # private categories are not map filters
    assert 'id="request-list"' in html and 'aria-labelledby="request-list-count"' in html
    assert 'href="/report?city=testville"' in html
    assert "publicmap.css" in html


def test_cells_sticking_out_of_the_view_do_not_decide_alone(sessions, city):
    """Edge cells hold requests outside the view: the exact count decides near the line."""
    west_half = (-118.31, 33.99, -118.25, 34.11)
    with sessions() as s:
        town = s.get(Jurisdiction, city["city"])
        exact = len(map_data(s, town, west_half, zoom=None)["features"])
        assert 40 < exact < 80
        assert map_data(s, town, west_half, zoom=11, cluster_above=exact)["mode"] == "points"
        body = map_data(s, town, west_half, zoom=11, cluster_above=exact - 1)
        assert body["mode"] == "clusters"
