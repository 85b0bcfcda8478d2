"""``civicpin demo generate``: synthetic request history for benchmarks."""

from __future__ import annotations

import click

from webmap.cli import Runtime, pass_runtime
from webmap.cli.demo import demo


@demo.command("generate")
@click.option(
    "--requests",
    "count",
    required=True,
    metavar="N",
    help="How many requests to write (1 to 20,000,000).",
)
@click.option("--city", "city_slug", default=None, help="City slug (default: the only city).")
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Random seed, to repeat a run (default: random, printed).",
)
@click.option("--no-route", is_flag=True, help="Skip routing the new requests.")
@pass_runtime
def generate(
    rt: Runtime, count: str, city_slug: str | None, seed: int | None, no_route: bool
) -> None:
    """Write N synthetic requests over the last 3 years, clustered like the real ones."""
    from intake.generate import generate_requests, parse_count, parse_seed

    # Checked before the database is touched, so bad input costs nothing.
    n = parse_count(count)
    parse_seed(seed)

    def progress(done: int, total: int, seconds: float) -> None:
        click.echo(f"generated {done}/{total} ({seconds:.1f} s)", err=True)

    result = generate_requests(
        rt.sessions(),
        city_slug,
        n,
        seed=seed,
        route=not no_route,
        progress=progress,
        log=lambda message: click.echo(message, err=True),
    )
    click.echo(f"generated {result.count} requests for {result.slug} in {result.seconds:.1f} s")
