"""``civicpin city ...``: create, change and list jurisdictions."""

from __future__ import annotations

from pathlib import Path

import click
import sqlalchemy as sa

from spatial.cities import city_base_url, default_city, get_city, set_open311_ids, validate_slug
from spatial.errors import InvalidInput, NotFound
from spatial.models import Jurisdiction, ServiceRequest
from webmap.cli import Runtime, audit, cli, pass_runtime


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
        what = {"name": created.name, "timezone": created.timezone, "boundary": boundary.name}
        audit(session, "city.create", "city", created.slug, created, **what)
        line = (
            f"created city {created.slug} ({created.name}), "
            f"public ids {created.public_id_prefix}-YYYY-NNNNNN"
        )
    click.echo(line)


@city.command("set")
@click.argument("slug")
@click.option(
    "--open311-id",
    "open311_ids",
    multiple=True,
    help="An Open311 jurisdiction_id that names this city besides its slug, such as "
    "lacity.org (repeat for several; replaces the ones set before).",
)
@click.option("--no-open311-ids", is_flag=True, help="Remove every alias Open311 id.")
@pass_runtime
def city_set(rt: Runtime, slug: str, open311_ids: tuple[str, ...], no_open311_ids: bool) -> None:
    """Change city SLUG's settings."""
    if not open311_ids and not no_open311_ids:
        raise InvalidInput("nothing to change: give --open311-id or --no-open311-ids")
    if open311_ids and no_open311_ids:
        raise InvalidInput("give --open311-id or --no-open311-ids, not both")
    with rt.sessions().begin() as session:
        target = get_city(session, validate_slug(slug, "city"))
        before = list(target.open311_ids or [])
        ids = set_open311_ids(session, target, list(open311_ids))
        if ids != before:
            what = {"open311_ids": [before, ids]}
            audit(session, "city.open311_ids", "city", target.slug, target, **what)
    click.echo(f"city {slug}: Open311 ids {', '.join([slug, *ids])}")


@city.command("list")
@pass_runtime
def city_list(rt: Runtime) -> None:
    """One line per city: SLUG, NAME, N requests, its address, its Open311 ids.

    The install's default city (CIVICPIN_CITY, else the oldest) is marked "(default)": the
    addresses without a city prefix serve it.
    """
    query = (
        sa.select(
            Jurisdiction.id,
            Jurisdiction.slug,
            Jurisdiction.name,
            Jurisdiction.open311_ids,
            sa.func.count(ServiceRequest.id),
        )
        .outerjoin(ServiceRequest, ServiceRequest.jurisdiction_id == Jurisdiction.id)
        .group_by(Jurisdiction.id)
        .order_by(Jurisdiction.slug)
    )
    settings = rt.settings
    with rt.sessions().begin() as session:
        rows = session.execute(query).all()
        try:
            default_id = default_city(session, settings.default_city).id if rows else None
        except NotFound as exc:  # listed all the same: this is where one looks for the slug
            default_id = None
            click.echo(f"civicpin: warning: {exc}", err=True)
    if not rows:
        click.echo("no cities yet: create one with 'civicpin city create'", err=True)
    for city_id, slug, name, aliases, count in rows:
        mark = " (default)" if city_id == default_id else ""
        ids = ",".join([slug, *(aliases or [])])
        click.echo(
            f"{slug}\t{name}{mark}\t{count} requests\t{city_base_url(settings, slug)}/"
            f"\topen311 {ids}"
        )


@city.command("moderation")
@click.argument("slug")
@click.option(
    "--hold",
    type=click.Choice(["none", "email", "all"]),
    default=None,
    help="Hold new reports unpublished until a dispatcher confirms them: none, those "
    "from e-mail, or all (history imports are never held). Without it: print the setting.",
)
@pass_runtime
def city_moderation(rt: Runtime, slug: str, hold: str | None) -> None:
    """Show or set which new reports of city SLUG wait for a dispatcher before publishing."""
    from records.moderation import set_hold_mode

    with rt.sessions().begin() as session:
        target = get_city(session, validate_slug(slug, "city"))
        if hold is not None and hold != target.moderation_hold:
            before = target.moderation_hold
            set_hold_mode(session, target, hold)
            audit(session, "city.moderation", "city", target.slug, target, hold=[before, hold])
        held = session.scalar(
            sa.select(sa.func.count()).where(
                ServiceRequest.jurisdiction_id == target.id, ServiceRequest.held_at.is_not(None)
            )
        )
        line = f"{target.slug}: hold {target.moderation_hold} ({held} held now)"
    click.echo(line)
