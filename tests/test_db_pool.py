"""The app engine's pool: a connection the server dropped while it sat idle in the pool
is replaced at checkout, without a ping on every checkout."""

import pytest
import sqlalchemy as sa

import spatial.db as db
from spatial.models import ServiceRequest


def _drop_other_backends(admin: sa.Engine, db_name: str) -> int:
    with admin.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = :d AND pid <> pg_backend_pid()"
            ),
            {"d": db_name},
        ).scalar_one()


def _pooled_connection_was_dropped(db_url: str) -> sa.Engine:
    engine = db.make_engine(db_url, pool_size=1, max_overflow=0)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
    admin = db.make_engine(db_url, poolclass=sa.pool.NullPool)
    try:
        assert _drop_other_backends(admin, engine.url.database) == 1
    finally:
        admin.dispose()
    return engine


def test_a_connection_dropped_while_idle_is_replaced(db_url, monkeypatch):
    monkeypatch.setattr(db, "IDLE_CHECK_S", 0.0)
    engine = _pooled_connection_was_dropped(db_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 2")).scalar_one() == 2
    finally:
        engine.dispose()


def test_a_busy_pool_is_not_pinged(db_url, monkeypatch):
    """Within IDLE_CHECK_S of its last use a connection is handed out as it is: a
    connection dropped that recently fails its first statement (and the pool then
    replaces it), which shows that no ping ran."""
    monkeypatch.setattr(db, "IDLE_CHECK_S", 3600.0)
    engine = _pooled_connection_was_dropped(db_url)
    try:
        with pytest.raises(sa.exc.OperationalError), engine.connect() as conn:
            conn.execute(sa.text("SELECT 3"))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 4")).scalar_one() == 4
    finally:
        engine.dispose()


def test_driver_statements_raise_sqlalchemy_errors_and_drop_dead_connections(db_url):
    engine = db.make_engine(db_url, pool_size=1, max_overflow=0)
    sessions = db.make_sessionmaker(engine)
    try:
        with sessions() as s:
            with pytest.raises(sa.exc.ProgrammingError):
                db.driver_execute(s, "SELECT * FROM no_such_table WHERE id = %(i)s", {"i": 1})
            s.rollback()
            row = db.driver_execute(s, "SELECT %(i)s::int AS answer", {"i": 42}).fetchone()
            assert row.answer == 42
            admin = db.make_engine(db_url, poolclass=sa.pool.NullPool)
            try:
                assert _drop_other_backends(admin, engine.url.database) == 1
            finally:
                admin.dispose()
            with pytest.raises(sa.exc.OperationalError):
                db.driver_execute(s, "SELECT %(i)s::int AS answer", {"i": 1})
        # the dead connection was dropped from the pool: the next session gets a live one
        with sessions() as s:
            assert db.driver_execute(s, "SELECT 7 AS n", {}).fetchone().n == 7
    finally:
        engine.dispose()


def test_new_object_has_its_values_every_other_column_none_and_no_pending_changes():
    obj = db.new_object(ServiceRequest, public_id="TV-2026-000001", status="new")
    assert (obj.public_id, obj.status, obj.contact_email, obj.id) == (
        "TV-2026-000001",
        "new",
        None,
        None,
    )
    assert sa.inspect(obj).transient
    obj.status = "closed"  # later changes are tracked as on any object
    assert sa.inspect(obj).attrs.status.history.added == ["closed"]
    with pytest.raises(TypeError, match="no column 'publicid'"):
        db.new_object(ServiceRequest, publicid="x")
