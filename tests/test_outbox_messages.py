"""The message kinds written to the outbox, what recipients read (delivered over SMTP to
a sink), threading, unsubscribing and the per-city templates."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from intake.submit import Draft, submit
from notify import messages, templates
from notify.worker import run_once
from spatial.accounts import create_user
from spatial.errors import InvalidInput
from spatial.models import (
    Crew,
    Follower,
    Jurisdiction,
    OutboxMessage,
    ServiceRequest,
    now_utc,
)
from spatial.models_mail import Unsubscribe
from tests.support.city import INSIDE
from tests.support.mail import DISPATCH, RESIDENT, make_mail_city

BASE = "http://127.0.0.1:5000"
NEIGHBOUR = "neighbour@example.org"


@pytest.fixture
def req(sessions, settings):
    with sessions.begin() as s:
        info = make_mail_city(s)
        r = submit(
            s,
            Draft(
                city="testville",
                service_code="general",
                lat=INSIDE[0],
                lon=INSIDE[1],
                contact_email=RESIDENT,
                description="Broken swing",
            ),
            media_dir=settings.media_dir,
            public_base_url=BASE,
        ).request
        s.add(Follower(request_id=r.id, email=NEIGHBOUR, confirmed_at=now_utc()))
        crew = Crew(department_id=info["department"].id, code="c1", name="Crew One")
        s.add(crew)
        s.flush()
        create_user(s, email="worker1@city.example", role="crew", password="pw-123456789")
        s.execute(
            sa.text("INSERT INTO staff_crew (user_id, crew_id) SELECT id, :c FROM app_user"),
            {"c": crew.id},
        )
    return r


def deliver(sessions, settings, sink):
    return run_once(sessions, settings.with_overrides(smtp_url=sink.url))


def change(sessions, request, old, new, **kw):
    with sessions.begin() as s:
        r = s.get(ServiceRequest, request.id)
        r.status = new
        return len(messages.on_status_change(s, r, old, new, BASE, **kw))


def test_status_change_reaches_reporter_and_followers_in_one_thread(sessions, settings, sink, req):
    assert change(sessions, req, "new", "in_progress", note="Crew on the way.") == 2
    deliver(sessions, settings, sink)
    ack, update = sink.to(RESIDENT)
    (follower,) = sink.to(NEIGHBOUR)
    root = ack.message["Message-ID"]
    assert root == f"<request-{req.public_id}@127.0.0.1>"
    for m in (update.message, follower.message):
        assert m["In-Reply-To"] == root and root in m["References"]
        assert m["Subject"] == f"[{req.public_id}] General enquiry: In progress"
        assert m["Auto-Submitted"] == "auto-generated"
        assert m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "from New to In progress" in update.text and "Crew on the way." in update.text


def test_reporter_who_did_not_opt_in_gets_no_updates(sessions, settings, sink, req):
    with sessions.begin() as s:
        s.get(ServiceRequest, req.id).notify_updates = False
    change(sessions, req, "new", "in_progress")
    deliver(sessions, settings, sink)
    (ack,) = sink.to(RESIDENT)
    assert "We received your report" in ack.message["Subject"]
    assert len(sink.to(NEIGHBOUR)) == 1


def test_one_click_unsubscribe_stops_the_mail(client, sessions, settings, sink, req):
    change(sessions, req, "new", "acknowledged")
    deliver(sessions, settings, sink)
    (update,) = sink.to(NEIGHBOUR)
    url = update.message["List-Unsubscribe"].strip("<>")
    assert url in update.text  # the same link is in the body
    path = urlsplit(url).path
    page = client.get(path)
    assert page.status_code == 200 and NEIGHBOUR in page.get_data(as_text=True)
    # RFC 8058: the mail client POSTs without any form token
    res = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert res.status_code == 200 and "will get no more" in res.get_data(as_text=True)
    with sessions() as s:
        assert s.scalar(sa.select(Follower.unsubscribed_at)) is not None
        assert s.scalar(sa.select(Unsubscribe.request_id)) == req.id
    change(sessions, req, "acknowledged", "in_progress")
    deliver(sessions, settings, sink)
    assert len(sink.to(NEIGHBOUR)) == 1
    assert len(sink.to(RESIDENT)) == 3  # ack + two updates: the reporter still gets them
    assert client.post(path[:-4] + "xxxx").status_code == 404


def test_unsubscribe_from_everything_also_stops_queued_mail(client, sessions, settings, sink, req):
    change(sessions, req, "new", "acknowledged")
    deliver(sessions, settings, sink)
    path = urlsplit(sink.to(RESIDENT)[-1].message["List-Unsubscribe"].strip("<>")).path
    change(sessions, req, "acknowledged", "in_progress")  # queued before the unsubscribe
    client.post(path, data={"scope": "all"})
    result = deliver(sessions, settings, sink)
    assert [m.message["X-Civicpin-Kind"] for m in sink.to(RESIDENT)[1:]] == ["status_change"]
    assert result.failed == 1
    with sessions() as s:
        failed = s.scalar(sa.select(OutboxMessage).where(OutboxMessage.status == "failed"))
        assert failed.to_addr == RESIDENT and "unsubscribed" in failed.last_error


def test_dispatcher_alert_crew_assignment_and_template_reply(sessions, settings, sink, req):
    with sessions.begin() as s:
        r = s.get(ServiceRequest, req.id)
        crew = s.scalar(sa.select(Crew))
        r.crew_id = crew.id
        # the dispatcher alert was written by submit() when the request came in
        assert len(messages.on_crew_assigned(s, r, crew, BASE)) == 1
        assert messages.on_template_reply(s, r, "We will fix it this week.", BASE) is not None
    deliver(sessions, settings, sink)
    (alert,) = sink.to(DISPATCH)
    assert f"/dispatch/requests/{req.public_id}" in alert.text
    (crew_mail,) = sink.to("worker1@city.example")
    assert crew_mail.message["Subject"] == (
        f"[{req.public_id}] New for Crew One: General enquiry (normal)"
    )
    assert f"/crew/requests/{req.public_id}" in crew_mail.text
    reply = sink.to(RESIDENT)[-1]
    assert reply.text.startswith("We will fix it this week.")
    assert reply.message["Subject"] == f"Re: [{req.public_id}] General enquiry"


def test_imported_requests_raise_no_alert(sessions, req):
    with sessions.begin() as s:
        r = s.get(ServiceRequest, req.id)
        r.channel = "import"
        assert messages.on_new_request(s, r, BASE) is None


def test_city_template_override_is_used_and_checked(sessions, settings, sink, req):
    with sessions.begin() as s:
        jur = s.get(Jurisdiction, req.jurisdiction_id)
        templates.save_override(
            s,
            jur,
            "status_change",
            "Update on $public_id: $status",
            "Hola! $public_id is now $status.\nStop: $unsubscribe_url\n",
            "test",
        )
        with pytest.raises(InvalidInput, match=r"\$pubic_id"):
            templates.save_override(
                s, jur, "status_change", "x $pubic_id", "$unsubscribe_url", None
            )
        with pytest.raises(InvalidInput, match="unsubscribe_url"):
            templates.save_override(s, jur, "status_change", "x", "no link here", None)
        with pytest.raises(InvalidInput, match="stray"):
            templates.save_override(s, jur, "status_change", "x", "5 $ $unsubscribe_url", None)
    change(sessions, req, "new", "in_progress")
    deliver(sessions, settings, sink)
    update = sink.to(RESIDENT)[-1]
    assert update.message["Subject"] == f"Update on {req.public_id}: In progress"
    assert update.text.startswith(f"Hola! {req.public_id} is now In progress.")


def test_follow_confirmation_template_keeps_its_link():
    with pytest.raises(InvalidInput, match=r"\$confirm_url"):
        templates.check_template("follow_confirmation", "Follow", "Hello $unsubscribe_url")
    assert templates.check_template(
        "follow_confirmation", "Follow", "Open $confirm_url\n$unsubscribe_url"
    )


def test_template_values_cannot_inject_headers(sessions, req):
    with sessions() as s:
        rendered = templates.render(
            s,
            req.jurisdiction_id,
            "status_change",
            {"public_id": "X\r\nBcc: victim@example.org", "category": "c"},
        )
    assert "\n" not in rendered.subject and "\r" not in rendered.subject


def test_template_admin_page(client, sessions, req):
    with sessions.begin() as s:
        create_user(s, email="admin@city.example", role="admin", password="admin-pw-12345")
        create_user(s, email="disp@city.example", role="dispatcher", password="disp-pw-12345")

    def login(email, pw):
        html = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
        client.post("/login", data={"email": email, "password": pw, "csrf_token": token})

    login("disp@city.example", "disp-pw-12345")
    assert client.get("/admin/mail-templates/status_change").status_code == 403
    client.post(
        "/logout",
        data={
            "csrf_token": re.search(
                r'name="csrf_token" value="([^"]+)"', client.get("/staff").get_data(as_text=True)
            ).group(1)
        },
    )
    login("admin@city.example", "admin-pw-12345")
    page = client.get("/admin/mail-templates/status_change?city=testville")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "$unsubscribe_url" in html
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    bad = client.post(
        "/admin/mail-templates/status_change?city=testville",
        data={"csrf_token": token, "subject": "Hi $nope", "body": "$unsubscribe_url"},
    )
    assert bad.status_code == 400 and "$nope" in bad.get_data(as_text=True)
    ok = client.post(
        "/admin/mail-templates/status_change?city=testville",
        data={
            "csrf_token": token,
            "subject": "Hi $public_id",
            "body": "New: $status $unsubscribe_url",
        },
    )
    assert ok.status_code == 302
    with sessions() as s:
        assert templates.current(s, req.jurisdiction_id, "status_change")[0] == "Hi $public_id"
    client.post(
        "/admin/mail-templates/status_change/reset?city=testville", data={"csrf_token": token}
    )
    with sessions() as s:
        assert templates.current(s, req.jurisdiction_id, "status_change")[2] is False


def test_acknowledge_for_any_channel_carries_unsubscribe_and_triage_links(sessions, settings, sink):
    """What submit() sends once it calls messages.acknowledge (the lead wires that)."""
    with sessions.begin() as s:
        make_mail_city(s)
        r = submit(
            s,
            Draft(
                city="testville",
                service_code="general",
                description="No contact given",
                allow_missing_location=True,
            ),
            media_dir=settings.media_dir,
            public_base_url=BASE,
        ).request
        r.contact_email = RESIDENT
        assert messages.acknowledge(s, r, BASE) is not None
        assert messages.acknowledge(s, r, BASE) is None  # once per transaction
    deliver(sessions, settings, sink)
    (ack,) = sink.to(RESIDENT)
    assert ack.message["Message-ID"] == f"<request-{r.public_id}@127.0.0.1>"
    # Links use the city's own address, which a second city added later cannot change.
    assert ack.message["List-Unsubscribe"].startswith(
        "<http://127.0.0.1:5000/c/testville/unsubscribe/"
    )
    assert f"{BASE}/c/testville/help/triage" in ack.text and "&locate=1" in ack.text


def test_links_signed_by_the_earlier_serializer_still_work(client, sessions, req):
    """Links are signed without compressing their payload now; one already sent, signed by
    itsdangerous' own serializer (which compresses a payload when that makes it
    shorter, as for a long address), keeps working."""
    from itsdangerous import URLSafeTimedSerializer

    from notify.links import UNSUBSCRIBE_SALT
    from spatial.models_mail import MailConfig

    long_address = "a-resident-with-a-rather-long-name" * 4 + "@mail.example"
    with sessions() as s:
        secret = s.get(MailConfig, req.jurisdiction_id).link_secret
    earlier = URLSafeTimedSerializer(secret, salt=UNSUBSCRIBE_SALT)
    token = earlier.dumps({"c": req.jurisdiction_id, "e": long_address, "r": req.id})
    assert token.startswith(".")  # the compressed form
    page = client.get(f"/unsubscribe/{token}")
    assert page.status_code == 200 and long_address in page.get_data(as_text=True)
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    assert client.get(f"/unsubscribe/{tampered}").status_code == 404


def test_links_mailed_by_a_city_keep_working_when_another_becomes_the_default(
    sessions, settings, engine, sink, req
):
    """A second city, even one made the install's default (CIVICPIN_CITY), changes
    nothing about the links the first city has already mailed."""
    from tests.support.city import make_small_city
    from webmap.app import create_app

    deliver(sessions, settings, sink)
    (ack,) = sink.to(RESIDENT)
    links = {
        m.group(1)
        for m in re.finditer(r"http://127\.0\.0\.1:5000(/\S+)", ack.text)
        if "/unsubscribe/" not in m.group(1)
    }
    assert f"/c/testville/requests/{req.public_id}?token={req.token}" in links
    assert "/c/testville/help/triage" in links
    with sessions.begin() as s:
        other = make_small_city(s, "otherton")["city"]
        other.name, other.public_id_prefix = "Otherton", "OT"
    app = create_app(settings.with_overrides(default_city="otherton"), engine=engine)
    client = app.test_client()
    for path in links:
        res = client.get(path)
        page = res.get_data(as_text=True)
        assert res.status_code == 200, path
        assert "Otherton" not in page, path
    page = client.get(f"/c/testville/requests/{req.public_id}?token={req.token}")
    assert "Broken swing" in page.get_data(as_text=True)
    # At the other city's address the report is sent to its own city's address.
    res = client.get(f"/c/otherton/requests/{req.public_id}?token={req.token}")
    assert res.status_code == 302
    assert res.headers["Location"] == (
        f"{BASE}/c/testville/requests/{req.public_id}?token={req.token}"
    )
    # So is a link without a prefix, as mailed before cities had addresses of their own.
    res = client.get(f"/requests/{req.public_id}")
    assert res.status_code == 302
    assert res.headers["Location"] == f"{BASE}/c/testville/requests/{req.public_id}"
    # The address without a prefix now serves the other city.
    assert "Otherton" in client.get("/help/triage").get_data(as_text=True)
