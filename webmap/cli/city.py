"""``civicpin city ...``: create and list jurisdictions."""

from __future__ import annotations

from pathlib import Path

import click
import sqlalchemy as sa

from spatial.models import Jurisdiction, ServiceRequest
from webmap.cli import Runtime, cli, pass_runtime


@cli.group()
def city() -> None:
    """Jurisdictions (cities) served by this installation."""


@city.command("create")
@click.argument("slug")
@click.option("--name", required=True, help="The city's display name.")
@click.option("--timezone", required=True, help="IANA time zone, e.g. America/Los_Angeles.")
@click.option(
    "--boundary",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="Polygon file (GeoJSON, Shapefile folder/.shp/.zip, GeoPackage); its union is the city.",
)
@click.option("--boundary-layer", default=None, help="Layer to read from a multi-layer GeoPackage.")
@click.option(
    "--prefix", default=None, help="Public id prefix, 1-8 of A-Z 0-9 (default: initials)."
)
@click.option(
    "--fill-holes-m2",
    type=click.FloatRange(min=0),
    default=10_000.0,
    show_default=True,
    help="Fill boundary holes smaller than this many m2 (slivers between districts); 0 keeps all.",
)
@pass_runtime
def city_create(
    rt: Runtime,
    slug: str,
    name: str,
    timezone: str,
    boundary: Path,
    boundary_layer: str | None,
    prefix: str | None,
    fill_holes_m2: float,
) -> None:
    """Create city SLUG whose boundary is the union of the polygons in --boundary."""
    from spatial.zones import create_city

    with rt.sessions().begin() as session:
        created = create_city(
            session,
            slug,
            name,
            timezone,
            boundary,
            prefix=prefix,
            boundary_layer=boundary_layer,
            fill_holes_m2=fill_holes_m2,
        )
        line = (
            f"created city {created.slug} ({created.name}), "
            f"public ids {created.public_id_prefix}-YYYY-NNNNNN"
        )
    click.echo(line)


@city.command("list")
@pass_runtime
def city_list(rt: Runtime) -> None:
    """Print one line per city: SLUG<TAB>NAME<TAB>N requests."""
    query = (
        sa.select(Jurisdiction.slug, Jurisdiction.name, sa.func.count(ServiceRequest.id))
        .outerjoin(ServiceRequest, ServiceRequest.jurisdiction_id == Jurisdiction.id)
        .group_by(Jurisdiction.id)
        .order_by(Jurisdiction.slug)
    )
    with rt.sessions().begin() as session:
        rows = session.execute(query).all()
    if not rows:
        click.echo("no cities yet: create one with 'civicpin city create'", err=True)
    for slug, name, count in rows:
        click.echo(f"{slug}\t{name}\t{count} requests")
