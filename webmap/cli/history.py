"""``civicpin requests import FILE.csv --city SLUG --map ...``: historical import."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

import click

from spatial.cities import validate_slug
from webmap.cli import Runtime, pass_runtime
from webmap.cli.requests import requests_group

UNITS = {"checking": "bytes", "importing": "rows", "routing": "rows"}


class ProgressBar:
    """A progress bar per phase on stderr: redrawn in place on a terminal, one line per
    tenth otherwise (logs and CI)."""

    def __init__(self, stream: TextIO | None = None, width: int = 30):
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = self.stream.isatty()
        self.phase: str | None = None
        self.last_tenth = -1

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase != self.phase:
            if self.phase is not None and self.tty:
                self.stream.write("\n")
            self.phase, self.last_tenth = phase, -1
        share = 1.0 if total <= 0 else min(done / total, 1.0)
        filled = int(share * self.width)
        unit = UNITS.get(phase, "")
        line = (
            f"{phase:<9} [{'#' * filled}{'.' * (self.width - filled)}] {share:4.0%} "
            f"{done:,}/{total:,} {unit}"
        )
        if self.tty:
            self.stream.write("\r" + line)
            if share >= 1.0 and phase == "routing":
                self.stream.write("\n")
        elif int(share * 10) > self.last_tenth:
            self.last_tenth = int(share * 10)
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.phase is not None:
            self.stream.write("\n")
            self.stream.flush()
        self.phase = None


@requests_group.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--city", "city_slug", required=True, help="The city's slug.")
@click.option(
    "--map",
    "column_map",
    required=True,
    metavar="KEY=COLUMN,...",
    help="Columns of the file: id, category and created are required; lat, lon, closed, "
    "status, address, description, channel, first_response, updated and due (the city's "
    "own target date: the SLA due time) are optional.",
)
@click.option(
    "--channel-map",
    default=None,
    metavar="VALUE=CHANNEL,...",
    help="Their channel values as ours, e.g. 'Call=phone,Self Service=web' (channels: "
    "web, mobile, api, email, phone, in_person, mail, import).",
)
@click.option(
    "--default-channel",
    default="import",
    show_default=True,
    help="The channel of rows whose channel value no map names (the report lists them).",
)
@click.option(
    "--tz", default=None, help="Time zone of times without an offset (default: the city's)."
)
@click.option(
    "--category-map",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="JSON object or 2-column CSV mapping their category names to our codes.",
)
@click.option("--create-categories", is_flag=True, help="Create the categories we do not know.")
@click.option("--dry-run", is_flag=True, help="Only check the file and print the report.")
@click.option(
    "--date-format", default=None, help="strftime format of the dates (default: ISO 8601)."
)
@click.option("--encoding", default="utf-8", show_default=True, help="The file's text encoding.")
@click.option(
    "--delimiter", default=",", show_default=True, help="Field separator ('tab' for tabs)."
)
@click.option(
    "--drop-placeholders",
    is_flag=True,
    help="Import rows on placeholder coordinates without a location.",
)
@click.option(
    "--geocode",
    is_flag=True,
    help="Rows with an address and no coordinates: place them with the city's geocoder "
    "(a confident match only; the report counts each match type).",
)
@pass_runtime
def import_requests(
    rt: Runtime,
    file: Path,
    city_slug: str,
    column_map: str,
    tz: str | None,
    category_map: Path | None,
    create_categories: bool,
    dry_run: bool,
    date_format: str | None,
    encoding: str,
    delimiter: str,
    drop_placeholders: bool,
    channel_map: str | None,
    default_channel: str,
    geocode: bool,
) -> None:
    """Import historical requests from FILE.csv, then route them (zones, department, crew)."""
    from intake.history_import import (
        ImportOptions,
        check_channel,
        check_delimiter,
        check_encoding,
        check_timezone,
        import_history,
        load_category_map,
        parse_channel_map,
        parse_column_map,
        read_header,
    )

    # Everything about the input is checked before the database is touched.
    validate_slug(city_slug, "city")
    columns = parse_column_map(column_map)
    if geocode and not columns.get("address"):
        raise click.UsageError("--geocode needs the address column: add address=... to --map")
    opts = ImportOptions(
        path=file,
        columns=columns,
        tz=check_timezone(tz) if tz else None,
        category_map=load_category_map(category_map) if category_map else {},
        create_categories=create_categories,
        drop_placeholders=drop_placeholders,
        date_format=date_format,
        encoding=check_encoding(encoding),
        delimiter=check_delimiter(delimiter),
        channel_map=parse_channel_map(channel_map) if channel_map is not None else {},
        default_channel=check_channel(default_channel),
        geocode=geocode,
    )
    read_header(opts)

    bar = ProgressBar()
    try:
        result = import_history(rt.sessions(), city_slug, opts, dry_run=dry_run, progress=bar)
    finally:
        bar.close()
    click.echo(result.report.text())
    if dry_run:
        click.echo("dry run: nothing was written")
        return
    if result.created_categories:
        click.echo(f"created categories: {', '.join(result.created_categories)}")
    click.echo(
        f"imported {result.imported:,} requests and routed {result.routed or 0:,} "
        f"in {result.seconds:.1f} s ({result.timing()})"
    )
