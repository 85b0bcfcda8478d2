"""Public ids of new requests: reserved at once, so concurrent submissions do not queue
behind each other's transactions, and never handed out twice."""

from __future__ import annotations

import threading
import time

import sqlalchemy as sa

from intake.submit import Draft, ValidationFailed, submit
from spatial.models import Jurisdiction, ServiceRequest
from spatial.models_mail import MailConfig
from spatial.public_ids import allocate, allocate_one
from tests.support.city import INSIDE, make_small_city

BASE = "http://127.0.0.1:5000"


def _draft(**extra) -> Draft:
    values = {"lat": INSIDE[0], "lon": INSIDE[1], **extra}
    return Draft(
        city="testville",
        service_code="pothole",
        attributes={"depth": "3"},
        channel="api",
        **values,
    )


def _city(session) -> Jurisdiction:
    return session.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == "testville"))


def test_a_submission_does_not_wait_for_another_open_transaction(sessions, settings):
    with sessions.begin() as s:
        make_small_city(s)
        # (a city's first message creates its mail settings row: not this test's subject)
        s.add(MailConfig(jurisdiction_id=_city(s).id, link_secret="k" * 32))
    slow = sessions()
    first = submit(slow, _draft(), media_dir=settings.media_dir, public_base_url=BASE)
    # ``slow`` keeps its transaction open (as while routing and writing messages); another
    # submission must get the next number at once instead of waiting for it to commit.
    done: dict = {}

    def other() -> None:
        # elsewhere in the city: not in the same map-count cells as the first (their
        # counter rows stay locked by the first transaction until it commits)
        with sessions.begin() as s:
            done["id"] = submit(
                s,
                _draft(lat=34.01, lon=-118.29),
                media_dir=settings.media_dir,
                public_base_url=BASE,
            ).request.public_id

    worker = threading.Thread(target=other)
    started = time.monotonic()
    worker.start()
    worker.join(timeout=20)
    try:
        assert not worker.is_alive(), "the second submission waited for the first to commit"
        assert time.monotonic() - started < 10
        assert first.request.public_id.endswith("-000001")
        assert done["id"].endswith("-000002")
    finally:
        slow.commit()
        slow.close()
        worker.join()
    with sessions() as s:
        ids = s.scalars(sa.select(ServiceRequest.public_id).order_by(ServiceRequest.id)).all()
    assert [i[-6:] for i in ids] == ["000001", "000002"]


def test_a_failed_transaction_skips_its_number_and_never_reuses_it(sessions, settings):
    with sessions.begin() as s:
        make_small_city(s)
    with sessions() as s:
        lost = submit(s, _draft(), media_dir=settings.media_dir, public_base_url=BASE)
        s.rollback()  # e.g. the commit failed
    # refused before anything is written: no number is spent
    with sessions() as s:
        try:
            submit(s, _draft(lat=0.0, lon=0.0), media_dir=settings.media_dir, public_base_url=BASE)
        except ValidationFailed:
            s.rollback()
    with sessions.begin() as s:
        kept = submit(s, _draft(), media_dir=settings.media_dir, public_base_url=BASE)
    assert lost.public_id.endswith("-000001")
    assert kept.public_id.endswith("-000002")


def test_city_created_in_the_same_transaction_still_gets_ids(sessions, settings):
    # The reservation's own connection cannot see the uncommitted city: it falls back to
    # the caller's transaction, which can.
    with sessions.begin() as s:
        make_small_city(s)
        a = submit(s, _draft(), media_dir=settings.media_dir, public_base_url=BASE)
        b = submit(s, _draft(), media_dir=settings.media_dir, public_base_url=BASE)
        assert (a.request.public_id[-6:], b.request.public_id[-6:]) == ("000001", "000002")
    with sessions() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(ServiceRequest)) == 2


def test_counter_held_by_this_transaction_is_used_in_it(sessions):
    with sessions.begin() as s:
        make_small_city(s)
    with sessions.begin() as s:
        city = _city(s)
        assert allocate(s, city, 2031, 3)[-1] == "TV-2031-000003"  # the row is locked here
        started = time.monotonic()
        assert allocate_one(s, city, 2031) == "TV-2031-000004"
        assert allocate_one(s, city, 2031) == "TV-2031-000005"
        assert time.monotonic() - started < 5
    with sessions.begin() as s:
        assert allocate_one(s, _city(s), 2031) == "TV-2031-000006"


def test_a_submission_in_an_autocommit_session_reserves_its_number_in_its_reads(
    engine, sessions, settings, monkeypatch
):
    """Each statement its own transaction (the Open311 POST without a photo): the number
    is taken by the statement that reads the pin's routing, not by a round trip of its
    own; a pin outside the city takes none; nothing stays locked, and the session's
    later statements commit synchronously again."""
    from spatial import public_ids
    from spatial.db import autocommit_engine, make_sessionmaker

    with sessions.begin() as s:
        make_small_city(s)
        s.add(MailConfig(jurisdiction_id=_city(s).id, link_secret="k" * 32))
    monkeypatch.setattr(public_ids, "allocate_one", _no_second_round_trip)
    own = make_sessionmaker(autocommit_engine(engine))
    with own() as s:
        first = submit(s, _draft(), media_dir=settings.media_dir, public_base_url=BASE)
        try:
            submit(s, _draft(lat=0.0, lon=0.0), media_dir=settings.media_dir, public_base_url=BASE)
            raise AssertionError("a pin outside the city was accepted")
        except ValidationFailed as exc:
            assert "location" in exc.errors
        second = submit(s, _draft(), media_dir=settings.media_dir, public_base_url=BASE)
        assert s.execute(sa.text("SHOW synchronous_commit")).scalar() == "on"
        # the session is still open: another transaction takes the counter row at once
        with engine.connect() as other:
            other.execute(sa.text("SET lock_timeout = '1s'"))
            other.execute(sa.text("SELECT * FROM public_id_counter FOR UPDATE"))
            other.rollback()
    assert (first.public_id[-6:], second.public_id[-6:]) == ("000001", "000002")
    with sessions() as s:
        ids = s.scalars(sa.select(ServiceRequest.public_id).order_by(ServiceRequest.id)).all()
    assert ids == [first.public_id, second.public_id]


def test_a_submission_in_a_transaction_leaves_its_commit_synchronous(sessions, settings):
    with sessions.begin() as s:
        make_small_city(s)
    with sessions.begin() as s:
        # (a generic plan, as the server makes after a few runs: the condition unknown)
        s.execute(sa.text("SET LOCAL plan_cache_mode = force_generic_plan"))
        submit(s, _draft(), media_dir=settings.media_dir, public_base_url=BASE)
        # the reads statement reserves nothing here, and must not make the commit of
        # this transaction, which writes the request, asynchronous
        assert s.execute(sa.text("SHOW synchronous_commit")).scalar() == "on"


def _no_second_round_trip(*args, **kw):
    raise AssertionError("the public id took a round trip of its own")
