"""The satisfaction survey: the resolution e-mail (delivered over real SMTP) carries a
one-time signed link that works once, refuses tampering and expires."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from intake.submit import Draft, submit
from notify.messages import on_status_change
from notify.worker import run_once
from spatial.models import Status, SurveyResponse, now_utc
from spatial.models_mail import SurveyToken
from tests.support.city import INSIDE
from tests.support.mail import RESIDENT, Sink, make_mail_city

BASE = "http://127.0.0.1:5000"


@pytest.fixture
def resolved(sessions, settings):
    """A request reported with an e-mail address and then resolved; the mail delivered."""
    with sessions.begin() as s:
        make_mail_city(s)
        req = submit(
            s,
            Draft(
                city="testville",
                service_code="general",
                lat=INSIDE[0],
                lon=INSIDE[1],
                contact_email=RESIDENT,
                description="Broken bench",
            ),
            media_dir=settings.media_dir,
            public_base_url=BASE,
        ).request
    with sessions.begin() as s:
        req = s.merge(req)
        req.status = Status.RESOLVED.value
        on_status_change(s, req, Status.NEW.value, Status.RESOLVED.value, BASE, note="Replaced.")
    sink = Sink().start()
    try:
        run_once(sessions, settings.with_overrides(smtp_url=sink.url))
        mails = sink.to(RESIDENT)
    finally:
        sink.stop()
    (resolution,) = [m for m in mails if "Resolved" in m.message["Subject"]]
    url = re.search(r"http://\S+/survey/\S+", resolution.text).group(0)
    return req, urlsplit(url).path, resolution


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_resolution_mail_carries_a_survey_link_that_works_once(client, sessions, resolved):
    req, path, mail = resolved
    assert "Replaced." in mail.text
    assert mail.message["In-Reply-To"] == f"<request-{req.public_id}@127.0.0.1>"
    page = client.get(path)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert req.public_id in html and 'name="rating"' in html
    assert page.headers["Referrer-Policy"] == "no-referrer"
    res = client.post(
        path,
        data={
            "csrf_token": _csrf(html),
            "rating": "4",
            "timeliness": "5",
            "quality": "4",
            "communication": "2",
            "comment": "Fast, but nobody told me.",
        },
    )
    assert res.status_code == 200 and "Thank you" in res.get_data(as_text=True)
    with sessions() as s:
        (row,) = s.scalars(sa.select(SurveyResponse)).all()
        assert (row.request_id, row.rating, row.timeliness, row.quality, row.communication) == (
            req.id,
            4,
            5,
            4,
            2,
        )
        assert row.comment == "Fast, but nobody told me."
        assert s.scalar(sa.select(SurveyToken.used_at)) is not None
    again = client.get(path)
    assert "already been answered" in again.get_data(as_text=True)
    replay = client.post(path, data={"csrf_token": _csrf(html), "rating": "1"})
    assert "already been answered" in replay.get_data(as_text=True)
    with sessions() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(SurveyResponse)) == 1


def test_answers_are_validated_and_nothing_stored_when_bad(client, sessions, resolved):
    _req, path, _ = resolved
    html = client.get(path).get_data(as_text=True)
    res = client.post(path, data={"csrf_token": _csrf(html), "rating": "9", "comment": "x" * 3000})
    assert res.status_code == 400
    body = res.get_data(as_text=True)
    assert "Choose a number from 1 to 5" in body and "2000 characters" in body
    with sessions() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(SurveyResponse)) == 0
        assert s.scalar(sa.select(SurveyToken.used_at)) is None
    # the link still works after a failed attempt
    assert client.get(path).status_code == 200


def test_expired_link_says_so(client, sessions, resolved):
    _req, path, _ = resolved
    with sessions.begin() as s:
        s.execute(sa.update(SurveyToken).values(expires_at=now_utc() - timedelta(days=1)))
    res = client.get(path)
    assert res.status_code == 410 and "expired" in res.get_data(as_text=True)


def test_tampered_link_is_refused(client, resolved):
    _req, path, _ = resolved
    broken = path[:-3] + ("aaa" if not path.endswith("aaa") else "bbb")
    res = client.get(broken)
    assert res.status_code == 404 and "not valid" in res.get_data(as_text=True)
    assert client.get("/survey/nonsense").status_code == 404


def test_followers_get_the_resolution_without_a_survey(sessions, settings):
    from spatial.models import Follower, now_utc

    with sessions.begin() as s:
        make_mail_city(s)
        req = submit(
            s,
            Draft(
                city="testville",
                service_code="general",
                lat=INSIDE[0],
                lon=INSIDE[1],
                contact_email=RESIDENT,
                description="Tree down",
            ),
            media_dir=settings.media_dir,
            public_base_url=BASE,
        ).request
        s.add(Follower(request_id=req.id, email="neighbour@example.org", confirmed_at=now_utc()))
        s.flush()
        on_status_change(s, req, "new", "resolved", BASE)
        on_status_change(s, req, "new", "resolved", BASE)  # notified twice: sent once
    sink = Sink().start()
    try:
        run_once(sessions, settings.with_overrides(smtp_url=sink.url))
        (follower_mail,) = sink.to("neighbour@example.org")
        resolutions = [m for m in sink.to(RESIDENT) if "Resolved" in m.message["Subject"]]
    finally:
        sink.stop()
    assert len(resolutions) == 1 and "/survey/" in resolutions[0].text
    assert "/survey/" not in follower_mail.text and "which you follow" in follower_mail.text
