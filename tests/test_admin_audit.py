"""The admin audit log: every admin change, from the pages and from the command line,
writes one event with who, when, the city and what changed (never a secret), in the
change's own transaction; the audit page lists them, newest first, city by city."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from geoalchemy2.shape import from_shape
from shapely.geometry import MultiPolygon, box

from intake import faq as faq_domain
from notify import templates as mail_templates
from routing import rules as rulesmod
from spatial import admin_audit
from spatial.accounts import create_user
from spatial.apikeys import create_key
from spatial.models import (
    Jurisdiction,
    RoutingRule,
    Service,
    ServiceAttribute,
    User,
    Zone,
    ZoneLayer,
)
from spatial.models_ops import AdminEvent
from tests.support.city import BOUNDS, make_small_city
from tests.support.dispatch_city import (
    PASSWORD,
    DispatchCity,
    csrf_from,
    login,
    make_dispatch_city,
)

ADMIN = "admin@city.example"


@pytest.fixture
def city(sessions) -> DispatchCity:
    with sessions.begin() as s:
        return make_dispatch_city(s)


@pytest.fixture
def admin(client, city):
    login(client, "admin")
    return client


def events(sessions) -> list[AdminEvent]:
    with sessions() as s:
        rows = s.scalars(sa.select(AdminEvent).order_by(AdminEvent.id)).all()
        s.expunge_all()
        return list(rows)


def all_event_text(engine) -> str:
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT coalesce(string_agg(e::text, '|'), '') FROM admin_event e")
        ).scalar()


# --------------------------------------------------------------------------- every POST route


def layer_file(tmp_path: Path) -> bytes:
    path = tmp_path / "wards.geojson"
    w, s, e, n = BOUNDS
    import geopandas as gpd

    gpd.GeoDataFrame(
        {"code": ["N", "S"], "name": ["North", "South"]},
        geometry=[box(w, (s + n) / 2, e, n), box(w, s, e, (s + n) / 2)],
        crs=4326,
    ).to_file(path, driver="GeoJSON")
    return path.read_bytes()


def _draft(sessions, city: DispatchCity) -> tuple[int, int]:
    """A draft copied from the published rules: (its id, the id of its first rule)."""
    with sessions.begin() as s:
        c = s.get(Jurisdiction, city.city_id)
        draft = rulesmod.create_draft(s, c, "for the test")
        s.flush()
        rule_id = s.scalar(
            sa.select(RoutingRule.id)
            .where(RoutingRule.ruleset_id == draft.id)
            .order_by(RoutingRule.position)
            .limit(1)
        )
        return draft.id, rule_id


RULE_FORM = {"name": "Anything to parks", "match": "any", "department": "parks"}


def _second_layer_version(sessions, city: DispatchCity) -> int:
    with sessions.begin() as s:
        layer = ZoneLayer(
            jurisdiction_id=city.city_id, name="districts", version=2, is_current=False
        )
        s.add(layer)
        s.flush()
        s.add(
            Zone(
                layer_id=layer.id,
                code="ALL",
                name="Everywhere",
                geom=from_shape(MultiPolygon([box(*BOUNDS)]), srid=4326),
            )
        )
        return layer.id


def _article(sessions, city: DispatchCity) -> int:
    with sessions.begin() as s:
        c = s.get(Jurisdiction, city.city_id)
        return faq_domain.save_article(s, c, ARTICLE_FORM).id


def _mail_override(sessions, city: DispatchCity) -> str:
    with sessions.begin() as s:
        c = s.get(Jurisdiction, city.city_id)
        ack = mail_templates.DEFAULTS["acknowledgement"]
        mail_templates.save_override(s, c, ack.kind, "Got it: $public_id", ack.body, "cli")
    return ack.kind


ARTICLE_FORM = {
    "title": "Bulky items",
    "slug": "bulky-items",
    "body": "Call us.",
    "published": "on",
}


def _key(sessions, city: DispatchCity) -> int:
    with sessions.begin() as s:
        row, _ = create_key(s, city.slug, "Old client")
        return row.id


def _contact(sessions, city: DispatchCity) -> int:
    """Two intranet contacts; the id of the second (it may move up)."""
    from spatial.models_work import IntranetContact

    with sessions.begin() as s:
        first = IntranetContact(jurisdiction_id=city.city_id, name="IT on call", position=1)
        second = IntranetContact(jurisdiction_id=city.city_id, name="Facilities", position=2)
        s.add_all([first, second])
        s.flush()
        return second.id


def _mail_address(sessions, city: DispatchCity) -> int:
    from intake.mail_addresses import add_address

    with sessions.begin() as s:
        c = s.get(Jurisdiction, city.city_id)
        return add_address(s, c, "old@city.example", category="pothole").id


MAIL_CONFIG_FORM = {
    "dispatch_email": "desk@city.example",
    "from_address": "",
    "reply_limit": "5",
    "accept_limit": "30",
    "address_reply_limit": "200",
    "trusted_authserv_id": "mx.city.example",
}


CATEGORY_FORM = {
    "code": "pothole",
    "name": "Pothole",
    "group": "Streets",
    "location_mode": "required",
    "default_department": "streets",
    "default_priority": "normal",
    "sla_clock": "business",
    "type": "realtime",
    "active": "on",
}


def _unused_department(sessions, city: DispatchCity) -> int:
    from spatial.models import Department

    with sessions.begin() as s:
        dept = Department(jurisdiction_id=city.city_id, code="old", name="Old department")
        s.add(dept)
        s.flush()
        return dept.id


def _escalation_policy(sessions, city: DispatchCity) -> int:
    from routing.escalation import save_policy

    with sessions.begin() as s:
        save_policy(s, s.get(Jurisdiction, city.city_id), city.pothole_id, untriaged_minutes=30)
    return city.pothole_id


def _zone(sessions, city: DispatchCity, code: str) -> int:
    with sessions() as s:
        return s.scalar(
            sa.select(Zone.id)
            .join(ZoneLayer, ZoneLayer.id == Zone.layer_id)
            .where(ZoneLayer.jurisdiction_id == city.city_id, Zone.code == code)
        )


def _unused_category(sessions, city: DispatchCity) -> int:
    """A category no request, rule or address names: one that may be deleted."""
    with sessions.begin() as s:
        service = Service(jurisdiction_id=city.city_id, code="unused", name="Unused")
        s.add(service)
        s.flush()
        return service.id


def _question(sessions, city: DispatchCity) -> tuple[int, int]:
    """(the pothole category's id, the id of its first question)."""
    with sessions() as s:
        attr_id = s.scalar(
            sa.select(ServiceAttribute.id)
            .where(ServiceAttribute.service_id == city.pothole_id)
            .order_by(ServiceAttribute.order)
            .limit(1)
        )
        return city.pothole_id, attr_id


def _holiday(sessions, city: DispatchCity, path: str, holidays: list[str]) -> str:
    """``path``, after giving the city business hours and these holidays."""
    with sessions.begin() as s:
        s.get(Jurisdiction, city.city_id).business_calendar = {
            "hours": {"mon": ["08:00", "17:00"]},
            "holidays": holidays,
        }
    return path


@dataclass
class Ctx:
    sessions: object
    city: DispatchCity
    tmp_path: Path


def _asset_layer(sessions, city: DispatchCity) -> str:
    """An asset layer of the city (for its title and removal): its name."""
    from spatial.models_places import AssetLayer

    with sessions.begin() as s:
        s.add(AssetLayer(jurisdiction_id=city.city_id, name="lights", title="Lights"))
    return "lights"


PLACES_CSV = b"ID,NUM,STREET,LAT,LON\nA-1,12,Main St,34.05,-118.25\n"

# endpoint -> (ctx -> (path, form, the action logged))
Recipe = Callable[[Ctx], tuple[str, dict, str]]
RECIPES: dict[str, Recipe] = {
    "admin.upload_layer": lambda c: (
        "/admin/layers",
        {
            "layer_name": "wards",
            "code_field": "code",
            "file": (io.BytesIO(layer_file(c.tmp_path)), "w.geojson"),
        },
        "layer.import",
    ),
    "admin.publish_layer": lambda c: (
        f"/admin/layers/{_second_layer_version(c.sessions, c.city)}/publish",
        {},
        "layer.publish",
    ),
    "admin.new_draft": lambda c: ("/admin/rules", {"note": "winter"}, "rules.draft"),
    "admin.add_rule": lambda c: (
        f"/admin/rules/{_draft(c.sessions, c.city)[0]}/rules",
        RULE_FORM,
        "rule.add",
    ),
    "admin.edit_rule": lambda c: (
        "/admin/rules/{}/rules/{}".format(*_draft(c.sessions, c.city)),
        RULE_FORM,
        "rule.edit",
    ),
    "admin.delete_rule": lambda c: (
        "/admin/rules/{}/rules/{}/delete".format(*_draft(c.sessions, c.city)),
        {},
        "rule.delete",
    ),
    "admin.move_rule": lambda c: (
        "/admin/rules/{}/rules/{}/move".format(*_draft(c.sessions, c.city)),
        {"position": "2"},
        "rule.move",
    ),
    "admin.publish": lambda c: (
        f"/admin/rules/{_draft(c.sessions, c.city)[0]}/publish",
        {},
        "rules.publish",
    ),
    "admin.discard": lambda c: (
        f"/admin/rules/{_draft(c.sessions, c.city)[0]}/discard",
        {},
        "rules.discard",
    ),
    "admin.create_user_view": lambda c: (
        "/admin/users",
        {"email": "new@city.example", "role": "agent", "password": "a long secret 123"},
        "user.create",
    ),
    "admin.change_role": lambda c: (
        f"/admin/users/{c.city.users['planner']}/role",
        {"role": "dispatcher"},
        "user.role",
    ),
    "admin.set_active": lambda c: (
        f"/admin/users/{c.city.users['planner']}/active",
        {"active": "0"},
        "user.active",
    ),
    "admin.send_reset": lambda c: (
        f"/admin/users/{c.city.users['planner']}/reset",
        {},
        "user.password_reset",
    ),
    "admin.create_key": lambda c: ("/admin/apikeys", {"name": "FixMyStreet"}, "apikey.create"),
    "admin.revoke_key": lambda c: (
        f"/admin/apikeys/{_key(c.sessions, c.city)}/revoke",
        {},
        "apikey.revoke",
    ),
    "admin.create_template": lambda c: (
        "/admin/templates",
        {"name": "Fixed", "body": "It is fixed."},
        "template.create",
    ),
    "admin.edit_template": lambda c: (
        f"/admin/templates/{c.city.template_id}",
        {"name": "Scheduled", "body": "Scheduled within a week."},
        "template.edit",
    ),
    "admin.delete_template": lambda c: (
        f"/admin/templates/{c.city.template_id}/delete",
        {},
        "template.delete",
    ),
    "admin.save_privacy": lambda c: (
        "/admin/privacy",
        {"contact_days": "365", "answers_days": "90", "raw_mail_days": "", "originals_days": ""},
        "retention.set",
    ),
    "admin_catalog.create_category": lambda c: (
        "/admin/categories",
        {"code": "graffiti", "name": "Graffiti", "location_mode": "required"},
        "category.create",
    ),
    "admin_catalog.edit_category": lambda c: (
        f"/admin/categories/{c.city.pothole_id}",
        {**CATEGORY_FORM, "sla_hours": "48"},
        "category.edit",
    ),
    "admin_catalog.delete_category": lambda c: (
        f"/admin/categories/{_unused_category(c.sessions, c.city)}/delete",
        {},
        "category.delete",
    ),
    "admin_catalog.add_question": lambda c: (
        f"/admin/categories/{c.city.pothole_id}/questions",
        {"code": "width", "datatype": "number", "description": "How wide (cm)?"},
        "question.add",
    ),
    "admin_catalog.edit_question": lambda c: (
        "/admin/categories/{}/questions/{}".format(*_question(c.sessions, c.city)),
        {"code": "depth", "datatype": "number", "description": "How deep, in cm?"},
        "question.edit",
    ),
    "admin_catalog.remove_question": lambda c: (
        "/admin/categories/{}/questions/{}/delete".format(*_question(c.sessions, c.city)),
        {},
        "question.remove",
    ),
    "admin_catalog.move_question": lambda c: (
        "/admin/categories/{}/questions/{}/move".format(*_question(c.sessions, c.city)),
        {"direction": "down"},
        "question.move",
    ),
    "admin_catalog.save_hours": lambda c: (
        "/admin/calendar",
        {"mon_opens": "08:00", "mon_closes": "17:00"},
        "calendar.hours",
    ),
    "admin_catalog.add_holiday": lambda c: (
        _holiday(c.sessions, c.city, "/admin/calendar/holidays", []),
        {"date": "2026-12-25", "name": "Christmas Day"},
        "calendar.holiday_add",
    ),
    "admin_catalog.remove_holiday": lambda c: (
        _holiday(c.sessions, c.city, "/admin/calendar/holidays/remove", ["2026-12-25"]),
        {"date": "2026-12-25"},
        "calendar.holiday_remove",
    ),
    "admin_setup.default_templates": lambda c: (
        "/admin/setup/default-templates",
        {},
        "template.defaults",
    ),
    "faq.admin_new": lambda c: ("/admin/faq/new", ARTICLE_FORM, "faq.create"),
    "intranet.add_contact": lambda c: (
        "/admin/intranet/contacts",
        {"name": "IT on call", "phone": "+1 555 0100"},
        "intranet.contact_add",
    ),
    "intranet.edit_contact": lambda c: (
        f"/admin/intranet/contacts/{_contact(c.sessions, c.city)}",
        {"name": "Facilities", "email": "facilities@city.example"},
        "intranet.contact_edit",
    ),
    "intranet.delete_contact": lambda c: (
        f"/admin/intranet/contacts/{_contact(c.sessions, c.city)}/delete",
        {},
        "intranet.contact_delete",
    ),
    "intranet.move_contact": lambda c: (
        f"/admin/intranet/contacts/{_contact(c.sessions, c.city)}/move",
        {"direction": "up"},
        "intranet.contact_move",
    ),
    "faq.admin_edit": lambda c: (
        f"/admin/faq/{_article(c.sessions, c.city)}/edit",
        {**ARTICLE_FORM, "body": "Book a pick-up online."},
        "faq.edit",
    ),
    "faq.admin_delete": lambda c: (
        f"/admin/faq/{_article(c.sessions, c.city)}/delete",
        {},
        "faq.delete",
    ),
    "faq.template_edit": lambda c: (
        "/admin/mail-templates/acknowledgement",
        {
            "subject": "Thanks: $public_id",
            "body": mail_templates.DEFAULTS["acknowledgement"].body,
        },
        "mail.template_set",
    ),
    "admin_mail.add_address": lambda c: (
        "/admin/mail/addresses",
        {"address": "311@city.example", "category": "pothole"},
        "mail.address_add",
    ),
    "admin_mail.remove_address": lambda c: (
        f"/admin/mail/addresses/{_mail_address(c.sessions, c.city)}/remove",
        {},
        "mail.address_remove",
    ),
    "admin_mail.save_config": lambda c: ("/admin/mail/config", MAIL_CONFIG_FORM, "mail.config"),
    "faq.template_reset": lambda c: (
        f"/admin/mail-templates/{_mail_override(c.sessions, c.city)}/reset",
        {},
        "mail.template_reset",
    ),
    "admin_org.create_department": lambda c: (
        "/admin/departments",
        {"code": "water", "name": "Water", "email": "water@city.example"},
        "department.create",
    ),
    "admin_org.edit_department": lambda c: (
        f"/admin/departments/{c.city.parks_id}",
        {"code": "parks", "name": "Parks and recreation", "email": ""},
        "department.edit",
    ),
    "admin_org.delete_department": lambda c: (
        f"/admin/departments/{_unused_department(c.sessions, c.city)}/delete",
        {},
        "department.delete",
    ),
    "admin_org.create_crew": lambda c: (
        "/admin/crews",
        {"department_id": str(c.city.parks_id), "code": "parks-2", "name": "Gardeners"},
        "crew.create",
    ),
    "admin_org.edit_crew": lambda c: (
        f"/admin/crews/{c.city.parks_crew_id}",
        {"department_id": str(c.city.parks_id), "code": "parks-1", "name": "Rangers"},
        "crew.edit",
    ),
    "admin_org.crew_zones": lambda c: (
        f"/admin/crews/{c.city.parks_crew_id}/zones",
        {"zone": [str(_zone(c.sessions, c.city, "W"))]},
        "crew.zones",
    ),
    "admin_org.crew_members": lambda c: (
        f"/admin/crews/{c.city.parks_crew_id}/members",
        {"op": "add", "user_id": str(c.city.users["crew"])},
        "crew.member_add",
    ),
    "admin_org.delete_crew": lambda c: (
        f"/admin/crews/{c.city.parks_crew_id}/delete",
        {},
        "crew.delete",
    ),
    "admin_org.change_membership": lambda c: (
        f"/admin/users/{c.city.users['dispatcher']}/membership",
        {"op": "add", "department_id": str(c.city.parks_id)},
        "membership.add",
    ),
    "admin_escalation.save": lambda c: (
        "/admin/escalation",
        {"service_id": "", "untriaged_minutes": "60", "when_overdue": "1"},
        "escalation_policy.save",
    ),
    "admin_escalation.delete": lambda c: (
        f"/admin/escalation/{_escalation_policy(c.sessions, c.city)}/delete",
        {},
        "escalation_policy.delete",
    ),
    "admin_escalation.settings": lambda c: (
        "/admin/escalation/settings",
        {"reopen_days": "30", "digest_hour": "6"},
        "city.settings",
    ),
    "admin_places.import_places": lambda c: (
        "/admin/places/addresses",
        {
            "file": (io.BytesIO(PLACES_CSV), "addresses.csv"),
            "action": "import",
            "map_number": "NUM",
            "map_street": "STREET",
            "map_id": "ID",
            "map_lat": "LAT",
            "map_lon": "LON",
        },
        "addresses.import",
    ),
    "admin_places.layer_title": lambda c: (
        "/admin/places/assets/title",
        {"layer": _asset_layer(c.sessions, c.city), "title": "Street lights"},
        "asset_layer.update",
    ),
    "admin_places.remove_layer": lambda c: (
        "/admin/places/assets/remove",
        {"layer": _asset_layer(c.sessions, c.city)},
        "asset_layer.remove",
    ),
}


# Routes for install administrators only (a city's admin gets 403): their events are
# install-wide.
INSTALL_RECIPES: dict[str, Recipe] = {
    "admin_setup.create_city_view": lambda c: (
        "/admin/cities/new",
        {
            "name": "Cambridge",
            "slug": "cambridge",
            "timezone": "America/New_York",
            "boundary": (io.BytesIO(CAMBRIDGE_BOUNDARY.read_bytes()), "boundary.geojson"),
        },
        "city.create",
    ),
}
CAMBRIDGE_BOUNDARY = Path(__file__).parent / "data/cambridge/BOUNDARY_CityBoundary.geojson"


def test_every_admin_post_route_has_an_audit_case(app):
    posts = {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if "POST" in (rule.methods or ())
        and (rule.endpoint.startswith("admin.") or "/admin/" in rule.rule)
    }
    missing = sorted(posts - set(RECIPES) - set(INSTALL_RECIPES))
    assert not missing, (
        f"admin POST routes with no audit case here (log them, add a case): {missing}"
    )
    assert not sorted((set(RECIPES) | set(INSTALL_RECIPES)) - posts), (
        "cases for routes that no longer exist"
    )


@pytest.mark.parametrize("endpoint", sorted(RECIPES))
def test_each_admin_post_route_writes_one_event(endpoint, admin, sessions, city, tmp_path):
    path, form, action = RECIPES[endpoint](Ctx(sessions, city, tmp_path))
    before = events(sessions)
    token = csrf_from(admin, "/admin/")
    res = admin.post(path, data={"csrf_token": token, **form})
    assert res.status_code in (200, 302), res.get_data(as_text=True)[:500]
    new = events(sessions)[len(before) :]
    assert [(e.action, e.actor_label, e.jurisdiction_id) for e in new] == [
        (action, ADMIN, city.city_id)
    ]
    assert new[0].actor_id == city.users["admin"]
    assert abs((datetime.now(UTC) - new[0].at).total_seconds()) < 60


@pytest.mark.parametrize("endpoint", sorted(INSTALL_RECIPES))
def test_each_install_admin_post_route_writes_one_install_wide_event(
    endpoint, client, sessions, city, tmp_path
):
    with sessions.begin() as s:
        root, _ = create_user(s, email="root@install.example", role="install_admin",
                              password=PASSWORD)  # fmt: skip
        root_id = root.id
    _sign_in(client, "root@install.example")
    path, form, action = INSTALL_RECIPES[endpoint](Ctx(sessions, city, tmp_path))
    before = events(sessions)
    res = client.post(path, data={"csrf_token": csrf_from(client, "/admin/"), **form})
    assert res.status_code in (200, 302), res.get_data(as_text=True)[:500]
    new = events(sessions)[len(before) :]
    assert [(e.action, e.actor_id, e.jurisdiction_id) for e in new] == [(action, root_id, None)]


def test_a_refused_form_writes_no_event(admin, sessions, city):
    draft_id, _ = _draft(sessions, city)
    token = csrf_from(admin, "/admin/")
    for path, form in [
        ("/admin/users", {"email": "not an address", "role": "agent"}),
        (f"/admin/rules/{draft_id}/rules", {**RULE_FORM, "department": "nope"}),
        ("/admin/templates", {"name": "", "body": "x"}),
        ("/admin/apikeys", {"name": ""}),
    ]:
        res = admin.post(path, data={"csrf_token": token, **form})
        assert res.status_code == 400, path
    assert events(sessions) == []


def test_what_holds_the_change(admin, sessions, city):
    token = csrf_from(admin, "/admin/")
    admin.post(
        f"/admin/users/{city.users['planner']}/role", data={"csrf_token": token, "role": "agent"}
    )
    admin.post(
        f"/admin/templates/{city.template_id}",
        data={"csrf_token": token, "name": "Scheduled", "body": "Within a week."},
    )
    role, template = events(sessions)
    assert role.what == {"email": "planner@city.example", "role": ["planner", "agent"]}
    assert (role.object_type, role.object_id) == ("user", str(city.users["planner"]))
    # only the changed field, old and new
    assert list(template.what) == ["body"] and template.what["body"][1] == "Within a week."


# --------------------------------------------------------------------------- no secrets


def test_passwords_and_keys_never_reach_the_log_or_its_page(admin, sessions, city, engine):
    token = csrf_from(admin, "/admin/")
    secret_password = "horse staple battery 42"
    admin.post(
        "/admin/users",
        data={
            "csrf_token": token,
            "email": "clerk@city.example",
            "role": "agent",
            "password": secret_password,
        },
    )
    generated = admin.post(
        "/admin/users", data={"csrf_token": token, "email": "temp@city.example", "role": "agent"}
    )
    shown = admin.get("/admin/users").get_data(as_text=True)
    made = admin.post("/admin/apikeys", data={"csrf_token": token, "name": "Client"})
    key = made.get_data(as_text=True).split('id="new-key">')[1].split("<")[0]
    assert len(key) > 20 and generated.status_code == 302
    with sessions() as s:
        hashes = [u.password_hash for u in s.scalars(sa.select(User))]
        key_hash = s.scalar(sa.text("SELECT key_hash FROM api_key"))
    logged = all_event_text(engine)
    assert [e.action for e in events(sessions)] == ["user.create", "user.create", "apikey.create"]
    page = admin.get("/admin/audit").get_data(as_text=True)
    for secret in [secret_password, key, key_hash, *hashes]:
        assert secret not in logged and secret not in page
    # the generated password was flashed once on the users page; it is in no event
    flashed = shown.split("shown once): ")[1].split("<")[0].strip()
    assert flashed and flashed not in logged and flashed not in page


def test_record_drops_secret_fields_whatever_the_caller_passes(sessions, city):
    with sessions.begin() as s:
        event = admin_audit.record(
            s,
            "test.change",
            "thing",
            1,
            city=city.city_id,
            actor="cli:test",
            what={
                "name": "kept",
                "password": "p",
                "key_hash": "h",
                "api_key": "k",
                "link_secret": "s",
                "token": "t",
                "key_prefix": "abcd1234",
                "nested": {"totp_secret": "x", "ok": 1},
            },
        )
        s.flush()
        assert event.what == {"name": "kept", "key_prefix": "abcd1234", "nested": {"ok": 1}}


# --------------------------------------------------------------------------- the command line


def test_cli_changes_are_logged_with_the_os_user_and_no_secret(cli, sessions, city, engine):
    res = cli(
        "users",
        "create",
        "--email",
        "night@city.example",
        "--role",
        "dispatcher",
        "--city",
        city.slug,
        "--password",
        "a very long password",
    )
    assert res.returncode == 0, res.stderr
    res = cli("apikey", "create", "--city", city.slug, "--name", "Open311 client")
    assert res.returncode == 0, res.stderr
    key = res.stdout.strip().splitlines()[-1]
    prefix = res.stdout.split("created API key ")[1].split("...")[0]
    assert cli("apikey", "revoke", prefix).returncode == 0
    res = cli("mail", "config", "--city", city.slug, "--reply-limit", "7")
    assert res.returncode == 0, res.stderr
    # a command that fails writes nothing
    bad = cli("apikey", "create", "--city", "nowhere", "--name", "x")
    assert bad.returncode != 0
    got = events(sessions)
    assert [(e.action, e.jurisdiction_id) for e in got] == [
        ("user.create", city.city_id),
        ("apikey.create", city.city_id),
        ("apikey.revoke", city.city_id),
        ("mail.config", city.city_id),
    ]
    assert all(e.actor_label.startswith("cli:") and e.actor_id is None for e in got)
    assert got[1].what == {"name": "Open311 client", "key_prefix": prefix}
    assert got[3].what == {"reply_limit_per_hour": [got[3].what["reply_limit_per_hour"][0], 7]}
    logged = all_event_text(engine)
    assert key not in logged and "a very long password" not in logged


def test_more_cli_changes_each_write_one_event(cli, sessions, city, engine, tmp_path):
    layer = tmp_path / "wards.geojson"
    layer.write_bytes(layer_file(tmp_path))
    template = tmp_path / "ack.txt"
    body = "We have your report\n\nThank you for $public_id.\nStop: $unsubscribe_url\n"
    template.write_text(body, encoding="utf-8")
    steps = [
        (("zones", "import", str(layer), "--city", city.slug, "--layer", "wards",
          "--code-field", "code"), "layer.import"),
        (("mail", "address", "add", "--city", city.slug, "311@testville.example",
          "--category", "pothole-nq"), None),
        (("mail", "template", "set", "--city", city.slug, "acknowledgement", str(template)),
         "mail.template_set"),
        (("mail", "template", "reset", "--city", city.slug, "acknowledgement"),
         "mail.template_reset"),
        (("city", "set", city.slug, "--open311-id", "testville.example"), "city.open311_ids"),
        (("users", "password", "--email", "planner@city.example", "--password",
          "another long password 9"), "user.password"),
    ]  # fmt: skip
    for args, action in steps:
        before = len(events(sessions))
        res = cli(*args)
        if action is None:  # a refused command (no such category) writes nothing
            assert res.returncode != 0 and len(events(sessions)) == before, res.stderr
            continue
        assert res.returncode == 0, (args, res.stderr)
        new = events(sessions)[before:]
        assert [(e.action, e.jurisdiction_id) for e in new] == [(action, city.city_id)], args
        assert new[0].actor_label.startswith("cli:")
    by_action = {e.action: e for e in events(sessions)}
    assert by_action["layer.import"].what["name"] == "wards"
    assert by_action["city.open311_ids"].what == {"open311_ids": [[], ["testville.example"]]}
    assert by_action["user.password"].what == {"email": "planner@city.example"}
    assert "another long password 9" not in all_event_text(engine)


# --------------------------------------------------------------------------- the page


def test_page_lists_newest_first_filters_by_action_and_pages(admin, sessions, city):
    with sessions.begin() as s:
        for n in range(admin_audit.PAGE_SIZE + 5):
            admin_audit.record(
                s, "template.edit", "response_template", n, city=city.city_id, actor="cli:x"
            )
        admin_audit.record(s, "user.role", "user", 1, city=city.city_id, actor="cli:x")
    html = admin.get("/admin/audit").get_data(as_text=True)
    assert f"{admin_audit.PAGE_SIZE + 6} events, page 1 of 2" in html
    first_row = html.split('class="audit-event"')[1]
    assert 'data-action="user.role"' in first_row  # newest first
    assert html.count('class="audit-event"') == admin_audit.PAGE_SIZE
    older = admin.get("/admin/audit?page=2").get_data(as_text=True)
    assert older.count('class="audit-event"') == 6
    only = admin.get("/admin/audit?action=user.role").get_data(as_text=True)
    assert "1 event." in only and only.count('class="audit-event"') == 1
    assert admin.get("/admin/audit?page=zero").status_code == 400
    assert admin.get("/admin/audit").status_code == 200
    assert "Audit log" in admin.get("/admin/").get_data(as_text=True)


def test_a_city_admin_sees_only_their_citys_events(client, sessions, city):
    with sessions.begin() as s:
        other = make_small_city(s, slug="otherville")["city"]
        other.name, other.public_id_prefix = "Otherville", "OV"
        create_user(
            s,
            email="boss@other.example",
            role="admin",
            city_slug="otherville",
            password=PASSWORD,
        )
        admin_audit.record(
            s, "apikey.create", "api_key", 1, city=city.city_id, actor="cli:x",
            what={"name": "testville's secret partner"},
        )  # fmt: skip
        admin_audit.record(s, "city.create", "city", "new", city=None, actor="cli:x")
        admin_audit.record(s, "user.role", "user", 2, city=other.id, actor="cli:x")
    html = client.get("/login").get_data(as_text=True)
    token = html.split('name="csrf_token" value="')[1].split('"')[0]
    res = client.post(
        "/login", data={"email": "boss@other.example", "password": PASSWORD, "csrf_token": token}
    )
    assert res.status_code == 302
    page = client.get("/admin/audit").get_data(as_text=True)
    assert page.count('class="audit-event"') == 1 and 'data-action="user.role"' in page
    assert "secret partner" not in page and "city.create" not in page
    # asking for the other city by name gets nothing either
    res = client.get(f"/admin/audit?city={city.slug}")
    assert res.status_code in (403, 404) and "secret partner" not in res.get_data(as_text=True)
    res = client.get("/admin/audit?action=apikey.create")
    assert "secret partner" not in res.get_data(as_text=True)


def _sign_in(client, email: str) -> None:
    html = client.get("/login").get_data(as_text=True)
    token = html.split('name="csrf_token" value="')[1].split('"')[0]
    res = client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
    assert res.status_code == 302


def test_only_an_install_admin_sees_every_city_and_install_wide_events(client, sessions, city):
    with sessions.begin() as s:
        other = make_small_city(s, slug="otherville")["city"]
        other.name, other.public_id_prefix = "Otherville", "OV"
        for email, role in [
            ("root@install.example", "install_admin"),
            ("old@city.example", "admin"),
        ]:
            slug = None if role == "install_admin" else city.slug
            user, _ = create_user(s, email=email, role=role, city_slug=slug, password=PASSWORD)
            user.jurisdiction_id = None  # "old": an admin made before any city existed
        admin_audit.record(s, "user.role", "user", 1, city=city.city_id, actor="cli:x")
        admin_audit.record(s, "city.create", "city", "otherville", city=None, actor="cli:x")
        admin_audit.record(s, "apikey.create", "api_key", 2, city=other.id, actor="cli:x")
    # an admin without a city works in the install's default city (the oldest): its events
    _sign_in(client, "old@city.example")
    page = client.get("/admin/audit").get_data(as_text=True)
    assert page.count('class="audit-event"') == 1 and 'data-action="user.role"' in page
    client.post("/logout", data={"csrf_token": page.split('name="csrf_token" value="')[1]
                                 .split('"')[0]})  # fmt: skip
    root = client.application.test_client()
    _sign_in(root, "root@install.example")
    page = root.get("/admin/audit").get_data(as_text=True)
    assert page.count('class="audit-event"') == 3 and "install-wide" in page
    narrowed = root.get("/admin/audit?city=otherville").get_data(as_text=True)
    assert narrowed.count('class="audit-event"') == 1
    assert 'data-action="apikey.create"' in narrowed
    assert root.get("/admin/audit?city=nowhere").status_code == 404


@pytest.mark.parametrize("role", ["agent", "dispatcher", "crew", "planner"])
def test_other_roles_cannot_read_the_log(client, sessions, city, role):
    with sessions.begin() as s:
        admin_audit.record(
            s, "user.role", "user", 1, city=city.city_id, actor="cli:x", what={"email": "a@b.c"}
        )
    login(client, role)
    res = client.get("/admin/audit")
    assert res.status_code == 403 and "a@b.c" not in res.get_data(as_text=True)
