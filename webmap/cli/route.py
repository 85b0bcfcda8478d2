"""``civicpin route``: re-route a city's requests in bulk with the published rules."""

from __future__ import annotations

from datetime import date

import click

from spatial.cities import get_city, validate_slug
from spatial.db import session_scope
from spatial.errors import InvalidInput
from webmap.cli import Runtime, audit, cli, pass_runtime


def parse_day(value: str | None, option: str) -> date | None:
    """``YYYY-MM-DD`` as a date, or a one-line error naming ``option``."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(f"{option} {value!r} is not a date YYYY-MM-DD", field=option) from None


@cli.command("route")
@click.option("--city", "city_slug", required=True, help="The city's slug.")
@click.option(
    "--since",
    default=None,
    help="Only requests made on or after YYYY-MM-DD (the city's local midnight).",
)
@click.option(
    "--include-closed",
    is_flag=True,
    help="Re-route closed requests too (by default they keep the decision they closed with).",
)
@pass_runtime
def route(rt: Runtime, city_slug: str, since: str | None, include_closed: bool) -> None:
    """Re-route the city's open requests with its published rules (set-based SQL).

    Each request moved to another department, crew or zone gets an internal "rerouted"
    event in its history, and the run itself goes to the admin audit log."""
    validate_slug(city_slug, "city")
    since_day = parse_day(since, "--since")
    from routing.engine import reroute
    from spatial.admin_audit import cli_actor

    def progress(done: int, total: int) -> None:
        click.echo(f"\rrouting: {done:,}/{total:,}", err=True, nl=False)

    with session_scope(rt.sessions()) as session:
        city = get_city(session, city_slug)
        result = reroute(
            session,
            city,
            since=since_day,
            progress=progress,
            include_closed=include_closed,
            by=cli_actor(),
        )
        what = {"since": since_day, "include_closed": include_closed, "routed": result.routed}
        audit(session, "requests.reroute", "city", city.slug, city, moved=result.moved, **what)
    click.echo("", err=True)
    closed = "" if include_closed else " (closed requests left as they were)"
    click.echo(
        f"routed {result.routed} requests{closed}; {result.moved} moved to another team or zone"
    )
