"""Cities and their public categories, kept in process memory between Open311 POSTs.

Every POST needs its city and its category with the category's questions: two queries
and the ORM work of building the objects, on each request, for rows that change a few
times a year. Here they are loaded once and handed to each request's session with
``Session.merge(load=False)`` (no SQL), for as long as the *catalog stamp* is unchanged.

The stamp is the version in ``settings_stamp``, which every statement that writes to
the catalog (``jurisdiction``, ``service``, ``service_attribute``) or to the mail
settings (``mail_config``, ``mail_address``, ``message_template``:
:func:`notify.links.mail_config` caches them under the same stamp) raises, by a trigger,
in its own transaction (``spatial.models.STAMPED_TABLES``, migration 0420). It is read at
the start of each POST in the statement that also looks the API key up
(:func:`stamp_and_key`). Any committed change to those tables, from any process (admin
pages, the CLI, a migration, plain SQL), gives a new stamp, and the next POST reloads:
the cache is never staler than the POST's own transaction. A lookup that misses (unknown
city or category) goes the uncached way, so errors are those of
:mod:`webmap.open311.views`.
"""

from __future__ import annotations

import secrets
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, joinedload

from spatial.db import StampedCache, driver_execute, driver_sql, note_settings_stamp
from spatial.models import Jurisdiction, Service

STAMP_SQL = sa.text("SELECT version::text FROM settings_stamp WHERE id = 1")


# Under the stamp: ("city", what names it) -> Jurisdiction,
# ("service", city id, code) -> Service.
_cache = StampedCache()


# The stamp and the key's row (spatial.apikeys.KEY_COLUMNS; all None when there is no
# such key), run on the session's psycopg connection (spatial.db.driver_execute).
_STAMP_AND_KEY = driver_sql(
    sa.text(
        f"""
        SELECT ({STAMP_SQL.text}) AS stamp,
               k.id, k.jurisdiction_id, k.revoked_at, k.last_used_at
        FROM (SELECT 1) AS one
        LEFT JOIN api_key k ON k.key_hash = :digest
        """  # noqa: S608 - constant SQL
    )
)


def stamp_and_key(session: Session, digest: str | None) -> tuple[str, Any]:
    """The catalog stamp and the API key's row of :data:`spatial.apikeys.KEY_COLUMNS` with
    ``digest`` (its ``id`` is None when there is no such key), in one statement: a POST
    needs both before anything else. The stamp is noted for the session's transaction
    (:func:`spatial.db.settings_stamp`)."""
    row = driver_execute(session, _STAMP_AND_KEY, {"digest": digest}).fetchone()
    if row.stamp is None:  # the stamp row is gone: nothing can be cached safely
        return f"unstamped-{secrets.token_hex(8)}", row
    note_settings_stamp(session, row.stamp)
    return row.stamp, row


def city(session: Session, current: str, named_by: tuple, load) -> Jurisdiction:
    """The city that ``named_by`` (everything the choice depends on: the address's city,
    the jurisdiction id, the key's city, the default) names, in ``session``;
    ``load(session)`` finds it when it is not cached (and raises what it raises when
    there is none)."""
    entries = _cache.entries(session, current)
    cached = entries.get(("city", named_by))
    if cached is None:
        found = load(session)
        cached = _detached_copy(session, Jurisdiction, found.id)
        with _cache.lock:
            entries[("city", named_by)] = cached
    return session.merge(cached, load=False)


def public_service(session: Session, current: str, city_id: int, code: str, load) -> Service | None:
    """The public, active category ``code`` with its questions, in ``session``;
    ``load(session)`` finds it when it is not cached (None: there is none)."""
    entries = _cache.entries(session, current)
    cached = entries.get(("service", city_id, code))
    if cached is None:
        found = load(session)
        if found is None:
            return None
        cached = _detached_copy(session, Service, found.id)
        with _cache.lock:
            entries[("service", city_id, code)] = cached
    return session.merge(cached, load=False)


def forget() -> None:
    """Drop everything (tests; the stamp makes this unnecessary otherwise)."""
    _cache.clear()


def _detached_copy(session: Session, model, ident: int):
    """A fully loaded copy of a row, belonging to no session (safe to share: never
    changed, only merged into sessions)."""
    options = [joinedload(Service.attributes)] if model is Service else []
    with Session(bind=session.get_bind(), expire_on_commit=False) as own:
        obj = own.get(model, ident, options=options)
        own.expunge_all()
    return obj
