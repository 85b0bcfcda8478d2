"""Following a report, played as the stranger: real HTTP with the real session and CSRF,
real SMTP delivery to a sink. A follower gets the public page and their own links only,
nothing before they confirm, and no one can confirm, unsubscribe or flood for someone else.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from itsdangerous import URLSafeTimedSerializer

from intake.duplicates import follow
from intake.submit import Draft, submit
from notify import messages
from notify.links import FOLLOW_SALT, UNSUBSCRIBE_SALT, verify
from notify.worker import run_once
from spatial.models import Follower, OutboxMessage, RequestEvent, ServiceRequest, now_utc
from tests.support.city import INSIDE
from tests.support.mail import DISPATCH, RESIDENT, make_mail_city

BASE = "http://127.0.0.1:5000"
PHONE = "+1 555 0100"
NEIGHBOUR = "neighbour@example.org"
VICTIM = "victim@example.org"
URL = re.compile(r"https?://[^\s<>\"]+")


def new_request(sessions, settings, description="Broken swing") -> ServiceRequest:
    with sessions.begin() as s:
        if s.scalar(sa.text("SELECT count(*) FROM jurisdiction")) == 0:
            make_mail_city(s)
        return submit(
            s,
            Draft(
                city="testville",
                service_code="general",
                lat=INSIDE[0],
                lon=INSIDE[1],
                contact_email=RESIDENT,
                contact_phone=PHONE,
                description=description,
            ),
            media_dir=settings.media_dir,
            public_base_url=BASE,
        ).request


@pytest.fixture
def req(sessions, settings):
    return new_request(sessions, settings)


def csrf(client, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def follow_by_http(client, public_id: str, email: str, ip: str = "198.51.100.7"):
    env = {"REMOTE_ADDR": ip}
    token = csrf(client, f"/requests/{public_id}/follow")
    return client.post(
        f"/requests/{public_id}/follow",
        data={"csrf_token": token, "follow_email": email},
        environ_base=env,
    )


def change(sessions, request, old, new):
    with sessions.begin() as s:
        r = s.get(ServiceRequest, request.id)
        r.status = new
        messages.on_status_change(s, r, old, new, BASE, note="Crew on the way.")


def deliver(sessions, settings, sink):
    return run_once(sessions, settings.with_overrides(smtp_url=sink.url))


def confirm_path(text: str) -> str:
    return urlsplit(re.search(r"http://\S+/follow/confirm/\S+", text).group(0)).path


def confirm_by_http(client, path: str):
    return client.post(path, data={"csrf_token": csrf(client, path)})


def test_a_followers_updates_over_smtp_carry_only_public_links(
    client, sessions, settings, sink, req
):
    assert follow_by_http(client, req.public_id, NEIGHBOUR).status_code == 200
    deliver(sessions, settings, sink)
    (confirmation,) = sink.to(NEIGHBOUR)
    assert confirm_by_http(client, confirm_path(confirmation.text)).status_code == 200
    change(sessions, req, "new", "in_progress")
    change(sessions, req, "in_progress", "resolved")
    deliver(sessions, settings, sink)
    _, update, resolution = sink.to(NEIGHBOUR)
    assert update.message["Subject"].endswith("In progress")
    assert "Resolved" in resolution.message["Subject"]
    for mail in (confirmation, update, resolution):
        raw = mail.raw.decode()
        assert "token=" not in raw and req.token not in raw
        assert "/survey/" not in raw
        for url in set(URL.findall(mail.text)):
            path = urlsplit(url).path
            if "/follow/confirm/" in path:
                continue  # opened above: the follower's own
            page = client.get(path)
            assert page.status_code == 200, url
            html = page.get_data(as_text=True)
            # what the follower's links open shows nothing of the reporter
            for secret in (RESIDENT, PHONE, req.token):
                assert secret not in html, (url, secret)
    # the reporter's own mail still carries the private link and the survey
    reporter_resolution = sink.to(RESIDENT)[-1]
    assert f"token={req.token}" in reporter_resolution.text
    assert "/survey/" in reporter_resolution.text


def test_a_follow_from_before_confirmations_gets_no_private_link_either(
    sessions, settings, sink, req
):
    """Follows made before confirmation existed count as confirmed (migration 0450): their
    mail is as clean as a new follower's."""
    with sessions.begin() as s:
        s.add(Follower(request_id=req.id, email=NEIGHBOUR, confirmed_at=req.requested_at))
    change(sessions, req, "new", "in_progress")
    change(sessions, req, "in_progress", "resolved")
    deliver(sessions, settings, sink)
    update, resolution = sink.to(NEIGHBOUR)
    for mail in (update, resolution):
        assert "token=" not in mail.text and "/survey/" not in mail.text
        assert f"{BASE}/c/testville/requests/{req.public_id}\r\n" in mail.text


def test_a_follow_sends_only_a_confirmation_until_it_is_opened(
    client, sessions, settings, sink, req
):
    res = follow_by_http(client, req.public_id, NEIGHBOUR)
    page = res.get_data(as_text=True)
    assert res.status_code == 200 and "Check your mail" in page
    change(sessions, req, "new", "acknowledged")
    deliver(sessions, settings, sink)
    (only,) = sink.to(NEIGHBOUR)
    assert only.message["X-Civicpin-Kind"] == "follow_confirmation"
    assert "Confirm that you want to follow" in only.message["Subject"]
    with sessions() as s:
        assert s.scalars(sa.select(RequestEvent.kind)).all().count("followed") == 0
    # opening the link (GET, as a mail scanner would) confirms nothing
    path = confirm_path(only.text)
    assert NEIGHBOUR in client.get(path).get_data(as_text=True)
    change(sessions, req, "acknowledged", "in_progress")
    deliver(sessions, settings, sink)
    assert len(sink.to(NEIGHBOUR)) == 1
    # the button does, with the session's CSRF token (and not without)
    assert client.post(path, data={}).status_code == 400
    res = confirm_by_http(client, path)
    assert res.status_code == 200 and f"You are following report {req.public_id}" in (
        res.get_data(as_text=True)
    )
    assert confirm_by_http(client, path).status_code == 200  # twice: nothing changes
    with sessions() as s:
        assert s.scalars(sa.select(RequestEvent.kind)).all().count("followed") == 1
    change(sessions, req, "in_progress", "acknowledged")
    deliver(sessions, settings, sink)
    assert [m.message["X-Civicpin-Kind"] for m in sink.to(NEIGHBOUR)] == [
        "follow_confirmation",
        "status_change",
    ]


def test_a_stranger_cannot_confirm_for_someone_else(
    client, sessions, settings, sink, req, monkeypatch
):
    other = new_request(sessions, settings, description="Fallen tree")
    follow_by_http(client, req.public_id, VICTIM)
    deliver(sessions, settings, sink)
    genuine = confirm_path(sink.to(VICTIM)[0].text)
    token = genuine.rsplit("/", 1)[1]
    with sessions() as s:
        secret = s.scalar(sa.text("SELECT link_secret FROM mail_config"))
    forged = {
        # signed with a guessed key
        "forged": URLSafeTimedSerializer("guess", salt=FOLLOW_SALT).dumps(
            {"c": req.jurisdiction_id, "e": VICTIM, "r": req.id}
        ),
        # the victim's link with a character changed
        "tampered": token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        # a link of another kind of the same city (the unsubscribe link), reused
        "other salt": URLSafeTimedSerializer(secret, salt=UNSUBSCRIBE_SALT).dumps(
            {"c": req.jurisdiction_id, "e": VICTIM, "r": req.id}
        ),
    }
    for what, bad in forged.items():
        path = f"/requests/{req.public_id}/follow/confirm/{bad}"
        assert client.get(path).status_code == 404, what
        form = {"csrf_token": csrf(client, f"/requests/{req.public_id}/follow")}
        assert client.post(path, data=form).status_code == 404, what
    # the genuine link belongs to its request only
    wrong = f"/requests/{other.public_id}/follow/confirm/{token}"
    assert client.get(wrong).status_code == 404
    # and lasts a week
    real_time = time.time
    with monkeypatch.context() as m:
        m.setattr(time, "time", lambda: real_time() - 8 * 86400)
        old = URLSafeTimedSerializer(secret, salt=FOLLOW_SALT).dumps(
            {"c": req.jurisdiction_id, "e": VICTIM, "r": req.id}
        )
    assert client.get(f"/requests/{req.public_id}/follow/confirm/{old}").status_code == 410
    with sessions() as s:
        assert s.scalar(sa.select(Follower.confirmed_at)) is None
    change(sessions, req, "new", "in_progress")
    deliver(sessions, settings, sink)
    assert len(sink.to(VICTIM)) == 1  # the confirmation request, nothing more
    with sessions() as s:  # the genuine link still works, for its own address
        assert verify(s, token, FOLLOW_SALT)["e"] == VICTIM


def test_the_follow_page_says_the_same_whatever_the_address(client, sessions, settings, req):
    with sessions.begin() as s:
        s.add(Follower(request_id=req.id, email="known@example.org", confirmed_at=req.requested_at))

    def answer(email: str, ip: str) -> str:
        res = follow_by_http(client, req.public_id, email, ip=ip)
        assert res.status_code == 200
        return res.get_data(as_text=True).replace(email, "ADDRESS")

    new = answer("new@example.org", "198.51.100.1")
    assert answer("known@example.org", "198.51.100.2") == new
    assert answer(RESIDENT, "198.51.100.3") == new  # the reporter's address
    with sessions() as s:
        kinds = s.execute(
            sa.select(OutboxMessage.to_addr, OutboxMessage.kind).where(
                OutboxMessage.kind == "follow_confirmation"
            )
        ).all()
    # a confirmed follower is not mailed again
    assert sorted(a for a, _ in kinds) == sorted(["new@example.org", RESIDENT])


def test_follows_are_rate_limited_per_connection_and_per_address(
    app, client, sessions, settings, req
):
    app.config["REPORT_RATE_LIMIT"] = "0.001/3"
    for n in range(3):
        assert follow_by_http(client, req.public_id, f"a{n}@example.org").status_code == 200
    res = follow_by_http(client, req.public_id, "a4@example.org")
    assert res.status_code == 429 and int(res.headers["Retry-After"]) > 0
    assert "Too many requests" in res.get_data(as_text=True)
    app.config["REPORT_RATE_LIMIT"] = "1000/1000"
    # from many connections, the same address and report: one confirmation a day
    for n in range(4):
        follow_by_http(client, req.public_id, VICTIM, ip=f"203.0.113.{n + 1}")
    # and over many reports, at most five a day to one address
    others = [new_request(sessions, settings, description=f"Hole {n}") for n in range(6)]
    for n, other in enumerate(others):
        follow_by_http(client, other.public_id, VICTIM, ip=f"192.0.2.{n + 1}")
    with sessions() as s:
        to_victim = s.scalars(
            sa.select(OutboxMessage.request_id).where(OutboxMessage.to_addr == VICTIM)
        ).all()
        assert len(to_victim) == 5 and to_victim.count(req.id) == 1
        assert s.scalar(sa.select(sa.func.count()).select_from(Follower)) == 3 + 1 + 6
    with sessions.begin() as s:
        r = s.get(ServiceRequest, req.id)
        soon, tomorrow = now_utc() + timedelta(hours=2), now_utc() + timedelta(hours=25)
        assert not follow(s, r, VICTIM, public_base_url=BASE, now=soon).mailed
        assert follow(s, r, VICTIM, public_base_url=BASE, now=tomorrow).mailed


def test_a_followers_unsubscribe_is_theirs_for_this_report_and_undoable(
    client, sessions, settings, sink, req
):
    follow_by_http(client, req.public_id, NEIGHBOUR)
    deliver(sessions, settings, sink)
    confirm_by_http(client, confirm_path(sink.to(NEIGHBOUR)[0].text))
    change(sessions, req, "new", "acknowledged")
    deliver(sessions, settings, sink)
    update = sink.to(NEIGHBOUR)[-1]
    url = update.message["List-Unsubscribe"].strip("<>")
    with sessions() as s:
        payload = verify(s, urlsplit(url).path.rsplit("/", 1)[1], UNSUBSCRIBE_SALT)
    assert payload["e"] == NEIGHBOUR and payload["r"] == req.id
    path = urlsplit(url).path
    page = client.get(path).get_data(as_text=True)
    assert f"Stop e-mails about report {req.public_id}" in page
    assert "Stop any e-mail from Testville" in page
    res = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert "will get no more e-mails about report" in res.get_data(as_text=True)
    assert "Undo" in res.get_data(as_text=True)
    change(sessions, req, "acknowledged", "in_progress")
    deliver(sessions, settings, sink)
    assert sink.to(NEIGHBOUR)[-1] is update
    assert sink.to(RESIDENT)[-1].message["Subject"].endswith("In progress")  # only theirs
    res = client.post(path, data={"scope": "request", "action": "undo"})
    assert "will get e-mails about report" in res.get_data(as_text=True)
    change(sessions, req, "in_progress", "acknowledged")
    deliver(sessions, settings, sink)
    assert sink.to(NEIGHBOUR)[-1].message["Subject"].endswith("Acknowledged")
    # a scope the link does not offer changes nothing
    assert client.post(path, data={"scope": "kind"}).status_code == 400


def test_list_unsubscribe_reaches_the_wire_unencoded(sessions, settings, sink, req):
    deliver(sessions, settings, sink)
    for mail in sink.to(RESIDENT) + sink.to(DISPATCH):
        head = mail.raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
        unfolded = re.sub(r"\r\n[ \t]+", " ", head)
        (line,) = [h for h in unfolded.split("\r\n") if h.startswith("List-Unsubscribe:")]
        assert "=?" not in line
        value = line.split(":", 1)[1].strip()
        assert re.fullmatch(
            r"<http://127\.0\.0\.1:5000/c/testville/unsubscribe/[A-Za-z0-9_.\-]+>", value
        )
        assert value.strip("<>") in mail.text
        assert len(value) > 78  # long enough that the old folding encoded it
        assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in unfolded


def test_a_confirmation_link_still_works_after_its_report_was_merged(
    client, sessions, settings, sink, req
):
    from routing import actions
    from spatial.accounts import create_user

    parent = new_request(sessions, settings, description="The same swing")
    follow_by_http(client, req.public_id, NEIGHBOUR)
    deliver(sessions, settings, sink)
    path = confirm_path(sink.to(NEIGHBOUR)[0].text)
    with sessions.begin() as s:
        dispatcher, _ = create_user(
            s, email="d@city.example", role="dispatcher", password="pw-123456789-abc"
        )
        actions.merge(
            s,
            dispatcher,
            s.get(ServiceRequest, req.id),
            s.get(ServiceRequest, parent.id),
            public_base_url=BASE,
        )
    res = confirm_by_http(client, path)
    assert f"You are following report {parent.public_id}" in res.get_data(as_text=True)
    with sessions() as s:
        follower = s.scalar(sa.select(Follower).where(Follower.email == NEIGHBOUR))
        assert follower.request_id == parent.id and follower.confirmed_at is not None
