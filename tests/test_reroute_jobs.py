"""Publishing re-routes: a rule set or a zone layer version made current queues a job that
the worker runs in chunks, with progress the admin page shows; the zone upload page's
field choice, draft versions and the report of zones reaching outside the city."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import geopandas as gpd
import pytest
import sqlalchemy as sa
from conftest import run_cli
from shapely.geometry import box

from routing import reroute_jobs
from routing import rules as rulesmod
from routing.engine import REROUTED
from spatial.models import (
    Jurisdiction,
    RequestEvent,
    RuleSet,
    ServiceRequest,
    Zone,
    ZoneLayer,
)
from spatial.models_ops import AdminEvent, RerouteJob
from spatial.settings import PROJECT_ROOT
from spatial.zones import create_city, import_layer
from tests.support.city import BOUNDS
from tests.support.dispatch_city import (
    EAST,
    WEST,
    DispatchCity,
    csrf_from,
    login,
    make_dispatch_city,
    report,
)

CAMBRIDGE = PROJECT_ROOT / "tests/data/cambridge"
ADMIN = "admin@city.example"


@pytest.fixture
def city(sessions) -> DispatchCity:
    with sessions.begin() as s:
        return make_dispatch_city(s)


@pytest.fixture
def admin(client, city):
    login(client, "admin")
    return client


@pytest.fixture
def requests_(sessions, city, tmp_path) -> dict[str, int]:
    """Three open potholes in the west district, one in the east, and one in the west
    closed: all routed at submission (West or East crew)."""
    ids: dict[str, int] = {}
    with sessions.begin() as s:
        for i in range(3):
            ids[f"west{i}"] = report(s, tmp_path, where=WEST).id
        ids["east"] = report(s, tmp_path, where=EAST).id
        closed = report(s, tmp_path, where=WEST)
        closed.status = "closed"
        closed.closed_at = datetime.now(UTC)
        ids["closed"] = closed.id
    return ids


def crews(sessions) -> dict[int, int | None]:
    with sessions() as s:
        return dict(s.execute(sa.select(ServiceRequest.id, ServiceRequest.crew_id)).all())


def rerouted(sessions) -> list[RequestEvent]:
    with sessions() as s:
        rows = s.scalars(
            sa.select(RequestEvent).where(RequestEvent.kind == REROUTED).order_by(RequestEvent.id)
        ).all()
        s.expunge_all()
        return list(rows)


def draft_to_east_crew(sessions, city: DispatchCity) -> int:
    """A draft whose only rule sends every pothole to the East crew (zone kept)."""
    with sessions.begin() as s:
        c = s.get(Jurisdiction, city.city_id)
        draft = rulesmod.create_draft(s, c)
        (rule,) = rulesmod.ordered_rules(s, draft)
        values = rulesmod.parse_rule(
            s,
            c,
            {
                "name": "Potholes to the East crew",
                "match": "service",
                "service_code": "pothole",
                "layer_name": "districts",
                "department": "streets",
                "crew": "streets-E",
            },
        )
        rulesmod.update_rule(s, draft, rule.id, values)
        return draft.id


def publish_in_page(client, ruleset_id: int):
    token = csrf_from(client, f"/admin/rules/{ruleset_id}")
    return client.post(f"/admin/rules/{ruleset_id}/publish", data={"csrf_token": token})


def job_json(client, job_id: int) -> dict:
    res = client.get(f"/admin/reroute/{job_id}.json")
    assert res.status_code == 200
    return res.get_json()


def only_job(sessions) -> RerouteJob:
    with sessions() as s:
        (job,) = s.scalars(sa.select(RerouteJob)).all()
        s.expunge(job)
        return job


# --------------------------------------------------------------------------- rule sets


def test_publishing_rules_queues_a_job_the_worker_runs(sessions, city, requests_, admin):
    before = crews(sessions)
    assert before[requests_["west0"]] == city.crew_w_id
    draft_id = draft_to_east_crew(sessions, city)

    res = publish_in_page(admin, draft_id)
    assert res.status_code == 302
    page = admin.get(res.headers["Location"]).get_data(as_text=True)
    assert "re-routed (progress below" in page
    job = only_job(sessions)
    assert (job.kind, job.subject_id, job.status, job.created_by) == (
        "rules",
        draft_id,
        "queued",
        ADMIN,
    )
    assert 'id="reroute"' in page and 'data-status="queued"' in page
    assert f'data-reroute-url="/admin/reroute/{job.id}.json"' in page
    # nothing has moved before the worker runs
    assert crews(sessions) == before

    assert reroute_jobs.run_queued(sessions) == 1

    after = crews(sessions)
    for key in ("west0", "west1", "west2", "east"):
        assert after[requests_[key]] == city.crew_e_id
    assert after[requests_["closed"]] == city.crew_w_id  # its historical decision
    events = rerouted(sessions)
    assert sorted(e.request_id for e in events) == sorted(
        requests_[k] for k in ("west0", "west1", "west2")
    )
    assert {e.actor_label for e in events} == {f"bulk re-route by {ADMIN}"}
    assert all("West crew" in e.from_value and "East crew" in e.to_value for e in events)

    view = job_json(admin, job.id)
    assert (view["status"], view["total"], view["done"], view["moved"]) == ("done", 4, 4, 3)
    assert "4 requests checked, 3 moved" in view["text"]
    page = admin.get("/admin/rules").get_data(as_text=True)
    assert 'data-status="done"' in page and "3 moved" in page
    # a second run finds nothing to do
    assert reroute_jobs.run_queued(sessions) == 0


def test_progress_is_visible_while_the_job_runs(sessions, city, requests_, admin):
    publish_in_page(admin, draft_to_east_crew(sessions, city))
    job = only_job(sessions)
    seen = []
    with reroute_jobs.JobRunner(sessions, chunk_size=1) as runner:
        while runner.step():
            view = job_json(admin, job.id)
            seen.append((view["status"], view["done"], view["total"], view["moved"]))
    # one request per chunk, each chunk committed with its progress
    assert seen[:4] == [
        ("running", 1, 4, 1),
        ("running", 2, 4, 2),
        ("running", 3, 4, 3),
        ("running", 4, 4, 3),
    ]
    assert seen[-1] == ("done", 4, 4, 3)
    assert "Running: 2 of 4 requests, 2 moved." == reroute_jobs.describe(
        RerouteJob(status="running", done=2, total=4, moved=2, kind="rules"), "x"
    )


def test_a_failed_job_says_why_and_leaves_every_request_whole(
    sessions, city, requests_, admin, engine
):
    draft_id = draft_to_east_crew(sessions, city)
    publish_in_page(admin, draft_id)
    job = only_job(sessions)
    with reroute_jobs.JobRunner(sessions, chunk_size=1) as runner:
        assert runner.step()  # the first open request is re-routed
        with engine.begin() as conn:  # the rule set disappears under the job
            conn.execute(sa.delete(RuleSet).where(RuleSet.id == draft_id))
        assert runner.step()
        assert not runner.step()
    view = job_json(admin, job.id)
    assert view["status"] == "failed"
    assert view["done"] == 1 and view["moved"] == 1
    assert "was deleted" in view["error"]
    assert view["text"].startswith("Failed after 1 of 4 requests")
    after = crews(sessions)
    first = min(requests_[k] for k in ("west0", "west1", "west2", "east"))
    assert after[first] == city.crew_e_id  # its chunk committed whole
    assert [after[requests_[k]] for k in ("west1", "west2")] == [city.crew_w_id] * 2
    assert [e.request_id for e in rerouted(sessions)] == [first]
    page = admin.get(f"/admin/rules/{draft_id}")
    assert page.status_code == 404  # gone; the rules page still shows the failure
    assert 'data-status="failed"' in admin.get("/admin/rules").get_data(as_text=True)


def test_two_workers_never_run_one_job_and_a_dead_workers_job_is_taken_over(
    sessions, city, requests_, admin
):
    publish_in_page(admin, draft_to_east_crew(sessions, city))
    job = only_job(sessions)
    first = reroute_jobs.JobRunner(sessions, chunk_size=1)
    second = reroute_jobs.JobRunner(sessions, chunk_size=1)
    try:
        assert first.step()
        assert job_json(admin, job.id)["status"] == "running"
        # the second worker sees the running job and leaves it alone
        assert not second.step()
        assert job_json(admin, job.id)["done"] == 1
        assert first.step()
        assert job_json(admin, job.id)["done"] == 2
        first.close()  # the first worker dies mid-job
        assert second.run_all() == 1
    finally:
        first.close()
        second.close()
    view = job_json(admin, job.id)
    assert (view["status"], view["total"], view["done"]) == ("done", 4, 4)
    assert view["moved"] == 3  # no request moved twice
    assert len(rerouted(sessions)) == 3


def test_a_later_publish_supersedes_a_queued_job(sessions, city, requests_, admin):
    publish_in_page(admin, draft_to_east_crew(sessions, city))
    with sessions.begin() as s:
        c = s.get(Jurisdiction, city.city_id)
        second = rulesmod.create_draft(s, c)
        rulesmod.publish(s, c, second.id, by="cli:tester")
    with sessions() as s:
        old, new = s.scalars(sa.select(RerouteJob).order_by(RerouteJob.id)).all()
        assert (old.status, old.error) == ("done", f"superseded by job {new.id}")
        assert new.status == "queued"
    assert reroute_jobs.run_queued(sessions) == 1
    assert "Replaced by a later publication" in job_json(admin, old.id)["text"]
    assert job_json(admin, new.id)["status"] == "done"


def test_the_job_json_is_for_this_citys_admins_only(sessions, city, requests_, admin, app):
    publish_in_page(admin, draft_to_east_crew(sessions, city))
    job = only_job(sessions)
    with sessions.begin() as s:
        other = make_other_city(s)
        foreign = RerouteJob(jurisdiction_id=other, kind="rules", subject_id=None)
        s.add(foreign)
        s.flush()
        foreign_id = foreign.id
    assert admin.get(f"/admin/reroute/{foreign_id}.json").status_code == 404
    dispatcher = app.test_client()
    login(dispatcher, "dispatcher")
    assert dispatcher.get(f"/admin/reroute/{job.id}.json").status_code == 403


def make_other_city(s) -> int:
    from geoalchemy2.shape import from_shape
    from shapely.geometry import MultiPolygon

    other = Jurisdiction(
        slug="otherton",
        name="Otherton",
        timezone="America/New_York",
        metric_srid=32618,
        public_id_prefix="OT",
        boundary=from_shape(MultiPolygon([box(-74.1, 40.6, -74.0, 40.7)]), srid=4326),
    )
    s.add(other)
    s.flush()
    return other.id


# --------------------------------------------------------------------------- layers


def districts_v2(tmp_path: Path) -> Path:
    """The districts again, with the line moved east: the east pin is now in W."""
    west, south, east, north = BOUNDS
    line = -118.21
    path = tmp_path / "districts-v2.geojson"
    gpd.GeoDataFrame(
        {"District": ["W", "E"], "label": ["West", "East"], "people": [1200, 300]},
        geometry=[box(west, south, line, north), box(line, south, east, north)],
        crs=4326,
    ).to_file(path, driver="GeoJSON")
    return path


def upload(client, path: Path, **form) -> tuple[int, str]:
    data = {
        "csrf_token": csrf_from(client, "/admin/layers"),
        "file": (io.BytesIO(path.read_bytes()), path.name),
        **form,
    }
    res = client.post("/admin/layers", data=data, content_type="multipart/form-data")
    return res.status_code, res.get_data(as_text=True)


def choose(client, page: str, **form) -> tuple[int, str, str | None]:
    token = re.search(r'name="upload" value="([^"]+)"', page).group(1)
    data = {"csrf_token": csrf_from(client, "/admin/layers"), "upload": token, **form}
    res = client.post("/admin/layers", data=data)
    return res.status_code, res.get_data(as_text=True), res.headers.get("Location")


def zone_of(sessions, request_id: int, layer_name: str) -> tuple[int, str] | None:
    with sessions() as s:
        row = s.execute(
            sa.select(ZoneLayer.version, Zone.code)
            .select_from(sa.table("request_zone", sa.column("request_id"), sa.column("zone_id")))
            .join(Zone, Zone.id == sa.column("zone_id"))
            .join(ZoneLayer, ZoneLayer.id == Zone.layer_id)
            .where(sa.column("request_id") == request_id, ZoneLayer.name == layer_name)
        ).all()
    assert len(row) <= 1
    return tuple(row[0]) if row else None


def test_a_new_layer_version_gives_every_request_its_zone(
    sessions, city, requests_, admin, tmp_path, settings
):
    assert zone_of(sessions, requests_["closed"], "districts") == (1, "W")
    status, page = upload(admin, districts_v2(tmp_path), layer_name="districts")
    assert status == 200
    assert 'id="field-chooser"' in page and "District" in page and "(e.g. W)" in page
    # nothing is imported before the fields are chosen
    with sessions() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(ZoneLayer)) == 1
    status, page, location = choose(
        admin,
        page,
        code_field="District",
        name_field="label",
        population_field="people",
        layer_name="districts",
    )
    assert status == 302, page
    job = only_job(sessions)
    assert job.kind == "layer" and job.status == "queued"
    page = admin.get(location).get_data(as_text=True)
    assert 'data-status="queued"' in page
    with sessions() as s:
        assert s.scalar(sa.select(Zone.population).where(Zone.code == "W", Zone.population > 0))
    # the upload kept between the two steps is gone
    assert list((settings.var_dir / "uploads").iterdir()) == []

    assert reroute_jobs.run_queued(sessions) == 1

    for key in requests_:
        assert zone_of(sessions, requests_[key], "districts")[0] == 2
    assert zone_of(sessions, requests_["east"], "districts") == (2, "W")
    assert zone_of(sessions, requests_["closed"], "districts") == (2, "W")
    after = crews(sessions)
    assert after[requests_["east"]] == city.crew_w_id  # open: re-routed to its new zone
    assert after[requests_["closed"]] == city.crew_w_id
    # only the request whose zone code changed moved; the others are in the new
    # version's zone of the same code, without an event in their history
    events = {e.request_id: e for e in rerouted(sessions)}
    assert sorted(events) == [requests_["east"]]
    assert "East crew" in events[requests_["east"]].from_value
    assert "West crew" in events[requests_["east"]].to_value
    view = job_json(admin, job.id)
    assert (view["status"], view["total"], view["done"], view["moved"]) == ("done", 5, 5, 1)
    assert "every request has its zone in the new version" in view["text"]


def test_a_new_layer_reaches_closed_requests_too(sessions, city, requests_, tmp_path):
    west, south, east, north = BOUNDS
    path = tmp_path / "quadrants.geojson"
    gpd.GeoDataFrame(
        {"code": ["N", "S"]},
        geometry=[box(west, 34.04, east, north), box(west, south, east, 34.04)],
        crs=4326,
    ).to_file(path, driver="GeoJSON")
    with sessions.begin() as s:
        c = s.get(Jurisdiction, city.city_id)
        layer = import_layer(s, c, path, "quadrants").layer
        rulesmod.layer_made_current(s, c, layer, "cli:tester")
    assert zone_of(sessions, requests_["closed"], "quadrants") is None
    assert reroute_jobs.run_queued(sessions) == 1
    assert {zone_of(sessions, rid, "quadrants") for rid in requests_.values()} == {(1, "N")}
    assert rerouted(sessions) == []  # no rule uses the layer: nobody moved


def test_no_code_field_is_a_400_beside_the_field_and_imports_nothing(
    sessions, city, admin, tmp_path
):
    status, page = upload(admin, districts_v2(tmp_path), layer_name="districts")
    assert status == 200
    status, page, _ = choose(admin, page, code_field="", layer_name="districts")
    assert status == 400
    assert re.search(r'id="error-code_field"[^>]*>choose the field that holds each zone', page)
    # the chooser is still there, with the file kept for a second try
    assert 'id="field-chooser"' in page
    with sessions() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(ZoneLayer)) == 1
        assert s.scalar(sa.select(sa.func.count()).select_from(RerouteJob)) == 0
    status, page, _ = choose(admin, page, code_field="label", layer_name="districts")
    assert status == 302


def test_duplicate_codes_are_named(sessions, city, admin, tmp_path):
    west, south, east, north = BOUNDS
    path = tmp_path / "dups.geojson"
    gpd.GeoDataFrame(
        {"ward": ["1", "1", "2"]},
        geometry=[box(west, south, -118.28, north), box(-118.28, south, -118.25, north),
                  box(-118.25, south, east, north)],
        crs=4326,
    ).to_file(path, driver="GeoJSON")  # fmt: skip
    status, page = upload(admin, path, layer_name="wards")
    status, page, _ = choose(admin, page, code_field="ward", layer_name="wards")
    assert status == 400
    assert re.search(r"id=\"error-code_field\"[^>]*>[^<]*duplicated: &#39;1&#39;", page)


def test_keep_as_draft_holds_a_new_layer_out_of_routing(sessions, city, admin, tmp_path):
    west, south, east, north = BOUNDS
    path = tmp_path / "wards.geojson"
    gpd.GeoDataFrame(
        {"code": ["N", "S"]},
        geometry=[box(west, 34.05, east, north), box(west, south, east, 34.05)],
        crs=4326,
    ).to_file(path, driver="GeoJSON")
    status, page = upload(admin, path, layer_name="wards", draft="1")
    assert status == 200
    assert 'name="draft" value="1" checked' in page
    status, page, location = choose(admin, page, code_field="code", layer_name="wards", draft="1")
    assert status == 302
    with sessions() as s:
        layer = s.scalar(sa.select(ZoneLayer).where(ZoneLayer.name == "wards"))
        assert (layer.version, layer.is_current) == (1, False)
        assert s.scalar(sa.select(sa.func.count()).select_from(RerouteJob)) == 0
        layer_id = layer.id
    page = admin.get(location).get_data(as_text=True)
    assert "Make this version current" in page
    token = csrf_from(admin, location)
    res = admin.post(f"/admin/layers/{layer_id}/publish", data={"csrf_token": token})
    assert res.status_code == 302
    with sessions() as s:
        assert s.get(ZoneLayer, layer_id).is_current
    job = only_job(sessions)
    assert (job.kind, job.subject_id) == ("layer", layer_id)


def test_a_redraft_of_an_existing_layer_keeps_the_current_version(sessions, city, tmp_path):
    with sessions.begin() as s:
        c = s.get(Jurisdiction, city.city_id)
        v2 = import_layer(s, c, districts_v2(tmp_path), "districts", "District", draft=True)
        v3 = import_layer(s, c, districts_v2(tmp_path), "districts", "District", draft=True)
        current = s.scalars(
            sa.select(ZoneLayer.version).where(ZoneLayer.name == "districts", ZoneLayer.is_current)
        ).all()
        assert current == [1]
        assert not v2.layer.is_current and not v3.layer.is_current


# --------------------------------------------------------------------------- Cambridge


@pytest.fixture
def cambridge(sessions) -> int:
    with sessions.begin() as s:
        return create_city(
            s,
            "cambridge",
            "Cambridge",
            "America/New_York",
            CAMBRIDGE / "BOUNDARY_CityBoundary.geojson",
        ).id


@pytest.mark.parametrize(
    ("file", "code", "sample", "unique"),
    [
        ("ELECTIONS_WardsPrecincts.geojson", "WardPrecinct", "1-1", True),
        # districts D, H and J are drawn in several pieces
        ("DPW_StreetSweepingDistricts.geojson", "District", "G", False),
    ],
)
def test_cambridge_files_need_their_code_field_chosen(
    sessions, cambridge, file, code, sample, unique
):
    from spatial.errors import InvalidInput
    from spatial.zones import file_fields

    fields = file_fields(CAMBRIDGE / file)
    by_name = {f.name: f for f in fields.fields}
    assert (by_name[code].sample, by_name[code].unique) == (sample, unique)
    assert fields.code_field is None  # nothing obvious: never row numbers
    source = json.loads((CAMBRIDGE / file).read_text())
    parts: dict[str, int] = {}
    for f in source["features"]:
        parts[f["properties"][code]] = parts.get(f["properties"][code], 0) + 1
    with sessions.begin() as s:
        c = s.get(Jurisdiction, cambridge)
        with pytest.raises(InvalidInput, match="choose the code field") as err:
            import_layer(s, c, CAMBRIDGE / file, "zones")
        assert err.value.field == "code_field" and code in str(err.value)
        if not unique:
            with pytest.raises(InvalidInput, match="duplicated: 'D', 'J', 'H'") as err:
                import_layer(s, c, CAMBRIDGE / file, "zones", code)
        result = import_layer(s, c, CAMBRIDGE / file, "zones", code, join_parts=not unique)
        stored = dict(
            s.execute(
                sa.select(Zone.code, sa.func.ST_NumGeometries(Zone.geom)).where(
                    Zone.layer_id == result.layer.id
                )
            ).all()
        )
    assert set(stored) == set(parts)
    joined = {j["code"]: j["parts"] for j in result.report["joined"]}
    assert joined == {k: n for k, n in parts.items() if n > 1}
    # pieces that do not touch stay separate polygons of the one zone
    assert all(stored[k] >= 1 for k in joined)
    # zones reaching outside the city's limit, measured independently in UTM 19N
    limit = gpd.read_file(CAMBRIDGE / "BOUNDARY_CityBoundary.geojson").to_crs(32619).union_all()
    zones = gpd.read_file(CAMBRIDGE / file).to_crs(32619)
    expected = {}
    for zone_code, geom in zip(zones[code], zones.geometry, strict=True):
        outside = geom.difference(limit).area
        if outside > 0.01 * geom.area and geom.difference(limit.buffer(10)).area > 1:
            expected[zone_code] = outside
    got = {o["code"]: o["outside_m2"] for o in result.report["outside"]}
    assert set(got) == set(expected)
    for zone_code, area in expected.items():
        assert got[zone_code] == pytest.approx(area, rel=0.01)


def test_cambridge_precincts_through_the_page(sessions, cambridge, client, tmp_path):
    from spatial.accounts import create_user

    with sessions.begin() as s:
        create_user(
            s, email="admin@cambridge.example", role="admin", city_slug="cambridge",
            password="correct horse battery",
        )  # fmt: skip
    html = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    client.post(
        "/login",
        data={
            "email": "admin@cambridge.example",
            "password": "correct horse battery",
            "csrf_token": token,
        },
    )
    status, page = upload(
        client, CAMBRIDGE / "ELECTIONS_WardsPrecincts.geojson", layer_name="precincts"
    )
    assert status == 200
    for name in ("WardPrecinct", "Ward", "Precinct", "TOTALPOP"):
        assert f"<td>{name}</td>" in page
    # the population field is recognised, the code field is left for the admin
    assert re.search(r'<option value="TOTALPOP" selected>', page)
    assert not re.search(r'name="code_field">[^/]*<option value="[^"]+" selected', page)
    status, page, location = choose(
        client, page, code_field="WardPrecinct", population_field="TOTALPOP",
        layer_name="precincts",
    )  # fmt: skip
    assert status == 302, page
    with sessions() as s:
        pops = dict(s.execute(sa.select(Zone.code, Zone.population)).all())
    assert len(pops) == 33 and pops["1-1"] == 3456
    page = client.get(location).get_data(as_text=True)
    # four precincts reach into the river past the city's limit (see the test above)
    assert '<td id="outside-count">4</td>' in page
    assert re.search(r"<td>5-2</td><td>5-2</td><td>20,3\d\d\.\d</td><td>3\.0 %</td>", page)


def test_zones_reaching_outside_the_city_are_reported_with_how_much(
    sessions, city, admin, tmp_path
):
    west, south, east, north = BOUNDS
    mid = (west + east) / 2
    path = tmp_path / "sticking-out.geojson"
    gpd.GeoDataFrame(
        {"code": ["IN", "OUT", "EDGE"]},
        geometry=[
            box(west, south, mid, north),
            # half of it east of the city
            box(mid, south, east + (east - mid), north),
            # along the east edge, 0.2 m beyond it: within the tolerance
            box(mid + 0.01, south + 0.01, east + 0.000002, south + 0.02),
        ],
        crs=4326,
    ).to_file(path, driver="GeoJSON")
    status, page = upload(admin, path, layer_name="reach")
    status, page, location = choose(admin, page, code_field="code", layer_name="reach")
    assert status == 302
    with sessions() as s:
        report_ = s.scalar(sa.select(ZoneLayer.report).where(ZoneLayer.name == "reach"))
    (out,) = report_["outside"]
    assert out["code"] == "OUT"
    assert out["outside_pct"] == pytest.approx(50.0, abs=0.5)
    area = box(mid, south, east, north)
    assert out["outside_m2"] == pytest.approx(
        gpd.GeoSeries([area], crs=4326).to_crs(32611).area.item(), rel=0.01
    )
    assert report_["outside_boundary"] == ["OUT"]
    page = admin.get(location).get_data(as_text=True)
    assert re.search(r"<td>OUT</td><td>OUT</td><td>[\d,.]+</td><td>50\.\d %</td>", page)


# --------------------------------------------------------------------------- CLI


def test_cli_import_needs_a_code_field_keeps_drafts_and_the_worker_runs_jobs(
    sessions, city, requests_, db_url, tmp_path
):
    env = {"DATABASE_URL": db_url, "VAR_DIR": str(tmp_path / "var")}
    path = CAMBRIDGE / "DPW_StreetSweepingDistricts.geojson"
    res = run_cli(["zones", "import", str(path), "--city", "testville", "--layer", "sweep"], env)
    assert res.returncode != 0
    assert res.stderr.strip().startswith("civicpin: error: ")
    assert "choose the code field" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    v2 = districts_v2(tmp_path)
    res = run_cli(
        ["zones", "import", str(v2), "--city", "testville", "--layer", "districts",
         "--code-field", "District", "--draft"],
        env,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "(draft: not current until published)" in res.stdout
    with sessions() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(RerouteJob)) == 0
        assert not s.scalar(sa.select(ZoneLayer.is_current).where(ZoneLayer.version == 2))
    res = run_cli(
        ["zones", "publish", "--city", "testville", "--layer", "districts", "--version", "2"], env
    )
    assert res.returncode == 0, res.stderr
    assert only_job(sessions).status == "queued"
    res = run_cli(["worker", "--once"], env)
    assert res.returncode == 0, res.stderr
    assert "1 re-route jobs run" in res.stdout
    assert only_job(sessions).status == "done"
    assert zone_of(sessions, requests_["closed"], "districts") == (2, "W")
    with sessions() as s:
        actions = s.scalars(sa.select(AdminEvent.action).order_by(AdminEvent.id)).all()
    assert actions == ["layer.import", "layer.publish"]


def test_the_running_worker_re_routes_between_mail_batches(
    sessions, city, requests_, admin, settings
):
    import threading
    import time

    from notify.worker import WorkerConfig, run_forever

    publish_in_page(admin, draft_to_east_crew(sessions, city))
    job = only_job(sessions)
    stop = threading.Event()
    with reroute_jobs.JobRunner(sessions, chunk_size=2) as runner:
        worker = threading.Thread(
            target=run_forever,
            args=(sessions, settings, WorkerConfig(poll_interval=0.1)),
            kwargs={"stop": stop, "jobs": runner.step},
        )
        worker.start()
        try:
            deadline = time.monotonic() + 60
            while job_json(admin, job.id)["status"] != "done" and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            stop.set()
            worker.join(30)
    assert job_json(admin, job.id)["moved"] == 3
    assert crews(sessions)[requests_["west0"]] == city.crew_e_id
    # the acknowledgements of the reports went out meanwhile
    assert list((settings.var_dir / "mail-spool").glob("*.eml"))
