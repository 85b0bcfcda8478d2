"""Crews are told of their work: every new assignment (routed at intake by any channel,
reassigned, re-routed after a new category or a moved pin) e-mails the crew's active
members a link to the crew's own page of the request; a bulk re-route sends one summary
per crew; imports send nothing. The link opens for the crew (and a signed-out member
lands on it after signing in), answers another crew 403 with the reason, and the crew
acknowledges from it."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from intake.locate import set_location_by_resident
from intake.submit import Draft, submit
from notify import messages
from routing import actions, reroute_jobs
from routing.actions import Forbidden
from routing.engine import forget_rules
from spatial.accounts import create_user
from spatial.apikeys import create_key
from spatial.errors import InvalidInput
from spatial.models import (
    Crew,
    Jurisdiction,
    OutboxMessage,
    RequestEvent,
    RoutingRule,
    RuleSet,
    Service,
    ServiceRequest,
    Status,
    now_utc,
)
from spatial.models_mail import Unsubscribe
from tests.conftest import module_database
from tests.support.dispatch_city import (
    BASE_URL,
    EAST,
    PASSWORD,
    WEST,
    csrf_from,
    login,
    make_dispatch_city,
    report,
    user,
)

WEST_CREW = ["crew@city.example", "west2@city.example"]  # the active members
EAST_CREW = ["crew_other@city.example"]
LINK = re.compile(r"https?://\S+/crew/requests/\S+")


# One database for the module: each test makes its own requests.
db_url, engine, sessions, settings, app = module_database("crewmail")


@pytest.fixture(scope="module")
def city(sessions):
    """The dispatch city; the West crew has a second active member and an inactive one."""
    with sessions.begin() as s:
        info = make_dispatch_city(s)
        west = s.get(Crew, info.crew_w_id)
        for email, active in (("west2@city.example", True), ("gone@city.example", False)):
            member, _ = create_user(
                s, email=email, role="crew", city_slug=info.slug, password=PASSWORD
            )
            member.active = active
            member.crews.append(west)
        return info


def _crew_mail(s, request_id: int) -> list[OutboxMessage]:
    return s.scalars(
        sa.select(OutboxMessage)
        .where(OutboxMessage.request_id == request_id, OutboxMessage.kind == "crew_assignment")
        .order_by(OutboxMessage.id)
    ).all()


def _to(mail: list[OutboxMessage]) -> list[str]:
    return sorted(m.to_addr for m in mail)


def test_every_channel_tells_the_crews_active_members_with_the_crew_link(sessions, settings, city):
    ids = {}
    with sessions.begin() as s:
        for channel in ("web", "mobile", "api", "email", "phone", "in_person"):
            ids[channel] = report(s, settings.media_dir, channel=channel).id
        ids["import"] = report(s, settings.media_dir, channel="import").id
    with sessions() as s:
        for channel in ("web", "mobile", "api", "email", "phone", "in_person"):
            req = s.get(ServiceRequest, ids[channel])
            mail = _crew_mail(s, req.id)
            assert _to(mail) == sorted(WEST_CREW), channel  # not the inactive member
            assert req.crew_assigned_at is not None and req.crew_acknowledged_at is None
        # history is not news: no mail, and not new work on the crew page
        imported = s.get(ServiceRequest, ids["import"])
        assert imported.crew_id == city.crew_w_id
        assert _crew_mail(s, imported.id) == [] and imported.crew_assigned_at is None

        req = s.get(ServiceRequest, ids["web"])
        mail = _crew_mail(s, req.id)[0]
        assert req.public_id in mail.subject and "West crew" in mail.subject
        body = mail.body_text
        # what, where, priority and due, and the crew's own page at the city's address
        assert "Pothole" in body and "100 Main St" in body and "Priority: normal" in body
        assert "Due: " in body and "no due time" not in body
        (link,) = LINK.findall(body)
        assert link == f"{BASE_URL}/c/testville/crew/requests/{req.public_id}"
        # staff links only: nothing of the reporter's, no dispatch page
        assert req.token not in body and "resident@example.org" not in body
        assert "Rosa" not in body and "/dispatch/" not in body
        assert mail.headers["List-Unsubscribe"].startswith(f"<{BASE_URL}/c/testville/unsubscribe/")


def test_an_open311_post_tells_the_crew(app, sessions, city):
    with sessions.begin() as s:
        _, key = create_key(s, "testville", "test client")
    res = app.test_client().post(
        "/open311/v2/requests.json",
        data={
            "api_key": key,
            "service_code": "pothole",
            "lat": str(EAST[0]),
            "long": str(EAST[1]),
            "attribute[depth]": "9",
        },
    )
    assert res.status_code == 200, res.get_data(as_text=True)
    public_id = res.get_json()[0]["service_request_id"]
    with sessions() as s:
        req = s.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == public_id))
        assert _to(_crew_mail(s, req.id)) == EAST_CREW


def test_reassign_recategorise_and_a_moved_pin_tell_the_new_crew(sessions, settings, city):
    with sessions.begin() as s:
        west = report(s, settings.media_dir).id
        east = report(s, settings.media_dir, where=EAST).id
        # Graffiti goes to the park rangers, wherever it is.
        graffiti = Service(
            jurisdiction_id=city.city_id, code="graffiti", name="Graffiti", sla_hours=24
        )
        s.add(graffiti)
        s.flush()
        rs = s.scalar(sa.select(RuleSet).where(RuleSet.jurisdiction_id == city.city_id))
        s.add(
            RoutingRule(
                ruleset_id=rs.id,
                position=2,
                name="Graffiti",
                service_id=graffiti.id,
                department_id=city.parks_id,
                crew_id=city.parks_crew_id,
            )
        )
        ranger, _ = create_user(
            s, email="ranger@city.example", role="crew", city_slug=city.slug, password=PASSWORD
        )
        ranger.crews.append(s.get(Crew, city.parks_crew_id))
        graffiti_id = graffiti.id
    forget_rules()
    with sessions.begin() as s:
        req = s.get(ServiceRequest, west)
        req.crew_acknowledged_at = now_utc()  # the West crew had seen it
        assert not actions.is_new_for_crew(req)
    with sessions.begin() as s:
        req = s.get(ServiceRequest, west)
        actions.reassign(
            s,
            user(s, "dispatcher"),
            req,
            department_id=city.streets_id,
            crew_id=city.crew_e_id,
            public_base_url=BASE_URL,
        )
    with sessions.begin() as s:
        req = s.get(ServiceRequest, east)
        actions.move_pin(
            s, user(s, "dispatcher"), req, lat=WEST[0], lon=WEST[1], public_base_url=BASE_URL
        )
        assert req.crew_id == city.crew_w_id
    with sessions.begin() as s:
        req = s.get(ServiceRequest, west)
        actions.recategorise(
            s, user(s, "dispatcher"), req, service_id=graffiti_id, public_base_url=BASE_URL
        )
        assert req.crew_id == city.parks_crew_id
    with sessions() as s:
        moved = s.get(ServiceRequest, west)
        assert _to(_crew_mail(s, west)) == sorted([*WEST_CREW, *EAST_CREW, "ranger@city.example"])
        assert actions.is_new_for_crew(moved)  # new to the rangers, not seen since
        assert _to(_crew_mail(s, east)) == sorted([*EAST_CREW, *WEST_CREW])


def test_a_bulk_re_route_sends_one_summary_per_crew(sessions, settings, city):
    with sessions.begin() as s:
        # only this test's requests are open
        s.execute(sa.update(ServiceRequest).values(status=Status.CLOSED.value))
        wests = [report(s, settings.media_dir).id for _ in range(3)]
        east = report(s, settings.media_dir, where=EAST).id
        # The districts' crews swap codes: the rules now send West to the East crew.
        w, e = s.get(Crew, city.crew_w_id), s.get(Crew, city.crew_e_id)
        w.code, e.code = "tmp", "streets-W"
        s.flush()
        w.code = "streets-E"
        rs = s.scalar(sa.select(RuleSet).where(RuleSet.jurisdiction_id == city.city_id))
        s.execute(sa.delete(OutboxMessage))
        reroute_jobs.enqueue(s, s.get(Jurisdiction, city.city_id), "rules", rs.id)
    assert reroute_jobs.run_queued(sessions, public_base_url=BASE_URL) == 1
    with sessions() as s:
        mail = s.scalars(sa.select(OutboxMessage).order_by(OutboxMessage.to_addr)).all()
        assert [(m.kind, m.to_addr) for m in mail] == [
            ("crew_assignment", "crew@city.example"),
            ("crew_assignment", "crew_other@city.example"),
            ("crew_assignment", "west2@city.example"),
        ]
        to_east = next(m for m in mail if m.to_addr == "crew_other@city.example")
        assert to_east.subject == "3 requests moved to East crew"
        assert f"{BASE_URL}/c/testville/crew?crew={city.crew_e_id}" in to_east.body_text
        to_west = next(m for m in mail if m.to_addr == "crew@city.example")
        assert to_west.subject == "1 request moved to West crew"
        for rid in [*wests, east]:
            req = s.get(ServiceRequest, rid)
            assert actions.is_new_for_crew(req)
    # a second run moves nothing and says nothing
    with sessions.begin() as s:
        s.execute(sa.delete(OutboxMessage))
        reroute_jobs.enqueue(s, s.get(Jurisdiction, city.city_id), "rules", rs.id)
    assert reroute_jobs.run_queued(sessions, public_base_url=BASE_URL) == 1
    with sessions() as s:
        assert s.scalars(sa.select(OutboxMessage)).all() == []
    with sessions.begin() as s:  # the crews as they were, for the other tests
        w, e = s.get(Crew, city.crew_w_id), s.get(Crew, city.crew_e_id)
        w.code, e.code = "tmp", "streets-E"
        s.flush()
        w.code = "streets-W"


def test_a_reopening_tells_the_crew_through_the_same_call(sessions, settings, city):
    with sessions.begin() as s:
        rid = report(s, settings.media_dir).id
    with sessions.begin() as s:
        s.execute(sa.delete(OutboxMessage))
        req = s.get(ServiceRequest, rid)
        sent = messages.on_crew_assigned(s, req, None, BASE_URL)
        assert sorted(m.to_addr for m in sent) == sorted(WEST_CREW)
        assert messages.on_crew_assigned(s, req, None, BASE_URL) == []  # once per change


def _is_new_in(listing: str, public_id: str) -> bool:
    """Whether the crew page lists ``public_id`` as new."""
    item = re.search(rf'<li class="crew-item([^"]*)" data-public-id="{public_id}"', listing)
    assert item, f"{public_id} is not listed"
    return "is-new" in item.group(1).split()


def _link_path(sessions, rid: int, to: str) -> str:
    with sessions() as s:
        (mail,) = [m for m in _crew_mail(s, rid) if m.to_addr == to]
        return urlsplit(LINK.search(mail.body_text).group(0)).path


def test_the_link_opens_for_the_crew_after_sign_in_and_not_for_another_crew(
    client, sessions, settings, city
):
    with sessions.begin() as s:
        req = report(s, settings.media_dir)
        rid, public_id = req.id, req.public_id
    path = _link_path(sessions, rid, "crew@city.example")
    assert path == f"/c/testville/crew/requests/{public_id}"
    # signed out: the sign-in page, and then the request
    res = client.get(path)
    assert res.status_code == 302 and "/login" in res.headers["Location"]
    login_url = res.headers["Location"]
    token = csrf_from(client, login_url)
    res = client.post(
        login_url,
        data={"email": "crew@city.example", "password": PASSWORD, "csrf_token": token},
    )
    assert res.status_code == 302 and res.headers["Location"].endswith(path)
    page = client.get(path)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "resident@example.org" in html
    assert 'id="crew-new-badge"' in html and 'id="crew-acknowledge"' in html
    listing = client.get("/c/testville/crew").get_data(as_text=True)
    assert _is_new_in(listing, public_id)
    api = client.get("/crew/api/requests").get_json()
    assert [i["new"] for i in api["items"] if i["public_id"] == public_id] == [True]
    assert api["new"] >= 1 and f", {api['new']} new</p>" in listing
    # another crew's member: a clear refusal, and nothing of the resident
    client.get("/logout")
    login(client, "crew_other")
    refused = client.get(path)
    text = refused.get_data(as_text=True)
    assert refused.status_code == 403
    assert "Not your crew" in text and "assigned to West crew (Streets)" in text
    assert "resident@example.org" not in text
    token = csrf_from(client, "/crew")
    res = client.post(f"{path}/acknowledge", data={"csrf_token": token})
    assert res.status_code == 403
    with sessions() as s:
        assert s.get(ServiceRequest, rid).status == Status.NEW.value


def test_acknowledge_from_the_crew_page(client, sessions, settings, city):
    with sessions.begin() as s:
        req = report(s, settings.media_dir, email="rosa@example.org")
        rid, public_id = req.id, req.public_id
    login(client, "crew")
    path = f"/crew/requests/{public_id}"
    res = client.post(f"{path}/acknowledge", data={"csrf_token": csrf_from(client, path)})
    assert res.status_code == 303
    page = client.get(path).get_data(as_text=True)
    assert f"{public_id} acknowledged" in page and 'id="crew-new-badge"' not in page
    assert 'id="crew-acknowledge"' not in page
    listing = client.get("/crew").get_data(as_text=True)
    assert public_id in listing and not _is_new_in(listing, public_id)
    with sessions() as s:
        req = s.get(ServiceRequest, rid)
        assert req.status == Status.ACKNOWLEDGED.value and req.crew_acknowledged_at
        (event,) = s.scalars(
            sa.select(RequestEvent).where(
                RequestEvent.request_id == rid, RequestEvent.kind == "status"
            )
        ).all()
        assert (event.from_value, event.to_value, event.public) == ("new", "acknowledged", True)
        # the reporter hears of it
        notice = s.scalars(
            sa.select(OutboxMessage).where(
                OutboxMessage.request_id == rid, OutboxMessage.kind == "status_change"
            )
        ).all()
        assert [m.to_addr for m in notice] == ["rosa@example.org"]
    # twice: a clear message, nothing changes
    res = client.post(f"{path}/acknowledge", data={"csrf_token": csrf_from(client, path)})
    assert res.status_code == 400 and "already acknowledged" in res.get_data(as_text=True)


def test_the_acknowledge_action_and_its_errors(sessions, settings, city):
    with sessions.begin() as s:
        rid = report(s, settings.media_dir).id
        other = report(s, settings.media_dir).id
    with sessions.begin() as s:
        req = s.get(ServiceRequest, rid)
        for key in ("crew_other", "agent", "planner"):
            with pytest.raises(Forbidden):
                actions.acknowledge(s, user(s, key), req)
        # under way and then given to the East crew: acknowledged without a status change
        req.status = Status.IN_PROGRESS.value
        actions.reassign(
            s,
            user(s, "dispatcher"),
            req,
            department_id=city.streets_id,
            crew_id=city.crew_e_id,
            public_base_url=BASE_URL,
        )
        assert actions.is_new_for_crew(req)
        with pytest.raises(Forbidden):
            actions.acknowledge(s, user(s, "crew"), req)  # no longer the West crew's
        actions.acknowledge(s, user(s, "crew_other"), req)
        assert req.status == Status.IN_PROGRESS.value and not actions.is_new_for_crew(req)
        with pytest.raises(InvalidInput, match="already acknowledged"):
            actions.acknowledge(s, user(s, "crew_other"), req)
        # dispatch may record it for the crew; a closed request cannot be acknowledged
        second = s.get(ServiceRequest, other)
        actions.acknowledge(s, user(s, "dispatcher"), second)
        assert second.status == Status.ACKNOWLEDGED.value
        second.status = Status.CLOSED.value
        with pytest.raises(InvalidInput, match="cannot be acknowledged"):
            actions.acknowledge(s, user(s, "dispatcher"), second)
    with sessions() as s:
        (event,) = s.scalars(
            sa.select(RequestEvent).where(
                RequestEvent.request_id == rid, RequestEvent.kind == "crew_acknowledged"
            )
        ).all()
        assert event.public is False and "East crew" in event.to_value


def test_a_request_without_a_crew_tells_nobody(sessions, settings, city):
    with sessions.begin() as s:
        draft = Draft(
            city="testville",
            service_code="abuse",
            lat=WEST[0],
            lon=WEST[1],
            description="Someone keeps dumping",
            contact_email="rosa@example.org",
        )
        req = submit(s, draft, media_dir=settings.media_dir, public_base_url=BASE_URL).request
        assert req.crew_id is None and req.crew_assigned_at is None
        assert _crew_mail(s, req.id) == []


def test_a_request_placed_later_by_its_reporter_tells_the_crew(sessions, settings, city):
    with sessions.begin() as s:
        draft = Draft(
            city="testville",
            service_code="pothole",
            attributes={"depth": "5"},
            description="A hole somewhere on my street",
            contact_email="rosa@example.org",
            channel="email",
            allow_missing_location=True,
        )
        req = submit(s, draft, media_dir=settings.media_dir, public_base_url=BASE_URL).request
        rid, token = req.id, req.token
        assert req.needs_location and req.crew_id is None and _crew_mail(s, rid) == []
    with sessions.begin() as s:
        req = s.get(ServiceRequest, rid)
        set_location_by_resident(s, req, token, lon=EAST[1], lat=EAST[0], public_base_url=BASE_URL)
    with sessions() as s:
        assert _to(_crew_mail(s, rid)) == EAST_CREW
        assert actions.is_new_for_crew(s.get(ServiceRequest, rid))


def test_a_member_who_stopped_crew_mail_gets_none(sessions, settings, city):
    with sessions.begin() as s:
        s.add(
            Unsubscribe(
                email="west2@city.example", kind="crew_assignment", jurisdiction_id=city.city_id
            )
        )
    with sessions.begin() as s:
        new = report(s, settings.media_dir).id  # at intake
        moved = report(s, settings.media_dir, where=EAST)
        actions.reassign(  # by hand
            s,
            user(s, "dispatcher"),
            moved,
            department_id=city.streets_id,
            crew_id=city.crew_w_id,
            public_base_url=BASE_URL,
        )
    with sessions() as s:
        assert _to(_crew_mail(s, new)) == ["crew@city.example"]
        assert _to(_crew_mail(s, moved.id)) == sorted([*EAST_CREW, "crew@city.example"])
    with sessions.begin() as s:
        s.execute(sa.delete(Unsubscribe))
