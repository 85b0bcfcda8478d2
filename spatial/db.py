"""Engine, sessions and the database bootstrap (PostGIS check, migrations)."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg.rows import namedtuple_row
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlalchemy.orm import Session, make_transient_to_detached, sessionmaker

from spatial.embedded import DRIVER, EmbeddedCluster
from spatial.settings import PROJECT_ROOT, Settings

MIGRATIONS_DIR = PROJECT_ROOT / "migrations"


class DatabaseError(RuntimeError):
    """The database is unreachable or unsuitable; one-line message for a person."""


def with_driver(url: str) -> str:
    """``url`` for SQLAlchemy with psycopg 3 (``postgresql://``, or ``+psycopg2`` from an
    older configuration: psycopg 2 is no longer installed)."""
    scheme, sep, rest = url.partition("://")
    if scheme in ("postgresql", "postgres", "postgresql+psycopg2"):
        return f"{DRIVER}://{rest}"
    return url


def resolve_database_url(settings: Settings, start: bool = True) -> str:
    """``DATABASE_URL`` if set, else the embedded cluster's URL (started if ``start``)."""
    if settings.database_url:
        url = settings.database_url
        return with_driver(url)
    cluster = EmbeddedCluster(settings.var_dir)
    if start:
        cluster.start()
    elif not cluster.exists():
        raise DatabaseError("the embedded database does not exist yet: run 'civicpin db up'")
    return cluster.url()


_PSYCOPG = psycopg_dialect()


def driver_sql(statement: sa.TextClause) -> str:
    """A ``text()`` statement as psycopg SQL (``%(name)s`` placeholders), for
    :func:`driver_execute`."""
    return str(statement.compile(dialect=_PSYCOPG))


def driver_execute(session: Session, sql: str, params: Mapping[str, Any]) -> psycopg.Cursor:
    """Run ``sql`` (see :func:`driver_sql`) in ``session``'s transaction, on its psycopg
    connection, as a prepared statement; the cursor's rows are named tuples.

    For the few statements that every new request runs: through SQLAlchemy each costs
    about 200 Python function calls, here about 70. SQLAlchemy's execution events do
    not see them. Errors are SQLAlchemy's (``sa.exc.DBAPIError`` and its subclasses),
    and a connection found dead is invalidated, so that the pool drops it, as SQLAlchemy
    does for its own statements.
    """
    conn = session.connection()
    dbapi = conn.connection.driver_connection
    cursor = dbapi.cursor(row_factory=namedtuple_row)
    try:
        cursor.execute(sql, params, prepare=True)
    except psycopg.Error as exc:
        cursor.close()
        if dbapi.broken:
            conn.invalidate(exc)
        raise sa.exc.DBAPIError.instance(
            sql, params, exc, psycopg.Error, dialect=conn.dialect
        ) from exc
    return cursor


def is_autocommit(session: Session) -> bool:
    """Does each statement of ``session`` run in a transaction of its own (its
    connection is in autocommit mode: :func:`autocommit_engine`)?"""
    return bool(session.connection().connection.driver_connection.autocommit)


_database_keys: weakref.WeakKeyDictionary[sa.Engine, str] = weakref.WeakKeyDictionary()


def database_key(bind: sa.Engine | sa.Connection) -> str:
    """A key for per-database caches in process memory: the engine's URL, rendered once
    per engine (a ``URL`` renders itself to a string each time it is hashed)."""
    engine = bind.engine
    key = _database_keys.get(engine)
    if key is None:
        key = _database_keys[engine] = engine.url.render_as_string(hide_password=False)
    return key


# The settings stamp of the current transaction. A request that read the stamp (the
# Open311 POST does, see webmap.open311.catalog) may use settings cached in process
# memory under that same stamp: any committed change to those settings changes it.
_STAMP_KEY = "civicpin_settings_stamp"


def note_settings_stamp(session: Session, stamp: str) -> None:
    session.info[_STAMP_KEY] = (session.get_transaction(), stamp)


def settings_stamp(session: Session) -> str | None:
    """The stamp noted in the session's current transaction, if one was."""
    noted = session.info.get(_STAMP_KEY)
    if noted is None or noted[0] is not session.get_transaction():
        return None
    return noted[1]


class StampedCache:
    """Values kept in process memory per database, for as long as its settings stamp is
    unchanged (:func:`settings_stamp`): a new stamp starts the database's entries afresh,
    so nothing read under an older one is ever handed out. Thread-safe; one database per
    process in production, and at most ``max_databases`` kept (tests make many)."""

    def __init__(self, max_databases: int = 16):
        self._by_database: dict[str, tuple[str, dict]] = {}
        self._lock = threading.Lock()
        self._max = max_databases

    def entries(self, session: Session, stamp: str) -> dict:
        """The dict of entries of ``session``'s database under ``stamp`` (fill it under
        :attr:`lock` if other threads may read it meanwhile)."""
        key = database_key(session.get_bind())
        with self._lock:
            held = self._by_database.get(key)
            if held is None or held[0] != stamp:
                if held is None and len(self._by_database) >= self._max:
                    self._by_database.clear()
                held = self._by_database[key] = (stamp, {})
            return held[1]

    @property
    def lock(self) -> threading.Lock:
        return self._lock

    def clear(self) -> None:
        with self._lock:
            self._by_database.clear()


# A pooled connection idle for longer than this is checked before it is handed out.
IDLE_CHECK_S = 10.0


def make_engine(url: str | sa.URL, **kw) -> sa.Engine:
    """The app's engine. Pooled connections that sat idle for more than ``IDLE_CHECK_S``
    are pinged at checkout, and replaced if the server dropped them (a restart, an idle
    timeout). SQLAlchemy's ``pool_pre_ping`` would ping on every checkout: one more round
    trip on every request of a busy server, whose connections are never idle that long.
    A connection that dies while in use fails its request, and the pool then replaces
    every connection it holds (SQLAlchemy's disconnect handling)."""
    if "poolclass" not in kw:
        kw.setdefault("pool_size", 10)
        kw.setdefault("max_overflow", 20)
    engine = sa.create_engine(url, **kw)
    if not kw.get("pool_pre_ping"):
        sa.event.listen(engine, "checkin", _note_idle)
        sa.event.listen(engine, "checkout", _check_if_idle)
    return engine


def autocommit_engine(engine: sa.Engine) -> sa.Engine:
    """An engine to ``engine``'s database whose connections are in autocommit mode from
    the start, with a pool of their own (none if ``engine`` pools none).

    ``engine.execution_options(isolation_level="AUTOCOMMIT")`` would share the pool, and
    switch each connection to autocommit at checkout and back at checkin: two event
    dispatches and driver calls on every request that uses it.
    """
    kw: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"}
    if isinstance(engine.pool, sa.pool.NullPool):
        kw["poolclass"] = sa.pool.NullPool
    return make_engine(engine.url, **kw)


_IDLE_SINCE = "civicpin_idle_since"


def _note_idle(dbapi_conn, record) -> None:
    if record is not None:
        record.info[_IDLE_SINCE] = time.monotonic()


def _check_if_idle(dbapi_conn, record, proxy) -> None:
    since = record.info.pop(_IDLE_SINCE, None)
    if since is None or time.monotonic() - since <= IDLE_CHECK_S:
        return
    try:
        with dbapi_conn.cursor() as cur:
            cur.execute("SELECT 1")
        dbapi_conn.rollback()
    except Exception as exc:  # any failure: the pool drops it and checks out another
        raise sa.exc.DisconnectionError(str(exc)) from exc


def make_sessionmaker(engine: sa.Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def ensure_extensions(engine: sa.Engine) -> str:
    """Enable PostGIS and pg_trgm; fail with one line unless PostGIS >= 3 is there."""
    try:
        with engine.begin() as conn:
            available = conn.execute(
                sa.text("SELECT default_version FROM pg_available_extensions WHERE name='postgis'")
            ).scalar()
            if available is None:
                raise DatabaseError(
                    "PostGIS is not installed on the database server "
                    "(Debian: apt-get install postgresql-15-postgis-3)"
                )
            conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis"))
            conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
            version = conn.execute(sa.text("SELECT postgis_lib_version()")).scalar()
    except sa.exc.OperationalError as exc:
        msg = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseError(f"cannot connect to the database: {msg}") from None
    except sa.exc.ProgrammingError as exc:
        msg = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseError(f"cannot enable PostGIS: {msg}") from None
    if int(str(version).split(".")[0]) < 3:
        raise DatabaseError(f"PostGIS {version} is too old: civicpin needs PostGIS 3 or newer")
    return str(version)


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(engine: sa.Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` with Alembic (PostGIS enabled first)."""
    from alembic import command

    ensure_extensions(engine)
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(engine: sa.Engine, revision: str = "base") -> None:
    from alembic import command

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def schema_is_current(engine: sa.Engine) -> bool:
    """True if the database is at the newest Alembic revision."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(str(engine.url)))
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    return current == set(script.get_heads())


def attach_inserted(session: Session, obj, new_id: int) -> None:
    """Make ``obj``, a new ORM object its caller has just INSERTed itself as row
    ``new_id``, persistent in ``session`` as if it had been loaded (no SQL).

    For rows written often (a new request, its messages): one INSERT statement costs
    less Python than the unit of work's flush. Attributes never set are None, as the
    INSERT wrote them.
    """
    obj.id = new_id
    state = obj.__dict__
    for key in column_keys(type(obj)):
        if key not in state:
            setattr(obj, key, None)
    make_transient_to_detached(obj)
    session.add(obj)


def new_object(model: type, **values: Any):
    """A new (transient) ``model`` object with ``values`` and every other column None, as
    :func:`attach_inserted` leaves them, built without the ORM's attribute events.

    For an object its caller INSERTs itself: the constructor records each value set as a
    change, for a flush that never comes (about 40 calls per column of a new request).
    Relationships and later changes work as on any object.
    """
    keys = column_keys(model)
    unknown = values.keys() - set(keys)
    if unknown:
        raise TypeError(f"{model.__name__} has no column {sorted(unknown)[0]!r}")
    obj = model.__mapper__.class_manager.new_instance()
    obj.__dict__.update(dict.fromkeys(keys), **values)
    return obj


@cache
def column_keys(model: type) -> tuple[str, ...]:
    """The names of ``model``'s column attributes (the primary key included)."""
    return tuple(attr.key for attr in sa.inspect(model).column_attrs)
