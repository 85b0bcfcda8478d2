"""A new city from the browser, its set-up checklist, the default response templates and a
dispatcher's reply in their own words (over real SMTP)."""

from __future__ import annotations

import io
import json
import re
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from notify.worker import run_once
from routing.setup_checklist import DEFAULT_TEMPLATES
from spatial.accounts import create_user
from spatial.admin_audit import AdminEvent
from spatial.models import (
    Crew,
    Department,
    Follower,
    Jurisdiction,
    RequestEvent,
    ResponseTemplate,
    RoutingRule,
    RuleSet,
    Service,
    ServiceRequest,
    ZoneLayer,
    now_utc,
)
from spatial.models_mail import MailAddress
from spatial.zones import create_city
from tests.support.browser import chromium, serve, watch_problems
from tests.support.dispatch_city import PASSWORD, csrf_from, login, make_dispatch_city, report

CAMBRIDGE = Path(__file__).parent / "data" / "cambridge"
BOUNDARY = CAMBRIDGE / "BOUNDARY_CityBoundary.geojson"
ROOT = "root@install.example"
FORM = {"name": "Cambridge", "slug": "cambridge", "timezone": "America/New_York", "prefix": ""}


@pytest.fixture
def city(sessions):
    with sessions.begin() as s:
        info = make_dispatch_city(s)
        create_user(s, email=ROOT, role="install_admin", password=PASSWORD)
        return info


def sign_in(client, email: str) -> None:
    token = csrf_from(client, "/login")
    res = client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
    assert res.status_code == 302, res.get_data(as_text=True)


@pytest.fixture
def root(client, city):
    sign_in(client, ROOT)
    return client


def post_city(client, form: dict, file: tuple[bytes, str] | None = None):
    data = {"csrf_token": csrf_from(client, "/admin/cities/new"), **form}
    if file is not None:
        data["boundary"] = (io.BytesIO(file[0]), file[1])
    return client.post("/admin/cities/new", data=data, content_type="multipart/form-data")


def counts(sessions) -> tuple[int, int, int]:
    with sessions() as s:
        return (
            s.scalar(sa.select(sa.func.count()).select_from(Jurisdiction)),
            s.scalar(sa.select(sa.func.count()).select_from(ResponseTemplate)),
            s.scalar(sa.select(sa.func.count()).select_from(AdminEvent)),
        )


def upload_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("civicpin-city-*")}


# --------------------------------------------------------------------------- new city page


def test_an_install_admin_creates_a_city_from_the_page(root, sessions, city):
    home = root.get("/admin/").get_data(as_text=True)
    assert 'id="add-city"' in home and "/admin/cities/new" in home
    page = root.get("/admin/cities/new").get_data(as_text=True)
    assert '<option value="America/New_York">' in page

    res = post_city(root, FORM, (BOUNDARY.read_bytes(), "BOUNDARY_CityBoundary.geojson"))
    assert res.status_code == 302, res.get_data(as_text=True)
    assert res.headers["Location"].endswith("/c/cambridge/admin/")
    with sessions() as s:
        cam = s.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == "cambridge"))
        assert (cam.name, cam.timezone, cam.public_id_prefix) == (
            "Cambridge",
            "America/New_York",
            "C",
        )
        # a pin in Cambridge Common is inside the new city, one in Boston is not
        inside = [
            s.scalar(sa.select(sa.func.ST_Contains(Jurisdiction.boundary, pt)).where(
                Jurisdiction.id == cam.id))
            for pt in (
                sa.func.ST_SetSRID(sa.func.ST_MakePoint(-71.1203, 42.3765), 4326),
                sa.func.ST_SetSRID(sa.func.ST_MakePoint(-71.0589, 42.3601), 4326),
            )
        ]  # fmt: skip
        assert inside == [True, False]
        names = set(
            s.scalars(
                sa.select(ResponseTemplate.name).where(ResponseTemplate.jurisdiction_id == cam.id)
            )
        )
        assert names == {name for name, _ in DEFAULT_TEMPLATES}
        (event,) = s.scalars(sa.select(AdminEvent)).all()
        assert (event.action, event.object_id, event.jurisdiction_id, event.actor_label) == (
            "city.create",
            "cambridge",
            None,
            ROOT,
        )
    # the new city's admin home, at its own address, lists what it lacks
    home = root.get(res.headers["Location"]).get_data(as_text=True)
    assert "City Cambridge created" in home and "Set-up of Cambridge" in home
    assert 'id="setup-templates"' in home and "7 templates" in home
    assert 'id="setup-departments" data-done="no"' in home
    # testville's checklist is its own
    assert "Set-up of Cambridge" not in root.get("/admin/").get_data(as_text=True)


def test_a_fresh_install_starts_with_its_first_city(client, sessions):
    with sessions.begin() as s:
        create_user(s, email=ROOT, role="install_admin", password=PASSWORD)
    sign_in(client, ROOT)
    res = client.get("/admin/")
    assert res.status_code == 302 and res.headers["Location"].endswith("/admin/cities/new")
    page = client.get("/admin/cities/new").get_data(as_text=True)
    assert 'id="new-city-form"' in page
    res = post_city(client, FORM, (BOUNDARY.read_bytes(), "boundary.geojson"))
    assert res.status_code == 302 and res.headers["Location"].endswith("/c/cambridge/admin/")
    assert "Set-up of Cambridge" in client.get("/admin/").get_data(as_text=True)


def test_a_city_admin_may_not_add_a_city(client, sessions, city):
    login(client, "admin")
    assert client.get("/admin/cities/new").status_code == 403
    assert 'id="add-city"' not in client.get("/admin/").get_data(as_text=True)
    before = counts(sessions)
    token = csrf_from(client, "/admin/")
    res = client.post(
        "/admin/cities/new",
        data={"csrf_token": token, **FORM, "boundary": (io.BytesIO(BOUNDARY.read_bytes()), "b.geojson")},
        content_type="multipart/form-data",
    )  # fmt: skip
    assert res.status_code == 403
    assert counts(sessions) == before


POINTS = json.dumps(
    {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"name": "City Hall"},
                "geometry": {"type": "Point", "coordinates": [-71.1043, 42.3671]},
            }
        ],
    }
).encode()


@pytest.mark.parametrize(
    ("form", "file", "field", "message"),
    [
        ({"slug": "Cam Bridge"}, "boundary", "slug", "must be lower-case letters"),
        ({"slug": "testville"}, "boundary", "slug", "a city with slug 'testville' already exists"),
        ({"timezone": "Mars/Olympus_Mons"}, "boundary", "timezone", "unknown time zone"),
        ({"prefix": "CAMBRIDGE1"}, "boundary", "prefix", "must be 1-8 upper-case letters"),
        ({"prefix": "TV"}, "boundary", "prefix", "public id prefix 'TV' is the city 'testville'"),
        ({"name": " "}, "boundary", "name", "the city name must not be empty"),
        ({}, "points", "boundary", "has no polygon geometries (found Point)"),
        ({}, "text", "boundary", "use a .geojson, .json, .zip (Shapefile) or .gpkg file"),
        ({}, "garbage", "boundary", "is not a readable GeoJSON file"),
        ({}, None, "boundary", "choose the city's boundary"),
    ],
)
def test_a_bad_field_is_refused_beside_it_and_nothing_is_written(
    root, sessions, city, form, file, field, message
):
    files = {
        "boundary": (BOUNDARY.read_bytes(), "cambridge.geojson"),
        "points": (POINTS, "city-hall.geojson"),
        "text": (b"Cambridge, MA", "cambridge.txt"),
        "garbage": (b"\x00\x01 not json", "cambridge.geojson"),
        None: None,
    }
    before = counts(sessions)
    dirs = upload_dirs()
    res = post_city(root, {**FORM, **form}, files[file])
    assert res.status_code == 400
    html = res.get_data(as_text=True)
    beside = re.search(rf'id="error-{field}" role="alert">([^<]*)<', html)
    assert beside and message in beside.group(1).replace("&#39;", "'"), html[-3000:]
    assert counts(sessions) == before
    assert upload_dirs() <= dirs
    # what was typed is still there to correct
    assert 'value="Cambridge"' in html or field == "name"


# --------------------------------------------------------------------------- checklist


CAM_ADMIN = "/c/cambridge/admin/"


def checklist_state(client) -> dict[str, str]:
    html = client.get(CAM_ADMIN).get_data(as_text=True)
    return dict(re.findall(r'id="setup-(\w+)" data-done="(yes|no)"', html))


def test_the_checklist_follows_what_the_city_gets(root, sessions, city):
    with sessions.begin() as s:
        cam_id = create_city(s, "cambridge", "Cambridge", "America/New_York", BOUNDARY).id
    html = root.get(CAM_ADMIN).get_data(as_text=True)
    assert "Set-up of Cambridge" in html and "Set-up complete" not in html
    state = checklist_state(root)
    assert state == {
        "zones": "no",
        "departments": "no",
        "crews": "no",
        "categories": "no",
        "rules": "no",
        "dispatcher": "no",
        "intake": "no",
        "templates": "no",
        "calendar": "no",
    }
    assert "no zone layer yet" in html and "no intake address yet" in html
    assert re.search(r'id="setup-calendar"[^>]*>\s*<span class="setup-state">optional', html)
    assert html.count('class="setup-item is-missing"') == 8  # the calendar is not missing
    # every item links to the page that adds it, at the city's address
    pages = ("layers", "departments", "crews", "categories", "rules", "users", "mail",
             "templates", "calendar")  # fmt: skip
    for page in pages:
        assert f'href="{CAM_ADMIN}{page}"' in html

    def add(key, make):
        with sessions.begin() as s:
            made = make(s)
            s.flush()
        assert checklist_state(root)[key] == "yes", key
        return made.id

    add("zones", lambda s: s.merge(ZoneLayer(jurisdiction_id=cam_id, name="wards", version=1)))
    dept_id = add(
        "departments",
        lambda s: s.merge(Department(jurisdiction_id=cam_id, code="dpw", name="Public Works")),
    )
    add("crews", lambda s: s.merge(Crew(department_id=dept_id, code="n", name="North")))
    svc_id = add(
        "categories",
        lambda s: s.merge(Service(jurisdiction_id=cam_id, code="pothole", name="Pothole")),
    )
    with sessions.begin() as s:
        rs = RuleSet(jurisdiction_id=cam_id, version=1, status="published")
        rs.rules = [RoutingRule(position=1, name="All", department_id=dept_id, active=False)]
        s.add(rs)
    assert checklist_state(root)["rules"] == "no"  # a published set without an active rule
    with sessions.begin() as s:
        s.scalar(sa.select(RoutingRule).where(RoutingRule.name == "All")).active = True
    assert checklist_state(root)["rules"] == "yes"
    with sessions.begin() as s:
        create_user(s, email="crew@cambridge.example", role="crew", city_slug="cambridge",
                    password=PASSWORD)  # fmt: skip
    assert checklist_state(root)["dispatcher"] == "no"  # a crew member is not one
    with sessions.begin() as s:
        create_user(s, email="chief@cambridge.example", role="admin", city_slug="cambridge",
                    password=PASSWORD)  # fmt: skip
    assert checklist_state(root)["dispatcher"] == "no"  # nor the city's administrator
    with sessions.begin() as s:
        create_user(s, email="desk@cambridge.example", role="dispatcher", city_slug="cambridge",
                    password=PASSWORD)  # fmt: skip
    assert checklist_state(root)["dispatcher"] == "yes"
    add(
        "intake",
        lambda s: s.merge(
            MailAddress(jurisdiction_id=cam_id, address="311@cambridge.example", service_id=svc_id)
        ),
    )  # fmt: skip
    # templates: the checklist's button adds the defaults, with one audit event
    assert 'id="add-default-templates"' in root.get(CAM_ADMIN).get_data(as_text=True)
    before = counts(sessions)
    token = csrf_from(root, CAM_ADMIN)
    res = root.post(f"{CAM_ADMIN}setup/default-templates", data={"csrf_token": token})
    assert res.status_code == 302 and res.headers["Location"].endswith(f"{CAM_ADMIN}templates")
    after = counts(sessions)
    assert after[1] - before[1] == len(DEFAULT_TEMPLATES) and after[2] - before[2] == 1
    with sessions() as s:
        event = s.scalars(sa.select(AdminEvent).order_by(AdminEvent.id.desc())).first()
        assert (event.action, event.jurisdiction_id) == ("template.defaults", cam_id)
    html = root.get(CAM_ADMIN).get_data(as_text=True)
    assert "Set-up complete" in html and 'id="add-default-templates"' not in html
    # a second press has nothing to add: refused, nothing written
    res = root.post(f"{CAM_ADMIN}setup/default-templates", data={"csrf_token": token})
    assert res.status_code == 400
    assert "already has every default template" in res.get_data(as_text=True)
    assert counts(sessions) == after
    # the optional calendar is shown, and never holds the set-up back
    assert checklist_state(root)["calendar"] == "no"
    with sessions.begin() as s:
        s.get(Jurisdiction, cam_id).business_calendar = {"hours": {"mon": ["08:00", "17:00"]}}
    assert checklist_state(root)["calendar"] == "yes"
    # a city's own admin sees the same checklist at the plain address
    boss = root.application.test_client()
    sign_in(boss, "chief@cambridge.example")
    assert "Set-up complete" in boss.get("/admin/").get_data(as_text=True)


def test_city_create_gives_the_default_templates(cli, sessions, city):
    res = cli(
        "city", "create", "cambridge", "--name", "Cambridge",
        "--timezone", "America/New_York", "--boundary", str(BOUNDARY),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    with sessions() as s:
        cam = s.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == "cambridge"))
        bodies = dict(
            s.execute(
                sa.select(ResponseTemplate.name, ResponseTemplate.body).where(
                    ResponseTemplate.jurisdiction_id == cam.id
                )
            ).all()
        )
    assert set(bodies) == {name for name, _ in DEFAULT_TEMPLATES}
    assert "{public_id}" in bodies["Received"]
    with sessions() as s:
        event = s.scalar(sa.select(AdminEvent).where(AdminEvent.action == "city.create"))
    # install-wide, as from the new city page
    assert (event.object_id, event.jurisdiction_id) == ("cambridge", None)


# --------------------------------------------------------------------------- free-text reply


REPORTER = "resident@example.org"
FOLLOWER = "neighbour@example.org"


def _reported_with_follower(sessions, settings) -> ServiceRequest:
    with sessions.begin() as s:
        req = report(s, settings.media_dir, email=REPORTER)
        s.add(Follower(request_id=req.id, email=FOLLOWER, confirmed_at=now_utc()))
        s.flush()
        s.expunge(req)
        return req


def deliver(sessions, settings, sink):
    return run_once(sessions, settings.with_overrides(smtp_url=sink.url))


def test_a_reply_in_own_words_reaches_reporter_and_follower(client, sessions, settings, sink, city):
    req = _reported_with_follower(sessions, settings)
    deliver(sessions, settings, sink)  # the acknowledgement
    login(client, "dispatcher")
    page = f"/dispatch/requests/{req.public_id}"
    # a template to start from fills the reply in (without the page's script: ?reply_from=)
    html = client.get(f"{page}?reply_from={city.template_id}").get_data(as_text=True)
    assert f"Pothole {req.public_id} is scheduled for repair within 3 days.</textarea>" in html
    text = "We looked at it today: the hole is deeper than it seems, a crew comes on Tuesday."
    res = client.post(
        f"{page}/reply_text", data={"csrf_token": csrf_from(client, page), "reply": text}
    )
    assert res.status_code == 303
    assert "Reply added and e-mailed" in client.get(res.headers["Location"]).get_data(as_text=True)
    with sessions() as s:
        (event,) = s.scalars(
            sa.select(RequestEvent).where(
                RequestEvent.request_id == req.id, RequestEvent.kind == "reply"
            )
        ).all()
        assert event.public and event.note == text and event.to_value is None
    deliver(sessions, settings, sink)
    replies = [m for m in sink.received if m.message["X-Civicpin-Kind"] == "template_reply"]
    by_rcpt = {m.rcpt_tos[0]: m for m in replies}
    assert set(by_rcpt) == {REPORTER, FOLLOWER}
    mine, theirs = by_rcpt[REPORTER], by_rcpt[FOLLOWER]
    assert text in mine.text and f"token={req.token}" in mine.text
    assert text in theirs.text and f"/requests/{req.public_id}" in theirs.text
    raw = theirs.raw.decode()
    assert req.token not in raw and REPORTER not in raw
    # the public page shows the reply too
    assert text in client.get(f"/requests/{req.public_id}").get_data(as_text=True)


def test_an_empty_reply_is_refused_beside_the_field(client, sessions, settings, sink, city):
    req = _reported_with_follower(sessions, settings)
    login(client, "dispatcher")
    page = f"/dispatch/requests/{req.public_id}"
    for text, message in [("   \n ", "Write a reply"), ("x" * 4001, "to 4000 characters")]:
        res = client.post(
            f"{page}/reply_text", data={"csrf_token": csrf_from(client, page), "reply": text}
        )
        assert res.status_code == 400
        beside = re.search(r'id="error-reply" role="alert">([^<]*)<', res.get_data(as_text=True))
        assert beside and message in beside.group(1)
    res = client.post(
        f"{page}/reply_text",
        headers={"X-CSRFToken": csrf_from(client, page), "Accept": "application/json"},
        json={"reply": ""},
    )
    assert res.status_code == 400 and res.get_json()["field"] == "reply"
    with sessions() as s:
        assert not s.scalars(
            sa.select(RequestEvent).where(
                RequestEvent.request_id == req.id, RequestEvent.kind == "reply"
            )
        ).all()
    deliver(sessions, settings, sink)
    # the report's own mail (its acknowledgement, its crew's assignment), no reply
    kinds = {m.message["X-Civicpin-Kind"] for m in sink.received}
    assert "acknowledgement" in kinds and kinds <= {"acknowledgement", "crew_assignment"}


def test_a_crew_member_may_not_reply(client, sessions, settings, sink, city):
    req = _reported_with_follower(sessions, settings)
    login(client, "crew")
    token = csrf_from(client, "/staff")
    res = client.post(
        f"/dispatch/requests/{req.public_id}/reply_text",
        data={"csrf_token": token, "reply": "Fixed it myself."},
    )
    assert res.status_code == 403
    with sessions() as s:
        assert not s.scalars(
            sa.select(RequestEvent).where(
                RequestEvent.request_id == req.id, RequestEvent.kind == "reply"
            )
        ).all()


# --------------------------------------------------------------------------- Chromium


def test_new_city_page_in_chromium(app, city):
    with serve(app) as base, chromium() as browser:
        page = browser.new_page()
        problems = watch_problems(page)
        page.goto(f"{base}/login?next=/admin/")
        page.fill('input[name="email"]', ROOT)
        page.fill('input[name="password"]', PASSWORD)
        page.click('button[type="submit"]')
        page.wait_for_url(f"{base}/admin/")
        page.click("#add-city")
        page.wait_for_url(f"{base}/admin/cities/new")
        page.fill('input[name="name"]', "Cambridge")
        page.fill('input[name="slug"]', "cambridge")
        page.fill('input[name="timezone"]', "America/Boston")  # no such zone
        page.set_input_files('input[name="boundary"]', str(BOUNDARY))
        page.click("text=Create the city")
        assert "unknown time zone 'America/Boston'" in page.inner_text("#error-timezone")
        assert page.input_value('input[name="slug"]') == "cambridge"
        # the refused form's status is the only console line (a CSP violation would be one)
        assert [p for p in problems if "status of 400" not in p] == []
        problems.clear()
        page.fill('input[name="timezone"]', "America/New_York")
        page.set_input_files('input[name="boundary"]', str(BOUNDARY))
        page.click("text=Create the city")
        page.wait_for_url(f"{base}/c/cambridge/admin/")
        assert "Set-up of Cambridge" in page.inner_text("#setup-checklist")
        assert page.get_attribute("#setup-templates", "data-done") == "yes"
        assert page.get_attribute("#setup-zones", "data-done") == "no"
        page.click("#setup-zones a")
        page.wait_for_url(f"{base}/c/cambridge/admin/layers")
        assert problems == []


def test_a_reply_begun_from_a_template_in_the_console(app, sessions, settings, city):
    req = _reported_with_follower(sessions, settings)
    with serve(app) as base, chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        problems = watch_problems(page)
        page.goto(f"{base}/login?next=/dispatch")
        page.fill('input[name="email"]', "dispatcher@city.example")
        page.fill('input[name="password"]', PASSWORD)
        page.click('button[type="submit"]')
        page.wait_for_url(f"{base}/dispatch")
        page.click(f'.queue-item[data-public-id="{req.public_id}"]')
        page.wait_for_selector(f'#panel .request-panel[data-public-id="{req.public_id}"]')
        # the template's text, filled in for this request, lands in the reply: no page change
        page.click('#panel #reply-form a:text("Scheduled")')
        reply = page.locator('#panel #reply-form textarea[name="reply"]')
        assert reply.input_value() == (
            f"Thank you. Pothole {req.public_id} is scheduled for repair within 3 days."
        )
        assert page.url == f"{base}/dispatch"
        reply.fill(reply.input_value() + " The crew comes on Tuesday.")
        page.click('#panel #reply-form button[type="submit"]')
        page.locator("#panel .panel-message.form-ok").filter(
            has_text="Reply added and e-mailed"
        ).wait_for(timeout=10_000)
        assert "The crew comes on Tuesday." in page.inner_text("#panel")  # in the history
        assert problems == []
    with sessions() as s:
        note = s.scalar(
            sa.select(RequestEvent.note).where(
                RequestEvent.request_id == req.id, RequestEvent.kind == "reply"
            )
        )
        assert note.endswith("within 3 days. The crew comes on Tuesday.")
