"""Reopening: within the city's window after resolution the reporter says "not fixed"
from their tracking page (or the resolution mail's link to it). The request is new again in
its crew's queue, the crew and the department hear of it, and the scorecards count it.
After the window, or for a request that is not the city's to redo, nothing changes."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from routing import actions, conversation
from spatial import analytics
from spatial.errors import InvalidInput
from spatial.models import (
    Department,
    Follower,
    Jurisdiction,
    OutboxMessage,
    RequestEvent,
    ServiceRequest,
    now_utc,
)
from tests.support.dispatch_city import BASE_URL, login, make_dispatch_city, report, user

DEPT_MAIL = "streets@city.example"
NEIGHBOUR = "neighbour@example.org"


@pytest.fixture
def city(sessions):
    with sessions.begin() as s:
        city = make_dispatch_city(s)
        s.get(Department, city.streets_id).email = DEPT_MAIL
        return city


@pytest.fixture
def resolved(sessions, city, settings):
    """A West pothole with a confirmed follower, resolved by the West crew."""
    with sessions.begin() as s:
        r = report(s, settings.media_dir)
        s.add(
            Follower(request_id=r.id, email=NEIGHBOUR, created_at=now_utc(), confirmed_at=now_utc())
        )
        s.flush()
        actions.set_status(
            s, user(s, "crew"), r, status="resolved", note="Filled", public_base_url=BASE_URL
        )
        r.crew_acknowledged_at = now_utc()
        return r.id, r.public_id, r.token


def _mails(sessions, kind):
    with sessions() as s:
        q = sa.select(OutboxMessage).where(OutboxMessage.kind == kind)
        return list(s.scalars(q.order_by(OutboxMessage.id)))


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_the_reporter_reopens_from_the_resolution_mail(client, sessions, resolved, city):
    rid, public_id, token = resolved
    mails = {m.to_addr: m.body_text for m in _mails(sessions, "resolution")}
    link = f"/requests/{public_id}?token={token}#reopen"
    assert (
        link in mails["resident@example.org"]
        and "Not fixed? Tell us within 14 days" in (mails["resident@example.org"])
    )
    assert "#reopen" not in mails[NEIGHBOUR] and token not in mails[NEIGHBOUR]

    page = client.get(link.split("#")[0]).get_data(as_text=True)
    assert 'id="reopen"' in page and "Not fixed? Reopen" in page
    public = client.get(f"/requests/{public_id}").get_data(as_text=True)
    assert 'id="reopen"' not in public

    res = client.post(
        f"/requests/{public_id}/reopen",
        data={"csrf_token": _csrf(page), "token": token, "note": "Sunk again after the rain"},
    )
    assert res.status_code == 303
    with sessions() as s:
        r = s.get(ServiceRequest, rid)
        assert (r.status, r.crew_id, r.department_id) == ("new", city.crew_w_id, city.streets_id)
        assert r.closed_at is None and r.close_reason is None
        assert r.reopen_count == 1 and r.reopened_at is not None
        assert r.crew_assigned_at == r.reopened_at and r.crew_acknowledged_at is None
        (event,) = s.scalars(
            sa.select(RequestEvent).where(
                RequestEvent.request_id == rid, RequestEvent.kind == "reopen"
            )
        ).all()
        assert event.public and event.note == "Sunk again after the rain"
    # The crew and the department hear of it; the crew sees it as new work.
    assert [m.to_addr for m in _mails(sessions, "crew_assignment")][-1:] == ["crew@city.example"]
    (dept,) = _mails(sessions, "reporter_message")
    assert dept.to_addr == DEPT_MAIL and "Reopened by the reporter" in dept.subject
    assert "Sunk again after the rain" in dept.body_text
    public = client.get(f"/requests/{public_id}").get_data(as_text=True)
    assert "Reopened by the reporter" in public and "Sunk again after the rain" in public
    login(client, "crew")
    crew_page = client.get("/crew").get_data(as_text=True)
    assert re.search(rf'class="crew-item[^"]*is-new[^"]*" data-public-id="{public_id}"', crew_page)
    # Reopened once, closed once: the scorecards count it.
    with sessions() as s:
        table = analytics.scorecards(s, s.get(Jurisdiction, city.city_id), analytics.Filters())
    row = table[table["level"] == "city"].iloc[0]
    assert (row["reopened"], row["ever_closed"], row["reopen_pct"]) == (1, 1, 100.0)


def test_reopening_is_refused_when_it_should_be(client, sessions, resolved, city, settings):
    rid, public_id, token = resolved
    page = client.get(f"/requests/{public_id}?token={token}").get_data(as_text=True)
    csrf = _csrf(page)

    def post(note):
        res = client.post(
            f"/requests/{public_id}/reopen",
            data={"csrf_token": csrf, "token": token, "note": note},
        )
        return res.status_code, res.get_data(as_text=True)

    status, html = post("  ")
    assert status == 422 and "Write what is still wrong" in html
    status, html = post("x" * 4001)
    assert status == 422 and "Keep it to 4000 characters" in html
    # The city allows 3 days; it was closed 4 days ago: archived.
    with sessions.begin() as s:
        s.get(Jurisdiction, city.city_id).reopen_days = 3
        s.get(ServiceRequest, rid).closed_at = now_utc() - timedelta(days=4)
    page = client.get(f"/requests/{public_id}?token={token}").get_data(as_text=True)
    assert 'id="reopen"' not in page and "This request is closed" in page
    status, html = post("Still broken")
    assert status == 422 and "This request is closed. Please report the problem again" in html
    with sessions() as s:
        r = s.get(ServiceRequest, rid)
        assert (r.status, r.reopen_count) == ("resolved", 0)
        kinds = s.scalars(sa.select(RequestEvent.kind).where(RequestEvent.request_id == rid)).all()
        assert "reopen" not in kinds
    assert _mails(sessions, "reporter_message") == []


def test_only_what_the_city_may_redo_reopens(sessions, city, settings):
    with sessions.begin() as s:
        r = report(s, settings.media_dir)
        with pytest.raises(InvalidInput, match="still open"):
            conversation.reopen(s, r, "not fixed")
        r.status, r.closed_at = "cancelled", now_utc()
        with pytest.raises(InvalidInput, match="cannot be reopened"):
            conversation.reopen(s, r, "not fixed")
        r.status = "cant_fix"
        conversation.reopen(s, r, "You can, really")
        assert r.status == "new" and r.reopen_count == 1
