"""Projects: creating and editing them with clear errors, linking requests (from the
project page and the dispatch panel), what the public sees of them, and closing one that
resolves its open requests with one message and the reporters' resolution mails."""

from __future__ import annotations

import os
import re
from datetime import date

import pytest
import sqlalchemy as sa
from conftest import TEMPLATE, make_settings, run_cli

from intake.submit import Draft, submit
from routing import projects
from routing.actions import Forbidden
from spatial.accounts import create_user
from spatial.db import make_engine, make_sessionmaker
from spatial.errors import InvalidInput
from spatial.models import OutboxMessage, RequestEvent, ServiceRequest, User
from spatial.models_work import Project
from tests.support.city import make_small_city
from tests.support.dispatch_city import (
    BASE_URL,
    EAST,
    WEST,
    csrf_from,
    login,
    make_dispatch_city,
    report,
    user,
)

# A polygon around the west district's reports (lon, lat), inside testville.
WEST_AREA = {
    "type": "Polygon",
    "coordinates": [
        [[-118.29, 34.04], [-118.27, 34.04], [-118.27, 34.06], [-118.29, 34.06], [-118.29, 34.04]]
    ],
}


@pytest.fixture(scope="module")
def world(pg, tmp_path_factory):
    name = f"projects_{os.getpid()}"
    url = pg.create_db(name, template=TEMPLATE)
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    sessions = make_sessionmaker(engine)
    settings = make_settings(tmp_path_factory.mktemp("projects"), url)
    with sessions.begin() as s:
        city = make_dispatch_city(s)
        other = make_small_city(s, "otherville")["city"]
        other.public_id_prefix = "OV"
        create_user(s, email="far@other.example", role="dispatcher", city_slug="otherville")
    from webmap.app import create_app

    app = create_app(settings, engine=engine)
    app.config["TESTING"] = True
    yield app, sessions, settings, city, url
    engine.dispose()
    pg.drop_db(name)


_clients: dict = {}


def _client(app, key: str):
    """One signed-in client per role for the module (sign-in is slow on purpose)."""
    if key not in _clients:
        client = app.test_client()
        login(client, key)
        _clients[key] = client
    return _clients[key]


def _report(sessions, settings, **kw) -> tuple[int, str, str]:
    with sessions.begin() as s:
        req = report(s, settings.media_dir, **kw)
        return req.id, req.public_id, req.token


def _project(sessions, key="dispatcher", **kw) -> int:
    values = dict(name="Repave Main St", status="active")
    values.update(kw)
    with sessions.begin() as s:
        city = s.get(User, user(s, key).id).jurisdiction_id
        from spatial.models import Jurisdiction

        p = projects.create_project(
            s, user(s, key), s.get(Jurisdiction, city), projects.ProjectInput(**values)
        )
        return p.id


def _count(sessions, model) -> int:
    with sessions() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(model))


# --------------------------------------------------------------------------- domain


def test_create_and_edit_with_milestones_area_and_clear_errors(world):
    app, sessions, settings, city, _ = world
    with sessions.begin() as s:
        from spatial.models import Jurisdiction

        town = s.get(Jurisdiction, city.city_id)
        planner = user(s, "planner")
        owner_id = user(s, "dispatcher").id
        project = projects.create_project(
            s,
            planner,
            town,
            projects.ProjectInput(
                name="  Repave Main St ",
                description="Full depth repair",
                owner_id=str(owner_id),
                department_id=str(city.streets_id),
                status="planned",
                target_date="2027-05-01",
                area=str(WEST_AREA).replace("'", '"'),
                milestones=[
                    projects.MilestoneInput("Survey", "2027-02-01", True),
                    projects.MilestoneInput("", ""),
                    projects.MilestoneInput("Pave", "2027-04-15"),
                ],
            ),
        )
        pid = project.id
    with sessions() as s:
        p = s.get(Project, pid)
        assert p.name == "Repave Main St" and p.owner_id == owner_id
        assert p.target_date == date(2027, 5, 1)
        assert [m.title for m in p.milestones] == ["Survey", "Pave"]
        assert p.milestones[0].done_at is not None and p.milestones[1].done_at is None
        assert projects.next_milestone(p).title == "Pave"
        assert projects.area_geojson(p)["type"] == "Polygon"

    bad = {
        "owner_id": ("unknown owner", dict(owner_id="999999")),
        "target_date": ("bad date", dict(target_date="31/12/2027")),
        "name": ("too long", dict(name="x" * 201)),
        "milestone_title_1": (
            "milestone without title",
            dict(milestones=[projects.MilestoneInput("", "2027-01-01")]),
        ),
        "area": (
            "outside the city",
            dict(area='{"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}'),
        ),
        "department_id": ("no such department", dict(department_id="999999")),
        "status": ("unknown status", dict(status="finished")),
    }
    with sessions() as s:
        far = s.scalar(sa.select(User.id).where(User.email == "far@other.example"))
    cases = list(bad.items()) + [("owner_id", ("another city's staff", dict(owner_id=far)))]
    for field, (_, change) in cases:
        values = dict(name="Fine name", status="active")
        values.update(change)
        with sessions() as s:
            town = s.get(Jurisdiction, city.city_id)
            with pytest.raises(InvalidInput) as err:
                projects.update_project(
                    s, user(s, "planner"), s.get(Project, pid), projects.ProjectInput(**values)
                )
            assert err.value.field == field, (field, str(err.value))
            s.rollback()
    with sessions() as s:
        assert s.get(Project, pid).name == "Repave Main St"  # nothing changed

    # crews and call-takers cannot create or edit projects
    for key in ("crew", "agent"):
        with sessions() as s:
            with pytest.raises(Forbidden):
                projects.create_project(
                    s,
                    user(s, key),
                    s.get(Jurisdiction, city.city_id),
                    projects.ProjectInput(name="Nope"),
                )


def test_link_and_unlink_write_public_events_one_project_one_city(world):
    app, sessions, settings, city, _ = world
    first = _project(sessions, name="Fix the West")
    second = _project(sessions, name="Other work")
    a = _report(sessions, settings)
    b = _report(sessions, settings, where=EAST)
    with sessions.begin() as s:
        other = submit(
            s,
            Draft(
                city="otherville",
                service_code="pothole",
                lat=WEST[0],
                lon=WEST[1],
                attributes={"depth": "3"},
            ),
            media_dir=settings.media_dir,
            public_base_url=BASE_URL,
        ).request.public_id
    with sessions.begin() as s:
        done = projects.link_requests(s, user(s, "dispatcher"), s.get(Project, first), [a[1], b[1]])
        assert len(done) == 2
    with sessions() as s:
        ev = s.scalars(
            sa.select(RequestEvent).where(
                RequestEvent.request_id == a[0], RequestEvent.kind == "project"
            )
        ).one()
        assert ev.public and ev.to_value == "Fix the West"
        assert ev.note == "Part of project Fix the West"
    for pid, ref, match in (
        (second, a[1], "already part of project Fix the West"),
        (first, a[1], "already part of this project"),
        (first, other, f"no request {other} in this city"),
        (first, "TV-NOPE", "no request TV-NOPE in this city"),
    ):
        with sessions() as s:
            with pytest.raises(InvalidInput, match=match):
                projects.link_requests(s, user(s, "dispatcher"), s.get(Project, pid), [ref])
    # all or nothing: one bad reference among good ones links none
    c = _report(sessions, settings)
    with sessions() as s:
        with pytest.raises(InvalidInput):
            projects.link_requests(
                s, user(s, "dispatcher"), s.get(Project, second), [c[1], "TV-NOPE"]
            )
        s.rollback()
    with sessions.begin() as s:
        assert s.get(ServiceRequest, c[0]).project_id is None
        projects.unlink_request(
            s, user(s, "planner"), s.get(Project, first), s.get(ServiceRequest, b[0])
        )
    with sessions() as s:
        assert s.get(ServiceRequest, b[0]).project_id is None
        last = s.scalars(
            sa.select(RequestEvent)
            .where(RequestEvent.request_id == b[0], RequestEvent.kind == "project")
            .order_by(RequestEvent.id.desc())
        ).first()
        assert last.note == "No longer part of project Fix the West" and last.public


# --------------------------------------------------------------------------- pages


def test_crew_and_agents_cannot_reach_or_change_projects(world):
    app, sessions, settings, city, _ = world
    pid = _project(sessions, name="Guarded")
    ref = _report(sessions, settings)[1]
    before = _count(sessions, Project)
    for key in ("crew", "agent"):
        client = _client(app, key)
        token = csrf_from(client, "/staff")
        assert client.get("/staff/projects").status_code == 403
        assert client.get(f"/staff/projects/{pid}").status_code == 403
        res = client.post("/staff/projects/new", data={"name": "X", "csrf_token": token})
        assert res.status_code == 403
        res = client.post(
            f"/staff/projects/{pid}/link", data={"public_id": ref, "csrf_token": token}
        )
        assert res.status_code == 403
    assert _count(sessions, Project) == before
    with sessions() as s:
        req = s.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == ref))
        assert req.project_id is None


def test_planner_creates_with_the_form_and_sees_errors_next_to_fields(world):
    app, sessions, settings, city, _ = world
    client = _client(app, "planner")
    page = client.get("/staff/projects/new")
    assert page.status_code == 200
    token = csrf_from(client, "/staff/projects/new")
    before = _count(sessions, Project)
    res = client.post(
        "/staff/projects/new",
        data={
            "csrf_token": token,
            "name": "Planter boxes",
            "target_date": "next spring",
            "milestone_title_1": "Order boxes",
        },
    )
    html = res.get_data(as_text=True)
    assert res.status_code == 400
    assert 'id="error-target_date"' in html and "write it as YYYY-MM-DD" in html
    assert 'value="Planter boxes"' in html  # what was typed is kept
    assert _count(sessions, Project) == before
    res = client.post(
        "/staff/projects/new",
        data={
            "csrf_token": token,
            "name": "Planter boxes",
            "target_date": "2027-04-01",
            "status": "active",
            "milestone_title_1": "Order boxes",
            "milestone_due_1": "2027-02-01",
            "milestone_title_2": "",
            "milestone_due_2": "2027-03-01",
        },
    )
    assert res.status_code == 400 and "Milestone 2 needs a title" in res.get_data(as_text=True)
    res = client.post(
        "/staff/projects/new",
        data={
            "csrf_token": token,
            "name": "Planter boxes",
            "target_date": "2027-04-01",
            "status": "active",
            "milestone_title_1": "Order boxes",
            "milestone_due_1": "2027-02-01",
            "area": str(WEST_AREA).replace("'", '"'),
        },
    )
    assert res.status_code == 303
    detail = client.get(res.headers["Location"]).get_data(as_text=True)
    assert "Planter boxes" in detail and "Order boxes" in detail
    assert "<script>" not in detail  # the map's data rides in a data- attribute
    listing = client.get("/staff/projects?status=active").get_data(as_text=True)
    assert "Planter boxes" in listing
    assert "Planter boxes" not in client.get("/staff/projects?status=done").get_data(as_text=True)


def test_link_from_the_area_and_from_the_dispatch_panel(world):
    app, sessions, settings, city, _ = world
    pid = _project(sessions, name="West corner", area=WEST_AREA)
    inside = _report(sessions, settings, where=(34.05, -118.28))
    outside = _report(sessions, settings, where=EAST)
    client = _client(app, "dispatcher")
    page = client.get(f"/staff/projects/{pid}").get_data(as_text=True)
    area_form = page.split('id="area-form"')[1].split("</form>")[0]
    assert inside[1] in area_form and outside[1] not in area_form
    token = csrf_from(client, f"/staff/projects/{pid}")
    res = client.post(
        f"/staff/projects/{pid}/link", data={"public_ids": inside[1], "csrf_token": token}
    )
    assert res.status_code == 303
    # from the panel: the JSON action the console's script posts
    res = client.post(
        f"/dispatch/requests/{outside[1]}/project",
        json={"project_id": str(pid)},
        headers={"X-CSRFToken": token},
    )
    assert res.status_code == 200, res.get_data(as_text=True)
    assert res.get_json()["message"] == f"{outside[1]} is now part of project West corner"
    panel = client.get(f"/dispatch/requests/{outside[1]}?partial=1").get_data(as_text=True)
    assert 'id="panel-project"' in panel and "West corner" in panel
    # a bad project id is an error for the field, and changes nothing
    res = client.post(
        f"/dispatch/requests/{inside[1]}/project",
        json={"project_id": "999999"},
        headers={"X-CSRFToken": token},
    )
    assert res.status_code == 400 and res.get_json()["field"] == "project_id"
    with sessions() as s:
        assert s.get(ServiceRequest, inside[0]).project_id == pid
        assert s.get(ServiceRequest, outside[0]).project_id == pid
    # the typed reference of another city's request is "not in this city"
    res = client.post(
        f"/staff/projects/{pid}/link", data={"public_id": "OV-1", "csrf_token": token}
    )
    assert res.status_code == 400
    assert "no request OV-1 in this city" in res.get_data(as_text=True)


def test_public_pages_show_the_project_of_public_requests_only(world):
    app, sessions, settings, city, _ = world
    pid = _project(
        sessions,
        name="Sidewalk renewal",
        description="New sidewalks on Elm",
        target_date="2027-06-30",
        owner_id=str(city.users["planner"]),
        milestones=[
            projects.MilestoneInput("Design", "2027-01-15", True),
            projects.MilestoneInput("Build", "2027-05-01"),
        ],
    )
    public = _report(sessions, settings, address="7 Elm St")
    with sessions.begin() as s:
        secret = submit(
            s,
            Draft(
                city="testville",
                service_code="abuse",
                lat=WEST[0],
                lon=WEST[1],
                description="private matter",
                contact_email="quiet@example.org",
            ),
            media_dir=settings.media_dir,
            public_base_url=BASE_URL,
        ).request
        secret_ref, secret_token = secret.public_id, secret.token
        held = report(s, settings.media_dir)
        held.held_at = held.requested_at
        held_ref, held_token = held.public_id, held.token
        projects.link_requests(
            s, user(s, "dispatcher"), s.get(Project, pid), [public[1], secret_ref, held_ref]
        )
    stranger = app.test_client()
    track = stranger.get(f"/requests/{public[1]}").get_data(as_text=True)
    assert 'id="project"' in track and "Sidewalk renewal" in track
    assert "30 Jun 2027" in track and "Build" in track  # target date and next milestone
    # held and private requests show nothing new, even to their reporters
    for ref, token in ((secret_ref, secret_token), (held_ref, held_token)):
        own = stranger.get(f"/requests/{ref}?token={token}").get_data(as_text=True)
        assert 'id="project"' not in own and "Sidewalk renewal" not in own.split("timeline")[0]
    page = stranger.get(f"/projects/{pid}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Sidewalk renewal" in html and "New sidewalks on Elm" in html and "Design" in html
    assert public[1] in html
    for leak in (
        secret_ref,
        held_ref,
        "planner@city.example",
        "Planner",
        "private matter",
        "quiet@example.org",
        "resident@example.org",
        "Rosa Resident",
    ):
        assert leak not in html, leak
    assert stranger.get("/projects/999999").status_code == 404
    # a project of private requests only is not public
    hidden = _project(sessions, name="Quiet work")
    with sessions.begin() as s:
        req = s.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == secret_ref))
        projects.unlink_request(s, user(s, "dispatcher"), s.get(Project, pid), req)
        projects.link_request(s, user(s, "dispatcher"), s.get(Project, hidden), req)
    res = stranger.get(f"/projects/{hidden}")
    assert res.status_code == 404 and "Quiet work" not in res.get_data(as_text=True)


def test_closing_resolves_the_open_requests_with_one_message(world):
    app, sessions, settings, city, _ = world
    pid = _project(sessions, name="Pothole blitz")
    refs = [_report(sessions, settings, email=f"r{n}@example.org") for n in range(3)]
    with sessions.begin() as s:
        projects.link_requests(s, user(s, "dispatcher"), s.get(Project, pid), [r[1] for r in refs])
        done = s.get(ServiceRequest, refs[2][0])
        done.status, done.closed_at = "closed", done.requested_at
    client = _client(app, "dispatcher")
    token = csrf_from(client, f"/staff/projects/{pid}")
    # cancelling resolves nothing
    res = client.post(
        f"/staff/projects/{pid}/close",
        data={"status": "cancelled", "resolve": "1", "resolve_message": "x", "csrf_token": token},
    )
    assert res.status_code == 400 and "A cancelled project resolves nothing" in res.get_data(
        as_text=True
    )
    with sessions() as s:
        assert s.get(Project, pid).status == "active"
        mails_before = s.scalar(sa.select(sa.func.count()).select_from(OutboxMessage))
    message = "The whole street was repaved on Monday."
    res = client.post(
        f"/staff/projects/{pid}/close",
        data={"status": "done", "resolve": "1", "resolve_message": message, "csrf_token": token},
    )
    assert res.status_code == 303
    page = client.get(res.headers["Location"]).get_data(as_text=True)
    assert "Project Pothole blitz is done; 2 open requests resolved" in page
    with sessions() as s:
        p = s.get(Project, pid)
        assert p.status == "done" and p.closed_at and p.close_message == message
        for req_id, _ref, _ in refs[:2]:
            req = s.get(ServiceRequest, req_id)
            assert req.status == "resolved" and req.closed_at and req.close_reason == message
            ev = s.scalars(
                sa.select(RequestEvent).where(
                    RequestEvent.request_id == req_id, RequestEvent.kind == "status"
                )
            ).all()[-1]
            assert ev.to_value == "resolved" and ev.public and ev.note == message
            assert ev.actor_id == city.users["dispatcher"]
        assert s.get(ServiceRequest, refs[2][0]).status == "closed"
        mails = s.scalars(sa.select(OutboxMessage).where(OutboxMessage.kind == "resolution")).all()
        to = {m.to_addr for m in mails}
        assert {"r0@example.org", "r1@example.org"} <= to and "r2@example.org" not in to
        body = next(m.body_text for m in mails if m.to_addr == "r0@example.org")
        assert message in body and re.search(r"/survey/", body)
        assert s.scalar(sa.select(sa.func.count()).select_from(OutboxMessage)) > mails_before
    # a finished project links nothing more
    extra = _report(sessions, settings)
    with sessions() as s:
        with pytest.raises(InvalidInput, match="reopen it"):
            projects.link_requests(s, user(s, "dispatcher"), s.get(Project, pid), [extra[1]])


def test_cli_lists_a_citys_projects(world, tmp_path):
    app, sessions, settings, city, url = world
    _project(sessions, name="Listed in the shell")
    res = run_cli(
        ["projects", "list", "--city", "testville"],
        env={"DATABASE_URL": url, "VAR_DIR": str(tmp_path / "var")},
    )
    assert res.returncode == 0, res.stderr
    assert "Listed in the shell" in res.stdout
    pid = re.search(r"^(\d+)\t.*Listed in the shell$", res.stdout, re.M).group(1)
    ref = _report(sessions, settings)[1]
    with sessions.begin() as s:
        projects.link_requests(s, user(s, "planner"), s.get(Project, int(pid)), [ref])
    res = run_cli(
        ["projects", "requests", "--city", "testville", pid],
        env={"DATABASE_URL": url, "VAR_DIR": str(tmp_path / "var")},
    )
    assert res.returncode == 0 and res.stdout.startswith(f"{ref}\tnew\tPothole"), res.stderr
    bad = run_cli(
        ["projects", "list", "--city", "testville", "--status", "finished"],
        env={"DATABASE_URL": url, "VAR_DIR": str(tmp_path / "var")},
    )
    assert bad.returncode != 0 and bad.stderr.startswith("civicpin: error:")
