"""``civicpin addresses|streets|assets ...``: the city's reference places from files.

The same import functions as the admin page (:mod:`places.importers`). An import checks
every row; with bad rows it writes nothing unless ``--skip-bad`` is given.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from webmap.cli import Runtime, audit, cli, pass_runtime


def _options(fn: Callable) -> Callable:
    """The options every import shares."""
    for option in reversed(
        [
            click.option("--city", "city_slug", default=None, help="City slug."),
            click.option(
                "--layer-name",
                "file_layer",
                default=None,
                help="The GeoPackage layer to read (default: the first).",
            ),
            click.option("--dry-run", is_flag=True, help="Read and check; write nothing."),
            click.option(
                "--skip-bad", is_flag=True, help="Import the good rows and report the bad ones."
            ),
        ]
    ):
        fn = option(fn)
    return fn


@contextmanager
def _progress(file: Path):
    """``(on_open, progress)`` callbacks drawing a bar on stderr when it is a terminal."""
    state: dict[str, Any] = {}

    def on_open(source) -> None:
        if not sys.stderr.isatty():
            return
        total = source.total
        if total is None:
            with open(file, "rb") as f:
                total = max(sum(1 for _ in f) - 1, 0)
        bar = click.progressbar(length=total, label=f"reading {file.name}", file=sys.stderr)
        state["bar"] = bar.__enter__()

    def progress(n: int) -> None:
        if "bar" in state:
            state["bar"].update(n)

    try:
        yield on_open, progress
    finally:
        if "bar" in state:
            state["bar"].__exit__(None, None, None)


def _run_import(rt: Runtime, city_slug: str | None, dry_run: bool, run: Callable) -> None:
    """Run one import in a transaction; print its report; commit unless a dry run."""
    from places.importers import BadRows
    from spatial.cities import city_for_cli

    with rt.sessions()() as session:
        target = city_for_cli(session, city_slug, rt.settings.default_city)
        try:
            report = run(session, target)
        except BadRows as exc:
            session.rollback()
            for line in exc.report.lines():
                click.echo(line)
            raise
        if dry_run:
            session.rollback()
        else:
            what: dict[str, Any] = {
                "file": report.source_name,
                "version": report.version,
                "rows": report.rows_written,
                "bad": report.rows_bad,
            }
            if report.layer:
                what["layer"] = report.layer
            audit(session, f"{report.kind}.import", "place_dataset", None, target, **what)
            session.commit()
    for line in report.lines():
        click.echo(line)


def _mapping(text: str) -> dict[str, str]:
    from places.importers import parse_mapping

    return parse_mapping(text)


@cli.group()
def addresses() -> None:
    """The city's address points (its address file)."""


@addresses.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--map",
    "map_text",
    required=True,
    help="number=COL,street=COL[,unit=COL,zip=COL,id=COL,suffix=COL,lat=COL,lon=COL]; "
    "address=COL instead of number and street when one column holds the whole address; "
    "COL1+COL2 joins columns (street=PREDIR+NAME+TYPE).",
)
@_options
@pass_runtime
def addresses_import(
    rt: Runtime,
    file: Path,
    map_text: str,
    city_slug: str | None,
    file_layer: str | None,
    dry_run: bool,
    skip_bad: bool,
) -> None:
    """Import FILE as the city's address points (a new version replacing the current one).

    FILE: CSV, GeoJSON, Shapefile (.shp or a .zip holding one) or GeoPackage."""
    from places.importers import import_addresses
    from spatial.admin_audit import cli_actor

    mapping = _mapping(map_text)
    with _progress(file) as (on_open, progress):
        _run_import(
            rt,
            city_slug,
            dry_run,
            lambda session, city: import_addresses(
                session,
                city,
                file,
                mapping,
                imported_by=cli_actor(),
                file_layer=file_layer,
                dry_run=dry_run,
                skip_bad=skip_bad,
                progress=progress,
                on_open=on_open,
            ),
        )


@cli.group()
def streets() -> None:
    """The city's street centrelines with address ranges, and their intersections."""


@streets.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--map",
    "map_text",
    required=True,
    help="name=COL[,from_left=COL,to_left=COL,from_right=COL,to_right=COL,zip_left=COL,"
    "zip_right=COL,id=COL] (wkt=COL for a CSV); COL1+COL2 joins columns.",
)
@_options
@pass_runtime
def streets_import(
    rt: Runtime,
    file: Path,
    map_text: str,
    city_slug: str | None,
    file_layer: str | None,
    dry_run: bool,
    skip_bad: bool,
) -> None:
    """Import FILE as the city's streets (a new version) and derive the intersections.

    FILE: CSV, GeoJSON, Shapefile (.shp or a .zip holding one) or GeoPackage."""
    from places.importers import import_streets
    from spatial.admin_audit import cli_actor

    mapping = _mapping(map_text)
    with _progress(file) as (on_open, progress):
        _run_import(
            rt,
            city_slug,
            dry_run,
            lambda session, city: import_streets(
                session,
                city,
                file,
                mapping,
                imported_by=cli_actor(),
                file_layer=file_layer,
                dry_run=dry_run,
                skip_bad=skip_bad,
                progress=progress,
                on_open=on_open,
            ),
        )


@cli.group()
def assets() -> None:
    """Things people report against: street lights, trees, hydrants, signs."""


@assets.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--layer", "layer", required=True, help="The layer's code, e.g. streetlights.")
@click.option("--id-field", required=True, help="The column of the city's id (pole number).")
@click.option(
    "--label-field",
    default=None,
    help="The column of the label people read, or a text naming columns in braces "
    "('Pole {PoleID}, {Intersection}').",
)
@click.option("--title", default=None, help="The layer's title ('Street light').")
@click.option("--lat-field", default=None, help="A CSV's latitude column (default: lat...).")
@click.option("--lon-field", default=None, help="A CSV's longitude column (default: lon...).")
@_options
@pass_runtime
def assets_import(
    rt: Runtime,
    file: Path,
    layer: str,
    id_field: str,
    label_field: str | None,
    title: str | None,
    lat_field: str | None,
    lon_field: str | None,
    city_slug: str | None,
    file_layer: str | None,
    dry_run: bool,
    skip_bad: bool,
) -> None:
    """Import FILE's points as the assets of a layer (created if new; a new version).

    The other columns become each asset's attributes, as text (routing rules may use
    them). FILE: CSV, GeoJSON, Shapefile (.shp or a .zip holding one) or GeoPackage."""
    from places.importers import import_assets
    from spatial.admin_audit import cli_actor

    with _progress(file) as (on_open, progress):
        _run_import(
            rt,
            city_slug,
            dry_run,
            lambda session, city: import_assets(
                session,
                city,
                file,
                layer=layer,
                id_field=id_field,
                label_field=label_field,
                title=title,
                lat_field=lat_field,
                lon_field=lon_field,
                imported_by=cli_actor(),
                file_layer=file_layer,
                dry_run=dry_run,
                skip_bad=skip_bad,
                progress=progress,
                on_open=on_open,
            ),
        )


def _version_lines(sets) -> list[str]:
    out = []
    for i, d in enumerate(sets):
        out.append(
            f"{'*' if i == 0 else ' '} v{d.version}\t{d.rows_written:,} rows\t"
            f"{d.rows_bad:,} bad\t{d.imported_at:%Y-%m-%d %H:%M} UTC\t{d.imported_by}\t"
            f"{d.source_name}"
        )
    return out


def _list(rt: Runtime, city_slug: str | None, kind: str) -> None:
    from places.store import datasets
    from spatial.cities import city_for_cli

    with rt.sessions()() as session:
        target = city_for_cli(session, city_slug, rt.settings.default_city)
        sets = datasets(session, target, kind)
        if not sets:
            click.echo(f"{target.slug}: no {kind} imported")
            return
        click.echo(f"{target.slug} {kind}: version {sets[0].version} is current (*)")
        for line in _version_lines(sets):
            click.echo(line)


@addresses.command("list")
@click.option("--city", "city_slug", default=None, help="City slug.")
@pass_runtime
def addresses_list(rt: Runtime, city_slug: str | None) -> None:
    """The versions of the city's address points: counts, when, by whom, which file."""
    _list(rt, city_slug, "addresses")


@streets.command("list")
@click.option("--city", "city_slug", default=None, help="City slug.")
@pass_runtime
def streets_list(rt: Runtime, city_slug: str | None) -> None:
    """The versions of the city's streets: counts, when, by whom, which file."""
    _list(rt, city_slug, "streets")


@assets.command("list")
@click.option("--city", "city_slug", default=None, help="City slug.")
@pass_runtime
def assets_list(rt: Runtime, city_slug: str | None) -> None:
    """The city's asset layers: title, assets, current version, and every version."""
    from places.store import asset_count, asset_layers, datasets
    from spatial.cities import city_for_cli

    with rt.sessions()() as session:
        target = city_for_cli(session, city_slug, rt.settings.default_city)
        layers = asset_layers(session, target)
        if not layers:
            click.echo(f"{target.slug}: no asset layers")
            return
        for layer in layers:
            sets = datasets(session, target, "assets", layer)
            current = f"version {sets[0].version}" if sets else "no version"
            click.echo(
                f"{layer.name}\t{layer.title}\t{asset_count(session, layer):,} assets\t{current}"
            )
            for line in _version_lines(sets):
                click.echo("  " + line)


@assets.command("set")
@click.argument("layer")
@click.option("--city", "city_slug", default=None, help="City slug.")
@click.option("--title", required=True, help="The layer's new title.")
@pass_runtime
def assets_set(rt: Runtime, layer: str, city_slug: str | None, title: str) -> None:
    """Give LAYER a new title."""
    from places.store import asset_layer, set_layer_title
    from spatial.cities import city_for_cli

    with rt.sessions().begin() as session:
        target = city_for_cli(session, city_slug, rt.settings.default_city)
        found = asset_layer(session, target, layer)
        old = set_layer_title(session, found, title)
        audit(session, "asset_layer.update", "asset_layer", found.id, target, name=layer,
              title=[old, found.title])  # fmt: skip
    click.echo(f"asset layer {layer}: title {old!r} -> {title.strip()!r}")


@assets.command("remove")
@click.argument("layer")
@click.option("--city", "city_slug", default=None, help="City slug.")
@pass_runtime
def assets_remove(rt: Runtime, layer: str, city_slug: str | None) -> None:
    """Remove LAYER and its assets (refused while a category uses it)."""
    from places.store import asset_layer, remove_layer
    from spatial.cities import city_for_cli

    with rt.sessions().begin() as session:
        target = city_for_cli(session, city_slug, rt.settings.default_city)
        found = asset_layer(session, target, layer)
        layer_id = found.id
        removed = remove_layer(session, found)
        audit(session, "asset_layer.remove", "asset_layer", layer_id, target, name=layer,
              assets=removed)  # fmt: skip
    click.echo(f"asset layer {layer} removed with its {removed:,} assets")
