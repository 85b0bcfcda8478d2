"""``civicpin records export``: the public-records export of one city's requests."""

from __future__ import annotations

from pathlib import Path

import click

from records.public_export import (
    check_destination,
    check_period,
    export_public_records,
    parse_day,
)
from spatial.cities import get_city, validate_slug
from webmap.cli import Runtime, cli, pass_runtime


@cli.group("records")
def records_group() -> None:
    """Public records: what the city publishes about requests."""


@records_group.command("export")
@click.option("--city", "slug", required=True, help="The city's slug.")
@click.option("--since", required=True, help="First day of requests, YYYY-MM-DD (local).")
@click.option("--until", required=True, help="Last day of requests, YYYY-MM-DD (local).")
@click.option("--out", required=True, help="The .zip file to write.")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@pass_runtime
def records_export(rt: Runtime, slug: str, since: str, until: str, out: str, force: bool) -> None:
    """Write the requests made from --since to --until (CSV and GeoJSON), their public
    events and public photos, and a manifest of what was withheld and why, to --out.

    Personal data never leaves: no contact details, no answers to the category's
    questions, no internal notes; e-mail addresses and phone numbers in texts are removed.
    """
    period = check_period(parse_day(since, "since"), parse_day(until, "until"))
    destination = check_destination(Path(out), force=force)
    with rt.sessions()() as session:
        # One snapshot for every query: the manifest counts the rows the zip holds.
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        city = get_city(session, validate_slug(slug, "city"))
        manifest = export_public_records(
            session, city, period, destination, rt.settings.media_dir, force=force
        )
        session.rollback()
    counts = manifest["counts"]
    withheld = {w["what"]: w["count"] for w in manifest["withheld"]}
    left_out = withheld["requests in private categories"] + withheld["requests held for review"]
    click.echo(
        f"wrote {destination}: {counts['requests']} requests, {counts['events']} public "
        f"events, {counts['photos']} photos; {left_out} requests withheld "
        "(see manifest.json)"
    )
