"""Escalation: the city's policies, the sweep's two levels and who hears of them, several
workers sweeping at once, the departments' morning digest, the console's filter, sort and
badges, the admin page, and the city file."""

from __future__ import annotations

import re
import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from routing import actions, escalation, queue
from routing import organisation as org
from routing.city_file import apply_city, dump, export_city, parse
from spatial.accounts import create_user
from spatial.models import (
    Department,
    Jurisdiction,
    OutboxMessage,
    RequestEvent,
    ServiceRequest,
    now_utc,
)
from spatial.models_ops import AdminEvent
from spatial.models_work import EscalationPolicy
from tests.support.dispatch_city import (
    PASSWORD,
    csrf_from,
    login,
    make_dispatch_city,
    report,
    user,
)

BASE = "http://127.0.0.1:5000"
# The city's own address under the install's (spatial.cities.city_base_url).
STAFF = f"{BASE}/c/testville/dispatch/requests"


@pytest.fixture
def city(sessions):
    with sessions.begin() as s:
        made = make_dispatch_city(s)
        c = s.get(Jurisdiction, made.city_id)
        # Not the test city's usual zone: the digest hour is the city's own.
        c.timezone = "Europe/Madrid"
        boss, _ = create_user(
            s,
            email="supervisor@city.example",
            role="dispatcher",
            city_slug=c.slug,
            name="Sam Supervisor",
            password=PASSWORD,
        )
        streets = s.get(Department, made.streets_id)
        streets.email = "streets@city.example"
        streets.escalation_email = "director@city.example"
        org.add_to_department(s, boss, streets)
        assert org.set_supervisor(s, boss, streets, True)
        assert not org.set_supervisor(s, boss, streets, True)
    return made


def _request(sessions, media, *, age: timedelta, due_in: timedelta | None = None, **kw):
    """A pothole report made ``age`` ago (due ``due_in`` from now, when given)."""
    with sessions.begin() as s:
        req = report(s, media, **kw)
        req.requested_at = now_utc() - age
        if due_in is not None:
            req.due_at = now_utc() + due_in
        return req.id, req.public_id


def _policy(sessions, city, service_id=None, **values):
    with sessions.begin() as s:
        escalation.save_policy(s, s.get(Jurisdiction, city.city_id), service_id, **values)


def _mail(sessions, kind):
    with sessions() as s:
        return s.scalars(
            sa.select(OutboxMessage).where(OutboxMessage.kind == kind).order_by(OutboxMessage.id)
        ).all()


def test_sweep_levels_and_recipients(sessions, city, settings):
    media = settings.media_dir
    _policy(sessions, city, untriaged_minutes="30", when_overdue=True, level2_minutes="60")
    waiting = _request(sessions, media, age=timedelta(hours=2))
    overdue = _request(sessions, media, age=timedelta(minutes=5), due_in=timedelta(hours=-3))
    fresh = _request(sessions, media, age=timedelta(minutes=5), due_in=timedelta(hours=5))
    held = _request(sessions, media, age=timedelta(hours=5), due_in=timedelta(hours=-3))
    closed = _request(sessions, media, age=timedelta(hours=5), due_in=timedelta(hours=-3))
    with sessions.begin() as s:
        s.get(ServiceRequest, held[0]).held_at = now_utc()
        actions.triage(s, user(s, "dispatcher"), s.get(ServiceRequest, overdue[0]))
        actions.close(
            s,
            user(s, "dispatcher"),
            s.get(ServiceRequest, closed[0]),
            reason="done",
            public_base_url=BASE,
        )
        s.execute(sa.delete(OutboxMessage))

    now = now_utc()
    with sessions.begin() as s:
        assert escalation.sweep(s, now, BASE) == {"level1": 2, "level2": 0, "messages": 2}
    with sessions.begin() as s:
        # The same minute again, and a minute later: nothing new.
        assert escalation.sweep(s, now, BASE)["level1"] == 0
        assert escalation.sweep(s, now + timedelta(minutes=1), BASE)["level1"] == 0
    with sessions() as s:
        levels = {r.public_id: r.escalation_level for r in s.scalars(sa.select(ServiceRequest))}
        assert levels == {waiting[1]: 1, overdue[1]: 1, fresh[1]: 0, held[1]: 0, closed[1]: 0}
        notes = {
            e.request_id: e
            for e in s.scalars(sa.select(RequestEvent).where(RequestEvent.kind == "escalated"))
        }
        assert notes[waiting[0]].note == "untriaged for 2 h"
        assert notes[overdue[0]].note.startswith("overdue since ")
        assert "CET" in notes[overdue[0]].note  # the city's clock
        assert not any(e.public for e in notes.values())
    mails = _mail(sessions, "escalation")
    # Level 1 goes to the department's supervisor, not its address nor the director.
    assert {m.to_addr for m in mails} == {"supervisor@city.example"}
    body = next(m.body_text for m in mails if waiting[1] in m.subject)
    assert "level 1" in mails[0].subject
    assert f"{STAFF}/{waiting[1]}" in body
    assert "token=" not in body and "resident@example.org" not in body

    # An hour after level 1: the untriaged one is still untriaged and goes to level 2;
    # the overdue one too (still overdue), to the director and the supervisor. The fresh
    # one has now waited untriaged for over an hour: level 1.
    later = now + timedelta(minutes=61)
    with sessions.begin() as s:
        result = escalation.sweep_result(s, later, BASE)
        assert sorted(result.level2) == sorted([waiting[1], overdue[1]])
        assert result.level1 == [fresh[1]] and result.messages == 5
        assert escalation.sweep(s, later, BASE) == {"level1": 0, "level2": 0, "messages": 0}
    level2 = [m for m in _mail(sessions, "escalation") if "level 2" in m.subject]
    assert {m.to_addr for m in level2} == {"supervisor@city.example", "director@city.example"}
    assert "after level 1" in level2[0].body_text


def test_category_policy_replaces_the_default_and_fallbacks(sessions, city, settings):
    media = settings.media_dir
    # The city's default escalates overdue work; potholes' own row turns that off and
    # escalates only what stays untriaged for 10 minutes.
    _policy(sessions, city, when_overdue=True)
    _policy(sessions, city, city.pothole_id, untriaged_minutes="10", when_overdue=False)
    overdue = _request(sessions, media, age=timedelta(minutes=5), due_in=timedelta(hours=-1))
    waiting = _request(sessions, media, age=timedelta(minutes=11))
    with sessions.begin() as s:
        # Without supervisors, level 1 goes to the department's address.
        s.execute(sa.text("UPDATE staff_department SET supervisor = false"))
        s.execute(sa.delete(OutboxMessage))
        result = escalation.sweep_result(s, now_utc(), BASE)
    assert result.level1 == [waiting[1]]
    assert overdue[1] not in result.level1
    assert [m.to_addr for m in _mail(sessions, "escalation")] == ["streets@city.example"]


def test_a_city_without_policies_escalates_overdue_work(sessions, city, settings):
    media = settings.media_dir
    overdue = _request(sessions, media, age=timedelta(minutes=5), due_in=timedelta(hours=-1))
    _request(sessions, media, age=timedelta(days=3))  # untriaged, but no policy says so
    with sessions.begin() as s:
        result = escalation.sweep_result(s, now_utc(), BASE)
    assert result.level1 == [overdue[1]]
    with sessions.begin() as s:
        # No second level without a policy that names one.
        assert escalation.sweep(s, now_utc() + timedelta(days=30), BASE)["level2"] == 0


def test_a_backlog_escalating_at_once_comes_as_one_list(sessions, city, settings):
    media = settings.media_dir
    backlog = [
        _request(sessions, media, age=timedelta(days=2), due_in=timedelta(hours=-5))
        for _ in range(escalation.SUMMARY_OVER + 2)
    ]
    with sessions.begin() as s:
        s.execute(sa.delete(OutboxMessage))
        result = escalation.sweep_result(s, now_utc(), BASE)
    assert sorted(result.level1) == sorted(pid for _, pid in backlog)
    mails = _mail(sessions, "escalation")
    # The supervisor gets one list of them all, not twelve mails.
    assert [m.to_addr for m in mails] == ["supervisor@city.example"]
    assert f"{len(backlog)} requests escalated to level 1" in mails[0].subject
    for _, pid in backlog:
        assert f"{STAFF}/{pid}" in mails[0].body_text
    assert "token=" not in mails[0].body_text and "resident@example.org" not in mails[0].body_text


def test_two_workers_sweeping_at_once_escalate_each_request_once(sessions, city, settings):
    media = settings.media_dir
    _policy(sessions, city, untriaged_minutes="5")
    for _ in range(6):
        _request(sessions, media, age=timedelta(hours=1))
    with sessions.begin() as s:
        s.execute(sa.delete(OutboxMessage))
    now = now_utc()
    barrier = threading.Barrier(2)
    counts: list[int] = []

    def worker():
        with sessions.begin() as s:
            barrier.wait()
            counts.append(escalation.sweep(s, now, BASE)["level1"])

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(counts) == 6
    with sessions() as s:
        assert s.scalar(sa.select(sa.func.count()).where(RequestEvent.kind == "escalated")) == 6
    assert len(_mail(sessions, "escalation")) == 6


def test_digest_once_per_local_day_at_the_city_hour(sessions, city, settings):
    media = settings.media_dir
    overdue = _request(sessions, media, age=timedelta(days=2), due_in=timedelta(hours=-20))
    _request(sessions, media, age=timedelta(minutes=5), due_in=timedelta(hours=20))
    with sessions.begin() as s:
        c = s.get(Jurisdiction, city.city_id)
        escalation.save_settings(s, c, reopen_days="10", digest_hour="8")
        s.execute(sa.delete(OutboxMessage))
    madrid = ZoneInfo("Europe/Madrid")
    day = datetime.now(madrid).date()
    at = lambda h, d=day: datetime(d.year, d.month, d.day, h, 5, tzinfo=madrid)  # noqa: E731

    def send(now, force=False):
        with sessions.begin() as s:
            return escalation.send_digests(s, now, BASE, force=force)["departments"]

    assert send(at(7)) == 0  # before the city's hour
    assert send(at(8)) == 1
    assert send(at(9)) == 0  # once a day
    assert send(at(9), force=True) == 1
    tomorrow = day + timedelta(days=1)
    assert send(at(8, tomorrow)) == 1
    mails = _mail(sessions, "department_digest")
    assert len(mails) == 6  # three digests, to the supervisor and the department
    assert {m.to_addr for m in mails} == {"supervisor@city.example", "streets@city.example"}
    assert "Streets: 1 overdue or escalated" in mails[0].subject
    assert overdue[1] in mails[0].body_text
    assert f"{STAFF}/{overdue[1]}" in mails[0].body_text
    assert "token=" not in mails[0].body_text


def test_settings_are_checked(sessions, city):
    with sessions.begin() as s:
        c = s.get(Jurisdiction, city.city_id)
        with pytest.raises(Exception, match="between 0 and 23"):
            escalation.save_settings(s, c, reopen_days="14", digest_hour="24")
        with pytest.raises(Exception, match="whole number"):
            escalation.save_policy(s, c, None, untriaged_minutes="soon")
        with pytest.raises(Exception, match="between 1 and"):
            escalation.save_policy(s, c, None, level2_minutes="0")
        assert s.scalar(sa.select(sa.func.count()).select_from(EscalationPolicy)) == 0


# --------------------------------------------------------------------------- console


def test_console_filter_sort_and_badges(sessions, city, settings):
    media = settings.media_dir
    _policy(sessions, city, untriaged_minutes="30", level2_minutes="25")
    first = _request(sessions, media, age=timedelta(hours=3))
    second = _request(sessions, media, age=timedelta(hours=2))
    quiet = _request(sessions, media, age=timedelta(minutes=1))
    now = now_utc()
    with sessions.begin() as s:
        escalation.sweep(s, now - timedelta(minutes=20), BASE)  # both reach level 1
        s.get(ServiceRequest, second[0]).escalated_at = now - timedelta(minutes=30)
        escalation.sweep(s, now, BASE)  # only the second waited 25 minutes at level 1
        r = s.get(ServiceRequest, quiet[0])
        r.reopen_count = 1
        r.reporter_message_at = now
    with sessions() as s:
        c = s.get(Jurisdiction, city.city_id)
        items = queue.queue(s, c, queue.parse_filters({"escalated": "1", "sort": "escalation"}))
        assert [(i["public_id"], i["escalation_level"]) for i in items] == [
            (second[1], 2),
            (first[1], 1),
        ]
        everything = {i["public_id"]: i for i in queue.queue(s, c, queue.QueueFilters())}
    assert everything[quiet[1]]["reopened"] and everything[quiet[1]]["new_message"]
    assert not everything[first[1]]["reopened"] and not everything[first[1]]["new_message"]
    assert not everything[first[1]]["no_location"]
    with sessions.begin() as s:
        # A staff reply answers the reporter's message.
        actions.reply(
            s,
            user(s, "dispatcher"),
            s.get(ServiceRequest, quiet[0]),
            text="On our way",
            public_base_url=BASE,
        )
    with sessions() as s:
        c = s.get(Jurisdiction, city.city_id)
        again = {i["public_id"]: i for i in queue.queue(s, c, queue.QueueFilters())}
    assert not again[quiet[1]]["new_message"]


def test_console_page_shows_the_filter_and_badge(sessions, city, settings, client):
    _policy(sessions, city, untriaged_minutes="30")
    escalated = _request(sessions, settings.media_dir, age=timedelta(hours=3))
    calm = _request(sessions, settings.media_dir, age=timedelta(minutes=1))
    with sessions.begin() as s:
        escalation.sweep(s, now_utc(), BASE)
    login(client, "dispatcher")
    html = client.get("/dispatch?escalated=1&sort=escalation").get_data(as_text=True)
    assert 'name="escalated" value="1" checked' in html
    assert escalated[1] in html and calm[1] not in html
    assert "escalated: level 1" in html
    data = client.get("/dispatch/api/queue?escalated=1").get_json()
    assert [i["public_id"] for i in data["items"]] == [escalated[1]]


# --------------------------------------------------------------------------- admin page


def test_admin_escalation_page(sessions, city, client):
    login(client, "dispatcher")
    assert client.get("/admin/escalation").status_code == 403
    client.get("/logout")
    login(client, "admin")
    page = client.get("/admin/escalation")
    assert page.status_code == 200
    token = csrf_from(client, "/admin/escalation")
    bad = client.post(
        "/admin/escalation",
        data={
            "csrf_token": token,
            "service_id": "",
            "untriaged_minutes": "two hours",
            "level2_minutes": "",
            "when_overdue": "1",
        },
    )
    assert bad.status_code == 400
    assert "whole number of minutes" in bad.get_data(as_text=True)
    with sessions() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(EscalationPolicy)) == 0
    ok = client.post(
        "/admin/escalation",
        data={
            "csrf_token": token,
            "service_id": str(city.pothole_id),
            "untriaged_minutes": "45",
            "level2_minutes": "120",
        },
    )
    assert ok.status_code == 302
    settings_res = client.post(
        "/admin/escalation/settings",
        data={"csrf_token": token, "reopen_days": "21", "digest_hour": "6"},
    )
    assert settings_res.status_code == 302
    bad_hour = client.post(
        "/admin/escalation/settings",
        data={"csrf_token": token, "reopen_days": "21", "digest_hour": "25"},
    )
    assert bad_hour.status_code == 400
    assert "0 to 23" in bad_hour.get_data(as_text=True)
    html = client.get("/admin/escalation").get_data(as_text=True)
    assert re.search(r"Pothole.*45 min", html, re.S)
    with sessions() as s:
        row = s.scalar(sa.select(EscalationPolicy))
        assert (row.service_id, row.untriaged_minutes, row.when_overdue, row.level2_minutes) == (
            city.pothole_id,
            45,
            False,
            120,
        )
        c = s.get(Jurisdiction, city.city_id)
        assert (c.reopen_days, c.digest_hour) == (21, 6)
        audited = [a.action for a in s.scalars(sa.select(AdminEvent).order_by(AdminEvent.id))]
        assert "escalation_policy.save" in audited and "city.settings" in audited
    removed = client.post(f"/admin/escalation/{city.pothole_id}/delete", data={"csrf_token": token})
    assert removed.status_code == 302
    with sessions() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(EscalationPolicy)) == 0


def test_admin_supervisor_and_escalation_address(sessions, city, client):
    login(client, "admin")
    with sessions() as s:
        member = user(s, "parks_dispatcher")
    path = f"/admin/users/{member.id}/membership"
    token = csrf_from(client, path)
    res = client.post(
        path, data={"csrf_token": token, "op": "supervise", "department_id": str(city.parks_id)}
    )
    assert res.status_code in (302, 303)
    assert "No longer supervisor of parks" in client.get(path).get_data(as_text=True)
    with sessions() as s:
        assert escalation.supervisors(s, city.parks_id) == ["parks_dispatcher@city.example"]
    dept_path = f"/admin/departments/{city.parks_id}"
    bad = client.post(
        dept_path,
        data={
            "csrf_token": token,
            "code": "parks",
            "name": "Parks",
            "escalation_email": "not an address",
        },
    )
    assert bad.status_code == 400
    client.post(
        dept_path,
        data={
            "csrf_token": token,
            "code": "parks",
            "name": "Parks",
            "escalation_email": "Director@City.example",
        },
    )
    with sessions() as s:
        assert s.get(Department, city.parks_id).escalation_email == "director@city.example"


# --------------------------------------------------------------------------- city file


def test_city_file_round_trip(sessions, city):
    with sessions.begin() as s:
        c = s.get(Jurisdiction, city.city_id)
        escalation.save_policy(s, c, None, untriaged_minutes=30, level2_minutes=120)
        escalation.save_policy(s, c, city.pothole_id, when_overdue=False, untriaged_minutes=15)
        escalation.save_settings(s, c, reopen_days=7, digest_hour=6)
        text = dump(export_city(s, c))
    assert "escalation:" in text and "reopen_days: 7" in text and "digest_hour: 6" in text
    assert "escalation_email: director@city.example" in text
    doc = parse(text)
    with sessions.begin() as s:
        c = s.get(Jurisdiction, city.city_id)
        assert apply_city(s, c, doc)[0] == []  # the city's own file changes nothing
    doc["escalation"] = {"untriaged_minutes": 60, "when_overdue": False, "level2_minutes": None}
    doc["city"]["reopen_days"] = 3
    pothole = next(cat for cat in doc["categories"] if cat["code"] == "pothole")
    pothole["escalation"] = None
    pothole["internal"] = True
    next(d for d in doc["departments"] if d["code"] == "parks")["escalation_email"] = (
        "boss@city.example"
    )
    with sessions.begin() as s:
        c = s.get(Jurisdiction, city.city_id)
        lines, _ = apply_city(s, c, doc)
    assert any(line.startswith("~ escalation default") for line in lines)
    assert any(line.startswith("- escalation pothole") for line in lines)
    with sessions.begin() as s:
        c = s.get(Jurisdiction, city.city_id)
        rows = escalation.policies(s, c)
        assert list(rows) == [None]
        assert (rows[None].untriaged_minutes, rows[None].when_overdue) == (60, False)
        assert c.reopen_days == 3
        assert s.get(Department, city.parks_id).escalation_email == "boss@city.example"
        assert apply_city(s, c, parse(dump(export_city(s, c))))[0] == []
    bad = parse(text)
    bad["escalation"] = {"untriaged_minutes": 0}
    with sessions.begin() as s:
        c = s.get(Jurisdiction, city.city_id)
        with pytest.raises(Exception, match="escalation.untriaged_minutes"):
            apply_city(s, c, bad)


# --------------------------------------------------------------------------- command line


def test_command_line(sessions, city, settings, cli):
    _policy(sessions, city, untriaged_minutes="30")
    waiting = _request(sessions, settings.media_dir, age=timedelta(hours=1))
    run = cli(
        "users",
        "member",
        "--email",
        "parks_dispatcher@city.example",
        "--department",
        "parks",
        "--supervisor",
    )
    assert run.returncode == 0, run.stderr
    assert "(supervisor)" in run.stdout
    run = cli(
        "departments",
        "set",
        "streets",
        "--city",
        "testville",
        "--escalation-email",
        "chief@city.example",
    )
    assert run.returncode == 0 and "chief@city.example" in run.stdout, run.stderr
    run = cli("escalation", "run", "--city", "testville")
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("1 escalated to level 1") and waiting[1] in run.stdout
    assert cli("escalation", "run").stdout.startswith("0 escalated")
    run = cli("escalation", "digest", "--city", "testville", "--force")
    assert run.returncode == 0 and run.stdout.startswith("1 department digests"), run.stderr
    shown = cli("escalation", "show", "--city", "testville").stdout
    assert "default: untriaged 30 min, overdue on, level 2 off" in shown
    bad = cli("escalation", "run", "--city", "nowhere")
    assert bad.returncode != 0 and "nowhere" in bad.stderr
    with sessions() as s:
        assert escalation.supervisors(s, city.parks_id) == ["parks_dispatcher@city.example"]
