"""Test fixtures: one real PostGIS cluster per run, a migrated template database, and a
fresh copy of it per test (``db_url``) or per module (``demo_db_url``, with the demo city).

The cluster is started by the same embedded launcher the product uses, in a temporary
folder, so these tests also prove that the launcher works on this machine.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from spatial.db import make_engine, make_sessionmaker, migrate
from spatial.embedded import DB_USER, DRIVER, EmbeddedCluster
from spatial.settings import PROJECT_ROOT, Settings

TEMPLATE = "civicpin_template"
DEMO_TEMPLATE = "civicpin_demo_template"
_counter = itertools.count()


class PgServer:
    def __init__(self, cluster: EmbeddedCluster):
        self.cluster = cluster
        st = cluster.state()
        self.port = st["port"]
        self.password = st["password"]

    def url(self, dbname: str) -> str:
        return f"{DRIVER}://{DB_USER}:{self.password}@127.0.0.1:{self.port}/{dbname}"

    def admin(self):
        conn = psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=DB_USER,
            password=self.password,
            dbname="postgres",
        )
        conn.autocommit = True
        return conn

    def create_db(self, name: str, template: str | None = None) -> str:
        self._sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if template:
            self._sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        else:
            self._sql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def _sql(self, statement: str) -> None:
        conn = self.admin()
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()

    def drop_db(self, name: str) -> None:
        self._sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg() -> PgServer:
    """A real PostgreSQL + PostGIS server for the whole run, via the embedded launcher."""
    base = Path(tempfile.mkdtemp(prefix="civicpin-test-"))
    os.chmod(base, 0o755)  # the server may run as the postgres user
    cluster = EmbeddedCluster(base / "var")
    cluster.start()
    server = PgServer(cluster)
    url = server.create_db(TEMPLATE)
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    migrate(engine)
    engine.dispose()
    yield server
    cluster.stop()
    shutil.rmtree(base, ignore_errors=True)


def _fresh_db(pg: PgServer, template: str, prefix: str):
    name = f"{prefix}_{os.getpid()}_{next(_counter)}"
    url = pg.create_db(name, template=template)
    return name, url


@pytest.fixture
def db_url(pg: PgServer):
    """A fresh, migrated, empty database for one test."""
    name, url = _fresh_db(pg, TEMPLATE, "t")
    yield url
    pg.drop_db(name)


@pytest.fixture
def engine(db_url):
    eng = make_engine(db_url, poolclass=sa.pool.NullPool)
    yield eng
    eng.dispose()


@pytest.fixture
def sessions(engine):
    return make_sessionmaker(engine)


def module_database(prefix: str):
    """The ``db_url``, ``engine``, ``sessions``, ``settings`` and ``app`` fixtures for one
    database shared by every test of a module (each test makes its own rows); assign them
    at the module's top level: ``db_url, engine, sessions, settings, app =
    module_database("crewmail")``."""

    @pytest.fixture(scope="module")
    def db_url(pg):
        name, url = _fresh_db(pg, TEMPLATE, prefix)
        yield url
        pg.drop_db(name)

    @pytest.fixture(scope="module")
    def engine(db_url):
        eng = make_engine(db_url, poolclass=sa.pool.NullPool)
        yield eng
        eng.dispose()

    @pytest.fixture(scope="module")
    def sessions(engine):
        return make_sessionmaker(engine)

    @pytest.fixture(scope="module")
    def settings(tmp_path_factory, db_url):
        return make_settings(tmp_path_factory.mktemp(prefix), db_url)

    @pytest.fixture(scope="module")
    def app(settings, engine):
        from webmap.app import create_app

        application = create_app(settings, engine=engine)
        application.config["TESTING"] = True
        return application

    return db_url, engine, sessions, settings, app


@pytest.fixture(scope="session")
def demo_template(pg: PgServer) -> str:
    """A template database holding the loaded and routed demo city (built once)."""
    from intake.demo import load_demo

    url = pg.create_db(DEMO_TEMPLATE, template=TEMPLATE)
    eng = make_engine(url, poolclass=sa.pool.NullPool)
    load_demo(make_sessionmaker(eng))
    eng.dispose()
    return DEMO_TEMPLATE


@pytest.fixture(scope="module")
def demo_db_url(pg: PgServer, demo_template: str):
    """A module-wide copy of the demo city database (tests may change it)."""
    name, url = _fresh_db(pg, demo_template, "demo")
    yield url
    pg.drop_db(name)


@pytest.fixture
def sink():
    """A real SMTP server on loopback (aiosmtpd) that keeps what it receives."""
    from tests.support.mail import Sink

    server = Sink().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def demo_engine(demo_db_url):
    eng = make_engine(demo_db_url, poolclass=sa.pool.NullPool)
    yield eng
    eng.dispose()


def make_settings(tmp: Path, database_url: str, **kw) -> Settings:
    var = tmp / "var"
    var.mkdir(parents=True, exist_ok=True)
    return Settings(
        database_url=database_url,
        secret_key="test-secret-key-0123456789",
        var_dir=var,
        media_dir=var / "media",
        public_base_url="http://127.0.0.1:5000",
        tile_url="none",
        **kw,
    )


@pytest.fixture
def settings(tmp_path, db_url) -> Settings:
    return make_settings(tmp_path, db_url)


@pytest.fixture
def app(settings, engine):
    from webmap.app import create_app

    application = create_app(settings, engine=engine)
    application.config["TESTING"] = True
    return application


@pytest.fixture
def client(app):
    return app.test_client()


def run_cli(args: list[str], env: dict | None = None, cwd: Path | None = None, timeout=600):
    """Run the real ``civicpin`` command in a subprocess; returns CompletedProcess."""
    full_env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "VAR_DIR"}}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "webmap.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or PROJECT_ROOT,
        timeout=timeout,
    )


@pytest.fixture
def cli(db_url, tmp_path):
    """Run ``civicpin`` against this test's fresh database."""

    def _run(*args: str, env: dict | None = None):
        e = {"DATABASE_URL": db_url, "VAR_DIR": str(tmp_path / "var")}
        e.update(env or {})
        return run_cli(list(args), env=e)

    return _run
