"""A staff member's request of an internal category, played as the stranger: it is on no
public page, map, Open311 answer, public export, help page or duplicate suggestion, and
no channel but the requester's and the agent console's may file one. Played as a
department outsider in staff: another department's dispatcher or crew cannot open it;
its own department and central dispatch can, and see it has no place."""

from __future__ import annotations

import json
import os
import re
import zipfile
from datetime import timedelta

import pytest
import sqlalchemy as sa
from conftest import TEMPLATE, make_settings

from intake.submit import Draft, ValidationFailed, submit
from records.public_export import check_period, export_public_records
from spatial.apikeys import create_key
from spatial.db import make_engine, make_sessionmaker
from spatial.models import Jurisdiction, ServiceRequest, now_utc
from tests.support.dispatch_city import BASE_URL, PASSWORD, WEST, report
from tests.test_intranet import file_internal, make_helpdesk_city
from webmap.mapping import city_overview, map_data

V2 = "/open311/v2"
INTERNAL_NAMES = ("Password reset", "Desk move")
SECRET = "Locked out of my mail: ext. 4471, Ann Staff"


@pytest.fixture(scope="module")
def world(pg, tmp_path_factory):
    name = f"helpdesk_{os.getpid()}"
    url = pg.create_db(name, template=TEMPLATE)
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    sessions = make_sessionmaker(engine)
    settings = make_settings(tmp_path_factory.mktemp("helpdesk"), url)
    with sessions.begin() as s:
        info = make_helpdesk_city(s)
        uid = info["users"]["requester"]
        no_place = file_internal(s, uid, settings.media_dir)
        # an internal request with a place (its category's place is optional)
        placed = file_internal(
            s,
            uid,
            settings.media_dir,
            service_code="desk-move",
            attributes={},
            description="Move my desk to the second floor",
            lat=WEST[0],
            lon=WEST[1],
        )
        public = report(s, settings.media_dir, where=WEST)
        _, key = create_key(s, "testville", "an app")
        info.update(
            no_place=no_place.public_id,
            placed=placed.public_id,
            public=public.public_id,
            key=key,
        )
    from webmap.app import create_app

    app = create_app(settings, engine=engine)
    app.config["TESTING"] = True
    yield app, sessions, settings, info
    engine.dispose()
    pg.drop_db(name)


def _internal_ids(info) -> tuple[str, str]:
    return info["no_place"], info["placed"]


def _learns_nothing(body: str, info) -> None:
    for marker in (*_internal_ids(info), *INTERNAL_NAMES, SECRET, '"password"', '"desk-move"'):
        assert marker not in body, marker


def test_the_stranger_finds_it_on_no_public_page(world):
    app, _sessions, _settings, info = world
    stranger = app.test_client()
    for public_id in _internal_ids(info):
        assert stranger.get(f"/requests/{public_id}").status_code == 404
        assert stranger.get(f"/api/requests/{public_id}").status_code == 404
    for path in (
        "/",
        "/report",
        "/report?service=password",
        "/report/plain",
        "/report/plain?service_code=password&go=1",
        "/help",
        "/help?q=reset",
    ):
        res = stranger.get(path)
        assert res.status_code == (422 if "go=1" in path else 200), path
        _learns_nothing(res.get_data(as_text=True), info)
    # the report form lists the public categories (the check is not blanket)
    assert "Pothole" in stranger.get("/report").get_data(as_text=True)
    assert stranger.get("/help/category/password").status_code == 404
    assert stranger.get("/help/printer-offline").status_code == 404
    assert "Printer says offline" not in stranger.get("/help?q=printer").get_data(as_text=True)


def test_the_map_neither_shows_nor_counts_it(world):
    app, sessions, _settings, info = world
    stranger = app.test_client()
    lat, lon = WEST
    bbox = f"{lon - 0.01},{lat - 0.01},{lon + 0.01},{lat + 0.01}"
    near = stranger.get(f"/api/map/requests?bbox={bbox}&zoom=18").get_json()
    ids = {f["properties"].get("public_id") for f in near["features"]}
    assert info["public"] in ids  # the resident's report at the same spot is shown
    _learns_nothing(json.dumps(near), info)
    wide = stranger.get("/api/map/requests?bbox=-118.5,33.9,-118.0,34.2&zoom=11").get_json()
    _learns_nothing(json.dumps(wide), info)
    if wide.get("mode") == "clusters":
        assert wide["total"] == 1
    else:
        assert len(wide["features"]) == 1
    for code in ("desk-move", "password"):
        res = stranger.get(f"/api/map/requests?bbox={bbox}&zoom=18&service={code}")
        assert res.status_code == 400
    # the counts kept per grid cell (the city zoom's clusters, the page's totals)
    with sessions() as s:
        city = s.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == "testville"))
        clusters = map_data(s, city, (-118.5, 33.9, -118.0, 34.2), zoom=11, cluster_above=0)
        assert clusters["mode"] == "clusters" and clusters["total"] == 1
        overview = city_overview(s, city)
        assert (overview.total_requests, overview.open_requests) == (1, 1)


def test_open311_answers_as_for_an_unknown_category(world):
    app, _sessions, _settings, info = world
    client = app.test_client()
    services = client.get(f"{V2}/services.json")
    assert services.status_code == 200 and "pothole" in services.get_data(as_text=True)
    _learns_nothing(services.get_data(as_text=True), info)
    unknown = client.get(f"{V2}/services/nosuch.json")
    for code in ("password", "desk-move"):
        res = client.get(f"{V2}/services/{code}.json")
        assert res.status_code == unknown.status_code == 404
    listing = client.get(f"{V2}/requests.json").get_data(as_text=True)
    assert info["public"] in listing
    _learns_nothing(listing, info)
    for public_id in _internal_ids(info):
        res = client.get(f"{V2}/requests/{public_id}.json")
        assert res.status_code == 404 or public_id not in res.get_data(as_text=True)

    def post(code: str):
        return client.post(
            f"{V2}/requests.json",
            data={"api_key": info["key"], "service_code": code, "description": "hello"},
        )

    nosuch = post("nosuch")
    for code in ("password", "desk-move"):
        res = post(code)
        assert res.status_code == nosuch.status_code == 404
        assert res.get_json() == json.loads(nosuch.get_data(as_text=True).replace("nosuch", code))


def test_no_public_channel_may_file_one(world):
    app, sessions, settings, info = world
    for channel in ("web", "mobile", "api", "email"):
        draft = Draft(
            city="testville",
            service_code="password",
            description="reset please",
            attributes={"system": "mail"},
            channel=channel,
        )
        with sessions() as s, pytest.raises(ValidationFailed) as caught:
            submit(s, draft, media_dir=settings.media_dir, public_base_url=BASE_URL)
        assert caught.value.errors == {"service_code": "unknown category 'password'"}
    # the report form refuses the code as an unknown one
    client = app.test_client()
    page = client.get("/report").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    before = _count(sessions)
    res = client.post(
        "/report",
        data={
            "csrf_token": token,
            "form": "map",
            "service_code": "password",
            "description": "reset please",
            "attribute[system]": "mail",
        },
    )
    assert res.status_code == 422
    assert _count(sessions) == before


def _count(sessions) -> int:
    with sessions() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(ServiceRequest))


def test_no_duplicate_suggestion_and_no_public_export(world, tmp_path):
    app, sessions, settings, info = world
    client = app.test_client()
    lat, lon = WEST
    unknown = client.get(f"/api/report/duplicates?service=nosuch&lat={lat}&lon={lon}")
    for code in ("desk-move", "password", "pothole"):
        res = client.get(f"/api/report/duplicates?service={code}&lat={lat}&lon={lon}")
        _learns_nothing(res.get_data(as_text=True), info)
        if code != "pothole":  # answered as for a category that does not exist
            assert (res.status_code, res.get_json()) == (unknown.status_code, unknown.get_json())
    out = tmp_path / "records.zip"
    with sessions() as s:
        city = s.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == "testville"))
        today = now_utc().date()
        export_public_records(
            s,
            city,
            check_period(today - timedelta(days=1), today + timedelta(days=1)),
            out,
            settings.media_dir,
        )
    with zipfile.ZipFile(out) as zf:
        text = "".join(zf.read(n).decode("utf-8", "replace") for n in zf.namelist())
    assert info["public"] in text
    for marker in (*_internal_ids(info), SECRET, "Move my desk"):
        assert marker not in text


def _signed_in(app, key: str):
    client = app.test_client()
    html = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    res = client.post(
        "/login",
        data={"email": f"{key}@city.example", "password": PASSWORD, "csrf_token": token},
    )
    assert res.status_code == 302
    return client


def test_only_its_department_and_central_dispatch_see_it(world):
    app, _sessions, _settings, info = world
    public_id = info["no_place"]
    parks = _signed_in(app, "parks_dispatcher")
    assert parks.get(f"/dispatch/requests/{public_id}").status_code == 403
    queue = parks.get("/dispatch/api/queue?status=all").get_data(as_text=True)
    _learns_nothing(queue, info)
    crew = _signed_in(app, "crew")  # a Streets crew member
    assert crew.get(f"/crew/requests/{public_id}").status_code == 404
    requester = _signed_in(app, "requester")  # the requester works in no dispatch
    assert requester.get(f"/dispatch/requests/{public_id}").status_code == 403
    for key in ("it_dispatcher", "dispatcher"):
        client = _signed_in(app, key)
        page = client.get(f"/dispatch/requests/{public_id}")
        html = page.get_data(as_text=True)
        assert page.status_code == 200, key
        assert 'id="panel-no-location"' in html and "No location" in html
        assert "IT help desk" in html  # routed by the category's rule alone
        assert 'data-action="move"' not in html and "data-lat" not in html
        assert public_id in client.get("/dispatch/api/queue").get_data(as_text=True)
