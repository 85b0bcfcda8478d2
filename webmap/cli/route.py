"""``civicpin route``: re-route a city's requests in bulk with the published rules."""

from __future__ import annotations

from datetime import date

import click

from spatial.cities import get_city, validate_slug
from spatial.db import session_scope
from spatial.errors import InvalidInput
from webmap.cli import Runtime, cli, pass_runtime


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
@pass_runtime
def route(rt: Runtime, city_slug: str, since: str | None) -> None:
    """Re-route the city's requests with its published rules (set-based SQL)."""
    validate_slug(city_slug, "city")
    since_day = parse_day(since, "--since")
    from routing.engine import route_bulk

    def progress(done: int, total: int) -> None:
        click.echo(f"\rrouting: {done:,}/{total:,}", err=True, nl=False)

    with session_scope(rt.sessions()) as session:
        city = get_city(session, city_slug)
        n = route_bulk(session, city, since=since_day, progress=progress)
    click.echo("", err=True)
    click.echo(f"routed {n} requests")
