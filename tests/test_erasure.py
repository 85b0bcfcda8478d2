"""Erasure on the demo city (10,000 real Los Angeles requests): a resident who reported,
followed, mailed and rated asks for their address to be erased. Afterwards no column of
any table holds it, the requests are still there, and the planner's figures are the same."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta
from email import message_from_bytes, policy

import pytest
import sqlalchemy as sa
from conftest import make_settings, run_cli

from intake.duplicates import follow
from intake.email_intake import MailIntake
from intake.submit import Draft, submit
from notify import messages
from notify.links import unsubscribe
from notify.survey import create_link
from notify.worker import run_once, spool_dir
from routing.actions import add_note, close
from spatial import analytics
from spatial.accounts import create_user
from spatial.db import make_sessionmaker
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
    Status,
    User,
)
from spatial.models_mail import MailAddress, SurveyToken
from tests.support.dispatch_city import PASSWORD, login
from tests.support.images import jpeg_bytes
from tests.support.mail import mime
from webmap.app import create_app

PERSON = "maria.lopez@example.org"
# Another person whose address contains the first one, and a neighbour: both untouched.
LONGER = "jmaria.lopez@example.org"
NEIGHBOUR = "sam.okafor@example.org"
INTAKE_ADDRESS = "311@lacity.example"
BASE = "http://127.0.0.1:5000"
DOWNTOWN = (34.0522, -118.2437)  # (lat, lon)
NOW = datetime.fromisoformat("2026-12-01T18:00:00+00:00")


def _draft(city: Jurisdiction, email: str, name: str, phone: str, **kw) -> Draft:
    return Draft(
        city=city.slug,
        service_code="illegal-dumping",
        lat=DOWNTOWN[0] + kw.pop("dlat", 0.0),
        lon=DOWNTOWN[1],
        description=kw.pop("description", "A sofa and two mattresses dumped in the alley."),
        attributes=kw.pop(
            "attributes", {"location_type": "alley", "hazardous": "no", "details": "a sofa"}
        ),
        contact_name=name,
        contact_email=email,
        contact_phone=phone,
        **kw,
    )


@pytest.fixture(scope="module")
def la(demo_engine, demo_db_url, tmp_path_factory):
    """The demo city, with one resident's life in it (and two other people's)."""
    sessions = make_sessionmaker(demo_engine)
    settings = make_settings(tmp_path_factory.mktemp("erasure"), demo_db_url)
    with sessions.begin() as s:
        city = s.scalar(sa.select(Jurisdiction))
        dispatcher, _ = create_user(
            s,
            email="dispatch.erasure@lacity.example",
            role="dispatcher",
            city_slug=city.slug,
            password="a long dispatcher passphrase 42",
        )
        create_user(
            s, email="planner@city.example", role="planner", city_slug=city.slug, password=PASSWORD
        )
        # Mail to the city's intake address becomes a general report, with no questions.
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
        # Her first report, with a photo whose original carries EXIF, her address in the
        # text and in an answer; the case of the address differs from her later uses.
        first = submit(
            s,
            _draft(
                city,
                "Maria.Lopez@Example.org",
                "Maria Lopez",
                "+1 213 555 0142",
                description="Dumped sofa. Write to maria.lopez@example.org if needed.",
                attributes={
                    "location_type": "alley",
                    "hazardous": "no",
                    "details": "sofa; ask Maria.Lopez@example.org",
                },
                photos=[PhotoUpload("sofa.jpg", jpeg_bytes(lat=DOWNTOWN[0], lon=DOWNTOWN[1]))],
            ),
            media_dir=settings.media_dir,
            public_base_url=BASE,
            now=NOW - timedelta(days=20),
        ).request
        # Her second report, closed: the closing mail and a survey link go to her.
        second = submit(
            s,
            _draft(city, PERSON, "Maria Lopez", "213-555-0142", dlat=0.01),
            media_dir=settings.media_dir,
            public_base_url=BASE,
            now=NOW - timedelta(days=10),
        ).request
        add_note(
            s,
            dispatcher,
            second,
            text="Phoned her; she will send photos to maria.lopez@example.org's reply thread.",
            now=NOW - timedelta(days=9, hours=1),
        )
        close(
            s,
            dispatcher,
            second,
            reason="Removed by the crew.",
            public_base_url=BASE,
            now=NOW - timedelta(days=9),
        )
        create_link(s, second, BASE, PERSON, now=NOW - timedelta(days=9))
        # A report by the neighbour that she follows, and one by the longer address.
        neighbours = submit(
            s,
            _draft(city, NEIGHBOUR, "Sam Okafor", "213-555-0199", dlat=0.02),
            media_dir=settings.media_dir,
            public_base_url=BASE,
            now=NOW - timedelta(days=8),
        ).request
        follow(s, neighbours, PERSON, public_base_url=BASE, now=NOW - timedelta(days=7))
        follow(s, neighbours, LONGER, public_base_url=BASE, now=NOW - timedelta(days=7))
        longer = submit(
            s,
            _draft(city, LONGER, "J. Maria Lopez", "213-555-0177", dlat=0.03),
            media_dir=settings.media_dir,
            public_base_url=BASE,
            now=NOW - timedelta(days=6),
        ).request
        unsubscribe(s, PERSON, second.id)
        ids = {
            "first": first.id,
            "second": second.id,
            "neighbours": neighbours.id,
            "longer": longer.id,
        }
        slug = city.slug
    # She also mailed the intake address.
    MailIntake(
        sessions, public_base_url=BASE, media_dir=settings.media_dir, mail_from=settings.mail_from
    ).process(
        mime(
            "Trash again on 5th Street",
            "More bags of trash by the corner of 5th and Main.\nMaria",
            sender=f"Maria Lopez <{PERSON}>",
            to=INTAKE_ADDRESS,
            message_id="<trash-5th-1@example.org>",
        ).as_bytes(),
        mail_from=PERSON,
        rcpt_tos=[INTAKE_ADDRESS],
    )
    # The worker delivers what is due to the local spool (no SMTP server is set) ...
    assert run_once(sessions, settings).sent > 0
    # ... and then her first report moves on: that mail to her is still waiting.
    with sessions.begin() as s:
        first = s.get(ServiceRequest, ids["first"])
        first.status = Status.IN_PROGRESS.value
        assert messages.on_status_change(s, first, "new", "in_progress", BASE)
    env = {"DATABASE_URL": demo_db_url, "VAR_DIR": str(settings.var_dir)}
    app = create_app(settings, engine=demo_engine)
    app.config["TESTING"] = True
    return {
        "sessions": sessions,
        "settings": settings,
        "ids": ids,
        "slug": slug,
        "env": env,
        "app": app,
    }


def holders(engine, address: str) -> list[str]:
    """Every ``table.column`` of the database in which ``address`` occurs (any case), as
    a whole address: ``jmaria.lopez@...`` is another person, not a hit for ``maria...``."""
    escaped = re.escape(address)
    pattern = f"(^|[^a-z0-9._%+-]){escaped}($|[^a-z0-9.-]|[.]($|[^a-z0-9]))"
    found = []
    with engine.connect() as conn:
        columns = conn.execute(
            sa.text(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'public' AND data_type IN "
                "('text', 'character varying', 'jsonb', 'json', 'bytea', 'ARRAY') "
                "AND table_name IN (SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public' AND table_type = 'BASE TABLE')"
            )
        ).all()
        assert len(columns) > 40  # the scan reads the whole schema, not a chosen few
        for table, column, data_type in columns:
            value = (
                f"encode(\"{column}\", 'escape')"
                if data_type == "bytea"
                else f'CAST("{column}" AS text)'
            )
            hit = conn.execute(
                sa.text(f'SELECT EXISTS (SELECT 1 FROM "{table}" WHERE {value} ~* :pattern)'),  # noqa: S608
                {"pattern": pattern},
            ).scalar()
            if hit:
                found.append(f"{table}.{column}")
    return found


def figures(sessions) -> dict:
    """What the planner pages show for the city: totals, per council, scorecards."""
    with sessions() as s:
        city = s.scalar(sa.select(Jurisdiction))
        f = analytics.parse_filters({})
        zones = analytics.zone_metrics(s, city, f, "neighborhood-councils", now=NOW)
        return {
            "summary": analytics.summary(s, city, f, now=NOW),
            # As JSON, where a missing figure (NaN) equals itself.
            "zones": zones.areas.drop(columns="geometry").to_json(orient="records"),
            "zones_city": zones.city,
            "scorecards": analytics.scorecards(s, city, f, now=NOW).to_json(orient="records"),
        }


def spooled_text(spool, address: str) -> list[str]:
    """The mail files in the spool that name ``address``, read as a mail client would."""
    pattern = re.compile(rf"(?<![a-z0-9._%+-]){re.escape(address)}(?![a-z0-9-]|\.[a-z0-9])", re.I)
    found = []
    for path in sorted(spool.glob("*.eml")):
        msg = message_from_bytes(path.read_bytes(), policy=policy.default)
        texts = [str(v) for v in msg.values()] + [
            part.get_content() for part in msg.walk() if part.get_content_maintype() == "text"
        ]
        if any(pattern.search(t) for t in texts):
            found.append(path.name)
    return found


def planner_downloads(app) -> dict[str, str]:
    """The planner's area and scorecard tables, downloaded as CSV by a signed-in planner."""
    client = app.test_client()
    login(client, "planner")
    out = {}
    for view in ("areas", "scorecards"):
        res = client.get(f"/planner/export/{view}.csv")
        assert res.status_code == 200, res.get_data(as_text=True)[:300]
        out[view] = res.get_data(as_text=True)
    assert len(out["areas"].splitlines()) > 50  # every council of the city, with figures
    return out


def fingerprint(engine) -> str:
    """A digest of every row of the tables erasure writes to."""
    digest = hashlib.sha256()
    with engine.connect() as conn:
        for table in (
            "service_request",
            "request_event",
            "follower",
            "survey_token",
            "mail_unsubscribe",
            "outbox_message",
            "inbound_email",
            "photo",
            "app_user",
        ):
            rows = conn.execute(
                sa.text(f"SELECT CAST(t AS text) FROM {table} t ORDER BY 1")  # noqa: S608
            ).scalars()
            for row in rows:
                digest.update(row.encode())
    return digest.hexdigest()


def test_the_setup_spreads_the_address_over_many_tables(la, demo_engine):
    found = set(holders(demo_engine, PERSON))
    assert {
        "service_request.contact_email",
        "service_request.description",
        "service_request.attributes",
        "follower.email",
        "survey_token.email",
        "mail_unsubscribe.email",
        "outbox_message.to_addr",
        "inbound_email.mail_from",
        "inbound_email.raw",
        "request_event.note",
    } <= found


def test_an_unknown_address_is_refused_and_nothing_changes(la, demo_engine):
    before = fingerprint(demo_engine)
    done = run_cli(["privacy", "erase", "--email", "nobody.here@example.org"], env=la["env"])
    assert done.returncode == 1
    assert done.stderr.strip() == "civicpin: error: no data held for nobody.here@example.org"
    assert done.stdout == ""
    bad = run_cli(["privacy", "erase", "--email", "not an address"], env=la["env"])
    assert bad.returncode == 1
    assert bad.stderr.strip() == "civicpin: error: not an e-mail address: 'not an address'"
    no_city = run_cli(["privacy", "erase", "--email", PERSON, "--city", "atlantis"], env=la["env"])
    assert no_city.returncode == 1
    assert no_city.stderr.strip() == "civicpin: error: no city with slug 'atlantis'"
    assert fingerprint(demo_engine) == before


def test_a_dry_run_says_what_would_go_and_changes_nothing(la, demo_engine):
    before = fingerprint(demo_engine)
    done = run_cli(
        ["privacy", "erase", "--email", PERSON.upper(), "--city", la["slug"], "--dry-run"],
        env=la["env"],
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == (f"{PERSON}: would remove (dry run: nothing was changed)")
    assert "  reporter's contact data on requests: 3" in done.stdout
    assert "  follows: 1" in done.stdout
    assert fingerprint(demo_engine) == before


def test_erasure_removes_the_address_from_every_table_and_keeps_the_figures(la, demo_engine):
    sessions, ids = la["sessions"], la["ids"]
    figures_before = figures(sessions)
    downloads_before = planner_downloads(la["app"])
    with sessions() as s:
        first = s.get(ServiceRequest, ids["first"])
        kept = {
            k: (r.status, r.service_id, r.requested_at, r.closed_at, r.department_id, r.zone_id)
            for k, r in ((k, s.get(ServiceRequest, i)) for k, i in ids.items())
        }
        photo = s.scalar(sa.select(Photo).where(Photo.request_id == first.id))
        original = la["settings"].media_dir / photo.original_key
        public_copy = la["settings"].media_dir / photo.public_key
        followers_before = s.scalar(
            sa.select(sa.func.count()).where(Follower.request_id == ids["neighbours"])
        )
        mailed = s.scalar(
            sa.select(InboundEmail.request_id).where(
                InboundEmail.message_id == "<trash-5th-1@example.org>"
            )
        )
    assert original.exists() and public_copy.exists()
    spool = spool_dir(la["settings"])
    spooled_before = len(spooled_text(spool, PERSON))
    assert spooled_before and spooled_text(spool, LONGER)

    done = run_cli(["privacy", "erase", "--email", "  Maria.Lopez@EXAMPLE.org "], env=la["env"])
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.splitlines()[0] == f"{PERSON}: removed"
    for line in (
        "  reporter's contact data on requests: 3",  # two by form, one by mail
        "  follows: 1",
        "  survey links: 1",
        "  unsubscribes: 1",
        "  mail received from the address: 1",
        "  photo originals: 1",
        "  messages not yet sent (cancelled): 1",
    ):
        assert line in out, out

    # No column of any table holds the address any more, in any case.
    assert holders(demo_engine, PERSON) == []
    # The other people are untouched, even the one whose address contains hers.
    assert "follower.email" in holders(demo_engine, LONGER)
    assert "service_request.contact_email" in holders(demo_engine, NEIGHBOUR)
    # The planner's counts and medians are the same.
    assert figures(sessions) == figures_before
    assert planner_downloads(la["app"]) == downloads_before

    with sessions() as s:
        for key, request_id in ids.items():
            r = s.get(ServiceRequest, request_id)
            assert (
                r.status,
                r.service_id,
                r.requested_at,
                r.closed_at,
                r.department_id,
                r.zone_id,
            ) == kept[key]
        first = s.get(ServiceRequest, ids["first"])
        assert (first.contact_name, first.contact_email, first.contact_phone) == (None,) * 3
        assert first.description == "Dumped sofa. Write to [erased] if needed."
        assert first.attributes["details"] == "sofa; ask [erased]"
        assert first.attributes["hazardous"] == "no"
        longer = s.get(ServiceRequest, ids["longer"])
        assert longer.contact_email == LONGER and longer.contact_name == "J. Maria Lopez"
        # The follow still counts as support; only its address went.
        assert (
            s.scalar(sa.select(sa.func.count()).where(Follower.request_id == ids["neighbours"]))
            == followers_before
        )
        # Mail to her that was still waiting is cancelled, not sent to nobody.
        assert not s.scalars(
            sa.select(OutboxMessage).where(
                OutboxMessage.to_addr == "", OutboxMessage.status == "pending"
            )
        ).all()
        assert (
            s.scalar(sa.select(SurveyToken.email).where(SurveyToken.request_id == ids["second"]))
            is None
        )
        # One audit event per request touched, without the address.
        audited = s.scalars(sa.select(RequestEvent).where(RequestEvent.kind == "erasure")).all()
        assert {e.request_id for e in audited} >= {
            ids["first"],
            ids["second"],
            ids["neighbours"],
            mailed,
        }
        assert ids["longer"] not in {e.request_id for e in audited}
        assert all(not e.public and e.actor_label == "erasure request" for e in audited)
        assert (
            s.scalar(sa.select(sa.func.count()).select_from(User).where(User.email == PERSON)) == 0
        )
    # No mail file in the spool names her; the other person's are still there.
    assert spooled_text(spool, PERSON) == []
    assert spooled_text(spool, LONGER)
    assert f"  mail files in the local spool: {spooled_before}" in out
    # The private original (with its EXIF) is gone; the public copy stays.
    assert not original.exists()
    assert public_copy.exists()

    # Asked again: nothing is held, and the command says so.
    again = run_cli(["privacy", "erase", "--email", PERSON], env=la["env"])
    assert again.returncode == 1
    assert again.stderr.strip() == f"civicpin: error: no data held for {PERSON}"


def test_a_staff_address_is_named_not_erased(la, demo_engine):
    done = run_cli(
        ["privacy", "erase", "--email", "dispatch.erasure@lacity.example"], env=la["env"]
    )
    assert done.returncode == 0, done.stderr
    assert (
        "  dispatch.erasure@lacity.example is a staff account: deactivate it in the admin pages"
        in done.stdout
    )
    with la["sessions"]() as s:
        user = s.scalar(sa.select(User).where(User.email == "dispatch.erasure@lacity.example"))
        assert user is not None and user.active
        # The audit trail still names who closed the request.
        closed = s.scalar(
            sa.select(RequestEvent).where(
                RequestEvent.request_id == la["ids"]["second"],
                RequestEvent.to_value == Status.CLOSED.value,
            )
        )
        assert closed.actor_id == user.id


def test_an_erasure_in_one_city_keeps_a_wish_for_no_mail_from_any_city(la, demo_engine):
    address = "kim.quiet@example.org"
    with la["sessions"].begin() as s:
        city = s.scalar(sa.select(Jurisdiction))
        submit(
            s,
            _draft(city, address, "Kim Quiet", "213-555-0111", dlat=0.04),
            media_dir=la["settings"].media_dir,
            public_base_url=BASE,
            now=NOW - timedelta(days=3),
        )
        unsubscribe(s, address, None)  # no mail from any city, about anything
    done = run_cli(["privacy", "erase", "--email", address, "--city", la["slug"]], env=la["env"])
    assert done.returncode == 0, done.stderr
    assert "  reporter's contact data on requests: 1" in done.stdout
    assert "unsubscribes" not in done.stdout
    # The other cities (there may be more later) still must not write to her.
    assert holders(demo_engine, address) == ["mail_unsubscribe.email"]
    # Erased everywhere, the wish goes too: nothing holds the address to write to.
    everywhere = run_cli(["privacy", "erase", "--email", address], env=la["env"])
    assert everywhere.returncode == 0, everywhere.stderr
    assert "  unsubscribes: 1" in everywhere.stdout
    assert holders(demo_engine, address) == []
