"""``civicpin city ...``: create, change and list jurisdictions."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

import click
import sqlalchemy as sa

from spatial.cities import (
    city_base_url,
    default_city,
    get_city,
    set_host,
    set_open311_ids,
    validate_slug,
)
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
    from routing.setup_checklist import add_default_templates
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
        # Install-wide, as from the new city page: making a city is the installation's act.
        audit(session, "city.create", "city", created.slug, None, **what)
        add_default_templates(session, created)  # part of the city, as in the new city page
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
@click.option(
    "--host",
    default=None,
    help="A host name of the city's own (311.cambridge.example): its pages are served "
    "there too, and its links use it.",
)
@click.option("--no-host", is_flag=True, help="Remove the city's own host name.")
@pass_runtime
def city_set(
    rt: Runtime,
    slug: str,
    open311_ids: tuple[str, ...],
    no_open311_ids: bool,
    host: str | None,
    no_host: bool,
) -> None:
    """Change city SLUG's Open311 ids or host name."""
    if not (open311_ids or no_open311_ids or host is not None or no_host):
        raise InvalidInput("nothing to change: give --open311-id, --host or their --no- forms")
    if open311_ids and no_open311_ids:
        raise InvalidInput("give --open311-id or --no-open311-ids, not both")
    if host is not None and no_host:
        raise InvalidInput("give --host or --no-host, not both")
    lines = []
    with rt.sessions().begin() as session:
        target = get_city(session, validate_slug(slug, "city"))
        if open311_ids or no_open311_ids:
            before = list(target.open311_ids or [])
            ids = set_open311_ids(session, target, list(open311_ids))
            if ids != before:
                what = {"open311_ids": [before, ids]}
                audit(session, "city.open311_ids", "city", target.slug, target, **what)
            lines.append(f"city {slug}: Open311 ids {', '.join([slug, *ids])}")
        if host is not None or no_host:
            before_host = target.host
            set_host(session, target, None if no_host else host)
            if target.host != before_host:
                audit(
                    session,
                    "city.host",
                    "city",
                    target.slug,
                    target,
                    host=[before_host, target.host],
                )
            lines.append(f"city {slug}: address {city_base_url(rt.settings, target)}/")
    for line in lines:
        click.echo(line)


@city.command("list")
@pass_runtime
def city_list(rt: Runtime) -> None:
    """One line per city: SLUG, NAME, N requests, its address (its own host name, else
    PUBLIC_BASE_URL/c/SLUG/), its Open311 ids.

    The install's default city (CIVICPIN_CITY, else the oldest) is marked "(default)": the
    addresses without a city prefix serve it.
    """
    query = (
        sa.select(Jurisdiction, sa.func.count(ServiceRequest.id))
        .outerjoin(ServiceRequest, ServiceRequest.jurisdiction_id == Jurisdiction.id)
        .group_by(Jurisdiction.id)
        .order_by(Jurisdiction.slug)
    )
    settings = rt.settings
    lines = []
    with rt.sessions().begin() as session:
        rows = session.execute(query).all()
        try:
            default_id = default_city(session, settings.default_city).id if rows else None
        except NotFound as exc:  # listed all the same: this is where one looks for the slug
            default_id = None
            click.echo(f"civicpin: warning: {exc}", err=True)
        for city, count in rows:
            mark = " (default)" if city.id == default_id else ""
            ids = ",".join([city.slug, *(city.open311_ids or [])])
            address = city_base_url(settings, city)
            lines.append(
                f"{city.slug}\t{city.name}{mark}\t{count} requests\t{address}/\topen311 {ids}"
            )
    if not rows:
        click.echo("no cities yet: create one with 'civicpin city create'", err=True)
    for line in lines:
        click.echo(line)


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


@city.command("export")
@click.argument("slug")
@pass_runtime
def city_export(rt: Runtime, slug: str) -> None:
    """Write city SLUG's whole set-up as YAML on standard output (see city apply).

    Layers are named with their version, not inlined; accounts are not in the file.
    """
    from routing.city_file import dump, export_city

    with rt.sessions().begin() as session:
        text = dump(export_city(session, get_city(session, validate_slug(slug, "city"))))
    click.echo(text, nl=False)


@city.command("apply")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option(
    "--city",
    "slug",
    default=None,
    help="The city to change (default: CIVICPIN_CITY, else the only city).",
)
@click.option("--dry-run", is_flag=True, help="Print the changes, write nothing.")
@pass_runtime
def city_apply(rt: Runtime, file: TextIO, slug: str | None, dry_run: bool) -> None:
    """Make a city match the set-up in FILE (YAML, as city export writes it); print the changes.

    Idempotent: a second run prints "no changes". A bad file gets one line naming the
    place in the file, and nothing is changed.
    """
    from routing.city_file import apply_city, parse
    from spatial.admin_audit import cli_actor
    from spatial.cities import city_for_cli

    data = parse(file.read())
    session = rt.sessions()()
    try:
        target = city_for_cli(session, slug, rt.settings.default_city)
        lines, notes = apply_city(session, target, data, by=cli_actor())
        if lines and not dry_run:
            audit(session, "city.apply", "city", target.slug, target, changes=lines)
        name = target.slug
        if dry_run:
            session.rollback()
        else:
            session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
    for line in [*lines, *notes]:
        click.echo(line)
    count = f"{len(lines)} change{'' if len(lines) == 1 else 's'}"
    if not lines:
        click.echo(f"{name}: no changes")
    elif dry_run:
        click.echo(f"{name}: {count} (dry run: nothing written)")
    else:
        click.echo(f"{name}: {count}")
