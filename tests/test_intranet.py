"""The intranet: who may use it, its forms (internal categories, no map for a category
that needs no place), "My requests" with what is meant for the requester, staff articles
edited in the article admin, and the emergency contacts' admin with its errors and audit."""

from __future__ import annotations

import os
import re

import pytest
import sqlalchemy as sa
from conftest import TEMPLATE, make_settings

from intake.submit import Draft, submit
from spatial.accounts import create_user
from spatial.db import make_engine, make_sessionmaker
from spatial.models import (
    Department,
    RequestEvent,
    RoutingRule,
    RuleSet,
    Service,
    ServiceAttribute,
    ServiceRequest,
    User,
)
from spatial.models_mail import FaqArticle
from spatial.models_ops import AdminEvent
from spatial.models_work import IntranetContact
from tests.support.dispatch_city import BASE_URL, PASSWORD, make_dispatch_city

STAFF_ARTICLE = "Printer says offline"
PUBLIC_ARTICLE = "Bulky item pick-up"


def make_helpdesk_city(s) -> dict:
    """The dispatch test city plus an IT department with its own dispatcher, two internal
    categories routed by category alone ("password": no place; "desk-move": place
    optional), a requester, a staff article and an emergency contact."""
    dc = make_dispatch_city(s)
    it = Department(jurisdiction_id=dc.city_id, code="it", name="IT help desk")
    s.add(it)
    s.flush()
    password = Service(
        jurisdiction_id=dc.city_id,
        code="password",
        name="Password reset",
        group="IT",
        internal=True,
        private=True,
        location_mode="none",
    )
    password.attributes = [
        ServiceAttribute(
            code="system",
            datatype="singlevaluelist",
            description="Which system?",
            required=True,
            values=[{"key": "mail", "name": "E-mail"}, {"key": "erp", "name": "Finance"}],
        )
    ]
    desk = Service(
        jurisdiction_id=dc.city_id,
        code="desk-move",
        name="Desk move",
        group="Facilities",
        internal=True,
        private=True,
        location_mode="optional",
    )
    s.add_all([password, desk])
    s.flush()
    ruleset = s.scalar(sa.select(RuleSet).where(RuleSet.jurisdiction_id == dc.city_id))
    for position, service in ((10, password), (11, desk)):
        s.add(
            RoutingRule(
                ruleset_id=ruleset.id,
                position=position,
                name=f"{service.name} to IT",
                service_id=service.id,
                department_id=it.id,
            )
        )
    users = {}
    for key, role, dept in (
        ("requester", "requester", None),
        ("requester_two", "requester", None),
        ("it_dispatcher", "dispatcher", it),
    ):
        user, _ = create_user(
            s,
            email=f"{key}@city.example",
            role=role,
            city_slug=dc.slug,
            name=key.replace("_", " ").title(),
            password=PASSWORD,
        )
        if dept is not None:
            user.departments.append(dept)
        users[key] = user.id
    s.add_all(
        [
            FaqArticle(
                jurisdiction_id=dc.city_id,
                slug="printer-offline",
                title=STAFF_ARTICLE,
                topic="Printing",
                body="Turn it off and on.\n\n- Check the cable",
                audience="staff",
            ),
            FaqArticle(
                jurisdiction_id=dc.city_id,
                slug="bulky",
                title=PUBLIC_ARTICLE,
                body="Book a pick-up.",
            ),
            IntranetContact(
                jurisdiction_id=dc.city_id, name="IT on call", phone="+1 555 0100", position=1
            ),
        ]
    )
    s.flush()
    return {"dc": dc, "it_id": it.id, "users": users}


def file_internal(s, requester_id: int | None, media_dir, **kw) -> ServiceRequest:
    """A password reset filed through the real intake.submit, as the requester."""
    draft = Draft(
        city="testville",
        service_code=kw.pop("service_code", "password"),
        description=kw.pop("description", "Locked out of my mail: ext. 4471, Ann Staff"),
        attributes=kw.pop("attributes", {"system": "mail"}),
        contact_name="Ann Staff",
        contact_email="requester@city.example",
        channel="web",
        requester_id=requester_id,
        **kw,
    )
    return submit(s, draft, media_dir=media_dir, public_base_url=BASE_URL).request


@pytest.fixture(scope="module")
def world(pg, tmp_path_factory):
    name = f"intranet_{os.getpid()}"
    url = pg.create_db(name, template=TEMPLATE)
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    sessions = make_sessionmaker(engine)
    settings = make_settings(tmp_path_factory.mktemp("intranet"), url)
    with sessions.begin() as s:
        info = make_helpdesk_city(s)
        create_user(s, email="root@install.example", role="install_admin", password=PASSWORD)
    from webmap.app import create_app

    app = create_app(settings, engine=engine)
    app.config["TESTING"] = True
    yield app, sessions, settings, info
    engine.dispose()
    pg.drop_db(name)


_clients: dict = {}


def signed_in(app, key: str):
    """One signed-in client per account for the module (sign-in is slow on purpose)."""
    if key not in _clients:
        client = app.test_client()
        html = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
        email = key if "@" in key else f"{key}@city.example"
        res = client.post(
            "/login", data={"email": email, "password": PASSWORD, "csrf_token": token}
        )
        assert res.status_code == 302, res.get_data(as_text=True)[:300]
        client.landing = res.headers["Location"]
        _clients[key] = client
    return _clients[key]


def csrf(client, path: str = "/intranet") -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def admin_events(sessions, action_prefix: str) -> list[AdminEvent]:
    with sessions() as s:
        return list(
            s.scalars(
                sa.select(AdminEvent)
                .where(AdminEvent.action.startswith(action_prefix))
                .order_by(AdminEvent.id)
            )
        )


# --------------------------------------------------------------------------- who may enter


def test_only_the_citys_staff_enter(world):
    app, *_ = world
    anonymous = app.test_client()
    res = anonymous.get("/intranet")
    assert res.status_code == 302 and "/login" in res.headers["Location"]
    assert anonymous.get("/intranet/requests").status_code == 302
    assert signed_in(app, "root@install.example").get("/intranet").status_code == 403
    # a requester lands on the intranet; any staff member may use it
    requester = signed_in(app, "requester")
    assert requester.landing.endswith("/intranet")
    for key in ("requester", "crew", "planner", "dispatcher"):
        assert signed_in(app, key).get("/intranet").status_code == 200, key
    # the staff bar offers it; a requester gets no other workspace
    bar = requester.get("/intranet").get_data(as_text=True)
    assert 'href="/intranet"' in bar and 'href="/dispatch"' not in bar
    assert requester.get("/dispatch").status_code == 403
    assert 'href="/intranet"' in signed_in(app, "crew").get("/crew").get_data(as_text=True)


def test_the_index_lists_staff_forms_articles_and_contacts(world):
    app, *_ = world
    html = signed_in(app, "requester").get("/intranet").get_data(as_text=True)
    assert "Password reset" in html and "Desk move" in html
    assert "Pothole" not in html  # public categories are reported on the map
    assert STAFF_ARTICLE in html and PUBLIC_ARTICLE not in html
    assert "IT on call" in html and "+1 555 0100" in html
    found = signed_in(app, "requester").get("/intranet?q=printer").get_data(as_text=True)
    assert STAFF_ARTICLE in found
    article = signed_in(app, "requester").get("/intranet/help/printer-offline")
    assert article.status_code == 200 and "Check the cable" in article.get_data(as_text=True)
    # a public article is not an intranet page
    assert signed_in(app, "requester").get("/intranet/help/bulky").status_code == 404


# --------------------------------------------------------------------------- forms


def test_a_no_place_form_has_no_map_and_files_the_requesters_request(world):
    app, sessions, _settings, info = world
    client = signed_in(app, "requester_two")
    page = client.get("/intranet/new?service=password").get_data(as_text=True)
    assert "Which system?" in page
    assert 'name="address"' not in page and "leaflet" not in page.split("</head>")[1].lower()
    assert 'name="address"' in client.get("/intranet/new?service=desk-move").get_data(as_text=True)
    assert client.get("/intranet/new?service=pothole").status_code == 404
    token = csrf(client)
    # a required question unanswered: the form again with the message, nothing written
    before = _count(sessions)
    res = client.post(
        "/intranet/new?service=password",
        data={"csrf_token": token, "description": "Locked out"},
    )
    assert res.status_code == 422 and "Please answer: Which system?" in res.get_data(as_text=True)
    assert _count(sessions) == before
    res = client.post(
        "/intranet/new?service=password",
        data={
            "csrf_token": token,
            "description": "Locked out of the finance system",
            "attribute[system]": "erp",
            "address": "100 Main St",  # ignored: the category needs no place
        },
    )
    assert res.status_code == 303 and res.headers["Location"].endswith("/intranet/requests")
    with sessions() as s:
        req = s.scalars(sa.select(ServiceRequest).order_by(ServiceRequest.id.desc())).first()
        assert req.requester_id == info["users"]["requester_two"]
        assert req.department_id == info["it_id"]
        assert (req.location, req.address, req.needs_location) == (None, None, False)
        assert req.contact_email == "requester_two@city.example"
    mine = client.get("/intranet/requests").get_data(as_text=True)
    assert req.public_id in mine and "Locked out of the finance system" in mine


def _count(sessions) -> int:
    with sessions() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(ServiceRequest))


def test_my_requests_shows_what_is_meant_for_the_requester_newest_first(world):
    app, sessions, settings, info = world
    uid = info["users"]["requester"]
    with sessions.begin() as s:
        first = file_internal(s, uid, settings.media_dir, description="First: VPN broken")
        second = file_internal(s, uid, settings.media_dir, description="Second: mail locked")
        other = file_internal(
            s, info["users"]["requester_two"], settings.media_dir, description="Someone else's"
        )
        s.add_all(
            [
                RequestEvent(
                    request_id=second.id,
                    kind="note",
                    note="internal: user is on leave",
                    public=False,
                    actor_label="IT",
                ),
                RequestEvent(
                    request_id=second.id,
                    kind="reply",
                    note="We reset it: check your phone",
                    public=True,
                    actor_label="IT help desk",
                ),
                RequestEvent(
                    request_id=second.id,
                    kind="message",
                    note="Thanks, it works",
                    public=False,
                    actor_label="Reporter",
                ),
            ]
        )
        ids = first.public_id, second.public_id, other.public_id
    html = signed_in(app, "requester").get("/intranet/requests").get_data(as_text=True)
    assert ids[0] in html and ids[1] in html and ids[2] not in html
    assert html.index(ids[1]) < html.index(ids[0])  # newest first
    assert "We reset it: check your phone" in html and "Thanks, it works" in html
    assert "internal: user is on leave" not in html


# --------------------------------------------------------------------------- admin


def test_contacts_admin_validates_audits_and_orders(world):
    app, sessions, *_ = world
    admin = signed_in(app, "admin")
    token = csrf(admin, "/admin/intranet/contacts")
    with sessions() as s:
        before = s.scalar(sa.select(sa.func.count()).select_from(IntranetContact))
    for form, field, message in (
        ({"name": "", "phone": "555 0101"}, "name", "Give the contact a name"),
        ({"name": "Facilities", "phone": "call me"}, "phone", "is not a phone number"),
        ({"name": "Facilities", "email": "not-mail"}, "email", "is not an e-mail address"),
        ({"name": "Facilities"}, "phone", "Give a phone number or an e-mail address"),
    ):
        res = admin.post("/admin/intranet/contacts", data={"csrf_token": token, **form})
        body = res.get_data(as_text=True)
        assert res.status_code == 400, form
        assert f'id="error-{field}"' in body and message in body, form
    with sessions() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(IntranetContact)) == before
    assert admin_events(sessions, "intranet.") == []

    res = admin.post(
        "/admin/intranet/contacts",
        data={"csrf_token": token, "name": "Facilities night line", "phone": "+1 555 0199 x12"},
    )
    assert res.status_code == 302
    with sessions() as s:
        new = s.scalar(sa.select(IntranetContact).where(IntranetContact.name.like("Facilities%")))
    res = admin.post(
        f"/admin/intranet/contacts/{new.id}",
        data={"csrf_token": token, "name": "Facilities", "email": "fac@city.example"},
    )
    assert res.status_code == 302
    admin.post(
        f"/admin/intranet/contacts/{new.id}/move", data={"csrf_token": token, "direction": "up"}
    )
    html = signed_in(app, "requester").get("/intranet").get_data(as_text=True)
    assert html.index("fac@city.example") < html.index("IT on call")
    admin.post(f"/admin/intranet/contacts/{new.id}/delete", data={"csrf_token": token})
    assert "fac@city.example" not in signed_in(app, "requester").get("/intranet").get_data(
        as_text=True
    )
    actions = [(e.action, e.actor_label) for e in admin_events(sessions, "intranet.")]
    assert [a for a, _ in actions] == [
        "intranet.contact_add",
        "intranet.contact_edit",
        "intranet.contact_move",
        "intranet.contact_delete",
    ]
    assert {who for _, who in actions} == {"admin@city.example"}
    # not for other roles
    assert signed_in(app, "requester").get("/admin/intranet/contacts").status_code == 403


def test_article_admin_chooses_the_audience(world):
    app, sessions, *_ = world
    admin = signed_in(app, "admin")
    token = csrf(admin, "/admin/faq/new")
    form = {
        "csrf_token": token,
        "title": "VPN from home",
        "slug": "vpn",
        "topic": "Remote work",
        "body": "Start the VPN client first.",
        "published": "on",
        "audience": "staff",
    }
    # an article about an internal category cannot be public
    res = admin.post(
        "/admin/faq/new", data={**form, "audience": "public", "service_code": "password"}
    )
    assert res.status_code == 400
    assert "internal (staff-only) category is for staff" in res.get_data(as_text=True)
    assert admin.post("/admin/faq/new", data=form).status_code == 302
    event = admin_events(sessions, "faq.")[-1]
    assert event.action == "faq.create" and event.what["audience"] == "staff"
    staff = signed_in(app, "planner").get("/intranet").get_data(as_text=True)
    assert "VPN from home" in staff
    public = app.test_client()
    assert "VPN from home" not in public.get("/help").get_data(as_text=True)
    assert "VPN from home" not in public.get("/help?q=vpn").get_data(as_text=True)
    assert public.get("/help/vpn").status_code == 404
    assert public.get("/help/printer-offline").status_code == 404
    # the editor lists both audiences
    listing = admin.get("/admin/faq").get_data(as_text=True)
    assert "VPN from home" in listing and "Staff (intranet)" in listing


def test_internal_categories_are_always_private_and_requesters_can_be_made(world):
    app, sessions, *_ = world
    admin = signed_in(app, "admin")
    token = csrf(admin, "/admin/categories")
    res = admin.post(
        "/admin/categories",
        data={"csrf_token": token, "code": "laptop", "name": "New laptop", "internal": "on"},
    )
    assert res.status_code == 302
    with sessions() as s:
        laptop = s.scalar(sa.select(Service).where(Service.code == "laptop"))
        assert (laptop.internal, laptop.private) == (True, True)
    token = csrf(admin, "/admin/users")
    res = admin.post(
        "/admin/users",
        data={
            "csrf_token": token,
            "email": "clerk@city.example",
            "role": "requester",
            "name": "Clerk",
        },
    )
    assert res.status_code in (200, 302), res.get_data(as_text=True)[:300]
    with sessions() as s:
        clerk = s.scalar(sa.select(User).where(User.email == "clerk@city.example"))
        assert clerk.role == "requester"


# --------------------------------------------------------------------------- every channel


def test_a_request_without_a_place_routes_by_category_in_every_channel(world):
    """A public category that needs no place ("noise": a rule with no layer sends it to
    Parks) and an internal one at the agent console: no pin, no "needs location"."""
    app, sessions, settings, info = world
    from intake.email_intake import MailIntake
    from spatial.apikeys import create_key
    from spatial.models_mail import MailAddress
    from tests.support.mail import mime

    dc = info["dc"]
    with sessions.begin() as s:
        noise = Service(
            jurisdiction_id=dc.city_id, code="noise", name="Noise at night", location_mode="none"
        )
        s.add(noise)
        s.flush()
        ruleset = s.scalar(sa.select(RuleSet).where(RuleSet.jurisdiction_id == dc.city_id))
        s.add(
            RoutingRule(
                ruleset_id=ruleset.id,
                position=20,
                name="Noise to parks",
                service_id=noise.id,
                department_id=dc.parks_id,
            )
        )
        s.add(MailAddress(jurisdiction_id=dc.city_id, address="noise@city.example",
                          service_id=noise.id))  # fmt: skip
        _, key = create_key(s, dc.slug, "noise app")
    made: dict[str, str] = {}

    def newest() -> ServiceRequest:
        with sessions() as s:
            return s.scalars(sa.select(ServiceRequest).order_by(ServiceRequest.id.desc())).first()

    # the resident's report form: no pin asked
    resident = app.test_client()
    page = resident.get("/report").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    res = resident.post(
        "/report",
        data={"csrf_token": token, "form": "map", "service_code": "noise",
              "description": "Loud music every night"},
    )  # fmt: skip
    assert res.status_code in (302, 303), res.get_data(as_text=True)[:300]
    made["web"] = newest().public_id
    # Open311: the app's GPS is dropped
    res = app.test_client().post(
        "/open311/v2/requests.json",
        data={"api_key": key, "service_code": "noise", "lat": "34.05", "long": "-118.28",
              "description": "Barking dog"},
    )  # fmt: skip
    assert res.status_code == 200, res.get_data(as_text=True)
    made["api"] = newest().public_id
    # e-mail to the category's address: no link to drop a pin
    intake = MailIntake(
        sessions, public_base_url=settings.public_base_url, media_dir=settings.media_dir
    )
    outcome = intake.process(
        mime(
            "Noise", "Generator running all night near 100 Main St", to="noise@city.example"
        ).as_bytes(),
        mail_from="ana@example.org",
        rcpt_tos=["noise@city.example"],
    )
    assert outcome.outcome == "created", outcome.detail
    made["email"] = outcome.public_id
    # the agent console, for a caller from the staff (an internal category)
    agent = signed_in(app, "agent")
    token = csrf(agent, "/agent")
    res = agent.post(
        "/agent/requests",
        data={"csrf_token": token, "channel": "phone", "service_code": "password",
              "attr:password:system": "mail", "description": "Caller locked out"},
    )  # fmt: skip
    assert res.status_code == 201, res.get_data(as_text=True)[:300]
    made["phone"] = newest().public_id
    with sessions() as s:
        rows = {
            r.channel: r
            for r in s.scalars(
                sa.select(ServiceRequest).where(ServiceRequest.public_id.in_(made.values()))
            )
        }
        assert set(rows) == {"web", "api", "email", "phone"}
        for channel, req in rows.items():
            want = info["it_id"] if channel == "phone" else dc.parks_id
            assert req.department_id == want, channel
            assert (req.location, req.needs_location) == (None, False), channel
            kinds = set(
                s.scalars(sa.select(RequestEvent.kind).where(RequestEvent.request_id == req.id))
            )
            assert "needs_location" not in kinds, channel


def test_a_new_category_without_a_place_routes_again(world):
    """Re-categorised by dispatch, a request without a place is routed by the new
    category's rules for any place (here its default department)."""
    app, sessions, settings, info = world
    from routing import actions

    dc = info["dc"]
    with sessions.begin() as s:
        phones = Service(
            jurisdiction_id=dc.city_id,
            code="phones",
            name="Desk phone",
            internal=True,
            private=True,
            location_mode="none",
            default_department_id=dc.parks_id,
        )
        s.add(phones)
        s.flush()
        req = file_internal(s, info["users"]["requester"], settings.media_dir)
        assert req.department_id == info["it_id"]
        dispatcher = s.scalar(sa.select(User).where(User.email == "dispatcher@city.example"))
        actions.recategorise(s, dispatcher, req, service_id=phones.id)
        assert req.department_id == dc.parks_id
