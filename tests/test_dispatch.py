"""The dispatcher's console over HTTP: the queue and its filters, the "new since" live
updates, the request panel, and actions by form and by JSON (CSRF enforced)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from routing import actions, queue
from spatial.errors import InvalidInput
from spatial.models import Jurisdiction, RequestEvent, ServiceRequest, now_utc
from tests.support.dispatch_city import (
    EAST,
    csrf_from,
    login,
    make_dispatch_city,
    report,
    user,
)


@pytest.fixture
def city(sessions):
    with sessions.begin() as s:
        return make_dispatch_city(s)


@pytest.fixture
def media(settings):
    return settings.media_dir


@pytest.fixture
def dispatcher(client, city):
    login(client, "dispatcher")
    return client


def _new(sessions, media, **kw):
    with sessions.begin() as s:
        req = report(s, media, **kw)
        return req.id, req.public_id


def _ids(items):
    return [i["public_id"] for i in items]


# --------------------------------------------------------------------------- queue


def test_queue_filters(sessions, city, media):
    west = _new(sessions, media, description="west one")
    east = _new(sessions, media, where=EAST, channel="phone")
    no_pin = None
    with sessions.begin() as s:
        from intake.submit import Draft, submit

        req = submit(
            s,
            Draft(
                city="testville",
                service_code="pothole",
                attributes={"depth": "3"},
                allow_missing_location=True,
                channel="email",
            ),
            media_dir=media,
            public_base_url="http://x",
        ).request
        no_pin = req.public_id
        e = s.get(ServiceRequest, east[0])
        e.priority = "urgent"
        e.due_at = now_utc() - timedelta(hours=1)
        actions.triage(s, user(s, "dispatcher"), s.get(ServiceRequest, west[0]), priority="low")
    with sessions() as s:
        c = s.get(Jurisdiction, city.city_id)

        def q(**args):
            return _ids(queue.queue(s, c, queue.parse_filters(args)))

        assert q() == [no_pin, east[1], west[1]]  # newest first
        assert q(status="untriaged") == [no_pin, east[1]]
        assert q(priority="urgent") == [east[1]]
        assert q(overdue="1") == [east[1]]
        assert q(channel="phone") == [east[1]]
        assert q(needs_location="1") == [no_pin]
        assert q(crew=str(city.crew_e_id)) == [east[1]]
        assert q(crew="0") == [no_pin]
        assert q(department=str(city.parks_id)) == []
        east_zone = s.get(ServiceRequest, east[0]).zone_id
        assert q(zone=str(east_zone)) == [east[1]]
        assert q(sort="priority")[0] == east[1]
        assert q(sort="due")[0] == east[1]
        item = queue.queue(s, c, queue.parse_filters({"overdue": "1"}))[0]
        assert item["overdue"] and not item["triaged"] and item["crew"] == "East crew"
        with pytest.raises(InvalidInput, match="priority must be one of"):
            queue.parse_filters({"priority": "asap"})
        with pytest.raises(InvalidInput, match="zone must be a whole number"):
            queue.parse_filters({"zone": "1; DROP TABLE zone"})


def test_arrivals_are_new_since_the_cursor(sessions, city, media):
    _new(sessions, media)
    with sessions() as s:
        c = s.get(Jurisdiction, city.city_id)
        cursor = queue.latest_id(s, c)
        since = s.scalar(sa.select(sa.func.now()))
    later = _new(sessions, media, where=EAST)
    with sessions() as s:
        c = s.get(Jurisdiction, city.city_id)
        got = queue.arrivals(s, c, queue.QueueFilters(), after_id=cursor)
        assert _ids(got) == [later[1]]
        # Filters apply to arrivals too: a West-only console does not hear of it.
        west = queue.QueueFilters(crew_id=city.crew_w_id)
        assert queue.arrivals(s, c, west, after_id=cursor) == []
        assert queue.changed_since(s, c, since)
        assert not queue.changed_since(s, c, since + timedelta(minutes=5))


# --------------------------------------------------------------------------- pages


def test_console_lists_the_queue_with_csp_and_no_inline_script(dispatcher, sessions, city, media):
    _, pid = _new(sessions, media)
    res = dispatcher.get("/dispatch")
    html = res.get_data(as_text=True)
    assert res.status_code == 200
    assert pid in html and "untriaged" in html
    assert 'name="csrf-token"' in html
    csp = res.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "<script>" not in html and "<script nonce" not in html
    assert res.headers["Cache-Control"] == "no-store"


def test_api_queue_and_updates(dispatcher, sessions, city, media):
    _new(sessions, media)
    body = dispatcher.get("/dispatch/api/queue?status=untriaged").get_json()
    assert body["total"] == 1
    cursor = body["cursor"]
    nothing = dispatcher.get("/dispatch/api/updates", query_string=cursor).get_json()
    # The look-back re-offers the request made moments ago; the console drops known ids.
    assert all(a["id"] <= cursor["after_id"] for a in nothing["arrivals"])
    _, pid = _new(sessions, media, where=EAST)
    res = dispatcher.get(
        "/dispatch/api/updates",
        query_string={"after_id": cursor["after_id"], "since": cursor["since"]},
    ).get_json()
    assert pid in _ids(res["arrivals"])
    assert res["changed"] is True
    assert res["cursor"]["after_id"] > cursor["after_id"]
    bad = dispatcher.get("/dispatch/api/updates?after_id=x")
    assert bad.status_code == 400 and bad.get_json()["field"] == "after_id"
    bad = dispatcher.get("/dispatch/api/queue?status=whatever")
    assert bad.status_code == 400 and "status must be one of" in bad.get_json()["error"]


def test_panel_shows_contact_history_and_forms(dispatcher, sessions, city, media):
    _, pid = _new(sessions, media)
    html = dispatcher.get(f"/dispatch/requests/{pid}?partial=1").get_data(as_text=True)
    assert "resident@example.org" in html
    for action in ("triage", "reassign", "recategorise", "move", "merge", "reply_text", "close"):
        assert f'data-action="{action}"' in html
    # One conversation box: a public reply or an internal note.
    assert 'name="visibility" value="public"' in html
    assert 'name="visibility" value="internal"' in html
    assert "Scheduled" in html  # the response template
    assert "submitted" in html  # history
    assert dispatcher.get("/dispatch/requests/TV-0000-999999").status_code == 404


def test_triage_by_form_post_redirects_and_records(dispatcher, sessions, city, media):
    rid, pid = _new(sessions, media)
    token = csrf_from(dispatcher, f"/dispatch/requests/{pid}")
    res = dispatcher.post(
        f"/dispatch/requests/{pid}/triage",
        data={"csrf_token": token, "confirm": "1", "priority": "high"},
    )
    assert res.status_code == 303
    page = dispatcher.get(res.headers["Location"]).get_data(as_text=True)
    assert "triaged (priority high)" in page
    with sessions() as s:
        assert s.get(ServiceRequest, rid).priority == "high"


def test_json_actions_with_the_csrf_header(dispatcher, sessions, city, media):
    parent_id, parent = _new(sessions, media)
    child_id, child = _new(sessions, media, email="second@example.org")
    token = csrf_from(dispatcher, "/dispatch")
    headers = {"X-CSRFToken": token, "Accept": "application/json"}

    res = dispatcher.post(
        f"/dispatch/requests/{child}/reassign",
        headers=headers,
        json={"department_id": city.streets_id, "crew_id": city.crew_e_id},
    )
    assert res.status_code == 200, res.get_json()
    assert res.get_json()["crew_id"] == city.crew_e_id

    res = dispatcher.post(
        f"/dispatch/requests/{child}/note", headers=headers, json={"text": "Same hole as the first"}
    )
    assert res.status_code == 200

    res = dispatcher.post(
        f"/dispatch/requests/{child}/merge", headers=headers, json={"parent": parent.lower()}
    )
    assert res.status_code == 200
    assert res.get_json()["status"] == "duplicate"

    res = dispatcher.post(
        f"/dispatch/requests/{parent}/reply",
        headers=headers,
        json={"template_id": city.template_id},
    )
    assert "e-mailed" in res.get_json()["message"]

    res = dispatcher.post(
        f"/dispatch/requests/{parent}/recategorise", headers=headers, json={"service_id": 999999}
    )
    assert res.status_code == 400 and res.get_json()["field"] == "service_id"

    res = dispatcher.post(
        f"/dispatch/requests/{parent}/move", headers=headers, json={"lat": 34.05, "lon": -118.22}
    )
    assert res.status_code == 200

    res = dispatcher.post(
        f"/dispatch/requests/{parent}/close",
        headers=headers,
        json={"reason": "Repaired by the utility company"},
    )
    assert res.get_json()["status"] == "closed"

    with sessions() as s:
        kinds = [
            e.kind
            for e in s.scalars(
                sa.select(RequestEvent)
                .where(RequestEvent.request_id.in_([parent_id, child_id]))
                .order_by(RequestEvent.id)
            )
        ]
        assert {"reassigned", "note", "merged", "merged_in", "reply", "moved", "status"} <= set(
            kinds
        )
        assert s.get(ServiceRequest, child_id).duplicate_of_id == parent_id


def test_invalid_form_action_shows_the_error_and_writes_nothing(dispatcher, sessions, city, media):
    rid, pid = _new(sessions, media)
    token = csrf_from(dispatcher, f"/dispatch/requests/{pid}")
    res = dispatcher.post(
        f"/dispatch/requests/{pid}/merge", data={"csrf_token": token, "parent": pid}
    )
    assert res.status_code == 400
    assert "cannot be merged into itself" in res.get_data(as_text=True)
    with sessions() as s:
        assert s.get(ServiceRequest, rid).status == "new"
        assert (
            s.scalar(
                sa.select(sa.func.count())
                .select_from(RequestEvent)
                .where(RequestEvent.request_id == rid)
            )
            == 1
        )


def test_posts_without_csrf_token_are_refused(dispatcher, sessions, city, media):
    rid, pid = _new(sessions, media)
    res = dispatcher.post(
        f"/dispatch/requests/{pid}/triage", data={"confirm": "1", "priority": "urgent"}
    )
    assert res.status_code == 400
    res = dispatcher.post(
        f"/dispatch/requests/{pid}/triage",
        json={"priority": "urgent"},
        headers={"Accept": "application/json"},
    )
    assert res.status_code == 400
    with sessions() as s:
        assert s.get(ServiceRequest, rid).priority == "normal"


def test_every_form_on_the_panel_carries_a_csrf_token(dispatcher, sessions, city, media):
    _, pid = _new(sessions, media)
    html = dispatcher.get(f"/dispatch/requests/{pid}").get_data(as_text=True)
    forms = html.count('method="post"')
    assert forms >= 9
    assert html.count('name="csrf_token"') == forms
