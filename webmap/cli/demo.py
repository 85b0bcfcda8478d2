"""``civicpin demo ...``: the demo city."""

import click

from webmap.cli import cli


@cli.group()
def demo() -> None:
    """Load the demo city, or generate synthetic history for benchmarks."""
