"""A city civicpin has never seen, set up from its own GIS files and run, in real Chromium.

Cambridge (Massachusetts) from ``tests/data/cambridge/``: once through the browser alone
(an install administrator adds the city, its zone layers, departments, crews with zones and
members, categories with questions, a business calendar, routing rules and staff; the crew
member sets their own password from the mailed link), and once with ``civicpin city
create``, ``zones import`` and ``city apply`` of a YAML file. Each time a resident then
reports street cleaning inside a sweeping district, the dispatcher sees the report at that
district's crew, and the crew's member finds it on the crew page of their phone.
"""

from __future__ import annotations

import re
from datetime import date, time, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import geopandas as gpd
import pytest
import sqlalchemy as sa

from notify.worker import run_once
from routing.setup_checklist import checklist
from spatial.accounts import INSTALL_ADMIN, create_user
from spatial.models import Crew, Department, Jurisdiction, ServiceRequest, Zone, ZoneLayer
from spatial.settings import PROJECT_ROOT
from tests.support.browser import chromium, serve, watch_problems

pytestmark = pytest.mark.e2e

CAMBRIDGE = PROJECT_ROOT / "tests/data/cambridge"
BOUNDARY = CAMBRIDGE / "BOUNDARY_CityBoundary.geojson"
WARDS = CAMBRIDGE / "ELECTIONS_WardsPrecincts.geojson"
SWEEPING = CAMBRIDGE / "DPW_StreetSweepingDistricts.geojson"

INSTALLER = "installer@civicpin.example"
DISPATCHER = "dispatch@cambridge.example"
SWEEPER = "sweeper@cambridge.example"
PASSWORD = "harbour lantern quietly 42"
NEW_PASSWORD = "granite willow sunrise 77"
DPW_EMAIL = "dpw@cambridge.example"
RESIDENT = "rosa@example.org"

# The crews and the sweeping districts they own. District J comes in three features and
# D and H in two: the layer joins the parts of a district into one zone.
NORTH = ("sweep-north", "North sweeping crew", ("G", "H", "J"))
SOUTH = ("sweep-south", "South sweeping crew", ("A", "B", "C"))
# The resident's report is in district G: the north crew's.
DISTRICT = "G"

SHOTS = "/tmp/civicpin-onboarding-{}.png"


def district_point(code: str) -> tuple[float, float]:
    """(lat, lon) of a point inside sweeping district ``code``, from the file's polygons."""
    districts = gpd.read_file(SWEEPING)
    shape = districts[districts["District"] == code].union_all()
    point = shape.representative_point()
    return point.y, point.x


# --------------------------------------------------------------------------- the browser set-up


def _admin_page(page, base: str, path: str) -> None:
    page.goto(f"{base}/c/cambridge/admin/{path}")


def _sign_in(page, base: str, email: str, password: str) -> None:
    page.goto(f"{base}/c/cambridge/login")
    page.fill('input[name="email"]', email)
    page.fill('input[name="password"]', password)
    page.click('button[type="submit"]')


def _flash(page) -> str:
    return page.locator(".flashes").inner_text()


def _create_city(page, base: str) -> None:
    # The first sign-in of a fresh install lands on the new city page.
    page.goto(f"{base}/login")
    page.fill('input[name="email"]', INSTALLER)
    page.fill('input[name="password"]', PASSWORD)
    page.click('button[type="submit"]')
    page.wait_for_url(f"{base}/admin/cities/new")
    form = page.locator("#new-city-form")
    form.locator('input[name="name"]').fill("Cambridge")
    form.locator('input[name="slug"]').fill("cambridge")
    form.locator('input[name="timezone"]').fill("America/New_York")
    form.locator('input[name="boundary"]').set_input_files(str(BOUNDARY))
    form.get_by_role("button", name="Create the city").click()
    page.wait_for_url(f"{base}/c/cambridge/admin/")
    assert "City Cambridge created" in _flash(page)
    missing = page.locator("#setup-checklist .is-missing").all_inner_texts()
    assert any("A zone layer" in item for item in missing)
    assert any("Routing rules" in item for item in missing)


def _upload_layer(page, base: str, path, name: str, code_field: str, join_parts: bool) -> None:
    """Upload a zone file as a draft, choose its code field, then make it current."""
    _admin_page(page, base, "layers")
    upload = page.locator("#upload-form")
    upload.locator('input[name="file"]').set_input_files(str(path))
    upload.locator('input[name="layer_name"]').fill(name)
    upload.locator('input[name="draft"]').check()
    upload.get_by_role("button", name="Upload and choose the fields").click()
    chooser = page.locator("#field-chooser")
    chooser.wait_for()
    assert code_field in page.locator("#file-fields").inner_text()
    chooser.locator('select[name="code_field"]').select_option(code_field)
    if join_parts:
        chooser.locator('input[name="join_parts"]').check()
    chooser.get_by_role("button", name="Import").click()
    page.wait_for_url(re.compile(r".*/c/cambridge/admin/layers/\d+$"))
    assert "(not current)" in page.locator("h1").inner_text()
    page.get_by_role("button", name="Make this version current").click()
    page.wait_for_url(re.compile(r".*/c/cambridge/admin/layers/\d+$"))
    assert f"Layer {name} version 1 is now current" in _flash(page)
    assert "(current)" in page.locator("h1").inner_text()


def _create_department(page, base: str) -> None:
    _admin_page(page, base, "departments")
    form = page.locator("#new-department")
    form.locator('input[name="code"]').fill("DPW")
    form.locator('input[name="name"]').fill("Public Works")
    form.locator('input[name="email"]').fill(DPW_EMAIL)
    form.get_by_role("button", name="Create department").click()
    assert "Department DPW (Public Works) created" in _flash(page)
    _admin_page(page, base, "departments")
    assert f"DPW\tPublic Works\t{DPW_EMAIL}\t0" in page.inner_text("#departments tbody")


def _create_crew(page, base: str, code: str, name: str, districts: tuple[str, ...]) -> None:
    _admin_page(page, base, "crews")
    form = page.locator("#new-crew")
    form.locator('select[name="department_id"]').select_option(label="DPW: Public Works")
    form.locator('input[name="code"]').fill(code)
    form.locator('input[name="name"]').fill(name)
    form.get_by_role("button", name="Create crew").click()
    page.wait_for_url(re.compile(r".*/c/cambridge/admin/crews/\d+$"))
    zones = page.locator("#crew-zones")
    sweeping = zones.locator("fieldset").filter(
        has=page.locator("legend", has_text=re.compile(r"^sweeping$"))
    )
    for district in districts:
        label = sweeping.locator("label").filter(has_text=re.compile(rf"^\s*{district}\b"))
        label.locator('input[type="checkbox"]').check()
    zones.get_by_role("button", name="Save zones").click()
    assert f"Crew {code} owns {len(districts)} zone(s)." in _flash(page)


def _create_categories(page, base: str) -> None:
    _admin_page(page, base, "categories")
    form = page.locator('form[action$="/admin/categories"]')
    form.locator('input[name="code"]').fill("street-cleaning")
    form.locator('input[name="name"]').fill("Street cleaning")
    form.locator('input[name="group"]').fill("Streets")
    form.locator('input[name="keywords"]').fill("litter, leaves, sweeping")
    form.locator('select[name="default_department"]').select_option("DPW")
    form.locator('input[name="sla_hours"]').fill("48")
    form.locator('select[name="sla_clock"]').select_option("business")
    form.get_by_role("button", name="Create category").click()
    page.wait_for_url(re.compile(r".*/c/cambridge/admin/categories/\d+$"))
    assert "Category street-cleaning created" in _flash(page)

    def add_question(code, text, datatype, values="", required=False):
        q = page.locator("form").filter(has=page.get_by_role("button", name="Add question"))
        q.locator('input[name="code"]').fill(code)
        q.locator('input[name="description"]').fill(text)
        q.locator('select[name="datatype"]').select_option(datatype)
        q.locator('textarea[name="values"]').fill(values)
        if required:
            q.locator('input[name="required"]').check()
        q.get_by_role("button", name="Add question").click()
        assert f"Question {code} added." in _flash(page)

    add_question(
        "surface", "Where is it?", "singlevaluelist", "street=Street\nsidewalk=Sidewalk", True
    )
    add_question("details", "What is there?", "text")
    rows = page.locator("#question-list tbody tr").all_inner_texts()
    assert len(rows) == 2
    assert "Where is it?" in rows[0] and "street=Street, sidewalk=Sidewalk" in rows[0]
    assert "yes" in rows[0].split("\t")
    assert "What is there?" in rows[1] and "text" in rows[1]

    # A second category, with no questions: the rules route only street cleaning by district.
    _admin_page(page, base, "categories")
    form.locator('input[name="code"]').fill("litter-basket")
    form.locator('input[name="name"]').fill("Overflowing litter basket")
    form.locator('input[name="group"]').fill("Streets")
    form.locator('select[name="default_department"]').select_option("DPW")
    form.get_by_role("button", name="Create category").click()
    assert "Category litter-basket created" in _flash(page)
    _admin_page(page, base, "categories")
    listed = page.locator("#categories tbody").inner_text()
    assert "Street cleaning" in listed and "Overflowing litter basket" in listed


def _set_calendar(page, base: str) -> None:
    _admin_page(page, base, "calendar")
    hours = page.locator("#hours-form")
    for day in ("mon", "tue", "wed", "thu", "fri"):
        hours.locator(f'input[name="{day}_opens"]').fill("08:30")
        hours.locator(f'input[name="{day}_closes"]').fill("17:00")
    hours.get_by_role("button", name="Save hours").click()
    assert "Business calendar saved." in _flash(page)
    holiday = page.locator("form").filter(has=page.get_by_role("button", name="Add holiday"))
    holiday.locator('input[name="date"]').fill("2026-12-25")
    holiday.locator('input[name="name"]').fill("Christmas Day")
    holiday.get_by_role("button", name="Add holiday").click()
    assert "Business calendar saved." in _flash(page)
    assert page.locator('input[name="mon_opens"]').input_value() == "08:30"
    assert page.locator('input[name="sat_opens"]').input_value() == ""
    assert "2026-12-25\tChristmas Day" in page.locator("#holidays").inner_text()


def _publish_rules(page, base: str) -> None:
    _admin_page(page, base, "rules")
    page.get_by_role("button", name="New draft from the published rules").click()
    page.wait_for_url(re.compile(r".*/c/cambridge/admin/rules/\d+$"))
    rule = page.locator("form.rule-form")
    rule.locator('input[name="name"]').fill("Street cleaning by sweeping district")
    rule.locator('select[name="match"]').select_option("service")
    rule.locator('select[name="service_code"]').select_option("street-cleaning")
    rule.locator('select[name="layer_name"]').select_option("sweeping")
    rule.locator('select[name="department"]').select_option("DPW")
    rule.locator('input[name="crew_from_zone"]').check()
    rule.get_by_role("button", name="Add rule").click()
    row = page.locator("#rules tbody tr").first
    assert "category street-cleaning" in row.inner_text()
    assert "sweeping: any zone" in row.inner_text()
    assert "zone's crew" in row.inner_text()
    page.get_by_role("button", name=re.compile(r"^Publish version \d+$")).click()
    page.wait_for_url(re.compile(r".*/c/cambridge/admin/rules$"))
    assert "is published" in _flash(page)


def _create_staff(page, base: str) -> None:
    _admin_page(page, base, "users")
    form = page.locator('form[action$="/admin/users"]')
    form.locator('input[name="email"]').fill(DISPATCHER)
    form.locator('input[name="name"]').fill("Dana Dispatcher")
    form.locator('select[name="role"]').select_option("dispatcher")
    form.locator('input[name="password"]').fill(PASSWORD)
    form.get_by_role("button", name="Create user").click()
    assert f"User {DISPATCHER} created as dispatcher." in _flash(page)
    # The crew member's password is generated and shown once: they set their own later.
    form.locator('input[name="email"]').fill(SWEEPER)
    form.locator('input[name="name"]').fill("Sam Sweeper")
    form.locator('select[name="role"]').select_option("crew")
    form.get_by_role("button", name="Create user").click()
    assert f"User {SWEEPER} created as crew. Their password (shown once):" in _flash(page)

    page.locator("#users tr", has_text=SWEEPER).get_by_role(
        "link", name="crews & departments"
    ).click()
    page.locator('#add-crew select[name="crew_id"]').select_option(
        label=f"DPW/{NORTH[0]}: {NORTH[1]}"
    )
    page.get_by_role("button", name="Add to crew").click()
    assert f"{SWEEPER} joined crew DPW/{NORTH[0]}." in _flash(page)
    assert NORTH[1] in page.locator("#member-crews").inner_text()

    _admin_page(page, base, "users")
    page.locator("#users tr", has_text=DISPATCHER).get_by_role(
        "link", name="crews & departments"
    ).click()
    page.locator('#add-department select[name="department_id"]').select_option(
        label="DPW: Public Works"
    )
    page.get_by_role("button", name="Add to department").click()
    assert f"{DISPATCHER} joined department DPW." in _flash(page)


def _add_intake_address(page, base: str) -> None:
    _admin_page(page, base, "mail")
    form = page.locator("#add-address")
    form.locator('input[name="address"]').fill("streets@cambridge.example")
    form.locator('select[name="category"]').select_option("street-cleaning")
    form.get_by_role("button", name="Add address").click()
    assert "streets@cambridge.example" in page.locator("#intake-addresses").inner_text()


def _reset_password_and_land_on_crew_page(phone, base: str, sessions, settings, sink):
    page = phone.new_page()
    problems = watch_problems(page)
    page.goto(f"{base}/c/cambridge/login")
    page.get_by_role("link", name="Forgot your password?").click()
    page.fill('input[name="email"]', SWEEPER)
    page.get_by_role("button", name="Send me a link").click()
    page.wait_for_selector("#reset-sent")
    run_once(sessions, settings.with_overrides(smtp_url=sink.url))
    (mail,) = sink.to(SWEEPER)
    link = urlsplit(re.search(r"https?://\S+/login/reset\?token=\S+", mail.text).group(0))
    assert link.path == "/c/cambridge/login/reset"  # at the city's own address
    page.goto(f"{base}{link.path}?{link.query}")
    assert SWEEPER in page.inner_text("main")
    page.fill("#password", NEW_PASSWORD)
    page.fill("#confirm", NEW_PASSWORD)
    page.get_by_role("button", name="Set the password").click()
    page.wait_for_selector("text=Your new password is set")
    page.fill('input[name="email"]', SWEEPER)
    page.fill('input[name="password"]', NEW_PASSWORD)
    page.click('button[type="submit"]')
    page.wait_for_url(f"{base}/c/cambridge/crew")
    page.wait_for_selector("#crew")
    assert NORTH[1] in page.inner_text("header")
    assert page.inner_text("#crew-status") == "0 open requests"
    return page, problems


# --------------------------------------------------------------------------- running the city


def _report(browser, base: str) -> str:
    """A resident reports street cleaning in district G from a phone; returns its id."""
    lat, lon = district_point(DISTRICT)
    ctx = browser.new_context(viewport={"width": 412, "height": 860}, is_mobile=True)
    page = ctx.new_page()
    problems = watch_problems(page)
    page.goto(f"{base}/c/cambridge/report")
    page.wait_for_selector("#report-map[data-ready='1']")
    page.locator("summary", has_text="Enter coordinates instead").click()
    page.get_by_label("Latitude").fill(f"{lat:.6f}")
    page.get_by_label("Longitude").fill(f"{lon:.6f}")
    page.get_by_label("Longitude").press("Tab")
    page.locator(".leaflet-marker-icon").wait_for()
    page.get_by_label("Category").select_option("street-cleaning")
    page.get_by_role("radiogroup", name=re.compile("Where is it?")).get_by_label("Sidewalk").check()
    page.get_by_label("What is there?").fill("Broken glass along the kerb")
    page.get_by_label("Describe the problem").fill("Since the weekend")
    page.get_by_label("E-mail", exact=True).fill(RESIDENT)
    page.get_by_role("button", name="Send report").click()
    page.wait_for_url("**/report/done/**")
    public_id = page.locator("#public-id").inner_text()
    assert page.locator("#sent-to").inner_text() == f"Public Works, {NORTH[1]}"
    page.screenshot(path=SHOTS.format("done"), full_page=True)
    assert problems == []
    ctx.close()
    return public_id


def _check_routed(sessions, public_id: str) -> None:
    with sessions() as s:
        req = s.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == public_id))
        crew = s.get(Crew, req.crew_id)
        zone = s.get(Zone, req.zone_id)
        layer = s.get(ZoneLayer, zone.layer_id)
        assert (crew.code, s.get(Department, req.department_id).code) == (NORTH[0], "DPW")
        assert (layer.name, zone.code) == ("sweeping", DISTRICT)
        assert req.attributes == {"surface": "sidewalk", "details": "Broken glass along the kerb"}
        # 48 business hours of 8.5 a weekday: more than a week later, in opening hours
        # (48 calendar hours would be two days).
        due = req.due_at.astimezone(ZoneInfo("America/New_York"))
        assert req.due_at - req.requested_at > timedelta(days=7)
        assert due.weekday() < 5 and time(8, 30) <= due.time() <= time(17, 0)
        assert due.date() != date(2026, 12, 25)
        city = s.get(Jurisdiction, req.jurisdiction_id)
        assert city.slug == "cambridge" and public_id.startswith(f"{city.public_id_prefix}-")


def _dispatcher_sees_it(browser, base: str, public_id: str) -> None:
    desk = browser.new_context(viewport={"width": 1400, "height": 900})
    page = desk.new_page()
    problems = watch_problems(page)
    _sign_in(page, base, DISPATCHER, PASSWORD)
    page.wait_for_url(f"{base}/c/cambridge/dispatch")
    page.wait_for_selector("#console[data-live='1']")
    item = page.locator(f'.queue-item[data-public-id="{public_id}"]')
    item.wait_for()
    assert "Street cleaning" in item.inner_text()
    item.click()
    page.wait_for_selector(f'#panel .request-panel[data-public-id="{public_id}"]')
    assert page.inner_text("#panel-assigned") == f"Public Works / {NORTH[1]}"
    assert "Since the weekend" in page.inner_text("#panel .description")
    # the resident's answers, ready for the dispatcher to correct
    answers = page.locator("#answers-form")
    assert (
        answers.get_by_label("Where is it?").evaluate("s => s.options[s.selectedIndex].text")
        == "Sidewalk"
    )
    assert answers.get_by_label("What is there?").input_value() == "Broken glass along the kerb"
    page.screenshot(path=SHOTS.format("dispatch"))
    assert problems == []
    desk.close()


def _crew_sees_it(page, base: str, public_id: str, problems: list[str]) -> None:
    page.goto(f"{base}/c/cambridge/crew")
    page.wait_for_selector("#crew[data-loaded]")
    row = page.locator(f'.crew-item[data-public-id="{public_id}"]')
    row.wait_for()
    assert "Street cleaning" in row.inner_text()
    # new work for the crew until a member acknowledges it
    assert page.inner_text("#crew-status") == "1 open request, 1 new"
    # the crew's own districts drawn on its map
    page.wait_for_selector(".leaflet-overlay-pane path")
    page.screenshot(path=SHOTS.format("crew"))
    row.locator("a").click()
    page.wait_for_url(f"**/crew/requests/{public_id}")
    assert RESIDENT in page.inner_text(".contact")
    assert problems == []


# --------------------------------------------------------------------------- the tests


def test_a_new_city_set_up_and_run_through_the_browser_alone(
    app, sessions, settings, sink, tmp_path
):
    with sessions.begin() as s:
        create_user(s, email=INSTALLER, role=INSTALL_ADMIN, password=PASSWORD)

    with serve(app) as base, chromium() as browser:
        admin = browser.new_context(viewport={"width": 1280, "height": 900})
        page = admin.new_page()
        problems = watch_problems(page)
        _create_city(page, base)
        _upload_layer(page, base, WARDS, "wards", "WardPrecinct", join_parts=False)
        _upload_layer(page, base, SWEEPING, "sweeping", "District", join_parts=True)
        _admin_page(page, base, "layers")
        layers = page.locator("#layer-table tbody").inner_text()
        assert re.search(r"wards\t1\tcurrent\t33\t", layers)
        assert re.search(r"sweeping\t1\tcurrent\t10\t", layers)

        _create_department(page, base)
        for code, name, districts in (NORTH, SOUTH):
            _create_crew(page, base, code, name, districts)
        _create_categories(page, base)
        _set_calendar(page, base)
        _publish_rules(page, base)
        _create_staff(page, base)
        _add_intake_address(page, base)

        _admin_page(page, base, "crews")
        crews = page.locator("#crews tbody").inner_text()
        assert f"DPW\t{NORTH[0]}\t{NORTH[1]}\t3\t1" in crews
        assert f"DPW\t{SOUTH[0]}\t{SOUTH[1]}\t3\t0" in crews
        _admin_page(page, base, "")
        assert page.locator("#setup-checklist .is-missing").count() == 0
        assert "Set-up complete" in page.inner_text("#setup-complete")
        page.screenshot(path=SHOTS.format("checklist"), full_page=True)
        assert problems == []

        phone = browser.new_context(
            viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
        )
        crew_page, crew_problems = _reset_password_and_land_on_crew_page(
            phone, base, sessions, settings, sink
        )

        public_id = _report(browser, base)
        _check_routed(sessions, public_id)
        # the resident's acknowledgement, at the new city's own address
        run_once(sessions, settings.with_overrides(smtp_url=sink.url))
        (ack,) = sink.to(RESIDENT)
        assert public_id in ack.text
        assert re.search(rf"https?://\S+/c/cambridge/\S*{public_id}", ack.text), ack.text
        _dispatcher_sees_it(browser, base, public_id)
        _crew_sees_it(crew_page, base, public_id, crew_problems)


CITY_FILE = """\
version: 1
city:
  name: Cambridge
  timezone: America/New_York
calendar:
  hours:
    mon: ['08:30', '17:00']
    tue: ['08:30', '17:00']
    wed: ['08:30', '17:00']
    thu: ['08:30', '17:00']
    fri: ['08:30', '17:00']
  holidays: ['2026-12-25']
layers:
  - name: wards
    version: 1
  - name: sweeping
    version: 1
departments:
  - code: DPW
    name: Public Works
    email: dpw@cambridge.example
crews:
  - department: DPW
    code: sweep-north
    name: North sweeping crew
    zones:
      - {layer: sweeping, code: G}
      - {layer: sweeping, code: H}
      - {layer: sweeping, code: J}
  - department: DPW
    code: sweep-south
    name: South sweeping crew
    zones:
      - {layer: sweeping, code: A}
      - {layer: sweeping, code: B}
      - {layer: sweeping, code: C}
categories:
  - code: street-cleaning
    name: Street cleaning
    group: Streets
    keywords: [litter, leaves, sweeping]
    default_department: DPW
    sla_hours: 48
    sla_clock: business
    questions:
      - code: surface
        datatype: singlevaluelist
        description: Where is it?
        required: true
        values:
          - {key: street, name: Street}
          - {key: sidewalk, name: Sidewalk}
      - code: details
        datatype: text
        description: What is there?
  - code: litter-basket
    name: Overflowing litter basket
    group: Streets
    default_department: DPW
rules:
  - name: Street cleaning by sweeping district
    category: street-cleaning
    layer: sweeping
    department: DPW
    crew_from_zone: true
response_templates:
  - name: Swept
    category: street-cleaning
    body: Our crew swept the street today. Thank you for telling us.
mail:
  addresses:
    - address: streets@cambridge.example
      category: street-cleaning
"""


def test_the_same_city_from_the_command_line_and_a_city_file(
    app, cli, sessions, settings, tmp_path
):
    def ok(*args: str) -> str:
        done = cli(*args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    created = ok(
        "city", "create", "cambridge", "--name", "Cambridge",
        "--timezone", "America/New_York", "--boundary", str(BOUNDARY),
    )  # fmt: skip
    assert "created city cambridge (Cambridge)" in created
    ok("zones", "import", str(WARDS), "--city", "cambridge", "--layer", "wards",
       "--code-field", "WardPrecinct")  # fmt: skip
    ok("zones", "import", str(SWEEPING), "--city", "cambridge", "--layer", "sweeping",
       "--code-field", "District", "--join-parts")  # fmt: skip
    city_file = tmp_path / "cambridge.yaml"
    city_file.write_text(CITY_FILE)
    applied = ok("city", "apply", str(city_file), "--city", "cambridge")
    for line in (
        "+ department DPW",
        f"+ crew DPW/{NORTH[0]}",
        "+ category street-cleaning",
        "~ rules: version 1 published (1 rules)",
    ):
        assert line in applied, applied
    assert ok("city", "apply", str(city_file), "--city", "cambridge").strip() == (
        "cambridge: no changes"
    )
    ok("users", "create", "--email", DISPATCHER, "--role", "dispatcher",
       "--city", "cambridge", "--password", PASSWORD)  # fmt: skip
    ok("users", "create", "--email", SWEEPER, "--role", "crew",
       "--city", "cambridge", "--password", NEW_PASSWORD)  # fmt: skip
    ok("users", "member", "--email", SWEEPER, "--crew", f"DPW/{NORTH[0]}")
    ok("users", "member", "--email", DISPATCHER, "--department", "DPW")
    with sessions() as s:
        city = s.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == "cambridge"))
        items = checklist(s, city)
        assert [i.key for i in items if not i.done] == [], "the admin home would list these"

    with serve(app) as base, chromium() as browser:
        phone = browser.new_context(
            viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
        )
        crew_page = phone.new_page()
        crew_problems = watch_problems(crew_page)
        _sign_in(crew_page, base, SWEEPER, NEW_PASSWORD)
        crew_page.wait_for_url(f"{base}/c/cambridge/crew")

        public_id = _report(browser, base)
        _check_routed(sessions, public_id)
        _dispatcher_sees_it(browser, base, public_id)
        _crew_sees_it(crew_page, base, public_id, crew_problems)
