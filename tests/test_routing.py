"""Routing: SLA arithmetic (pure), and rules, zones and decisions on a small city of squares."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import geopandas as gpd
import pytest
import sqlalchemy as sa
from geoalchemy2.shape import from_shape
from shapely.geometry import Point, box

from routing.engine import NO_RULE, REROUTED, reroute, route_bulk, route_request
from routing.sla import business_intervals, due_at, validate_calendar
from spatial.db import session_scope
from spatial.errors import InvalidInput
from spatial.models import (
    Crew,
    Department,
    Jurisdiction,
    RequestEvent,
    RoutingRule,
    RuleSet,
    Service,
    ServiceRequest,
    Zone,
)
from spatial.zones import create_city, import_layer

LA = ZoneInfo("America/Los_Angeles")
WEEKDAYS = {d: ["08:00", "17:00"] for d in ("mon", "tue", "wed", "thu", "fri")}


# --------------------------------------------------------------------------- SLA (no DB)


def test_plain_hours_are_elapsed_hours_across_spring_forward():
    # 2026-03-08 02:00 PST -> 03:00 PDT: 24 elapsed hours end at 13:00 on the wall clock.
    t = datetime(2026, 3, 7, 12, 0, tzinfo=LA)
    due = due_at(t, 24)
    assert due == datetime(2026, 3, 8, 13, 0, tzinfo=LA)
    assert due - t.astimezone(UTC) == timedelta(hours=24)
    assert due_at(t, None) is None
    assert due_at(t, 1.5) == datetime(2026, 3, 7, 13, 30, tzinfo=LA)


def test_business_hours_skip_the_weekend_and_keep_wall_clock_across_dst():
    cal = {"hours": WEEKDAYS}
    friday = datetime(2026, 3, 6, 16, 0, tzinfo=LA)  # PST; Monday is PDT
    due = due_at(friday, 4, cal, "America/Los_Angeles")
    # 1 hour on Friday, 3 on Monday from 08:00 local -> 11:00 PDT
    assert due == datetime(2026, 3, 9, 11, 0, tzinfo=LA)
    assert due.utcoffset() == timedelta(0)
    assert due.astimezone(LA).utcoffset() == timedelta(hours=-7)


def test_business_hours_skip_a_holiday():
    cal = {"hours": WEEKDAYS, "holidays": ["2026-12-25"]}
    thursday = datetime(2026, 12, 24, 15, 0, tzinfo=LA)
    # 2 h Thursday, Friday holiday, weekend closed, 6 h Monday from 08:00
    assert due_at(thursday, 8, cal, "America/Los_Angeles") == datetime(
        2026, 12, 28, 14, 0, tzinfo=LA
    )
    without_holiday = due_at(thursday, 8, {"hours": WEEKDAYS}, "America/Los_Angeles")
    assert without_holiday == datetime(2026, 12, 25, 14, 0, tzinfo=LA)


def test_business_clock_starts_at_next_opening_and_can_end_at_closing():
    cal = {"hours": WEEKDAYS}
    saturday = datetime(2026, 6, 6, 10, 0, tzinfo=LA)
    assert due_at(saturday, 2, cal, "America/Los_Angeles") == datetime(2026, 6, 8, 10, 0, tzinfo=LA)
    thursday_open = datetime(2026, 6, 4, 8, 0, tzinfo=LA)
    assert due_at(thursday_open, 9, cal, "America/Los_Angeles") == datetime(
        2026, 6, 4, 17, 0, tzinfo=LA
    )
    late = datetime(2026, 6, 4, 20, 0, tzinfo=LA)
    assert due_at(late, 1, cal, "America/Los_Angeles") == datetime(2026, 6, 5, 9, 0, tzinfo=LA)


def test_round_the_clock_day_on_the_dst_change_is_23_hours():
    cal = {"hours": {"sun": ["00:00", "24:00"]}}
    spans = list(business_intervals(cal, "America/Los_Angeles", date(2026, 3, 8)))[:2]
    assert spans[0][1] - spans[0][0] == timedelta(hours=23)
    assert spans[1][1] - spans[1][0] == timedelta(hours=24)
    start = datetime(2026, 3, 8, 0, 0, tzinfo=LA)
    assert due_at(start, 23, cal, "America/Los_Angeles") == datetime(2026, 3, 9, 0, 0, tzinfo=LA)


@pytest.mark.parametrize(
    "calendar, words",
    [
        ([], "JSON object"),
        ({"hours": {}}, "at least one day"),
        ({"hours": {"monday": ["08:00", "17:00"]}}, "unknown day 'monday'"),
        ({"hours": {"mon": ["8am", "17:00"]}}, "'HH:MM'"),
        ({"hours": {"mon": ["17:00", "08:00"]}}, "closing time must be after"),
        ({"hours": {"mon": ["08:00", "24:30"]}}, "'HH:MM'"),
        ({"hours": WEEKDAYS, "holidays": ["25/12/2026"]}, "not a date"),
        ({"hours": WEEKDAYS, "holydays": []}, "unknown keys holydays"),
    ],
)
def test_bad_calendars_are_refused_with_a_reason(calendar, words):
    with pytest.raises(InvalidInput, match=words):
        validate_calendar(calendar)


def test_naive_request_time_is_refused():
    with pytest.raises(ValueError):
        due_at(datetime(2026, 1, 1, 9, 0), 4)


# --------------------------------------------------------------------------- a city of squares

X0, Y0, STEP = -118.30, 34.00, 0.01


def square(i: float, j: float = 1.0):
    """A box spanning ``i``..``j`` steps east of X0, one step tall."""
    return box(X0 + i * STEP, Y0, X0 + j * STEP, Y0 + STEP)


def pin(i: float) -> Point:
    return Point(X0 + i * STEP, Y0 + STEP / 2)


def write_layer(tmp_path, name: str, rows: list[dict]):
    path = tmp_path / f"{name}.geojson"
    gpd.GeoDataFrame(rows, geometry="geometry", crs=4326).to_file(path, driver="GeoJSON")
    return path


@pytest.fixture
def city(sessions, tmp_path):
    """Districts A|B|C side by side; wards W1 (0-2) and W2 (1.5-3) overlap; twin squares."""
    districts = write_layer(
        tmp_path,
        "districts",
        [
            {"code": "A", "name": "Zone A", "geometry": square(0, 1)},
            {"code": "B", "name": "Zone B", "geometry": square(1, 2)},
            {"code": "C", "name": "Zone C", "geometry": square(2, 3)},
        ],
    )
    wards = write_layer(
        tmp_path,
        "wards",
        [
            {"code": "W1", "name": "Ward 1", "geometry": square(0, 2)},
            {"code": "W2", "name": "Ward 2", "geometry": square(1.5, 3)},
        ],
    )
    twins = write_layer(
        tmp_path,
        "twins",
        [
            {"code": "b", "name": "Twin b", "geometry": square(0, 3)},
            {"code": "a", "name": "Twin a", "geometry": square(0, 3)},
        ],
    )
    with session_scope(sessions) as s:
        c = create_city(s, "squares", "Squares", "America/Los_Angeles", districts, prefix="SQ")
        import_layer(s, c, districts, "districts", code_field="code", name_field="name")
        import_layer(s, c, wards, "wards", code_field="code", name_field="name")
        import_layer(s, c, twins, "twins", code_field="code", name_field="name")
        san = Department(jurisdiction_id=c.id, code="SAN", name="Sanitation")
        streets = Department(jurisdiction_id=c.id, code="STR", name="Streets")
        s.add_all([san, streets])
        s.flush()
        crews = {
            code: Crew(department_id=dept.id, code=code, name=name)
            for code, dept, name in [
                ("SAN-A", san, "A crew"),
                ("SAN-B", san, "B crew"),
                ("SAN-C", san, "C crew"),
                ("YARD", san, "Yard crew"),
                ("STR-1", streets, "Pothole crew"),
            ]
        }
        s.add_all(crews.values())
        s.flush()
        zone_c = s.scalar(sa.select(Zone).where(Zone.code == "C"))
        zone_c.crew_id = crews["YARD"].id  # owner crew beats the naming convention
        services = {
            code: Service(
                jurisdiction_id=c.id,
                code=code,
                name=name,
                group=group,
                sla_hours=sla,
                default_department_id=default,
            )
            for code, name, group, sla, default in [
                ("pothole", "Pothole", "Streets", 72, None),
                ("bulky", "Bulky items", "Sanitation", 120, None),
                ("graffiti", "Graffiti", "Sanitation", None, None),
                ("other", "Other", None, 10, san.id),
                ("noise", "Noise", None, None, None),
            ]
        }
        s.add_all(services.values())
        s.flush()
        rs = RuleSet(
            jurisdiction_id=c.id, version=1, status="published", published_at=datetime.now(UTC)
        )
        s.add(rs)
        s.flush()
        s.add_all(
            [
                RoutingRule(
                    ruleset_id=rs.id,
                    position=1,
                    name="Potholes anywhere",
                    service_id=services["pothole"].id,
                    department_id=streets.id,
                    crew_id=crews["STR-1"].id,
                    priority="high",
                    sla_hours=48,
                ),
                RoutingRule(
                    ruleset_id=rs.id,
                    position=2,
                    name="Sanitation by district",
                    service_group="Sanitation",
                    layer_name="districts",
                    department_id=san.id,
                    crew_from_zone=True,
                ),
                RoutingRule(
                    ruleset_id=rs.id,
                    position=3,
                    name="Other in ward 2",
                    service_id=services["other"].id,
                    layer_name="wards",
                    zone_code="W2",
                    department_id=streets.id,
                    priority="low",
                ),
                RoutingRule(
                    ruleset_id=rs.id,
                    position=4,
                    name="Anything in zone A",
                    layer_name="districts",
                    zone_code="A",
                    department_id=streets.id,
                ),
                RoutingRule(
                    ruleset_id=rs.id,
                    position=5,
                    name="Inactive catch-all",
                    department_id=streets.id,
                    active=False,
                ),
            ]
        )
        city_id = c.id
    return {
        "id": city_id,
        "services": {k: v.id for k, v in services.items()},
        "crews": {k: v.id for k, v in crews.items()},
    }


_seq = iter(range(1, 10**6))


def new_request(s, city, service: str, where: Point | None, at: datetime | None = None):
    n = next(_seq)
    r = ServiceRequest(
        jurisdiction_id=city["id"],
        public_id=f"SQ-2026-{n:06d}",
        token=f"token-{n}",
        service_id=city["services"][service],
        location=from_shape(where, srid=4326) if where is not None else None,
        requested_at=at or datetime(2026, 6, 5, 16, 30, tzinfo=LA),
    )
    s.add(r)
    s.flush()
    return r


def zone_codes(s, request_id: int) -> dict[str, str]:
    rows = s.execute(
        sa.text(
            "SELECT l.name, z.code FROM request_zone rz JOIN zone_layer l ON l.id = rz.layer_id "
            "JOIN zone z ON z.id = rz.zone_id WHERE rz.request_id = :id"
        ),
        {"id": request_id},
    )
    return dict(rows.all())


def names(s, r: ServiceRequest) -> tuple[str | None, str | None, str | None]:
    dept = s.get(Department, r.department_id) if r.department_id else None
    crew = s.get(Crew, r.crew_id) if r.crew_id else None
    zone = s.get(Zone, r.zone_id) if r.zone_id else None
    return (dept and dept.name, crew and crew.name, zone and zone.code)


def test_rule_by_category_applies_anywhere_even_without_a_location(sessions, city):
    with session_scope(sessions) as s:
        for where in (pin(0.5), Point(-117.0, 35.0), None):
            r = new_request(s, city, "pothole", where)
            d = route_request(s, r)
            assert names(s, r) == ("Streets", "Pothole crew", None)
            assert (
                d.explanation == "Streets / Pothole crew: any location; rule 1 'Potholes anywhere'"
            )
            assert r.priority == "high" and r.ruleset_version == 1
            # the rule's SLA (48 h) overrides the category's (72 h)
            assert r.due_at == r.requested_at + timedelta(hours=48)


def test_rule_by_group_with_crew_from_the_zone(sessions, city):
    with session_scope(sessions) as s:
        r = new_request(s, city, "bulky", pin(1.5))
        d = route_request(s, r)
        assert names(s, r) == ("Sanitation", "B crew", "B")
        assert d.explanation == (
            "Sanitation / B crew: pin inside zone 'Zone B' (B) of layer 'districts'; "
            "rule 2 'Sanitation by district'"
        )
        assert r.due_at == r.requested_at + timedelta(hours=120)  # the category's SLA
        g = new_request(s, city, "graffiti", pin(0.5))
        route_request(s, g)
        assert names(s, g) == ("Sanitation", "A crew", "A")
        assert g.due_at is None  # neither rule nor category has an SLA


def test_routing_sees_a_committed_change_to_crews_at_once(sessions, city):
    """Routing keeps rules, departments and crews in memory; any committed change to
    departments or crews is seen by the next request, even one that keeps their number
    and highest id (a renamed code, here)."""
    with session_scope(sessions) as s:
        r = new_request(s, city, "bulky", pin(1.5))
        route_request(s, r)
        assert names(s, r) == ("Sanitation", "B crew", "B")
    with session_scope(sessions) as s:
        s.scalar(sa.select(Crew).where(Crew.code == "SAN-B")).code = "SAN-OLD-B"
    with session_scope(sessions) as s:
        r = new_request(s, city, "bulky", pin(1.5))
        route_request(s, r)
        assert names(s, r) == ("Sanitation", None, "B")  # no crew named after zone B now
    with session_scope(sessions) as s:
        s.scalar(sa.select(Crew).where(Crew.code == "SAN-OLD-B")).code = "SAN-B"
    with session_scope(sessions) as s:
        r = new_request(s, city, "bulky", pin(1.5))
        route_request(s, r)
        assert names(s, r) == ("Sanitation", "B crew", "B")


def test_zone_owner_crew_beats_the_naming_convention(sessions, city):
    with session_scope(sessions) as s:
        r = new_request(s, city, "bulky", pin(2.5))
        route_request(s, r)
        assert names(s, r) == ("Sanitation", "Yard crew", "C")
        assert r.routing_explanation.startswith("Sanitation / Yard crew: pin inside zone 'Zone C'")


def test_rule_for_any_category_in_one_zone(sessions, city):
    with session_scope(sessions) as s:
        r = new_request(s, city, "noise", pin(0.5))
        route_request(s, r)
        assert names(s, r) == ("Streets", None, "A")
        assert r.routing_explanation == (
            "Streets: pin inside zone 'Zone A' (A) of layer 'districts'; rule 4 'Anything in zone A'"
        )
        assert r.rule_id is not None


def test_no_rule_goes_to_the_central_queue_or_the_default_department(sessions, city):
    with session_scope(sessions) as s:
        outside = new_request(s, city, "noise", Point(-117.0, 35.0))
        d = route_request(s, outside)
        assert (d.department_id, d.crew_id, d.zone_id, d.rule_id) == (None, None, None, None)
        assert outside.routing_explanation == NO_RULE == d.explanation
        assert zone_codes(s, outside.id) == {}
        assert outside.ruleset_version == 1
        # 'other' in zone B but only in ward W1: no rule, the category's default department
        other = new_request(s, city, "other", pin(1.2))
        route_request(s, other)
        assert names(s, other) == ("Sanitation", None, None)
        assert other.routing_explanation == NO_RULE
        assert other.due_at == other.requested_at + timedelta(hours=10)
        nowhere = new_request(s, city, "bulky", None)
        route_request(s, nowhere)
        assert names(s, nowhere) == (None, None, None)
        assert nowhere.routing_explanation == NO_RULE


def test_overlapping_zones_pick_the_smallest_then_the_lowest_code(sessions, city):
    with session_scope(sessions) as s:
        r = new_request(s, city, "other", pin(1.75))  # inside W1 (2 steps) and W2 (1.5)
        d = route_request(s, r)
        assert zone_codes(s, r.id) == {"districts": "B", "wards": "W2", "twins": "a"}
        assert names(s, r) == ("Streets", None, "W2")
        assert r.priority == "low"
        assert d.explanation == (
            "Streets: pin inside zone 'Ward 2' (W2) of layer 'wards' "
            "(also inside 'Ward 1' (W1); picked the smallest); rule 3 'Other in ward 2'"
        )
        assert d.zones.keys() == {"districts", "wards", "twins"}


def test_re_route_writes_a_public_event_only_when_something_changed(sessions, city):
    with session_scope(sessions) as s:
        r = new_request(s, city, "bulky", pin(1.5))
        first = route_request(s, r)
        assert not first.changed
        route_request(s, r)  # same result: no event
        assert s.scalar(sa.select(sa.func.count()).select_from(RequestEvent)) == 0
        before = r.routing_explanation
        r.location = from_shape(pin(0.5), srid=4326)  # the pin moves to zone A
        moved = route_request(s, r)
        assert moved.changed
        assert names(s, r) == ("Sanitation", "A crew", "A")
        events = s.scalars(sa.select(RequestEvent).where(RequestEvent.request_id == r.id)).all()
        assert [(e.kind, e.public, e.from_value, e.to_value) for e in events] == [
            ("routed", True, before, r.routing_explanation)
        ]
        assert r.crew.name == "A crew"  # relationships follow the new routing
        assert zone_codes(s, r.id)["districts"] == "A"


ROUTED_COLUMNS = (
    "id, department_id, crew_id, zone_id, rule_id, ruleset_version, routing_explanation, "
    "due_at, priority"
)


def snapshot(s, city_id: int):
    rows = s.execute(
        sa.text(
            f"SELECT {ROUTED_COLUMNS} FROM service_request WHERE jurisdiction_id = :j ORDER BY id"
        ),
        {"j": city_id},
    ).all()
    zones = s.execute(
        sa.text("SELECT request_id, layer_id, zone_id FROM request_zone ORDER BY 1, 2")
    ).all()
    return [tuple(r) for r in rows], [tuple(z) for z in zones]


@pytest.mark.parametrize("calendar", [None, {"hours": WEEKDAYS, "holidays": ["2026-06-19"]}])
def test_route_bulk_equals_route_request_row_by_row(sessions, city, calendar):
    spots = [None, Point(-117.0, 35.0), *(pin(i / 4 + 0.125) for i in range(12))]
    services = list(city["services"])
    times = [datetime(2026, 6, 17, 7, 0, tzinfo=LA) + timedelta(hours=7 * k) for k in range(11)]
    with session_scope(sessions) as s:
        s.get(Jurisdiction, city["id"]).business_calendar = calendar
        reqs = [
            new_request(s, city, services[k % len(services)], spot, times[k % len(times)])
            for k, spot in enumerate(spots * 3)
        ]
        for r in reqs:
            route_request(s, r)
        expected = snapshot(s, city["id"])
        # wipe the stored decisions so route_bulk has to recompute all of them
        s.execute(
            sa.text(
                "UPDATE service_request SET department_id = NULL, crew_id = NULL, "
                "zone_id = NULL, rule_id = NULL, routing_explanation = NULL, "
                "due_at = NULL, routed_at = NULL, priority = 'normal'"
            )
        )
        s.execute(sa.text("DELETE FROM request_zone"))
        # route_request kept 'normal' as the priority of requests no rule matched
        calls = []
        n = route_bulk(
            s, s.get(Jurisdiction, city["id"]), progress=lambda d, t: calls.append((d, t))
        )
        assert n == len(reqs)
        assert calls[-1] == (len(reqs), len(reqs))
        got = snapshot(s, city["id"])
        assert got[1] == expected[1]
        for want, have in zip(expected[0], got[0], strict=True):
            assert have == want
        assert any(row[6] == NO_RULE for row in got[0])
        assert any("picked the smallest" in (row[6] or "") for row in got[0])
        if calendar:
            assert any(row[7] is not None and row[7].astimezone(LA).hour >= 8 for row in got[0])


def test_route_bulk_writes_events_for_changes_and_honours_since(sessions, city):
    with session_scope(sessions) as s:
        old = new_request(s, city, "bulky", pin(1.5), datetime(2026, 1, 10, 9, 0, tzinfo=LA))
        new = new_request(s, city, "bulky", pin(1.5), datetime(2026, 6, 10, 9, 0, tzinfo=LA))
        c = s.get(Jurisdiction, city["id"])
        assert route_bulk(s, c) == 2
        assert s.scalar(sa.select(sa.func.count()).select_from(RequestEvent)) == 0
        # the B crew district now belongs to the yard crew: a re-route changes the crew
        zone_b = s.scalar(sa.select(Zone).where(Zone.code == "B"))
        zone_b.crew_id = city["crews"]["YARD"]
        s.flush()
        assert route_bulk(s, c, since=date(2026, 6, 1)) == 1
        events = s.scalars(sa.select(RequestEvent)).all()
        assert [(e.request_id, e.kind, e.public) for e in events] == [(new.id, REROUTED, False)]
        assert "Yard crew" in events[0].to_value and "B crew" in events[0].from_value
        assert events[0].actor_label == "bulk re-route"
        assert route_bulk(s, c, only_unrouted=True) == 0
        s.refresh(old)
        s.refresh(new)
        assert (old.crew_id, new.crew_id) == (city["crews"]["SAN-B"], city["crews"]["YARD"])


def decisions(s, city_id: int) -> dict[int, tuple]:
    return {
        r.id: (r.department_id, r.crew_id, r.zone_id)
        for r in s.scalars(
            sa.select(ServiceRequest).where(ServiceRequest.jurisdiction_id == city_id)
        )
    }


def rerouted_events(s) -> list[RequestEvent]:
    return s.scalars(
        sa.select(RequestEvent).where(RequestEvent.kind == REROUTED).order_by(RequestEvent.id)
    ).all()


def test_bulk_re_route_leaves_closed_requests_and_writes_one_event_per_move(sessions, city):
    with session_scope(sessions) as s:
        c = s.get(Jurisdiction, city["id"])
        open_b = [new_request(s, city, "bulky", pin(1.5)) for _ in range(3)]
        open_a = new_request(s, city, "bulky", pin(0.5))
        closed_b = new_request(s, city, "bulky", pin(1.5))
        closed_b.status = "resolved"
        closed_b.closed_at = datetime(2026, 6, 6, 9, 0, tzinfo=LA)
        # never routed yet: a first routing is no rewrite, closed or not
        assert reroute(s, c).routed == 5
        assert rerouted_events(s) == []
        zone_b = s.scalar(sa.select(Zone).where(Zone.code == "B"))
        zone_b.crew_id = city["crews"]["YARD"]
        s.flush()
        before = decisions(s, c.id)
        result = reroute(s, c, by="cli:tester")
        after = decisions(s, c.id)
        moved = {rid for rid in before if before[rid] != after[rid]}
        assert moved == {r.id for r in open_b}
        assert (result.routed, result.moved) == (4, 3)
        events = rerouted_events(s)
        assert sorted(e.request_id for e in events) == sorted(moved)
        assert {(e.public, e.actor_label) for e in events} == {
            (False, "bulk re-route by cli:tester")
        }
        assert all("B crew" in e.from_value and "Yard crew" in e.to_value for e in events)
        s.refresh(closed_b)
        assert closed_b.crew_id == city["crews"]["SAN-B"]  # closed with B crew, kept
        assert after[open_a.id] == before[open_a.id]
        # asked for, closed requests are re-routed too, each with its event
        result = reroute(s, c, include_closed=True, by="cli:tester")
        assert (result.routed, result.moved) == (5, 1)
        s.refresh(closed_b)
        assert closed_b.crew_id == city["crews"]["YARD"]
        assert [e.request_id for e in rerouted_events(s)][3:] == [closed_b.id]
        # nothing changes on a second run: no event
        assert reroute(s, c, include_closed=True).moved == 0
        assert len(rerouted_events(s)) == 4


def test_cli_route_leaves_closed_requests_unless_include_closed(sessions, city, cli):
    from spatial.models_ops import AdminEvent

    with session_scope(sessions) as s:
        c = s.get(Jurisdiction, city["id"])
        opened = new_request(s, city, "bulky", pin(1.5))
        closed = new_request(s, city, "bulky", pin(1.5))
        closed.status = "closed"
        route_bulk(s, c)
        s.scalar(sa.select(Zone).where(Zone.code == "B")).crew_id = city["crews"]["YARD"]
        ids = opened.id, closed.id
    opened_id, closed_id = ids
    res = cli("route", "--city", "squares")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == (
        "routed 1 requests (closed requests left as they were); 1 moved to another team or zone"
    )
    with session_scope(sessions) as s:
        assert s.get(ServiceRequest, opened_id).crew_id == city["crews"]["YARD"]
        assert s.get(ServiceRequest, closed_id).crew_id == city["crews"]["SAN-B"]
        (event,) = rerouted_events(s)
        assert event.actor_label.startswith("bulk re-route by cli:")
    res = cli("route", "--city", "squares", "--include-closed")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "routed 2 requests; 1 moved to another team or zone"
    with session_scope(sessions) as s:
        assert s.get(ServiceRequest, closed_id).crew_id == city["crews"]["YARD"]
        assert [e.request_id for e in rerouted_events(s)] == [opened_id, closed_id]
        runs = s.scalars(sa.select(AdminEvent).order_by(AdminEvent.id)).all()
        assert [(a.action, a.jurisdiction_id) for a in runs] == [
            ("requests.reroute", city["id"])
        ] * 2
        assert [(a.what["include_closed"], a.what["moved"]) for a in runs] == [
            (False, 1),
            (True, 1),
        ]
        assert runs[0].actor_label.startswith("cli:")


# --------------------------------------------------------------------------- zone pieces


def piece_stats(s, zone_id: int) -> tuple[int, float, float]:
    """(pieces, their total area, the zone's area) in square degrees."""
    return s.execute(
        sa.text(
            "SELECT count(p.id), coalesce(sum(ST_Area(p.geom)), 0), ST_Area(z.geom) "
            "FROM zone z LEFT JOIN zone_piece p ON p.zone_id = z.id WHERE z.id = :z "
            "GROUP BY z.geom"
        ),
        {"z": zone_id},
    ).one()


def test_zone_pieces_follow_every_write_to_a_zone(sessions, city, tmp_path):
    # A disc of 400 vertices is cut into pieces of at most 64; they tile it exactly.
    disc = pin(1.5).buffer(0.004, quad_segs=100)
    path = write_layer(tmp_path, "discs", [{"code": "D", "name": "Disc", "geometry": disc}])
    with session_scope(sessions) as s:
        c = s.get(Jurisdiction, city["id"])
        import_layer(s, c, path, "discs", code_field="code", name_field="name")
        zone = s.scalar(sa.select(Zone).where(Zone.code == "D"))
        pieces, area, whole = piece_stats(s, zone.id)
        assert pieces > 6
        assert area == pytest.approx(whole, rel=1e-9)
        assert (
            s.scalar(
                sa.text("SELECT max(ST_NPoints(geom)) FROM zone_piece WHERE zone_id = :z"),
                {"z": zone.id},
            )
            <= 64
        )
        # the zone is redrawn: its pieces are the new outline's
        s.execute(
            sa.text("UPDATE zone SET geom = ST_Multi(ST_MakeEnvelope(:a, :b, :c, :d, 4326)) "
                    "WHERE id = :z"),
            {"a": X0, "b": Y0, "c": X0 + STEP, "d": Y0 + STEP, "z": zone.id},
        )  # fmt: skip
        s.expire(zone)
        pieces, area, whole = piece_stats(s, zone.id)
        assert (pieces, area) == (1, pytest.approx(STEP * STEP, rel=1e-9))
        zone_id = zone.id
        s.delete(zone)
        s.flush()
        assert (
            s.scalar(sa.text("SELECT count(*) FROM zone_piece WHERE zone_id = :z"), {"z": zone_id})
            == 0
        )


def test_a_pin_on_a_cut_line_is_in_its_zone_once(sessions, city, tmp_path):
    disc = pin(0.5).buffer(0.004, quad_segs=100)
    path = write_layer(tmp_path, "discs", [{"code": "D", "name": "Disc", "geometry": disc}])
    with session_scope(sessions) as s:
        c = s.get(Jurisdiction, city["id"])
        import_layer(s, c, path, "discs", code_field="code", name_field="name")
        # ST_Subdivide cuts along vertical or horizontal lines: the middle of an edge two
        # pieces share lies exactly on both of them.
        lon, lat, shared = s.execute(
            sa.text(
                """
                SELECT ST_X(m), ST_Y(m), (SELECT count(*) FROM zone_piece q
                                          WHERE q.zone_id = z.id AND ST_Intersects(q.geom, m))
                FROM zone z, LATERAL (
                    SELECT ST_LineInterpolatePoint(
                        ST_GeometryN(ST_CollectionExtract(ST_Intersection(a.geom, b.geom), 2), 1),
                        0.5) AS m
                    FROM zone_piece a JOIN zone_piece b
                      ON a.zone_id = b.zone_id AND a.id < b.id
                     AND ST_Dimension(ST_Intersection(a.geom, b.geom)) = 1
                    WHERE a.zone_id = z.id LIMIT 1
                ) cut
                WHERE z.code = 'D'
                """
            )
        ).one()
        assert shared == 2
        r = new_request(s, city, "bulky", Point(lon, lat))
        d = route_request(s, r)
        assert zone_codes(s, r.id)["discs"] == "D"
        assert "also inside" not in d.explanation
        assert s.scalar(
            sa.text("SELECT count(*) FROM request_zone WHERE request_id = :r"), {"r": r.id}
        ) == len(d.zones)
        expected = snapshot(s, city["id"])
        s.execute(sa.text("UPDATE service_request SET routing_explanation = NULL"))
        s.execute(sa.text("DELETE FROM request_zone"))
        route_bulk(s, c)
        assert snapshot(s, city["id"]) == expected


def test_city_boundary_pieces_answer_inside_or_outside(sessions, city):
    from spatial.pieces import point_in_city

    with session_scope(sessions) as s:
        inside, east = pin(2.5), pin(3.5)
        assert point_in_city(s, city["id"], inside.x, inside.y)
        assert not point_in_city(s, city["id"], east.x, east.y)
        # the city grows by a step east: the pieces follow the boundary
        s.execute(
            sa.text("UPDATE jurisdiction SET boundary = ST_Multi(ST_MakeEnvelope(:a, :b, :c, "
                    ":d, 4326)) WHERE id = :j"),
            {"a": X0, "b": Y0, "c": X0 + 4 * STEP, "d": Y0 + STEP, "j": city["id"]},
        )  # fmt: skip
        assert point_in_city(s, city["id"], east.x, east.y)
        corner = (X0 + 4 * STEP, Y0 + STEP)  # on the outline counts as inside
        assert point_in_city(s, city["id"], *corner)


# --------------------------------------------------------------------------- manual assignment


def test_a_dispatchers_reassignment_survives_bulk_re_routing(sessions, city):
    from routing.actions import move_pin, reassign
    from spatial.models import User

    with session_scope(sessions) as s:
        c = s.get(Jurisdiction, city["id"])
        user = User(email="d@example.org", role="dispatcher", jurisdiction_id=c.id)
        s.add(user)
        kept = new_request(s, city, "bulky", pin(1.5))
        other = new_request(s, city, "bulky", pin(1.5))
        route_bulk(s, c)
        s.refresh(kept)
        yard = s.get(Crew, city["crews"]["YARD"])
        reassign(s, user, kept, department_id=yard.department_id, crew_id=yard.id)
        s.flush()
        explanation = kept.routing_explanation
        assert kept.reassigned_at is not None
        # the district's crew changes and the rules are re-run for everyone
        zone_b = s.scalar(sa.select(Zone).where(Zone.code == "B"))
        zone_b.crew_id = city["crews"]["SAN-A"]
        s.flush()
        route_bulk(s, c)
        s.refresh(kept)
        s.refresh(other)
        assert other.crew_id == city["crews"]["SAN-A"]  # the rules moved this one
        assert (kept.crew_id, kept.routing_explanation) == (yard.id, explanation)
        assert zone_codes(s, kept.id)["districts"] == "B"  # its zones are still kept current
        # moving the pin routes it again by the rules, and bulk routing takes it back
        move_pin(s, user, kept, lon=pin(0.5).x, lat=pin(0.5).y)
        s.flush()
        assert kept.reassigned_at is None
        assert names(s, kept) == ("Sanitation", "A crew", "A")
