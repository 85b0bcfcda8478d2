"""``civicpin geocode --city SLUG "TEXT"``: the geocoder's candidates, best first."""

from __future__ import annotations

import json

import click

from webmap.cli import Runtime, cli, fail, pass_runtime


def _tsv(value: str) -> str:
    # A tab or line break inside a field would break the line into false columns.
    return " ".join(value.split())


@cli.command("geocode")
@click.option("--city", "city_slug", default=None, help="The city's slug.")
@click.option(
    "--limit",
    type=click.IntRange(1, 50),
    default=5,
    show_default=True,
    help="At most this many candidates.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of lines.")
@click.argument("text")
@pass_runtime
def geocode(rt: Runtime, city_slug: str | None, limit: int, as_json: bool, text: str) -> None:
    """Look TEXT up in the city: one tab-separated line per candidate, best first
    (score, match_type, lat, lon, address). Exits 1 when no candidate is confident."""
    from places.geocoder import GeocodeRefused
    from places.geocoder import geocode as look_up
    from spatial.cities import city_for_cli

    with rt.sessions()() as session:
        city = city_for_cli(session, city_slug, rt.settings.default_city)
        try:
            result = look_up(session, city, text, limit=limit)
        except GeocodeRefused as exc:
            fail(str(exc), 2)
            return
        session.rollback()
    best = result.confident
    if as_json:
        click.echo(
            json.dumps(
                {
                    "query": result.query,
                    "confident": best is not None,
                    "candidates": [c.as_json() for c in result.candidates],
                }
            )
        )
    else:
        for c in result.candidates:
            click.echo(
                f"{c.score:.3f}\t{c.match_type}\t{c.lat:.7f}\t{c.lon:.7f}\t{_tsv(c.address)}"
            )
    if best is None:
        if result.candidates:
            top = result.candidates[0]
            fail(
                f'no confident match for "{result.query}"; best: {_tsv(top.address)} '
                f"({top.match_type}, score {top.score:.3f})"
            )
        fail(f'no match for "{result.query}"')
