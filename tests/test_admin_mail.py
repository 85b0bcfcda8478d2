"""The mail addresses admin page (/admin/mail), and what an intake address does with a
category's required questions: mail to it over real SMTP into the running
``civicpin mail-intake`` takes their defaults, or files the request as "needs answers",
which the dispatcher sees and fills in. It is never refused."""

from __future__ import annotations

import html as html_lib
import os
import re
import signal
import subprocess
import sys

import pytest
import sqlalchemy as sa

from intake.submit import Draft, ValidationFailed, submit
from notify.worker import wait_for_port
from spatial.models import (
    OutboxMessage,
    RequestEvent,
    ServiceAttribute,
    ServiceRequest,
)
from spatial.models_mail import MailAddress, MailConfig
from spatial.models_ops import AdminEvent
from spatial.settings import PROJECT_ROOT
from tests.support.dispatch_city import (
    WEST,
    DispatchCity,
    csrf_from,
    login,
    make_dispatch_city,
)
from tests.support.mail import free_port, mime, smtp_send

POTHOLES = "potholes@city.example"


@pytest.fixture
def city(sessions) -> DispatchCity:
    with sessions.begin() as s:
        return make_dispatch_city(s)


@pytest.fixture
def admin(client, city):
    login(client, "admin")
    return client


def _post(client, path: str, form: dict):
    token = csrf_from(client, "/admin/mail")
    return client.post(path, data={"csrf_token": token, **form})


def _audit_count(sessions) -> int:
    with sessions() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(AdminEvent))


@pytest.fixture
def mail_intake(db_url, tmp_path, city):
    """The real ``civicpin mail-intake`` command, listening on a free loopback port."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SMTP_URL"}},
        "DATABASE_URL": db_url,
        "VAR_DIR": str(tmp_path / "var"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "webmap.cli", "mail-intake", "--port", str(port)],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_for_port("127.0.0.1", port, timeout=30), proc.stderr.read()
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_page_adds_an_address_for_a_category_with_required_questions(admin, sessions, city):
    page = admin.get("/admin/mail")
    assert page.status_code == 200
    assert "No intake address yet" in page.get_data(as_text=True)
    res = _post(
        admin,
        "/admin/mail/addresses",
        {"address": "Potholes@City.example", "category": "pothole", "department": "streets"},
    )
    assert res.status_code == 302
    html = admin.get("/admin/mail").get_data(as_text=True)
    assert "needs answers: depth" in html and "Required questions without a default" in html
    with sessions() as s:
        (row,) = s.scalars(sa.select(MailAddress)).all()
        assert (row.address, row.service_id, row.department_id) == (
            POTHOLES,
            city.pothole_id,
            city.streets_id,
        )
        event = s.scalar(sa.select(AdminEvent))
        assert (event.action, event.object_id) == ("mail.address_add", POTHOLES)
        assert event.what == {"category": "pothole", "department": "streets"}

    address_id = row.id
    res = _post(admin, f"/admin/mail/addresses/{address_id}/remove", {})
    assert res.status_code == 302
    with sessions() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(MailAddress)) == 0
    # gone: removing it again is not found
    assert _post(admin, f"/admin/mail/addresses/{address_id}/remove", {}).status_code == 404


def test_page_saves_the_dispatch_address_and_mail_settings(admin, sessions, city):
    form = {
        "dispatch_email": "Desk@City.example",
        "from_address": "City 311 <311@city.example>",
        "reply_limit": "3",
        "accept_limit": "40",
        "address_reply_limit": "150",
        "trusted_authserv_id": "MX.City.example",
    }
    assert _post(admin, "/admin/mail/config", form).status_code == 302
    with sessions() as s:
        cfg = s.get(MailConfig, city.city_id)
        assert (
            cfg.dispatch_email,
            cfg.from_address,
            cfg.reply_limit_per_hour,
            cfg.accept_limit_per_hour,
            cfg.address_reply_limit_per_hour,
            cfg.trusted_authserv_id,
        ) == ("desk@city.example", "City 311 <311@city.example>", 3, 40, 150, "mx.city.example")
        event = s.scalar(sa.select(AdminEvent))
        assert event.action == "mail.config"
        assert event.what["trusted_authserv_id"] == [None, "mx.city.example"]
    html = admin.get("/admin/mail").get_data(as_text=True)
    assert 'value="desk@city.example"' in html and 'value="mx.city.example"' in html
    # '' clears the dispatch address and the gateway
    form.update(dispatch_email="", trusted_authserv_id="")
    assert _post(admin, "/admin/mail/config", form).status_code == 302
    with sessions() as s:
        cfg = s.get(MailConfig, city.city_id)
        assert (cfg.dispatch_email, cfg.trusted_authserv_id) == (None, None)


GOOD_CONFIG = {
    "dispatch_email": "desk@city.example",
    "from_address": "",
    "reply_limit": "5",
    "accept_limit": "30",
    "address_reply_limit": "200",
    "trusted_authserv_id": "",
}
BAD_FORMS = [
    ("/admin/mail/addresses", {"address": "not an address", "category": "pothole"}, "address",
     "is not an e-mail address"),
    ("/admin/mail/addresses", {"address": "taken@city.example", "category": "pothole"},
     "address", "already an intake address"),
    ("/admin/mail/addresses", {"address": "x@city.example", "category": "nope"}, "category",
     "no active category 'nope'"),
    ("/admin/mail/addresses", {"address": "x@city.example"}, "category",
     "choose a category or a department"),
    ("/admin/mail/addresses", {"address": "x@city.example", "department": "nope"},
     "department", "no department 'nope'"),
    ("/admin/mail/config", {**GOOD_CONFIG, "dispatch_email": "desk"}, "dispatch_email",
     "is not an e-mail address"),
    ("/admin/mail/config", {**GOOD_CONFIG, "from_address": "City <nope>"}, "from_address",
     "is not an e-mail address"),
    ("/admin/mail/config", {**GOOD_CONFIG, "reply_limit": "many"}, "reply_limit",
     "whole number from 0 to 1000"),
    ("/admin/mail/config", {**GOOD_CONFIG, "reply_limit": "1001"}, "reply_limit",
     "whole number from 0 to 1000"),
    ("/admin/mail/config", {**GOOD_CONFIG, "accept_limit": "0"}, "accept_limit",
     "whole number from 1 to 100000"),
    ("/admin/mail/config", {**GOOD_CONFIG, "address_reply_limit": "-1"},
     "address_reply_limit", "whole number from 0 to 100000"),
    ("/admin/mail/config", {**GOOD_CONFIG, "trusted_authserv_id": "mx.example.org; dmarc=pass"},
     "trusted_authserv_id", "is not an authserv-id"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "form", "field", "needle"), BAD_FORMS)
def test_every_field_is_validated_beside_it_and_nothing_is_written(
    admin, sessions, city, path, form, field, needle
):
    from intake.mail_addresses import add_address
    from spatial.models import Jurisdiction

    with sessions.begin() as s:
        add_address(s, s.get(Jurisdiction, city.city_id), "taken@city.example", "pothole")
    with sessions() as s:
        cfg_before = s.scalar(
            sa.select(sa.func.row_to_json(sa.text("mail_config"))).select_from(
                sa.text("mail_config")
            )
        )
    res = _post(admin, path, form)
    assert res.status_code == 400
    html = res.get_data(as_text=True)
    error = re.search(rf'id="error-{field}" role="alert">([^<]*)<', html)
    assert error and needle in html_lib.unescape(error.group(1)), html[:2000]
    with sessions() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(MailAddress)) == 1
        assert s.scalar(sa.select(sa.func.count()).select_from(AdminEvent)) == 0
        cfg_after = s.scalar(
            sa.select(sa.func.row_to_json(sa.text("mail_config"))).select_from(
                sa.text("mail_config")
            )
        )
    assert cfg_after == cfg_before


def test_other_roles_may_not_use_the_page(client, city):
    login(client, "dispatcher")
    assert client.get("/admin/mail").status_code == 403


def _needs(sessions, public_id: str) -> ServiceRequest:
    with sessions() as s:
        return s.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == public_id))


def test_mail_to_a_category_with_required_questions_needs_answers_then_the_dispatcher_answers(
    app, sessions, settings, city, mail_intake
):
    admin = app.test_client()
    login(admin, "admin")
    assert (
        _post(admin, "/admin/mail/addresses", {"address": POTHOLES, "category": "pothole"})
    ).status_code == 302

    code, text = smtp_send(
        mail_intake, mime("Pothole", "A hole on my street.", to=POTHOLES), rcpt=POTHOLES
    )
    assert code == 250 and "Received as TV-" in text
    public_id = re.search(r"TV-\d{4}-\d+", text).group(0)
    req = _needs(sessions, public_id)
    assert req.needs_answers and req.channel == "email" and not req.attributes
    with sessions() as s:
        (asked,) = s.scalars(
            sa.select(RequestEvent).where(
                RequestEvent.request_id == req.id, RequestEvent.kind == "needs_answers"
            )
        ).all()
        assert not asked.public and "How deep (cm)?" in asked.note
        # the auto-reply says more details may be asked, and nothing else of the request
        ack = s.scalar(
            sa.select(OutboxMessage).where(
                OutboxMessage.request_id == req.id, OutboxMessage.kind == "acknowledgement"
            )
        )
        assert "may contact you for a few more details: How deep (cm)?" in ack.body_text

    # The dispatcher sees it in the queue and on the request page.
    client = app.test_client()
    login(client, "dispatcher")
    items = client.get("/dispatch/api/queue").get_json()["items"]
    (item,) = [i for i in items if i["public_id"] == public_id]
    assert item["needs_answers"] is True
    console = client.get("/dispatch").get_data(as_text=True)
    assert 'class="badge needs-answers"' in console
    page = client.get(f"/dispatch/requests/{public_id}").get_data(as_text=True)
    assert 'id="panel-needs-answers"' in page and 'id="answers-form"' in page
    assert 'How deep (cm)? <span class="rp-req">(required, unanswered)</span>' in page

    token = csrf_from(client, f"/dispatch/requests/{public_id}")
    url = f"/dispatch/requests/{public_id}/answers"
    # A wrong answer is refused beside its question, and changes nothing.
    res = client.post(url, data={"csrf_token": token, "attribute[depth]": "deep"})
    assert res.status_code == 400
    shown = html_lib.unescape(res.get_data(as_text=True))
    assert '<span class="field-error" role="alert">\'deep\' is not a number</span>' in shown
    res = client.post(url, data={"csrf_token": token, "attribute[depth]": ""})
    assert res.status_code == 400 and "Answer at least one question" in res.get_data(as_text=True)
    assert _needs(sessions, public_id).needs_answers

    res = client.post(
        url,
        data={
            "csrf_token": token,
            "attribute[depth]": "12",
            "attribute[hazards]": ["water", "traffic"],
        },
    )
    assert res.status_code == 303
    req = _needs(sessions, public_id)
    assert not req.needs_answers
    assert req.attributes == {"depth": 12, "hazards": ["water", "traffic"]}
    with sessions() as s:
        (answered,) = s.scalars(
            sa.select(RequestEvent).where(
                RequestEvent.request_id == req.id, RequestEvent.kind == "answered"
            )
        ).all()
        assert not answered.public and "every required question is answered now" in answered.note
    page = client.get(f"/dispatch/requests/{public_id}").get_data(as_text=True)
    assert 'id="panel-needs-answers"' not in page
    items = client.get("/dispatch/api/queue").get_json()["items"]
    assert [i["needs_answers"] for i in items if i["public_id"] == public_id] == [False]

    # With a default, the question is answered by it: no dispatcher work.
    with sessions.begin() as s:
        depth = s.scalar(
            sa.select(ServiceAttribute).where(
                ServiceAttribute.service_id == city.pothole_id, ServiceAttribute.code == "depth"
            )
        )
        depth.default_value = "5"
    code, text = smtp_send(
        mail_intake,
        mime("Another", "Second hole.", to=POTHOLES, message_id="<m2@example.org>"),
        rcpt=POTHOLES,
    )
    assert code == 250
    second = _needs(sessions, re.search(r"TV-\d{4}-\d+", text).group(0))
    assert not second.needs_answers and second.attributes == {"depth": 5}


def test_channels_that_ask_still_require_the_answers(sessions, settings, city):
    for channel in ("web", "phone", "api"):
        with sessions.begin() as s:
            draft = Draft(
                city="testville",
                service_code="pothole",
                lat=WEST[0],
                lon=WEST[1],
                channel=channel,
            )
            with pytest.raises(ValidationFailed) as exc:
                submit(
                    s,
                    draft,
                    media_dir=settings.media_dir,
                    public_base_url=settings.public_base_url,
                )
            assert "attribute[depth]" in exc.value.errors
