"""``civicpin privacy ...`` (retention and erasure) and ``civicpin city retention``.

- ``privacy enforce --city SLUG [--dry-run]``: apply the city's retention periods now (the
  worker does it daily);
- ``privacy erase --email ADDRESS [--city SLUG] [--dry-run]``: a data-subject request.
  An address no table holds is an error (exit 1), so a script can tell "erased" from
  "nothing to erase" (a typo in the address, or erased already);
- ``city retention SLUG [--contact-days N] ...``: show or set the city's periods.
"""

from __future__ import annotations

import click

from webmap.cli import Runtime, audit, cli, pass_runtime
from webmap.cli.city import city as city_group


@cli.group()
def privacy() -> None:
    """Retention of residents' personal data, and erasure on request."""


@privacy.command("enforce")
@click.option("--city", "slug", default=None, help="City slug (default: the only city).")
@click.option("--dry-run", is_flag=True, help="Say what would be removed; change nothing.")
@pass_runtime
def privacy_enforce(rt: Runtime, slug: str | None, dry_run: bool) -> None:
    """Remove what the city's retention periods no longer allow to keep."""
    from records.retention import describe, get_policy, run_city
    from spatial.cities import get_city

    with rt.sessions().begin() as session:
        city = get_city(session, slug)
        policy_line = describe(get_policy(session, city))
    result = run_city(rt.sessions(), city.slug, rt.settings.media_dir, dry_run=dry_run)
    click.echo(f"{city.slug}: {policy_line}")
    click.echo(result.summary())
    for change in result.requests:
        click.echo(f"  {change.public_id}: {', '.join(change.removed)}")


@privacy.command("erase")
@click.option("--email", "email", required=True, help="The person's e-mail address.")
@click.option("--city", "slug", default=None, help="Only this city (default: every city).")
@click.option("--dry-run", is_flag=True, help="Say what would be removed; change nothing.")
@pass_runtime
def privacy_erase(rt: Runtime, email: str, slug: str | None, dry_run: bool) -> None:
    """Remove an e-mail address, with the contact data that came with it, from every table."""
    from notify.worker import spool_dir
    from records.erasure import check_address, erase, spooled_mail
    from records.retention import delete_original_files
    from spatial.cities import get_city

    address = check_address(email)
    with rt.sessions().begin() as session:
        city = get_city(session, slug) if slug is not None else None
        result = erase(session, address, city=city, dry_run=dry_run)
    spooled = spooled_mail(spool_dir(rt.settings), address)
    result.changes.append(("mail files in the local spool", len(spooled)))
    if not dry_run:
        delete_original_files(rt.settings.media_dir, result.original_keys)
        for path in spooled:
            path.unlink(missing_ok=True)
    for line in result.lines():
        click.echo(line)


@city_group.command("retention")
@click.argument("slug")
@click.option(
    "--contact-days",
    default=None,
    metavar="DAYS",
    help="Days contact data is kept ('keep': always).",
)
@click.option("--answers-days", default=None, metavar="DAYS", help="Days private answers are kept.")
@click.option("--raw-mail-days", default=None, metavar="DAYS", help="Days inbound mail is kept.")
@click.option(
    "--originals-days", default=None, metavar="DAYS", help="Days photo originals are kept."
)
@pass_runtime
def city_retention(
    rt: Runtime,
    slug: str,
    contact_days: str | None,
    answers_days: str | None,
    raw_mail_days: str | None,
    originals_days: str | None,
) -> None:
    """Show or set how long city SLUG keeps personal data after a request is closed."""
    from records.retention import describe, get_policy, parse_days, set_policy
    from spatial.admin_audit import cli_actor
    from spatial.cities import get_city

    given = {
        "contact_days": contact_days,
        "answers_days": answers_days,
        "raw_mail_days": raw_mail_days,
        "originals_days": originals_days,
    }
    given = {name: value for name, value in given.items() if value is not None}
    for name, value in given.items():
        parse_days(value, "--" + name.replace("_", "-"))
    with rt.sessions().begin() as session:
        city = get_city(session, slug)
        if given:
            before = get_policy(session, city)
            old = {name: getattr(before, name, None) for name in given}
            policy = set_policy(session, city, given, updated_by=cli_actor())
            new = {name: getattr(policy, name) for name in given}
            changed = {k: [old[k], new[k]] for k in new if old[k] != new[k]}
            audit(session, "retention.set", "retention_policy", city.id, city.id, **changed)
        line = f"{city.slug}: {describe(get_policy(session, city))}"
    click.echo(line)
