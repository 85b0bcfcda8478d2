"""The catalogue without SQL: categories, questions and the business calendar from the
admin pages and the CLI, and a catalogue that the rest of civicpin obeys: location modes
(web form, Open311, intake), default priority and the SLA clock on both routing paths."""

from __future__ import annotations

import html as htmllib
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from intake.submit import Draft, ValidationFailed, submit
from routing import queue
from routing.engine import reroute
from routing.sla import due_at
from spatial.apikeys import create_key
from spatial.models import (
    Jurisdiction,
    RoutingRule,
    Service,
    ServiceAttribute,
    ServiceRequest,
)
from spatial.models_ops import AdminEvent
from tests.support.city import INSIDE, OUTSIDE, make_small_city
from tests.support.dispatch_city import (
    DispatchCity,
    csrf_from,
    login,
    make_dispatch_city,
    report,
)

V2 = "/open311/v2"
LA = ZoneInfo("America/Los_Angeles")
WEEKDAYS = {d: ["08:00", "17:00"] for d in ("mon", "tue", "wed", "thu", "fri")}


@pytest.fixture
def city(sessions) -> DispatchCity:
    with sessions.begin() as s:
        return make_dispatch_city(s)


@pytest.fixture
def admin(client, city):
    login(client, "admin")
    return client


def _post(client, path: str, **form):
    return client.post(path, data={"csrf_token": csrf_from(client, "/admin/"), **form})


def _error(html: str, field: str) -> str:
    match = re.search(rf'id="error-{re.escape(field)}" role="alert">([^<]*)<', html)
    assert match, f"no message beside {field}"
    return htmllib.unescape(match.group(1))


def _snapshot(sessions) -> tuple:
    """Everything a refused change must leave as it was."""
    with sessions() as s:
        services = s.execute(
            sa.select(Service.code, Service.name, Service.sla_hours, Service.active).order_by(
                Service.id
            )
        ).all()
        attrs = s.execute(
            sa.select(
                ServiceAttribute.code,
                ServiceAttribute.datatype,
                ServiceAttribute.order,
                ServiceAttribute.values,
                ServiceAttribute.default_value,
            ).order_by(ServiceAttribute.id)
        ).all()
        calendars = s.scalars(sa.select(Jurisdiction.business_calendar)).all()
        audit = s.scalar(sa.select(sa.func.count()).select_from(AdminEvent))
    return services, attrs, calendars, audit


def _services(client) -> dict[str, dict]:
    res = client.get(f"{V2}/services.json")
    assert res.status_code == 200
    return {s["service_code"]: s for s in res.get_json()}


def _definition(client, code: str) -> list[dict]:
    res = client.get(f"{V2}/services/{code}.json")
    assert res.status_code == 200
    return res.get_json()["attributes"]


# --------------------------------------------------------------------------- pages


def test_a_category_made_on_the_page_is_in_the_open311_catalogue_at_once(admin, sessions):
    client = admin
    assert "graffiti" not in _services(client)
    res = _post(
        client,
        "/admin/categories",
        code="graffiti",
        name="Graffiti",
        group="Streets",
        description="Paint on walls",
        keywords="tag, spray paint",
        location_mode="optional",
        default_department="parks",
        default_priority="high",
        sla_hours="24",
        sla_clock="calendar",
        contact_required="on",
    )
    assert res.status_code == 302
    page = client.get(res.headers["Location"]).get_data(as_text=True)
    assert "Graffiti" in page and 'value="24"' in page
    listed = _services(client)["graffiti"]
    assert listed["service_name"] == "Graffiti" and listed["group"] == "Streets"
    assert listed["keywords"] == "tag, spray paint" and listed["metadata"] is False
    with sessions() as s:
        svc = s.scalar(sa.select(Service).where(Service.code == "graffiti"))
        assert (svc.location_mode, svc.default_priority, svc.sla_clock) == (
            "optional",
            "high",
            "calendar",
        )
        assert svc.contact_required and not svc.private and svc.sla_hours == 24
        service_id = svc.id

    # Renamed, then made private: the catalogue follows each change at the next request.
    form = {
        "code": "graffiti",
        "name": "Graffiti removal",
        "location_mode": "optional",
        "type": "batch",
        "default_priority": "high",
        "sla_clock": "calendar",
        "sla_hours": "24",
        "active": "on",
    }
    assert _post(client, f"/admin/categories/{service_id}", **form).status_code == 302
    listed = _services(client)["graffiti"]
    assert listed["service_name"] == "Graffiti removal" and listed["type"] == "batch"
    assert _post(client, f"/admin/categories/{service_id}", **form, private="on").status_code == 302
    assert "graffiti" not in _services(client)
    assert "Graffiti removal" in client.get("/admin/categories").get_data(as_text=True)


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"code": "pothole", "name": "Again"}, "code", "already exists"),
        ({"code": "bad code!", "name": "X"}, "code", "letters, digits"),
        ({"code": "trees", "name": ""}, "name", "required"),
        ({"code": "trees", "name": "Trees", "sla_hours": "-4"}, "sla_hours", "zero or more"),
        ({"code": "trees", "name": "Trees", "sla_hours": "soon"}, "sla_hours", "not a number"),
        ({"code": "trees", "name": "Trees", "location_mode": "map"}, "location_mode", "one of"),
        (
            {"code": "trees", "name": "Trees", "default_department": "nope"},
            "default_department",
            "no department",
        ),
        (
            {"code": "trees", "name": "Trees", "default_priority": "asap"},
            "default_priority",
            "one of",
        ),
    ],
)
def test_a_bad_category_field_is_named_beside_it_and_nothing_is_written(
    admin, sessions, form, field, message
):
    before = _snapshot(sessions)
    res = _post(admin, "/admin/categories", **form)
    assert res.status_code == 400
    assert message in _error(res.get_data(as_text=True), field)
    assert _snapshot(sessions) == before


def test_questions_are_added_edited_moved_and_removed_and_the_definition_follows(
    admin, sessions, city
):
    client = admin
    base = f"/admin/categories/{city.pothole_id}"
    before = _snapshot(sessions)
    refused = [
        ({"code": "size", "datatype": "bool", "description": "Size?"}, "datatype", "one of"),
        (
            {"code": "size", "datatype": "singlevaluelist", "description": "Size?"},
            "values",
            "needs its values",
        ),
        (
            {"code": "size", "datatype": "number", "description": "Size?", "values": "s=Small"},
            "values",
            "only list questions",
        ),
        (
            {
                "code": "size",
                "datatype": "singlevaluelist",
                "description": "Size?",
                "values": "s=Small\nl=Large",
                "default_value": "xl",
            },
            "default_value",
            "not among the values",
        ),
        ({"code": "depth", "datatype": "string", "description": "Again?"}, "code", "already has"),
        (
            {"code": "size", "datatype": "number", "description": "Size?", "default_value": "big"},
            "default_value",
            "not a number",
        ),
    ]
    for form, field, message in refused:
        res = _post(client, f"{base}/questions", **form)
        assert res.status_code == 400, form
        assert message in _error(res.get_data(as_text=True), field), form
    assert _snapshot(sessions) == before

    res = _post(
        client,
        f"{base}/questions",
        code="size",
        datatype="singlevaluelist",
        description="How big is it?",
        datatype_description="Compare with a car tyre",
        values="s=Smaller than a tyre\nl=Larger than a tyre",
        default_value="s",
        required="on",
        order="1",
    )
    assert res.status_code == 302
    attrs = _definition(client, "pothole")
    assert [a["code"] for a in attrs] == ["size", "depth", "lane", "hazards", "seen"]
    size = attrs[0]
    assert size["datatype"] == "singlevaluelist" and size["required"] is True
    assert size["datatype_description"] == "Compare with a car tyre"
    assert size["values"] == [
        {"key": "s", "name": "Smaller than a tyre"},
        {"key": "l", "name": "Larger than a tyre"},
    ]
    with sessions() as s:
        size_id = s.scalar(sa.select(ServiceAttribute.id).where(ServiceAttribute.code == "size"))
        assert s.get(ServiceAttribute, size_id).default_value == "s"

    assert _post(client, f"{base}/questions/{size_id}/move", direction="down").status_code == 302
    assert [a["code"] for a in _definition(client, "pothole")][:2] == ["depth", "size"]

    res = _post(
        client,
        f"{base}/questions/{size_id}",
        code="size",
        datatype="multivaluelist",
        description="How big, and where?",
        values="s=Small\nl=Large\nw=Wide",
        default_value="s,w",
    )
    assert res.status_code == 302
    size = next(a for a in _definition(client, "pothole") if a["code"] == "size")
    assert size["datatype"] == "multivaluelist" and size["required"] is False
    assert [v["key"] for v in size["values"]] == ["s", "l", "w"]
    with sessions() as s:
        assert s.get(ServiceAttribute, size_id).default_value == ["s", "w"]

    assert _post(client, f"{base}/questions/{size_id}/delete").status_code == 302
    assert "size" not in [a["code"] for a in _definition(client, "pothole")]
    with sessions() as s:
        actions = s.scalars(sa.select(AdminEvent.action).order_by(AdminEvent.id)).all()
    assert actions == ["question.add", "question.move", "question.edit", "question.remove"]


def test_a_category_with_requests_is_deactivated_not_deleted(admin, sessions, city):
    with sessions.begin() as s:
        report(s, _media())
    res = _post(admin, f"/admin/categories/{city.pothole_id}/delete")
    assert res.status_code == 400
    assert "deactivate it instead" in _error(res.get_data(as_text=True), "delete")
    with sessions() as s:
        assert s.get(Service, city.pothole_id) is not None
    form = {"code": "pothole", "name": "Pothole", "location_mode": "required"}
    assert _post(admin, f"/admin/categories/{city.pothole_id}", **form).status_code == 302
    assert "pothole" not in _services(admin)  # "active" was not ticked


def test_another_citys_category_is_not_found(admin, sessions):
    with sessions.begin() as s:
        other = make_small_city(s, "otherville")
        other_id = other["pothole"].id
        attr_id = other["pothole"].attributes[0].id
    assert admin.get(f"/admin/categories/{other_id}").status_code == 404
    res = _post(admin, f"/admin/categories/{other_id}/questions/{attr_id}/delete")
    assert res.status_code == 404
    with sessions() as s:
        assert s.get(ServiceAttribute, attr_id) is not None


def test_the_calendar_page_sets_hours_and_named_holidays(admin, sessions, city):
    client = admin
    before = _snapshot(sessions)
    for form, message in [
        ({"mon_opens": "17:00", "mon_closes": "08:00"}, "closing time must be after"),
        ({"mon_opens": "25:00", "mon_closes": "26:00"}, "HH:MM"),
        ({"mon_opens": "08:00"}, "both the opening and the closing time"),
    ]:
        res = _post(client, "/admin/calendar", **form)
        assert res.status_code == 400
        assert message in _error(res.get_data(as_text=True), "hours")
    res = _post(client, "/admin/calendar/holidays", date="2026-12-25", name="Christmas")
    assert res.status_code == 400  # no open day yet
    assert "open at least one day" in _error(res.get_data(as_text=True), "holiday")
    assert _snapshot(sessions) == before

    form = {}
    for day in WEEKDAYS:
        form[f"{day}_opens"], form[f"{day}_closes"] = "08:00", "17:00"
    assert _post(client, "/admin/calendar", **form).status_code == 302
    res = _post(client, "/admin/calendar/holidays", date="2026-12-25", name="Christmas Day")
    assert res.status_code == 302
    assert _post(client, "/admin/calendar/holidays", date="2027-01-01").status_code == 302
    page = client.get("/admin/calendar").get_data(as_text=True)
    assert "Christmas Day" in page and 'value="08:00"' in page
    with sessions() as s:
        cal = s.get(Jurisdiction, city.city_id).business_calendar
    assert cal == {
        "hours": WEEKDAYS,
        "holidays": [{"date": "2026-12-25", "name": "Christmas Day"}, "2027-01-01"],
    }
    res = _post(client, "/admin/calendar/holidays/remove", date="2026-12-25")
    assert res.status_code == 302
    with sessions() as s:
        assert s.get(Jurisdiction, city.city_id).business_calendar["holidays"] == ["2027-01-01"]


# --------------------------------------------------------------------------- CLI


def test_the_cli_sets_up_categories_questions_and_the_calendar(cli, sessions):
    with sessions.begin() as s:
        make_small_city(s)

    def ok(*args):
        res = cli(*args)
        assert res.returncode == 0, res.stderr
        return res.stdout

    out = ok(
        "categories", "add", "--city", "testville", "helpdesk",
        "--name", "IT help desk", "--group", "Internal", "--location", "none",
        "--department", "streets", "--priority", "low", "--sla-hours", "8",
        "--sla-clock", "business", "--private", "--keywords", "laptop, printer",
    )  # fmt: skip
    assert "created category helpdesk" in out
    out = ok(
        "questions", "add", "--city", "testville", "--category", "helpdesk", "device",
        "--datatype", "singlevaluelist", "--question", "Which device?",
        "--value", "laptop=Laptop", "--value", "printer=Printer",
        "--default", "laptop", "--required", "--help-text", "Pick one",
    )  # fmt: skip
    assert "added question device" in out
    ok(
        "questions", "add", "--city", "testville", "--category", "helpdesk", "room",
        "--datatype", "string", "--question", "Which room?", "--order", "1",
    )  # fmt: skip
    listing = ok("questions", "list", "--city", "testville", "--category", "helpdesk")
    assert [line.split("\t")[1] for line in listing.splitlines()] == ["room", "device"]
    assert "laptop=Laptop, printer=Printer" in listing and 'default "laptop"' in listing

    out = ok("categories", "set", "--city", "testville", "helpdesk", "--sla-hours", "4")
    assert "sla_hours 8.0 -> 4.0" in out
    assert "nothing changed" in ok(
        "categories", "set", "--city", "testville", "helpdesk", "--sla-hours", "4"
    )
    line = next(
        row for row in ok("categories", "list", "--city", "testville").splitlines()
        if row.startswith("helpdesk\t")
    )  # fmt: skip
    assert "location none" in line and "SLA 4h business" in line and "private" in line
    assert "2 question(s)" in line
    # A help-desk category is for staff only, and so always private.
    assert "internal False -> True" in ok(
        "categories", "set", "--city", "testville", "helpdesk", "--internal", "--public"
    )
    line = next(
        row for row in ok("categories", "list", "--city", "testville").splitlines()
        if row.startswith("helpdesk\t")
    )  # fmt: skip
    assert "\tinternal\t" in line
    with sessions() as s:
        helpdesk = s.scalar(sa.select(Service).where(Service.code == "helpdesk"))
        assert helpdesk.internal and helpdesk.private

    out = ok(
        "calendar", "set", "--city", "testville", "--hours", "mon-fri=08:00-17:00",
        "--hours", "sat=09:00-12:00", "--holiday", "2026-12-25=Christmas Day",
    )  # fmt: skip
    assert "mon 08:00-17:00" in out and "sat 09:00-12:00" in out and "1 holiday(s)" in out
    shown = ok("calendar", "show", "--city", "testville")
    assert "sun\tclosed" in shown and "holiday\t2026-12-25\tChristmas Day" in shown
    ok("calendar", "set", "--city", "testville", "--hours", "sat=closed")
    assert "sat\tclosed" in ok("calendar", "show", "--city", "testville")

    before = _snapshot(sessions)
    for args, message in [
        (("categories", "add", "--city", "testville", "pothole", "--name", "X"), "already exists"),
        (("categories", "set", "--city", "testville", "pothole", "--sla-hours", "-1"), "zero or more"),
        (("categories", "set", "--city", "testville", "nope", "--name", "X"), "no category"),
        (
            ("questions", "add", "--city", "testville", "--category", "pothole", "kind",
             "--datatype", "multivaluelist", "--question", "Kind?"),
            "needs its values",
        ),
        (
            ("questions", "set", "--city", "testville", "--category", "helpdesk", "device",
             "--default", "phone"),
            "not among the values",
        ),
        (("calendar", "set", "--city", "testville", "--hours", "mon=9-5"), "HH:MM-HH:MM"),
        (("calendar", "set", "--city", "testville", "--hours", "mon=17:00-08:00"), "after the opening"),
        (("calendar", "set", "--city", "testville", "--holiday", "25/12/2026"), "not a date"),
        (("categories", "remove", "--city", "testville", "helpdesk-x"), "no category"),
    ]:  # fmt: skip
        res = cli(*args)
        assert res.returncode != 0, args
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("civicpin: error: "), res.stderr
        assert message in lines[0], (args, lines[0])
    assert _snapshot(sessions) == before

    ok("questions", "remove", "--city", "testville", "--category", "helpdesk", "room")
    ok("categories", "remove", "--city", "testville", "helpdesk")
    with sessions() as s:
        assert s.scalar(sa.select(Service).where(Service.code == "helpdesk")) is None
        actions = s.scalars(sa.select(AdminEvent.action).order_by(AdminEvent.id)).all()
    assert actions == [
        "category.create",
        "question.add",
        "question.add",
        "category.edit",
        "category.edit",
        "calendar.set",
        "calendar.set",
        "question.remove",
        "category.delete",
    ]


# --------------------------------------------------------------------------- location modes


@pytest.fixture
def small(sessions, tmp_path):
    with sessions.begin() as s:
        made = make_small_city(s)
        for code, mode in (("helpdesk", "none"), ("graffiti", "optional")):
            s.add(
                Service(
                    jurisdiction_id=made["city"].id,
                    code=code,
                    name=code.title(),
                    location_mode=mode,
                    default_department_id=made["department"].id,
                )
            )
    return tmp_path / "media"


def _submit(s, code: str, **kw):
    draft = Draft(city="testville", service_code=code, description="help", **kw)
    return submit(s, draft, media_dir=_media(), public_base_url="http://127.0.0.1:5000").request


def _media():
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp(prefix="civicpin-media-"))


def test_intake_follows_the_location_mode(small, sessions):
    with sessions.begin() as s:
        none = _submit(s, "helpdesk", lat=INSIDE[0], lon=INSIDE[1], address="1 Main St")
        assert none.location is None and none.address is None  # sent, and dropped
        assert not none.needs_location and none.department.code == "streets"
        optional = _submit(s, "graffiti")
        assert optional.location is None and not optional.needs_location
        assert optional.routed_at is not None and optional.department.code == "streets"
        placed = _submit(s, "graffiti", lat=INSIDE[0], lon=INSIDE[1])
        assert placed.location is not None
        ids = {none.public_id: "helpdesk", optional.public_id: "graffiti"}
    # Active Dispatch lists them, without a "needs location" flag (no place is wanted).
    with sessions() as s:
        city = s.scalar(sa.select(Jurisdiction))
        items = queue.queue(s, city, queue.parse_filters({}))
        flagged = queue.queue(s, city, queue.parse_filters({"needs_location": "1"}))
    listed = {i["public_id"]: i for i in items}
    assert set(ids) <= set(listed) and not any(listed[p]["needs_location"] for p in ids)
    assert not flagged
    for code, kw in [
        ("graffiti", {"lat": OUTSIDE[0], "lon": OUTSIDE[1]}),
        ("pothole", {"attributes": {"depth": "3"}}),
    ]:
        with sessions.begin() as s, pytest.raises(ValidationFailed) as err:
            _submit(s, code, **kw)
        assert list(err.value.errors) == ["location"]


def test_open311_asks_for_a_place_only_when_the_category_needs_one(small, client, sessions):
    with sessions.begin() as s:
        _, key = create_key(s, "testville", "old app")

    def post(**data):
        return client.post(f"{V2}/requests.json", data={"api_key": key, **data})

    # An app that always sends its GPS and an address we do not know: ignored, accepted.
    res = post(service_code="helpdesk", lat="34.05", long="-118.25", address_string="Desk 4")
    assert res.status_code == 200, res.get_data(as_text=True)
    assert post(service_code="graffiti", description="tag on a wall").status_code == 200
    res = post(service_code="pothole", **{"attribute[depth]": "3"})
    assert res.status_code == 400 and "lat/long" in res.get_data(as_text=True)
    with sessions() as s:
        rows = s.execute(
            sa.select(Service.code, ServiceRequest.location, ServiceRequest.address)
            .join(Service, Service.id == ServiceRequest.service_id)
            .order_by(ServiceRequest.id)
        ).all()
    assert rows == [("helpdesk", None, None), ("graffiti", None, None)]


def test_the_web_form_needs_no_pin_for_an_optional_place(small, client, sessions):
    page = client.get("/report").get_data(as_text=True)
    assert 'data-location-mode="none"' in page and 'data-location-mode="optional"' in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    res = client.post(
        "/report",
        data={
            "csrf_token": token,
            "form": "map",
            "service_code": "graffiti",
            "lat": "",
            "lon": "",
            "description": "Tag on the school wall",
        },
    )
    assert res.status_code == 303, res.get_data(as_text=True)[:2000]
    done = client.get(res.headers["Location"]).get_data(as_text=True)
    public_id = re.search(r'id="public-id">([^<]+)<', done).group(1)
    track = client.get(f"/requests/{public_id}").get_data(as_text=True)
    assert "No place given" in track and "waits for its location" not in track
    # the same with the page without a map: no place asked for a 'none' category
    plain = client.get("/report/plain?service_code=helpdesk&go=1")
    assert plain.status_code == 200 and "No place given" in plain.get_data(as_text=True)
    res = client.post(
        "/report",
        data={
            "csrf_token": token,
            "form": "map",
            "service_code": "pothole",
            "attribute[depth]": "3",
            "lat": "",
            "lon": "",
        },
    )
    assert res.status_code == 422 and "put a pin on the map" in res.get_data(as_text=True)


# --------------------------------------------------------------------------- priority, SLA


def test_default_priority_and_sla_clock_on_both_routing_paths(small, sessions):
    # Friday 2026-06-05 16:00 in Los Angeles; 2 hours of SLA.
    friday = datetime(2026, 6, 5, 16, 0, tzinfo=LA)
    with sessions.begin() as s:
        city = s.scalar(sa.select(Jurisdiction))
        city.business_calendar = {"hours": WEEKDAYS, "holidays": []}
        for code, clock, priority in (
            ("helpdesk", "business", "high"),
            ("graffiti", "calendar", "low"),
        ):
            svc = s.scalar(sa.select(Service).where(Service.code == code))
            svc.sla_hours, svc.sla_clock, svc.default_priority = 2, clock, priority
        pothole = s.scalar(sa.select(Service).where(Service.code == "pothole"))
        # a rule routes potholes, leaving the priority to the category
        pothole.default_priority = "urgent"
    expected = {
        "helpdesk": ("high", datetime(2026, 6, 8, 9, 0, tzinfo=LA)),  # Monday 09:00
        "graffiti": ("low", datetime(2026, 6, 5, 18, 0, tzinfo=LA)),  # same Friday
        "pothole": ("urgent", due_at(friday, 72, {"hours": WEEKDAYS}, "America/Los_Angeles")),
    }
    with sessions.begin() as s:
        for code in expected:
            kw = (
                {"lat": INSIDE[0], "lon": INSIDE[1], "attributes": {"depth": "3"}}
                if code == "pothole"
                else {}
            )
            draft = Draft(city="testville", service_code=code, description="x", **kw)
            submit(s, draft, media_dir=_media(), public_base_url="http://x", now=friday)

    def decided():
        with sessions() as s:
            rows = s.execute(
                sa.select(Service.code, ServiceRequest.priority, ServiceRequest.due_at).join(
                    Service, Service.id == ServiceRequest.service_id
                )
            ).all()
        return {code: (p, due.astimezone(UTC)) for code, p, due in rows}

    want = {code: (p, due.astimezone(UTC)) for code, (p, due) in expected.items()}
    assert decided() == want
    # The bulk path decides the same for requests routed the first time.
    with sessions.begin() as s:
        s.execute(sa.update(ServiceRequest).values(routed_at=None, due_at=None, priority="normal"))
        reroute(s, s.scalar(sa.select(Jurisdiction)))
    assert decided() == want
    # A re-route keeps a priority set since (a dispatcher's), where no rule names one.
    with sessions.begin() as s:
        s.execute(sa.update(ServiceRequest).values(priority="low", due_at=None))
        reroute(s, s.scalar(sa.select(Jurisdiction)))
    assert {code: p for code, (p, _) in decided().items()} == dict.fromkeys(expected, "low")
    # A rule that names a priority sets it, over the category's default and on re-routes.
    with sessions.begin() as s:
        s.execute(sa.update(RoutingRule).values(priority="high"))
        reroute(s, s.scalar(sa.select(Jurisdiction)))
    assert {code: p for code, (p, _) in decided().items()} == dict.fromkeys(expected, "low") | {
        "pothole": "high"
    }
