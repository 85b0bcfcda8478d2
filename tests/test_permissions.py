"""Every staff action for every role: a forbidden one answers 403 and changes nothing in
the database; an allowed one works (so the check above can fail).

One database for the module (users are slow to make: argon2); each case works on fresh
requests and compares a fingerprint of every table an action could touch.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import TEMPLATE, make_settings

from spatial.db import make_engine, make_sessionmaker
from tests.support.dispatch_city import EAST, csrf_from, login, make_dispatch_city, report
from tests.support.images import jpeg_bytes

ROLES = ("agent", "dispatcher", "crew", "crew_other", "planner", "admin", "parks_dispatcher")
DISPATCH = {"dispatcher", "admin", "parks_dispatcher"}
AGENTS = {"agent", "dispatcher", "admin", "parks_dispatcher"}
# The requests are Streets' work: the Parks dispatcher (scoped to Parks) is refused them.
ON_STREETS = DISPATCH - {"parks_dispatcher"}
OWN_CREW = {"crew", "admin"}  # the request is in the West crew's zone

TABLES = ("service_request", "request_event", "follower", "outbox_message", "photo", "request_zone")


@dataclass(frozen=True)
class Action:
    name: str
    method: str
    path: str  # {pid} = a fresh request, {other} = a second fresh one
    allowed: frozenset[str]
    data: Any = None
    multipart: bool = False


def _status_data():
    return {"status": "resolved", "note": "done", "photo": (io.BytesIO(jpeg_bytes()), "done.jpg")}


# Admins pick the crew page's crew with ?crew=; a crew member only one of their own.
ACTIONS = [
    Action("console", "GET", "/dispatch", frozenset(DISPATCH)),
    Action("queue api", "GET", "/dispatch/api/queue", frozenset(DISPATCH)),
    Action("updates api", "GET", "/dispatch/api/updates?after_id=0", frozenset(DISPATCH)),
    Action("dispatch panel", "GET", "/dispatch/requests/{pid}", frozenset(ON_STREETS)),
    Action(
        "triage",
        "POST",
        "/dispatch/requests/{pid}/triage",
        frozenset(ON_STREETS),
        {"confirm": "1", "priority": "urgent"},
    ),
    Action(
        "reassign",
        "POST",
        "/dispatch/requests/{pid}/reassign",
        frozenset(ON_STREETS),
        {"department_id": "{streets}", "crew_id": "{crew_e}"},
    ),
    Action(
        "recategorise",
        "POST",
        "/dispatch/requests/{pid}/recategorise",
        frozenset(ON_STREETS),
        {"service_id": "{private}"},
    ),
    Action(
        "move pin",
        "POST",
        "/dispatch/requests/{pid}/move",
        frozenset(ON_STREETS),
        {"lat": str(EAST[0]), "lon": str(EAST[1])},
    ),
    Action(
        "merge",
        "POST",
        "/dispatch/requests/{pid}/merge",
        frozenset(ON_STREETS),
        {"parent": "{other}"},
    ),
    Action(
        "reply",
        "POST",
        "/dispatch/requests/{pid}/reply",
        frozenset(ON_STREETS),
        {"template_id": "{template}"},
    ),
    Action(
        "dispatch note",
        "POST",
        "/dispatch/requests/{pid}/note",
        frozenset(ON_STREETS),
        {"text": "internal"},
    ),
    Action(
        "close",
        "POST",
        "/dispatch/requests/{pid}/close",
        frozenset(ON_STREETS),
        {"reason": "not ours"},
    ),
    Action("crew page", "GET", "/crew?crew={crew_w}", frozenset(OWN_CREW)),
    Action("crew list api", "GET", "/crew/api/requests?crew={crew_w}", frozenset(OWN_CREW)),
    Action("crew zones", "GET", "/crew/zones.geojson?crew={crew_w}", frozenset(OWN_CREW)),
    Action("crew csv", "GET", "/crew/layer.csv?crew={crew_w}", frozenset(OWN_CREW)),
    Action("crew geojson", "GET", "/crew/layer.geojson?crew={crew_w}", frozenset(OWN_CREW)),
    # another crew's open request is not theirs to open (403 naming whose it is)
    Action("crew request", "GET", "/crew/requests/{pid}", frozenset(OWN_CREW)),
    Action(
        "crew status",
        "POST",
        "/crew/requests/{pid}/status",
        frozenset(OWN_CREW),
        _status_data,
        multipart=True,
    ),
    Action(
        "crew note",
        "POST",
        "/crew/requests/{pid}/note",
        frozenset(OWN_CREW),
        {"note": "gate locked"},
    ),
    Action("agent page", "GET", "/agent", frozenset(AGENTS)),
    Action("agent search", "GET", "/agent?q=100+Main", frozenset(AGENTS)),
    Action(
        "agent create",
        "POST",
        "/agent/requests",
        frozenset(AGENTS),
        {
            "channel": "phone",
            "service_code": "pothole",
            "attr:pothole:depth": "4",
            "lat": "34.05",
            "lon": "-118.28",
            "contact_phone": "213 555 0100",
        },
    ),
    Action(
        "agent follow",
        "POST",
        "/agent/requests/{pid}/follow",
        frozenset(AGENTS - {"parks_dispatcher"}),
        {"email": "caller@example.org"},
    ),
]


@pytest.fixture(scope="module")
def world(pg, tmp_path_factory):
    name = f"perm_{os.getpid()}"
    url = pg.create_db(name, template=TEMPLATE)
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as s:
        city = make_dispatch_city(s)
    settings = make_settings(tmp_path_factory.mktemp("perm"), url)
    from webmap.app import create_app

    app = create_app(settings, engine=engine)
    app.config["TESTING"] = True
    yield app, sessions, city, settings
    engine.dispose()
    pg.drop_db(name)


def fingerprint(sessions) -> dict[str, str]:
    out = {}
    with sessions() as s:
        for table in TABLES:
            # A digest of every row's text: any changed value, added or removed row shows.
            out[table] = s.execute(
                sa.text(
                    f"SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') "  # noqa: E501,S608
                    f"FROM {table} t"
                )
            ).scalar()
    return out


def _fill(value: Any, subs: dict[str, str]) -> Any:
    if isinstance(value, str):
        for key, sub in subs.items():
            value = value.replace("{" + key + "}", sub)
    return value


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.name)
def test_role_action(world, role, action):
    app, sessions, city, settings = world
    with sessions.begin() as s:
        pid = report(s, settings.media_dir).public_id
        other = report(s, settings.media_dir).public_id
    subs = {
        "pid": pid,
        "other": other,
        "streets": str(city.streets_id),
        "crew_e": str(city.crew_e_id),
        "crew_w": str(city.crew_w_id),
        "private": str(city.private_id),
        "template": str(city.template_id),
    }
    client = app.test_client()
    login(client, role)
    path = _fill(action.path, subs)
    before = fingerprint(sessions)
    if action.method == "GET":
        res = client.get(path)
    else:
        token = csrf_from(client, "/staff")
        raw = action.data() if callable(action.data) else dict(action.data or {})
        data = {k: _fill(v, subs) for k, v in raw.items()}
        data["csrf_token"] = token
        res = client.post(
            path, data=data, content_type="multipart/form-data" if action.multipart else None
        )
    after = fingerprint(sessions)
    if role in action.allowed:
        assert res.status_code in (200, 201, 303), (res.status_code, res.get_data(as_text=True))
        if action.method == "POST":
            assert after != before, "an allowed action changes the database"
    else:
        assert res.status_code == 403, (res.status_code, res.get_data(as_text=True)[:300])
        assert after == before, "a forbidden action changed the database"


@pytest.mark.parametrize("action", [a for a in ACTIONS if a.method == "POST"], ids=lambda a: a.name)
def test_signed_out_posts_change_nothing(world, action):
    app, sessions, city, settings = world
    with sessions.begin() as s:
        pid = report(s, settings.media_dir).public_id
    client = app.test_client()
    token = csrf_from(client, "/login")
    before = fingerprint(sessions)
    res = client.post(
        _fill(action.path, {"pid": pid, "other": pid}),
        data={"csrf_token": token, "note": "x", "reason": "x", "text": "x"},
    )
    assert res.status_code == 401
    assert fingerprint(sessions) == before


def test_signed_out_pages_go_to_login(world):
    app, *_ = world
    client = app.test_client()
    for path in ("/dispatch", "/crew", "/agent"):
        res = client.get(path)
        assert res.status_code == 302 and "/login" in res.headers["Location"]


def test_staff_of_another_city_cannot_see_or_touch_requests(world):
    app, sessions, city, settings = world
    from geoalchemy2.shape import from_shape
    from shapely.geometry import MultiPolygon, box

    from spatial.accounts import create_user
    from spatial.models import Jurisdiction

    with sessions.begin() as s:
        if not s.scalar(sa.select(Jurisdiction.id).where(Jurisdiction.slug == "otherton")):
            other = Jurisdiction(
                slug="otherton",
                name="Otherton",
                timezone="UTC",
                public_id_prefix="OT",
                boundary=from_shape(MultiPolygon([box(0, 0, 1, 1)]), srid=4326),
            )
            s.add(other)
            s.flush()
            create_user(
                s,
                email="outsider@city.example",
                role="dispatcher",
                city_slug="otherton",
                password="correct horse battery",
            )
        pid = report(s, settings.media_dir).public_id
    client = app.test_client()
    login(client, "outsider")
    before = fingerprint(sessions)
    assert client.get(f"/dispatch/requests/{pid}").status_code == 404
    token = csrf_from(client, "/dispatch")
    res = client.post(
        f"/dispatch/requests/{pid}/triage",
        data={"csrf_token": token, "confirm": "1", "priority": "urgent"},
    )
    assert res.status_code == 404
    assert pid not in client.get("/dispatch").get_data(as_text=True)
    assert client.get("/dispatch?city=testville").status_code == 403
    assert fingerprint(sessions) == before
