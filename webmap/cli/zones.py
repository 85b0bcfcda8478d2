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
@click.option("--code-field", default=None, help="Attribute holding the zone code.")
@click.option("--name-field", default=None, help="Attribute holding the zone name.")
@click.option("--title", default=None, help="Human title of the layer.")
@click.option("--source-layer", default=None, help="Layer to read from a multi-layer GeoPackage.")
@pass_runtime
def zones_import(
    rt: Runtime,
    file: Path,
    city_slug: str | None,
    layer_name: str,
    code_field: str | None,
    name_field: str | None,
    title: str | None,
    source_layer: str | None,
) -> None:
    """Import FILE (GeoJSON, Shapefile folder/.shp/.zip, GeoPackage) as a new layer version.

    Invalid polygons are repaired; the report lists repairs, overlaps and gaps.
    """
    from spatial.cities import get_city
    from spatial.zones import import_layer, layer_report_text

    with rt.sessions().begin() as session:
        target = get_city(session, city_slug)
        result = import_layer(
            session,
            target,
            file,
            layer_name,
            code_field=code_field,
            name_field=name_field,
            title=title,
            source_layer=source_layer,
        )
        layer = result.layer
        what = {"name": layer.name, "version": layer.version, "zones": result.report.get("zones")}
        audit(session, "layer.import", "zone_layer", layer.id, target, file=file.name, **what)
        head = (
            f"imported layer {result.layer.name} v{result.layer.version}: "
            f"{result.report['zones']} zones"
        )
    click.echo(head)
    for line in layer_report_text(result.report):
        click.echo(line)


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
