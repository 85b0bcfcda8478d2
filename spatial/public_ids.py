"""Public request ids such as ``LA-2026-000123``: per city, per year, gap-free enough.

New requests reserve theirs in a transaction of their own (:func:`allocate_one`), so a
submission that fails afterwards leaves a gap, as a sequence would; bulk loads reserve
ranges in their own transaction (:func:`allocate`)."""

from __future__ import annotations

import threading

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

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
_RESERVE_NOW_SQL = sa.text(
    "INSERT INTO public_id_counter (jurisdiction_id, year, last_value) "
    "VALUES (:jid, :year, 1) "
    "ON CONFLICT (jurisdiction_id, year) "
    "DO UPDATE SET last_value = public_id_counter.last_value + 1 "
    "RETURNING last_value"
)
_RESERVING_OPTIONS = "-c lock_timeout=200ms -c synchronous_commit=off"
_LOCKED_KEY = "civicpin_counters_locked"
_reserving: dict[str, sa.Engine] = {}
_reserving_lock = threading.Lock()


def _reserving_engine(bind: sa.Engine) -> sa.Engine:
    """A small autocommit pool to ``bind``'s database for reservations, one per process.

    Without the pre-ping of the app's engine (a round trip per checkout): a connection
    that died fails the reservation, which then falls back to the caller's transaction,
    and the pool drops it.
    """
    url = bind.url.render_as_string(hide_password=False)
    with _reserving_lock:
        engine = _reserving.get(url)
        if engine is None:
            if isinstance(bind.pool, sa.pool.NullPool):
                pool: dict = {"poolclass": sa.pool.NullPool}
            else:
                pool = {"pool_size": 4, "max_overflow": 16, "pool_timeout": 2}
            engine = _reserving[url] = sa.create_engine(
                bind.url,
                isolation_level="AUTOCOMMIT",
                connect_args={"options": _RESERVING_OPTIONS},
                **pool,
            )
        return engine


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
            with _reserving_engine(bind).connect() as conn:
                last = conn.execute(_RESERVE_NOW_SQL, {"jid": city.id, "year": year}).scalar_one()
            return format_public_id(city.public_id_prefix, year, last)
        except (sa.exc.IntegrityError, sa.exc.OperationalError, sa.exc.TimeoutError):
            pass  # not committed yet, locked by this transaction, a dead connection, pool full
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
