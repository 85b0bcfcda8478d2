"""The outbox worker against a real SMTP sink on loopback: delivery, back-off through an
outage, permanent refusals, workers sharing the outbox, a worker killed mid-batch, and the
local spool with its demo page."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from intake.submit import Draft, submit
from notify.outbox import enqueue
from notify.worker import WorkerConfig, backoff, run_once
from spatial.models import OutboxMessage, now_utc
from spatial.settings import PROJECT_ROOT, load_settings
from tests.support.city import INSIDE
from tests.support.mail import DISPATCH, RESIDENT, Sink, free_port, make_mail_city

BASE = "http://127.0.0.1:5000"
KEY = {"SECRET_KEY": "test-secret-key-0123456789"}  # no key file written


@pytest.fixture
def city(sessions):
    with sessions.begin() as s:
        return make_mail_city(s)


def enqueue_many(sessions, n: int, to: str = RESIDENT) -> list[str]:
    ids = []
    with sessions.begin() as s:
        for i in range(n):
            msg = enqueue(
                s,
                kind="test",
                to_addr=to,
                subject=f"message {i}",
                body_text=f"body {i}\n",
                public_base_url=BASE,
            )
            s.flush()
            ids.append(msg.message_id)
    return ids


def rows(sessions) -> list[OutboxMessage]:
    with sessions() as s:
        return list(s.scalars(sa.select(OutboxMessage).order_by(OutboxMessage.id)))


def test_acknowledgement_is_delivered_only_after_commit(sessions, settings, city):
    sink = Sink().start()
    try:
        smtp = settings.with_overrides(smtp_url=sink.url)
        with pytest.raises(RuntimeError), sessions.begin() as s:
            submit(
                s,
                Draft(
                    city="testville",
                    service_code="general",
                    lat=INSIDE[0],
                    lon=INSIDE[1],
                    contact_email=RESIDENT,
                    description="rolled back",
                ),
                media_dir=settings.media_dir,
                public_base_url=BASE,
            )
            raise RuntimeError("the caller's transaction fails after submit")
        assert run_once(sessions, smtp).sent == 0
        with sessions.begin() as s:
            result = submit(
                s,
                Draft(
                    city="testville",
                    service_code="general",
                    lat=INSIDE[0],
                    lon=INSIDE[1],
                    contact_email=RESIDENT,
                    description="kept",
                ),
                media_dir=settings.media_dir,
                public_base_url=BASE,
            )
        # the resident's acknowledgement and the dispatcher's alert, both from submit()
        assert run_once(sessions, smtp).sent == 2
        (got,) = [m for m in sink.received if m.rcpt_tos == [RESIDENT]]
        assert got.message["Subject"].startswith(f"[{result.request.public_id}]")
        assert got.mail_from == "noreply@localhost"
        (alert,) = [m for m in sink.received if m.rcpt_tos == [DISPATCH]]
        assert result.request.public_id in alert.message["Subject"]
        assert all(
            row.status == "sent" and row.sent_at is not None and row.locked_until is None
            for row in rows(sessions)
        )
    finally:
        sink.stop()


def test_outbox_delivers_after_an_smtp_outage_with_exponential_backoff(sessions, settings):
    port = free_port()
    sink = Sink(port=port)  # not started: the relay is down
    smtp = settings.with_overrides(smtp_url=sink.url)
    cfg = WorkerConfig(backoff_base=30)
    ids = enqueue_many(sessions, 3)
    t0 = now_utc()

    first = run_once(sessions, smtp, cfg)
    assert (first.sent, first.retrying) == (0, 3)
    for row in rows(sessions):
        assert row.status == "pending" and row.attempts == 1
        assert "Connection refused" in row.last_error
        wait = (row.next_attempt_at - t0).total_seconds()
        assert 26 <= wait <= 34
    assert run_once(sessions, smtp, cfg).claimed == 0  # not due yet: no hammering

    second = run_once(sessions, smtp, cfg, now=t0 + timedelta(seconds=40))
    assert second.retrying == 3
    for row in rows(sessions):
        assert row.attempts == 2
        wait = (row.next_attempt_at - (t0 + timedelta(seconds=40))).total_seconds()
        assert 53 <= wait <= 67  # doubled

    sink.start()
    try:
        third = run_once(sessions, smtp, cfg, now=t0 + timedelta(seconds=120))
        assert third.sent == 3
        assert sorted(r.message["Message-ID"] for r in sink.received) == sorted(ids)
        assert {r.status for r in rows(sessions)} == {"sent"}
    finally:
        sink.stop()


def test_permanent_refusal_is_not_retried(sessions, settings):
    sink = Sink().start()
    sink.handler.refuse.add("gone@example.org")
    try:
        enqueue_many(sessions, 1, to="gone@example.org")
        enqueue_many(sessions, 1)
        result = run_once(sessions, settings.with_overrides(smtp_url=sink.url))
        assert (result.sent, result.failed, result.retrying) == (1, 1, 0)
        bad, good = rows(sessions)
        assert bad.status == "failed" and bad.last_error.startswith("550")
        assert good.status == "sent"
    finally:
        sink.stop()


def test_backoff_is_capped():
    cfg = WorkerConfig(backoff_base=30, backoff_max=3600)
    assert backoff(20, cfg) <= 3600 * 1.1
    assert 27 <= backoff(1, cfg) <= 33


def test_workers_share_the_outbox_without_sending_twice(sessions, settings):
    sink = Sink(delay=0.01).start()
    try:
        ids = enqueue_many(sessions, 60)
        smtp = settings.with_overrides(smtp_url=sink.url)
        cfg = WorkerConfig(batch_size=5)
        results = []
        threads = [
            threading.Thread(target=lambda: results.append(run_once(sessions, smtp, cfg)))
            for _ in range(3)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        got = [r.message["Message-ID"] for r in sink.received]
        assert sorted(got) == sorted(ids)  # each exactly once
        assert sum(r.sent for r in results) == 60
        assert sum(1 for r in results if r.sent) >= 2  # the work really was shared
    finally:
        sink.stop()


def _env(db_url, tmp_path, smtp_url=None):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "VAR_DIR", "SMTP_URL"}}
    env.update(DATABASE_URL=db_url, VAR_DIR=str(tmp_path / "var"))
    if smtp_url:
        env["SMTP_URL"] = smtp_url
    return env


def test_a_worker_killed_mid_batch_loses_nothing(sessions, db_url, tmp_path):
    sink = Sink(delay=0.15).start()
    n = 30
    ids = enqueue_many(sessions, n)
    env = _env(db_url, tmp_path, sink.url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "webmap.cli", "worker", "--lease", "3", "--batch", "50"],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        sink.wait_for(6, timeout=60)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
        states = [r.status for r in rows(sessions)]
        assert "sending" in states and "sent" in states  # killed in the middle of a batch
        delivered_before = len(sink.received)
        assert delivered_before < n

        time.sleep(3.2)  # the dead worker's lease runs out
        res = subprocess.run(
            [sys.executable, "-m", "webmap.cli", "worker", "--once", "--lease", "3"],
            env=env,
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 0, res.stderr
        got = [r.message["Message-ID"] for r in sink.received]
        assert set(got) == set(ids)  # nothing lost
        # Only the message on the wire when the worker died may arrive twice.
        assert len(got) <= n + 1
        assert {r.status for r in rows(sessions)} == {"sent"}
        assert "sent, 0 to retry, 0 failed" in res.stdout
    finally:
        if proc.poll() is None:
            proc.kill()
        sink.stop()


def test_worker_once_cli_reports_an_outage(sessions, db_url, tmp_path):
    enqueue_many(sessions, 2)
    port = free_port()
    res = subprocess.run(
        [sys.executable, "-m", "webmap.cli", "worker", "--once"],
        env=_env(db_url, tmp_path, f"smtp://127.0.0.1:{port}"),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert "0 sent, 2 to retry, 0 failed" in res.stdout
    assert "Connection refused" in res.stdout


def _demo_app(settings, engine, **overrides):
    from webmap.app import create_app

    app = create_app(settings.with_overrides(**overrides), engine=engine)
    app.config["TESTING"] = True
    return app


def _staff_client(app, sessions, email: str, role: str):
    from spatial.accounts import create_user
    from tests.support.dispatch_city import csrf_from

    password = "spool reader phrase 1"
    with sessions.begin() as s:
        create_user(s, email=email, role=role, password=password)
    client = app.test_client()
    token = csrf_from(client, "/login")
    res = client.post("/login", data={"email": email, "password": password, "csrf_token": token})
    assert res.status_code == 302
    return client


def test_without_smtp_url_mail_goes_to_the_spool_and_the_demo_page(
    sessions, settings, engine, city
):
    with sessions.begin() as s:
        result = submit(
            s,
            Draft(
                city="testville",
                service_code="general",
                lat=INSIDE[0],
                lon=INSIDE[1],
                contact_email=RESIDENT,
                description="spooled",
            ),
            media_dir=settings.media_dir,
            public_base_url=BASE,
        )
    public_id = result.request.public_id
    app = _demo_app(settings, engine, demo_mail_page=True)
    client = _staff_client(app, sessions, "admin@city.example", "admin")
    page = client.get("/demo/mail")  # delivers what is due, then lists the spool
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f"[{public_id}] We received your report" in html
    # the resident's acknowledgement and the dispatcher's alert
    files = sorted((settings.var_dir / "mail-spool").glob("*.eml"))
    assert len(files) == 2
    assert {r.status for r in rows(sessions)} == {"sent"}
    (ack,) = [f for f in files if "We received your report" in f.read_text()]
    msg = client.get(f"/demo/mail/{ack.name}").get_data(as_text=True)
    assert f'href="{BASE}/c/testville/requests/{public_id}?token=' in msg
    assert "Content-Security-Policy" in page.headers
    assert client.get("/demo/mail/../../secret_key").status_code == 404


def test_the_spool_page_is_for_admins_only(sessions, settings, engine, city):
    # The spool holds residents' private links: a browser on this machine, a stranger
    # elsewhere and staff of any other role learn nothing from it.
    with sessions.begin() as s:
        submit(
            s,
            Draft(
                city="testville",
                service_code="general",
                lat=INSIDE[0],
                lon=INSIDE[1],
                contact_email=RESIDENT,
                description="spooled",
            ),
            media_dir=settings.media_dir,
            public_base_url=BASE,
        )
    app = _demo_app(settings, engine, demo_mail_page=True)
    _staff_client(app, sessions, "admin@city.example", "admin").get("/demo/mail")
    name = next((settings.var_dir / "mail-spool").glob("*.eml")).name
    for addr in ("127.0.0.1", "::1", "203.0.113.9"):
        for path in ("/demo/mail", f"/demo/mail/{name}"):
            res = app.test_client().get(path, environ_base={"REMOTE_ADDR": addr})
            assert res.status_code == 302 and "/login" in res.headers["Location"]
            assert "token=" not in res.get_data(as_text=True)
    for role in ("dispatcher", "agent", "crew", "planner"):
        staff = _staff_client(app, sessions, f"{role}@city.example", role)
        for path in ("/demo/mail", f"/demo/mail/{name}"):
            res = staff.get(path)
            assert res.status_code == 403
            assert "token=" not in res.get_data(as_text=True)


def test_the_spool_page_is_off_unless_asked_for(sessions, settings, engine, city):
    # Off by default, even for an admin on this machine...
    app = _demo_app(settings, engine)
    client = _staff_client(app, sessions, "admin@city.example", "admin")
    assert client.get("/demo/mail").status_code == 404
    # ...and whenever a real SMTP server takes the mail.
    app = _demo_app(settings, engine, demo_mail_page=True, smtp_url="smtp://127.0.0.1:1")
    assert app.test_client().get("/demo/mail").status_code == 404
    assert load_settings({**KEY, "DEMO_MAIL_PAGE": "1"}).demo_mail_page is True
    assert load_settings(KEY).demo_mail_page is False
