"""``civicpin zones ...``: import zone layers and list them."""

from __future__ import annotations

from pathlib import Path

import click
import sqlalchemy as sa

from spatial.models import Zone, ZoneLayer
from webmap.cli import Runtime, audit, cli, pass_runtime


@cli.group()
def zones() -> None:
    """Zone layers (council areas, crew districts, ...) used for routing and reports."""


@zones.command("import")
@click.argument("file", type=click.Path(exists=True, path_type=Path))
@click.option("--city", "city_slug", default=None, help="City slug (default: the only city).")
@click.option("--layer", "layer_name", required=True, help="Layer name, e.g. crew-districts.")
@click.option(
    "--code-field",
    default=None,
    help="Attribute holding the zone code (needed unless one is called code, id or *_id).",
)
@click.option("--name-field", default=None, help="Attribute holding the zone name.")
@click.option("--population-field", default=None, help="Attribute holding the population.")
@click.option("--title", default=None, help="Human title of the layer.")
@click.option("--source-layer", default=None, help="Layer to read from a multi-layer GeoPackage.")
@click.option(
    "--join-parts",
    is_flag=True,
    help="Features sharing a code are parts of one zone: join them (else it is an error).",
)
@click.option(
    "--draft",
    is_flag=True,
    help="Keep the new version out of routing until 'civicpin zones publish'.",
)
@pass_runtime
def zones_import(
    rt: Runtime,
    file: Path,
    city_slug: str | None,
    layer_name: str,
    code_field: str | None,
    name_field: str | None,
    population_field: str | None,
    title: str | None,
    source_layer: str | None,
    join_parts: bool,
    draft: bool,
) -> None:
    """Import FILE (GeoJSON, Shapefile folder/.shp/.zip, GeoPackage) as a new layer version.

    Invalid polygons are repaired; the report lists repairs, overlaps, gaps and zones
    reaching outside the city. A current version is then given to every request by the
    worker ('civicpin worker'), which re-routes the open ones.
    """
    from routing.rules import layer_made_current
    from spatial.admin_audit import cli_actor
    from spatial.cities import city_for_cli
    from spatial.zones import import_layer, layer_report_text

    with rt.sessions().begin() as session:
        target = city_for_cli(session, city_slug, rt.settings.default_city)
        result = import_layer(
            session,
            target,
            file,
            layer_name,
            code_field=code_field,
            name_field=name_field,
            title=title,
            source_layer=source_layer,
            population_field=population_field,
            draft=draft,
            join_parts=join_parts,
        )
        layer = result.layer
        if not draft:
            layer_made_current(session, target, layer, cli_actor())
        what = {"name": layer.name, "version": layer.version, "zones": result.report.get("zones")}
        audit(
            session, "layer.import", "zone_layer", layer.id, target, file=file.name, draft=draft,
            **what,
        )  # fmt: skip
        head = (
            f"imported layer {result.layer.name} v{result.layer.version}: "
            f"{result.report['zones']} zones"
            + (" (draft: not current until published)" if draft else "")
        )
    click.echo(head)
    for line in layer_report_text(result.report):
        click.echo(line)
    if not draft:
        click.echo("the worker gives every request its zone in it and re-routes the open ones")


@zones.command("publish")
@click.option("--city", "city_slug", default=None, help="City slug (default: the only city).")
@click.option("--layer", "layer_name", required=True, help="Layer name.")
@click.option("--version", "version", required=True, type=click.IntRange(1), help="Version.")
@pass_runtime
def zones_publish(rt: Runtime, city_slug: str | None, layer_name: str, version: int) -> None:
    """Make one version of a layer current (a draft, or an older version back again).

    The worker then gives every request its zone in it and re-routes the open ones."""
    from routing.rules import publish_layer
    from spatial.admin_audit import cli_actor
    from spatial.cities import city_for_cli
    from spatial.errors import InvalidInput

    with rt.sessions().begin() as session:
        target = city_for_cli(session, city_slug, rt.settings.default_city)
        layer_id = session.scalar(
            sa.select(ZoneLayer.id).where(
                ZoneLayer.jurisdiction_id == target.id,
                ZoneLayer.name == layer_name,
                ZoneLayer.version == version,
            )
        )
        if layer_id is None:
            raise InvalidInput(
                f"city {target.slug} has no layer {layer_name!r} version {version}",
                field="version",
            )
        layer = publish_layer(session, target, layer_id, cli_actor())
        audit(
            session, "layer.publish", "zone_layer", layer.id, target, name=layer.name,
            version=layer.version,
        )  # fmt: skip
    click.echo(
        f"layer {layer_name} v{version} is current; the worker gives every request its zone "
        "in it and re-routes the open ones"
    )


@zones.command("list")
@click.option("--city", "city_slug", default=None, help="City slug (default: the only city).")
@pass_runtime
def zones_list(rt: Runtime, city_slug: str | None) -> None:
    """Print one line per layer version: NAME<TAB>vN<TAB>current|old<TAB>N zones<TAB>TITLE."""
    from spatial.cities import get_city

    with rt.sessions().begin() as session:
        target = get_city(session, city_slug)
        rows = session.execute(
            sa.select(
                ZoneLayer.name,
                ZoneLayer.version,
                ZoneLayer.is_current,
                ZoneLayer.title,
                sa.func.count(Zone.id),
            )
            .outerjoin(Zone, Zone.layer_id == ZoneLayer.id)
            .where(ZoneLayer.jurisdiction_id == target.id)
            .group_by(ZoneLayer.id)
            .order_by(ZoneLayer.name, ZoneLayer.version)
        ).all()
    if not rows:
        click.echo(f"city {target.slug} has no zone layers yet", err=True)
    for name, version, current, title, count in rows:
        state = "current" if current else "old"
        click.echo(f"{name}\tv{version}\t{state}\t{count} zones\t{title or ''}")
