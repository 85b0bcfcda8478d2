"""The Open311 POST keeps cities and categories in memory between requests, and sees
every change to them at the next POST, whoever made it."""

from __future__ import annotations

import collections

import pytest
import sqlalchemy as sa

from spatial.apikeys import create_key
from spatial.models import STAMPED_TABLES, Jurisdiction, Service, ServiceAttribute
from tests.support.city import make_small_city
from tests.support.open311 import open311_errors
from webmap.open311 import bp, catalog

V2 = "/open311/v2"


@pytest.fixture
def api(app, sessions):
    if "open311" not in app.blueprints:
        app.register_blueprint(bp)
    with sessions.begin() as s:
        make_small_city(s)
        _, key = create_key(s, "testville", "test client")
    catalog.forget()
    return app.test_client(), key


def _post(client, key, **extra):
    data = {
        "api_key": key,
        "service_code": "pothole",
        "lat": "34.05",
        "long": "-118.28",
        "attribute[depth]": "4",
        **extra,
    }
    return client.post(f"{V2}/requests.json", data=data)


def _pothole(session) -> Service:
    return session.scalar(sa.select(Service).where(Service.code == "pothole"))


def test_a_repeated_post_does_not_read_the_category_again(api, engine):
    client, key = api
    # The first POST also creates the city's mail settings row, which is part of the
    # stamp: the second one reloads once.
    assert _post(client, key).status_code == 200
    assert _post(client, key, lat="34.055").status_code == 200
    seen = collections.Counter()

    def count(conn, cursor, statement, params, context, executemany):
        for table in ("jurisdiction", "service", "service_attribute"):
            # the ORM's loads of these rows (routing reads a few columns in its own query)
            if statement.lstrip().startswith(f"SELECT {table}.id, {table}."):
                seen[table] += 1

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        resp = _post(client, key, lat="34.06")
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert seen == {}, seen  # only the stamp query touches them (as a sub-select)


def test_a_changed_question_applies_to_the_next_post(api, sessions):
    client, key = api
    assert _post(client, key).status_code == 200
    with sessions.begin() as s:
        lane = s.scalar(sa.select(ServiceAttribute).where(ServiceAttribute.code == "lane"))
        lane.required = True
    [(code, text)] = open311_errors(_post(client, key), "json", 400)
    assert "attribute[lane]" in text
    assert _post(client, key, **{"attribute[lane]": "left"}).status_code == 200
    with sessions.begin() as s:
        pothole = _pothole(s)
        pothole.attributes.append(
            ServiceAttribute(code="cones", datatype="string", description="Cones?", order=9)
        )
    assert _post(
        client, key, **{"attribute[lane]": "left", "attribute[cones]": "2"}
    ).status_code == (200)


def test_a_category_made_private_or_inactive_is_refused_at_once(api, sessions):
    client, key = api
    assert _post(client, key).status_code == 200
    with sessions.begin() as s:
        _pothole(s).private = True
    [(code, text)] = open311_errors(_post(client, key), "json", 404)
    assert "pothole" in text
    with sessions.begin() as s:
        pothole = _pothole(s)
        pothole.private, pothole.active = False, False
    open311_errors(_post(client, key), "json", 404)
    with sessions.begin() as s:
        _pothole(s).active = True
    assert _post(client, key).status_code == 200


def test_a_second_city_is_seen_and_a_renamed_one_too(api, sessions):
    client, key = api
    assert _post(client, key).status_code == 200
    with sessions.begin() as s:
        make_small_city(s, slug="otherville")["city"].public_id_prefix = "OV"
    # two cities now: a POST without jurisdiction_id is for its key's city
    resp = _post(client, key)
    assert resp.status_code == 200 and resp.get_json()[0]["service_request_id"].startswith("TV-")
    assert _post(client, key, jurisdiction_id="testville").status_code == 200
    [(_, text)] = open311_errors(_post(client, key, jurisdiction_id="otherville"), "json", 403)
    assert "not valid for jurisdiction otherville" in text
    with sessions.begin() as s:
        s.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == "otherville")).name = "Other"
        _, other_key = create_key(s, "otherville", "other client")
    resp = _post(client, other_key, jurisdiction_id="otherville")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()[0]["service_request_id"].startswith("OV-")
    resp = _post(client, other_key)
    assert resp.get_json()[0]["service_request_id"].startswith("OV-")


def _stamp(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT version FROM settings_stamp")).scalar_one()


@pytest.mark.parametrize("table", STAMPED_TABLES)
def test_any_write_to_a_stamped_table_gives_a_new_stamp_once_committed(api, engine, table):
    before = _stamp(engine)
    with engine.connect() as conn:
        # a no-op write through plain SQL still counts; a rolled-back one never shows
        conn.execute(sa.text(f"UPDATE {table} SET {_column(table)} = {_column(table)}"))
        assert _stamp(engine) == before
        conn.rollback()
    assert _stamp(engine) == before
    with engine.begin() as conn:
        conn.execute(sa.text(f"DELETE FROM {table} WHERE false"))
    assert _stamp(engine) > before


def _column(table: str) -> str:
    return "jurisdiction_id" if table == "mail_config" else "id"
