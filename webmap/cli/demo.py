"""``civicpin demo ...``: the demo city."""

import click

from webmap.cli import Runtime, cli, pass_runtime


@cli.group()
def demo() -> None:
    """Load the demo city, or generate synthetic history for benchmarks."""


@demo.command("load")
@pass_runtime
def demo_load(rt: Runtime) -> None:
    """Load the demo city (Los Angeles, 10,000 real 311 records); idempotent.

    It is built from the files in intake/demo/data: the boundary and zone layers, the
    city file (applied as city apply does) and the records.
    """
    from intake.demo import load_demo

    result = load_demo(rt.sessions(), progress=lambda step: click.echo(f"{step} ...", err=True))
    state = "loaded" if result["created"] else "already loaded, nothing changed"
    click.echo(f"demo city {result['city']}: {state}")
    for key in ("requests", "routed"):
        click.echo(f"  {key}: {result[key]}")
    for layer, zones in result["zones"].items():
        click.echo(f"  zones in {layer}: {zones}")
    for key in ("departments", "crews", "services", "rules", "address_points"):
        click.echo(f"  {key.replace('_', ' ')}: {result[key]}")
    click.echo("next: civicpin serve")
