"""``civicpin db ...``, ``civicpin serve`` and ``civicpin users ...``."""

from __future__ import annotations

import re

import click
import sqlalchemy as sa
from werkzeug.serving import WSGIRequestHandler

from spatial.db import DatabaseError, migrate
from spatial.embedded import EmbeddedCluster
from webmap.cli import Runtime, audit, cli, pass_runtime

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
    app.run(
        host=host,
        port=port,
        debug=debug,
        use_reloader=debug,
        threaded=True,
        request_handler=PathOnlyRequestHandler,
    )


_QUERY_RE = re.compile(r"\?[^\s'\"]*")


class PathOnlyRequestHandler(WSGIRequestHandler):
    """The development server's request log without query strings: private links such
    as a resident's ``/requests/<id>?token=...`` or a password reset link
    (``/login/reset?token=...``) must not be written to logs."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        full = getattr(self, "path", None)
        if full is None:
            self.requestline = _QUERY_RE.sub("", self.requestline)
            return super().log_request(code, size)
        self.path = full.partition("?")[0]
        try:
            super().log_request(code, size)
        finally:
            self.path = full

    def log_error(self, format: str, *args) -> None:
        super().log_error(
            format,
            *(_QUERY_RE.sub("", a) if isinstance(a, str) else a for a in args),
        )


@cli.group()
def users() -> None:
    """Staff accounts."""


@users.command("create")
@click.option("--email", required=True)
@click.option(
    "--role",
    required=True,
    type=click.Choice(
        ["requester", "agent", "dispatcher", "crew", "planner", "admin", "install_admin"]
    ),
    help="admin without --city (or install_admin) administers every city.",
)
@click.option("--city", "city_slug", default=None, help="Jurisdiction slug the user belongs to.")
@click.option("--name", default=None)
@click.option("--password", default=None, help="Initial password (default: prompt, or generated).")
@pass_runtime
def users_create(rt: Runtime, email: str, role: str, city_slug: str | None, name, password) -> None:
    """Create a staff user; prints the generated password if none was given."""
    from spatial.accounts import create_user

    if city_slug is None and role not in ("admin", "install_admin"):
        city_slug = rt.settings.default_city  # CIVICPIN_CITY; None: the only city
    with rt.sessions().begin() as session:
        user, generated = create_user(
            session, email=email, role=role, city_slug=city_slug, name=name, password=password
        )
        what = {"email": user.email, "role": user.role, "name": user.name}
        audit(session, "user.create", "user", user.id, user.jurisdiction_id, **what)
    click.echo(f"created {user.role} {user.email}")
    if generated:
        click.echo(f"password: {generated}")


def _user_by_email(session, email: str):
    from spatial.accounts import validate_email
    from spatial.errors import InvalidInput
    from spatial.models import User

    email = validate_email(email).lower()
    user = session.scalar(sa.select(User).where(sa.func.lower(User.email) == email))
    if user is None:
        raise InvalidInput(f"no user with e-mail {email}", field="email")
    return user


@users.command("password")
@click.option("--email", required=True)
@click.option("--password", default=None, help="The new password (default: generated).")
@pass_runtime
def users_password(rt: Runtime, email: str, password: str | None) -> None:
    """Set a user's password (at least 12 characters, not a common one); ends their sessions.

    Prints the generated password if none was given.
    """
    from spatial.accounts import set_password

    with rt.sessions().begin() as session:
        user = _user_by_email(session, email)
        generated = set_password(user, password)
        audit(session, "user.password", "user", user.id, user.jurisdiction_id, email=user.email)
    click.echo(f"password changed for {user.email}; their sessions are signed out")
    if generated:
        click.echo(f"password: {generated}")


@users.command("reset")
@click.option("--email", required=True)
@pass_runtime
def users_reset(rt: Runtime, email: str) -> None:
    """Mail the user a one-time link to set a new password (valid for an hour).

    Their earlier links stop working; their password stays until they use the link.
    The worker (``civicpin worker``) delivers it.
    """
    from notify.account_mail import send_password_reset
    from spatial.errors import InvalidInput

    with rt.sessions().begin() as session:
        user = _user_by_email(session, email)
        if not user.active:
            raise InvalidInput(f"{user.email} is deactivated: no link is sent", field="email")
        send_password_reset(session, user, rt.settings.public_base_url)
        audit(
            session, "user.password_reset", "user", user.id, user.jurisdiction_id, email=user.email
        )
    click.echo(f"a link to set a new password was queued for {user.email}")


@users.group("totp")
def users_totp() -> None:
    """Two-factor sign-in with an authenticator app (TOTP codes)."""


@users_totp.command("enable")
@click.option("--email", required=True)
@pass_runtime
def users_totp_enable(rt: Runtime, email: str) -> None:
    """Give the user a new two-factor secret; prints the otpauth:// address for their app.

    From then on, sign-in asks for the app's 6-digit code after the password. Running it
    again replaces the secret (a lost phone); either way the user's sessions end.
    """
    from spatial.signin import new_totp_secret, provisioning_uri

    with rt.sessions().begin() as session:
        user = _user_by_email(session, email)
        user.totp_secret = new_totp_secret()
        user.totp_last_step = None
        audit(session, "user.totp_enable", "user", user.id, user.jurisdiction_id, email=user.email)
        uri = provisioning_uri(user.totp_secret, user.email)
    click.echo(f"two-factor sign-in enabled for {user.email}; add this to their authenticator app:")
    click.echo(uri)


@users_totp.command("disable")
@click.option("--email", required=True)
@pass_runtime
def users_totp_disable(rt: Runtime, email: str) -> None:
    """Turn two-factor sign-in off for the user (their sessions end)."""
    with rt.sessions().begin() as session:
        user = _user_by_email(session, email)
        was_on = user.totp_secret is not None
        user.totp_secret = None
        user.totp_last_step = None
        if was_on:
            jid = user.jurisdiction_id
            audit(session, "user.totp_disable", "user", user.id, jid, email=user.email)
    click.echo(
        f"two-factor sign-in disabled for {user.email}"
        if was_on
        else f"two-factor sign-in was not enabled for {user.email}"
    )


@users.command("unlock")
@click.option("--email", required=True)
@pass_runtime
def users_unlock(rt: Runtime, email: str) -> None:
    """End a sign-in lock-out of the account (its failed sign-ins are forgotten).

    A client address stays locked out until its own lock-out ends.
    """
    from spatial.signin import record_success

    with rt.sessions().begin() as session:
        user = _user_by_email(session, email)
        record_success(session, user.email)
        audit(session, "user.unlock", "user", user.id, user.jurisdiction_id, email=user.email)
    click.echo(f"sign-in lock-out ended for {user.email}")
