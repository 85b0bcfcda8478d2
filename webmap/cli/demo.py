"""``civicpin demo ...``: the demo cities."""

from typing import Any

import click

from webmap.cli import Runtime, cli, pass_runtime


@cli.group()
def demo() -> None:
    """Load the demo cities, or generate synthetic history for benchmarks."""


def _report(result: dict[str, Any]) -> None:
    state = "loaded" if result["created"] else "already loaded, nothing changed"
    click.echo(f"demo city {result['city']}: {state}")
    for key in ("requests", "routed"):
        click.echo(f"  {key}: {result[key]}")
    for layer, zones in result["zones"].items():
        click.echo(f"  zones in {layer}: {zones}")
    for key in ("departments", "crews", "services", "rules", "address_points"):
        click.echo(f"  {key.replace('_', ' ')}: {result[key]}")
    if result["street_segments"]:
        click.echo(f"  street segments: {result['street_segments']}")
        click.echo(f"  intersections: {result['intersections']}")
    for layer, assets in result["assets"].items():
        click.echo(f"  assets in {layer}: {assets}")


@demo.command("load")
@pass_runtime
def demo_load(rt: Runtime) -> None:
    """Load the demo cities; idempotent (a city already there is left as it is).

    Los Angeles (10,000 real 311 records, the default city) and Cambridge, MA (street
    centrelines with address ranges, 6,117 street lights, no records), each built from the
    files in intake/demo/data/<city>: the boundary and zone layers, the streets and assets,
    the city file (applied as city apply does) and the records.
    """
    from intake.demo import load_demo

    result = load_demo(rt.sessions(), progress=lambda step: click.echo(f"{step} ...", err=True))
    cities = [result, *result["other_cities"]]
    for city in cities:
        _report(city)
    others = ", ".join(f"{c['name']} at /c/{c['city']}/" for c in cities[1:])
    click.echo(f"next: civicpin serve ({result['name']} at /{', ' + others if others else ''})")
