"""Retention on the demo city (10,000 real Los Angeles requests): with periods set, the
requests closed long enough ago lose their contact data, answers, inbound mail and photo
originals, and nothing else changes; bad periods are refused. Also the admin page."""

from __future__ import annotations

import hashlib
import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from conftest import make_settings, run_cli

from intake.duplicates import follow
from intake.email_intake import MailIntake
from intake.submit import Draft, submit
from notify.outbox import enqueue
from notify.worker import WorkerConfig, run_forever
from records.retention import parse_days, run_due
from routing.actions import close
from spatial.accounts import create_user
from spatial.db import make_sessionmaker
from spatial.errors import InvalidInput
from spatial.media import PhotoUpload
from spatial.models import (
    Follower,
    InboundEmail,
    Jurisdiction,
    OutboxMessage,
    Photo,
    RequestEvent,
    Service,
    ServiceRequest,
    User,
    now_utc,
)
from spatial.models_mail import MailAddress
from spatial.models_ops import AdminEvent, RetentionPolicy
from tests.support.dispatch_city import csrf_from, login, make_dispatch_city
from tests.support.images import jpeg_bytes
from tests.support.mail import mime

BASE = "http://127.0.0.1:5000"
DOWNTOWN = (34.0522, -118.2437)  # (lat, lon)
INTAKE_ADDRESS = "311@lacity.example"
ANSWERS = {"location_type": "alley", "hazardous": "no", "details": "a sofa"}
SHARED_PHOTO = jpeg_bytes(color=(10, 120, 200), lat=DOWNTOWN[0], lon=DOWNTOWN[1])
OWN_PHOTO = jpeg_bytes(color=(200, 200, 10), lat=DOWNTOWN[0], lon=DOWNTOWN[1])


def _report(
    s, city, settings, n: int, *, requested, closed=None, photo=None, dispatcher=None, follower=None
):
    request = submit(
        s,
        Draft(
            city=city.slug,
            service_code="illegal-dumping",
            lat=DOWNTOWN[0] + n * 0.002,
            lon=DOWNTOWN[1],
            description=f"Mattresses in the alley ({n})",
            attributes=dict(ANSWERS),
            contact_name=f"Resident {n}",
            contact_email=f"resident{n}@example.org",
            contact_phone=f"213-555-01{n:02d}",
            photos=[PhotoUpload(f"p{n}.jpg", photo)] if photo else [],
        ),
        media_dir=settings.media_dir,
        public_base_url=BASE,
        now=requested,
    ).request
    if follower is not None:
        follow(s, request, follower, public_base_url=BASE, now=requested + timedelta(hours=1))
    if closed is not None:
        close(s, dispatcher, request, reason="Picked up.", public_base_url=BASE, now=closed)
    return request


@pytest.fixture(scope="module")
def la(demo_engine, demo_db_url, tmp_path_factory):
    sessions = make_sessionmaker(demo_engine)
    settings = make_settings(tmp_path_factory.mktemp("retention"), demo_db_url)
    now = now_utc()
    day = timedelta(days=1)
    with sessions.begin() as s:
        city = s.scalar(sa.select(Jurisdiction))
        dispatcher, _ = create_user(
            s,
            email="dispatch.retention@lacity.example",
            role="dispatcher",
            city_slug=city.slug,
            password="a long dispatcher passphrase 42",
        )
        dumping = s.scalar(
            sa.select(Service).where(
                Service.jurisdiction_id == city.id, Service.code == "illegal-dumping"
            )
        )
        general = Service(
            jurisdiction_id=city.id,
            code="mailed",
            name="Mailed report",
            default_department_id=dumping.default_department_id,
        )
        s.add(general)
        s.flush()
        s.add(MailAddress(jurisdiction_id=city.id, address=INTAKE_ADDRESS, service_id=general.id))
        kw = {"dispatcher": dispatcher}
        ids = {
            # Closed 40 days ago: past the 30-day periods, not the 60-day one.
            "closed_40": _report(
                s,
                city,
                settings,
                1,
                requested=now - 50 * day,
                closed=now - 40 * day,
                photo=SHARED_PHOTO,
                follower="neighbour@example.org",
                **kw,
            ).id,
            # Closed 70 days ago: past every period.
            "closed_70": _report(
                s,
                city,
                settings,
                2,
                requested=now - 80 * day,
                closed=now - 70 * day,
                photo=OWN_PHOTO,
                **kw,
            ).id,
            # Closed 5 days ago, with the same photo as closed_40: its original stays.
            "closed_5": _report(
                s,
                city,
                settings,
                3,
                requested=now - 9 * day,
                closed=now - 5 * day,
                photo=SHARED_PHOTO,
                **kw,
            ).id,
            # Open for 100 days: nothing is removed from an open request.
            "open_100": _report(s, city, settings, 4, requested=now - 100 * day).id,
        }
        slug = city.slug
    # A report by e-mail, 50 days ago, closed 40 days ago.
    intake = MailIntake(
        sessions, public_base_url=BASE, media_dir=settings.media_dir, mail_from=settings.mail_from
    )
    outcome = intake.process(
        mime(
            "Couch on the sidewalk",
            "A couch left on the sidewalk in front of 303 S Main St.\nRosa",
            sender="Rosa Mail <rosa.mail@example.org>",
            to=INTAKE_ADDRESS,
            message_id="<couch-1@example.org>",
        ).as_bytes(),
        mail_from="rosa.mail@example.org",
        rcpt_tos=[INTAKE_ADDRESS],
        now=now - 50 * day,
    )
    with sessions.begin() as s:
        mailed = s.scalar(
            sa.select(InboundEmail.request_id).where(
                InboundEmail.message_id == "<couch-1@example.org>"
            )
        )
        assert mailed is not None, outcome
        close(
            s,
            s.get(type(dispatcher), dispatcher.id),
            s.get(ServiceRequest, mailed),
            reason="Picked up.",
            public_base_url=BASE,
            now=now - 40 * day,
        )
        ids["mailed_40"] = mailed
        public_ids = {k: s.get(ServiceRequest, i).public_id for k, i in ids.items()}
    # A bounce 50 days ago (mail that became no request), and a refusal sent then.
    intake.process(
        mime(
            "Undelivered Mail Returned to Sender",
            "This is the mail system at host mx.example.org.",
            sender="MAILER-DAEMON@mx.example.org",
            to=INTAKE_ADDRESS,
            message_id="<bounce-1@mx.example.org>",
        ).as_bytes(),
        mail_from="",
        rcpt_tos=[INTAKE_ADDRESS],
        now=now - 50 * day,
    )
    with sessions.begin() as s:
        bounce = s.scalar(
            sa.select(InboundEmail).where(
                InboundEmail.message_id.contains("<bounce-1@mx.example.org>")
            )
        )
        assert (bounce.request_id, bounce.jurisdiction_id) == (None, city.id)
        refusal = enqueue(
            s,
            kind="intake_refused",
            to_addr="lee.toolarge@example.org",
            subject="Your e-mail could not become a report",
            body_text="Hello lee.toolarge@example.org, your message was too large.",
            public_base_url=BASE,
            jurisdiction_id=city.id,
        )
        s.flush()
        refusal.status, refusal.sent_at = "sent", now - 50 * day
        refusal.created_at = now - 50 * day
        ids["bounce"], ids["refusal"] = bounce.id, refusal.id
    env = {"DATABASE_URL": demo_db_url, "VAR_DIR": str(settings.var_dir)}
    return {
        "sessions": sessions,
        "settings": settings,
        "ids": {k: v for k, v in ids.items() if k not in ("bounce", "refusal")},
        "mail_ids": {k: ids[k] for k in ("bounce", "refusal")},
        "public_ids": public_ids,
        "slug": slug,
        "env": env,
    }


def fingerprint(engine, with_policy: bool = True) -> str:
    """A digest of every row of the tables retention writes to (``with_policy``: and of
    the periods, with the time of the last run)."""
    digest = hashlib.sha256()
    tables = [
        "service_request",
        "request_event",
        "follower",
        "survey_token",
        "mail_unsubscribe",
        "outbox_message",
        "inbound_email",
        "photo",
    ]
    with engine.connect() as conn:
        for table in tables + (["retention_policy"] if with_policy else []):
            for row in conn.execute(
                sa.text(f"SELECT CAST(t AS text) FROM {table} t ORDER BY 1")  # noqa: S608
            ).scalars():
                digest.update(row.encode())
    return digest.hexdigest()


def test_a_period_that_is_not_a_positive_number_of_days_is_refused(la, demo_engine):
    before = fingerprint(demo_engine)
    for option, value, message in (
        ("--contact-days", "0", "--contact-days: a period is at least 1 day, not 0"),
        ("--answers-days", "-5", "--answers-days: a period is at least 1 day, not -5"),
        ("--raw-mail-days", "a week", "--raw-mail-days: 'a week' is not a whole number of days"),
        ("--originals-days", "1.5", "--originals-days: '1.5' is not a whole number of days"),
        ("--contact-days", "99999", "--contact-days: a period is at most 36500 days"),
    ):
        # A good period beside the bad one is not written either.
        done = run_cli(
            ["city", "retention", la["slug"], "--answers-days", "60", option, value],
            env=la["env"],
        )
        assert done.returncode == 1, done.stdout
        assert done.stderr.splitlines() == [f"civicpin: error: {message}"]
    unknown = run_cli(["city", "retention", "atlantis", "--contact-days", "30"], env=la["env"])
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "civicpin: error: no city with slug 'atlantis'"
    assert fingerprint(demo_engine) == before


def test_set_periods_then_a_dry_run_lists_the_requests_and_changes_nothing(la, demo_engine):
    done = run_cli(
        [
            "city",
            "retention",
            la["slug"],
            "--contact-days",
            "30",
            "--answers-days",
            "60",
            "--raw-mail-days",
            "30",
            "--originals-days",
            "30",
        ],
        env=la["env"],
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"{la['slug']}: contact data 30 days; private answers 60 days; inbound mail 30 days; "
        "photo originals 30 days (after a request is closed)"
    )
    before = fingerprint(demo_engine)
    dry = run_cli(["privacy", "enforce", "--city", la["slug"], "--dry-run"], env=la["env"])
    assert dry.returncode == 0, dry.stderr
    p = la["public_ids"]
    assert f"  {p['closed_40']}: contact data, photo originals" in dry.stdout
    assert f"  {p['closed_70']}: contact data, private answers, photo originals" in dry.stdout
    assert f"  {p['mailed_40']}: contact data, inbound mail" in dry.stdout
    assert p["closed_5"] not in dry.stdout and p["open_100"] not in dry.stdout
    assert "would remove" in dry.stdout
    assert fingerprint(demo_engine) == before


def test_enforce_removes_what_the_periods_allow_and_nothing_else(la, demo_engine):
    sessions, ids, media = la["sessions"], la["ids"], la["settings"].media_dir
    with sessions() as s:
        photos = {
            k: s.scalar(sa.select(Photo).where(Photo.request_id == ids[k]))
            for k in ("closed_40", "closed_70", "closed_5")
        }
        kept_before = {
            k: (r.status, r.description, r.closed_at, r.department_id, r.location.desc)
            for k, r in ((k, s.get(ServiceRequest, i)) for k, i in ids.items())
        }
        followers = s.scalar(
            sa.select(sa.func.count()).where(Follower.request_id == ids["closed_40"])
        )
    assert photos["closed_40"].original_key == photos["closed_5"].original_key
    assert all((media / p.original_key).exists() for p in photos.values())

    done = run_cli(["privacy", "enforce", "--city", la["slug"]], env=la["env"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1] == (
        f"{la['slug']}: removed from 3 requests: contact data (3), private answers (1), "
        "inbound mail (1), photo originals (2); inbound mail that became no request (1); "
        "copies of mail sent about no request (1)"
    )

    with sessions() as s:
        r = {k: s.get(ServiceRequest, i) for k, i in ids.items()}
        for k in ("closed_40", "closed_70", "mailed_40"):
            assert (r[k].contact_name, r[k].contact_email, r[k].contact_phone) == (None,) * 3
        for k in ("closed_5", "open_100"):
            assert r[k].contact_email is not None and r[k].contact_phone is not None
            assert r[k].attributes == ANSWERS
        assert r["closed_40"].attributes == ANSWERS  # kept 60 days, closed 40 ago
        assert r["closed_70"].attributes is None
        # Everything else about the requests is as it was.
        for k, row in r.items():
            assert (
                row.status,
                row.description,
                row.closed_at,
                row.department_id,
                row.location.desc,
            ) == kept_before[k]
        # The follower still counts; their address is gone.
        assert (
            s.scalar(sa.select(sa.func.count()).where(Follower.request_id == ids["closed_40"]))
            == followers
        )
        assert (
            s.scalar(sa.select(Follower.email).where(Follower.request_id == ids["closed_40"]))
            is None
        )
        # Stored copies of mail to the reporters of old requests hold no address or text.
        for k in ("closed_40", "closed_70"):
            copies = s.scalars(
                sa.select(OutboxMessage).where(OutboxMessage.request_id == ids[k])
            ).all()
            assert copies and all(m.to_addr == "" and m.body_text == "" for m in copies)
            assert all(m.status != "pending" for m in copies)
        assert s.scalar(
            sa.select(sa.func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.request_id == ids["closed_5"], OutboxMessage.to_addr != "")
        )
        inbound = s.scalar(
            sa.select(InboundEmail).where(InboundEmail.request_id == ids["mailed_40"])
        )
        assert (inbound.mail_from, inbound.subject, inbound.raw) == (None, None, None)
        events = s.scalars(sa.select(RequestEvent).where(RequestEvent.kind == "retention")).all()
        assert sorted(e.request_id for e in events) == sorted(
            ids[k] for k in ("closed_40", "closed_70", "mailed_40")
        )
        assert all(e.actor_label == "retention policy" and not e.public for e in events)
        # No note names the mail's sender any more.
        assert not s.scalar(
            sa.select(sa.func.count())
            .select_from(RequestEvent)
            .where(
                RequestEvent.request_id == ids["mailed_40"],
                sa.or_(
                    RequestEvent.note.contains("rosa.mail@example.org"),
                    RequestEvent.actor_label.contains("rosa.mail@example.org"),
                ),
            )
        )
        photos = {k: s.get(Photo, p.id) for k, p in photos.items()}
    with sessions() as s:
        bounce = s.get(InboundEmail, la["mail_ids"]["bounce"])
        assert (bounce.mail_from, bounce.subject, bounce.raw) == (None, None, None)
        assert bounce.outcome == "ignored_bounce"  # what happened stays
        refusal = s.get(OutboxMessage, la["mail_ids"]["refusal"])
        assert (refusal.to_addr, refusal.body_text, refusal.status) == ("", "", "sent")
    # The original only closed_70 had is gone; the one closed_5 still needs stays.
    assert not (media / photos["closed_70"].original_key).exists()
    assert (media / photos["closed_5"].original_key).exists()
    assert photos["closed_40"].original_removed_at is not None
    assert photos["closed_5"].original_removed_at is None
    assert all((media / p.public_key).exists() for p in photos.values())


def test_a_second_run_changes_nothing(la, demo_engine):
    before = fingerprint(demo_engine, with_policy=False)
    done = run_cli(["privacy", "enforce", "--city", la["slug"]], env=la["env"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1] == f"{la['slug']}: nothing to remove"
    # Only the time of the last run moved.
    assert fingerprint(demo_engine, with_policy=False) == before


def test_the_worker_enforces_once_a_day(la):
    sessions, settings = la["sessions"], la["settings"]
    now = now_utc()
    with sessions.begin() as s:
        city = s.scalar(sa.select(Jurisdiction))
        dispatcher = s.scalar(
            sa.select(User).where(User.email == "dispatch.retention@lacity.example")
        )
        late = _report(
            s,
            city,
            settings,
            5,
            requested=now - timedelta(days=60),
            closed=now - timedelta(days=45),
            dispatcher=dispatcher,
        ).id
        s.get(RetentionPolicy, city.id).last_enforced_at = now - timedelta(days=2)

    stop = threading.Event()
    worker = threading.Thread(
        target=run_forever,
        args=(sessions, settings, WorkerConfig(poll_interval=0.2)),
        kwargs={"stop": stop, "daily": lambda: run_due(sessions, settings.media_dir)},
    )
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with sessions() as s:
                if s.get(ServiceRequest, late).contact_email is None:
                    break
            time.sleep(0.2)
    finally:
        stop.set()
        worker.join(30)
    with sessions() as s:
        assert s.get(ServiceRequest, late).contact_email is None
        ran_at = s.get(RetentionPolicy, city.id).last_enforced_at
    assert ran_at >= now
    # Another worker the same day finds the day's run done; the next day it runs again.
    assert run_due(sessions, settings.media_dir) == []
    (next_day,) = run_due(sessions, settings.media_dir, now=now_utc() + timedelta(days=1))
    assert next_day.city == la["slug"] and next_day.requests == []
    # Two workers at the same moment, a day later still: one of them runs the city.
    later = now_utc() + timedelta(days=2, hours=1)
    results: list = []
    workers = [
        threading.Thread(
            target=lambda: results.extend(run_due(sessions, settings.media_dir, now=later))
        )
        for _ in range(2)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert [r.city for r in results] == [la["slug"]]


# --------------------------------------------------------------------------- admin page


@pytest.fixture
def dispatch_city(sessions):
    with sessions.begin() as s:
        return make_dispatch_city(s)


def test_the_admin_page_sets_the_periods_and_refuses_bad_ones(client, dispatch_city, sessions):
    login(client, "admin")
    page = client.get("/admin/privacy")
    assert page.status_code == 200
    assert 'name="contact_days"' in page.get_data(as_text=True)

    token = csrf_from(client, "/admin/privacy")
    bad = client.post(
        "/admin/privacy",
        data={
            "csrf_token": token,
            "contact_days": "30",
            "answers_days": "0",
            "raw_mail_days": "",
            "originals_days": "",
        },
    )
    assert bad.status_code == 400
    html = bad.get_data(as_text=True)
    assert (
        '<span class="field-error" id="error-answers_days" role="alert">'
        "Private answers: a period is at least 1 day, not 0</span>"
    ) in html
    with sessions() as s:
        assert s.get(RetentionPolicy, dispatch_city.city_id) is None
        assert not s.scalar(
            sa.select(sa.func.count())
            .select_from(AdminEvent)
            .where(AdminEvent.action == "retention.set")
        )

    good = client.post(
        "/admin/privacy",
        data={
            "csrf_token": token,
            "contact_days": "365",
            "answers_days": " 90 ",
            "raw_mail_days": "30",
            "originals_days": "",
        },
    )
    assert good.status_code == 302
    shown = client.get("/admin/privacy").get_data(as_text=True)
    assert 'name="contact_days" inputmode="numeric" pattern="[0-9]*" value="365"' in shown
    with sessions() as s:
        policy = s.get(RetentionPolicy, dispatch_city.city_id)
        assert (
            policy.contact_days,
            policy.answers_days,
            policy.raw_mail_days,
            policy.originals_days,
        ) == (365, 90, 30, None)
        assert policy.updated_by == "admin@city.example"
        (event,) = s.scalars(
            sa.select(AdminEvent).where(AdminEvent.action == "retention.set")
        ).all()
        assert event.jurisdiction_id == dispatch_city.city_id
        assert event.what["contact_days"] == [None, 365]


def test_other_roles_cannot_read_or_change_the_periods(client, dispatch_city, sessions):
    login(client, "dispatcher")
    assert client.get("/admin/privacy").status_code == 403
    token = csrf_from(client, "/dispatch")
    res = client.post("/admin/privacy", data={"csrf_token": token, "contact_days": "1"})
    assert res.status_code == 403
    with sessions() as s:
        assert s.get(RetentionPolicy, dispatch_city.city_id) is None


@pytest.mark.parametrize(
    ("value", "days"),
    [("30", 30), (" 7 ", 7), ("", None), (None, None), ("keep", None), ("KEEP", None), (1, 1)],
)
def test_a_period_is_a_whole_number_of_days_or_kept(value, days):
    assert parse_days(value, "Contact data") == days


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "Contact data: a period is at least 1 day, not 0"),
        ("-1", "Contact data: a period is at least 1 day, not -1"),
        ("2.5", "Contact data: '2.5' is not a whole number of days"),
        ("30 days", "Contact data: '30 days' is not a whole number of days"),
        ("36501", "Contact data: a period is at most 36500 days"),
    ],
)
def test_anything_else_is_refused_with_one_line(value, message):
    with pytest.raises(InvalidInput) as refused:
        parse_days(value, "Contact data", field="contact_days")
    assert str(refused.value) == message
    assert refused.value.field == "contact_days"
