"""The Open311 POST keeps the city's mail settings (dispatch address, sender, reply-to,
templates) in memory between requests, and its messages follow every committed change
to them at the next POST."""

from __future__ import annotations

import collections

import pytest
import sqlalchemy as sa

from spatial.apikeys import create_key
from spatial.models import OutboxMessage, ServiceRequest
from tests.support.city import INSIDE
from tests.support.mail import (
    DISPATCH,
    INTAKE,
    NIGHT_DESK,
    SENDER,
    change_mail_settings,
    make_mail_city,
)
from webmap.open311 import bp, catalog

V2 = "/open311/v2"
MAIL_TABLES = ("mail_config", "message_template", "mail_address")


@pytest.fixture
def api(app, sessions):
    if "open311" not in app.blueprints:
        app.register_blueprint(bp)
    with sessions.begin() as s:
        make_mail_city(s)
        _, key = create_key(s, "testville", "test client")
    catalog.forget()
    return app.test_client(), key


def _post(client, key, n: int) -> str:
    resp = client.post(
        f"{V2}/requests.json",
        data={
            "api_key": key,
            "service_code": "general",
            "lat": str(INSIDE[0] + n * 0.001),
            "long": str(INSIDE[1]),
            "email": f"resident{n}@example.org",
        },
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()[0]["service_request_id"]


def _messages(sessions, public_id: str) -> dict[str, OutboxMessage]:
    with sessions() as s:
        rows = s.scalars(
            sa.select(OutboxMessage)
            .join(ServiceRequest, ServiceRequest.id == OutboxMessage.request_id)
            .where(ServiceRequest.public_id == public_id)
        )
        return {m.kind: m for m in rows}


def test_a_repeated_post_does_not_read_the_mail_settings_again(api, engine, sessions):
    client, key = api
    _post(client, key, 0)  # creates the city's link key: a new stamp
    _post(client, key, 1)
    reads = collections.Counter()

    def count(conn, cursor, statement, params, context, executemany):
        for table in MAIL_TABLES:
            if statement.lstrip().upper().startswith("SELECT") and f"FROM {table}" in statement:
                reads[table] += 1

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        third = _post(client, key, 2)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert reads == {}, reads
    sent = _messages(sessions, third)
    assert sent["dispatcher_alert"].to_addr == DISPATCH
    assert sent["acknowledgement"].headers["Reply-To"] == INTAKE


def test_changes_committed_elsewhere_apply_to_the_next_post(api, sessions):
    client, key = api
    first = _post(client, key, 0)
    second = _post(client, key, 1)
    with sessions.begin() as other:
        change_mail_settings(other)
    third = _post(client, key, 2)
    before, after = _messages(sessions, second), _messages(sessions, third)
    assert _messages(sessions, first)["dispatcher_alert"].to_addr == DISPATCH
    assert before["dispatcher_alert"].to_addr == DISPATCH
    assert before["dispatcher_alert"].headers["Reply-To"] == INTAKE
    assert after["dispatcher_alert"].to_addr == NIGHT_DESK
    assert after["dispatcher_alert"].subject == f"NEW {third}"
    assert after["dispatcher_alert"].headers["From"] == SENDER
    assert after["acknowledgement"].headers["Reply-To"] != INTAKE
    # and the template's removal, from plain SQL, too
    with sessions.begin() as other:
        other.execute(sa.text("DELETE FROM message_template"))
    fourth = _post(client, key, 3)
    assert _messages(sessions, fourth)["dispatcher_alert"].subject != f"NEW {fourth}"
