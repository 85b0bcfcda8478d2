"""A city's organisation without SQL: departments, crews with their zones and members,
staff membership, and dispatchers scoped to their departments, through the admin pages
and the command line."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from geoalchemy2.shape import from_shape
from shapely.geometry import MultiPolygon, box

from routing import actions
from spatial.accounts import create_user
from spatial.models import (
    Crew,
    Department,
    Jurisdiction,
    OutboxMessage,
    RoutingRule,
    ServiceRequest,
    User,
    Zone,
    ZoneLayer,
)
from spatial.models_ops import AdminEvent
from tests.support.dispatch_city import (
    BASE_URL,
    EAST,
    PASSWORD,
    WEST,
    DispatchCity,
    csrf_from,
    login,
    make_dispatch_city,
    report,
    user,
)


@pytest.fixture
def city(sessions) -> DispatchCity:
    with sessions.begin() as s:
        return make_dispatch_city(s)


@pytest.fixture
def admin(client, city):
    login(client, "admin")
    return client


def post(client, path: str, **form):
    token = csrf_from(client, "/admin/")
    return client.post(path, data={"csrf_token": token, **form})


def audit_actions(sessions) -> list[str]:
    with sessions() as s:
        return list(s.scalars(sa.select(AdminEvent.action).order_by(AdminEvent.id)))


def zone_id(sessions, city_id: int, code: str) -> int:
    with sessions() as s:
        return s.scalar(
            sa.select(Zone.id)
            .join(ZoneLayer, ZoneLayer.id == Zone.layer_id)
            .where(ZoneLayer.jurisdiction_id == city_id, Zone.code == code)
        )


def other_city(sessions) -> dict[str, int]:
    """A second city with a zone layer and a crew member of its own."""
    with sessions.begin() as s:
        other = Jurisdiction(
            slug="otherton",
            name="Otherton",
            timezone="UTC",
            public_id_prefix="OT",
            boundary=from_shape(MultiPolygon([box(0, 0, 1, 1)]), srid=4326),
        )
        s.add(other)
        s.flush()
        layer = ZoneLayer(jurisdiction_id=other.id, name="wards", version=1, is_current=True)
        s.add(layer)
        s.flush()
        zone = Zone(
            layer_id=layer.id,
            code="1",
            name="Ward 1",
            geom=from_shape(MultiPolygon([box(0, 0, 1, 1)]), srid=4326),
        )
        s.add(zone)
        stranger, _ = create_user(
            s, email="stranger@other.example", role="crew", city_slug="otherton", password=PASSWORD
        )
        s.flush()
        return {"city": other.id, "zone": zone.id, "user": stranger.id}


# --------------------------------------------------------------------------- pages


def test_an_admin_sets_up_a_department_and_a_crew_whose_member_then_sees_its_work(
    admin, client, sessions, city, settings
):
    res = post(admin, "/admin/departments", code="roads", name="Roads", email="Roads@City.example")
    assert res.status_code == 302
    with sessions() as s:
        roads = s.scalar(sa.select(Department).where(Department.code == "roads"))
        assert (roads.name, roads.email) == ("Roads", "roads@city.example")
    page = admin.get("/admin/departments").get_data(as_text=True)
    assert "roads" in page and "roads@city.example" in page

    res = post(admin, "/admin/crews", department_id=str(roads.id), code="north", name="North crew")
    assert res.status_code == 302
    with sessions() as s:
        north = s.scalar(sa.select(Crew).where(Crew.code == "north"))
    crew_page = admin.get(f"/admin/crews/{north.id}").get_data(as_text=True)
    assert "districts" in crew_page and 'name="zone"' in crew_page

    west = zone_id(sessions, city.city_id, "W")
    assert post(admin, f"/admin/crews/{north.id}/zones", zone=str(west)).status_code == 302
    member = city.users["crew_other"]  # already in the East crew
    res = post(admin, f"/admin/users/{member}/membership", op="add", crew_id=str(north.id))
    assert res.status_code == 302
    page = admin.get(f"/admin/users/{member}/membership").get_data(as_text=True)
    assert "roads/north" in page and "streets/streets-E" in page
    assert "crew_other@city.example" in admin.get(f"/admin/crews/{north.id}").get_data(as_text=True)
    assert audit_actions(sessions) == [
        "department.create",
        "crew.create",
        "crew.zones",
        "membership.add",
    ]

    # Roads now takes the potholes; "crew from zone" picks the crew that owns the zone.
    with sessions.begin() as s:
        rule = s.scalar(sa.select(RoutingRule).where(RoutingRule.name == "Potholes by district"))
        rule.department_id = roads.id
        pid = report(s, settings.media_dir, where=WEST).public_id
    with sessions() as s:
        req = s.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == pid))
        assert (req.department_id, req.crew_id) == (roads.id, north.id)

    crew_client = client.application.test_client()
    login(crew_client, "crew_other")
    # Two crews: the member chooses one, and sees that crew's work there.
    choose = crew_client.get("/crew").get_data(as_text=True)
    assert "Choose a crew" in choose and "North crew" in choose and "East crew" in choose
    page = crew_client.get(f"/crew?crew={north.id}").get_data(as_text=True)
    assert pid in page
    assert crew_client.get(f"/crew?crew={city.crew_w_id}").status_code == 403  # not theirs
    detail = crew_client.get(f"/crew/requests/{pid}").get_data(as_text=True)
    assert "Rosa Resident" in detail  # their own crew's work: contact details shown


def test_crew_assignment_mail_goes_to_the_crews_members(sessions, city, settings):
    with sessions.begin() as s:
        pid = report(s, settings.media_dir, where=WEST).public_id
        member = user(s, "crew")
        member.crews.append(s.get(Crew, city.crew_e_id))
    with sessions.begin() as s:
        req = s.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == pid))
        actions.reassign(
            s,
            user(s, "dispatcher"),
            req,
            department_id=city.streets_id,
            crew_id=city.crew_e_id,
            public_base_url=BASE_URL,
        )
    with sessions() as s:
        to = s.scalars(
            sa.select(OutboxMessage.to_addr)
            .where(OutboxMessage.kind == "crew_assignment")
            .order_by(OutboxMessage.id)
        ).all()
    # Routed to the West crew first; then the East crew's members: its own, and the West
    # crew member who joined it.
    assert to[0] == "crew@city.example"
    assert sorted(to[1:]) == ["crew@city.example", "crew_other@city.example"]


def test_a_crew_account_in_no_crew_is_told_who_adds_it(client, sessions, city):
    with sessions.begin() as s:
        member = user(s, "crew")
        member.crews.clear()
    login(client, "crew")
    res = client.get("/crew")
    text = res.get_data(as_text=True)
    assert res.status_code == 404 and "not in a crew" in text and "admin@city.example" in text


def test_bad_fields_are_shown_beside_the_field_and_nothing_is_written(admin, sessions, city):
    res = post(admin, "/admin/departments", code="streets", name="Streets again")
    assert res.status_code == 400
    assert 'id="error-code"' in res.get_data(as_text=True)
    res = post(admin, "/admin/departments", code="water", name="Water", email="not-an-address")
    assert res.status_code == 400 and 'id="error-email"' in res.get_data(as_text=True)
    res = post(admin, "/admin/departments", code="no spaces", name="Bad code")
    assert res.status_code == 400 and 'id="error-code"' in res.get_data(as_text=True)
    res = post(
        admin, "/admin/crews", department_id=str(city.streets_id), code="streets-W", name="Twin"
    )
    assert res.status_code == 400 and "already has a crew" in res.get_data(as_text=True)
    with sessions() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Department)) == 2
        assert s.scalar(sa.select(sa.func.count()).select_from(Crew)) == 3
    assert audit_actions(sessions) == []


def test_another_citys_objects_are_refused(admin, sessions, city):
    other = other_city(sessions)
    # Their user's page does not exist here; neither does adding them to a crew.
    assert admin.get(f"/admin/users/{other['user']}/membership").status_code == 404
    res = post(
        admin, f"/admin/crews/{city.crew_w_id}/members", op="add", user_id=str(other["user"])
    )
    assert res.status_code == 400 and 'id="error-user_id"' in res.get_data(as_text=True)
    # A zone of the other city's layer, with one of ours.
    west = zone_id(sessions, city.city_id, "W")
    res = post(admin, f"/admin/crews/{city.crew_w_id}/zones", zone=[str(west), str(other["zone"])])
    assert res.status_code == 400 and 'id="error-zones"' in res.get_data(as_text=True)
    with sessions() as s:
        assert (
            s.scalar(sa.select(sa.func.count()).select_from(Zone).where(Zone.crew_id.is_not(None)))
            == 0
        )
        stranger = s.get(User, other["user"])
        assert stranger.crews == []
    assert audit_actions(sessions) == []


def test_deleting_what_is_in_use_is_refused_with_what_uses_it(admin, sessions, city, settings):
    with sessions.begin() as s:
        report(s, settings.media_dir, where=WEST)  # Streets, West crew
    res = post(admin, f"/admin/departments/{city.streets_id}/delete")
    text = res.get_data(as_text=True)
    assert res.status_code == 400
    assert "routing rule" in text and "Potholes by district" in text and "pothole" in text
    res = post(admin, f"/admin/crews/{city.crew_w_id}/delete")
    assert res.status_code == 400 and "1 request" in res.get_data(as_text=True)
    # An unused crew goes, and its members' memberships with it.
    assert post(admin, f"/admin/crews/{city.crew_e_id}/delete").status_code == 302
    with sessions() as s:
        assert s.get(Crew, city.crew_e_id) is None
        assert s.get(Department, city.streets_id) is not None
        assert user(s, "crew_other").crews == []
    assert audit_actions(sessions) == ["crew.delete"]


# --------------------------------------------------------------------------- dispatch scope


def _three_requests(sessions, city, settings) -> dict[str, str]:
    """One request each for Streets, Parks and the central queue (no department)."""
    with sessions.begin() as s:
        streets = report(s, settings.media_dir, where=WEST)
        parks = report(s, settings.media_dir, where=EAST)
        central = report(s, settings.media_dir, where=EAST)
        parks.department_id, parks.crew_id = city.parks_id, city.parks_crew_id
        central.department_id, central.crew_id = None, None
        return {
            "streets": streets.public_id,
            "parks": parks.public_id,
            "central": central.public_id,
        }


def test_a_dispatcher_scoped_to_a_department_works_its_requests_and_the_central_queue(
    client, sessions, city, settings
):
    pids = _three_requests(sessions, city, settings)
    login(client, "parks_dispatcher")
    items = client.get("/dispatch/api/queue").get_json()["items"]
    assert {i["public_id"] for i in items} == {pids["parks"], pids["central"]}
    console = client.get("/dispatch").get_data(as_text=True)
    assert pids["parks"] in console and pids["streets"] not in console
    assert "Your queue: Parks and the central queue" in console
    updates = client.get("/dispatch/api/updates?after_id=0").get_json()["arrivals"]
    assert {i["public_id"] for i in updates} == {pids["parks"], pids["central"]}

    assert client.get(f"/dispatch/requests/{pids['parks']}").status_code == 200
    assert client.get(f"/dispatch/requests/{pids['central']}").status_code == 200
    assert client.get(f"/dispatch/requests/{pids['streets']}").status_code == 403
    token = csrf_from(client, "/dispatch")
    res = client.post(
        f"/dispatch/requests/{pids['streets']}/triage",
        data={"csrf_token": token, "confirm": "1", "priority": "urgent"},
    )
    assert res.status_code == 403
    res = client.post(
        f"/dispatch/requests/{pids['central']}/triage",
        data={"csrf_token": token, "confirm": "1", "priority": "urgent"},
    )
    assert res.status_code == 303
    with sessions() as s:
        prio = dict(s.execute(sa.select(ServiceRequest.public_id, ServiceRequest.priority)).all())
    assert prio[pids["central"]] == "urgent" and prio[pids["streets"]] != "urgent"


def test_a_dispatcher_in_no_department_sees_every_request(client, sessions, city, settings):
    pids = _three_requests(sessions, city, settings)
    login(client, "dispatcher")
    items = client.get("/dispatch/api/queue").get_json()["items"]
    assert {i["public_id"] for i in items} == set(pids.values())
    assert "Your queue:" not in client.get("/dispatch").get_data(as_text=True)
    assert client.get(f"/dispatch/requests/{pids['streets']}").status_code == 200


def test_adding_a_dispatcher_to_a_department_scopes_their_queue(
    admin, client, sessions, city, settings
):
    pids = _three_requests(sessions, city, settings)
    dispatcher = city.users["dispatcher"]
    res = post(
        admin, f"/admin/users/{dispatcher}/membership", op="add", department_id=str(city.streets_id)
    )
    assert res.status_code == 302
    other = client.application.test_client()
    login(other, "dispatcher")
    items = other.get("/dispatch/api/queue").get_json()["items"]
    assert {i["public_id"] for i in items} == {pids["streets"], pids["central"]}
    res = post(
        admin,
        f"/admin/users/{dispatcher}/membership",
        op="remove",
        department_id=str(city.streets_id),
    )
    assert res.status_code == 302
    items = other.get("/dispatch/api/queue").get_json()["items"]
    assert {i["public_id"] for i in items} == set(pids.values())


# --------------------------------------------------------------------------- command line


def test_the_command_line_sets_up_the_same_organisation(cli, sessions, city):
    ok = cli("departments", "add", "roads", "--name", "Roads", "--email", "roads@city.example")
    assert ok.returncode == 0, ok.stderr
    ok = cli(
        "crews",
        "add",
        "north",
        "--department",
        "roads",
        "--name",
        "North crew",
        "--zones",
        "districts:W",
    )
    assert ok.returncode == 0, ok.stderr
    ok = cli("users", "member", "--email", "crew_other@city.example", "--crew", "roads/north")
    assert ok.returncode == 0, ok.stderr
    ok = cli("users", "member", "--email", "agent@city.example", "--department", "roads")
    assert ok.returncode == 0, ok.stderr
    listed = cli("crews", "list", "--city", "testville", "--department", "roads")
    assert listed.stdout.splitlines() == [
        "roads/north\tNorth crew\tzones: districts:W\tmembers: crew_other@city.example"
    ]
    depts = cli("departments", "list").stdout
    assert "roads\tRoads\troads@city.example\tcrews: north\tstaff: agent@city.example" in depts
    ok = cli("departments", "set", "roads", "--name", "Roads and bridges", "--no-email")
    assert ok.returncode == 0, ok.stderr
    with sessions() as s:
        roads = s.scalar(sa.select(Department).where(Department.code == "roads"))
        assert (roads.name, roads.email) == ("Roads and bridges", None)
        north = s.scalar(sa.select(Crew).where(Crew.code == "north"))
        west = s.get(Zone, zone_id(sessions, city.city_id, "W"))
        assert (west.crew_id, west.department_id) == (north.id, roads.id)
        assert [c.code for c in user(s, "crew_other").crews] == ["streets-E", "north"]
        assert [d.code for d in user(s, "agent").departments] == ["roads"]

    ok = cli(
        "users", "member", "--email", "crew_other@city.example", "--crew", "roads/north", "--remove"
    )
    assert ok.returncode == 0, ok.stderr
    assert cli("crews", "remove", "roads/north").returncode == 0
    with sessions() as s:
        assert s.get(Zone, zone_id(sessions, city.city_id, "W")).crew_id is None
    assert audit_actions(sessions) == [
        "department.create",
        "crew.create",
        "membership.add",
        "membership.add",
        "department.edit",
        "membership.remove",
        "crew.delete",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["departments", "add", "streets", "--name", "Again"], "already has a department"),
        (["departments", "add", "water", "--name", "W", "--email", "nope"], "e-mail"),
        (["departments", "remove", "streets"], "routing rule"),
        (["crews", "add", "x", "--department", "nope", "--name", "X"], "no department"),
        (
            [
                "crews",
                "add",
                "x",
                "--department",
                "streets",
                "--name",
                "X",
                "--zones",
                "districts:Q",
            ],
            "districts:Q",
        ),
        (
            ["users", "member", "--email", "stranger@other.example", "--crew", "streets/streets-W"],
            "does not work in",
        ),
        (["users", "member", "--email", "crew@city.example"], "--crew"),
    ],
)
def test_bad_command_line_input_is_one_line_and_writes_nothing(cli, sessions, city, args, message):
    other_city(sessions)
    with sessions() as s:
        before = (
            s.scalar(sa.select(sa.func.count()).select_from(Department)),
            s.scalar(sa.select(sa.func.count()).select_from(Crew)),
        )
    res = cli(*args, "--city", "testville")
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("civicpin: error: ") and message in lines[0]
    with sessions() as s:
        after = (
            s.scalar(sa.select(sa.func.count()).select_from(Department)),
            s.scalar(sa.select(sa.func.count()).select_from(Crew)),
        )
        assert (
            s.scalars(sa.select(User).where(User.email == "stranger@other.example")).one().crews
            == []
        )
    assert after == before
    assert audit_actions(sessions) == []


# --------------------------------------------------------------------------- migration


def test_memberships_survive_a_downgrade_and_upgrade_of_the_schema(engine, sessions, city):
    from spatial.db import downgrade, migrate

    with sessions.begin() as s:
        # Two crews: the single column of the older schema keeps the first one.
        member = user(s, "crew")
        member.crews.append(s.get(Crew, city.crew_e_id))
    downgrade(engine, "0520")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT email, crew_id, department_id FROM app_user "
                "WHERE crew_id IS NOT NULL OR department_id IS NOT NULL ORDER BY email"
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("crew@city.example", city.crew_w_id, None),
        ("crew_other@city.example", city.crew_e_id, None),
        ("parks_dispatcher@city.example", None, city.parks_id),
    ]
    migrate(engine)
    with sessions() as s:
        assert [c.id for c in user(s, "crew").crews] == [city.crew_w_id]
        assert [c.id for c in user(s, "crew_other").crews] == [city.crew_e_id]
        assert [d.id for d in user(s, "parks_dispatcher").departments] == [city.parks_id]
