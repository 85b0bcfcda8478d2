"""The city's mail settings, templates and reply-to address are read once per
transaction when a new request writes its messages, and fresh in every transaction."""

from __future__ import annotations

import collections

import sqlalchemy as sa

from intake.submit import Draft, submit
from notify import links, templates
from spatial.models import Jurisdiction, OutboxMessage
from tests.support.city import INSIDE
from tests.support.mail import (
    DISPATCH,
    INTAKE,
    NIGHT_DESK,
    RESIDENT,
    change_mail_settings,
    make_mail_city,
)

BASE = "http://127.0.0.1:5000"


def _submit(session, settings, **extra):
    draft = Draft(
        city="testville",
        service_code="general",
        lat=INSIDE[0],
        lon=INSIDE[1],
        contact_email=RESIDENT,
        **extra,
    )
    return submit(session, draft, media_dir=settings.media_dir, public_base_url=BASE).request


def _messages(session, request_id) -> dict[str, OutboxMessage]:
    rows = session.scalars(sa.select(OutboxMessage).where(OutboxMessage.request_id == request_id))
    return {m.kind: m for m in rows}


def test_a_new_request_reads_each_setting_once(engine, sessions, settings):
    with sessions.begin() as s:
        make_mail_city(s)
    tables = collections.Counter()

    def count(conn, cursor, statement, params, context, executemany):
        for table in ("mail_config", "message_template", "mail_address", "mail_unsubscribe"):
            if statement.lstrip().upper().startswith("SELECT") and f"FROM {table}" in statement:
                tables[table] += 1

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        with sessions.begin() as s:
            req = _submit(s, settings)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    with sessions() as s:
        sent = _messages(s, req.id)
    assert set(sent) == {"acknowledgement", "dispatcher_alert"}
    assert sent["dispatcher_alert"].to_addr == DISPATCH
    assert sent["acknowledgement"].headers["Reply-To"] == INTAKE
    assert sent["dispatcher_alert"].headers["Reply-To"] == INTAKE
    # two messages, but the settings once each (both messages are written by the
    # request's own statement, each unless its recipient wants no mail: see below)
    assert tables == {"mail_config": 1, "message_template": 1, "mail_address": 1}


def test_an_address_that_wants_no_mail_gets_no_acknowledgement(sessions, settings):
    with sessions.begin() as s:
        make_mail_city(s)
        earlier = _submit(s, settings)
    with sessions.begin() as s:
        # unsubscribed from an older request only: new reports are still acknowledged
        links.unsubscribe(s, RESIDENT.upper(), earlier.id)
        kept = _submit(s, settings)
    with sessions.begin() as s:
        links.unsubscribe(s, RESIDENT, None)  # no mail at all
        quiet = _submit(s, settings)
    with sessions() as s:
        assert set(_messages(s, kept.id)) == {"acknowledgement", "dispatcher_alert"}
        assert set(_messages(s, quiet.id)) == {"dispatcher_alert"}


def test_changes_made_elsewhere_apply_to_the_next_transaction(sessions, settings):
    with sessions.begin() as s:
        make_mail_city(s)
    long_lived = sessions()  # one session, several transactions (objects kept on commit)
    first = _submit(long_lived, settings)
    long_lived.commit()
    with sessions.begin() as other:
        change_mail_settings(other)
    second = _submit(long_lived, settings)
    long_lived.commit()
    with sessions() as s:
        before, after = _messages(s, first.id), _messages(s, second.id)
    long_lived.close()
    assert before["dispatcher_alert"].to_addr == DISPATCH
    assert after["dispatcher_alert"].to_addr == NIGHT_DESK
    assert after["dispatcher_alert"].subject == f"NEW {second.public_id}"
    assert before["dispatcher_alert"].headers["Reply-To"] == INTAKE
    assert after["dispatcher_alert"].headers["Reply-To"] != INTAKE


def test_a_template_saved_in_the_transaction_is_used_in_it(sessions, settings):
    with sessions.begin() as s:
        make_mail_city(s)
    with sessions.begin() as s:
        _submit(s, settings)  # reads the city's templates
        city = s.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == "testville"))
        templates.save_override(
            s, city, "acknowledgement", "Got it: $public_id", "Thanks\n$unsubscribe_url\n", None
        )
        req = _submit(s, settings)
        assert _messages(s, req.id)["acknowledgement"].subject == f"Got it: {req.public_id}"
        templates.reset_override(s, city, "acknowledgement")
        req = _submit(s, settings)
        assert _messages(s, req.id)["acknowledgement"].subject.startswith(
            f"[{req.public_id}] We received your report"
        )
