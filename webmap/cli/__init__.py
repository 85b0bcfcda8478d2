"""The ``civicpin`` command line.

Each command group lives in its own module and registers itself on :data:`cli`.
Every failure is one line on stderr (``civicpin: error: ...``) and a non-zero exit;
commands validate everything before they write anything.
"""

from __future__ import annotations

import sys
from typing import Any

import click
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from spatial.db import DatabaseError, make_engine, make_sessionmaker, resolve_database_url
from spatial.embedded import EmbeddedDatabaseError
from spatial.errors import CivicpinError
from spatial.settings import Settings, SettingsError, load_settings


class Runtime:
    """Lazily built settings, engine and session factory for one CLI invocation."""

    def __init__(self, settings: Settings | None = None):
        self._settings = settings
        self._engine: sa.Engine | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    def engine(self, start: bool = True) -> sa.Engine:
        if self._engine is None:
            self._engine = make_engine(resolve_database_url(self.settings, start=start))
        return self._engine

    def ready_engine(self) -> sa.Engine:
        """The engine of a database migrated to the latest schema, or a one-line error."""
        from spatial.db import ensure_extensions, schema_is_current

        engine = self.engine()
        ensure_extensions(engine)
        if not schema_is_current(engine):
            raise DatabaseError("the database schema is not up to date: run 'civicpin db up'")
        return engine

    def sessions(self) -> sessionmaker[Session]:
        return make_sessionmaker(self.ready_engine())


pass_runtime = click.make_pass_decorator(Runtime, ensure=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="civicpin")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """civicpin: a map-based 311 service-request platform."""
    ctx.ensure_object(Runtime)


USER_ERRORS = (CivicpinError, SettingsError, DatabaseError, EmbeddedDatabaseError)


def audit(
    session: Session, action: str, object_type: str, object_id: Any, jurisdiction: Any, **what: Any
) -> None:
    """Log an admin change made from the command line in the command's transaction (see
    :mod:`spatial.admin_audit`): the actor is ``cli:<OS user>``, ``jurisdiction`` the city
    or its id (None: install-wide)."""
    from spatial.admin_audit import cli_actor, record

    record(session, action, object_type, object_id, city=jurisdiction, actor=cli_actor(), what=what)


def fail(message: str, code: int = 1) -> None:
    click.echo(f"civicpin: error: {message}", err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI, turning every failure into one line."""
    try:
        rv = cli.main(args=argv, prog_name="civicpin", standalone_mode=False)
    except click.exceptions.Abort:
        fail("aborted", 130)
    except click.ClickException as exc:
        fail(exc.format_message().replace("\n", " "), exc.exit_code or 2)
    except USER_ERRORS as exc:
        fail(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    except sa.exc.OperationalError as exc:
        fail(f"database: {str(exc.orig).strip().splitlines()[0]}")
    except KeyboardInterrupt:
        fail("interrupted", 130)
    sys.exit(rv if isinstance(rv, int) else 0)


# Command modules register themselves on ``cli``.
from webmap.cli import (  # noqa: E402,F401,I001
    apikey,
    categories,
    city,
    classify,
    db,
    demo,
    escalation,
    export,
    generate,
    geocode,
    history,
    mail,
    org,
    places,
    privacy,
    projects,
    records,
    requests,
    route,
    zones,
)
