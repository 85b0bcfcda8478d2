"""``civicpin requests ...``: export and historical import register here."""

from webmap.cli import cli


@cli.group("requests")
def requests_group() -> None:
    """Export requests, or import a historical file."""
