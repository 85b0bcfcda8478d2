"""``civicpin requests ...``: export and historical import register here."""

import click

from webmap.cli import cli


@cli.group("requests")
def requests_group() -> None:
    """Export requests, or import a historical file."""
