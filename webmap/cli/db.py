"""``civicpin db ...``, ``civicpin serve`` and ``civicpin users ...``."""

from __future__ import annotations

import click
import sqlalchemy as sa

from spatial.db import DatabaseError, migrate
from spatial.embedded import EmbeddedCluster
from webmap.cli import Runtime, cli, pass_runtime

STATUS_TABLES = (
    ("jurisdictions", "jurisdiction"),
    ("zone_layers", "zone_layer"),
    ("zones", "zone"),
    ("services", "service"),
    ("requests", "service_request"),
    ("users", "app_user"),
)


@cli.group()
def db() -> None:
    """Start, migrate, inspect and stop the database."""


@db.command("up")
@pass_runtime
def db_up(rt: Runtime) -> None:
    """Start the embedded cluster if needed and migrate to the latest schema."""
    engine = rt.engine(start=True)
    migrate(engine)
    where = "embedded cluster" if not rt.settings.database_url else "DATABASE_URL"
    click.echo(f"database ready ({where}, schema at head)")


@db.command("status")
@pass_runtime
def db_status(rt: Runtime) -> None:
    """Print one 'name: count' line per main table."""
    engine = rt.ready_engine()
    with engine.connect() as conn:
        for label, table in STATUS_TABLES:
            n = conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()  # noqa: S608
            click.echo(f"{label}: {n}")


@db.command("stop")
@pass_runtime
def db_stop(rt: Runtime) -> None:
    """Stop the embedded cluster (does nothing to an external DATABASE_URL)."""
    if rt.settings.database_url:
        raise DatabaseError("DATABASE_URL is set: civicpin does not manage that server")
    cluster = EmbeddedCluster(rt.settings.var_dir)
    if not cluster.exists():
        click.echo("embedded database does not exist; nothing to stop")
        return
    click.echo(
        "embedded database stopped" if cluster.stop() else "embedded database was not running"
    )


@cli.command("serve")
@click.option("--host", default=None, help="Interface to bind (default: HOST or 127.0.0.1).")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="Port (default: PORT or 5000)."
)
@click.option("--debug", is_flag=True, help="Flask development server with reloader.")
@pass_runtime
def serve(rt: Runtime, host: str | None, port: int | None, debug: bool) -> None:
    """Serve the web app (threaded development server; use gunicorn in production)."""
    from webmap.app import create_app

    settings = rt.settings
    host = host or settings.host
    port = port or settings.port
    app = create_app(settings, engine=rt.ready_engine())
    click.echo(f"civicpin serving on http://{host}:{port}/ (Ctrl-C to stop)")
    app.run(host=host, port=port, debug=debug, use_reloader=debug, threaded=True)


@cli.group()
def users() -> None:
    """Staff accounts."""


@users.command("create")
@click.option("--email", required=True)
@click.option(
    "--role",
    required=True,
    type=click.Choice(["agent", "dispatcher", "crew", "planner", "admin", "install_admin"]),
    help="admin without --city (or install_admin) administers every city.",
)
@click.option("--city", "city_slug", default=None, help="Jurisdiction slug the user belongs to.")
@click.option("--name", default=None)
@click.option("--password", default=None, help="Initial password (default: prompt, or generated).")
@pass_runtime
def users_create(rt: Runtime, email: str, role: str, city_slug: str | None, name, password) -> None:
    """Create a staff user; prints the generated password if none was given."""
    from spatial.accounts import create_user

    with rt.sessions().begin() as session:
        user, generated = create_user(
            session, email=email, role=role, city_slug=city_slug, name=name, password=password
        )
    click.echo(f"created {user.role} {user.email}")
    if generated:
        click.echo(f"password: {generated}")
