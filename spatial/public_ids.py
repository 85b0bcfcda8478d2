"""Public request ids such as ``LA-2026-000123``: per city, per year, gap-free enough.

New requests reserve theirs in a transaction of their own: on a second connection
(:func:`allocate_one`), or, when the request's own statements each run in a transaction
of their own (the Open311 POST without a photo), in the statement that reads the pin's
routing (:func:`reserve_cte`). A submission that fails afterwards leaves a gap, as a
sequence would; bulk loads reserve ranges in their own transaction (:func:`allocate`)."""

from __future__ import annotations

import os
import threading

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from spatial.db import database_key
from spatial.models import Jurisdiction, PublicIdCounter


def allocate(session: Session, city: Jurisdiction, year: int, count: int = 1) -> list[str]:
    """Reserve ``count`` consecutive public ids for ``year`` (row lock on the counter)."""
    stmt = (
        insert(PublicIdCounter)
        .values(jurisdiction_id=city.id, year=year, last_value=count)
        .on_conflict_do_update(
            index_elements=["jurisdiction_id", "year"],
            set_={"last_value": PublicIdCounter.last_value + count},
        )
        .returning(PublicIdCounter.last_value)
    )
    last = session.execute(stmt).scalar_one()
    return [
        format_public_id(city.public_id_prefix, year, n) for n in range(last - count + 1, last + 1)
    ]


# One statement in its own transaction (autocommit). The reserving connections wait
# 200 ms at most for a counter row lock, and commit asynchronously: safe here, because
# the caller's own commit flushes the WAL past this one, so a counter step can only be
# lost together with the request that would have used it.
_RESERVE_NOW_SQL = (
    "INSERT INTO public_id_counter (jurisdiction_id, year, last_value) VALUES (%s, %s, 1) "
    "ON CONFLICT (jurisdiction_id, year) "
    "DO UPDATE SET last_value = public_id_counter.last_value + 1 "
    "RETURNING last_value"
)
_RESERVING_OPTIONS = "-c lock_timeout=200ms -c synchronous_commit=off"
_LOCKED_KEY = "civicpin_counters_locked"
_KEEP_IDLE = 8


class _Reserver:
    """Autocommit psycopg connections to one database that reserve ids, kept for reuse
    (at most ``_KEEP_IDLE`` idle; none when the app's own pool keeps none).

    Plain psycopg rather than a second SQLAlchemy engine: one reservation is one
    statement on every POST, and the engine's checkout, execution context and result
    cost several times the Python the statement itself does. Without a ping: a
    connection that died fails the reservation, which then falls back to the caller's
    transaction, and is closed.
    """

    def __init__(self, conninfo: str, keep: bool):
        self.conninfo = conninfo
        self.keep = keep
        self.idle: list[psycopg.Connection] = []
        self.pid = os.getpid()
        self.lock = threading.Lock()

    def reserve(self, jid: int, year: int) -> int:
        conn = None
        with self.lock:
            if self.pid != os.getpid():  # a forked child: the parent's connections stay its
                self.idle, self.pid = [], os.getpid()
            if self.idle:
                conn = self.idle.pop()
        if conn is None:
            conn = psycopg.connect(
                self.conninfo, autocommit=True, options=_RESERVING_OPTIONS, connect_timeout=5
            )
        try:
            last = conn.execute(_RESERVE_NOW_SQL, (jid, year), prepare=True).fetchone()[0]
        except BaseException:
            conn.close()
            raise
        with self.lock:
            if self.keep and len(self.idle) < _KEEP_IDLE:
                self.idle.append(conn)
                conn = None
        if conn is not None:
            conn.close()
        return last


_reservers: dict[str, _Reserver] = {}
_reservers_lock = threading.Lock()


def _reserver(bind: sa.Engine) -> _Reserver:
    key = database_key(bind)
    with _reservers_lock:
        reserver = _reservers.get(key)
        if reserver is None:
            if len(_reservers) >= 32:
                _reservers.clear()  # one database per process in production; tests make many
            conninfo = bind.url.set(drivername="postgresql").render_as_string(hide_password=False)
            keep = not isinstance(bind.pool, sa.pool.NullPool)
            reserver = _reservers[key] = _Reserver(conninfo, keep)
        return reserver


def reserve_cte(condition: str) -> str:
    """The reservation of the next number of (``:jid``, ``:year``) as a data-modifying CTE
    ``reserved`` (column ``last_value``; no row unless the SQL ``condition`` holds), for a
    caller's statement that runs alone in a transaction of its own (an autocommit
    session: :func:`spatial.db.is_autocommit`), one round trip less than
    :func:`allocate_one`.

    The counter row stays locked until that statement's commit, which is asynchronous
    (``set_config`` for this transaction only, and only when it reserves): as with the
    reserving connections, the caller's later write, committed synchronously, flushes
    the WAL past it. In a transaction that goes on after the statement the row would
    stay locked, and that transaction's commit would be asynchronous: never reserve
    there.
    """
    return f"""reserved AS (
        INSERT INTO public_id_counter AS c (jurisdiction_id, year, last_value)
        SELECT :jid, :year, 1
        WHERE CASE WHEN {condition}
                   THEN set_config('synchronous_commit', 'off', true) = 'off'
                   ELSE false END
        ON CONFLICT (jurisdiction_id, year) DO UPDATE SET last_value = c.last_value + 1
        RETURNING last_value
    )"""


def allocate_one(session: Session, city: Jurisdiction, year: int) -> str:
    """One public id for a new request, reserved at once in a transaction of its own.

    Reserved in the caller's transaction (:func:`allocate`), the counter row stays locked
    until that transaction ends, so concurrent submissions would run one after the other
    through their routing, messages and commit. Reserved and committed at once on a
    second connection, the lock lasts one statement. The cost, as with a sequence: a
    number is skipped when the caller's transaction fails after this (validation runs
    before, so that is rare).

    Falls back to :func:`allocate` in the caller's transaction when a second connection
    cannot do it: a session bound to a connection, a city not committed yet, or a
    counter row this transaction already holds (it waits 200 ms at most for that).
    """
    bind = session.get_bind()
    locked = session.info.get(_LOCKED_KEY)
    here = locked is not None and locked[0] is session.get_transaction()
    if isinstance(bind, sa.Engine) and not (here and (city.id, year) in locked[1]):
        try:
            last = _reserver(bind).reserve(city.id, year)
            return format_public_id(city.public_id_prefix, year, last)
        except psycopg.Error:
            pass  # not committed yet, locked by this transaction, a dead connection
    (public_id,) = allocate(session, city, year)
    if not here:
        locked = session.info[_LOCKED_KEY] = (session.get_transaction(), set())
    locked[1].add((city.id, year))
    return public_id


def format_public_id(prefix: str, year: int, number: int) -> str:
    return f"{prefix}-{year}-{number:06d}"


def ensure_at_least(session: Session, city_id: int, year: int, value: int) -> None:
    """Raise a counter to ``value`` (after bulk loads that assigned ids themselves)."""
    stmt = (
        insert(PublicIdCounter)
        .values(jurisdiction_id=city_id, year=year, last_value=value)
        .on_conflict_do_update(
            index_elements=["jurisdiction_id", "year"],
            set_={"last_value": sa.func.greatest(PublicIdCounter.last_value, value)},
        )
    )
    session.execute(stmt)
