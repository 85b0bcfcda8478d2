"""The call-taker console: requests for callers through intake.submit (phone, in person,
mail), search by reference, address or contact, and a second call becoming a follow."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from spatial.models import Follower, OutboxMessage, RequestEvent, ServiceRequest
from tests.support.dispatch_city import csrf_from, login, make_dispatch_city, report


@pytest.fixture
def city(sessions):
    with sessions.begin() as s:
        return make_dispatch_city(s)


@pytest.fixture
def agent(client, city):
    login(client, "agent")
    return client


def _form(token, **over):
    data = {
        "csrf_token": token,
        "channel": "phone",
        "service_code": "pothole",
        "attr:pothole:depth": "15",
        "attr:pothole:lane": "right",
        "attr:abuse:whatever": "ignored: another category's field",
        "address": "200 Elm St",
        "lat": "34.05",
        "lon": "-118.28",
        "description": "Caller says a car lost a wheel cover",
        "contact_name": "Carl Caller",
        "contact_phone": "+1 (213) 555-0142",
        "contact_email": "carl@example.org",
        "notify_updates": "1",
    }
    data.update(over)
    return data


def test_agent_creates_a_phone_request_through_submit(agent, sessions, city):
    token = csrf_from(agent, "/agent")
    res = agent.post("/agent/requests", data=_form(token))
    html = res.get_data(as_text=True)
    assert res.status_code == 201, html
    with sessions() as s:
        req = s.scalar(sa.select(ServiceRequest))
        assert req.public_id in html
        assert req.channel == "phone"
        assert req.attributes == {"depth": 15, "lane": "right"}
        assert req.crew_id == city.crew_w_id  # routed like any other report
        assert req.account_id == f"agent:{city.users['agent']}"
        ev = s.scalar(sa.select(RequestEvent).where(RequestEvent.request_id == req.id))
        assert ev.note == "Reported via phone" and ev.actor_label == "phone"
        ack = s.scalar(sa.select(OutboxMessage).where(OutboxMessage.request_id == req.id))
        assert ack.to_addr == "carl@example.org"


def test_address_only_call_waits_for_a_pin_when_the_agent_says_so(agent, sessions, city):
    token = csrf_from(agent, "/agent")
    # testville has no address of this: without the explicit choice the form comes back.
    res = agent.post("/agent/requests", data=_form(token, lat="", lon="", channel="mail"))
    assert res.status_code == 400
    assert "Place it later" in res.get_data(as_text=True)
    res = agent.post(
        "/agent/requests", data=_form(token, lat="", lon="", channel="mail", place_later="1")
    )
    assert res.status_code == 201
    assert "needs a location" in res.get_data(as_text=True)
    with sessions() as s:
        req = s.scalar(sa.select(ServiceRequest))
        assert req.needs_location and req.location is None and req.channel == "mail"


@pytest.mark.parametrize(
    "over, message",
    [
        ({"attr:pothole:depth": ""}, "Please answer: How deep (cm)?"),
        ({"channel": "web"}, "Pick phone, in person or mail"),
        ({"lat": "35.5"}, "outside Testville"),
        ({"lat": "", "lon": "", "address": ""}, "Show where the problem is"),
        ({"contact_email": "not-an-address"}, "is not an e-mail address"),
        ({"service_code": "nope"}, "unknown category"),
    ],
)
def test_invalid_calls_show_the_problem_and_create_nothing(agent, sessions, city, over, message):
    token = csrf_from(agent, "/agent")
    res = agent.post("/agent/requests", data=_form(token, **over))
    assert res.status_code == 400
    html = res.get_data(as_text=True)
    assert message in html
    assert 'value="Carl Caller"' in html  # the form keeps what was typed
    with sessions() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(ServiceRequest)) == 0


def test_search_by_reference_address_and_contact(agent, sessions, city, settings):
    with sessions.begin() as s:
        one = report(s, settings.media_dir, address="12 Oak Avenue").public_id
        two = report(
            s,
            settings.media_dir,
            address="99 Pine Road",
            email="maria@example.org",
            contact_phone="213-555-0199",
        ).public_id
    for q, expected in [
        (one.lower(), [one]),
        ("oak ave", [one]),
        ("maria@", [two]),
        ("555 0199", [two]),
        ("100%", []),  # a LIKE wildcard is searched for literally
    ]:
        html = agent.get("/agent", query_string={"q": q}).get_data(as_text=True)
        found = [pid for pid in (one, two) if f'data-public-id="{pid}"' in html]
        assert found == expected, q
    assert "at least 2 characters" in agent.get("/agent?q=x").get_data(as_text=True)


def test_a_second_call_becomes_a_follow(agent, sessions, city, settings):
    with sessions.begin() as s:
        req = report(s, settings.media_dir)
        rid, pid = req.id, req.public_id
    token = csrf_from(agent, f"/agent?q={pid}")
    res = agent.post(
        f"/agent/requests/{pid}/follow",
        data={"csrf_token": token, "email": "second.caller@example.org", "channel": "phone"},
    )
    assert res.status_code == 303
    page = agent.get(res.headers["Location"]).get_data(as_text=True)
    assert f"The caller now follows {pid}" in page and "opens the link we e-mailed" in page
    assert "0 followers" in page  # support counts once the caller confirms
    res = agent.post(
        f"/agent/requests/{pid}/follow",
        data={"csrf_token": token, "email": "SECOND.caller@example.org"},
    )
    assert res.status_code == 400 and "already follows" in res.get_data(as_text=True)
    with sessions() as s:
        assert s.scalars(sa.select(Follower.email).where(Follower.request_id == rid)).all() == [
            "second.caller@example.org"
        ]
        assert s.scalar(sa.select(sa.func.count()).select_from(ServiceRequest)) == 1
        events = s.scalars(
            sa.select(RequestEvent).where(RequestEvent.request_id == rid).order_by(RequestEvent.id)
        ).all()
        public = [e for e in events if e.kind == "followed"]
        audit = [e for e in events if e.kind == "follow_added"]
        assert public == []  # the public "followed" event comes with the confirmation
        assert len(audit) == 1 and not audit[0].public
        assert audit[0].actor_id == city.users["agent"]
        confirmation = s.scalar(
            sa.select(OutboxMessage).where(
                OutboxMessage.request_id == rid, OutboxMessage.kind == "follow_confirmation"
            )
        )
        assert confirmation.to_addr == "second.caller@example.org"


def test_a_caller_without_email_still_counts_as_support(agent, sessions, city, settings):
    with sessions.begin() as s:
        req = report(s, settings.media_dir)
        rid, pid = req.id, req.public_id
    token = csrf_from(agent, f"/agent?q={pid}")
    res = agent.post(
        f"/agent/requests/{pid}/follow",
        data={"csrf_token": token, "email": "", "channel": "in_person"},
    )
    assert res.status_code == 303
    with sessions() as s:
        (follower,) = s.scalars(sa.select(Follower).where(Follower.request_id == rid)).all()
        assert follower.email is None
        ev = s.scalar(
            sa.select(RequestEvent).where(
                RequestEvent.request_id == rid, RequestEvent.kind == "followed"
            )
        )
        assert ev.actor_id == city.users["agent"] and "in person" in ev.note


def test_every_agent_form_carries_a_csrf_token(agent, sessions, city, settings):
    with sessions.begin() as s:
        pid = report(s, settings.media_dir).public_id
    html = agent.get("/agent", query_string={"q": pid}).get_data(as_text=True)
    assert html.count('method="post"') == html.count('name="csrf_token"') >= 3
