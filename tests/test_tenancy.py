"""Cities apart: staff of one city can neither read nor change anything of another.

Two cities share one install, each with its staff, a request with a photo, a crew, an API
key, a help article and a response template. For every route of the staff, planner and
admin blueprints (read from ``app.url_map``, so a new route is covered the day it is
added) and every role of the first city, the second city's ids and its ``?city=`` (or its
``/c/<slug>/`` address) answer 403 or 404, show none of its data and change no row. An
install administrator reading the same addresses sees that data (so the addresses are
right and the check can fail).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from conftest import TEMPLATE, make_settings
from geoalchemy2.shape import from_shape
from shapely.geometry import Point

from intake.mail_addresses import add_address as add_mail_address
from intake.submit import Draft, submit
from notify import templates as mail_templates
from spatial import apikeys
from spatial.accounts import create_user
from spatial.db import make_engine, make_sessionmaker
from spatial.media import PhotoUpload
from spatial.models import (
    Crew,
    Jurisdiction,
    Photo,
    ResponseTemplate,
    RoutingRule,
    RuleSet,
    User,
    ZoneLayer,
)
from spatial.models_mail import FaqArticle
from spatial.models_ops import RerouteJob
from spatial.models_places import Asset, AssetLayer
from spatial.models_work import IntranetContact, Project
from tests.support.city import INSIDE, make_small_city
from tests.support.images import jpeg_bytes

PASSWORD = "correct horse battery staple"
CITY_ROLES = ("agent", "dispatcher", "crew", "planner", "admin")
# Blueprints whose every route is for signed-in staff of one city.
STAFF_BLUEPRINTS = {"dispatch", "crew", "agent", "admin", "planner", "intranet"}
# Staff routes of other blueprints (the FAQ's admin pages, the demo mail spool).
STAFF_PREFIXES = ("/admin/", "/demo/", "/staff/")
# The user's own start page and sign-in settings: they hold no city's data.
CITY_FREE = {"auth.staff_home", "auth.two_factor"}
DENIED = {403, 404}
OTHER_HOST = "311.otherton.example"  # the second city's own host name


@dataclass
class City:
    slug: str
    id: int
    public_id: str
    ids: dict[str, object]  # path argument -> this city's value
    markers: tuple[str, ...]  # text only this city's pages may show


def _make_city(s, slug: str, prefix: str, media_dir, colour: tuple[int, int, int]) -> City:
    base = make_small_city(s, slug)
    city = base["city"]
    city.name = slug.title()
    city.public_id_prefix = prefix
    layer = s.get(ZoneLayer, base["layer"].id)
    crew = Crew(department_id=base["department"].id, code="crew-1", name=f"{slug} crew one")
    template = ResponseTemplate(
        jurisdiction_id=city.id, name=f"{slug} scheduled", body="Fixed within 3 days."
    )
    article = FaqArticle(
        jurisdiction_id=city.id,
        slug="parking",
        title=f"{slug} parking rules",
        body="Where to park.",
        published=False,
    )
    lights = AssetLayer(jurisdiction_id=city.id, name="lights", title="Street lights")
    project = Project(jurisdiction_id=city.id, name=f"{slug} project plan", status="active")
    contact = IntranetContact(jurisdiction_id=city.id, name=f"{slug} on call", phone="555 0100")
    s.add_all([crew, template, article, lights, project, contact])
    s.flush()
    pole = Asset(
        jurisdiction_id=city.id,
        layer_id=lights.id,
        ref=f"{prefix}-791",
        label=f"{slug} pole label",
        attributes={"Owner": f"{slug} owner"},
        location=from_shape(Point(INSIDE[1], INSIDE[0]), srid=4326),
    )
    s.add(pole)
    users = {}
    for role in CITY_ROLES:
        user, _ = create_user(
            s,
            email=f"{role}@{slug}.example",
            role=role,
            city_slug=slug,
            password=PASSWORD,
        )
        if role == "crew":
            user.crews.append(crew)
        users[role] = user
    key, _ = apikeys.create_key(s, slug, f"{slug} client")
    mail_address = add_mail_address(s, city, f"311@{slug}.example", category="pothole")
    draft = Draft(
        city=slug,
        service_code="pothole",
        lat=INSIDE[0],
        lon=INSIDE[1],
        attributes={"depth": "12"},
        description=f"{slug} secret description",
        contact_name="Rosa Resident",
        contact_email=f"rosa@{slug}.example",
        # photos are stored by content: each city's own picture
        photos=[PhotoUpload("hole.jpg", jpeg_bytes(color=colour))],
        channel="web",
    )
    req = submit(s, draft, media_dir=media_dir, public_base_url="http://127.0.0.1:5000").request
    req.crew_id = crew.id
    photo = s.scalar(sa.select(Photo).where(Photo.request_id == req.id))
    ruleset = s.scalar(sa.select(RuleSet).where(RuleSet.jurisdiction_id == city.id))
    rule = s.scalar(sa.select(RoutingRule).where(RoutingRule.ruleset_id == ruleset.id))
    job = RerouteJob(jurisdiction_id=city.id, kind="rules", subject_id=ruleset.id)
    s.add(job)
    s.flush()
    ids = {
        "public_id": req.public_id,
        "user_id": users["dispatcher"].id,
        "key_id": key.id,
        "layer_id": layer.id,
        "ruleset_id": ruleset.id,
        "rule_id": rule.id,
        "job_id": job.id,
        "template_id": template.id,
        "article_id": article.id,
        "crew_id": crew.id,
        "department_id": base["department"].id,
        "service_id": base["pothole"].id,
        "attribute_id": base["pothole"].attributes[0].id,
        "address_id": mail_address.id,
        "rest": photo.public_key.removeprefix("public/"),
        "layer_name": lights.name,
        "ref": pole.ref,
        "project_id": project.id,
        "contact_id": contact.id,
    }
    markers = (
        req.public_id,
        f"{slug} secret description",
        f"rosa@{slug}.example",
        f"dispatcher@{slug}.example",
        f"{slug} client",
        f"{slug} parking rules",
        f"{slug} scheduled",
        f"{slug} crew one",
        f"{slug} pole label",
        f"{slug} project plan",
        f"{slug} on call",
    )
    return City(slug=slug, id=city.id, public_id=req.public_id, ids=ids, markers=markers)


@pytest.fixture(scope="module")
def world(pg, tmp_path_factory):
    name = f"tenancy_{os.getpid()}"
    url = pg.create_db(name, template=TEMPLATE)
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    sessions = make_sessionmaker(engine)
    settings = make_settings(tmp_path_factory.mktemp("tenancy"), url)
    with sessions.begin() as s:
        home = _make_city(s, "hometown", "HT", settings.media_dir, (200, 60, 40))
        other = _make_city(s, "otherton", "OT", settings.media_dir, (40, 160, 90))
        create_user(s, email="root@install.example", role="admin", password=PASSWORD)
        s.get(Jurisdiction, other.id).host = OTHER_HOST
    from webmap.app import create_app

    app = create_app(settings, engine=engine)
    app.config["TESTING"] = True
    yield app, sessions, home, other
    engine.dispose()
    pg.drop_db(name)


def _login(client, email: str) -> None:
    html = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    res = client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
    assert res.status_code == 302, res.get_data(as_text=True)[:500]


_clients: dict = {}


def _client(app, email: str):
    """One signed-in client per account for the module (argon2 makes sign-ins slow)."""
    if email not in _clients:
        client = app.test_client()
        _login(client, email)
        _csrf(client)  # the session holds its CSRF secret from now on
        # signed in at the second city's own host too (cookies are kept per host)
        cookie = client.get_cookie("civicpin_session")
        client.set_cookie("civicpin_session", cookie.value, domain=OTHER_HOST)
        _clients[email] = client
    return _clients[email]


def _csrf(client) -> str:
    html = client.get("/staff").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def fingerprint(sessions) -> str:
    """A digest of every row of every table: any write anywhere shows."""
    with sessions() as s:
        tables = s.scalars(
            sa.text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename NOT IN ('spatial_ref_sys', 'alembic_version') ORDER BY 1"
            )
        ).all()
        parts = [
            f"SELECT '{t}' AS name, count(*) || ':' || "  # noqa: S608 - names from the catalog
            f"coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') AS digest FROM {t} t"
            for t in tables
        ]
        rows = s.execute(sa.text(" UNION ALL ".join(parts))).all()
    return "\n".join(f"{r.name} {r.digest}" for r in rows)


def _action_values(endpoint: str) -> list[str]:
    if endpoint == "dispatch.act":
        from webmap.dispatch import ACTIONS

        return list(ACTIONS)
    if endpoint == "crew.act":
        return ["status", "note", "acknowledge"]
    return []


def _arg_values(rule, endpoint: str, city: City) -> list[dict[str, str]]:
    """Every way to fill ``rule``'s path with ``city``'s ids (several for ``<action>``)."""
    fixed = {
        **{k: str(v) for k, v in city.ids.items()},
        "fmt_name": "csv",
        "view": "heat",
        "kind": next(iter(mail_templates.DEFAULTS)),
        "name": "message.eml",
        "dataset_kind": "addresses",
        "slug": "parking",  # an article's address name (both cities have one)
    }
    out = [{}]
    for arg in sorted(rule.arguments):
        if arg == "action":
            values = _action_values(endpoint)
        elif arg in fixed:
            values = [fixed[arg]]
        else:
            pytest.fail(
                f"{rule.rule}: no value for <{arg}> in tests/test_tenancy.py: give it the "
                "other city's id, so that the new route is checked too"
            )
        out = [{**o, arg: v} for o in out for v in values]
    return out


def _build(rule, values: dict[str, str]) -> str:
    path = rule.rule
    for arg, value in values.items():
        path = re.sub(r"<(?:[^:<>]+:)?" + arg + r">", quote(value, safe="/"), path)
    return path


def staff_cases(app) -> list[tuple[str, str, object]]:
    """(method, endpoint, rule) for every staff route of the app."""
    cases = []
    for rule in app.url_map.iter_rules():
        blueprint = rule.endpoint.split(".")[0]
        staff = blueprint in STAFF_BLUEPRINTS or rule.rule.startswith(STAFF_PREFIXES)
        if not staff and rule.endpoint not in CITY_FREE:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            cases.append((method, rule.endpoint, rule))
    return sorted(cases, key=lambda c: (c[2].rule, c[0]))


POST_FIELDS = {
    "note": "leak check",
    "text": "leak check",
    "body": "leak check",
    "subject": "leak check",
    "title": "leak check",
    "slug": "leak-check",
    "name": "leak check",
    "email": "intruder@example.org",
    "role": "planner",
    "active": "0",
    "status": "closed",
    "priority": "urgent",
    "confirm": "1",
    "public": "1",
    "reason": "leak check",
    "published": "on",
    "service_code": "pothole",
    "lat": str(INSIDE[0]),
    "lon": str(INSIDE[1]),
}


def _request(client, method: str, path: str, token: str | None):
    # "//host/path": the path at that host
    host, _, path = path[2:].partition("/") if path.startswith("//") else ("", "", path[1:])
    kw = {"base_url": f"http://{host}"} if host else {}
    if method == "GET":
        return client.get("/" + path, **kw)
    return client.post("/" + path, data={**POST_FIELDS, "csrf_token": token}, **kw)


def _addresses(rule, endpoint: str, other: City) -> list[str]:
    """The ways to reach ``other``'s data through ``rule``: its ids, its ?city=, its
    addresses (``/c/<slug>/`` and its own host name)."""
    out = []
    for values in _arg_values(rule, endpoint, other):
        path = _build(rule, values)
        if set(values) & set(other.ids):
            out.append(path)
        sep = "&" if "?" in path else "?"
        out.append(f"{path}{sep}city={other.slug}")
        out.append(f"/c/{other.slug}{path}")
        out.append(f"//{OTHER_HOST}{path}")
    return out


def test_every_staff_route_is_checked(world):
    app, *_ = world
    endpoints = {e for _, e, _ in staff_cases(app)}
    # the routes that show or change a city's data are all among the cases
    for endpoint in (
        "dispatch.console",
        "dispatch.act",
        "dispatch.staff_media",
        "crew.act",
        "agent.create",
        "admin.users",
        "admin.change_role",
        "admin.revoke_key",
        "planner.export",
        "planner.heatmap",
        "faq.admin_edit",
        "faq.template_edit",
    ):
        assert endpoint in endpoints, endpoint
    assert len(endpoints) >= 60


@pytest.mark.parametrize("role", CITY_ROLES)
def test_no_cross_city_read_or_write(world, role):
    app, sessions, home, other = world
    client = _client(app, f"{role}@{home.slug}.example")
    token = _csrf(client)
    failures = []
    before = fingerprint(sessions)
    for method, endpoint, rule in staff_cases(app):
        for path in _addresses(rule, endpoint, other):
            if endpoint in CITY_FREE and not re.search(r"/c/|city=|^//", path):
                continue
            res = _request(client, method, path, token)
            body = res.get_data().decode("utf-8", "replace")
            leaked = [m for m in other.markers if m in body]
            if endpoint in CITY_FREE:
                ok = res.status_code in DENIED | {200, 400} and not leaked
            else:
                ok = res.status_code in DENIED and not leaked
            if not ok:
                failures.append(f"{method} {path} -> {res.status_code} {leaked or body[:120]!r}")
            if method == "POST":
                after = fingerprint(sessions)
                if after != before:
                    changed = set(after.splitlines()) - set(before.splitlines())
                    failures.append(f"{method} {path} changed {sorted(changed)}")
                    before = after
    assert not failures, "\n".join(failures)
    # the city's own pages still work for the role's own work (the check is not blanket)
    own = {
        "agent": "/agent",
        "dispatcher": "/dispatch",
        "crew": "/crew",
        "planner": "/planner/heatmap",
        "admin": "/admin/users",
    }[role]
    assert client.get(own).status_code == 200
    assert client.get(f"{own}?city={home.slug}").status_code == 200
    assert client.get(f"/c/{home.slug}{own}").status_code == 200


def test_an_install_admin_reads_every_city(world):
    """The positive control: the same addresses show the other city's data to the install
    administrator, so the denials above are real."""
    app, sessions, home, other = world
    client = _client(app, "root@install.example")
    seen = {
        "/dispatch/requests/{public_id}": f"{other.slug} secret description",
        "/dispatch/api/queue?city={slug}": other.public_id,
        "/admin/users?city={slug}": f"dispatcher@{other.slug}.example",
        "/admin/apikeys?city={slug}": f"{other.slug} client",
        "/admin/templates?city={slug}": f"{other.slug} scheduled",
        "/admin/faq?city={slug}": f"{other.slug} parking rules",
        "/c/{slug}/admin/users": f"dispatcher@{other.slug}.example",
        "/crew?crew={crew_id}": other.public_id,
        "/planner/export/heat.csv?city={slug}": "",
        "/staff/assets/{layer_name}/{ref}?city={slug}": f"{other.slug} pole label",
        "/staff/projects/{project_id}?city={slug}": f"{other.slug} project plan",
    }
    for template, marker in seen.items():
        path = template.format(slug=other.slug, **other.ids)
        res = client.get(path)
        assert res.status_code == 200, (path, res.status_code)
        assert marker in res.get_data(as_text=True), path
    assert client.get(f"/staff/media/{other.ids['rest']}").status_code == 200


def test_a_city_admin_manages_only_their_citys_accounts(world):
    app, sessions, home, other = world
    client = _client(app, f"admin@{home.slug}.example")
    token = _csrf(client)
    with sessions() as s:
        root = s.scalar(sa.select(User).where(User.email == "root@install.example"))
        own = s.scalar(sa.select(User).where(User.email == f"planner@{home.slug}.example"))
    page = client.get("/admin/users").get_data(as_text=True)
    assert "root@install.example" not in page
    assert f"planner@{home.slug}.example" in page
    assert "install_admin" not in page  # not a role they may give
    before = fingerprint(sessions)
    # the install administrator's account is not theirs to change
    for path, data in (
        (f"/admin/users/{root.id}/role", {"role": "planner"}),
        (f"/admin/users/{root.id}/active", {"active": "0"}),
    ):
        res = client.post(path, data={**data, "csrf_token": token})
        assert res.status_code == 404, path
    # nor may they make anyone an install administrator
    res = client.post(
        f"/admin/users/{own.id}/role", data={"role": "install_admin", "csrf_token": token}
    )
    assert res.status_code == 400 and "is not one of" in res.get_data(as_text=True)
    res = client.post(
        "/admin/users",
        data={"email": "boss@example.org", "role": "install_admin", "csrf_token": token},
    )
    assert res.status_code == 400
    assert fingerprint(sessions) == before
    # their own city's accounts they do manage
    res = client.post(
        f"/admin/users/{own.id}/role", data={"role": "dispatcher", "csrf_token": token}
    )
    assert res.status_code == 302
    res = client.post(
        "/admin/users",
        data={"email": f"new@{home.slug}.example", "role": "agent", "csrf_token": token},
    )
    assert res.status_code == 302
    with sessions() as s:
        assert s.get(User, own.id).role == "dispatcher"
        made = s.scalar(sa.select(User).where(User.email == f"new@{home.slug}.example"))
        assert made.jurisdiction_id == home.id


def test_an_install_admin_grants_and_takes_install_admin(world):
    app, sessions, home, other = world
    client = _client(app, "root@install.example")
    token = _csrf(client)
    with sessions.begin() as s:
        user, _ = create_user(
            s, email="deputy@otherton.example", role="planner", city_slug=other.slug
        )
        uid = user.id
    res = client.post(
        f"/c/{other.slug}/admin/users/{uid}/role",
        data={"role": "install_admin", "csrf_token": token},
    )
    assert res.status_code == 302
    with sessions() as s:
        user = s.get(User, uid)
        assert (user.role, user.jurisdiction_id) == ("install_admin", None)
    res = client.post(
        f"/c/{other.slug}/admin/users/{uid}/role", data={"role": "admin", "csrf_token": token}
    )
    assert res.status_code == 302
    with sessions() as s:
        user = s.get(User, uid)
        assert (user.role, user.jurisdiction_id) == ("admin", other.id)


def test_a_city_address_keeps_its_prefix_in_links(world):
    app, sessions, home, other = world
    client = _client(app, f"dispatcher@{other.slug}.example")
    html = client.get(f"/c/{other.slug}/dispatch").get_data(as_text=True)
    assert other.public_id in html
    assert f'href="/c/{other.slug}/static/' in html
    assert "/dispatch/api/queue" in html and f"/c/{other.slug}/dispatch/api/queue" in html
    assert client.get(f"/c/{home.slug}/dispatch").status_code == 403
    assert client.get("/c/nowhere/dispatch").status_code == 403
    # at the city's own host name, the links need no prefix
    html = client.get("/dispatch", base_url=f"http://{OTHER_HOST}").get_data(as_text=True)
    assert other.public_id in html and 'href="/static/' in html


def test_signing_in_at_a_city_address_returns_to_it(world):
    app, sessions, home, other = world
    client = app.test_client()
    res = client.get(f"/c/{other.slug}/admin/users")
    assert res.status_code == 302
    login_url = res.headers["Location"]
    assert login_url.startswith(f"/c/{other.slug}/login?next=/c/{other.slug}/admin/users")
    html = client.get(login_url).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    res = client.post(
        login_url,
        data={"email": "root@install.example", "password": PASSWORD, "csrf_token": token},
    )
    assert res.status_code == 302
    assert res.headers["Location"].startswith(f"/c/{other.slug}/admin/users")
    page = client.get(res.headers["Location"]).get_data(as_text=True)
    assert f"dispatcher@{other.slug}.example" in page


def test_the_cities_in_one_database_agree_with_the_jurisdiction_table(world):
    _, sessions, home, other = world
    with sessions() as s:
        slugs = s.scalars(sa.select(Jurisdiction.slug).order_by(Jurisdiction.slug)).all()
    assert slugs == [home.slug, other.slug]


# --------------------------------------------------------------------------- several cities


PUBLIC_PAGES = ("/", "/report", "/report/plain", "/help", "/help/triage")


def _add_city(sessions, slug: str, name: str, prefix: str) -> None:
    with sessions.begin() as s:
        city = make_small_city(s, slug)["city"]
        city.name, city.public_id_prefix = name, prefix


def _public_app(settings, engine, **overrides):
    from webmap.app import create_app

    app = create_app(settings.with_overrides(**overrides), engine=engine)
    app.config["TESTING"] = True
    return app.test_client()


def _shows(client, path: str, name: str) -> str:
    res = client.get(path)
    html = res.get_data(as_text=True)
    assert res.status_code == 200, (path, res.status_code, html[:300])
    assert name in html, (path, name)
    return html


def test_adding_a_city_changes_nothing_for_the_first(sessions, settings, engine):
    _add_city(sessions, "firstville", "Firstville", "FV")
    client = _public_app(settings, engine)
    for path in PUBLIC_PAGES:
        _shows(client, path, "Firstville")
    _add_city(sessions, "secondton", "Secondton", "SE")
    for path in PUBLIC_PAGES:
        html = _shows(client, path, "Firstville")
        assert "Secondton" not in html, path
    # the second city has its own addresses, and its pages' links keep them
    for path in PUBLIC_PAGES:
        html = _shows(client, f"/c/secondton{path}", "Secondton")
        assert "Firstville" not in html, path
    form = _shows(client, "/c/secondton/report/plain", "Secondton")
    assert 'action="/c/secondton/report' in form
    assert client.get("/c/nowhere/report").status_code == 404
    bbox = "-118.30,34.00,-118.20,34.10"
    assert client.get(f"/api/map/requests?bbox={bbox}&zoom=14").status_code == 200


def test_civicpin_city_chooses_the_pages_without_a_prefix(sessions, settings, engine):
    _add_city(sessions, "firstville", "Firstville", "FV")
    _add_city(sessions, "secondton", "Secondton", "SE")
    client = _public_app(settings, engine, default_city="secondton")
    for path in PUBLIC_PAGES:
        html = _shows(client, path, "Secondton")
        assert "Firstville" not in html, path
    _shows(client, "/c/firstville/help/triage", "Firstville")


def test_a_city_with_a_host_name_of_its_own(sessions, settings, engine):
    from spatial.cities import city_base_url, set_host

    _add_city(sessions, "firstville", "Firstville", "FV")
    _add_city(sessions, "secondton", "Secondton", "SE")
    with sessions.begin() as s:
        second = s.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == "secondton"))
        set_host(s, second, "311.Secondton.example")
        assert city_base_url(settings, second) == "http://311.secondton.example"
    client = _public_app(settings, engine)
    at_host = {"base_url": "http://311.secondton.example:8080"}
    for path in PUBLIC_PAGES:
        res = client.get(path, **at_host)
        html = res.get_data(as_text=True)
        assert res.status_code == 200 and "Secondton" in html and "Firstville" not in html
    assert 'action="/report' in client.get("/report/plain", **at_host).get_data(as_text=True)
    # the install's own address still serves the first city, and the prefix still works
    _shows(client, "/report", "Firstville")
    _shows(client, "/c/secondton/report", "Secondton")
    found = client.get("/open311/v2/discovery.json", **at_host).get_json()
    assert "Secondton" in found["contact"] and "Firstville" not in found["contact"]
    assert found["endpoints"][0]["url"] == "http://311.secondton.example/open311/v2"


def test_a_citys_base_url_is_its_own_and_is_served(sessions, settings, engine):
    from spatial.cities import city_base_url

    _add_city(sessions, "firstville", "Firstville", "FV")
    _add_city(sessions, "secondton", "Secondton", "SE")
    with sessions() as s:
        second = s.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == "secondton"))
        assert city_base_url(settings, second) == "http://127.0.0.1:5000/c/secondton"
    assert city_base_url("https://311.example.org/", "firstville") == (
        "https://311.example.org/c/firstville"
    )
    client = _public_app(settings, engine)
    triage = city_base_url(settings, "secondton") + "/help/triage"
    _shows(client, triage.removeprefix(settings.public_base_url), "Secondton")


def test_the_migration_makes_city_less_admins_install_admins(engine):
    """Before: an admin with no city ran every city, other staff with no city worked in
    every city. After: the admin is an install administrator; the others belong to the
    city created first."""
    from spatial.db import downgrade, migrate

    downgrade(engine, "0460")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO jurisdiction (slug, name, timezone, metric_srid, public_id_prefix, "
                "created_at) VALUES "
                "('elder', 'Elder', 'UTC', 3857, 'EL', now() - interval '1 day'), "
                "('younger', 'Younger', 'UTC', 3857, 'YO', now())"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO app_user (email, role, jurisdiction_id, active, created_at) VALUES "
                "('root@example.org', 'admin', NULL, true, now()), "
                "('roving@example.org', 'dispatcher', NULL, true, now()), "
                "('city-admin@example.org', 'admin', "
                " (SELECT id FROM jurisdiction WHERE slug = 'younger'), true, now())"
            )
        )
    migrate(engine)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT u.email, u.role, j.slug FROM app_user u "
                "LEFT JOIN jurisdiction j ON j.id = u.jurisdiction_id ORDER BY u.email"
            )
        ).all()
        assert [tuple(r) for r in rows] == [
            ("city-admin@example.org", "admin", "younger"),
            ("root@example.org", "install_admin", None),
            ("roving@example.org", "dispatcher", "elder"),
        ]
        # an install administrator never belongs to a city
        with pytest.raises(sa.exc.IntegrityError):
            conn.execute(
                sa.text(
                    "UPDATE app_user SET jurisdiction_id = "
                    "(SELECT id FROM jurisdiction LIMIT 1) WHERE role = 'install_admin'"
                )
            )


def test_the_demo_mail_spool_is_for_install_admins_only(world):
    """The spool holds every city's mail: no city's staff may read it."""
    app, sessions, home, other = world
    from webmap.app import create_app

    settings = app.extensions["civicpin"]["settings"]
    engine = app.extensions["civicpin"]["engine"]
    demo = create_app(settings.with_overrides(demo_mail_page=True), engine=engine)
    demo.config["TESTING"] = True
    for role in CITY_ROLES:
        client = demo.test_client()
        _login(client, f"{role}@{home.slug}.example")
        res = client.get("/demo/mail")
        assert res.status_code == 403, role
        assert other.public_id not in res.get_data(as_text=True)
    root = demo.test_client()
    _login(root, "root@install.example")
    page = root.get("/demo/mail")
    assert page.status_code == 200 and other.public_id in page.get_data(as_text=True)


def _report(client, base: str) -> str:
    page = client.get(f"{base}/report").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    res = client.post(
        f"{base}/report",
        data={
            "csrf_token": token,
            "form": "map",
            "service_code": "pothole",
            "lat": str(INSIDE[0]),
            "lon": str(INSIDE[1]),
            "attribute[depth]": "12",
            "description": "Deep hole by the bus stop",
            "contact_email": "ana@example.org",
        },
    )
    assert res.status_code == 303, res.get_data(as_text=True)[:500]
    assert res.headers["Location"].startswith(f"{base}/report/done/")
    html = client.get(res.headers["Location"]).get_data(as_text=True)
    return re.search(r'id="public-id">([^<]+)<', html).group(1)


def test_a_report_goes_to_the_city_of_the_address(sessions, settings, engine):
    _add_city(sessions, "firstville", "Firstville", "FV")
    _add_city(sessions, "secondton", "Secondton", "SE")
    client = _public_app(settings, engine)
    assert _report(client, "/c/secondton").startswith("SE-")
    assert _report(client, "").startswith("FV-")
    assert _report(client, "/c/firstville").startswith("FV-")


def test_a_bad_civicpin_city_stops_civicpin_with_one_line(cli):
    res = cli("city", "list", env={"CIVICPIN_CITY": "Los Angeles"})
    assert res.returncode != 0
    assert res.stderr.strip() == (
        "civicpin: error: CIVICPIN_CITY: 'Los Angeles' is not a city slug "
        "(lower-case letters, digits and dashes)"
    )


def test_civicpin_city_naming_no_city_is_said_plainly(cli, sessions, settings, engine):
    _add_city(sessions, "firstville", "Firstville", "FV")
    res = cli("city", "list", env={"CIVICPIN_CITY": "atlantis"})
    assert res.returncode == 0 and res.stdout.startswith("firstville\tFirstville\t")
    assert "CIVICPIN_CITY names no city: there is no city 'atlantis'" in res.stderr
    client = _public_app(settings, engine, default_city="atlantis")
    res = client.get("/report")
    assert res.status_code == 404
    assert "CIVICPIN_CITY names no city" in res.get_data(as_text=True)
    _shows(client, "/c/firstville/report", "Firstville")
