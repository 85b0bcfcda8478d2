"""``civicpin city export`` / ``city apply``: a city's set-up as one YAML file."""

from __future__ import annotations

import geopandas as gpd
import pytest
import sqlalchemy as sa
import yaml

from intake.submit import Draft, submit
from spatial.db import make_sessionmaker
from spatial.models import Crew, Jurisdiction, Service
from spatial.models_ops import AdminEvent
from spatial.settings import PROJECT_ROOT
from spatial.zones import create_city, import_layer

CAMBRIDGE = PROJECT_ROOT / "tests/data/cambridge"
BOUNDARY = CAMBRIDGE / "BOUNDARY_CityBoundary.geojson"
WARDS = CAMBRIDGE / "ELECTIONS_WardsPrecincts.geojson"
SWEEPING = CAMBRIDGE / "DPW_StreetSweepingDistricts.geojson"
# A point in sweeping district G (north-west Cambridge) and one in district A (east).
IN_G = (42.39568, -71.13339)
IN_A = (42.36853, -71.08603)

CITY_FILE = """\
version: 1
city:
  name: City of Cambridge
  timezone: America/New_York
  moderation_hold: email
calendar:
  hours:
    mon: ['08:30', '17:00']
    tue: ['08:30', '17:00']
    wed: ['08:30', '17:00']
    thu: ['08:30', '17:00']
    fri: ['08:30', '12:00']
  holidays: ['2026-12-25', {date: '2027-01-01', name: "New Year's Day"}]
layers:
  - name: sweeping
    version: 1
    title: Street sweeping districts
  - name: wards
    version: 1
departments:
  - code: DPW
    name: Public Works
    email: dpw@cambridge.example
  - code: TPT
    name: Traffic, Parking and Transportation
crews:
  - department: DPW
    code: sweep-north
    name: North sweeping crew
    zones:
      - {layer: sweeping, code: G}
      - {layer: sweeping, code: J}
      - {layer: sweeping, code: H}
  - department: DPW
    code: sweep-south
    name: South sweeping crew
    zones:
      - {layer: sweeping, code: A}
      - {layer: sweeping, code: B}
      - {layer: sweeping, code: C}
  - department: TPT
    code: signs
    name: Sign shop
categories:
  - code: street-cleaning
    name: Street cleaning
    group: Streets
    description: Litter, leaves or spills on a street or sidewalk.
    keywords: [litter, leaves, sweeping]
    default_department: DPW
    sla_hours: 48
    sla_clock: business
    notice: |
      Street sweeping runs April to December.
      Check the schedule before you report a missed sweep.
    questions:
      - code: surface
        datatype: singlevaluelist
        description: Where is it?
        required: true
        values:
          - {key: street, name: Street}
          - {key: sidewalk, name: Sidewalk}
        default_value: street
      - code: details
        datatype: text
        description: What is there?
        help: Roughly how much, and since when.
  - code: missing-sign
    name: Missing or damaged sign
    group: Streets
    default_department: TPT
    default_priority: high
    sla_hours: 72
    sla_clock: calendar
    questions:
      - code: kinds
        datatype: multivaluelist
        description: Which signs?
        values:
          - {key: stop, name: Stop sign}
          - {key: parking, name: Parking sign}
        default_value: [stop]
  - code: it-help
    name: IT help desk
    private: true
    location_mode: none
    contact_required: true
    default_department: TPT
rules:
  - name: Street cleaning by sweeping district
    category: street-cleaning
    layer: sweeping
    department: DPW
    crew_from_zone: true
  - name: Signs to the sign shop
    group: Streets
    department: TPT
    crew: signs
    priority: high
    sla_hours: 24
response_templates:
  - name: Swept
    category: street-cleaning
    body: Our crew swept the street today. Thank you for telling us.
mail_templates:
  - kind: acknowledgement
    subject: '[$public_id] Cambridge received your report'
    body: |
      Thank you. Your reference is $public_id.
      Follow it here: $tracking_url
      Stop these e-mails: $unsubscribe_url
faq:
  - slug: sweeping-schedule
    title: When is my street swept?
    topic: Streets
    category: street-cleaning
    position: 1
    body: |
      Each district is swept once a month, April to December.
mail:
  dispatch_email: dispatch@cambridge.example
  reply_limit_per_hour: 3
  trusted_authserv_id: mx.cambridge.example
retention:
  contact_days: 730
  raw_mail_days: 90
"""

SETUP_TABLES = (
    "jurisdiction",
    "department",
    "crew",
    "zone",
    "service",
    "service_attribute",
    "routing_ruleset",
    "routing_rule",
    "response_template",
    "message_template",
    "faq_article",
    "mail_address",
    "mail_config",
    "retention_policy",
    "admin_event",
)


def digest(engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {
            t: conn.execute(
                sa.text(
                    f"SELECT count(*) || ':' || coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') FROM {t} x"
                )
            ).scalar_one()
            for t in SETUP_TABLES
        }


@pytest.fixture(scope="module")
def sweeping_file(tmp_path_factory):
    """The sweeping districts with one zone per district (some districts are in pieces)."""
    path = tmp_path_factory.mktemp("cambridge") / "sweeping.geojson"
    gdf = gpd.read_file(SWEEPING).dissolve(by="District").reset_index()
    gdf.to_file(path, driver="GeoJSON")
    return path


def new_city(sessions, slug: str, sweeping_file, prefix: str = "CAM") -> None:
    with sessions.begin() as s:
        city = create_city(s, slug, "Cambridge", "America/New_York", BOUNDARY, prefix=prefix)
        import_layer(s, city, sweeping_file, "sweeping", code_field="District", title="Sweeping")
        import_layer(s, city, WARDS, "wards", code_field="WardPrecinct")


@pytest.fixture
def cambridge(sessions, sweeping_file, tmp_path):
    new_city(sessions, "cambridge", sweeping_file)
    path = tmp_path / "city.yaml"
    path.write_text(CITY_FILE)
    return path


def test_apply_then_export_round_trips_to_another_city(
    cli, sessions, cambridge, sweeping_file, tmp_path
):
    first = cli("city", "apply", str(cambridge), "--city", "cambridge")
    assert first.returncode == 0, first.stderr
    assert "+ department DPW" in first.stdout
    assert "+ category street-cleaning" in first.stdout
    assert "~ rules: version 1 published (2 rules)" in first.stdout
    exported = cli("city", "export", "cambridge")
    assert exported.returncode == 0, exported.stderr
    doc = yaml.safe_load(exported.stdout)
    north = next(c for c in doc["crews"] if c["code"] == "sweep-north")
    assert north["zones"] == [{"layer": "sweeping", "code": c} for c in ("G", "H", "J")]
    assert doc["categories"][2]["questions"][0]["default_value"] == "street"  # street-cleaning
    assert doc["calendar"]["holidays"][1] == {"date": "2027-01-01", "name": "New Year's Day"}
    assert "Street sweeping runs April to December.\n" in exported.stdout  # a readable block

    again = cli("city", "apply", str(cambridge), "--city", "cambridge")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "cambridge: no changes"

    # Another city: the same set-up under its own public id prefix (public ids are unique
    # across the install, so the file may not give it Cambridge's).
    new_city(sessions, "cambridge-copy", sweeping_file, prefix="CAMX")
    copy = tmp_path / "export.yaml"
    copy.write_text(exported.stdout)
    refused = cli("city", "apply", str(copy), "--city", "cambridge-copy")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "civicpin: error: city.public_id_prefix: 'CAM' is the public id prefix of the city "
        "'cambridge'"
    )
    assert "public_id_prefix: CAM\n" in exported.stdout
    ours = exported.stdout.replace("public_id_prefix: CAM\n", "public_id_prefix: CAMX\n")
    copy.write_text(ours)
    applied = cli("city", "apply", str(copy), "--city", "cambridge-copy")
    assert applied.returncode == 0, applied.stderr
    second = cli("city", "export", "cambridge-copy")
    assert second.stdout == ours
    with sessions() as s:
        events = s.scalars(sa.select(AdminEvent).where(AdminEvent.action == "city.apply")).all()
    assert len(events) == 2  # one per apply that changed something
    assert "+ category it-help" in events[0].what["changes"]


def test_a_cambridge_report_reaches_the_crew_of_its_district(cli, sessions, cambridge, tmp_path):
    assert cli("city", "apply", str(cambridge), "--city", "cambridge").returncode == 0
    with sessions.begin() as s:
        crews = {c.code: c.id for c in s.scalars(sa.select(Crew))}
        results = [
            submit(
                s,
                Draft(
                    city="cambridge",
                    service_code="street-cleaning",
                    lat=lat,
                    lon=lon,
                    description="Leaves all over the street",
                    attributes={"surface": "street"},
                ),
                media_dir=tmp_path,
                public_base_url="http://localhost",
            )
            for lat, lon in (IN_G, IN_A)
        ]
        north, south = (r.request for r in results)
        assert north.crew_id == crews["sweep-north"]
        assert south.crew_id == crews["sweep-south"]
        assert north.public_id.startswith("CAM-")


def test_dry_run_prints_the_changes_and_writes_nothing(cli, engine, cambridge):
    before = digest(engine)
    run = cli("city", "apply", str(cambridge), "--city", "cambridge", "--dry-run")
    assert run.returncode == 0, run.stderr
    assert "+ crew DPW/sweep-north" in run.stdout
    assert "~ city cambridge: name Cambridge -> City of Cambridge" in run.stdout
    assert "(dry run: nothing written)" in run.stdout
    assert digest(engine) == before


def _broken(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


BAD_FILES = {
    "enum": (
        _broken(CITY_FILE, "datatype: text", "datatype: bool"),
        "civicpin: error: categories[0].questions[1].datatype: 'bool' is not one of "
        "['string', 'number', 'datetime', 'text', 'singlevaluelist', 'multivaluelist']",
    ),
    "missing department": (
        _broken(CITY_FILE, "    department: TPT\n    crew: signs", "    department: PARKS"),
        "civicpin: error: rules[1].department: no department 'PARKS' in the file",
    ),
    "missing layer": (
        _broken(CITY_FILE, "  - name: wards\n", "  - name: wards-2010\n"),
        "civicpin: error: layers[1].name: cambridge has no layer 'wards-2010': "
        "import it first (civicpin zones import)",
    ),
    "missing zone": (
        _broken(CITY_FILE, "{layer: sweeping, code: C}", "{layer: sweeping, code: Z}"),
        "civicpin: error: crews[1].zones[2].code: layer 'sweeping' has no zone 'Z'",
    ),
    "default not a value": (
        _broken(CITY_FILE, "default_value: street", "default_value: alley"),
        "civicpin: error: categories[0].questions[0].default_value: default 'alley' is not "
        "among the values (street, sidewalk)",
    ),
    "yaml syntax": (
        _broken(CITY_FILE, "  name: City of Cambridge", "  name: [City of Cambridge"),
        "civicpin: error: line 4, column 11: expected ',' or ']', but got ':'",
    ),
}


@pytest.mark.parametrize("kind", BAD_FILES)
def test_a_bad_file_gets_one_line_and_changes_nothing(cli, engine, cambridge, kind):
    text, message = BAD_FILES[kind]
    assert cli("city", "apply", str(cambridge), "--city", "cambridge").returncode == 0
    before = digest(engine)
    cambridge.write_text(text)
    run = cli("city", "apply", str(cambridge), "--city", "cambridge")
    assert run.returncode == 1
    assert run.stderr.strip() == message
    assert run.stdout == ""
    assert digest(engine) == before


def test_what_the_file_drops_is_removed_or_kept_for_history(cli, sessions, cambridge, tmp_path):
    assert cli("city", "apply", str(cambridge), "--city", "cambridge").returncode == 0
    with sessions.begin() as s:
        submit(
            s,
            Draft(
                city="cambridge",
                service_code="missing-sign",
                lat=IN_A[0],
                lon=IN_A[1],
                attributes={"kinds": ["stop"]},
            ),
            media_dir=tmp_path,
            public_base_url="http://localhost",
        )
    doc = yaml.safe_load(CITY_FILE)
    doc["categories"] = [doc["categories"][0]]  # street-cleaning only
    doc["rules"] = doc["rules"][:1]
    doc["crews"] = doc["crews"][:2]
    doc["departments"] = doc["departments"][:1]
    doc["response_templates"] = []
    doc["categories"][0]["sla_hours"] = 72
    smaller = tmp_path / "smaller.yaml"
    smaller.write_text(yaml.safe_dump(doc))
    run = cli("city", "apply", str(smaller), "--city", "cambridge")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert "~ category street-cleaning: sla_hours 48 -> 72" in lines
    assert "- category it-help" in lines
    assert (
        "~ category missing-sign: active true -> false (1 requests: deactivated, not removed)"
        in lines
    )
    assert "- template Swept" in lines
    assert "! department TPT kept: 1 requests refer to it" in lines
    with sessions() as s:
        codes = dict(s.execute(sa.select(Service.code, Service.active)).all())
        assert codes == {"street-cleaning": True, "missing-sign": False}
        city = s.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == "cambridge"))
        assert city.moderation_hold == "email"
    again = cli("city", "apply", str(smaller), "--city", "cambridge")
    assert again.stdout.splitlines()[-1] == "cambridge: no changes"


def test_a_section_the_file_leaves_out_stays_as_it_is(cli, sessions, cambridge, tmp_path):
    assert cli("city", "apply", str(cambridge), "--city", "cambridge").returncode == 0
    before = cli("city", "export", "cambridge").stdout
    doc = yaml.safe_load(CITY_FILE)
    doc["categories"][0]["sla_hours"] = 72
    only = tmp_path / "categories.yaml"
    only.write_text(yaml.safe_dump({"version": 1, "categories": doc["categories"]}))
    run = cli("city", "apply", str(only), "--city", "cambridge")
    assert run.returncode == 0, run.stderr
    # the departments, crews, rules, templates, FAQ and mail it does not mention stay
    assert run.stdout.splitlines() == [
        "~ category street-cleaning: sla_hours 48 -> 72",
        "cambridge: 1 change",
    ], run.stdout
    after = yaml.safe_load(cli("city", "export", "cambridge").stdout)
    kept = yaml.safe_load(before)
    cleaning = next(c for c in after["categories"] if c["code"] == "street-cleaning")
    assert cleaning["sla_hours"] == 72
    cleaning["sla_hours"] = 48
    assert after == kept
    # an empty section empties it
    none = tmp_path / "no-templates.yaml"
    none.write_text(yaml.safe_dump({"version": 1, "response_templates": []}))
    run = cli("city", "apply", str(none), "--city", "cambridge")
    assert run.returncode == 0, run.stderr
    assert yaml.safe_load(cli("city", "export", "cambridge").stdout)["response_templates"] == []


def test_the_demo_city_is_exactly_its_city_file(demo_engine):
    from intake.demo import manifest
    from routing.city_file import apply_city, parse

    setup = parse(manifest()["city_file"].read_text(encoding="utf-8"))
    with make_sessionmaker(demo_engine)() as s:
        city = s.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == manifest()["slug"]))
        assert apply_city(s, city, setup) == ([], [])
        s.rollback()
