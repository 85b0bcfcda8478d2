"""``civicpin apikey ...``: API keys for Open311 clients that POST requests."""

from __future__ import annotations

import click

from webmap.cli import Runtime, audit, cli, pass_runtime


@cli.group()
def apikey() -> None:
    """API keys that let Open311 clients submit requests."""


@apikey.command("create")
@click.option("--city", "city_slug", required=True, help="Slug of the city the key is for.")
@click.option("--name", required=True, help="Who holds the key, e.g. 'FixMyStreet'.")
@pass_runtime
def apikey_create(rt: Runtime, city_slug: str, name: str) -> None:
    """Create a key; the key itself is printed alone on the last line, and only now."""
    from spatial.apikeys import create_key

    with rt.sessions().begin() as session:
        row, key = create_key(session, city_slug, name)
        what = {"name": row.name, "key_prefix": row.prefix}
        audit(session, "apikey.create", "api_key", row.id, row.jurisdiction_id, **what)
        line = f"created API key {row.prefix}... '{row.name}' for {city_slug}"
    click.echo(line)
    click.echo("store it now: it cannot be shown again")
    click.echo(key)


@apikey.command("revoke")
@click.argument("key_or_prefix")
@pass_runtime
def apikey_revoke(rt: Runtime, key_or_prefix: str) -> None:
    """Revoke a key, given in full or by its first characters (at least 8)."""
    from spatial.apikeys import revoke_key

    with rt.sessions().begin() as session:
        row = revoke_key(session, key_or_prefix)
        what = {"name": row.name, "key_prefix": row.prefix}
        audit(session, "apikey.revoke", "api_key", row.id, row.jurisdiction_id, **what)
        line = f"revoked API key {row.prefix}... '{row.name}'"
    click.echo(line)


@apikey.command("list")
@click.option("--city", "city_slug", default=None, help="Only this city's keys.")
@pass_runtime
def apikey_list(rt: Runtime, city_slug: str | None) -> None:
    """One line per key: PREFIX, city, name, created, last used, revoked."""
    from spatial.apikeys import list_keys

    with rt.sessions().begin() as session:
        rows = list_keys(session, city_slug)
        lines = [
            "\t".join(
                [
                    f"{row.prefix}...",
                    slug,
                    row.name,
                    f"created {row.created_at:%Y-%m-%d}",
                    f"used {row.last_used_at:%Y-%m-%d}" if row.last_used_at else "never used",
                    f"REVOKED {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active",
                ]
            )
            for row, slug in rows
        ]
    if not lines:
        click.echo("no API keys yet: create one with 'civicpin apikey create'", err=True)
    for line in lines:
        click.echo(line)
