"""``civicpin escalation ...``: escalate waiting work and send the morning digests now.

- ``escalation run [--city SLUG]``: one sweep (the worker runs it every minute), for cron
  and scripts;
- ``escalation digest [--city SLUG] [--force]``: the departments' digests that are due
  (``--force``: now, whatever the hour, even if sent today);
- ``escalation show [--city SLUG]``: the city's policies.
"""

from __future__ import annotations

import click

from webmap.cli import Runtime, cli, pass_runtime


@cli.group("escalation")
def escalation_group() -> None:
    """Escalation of overdue and untriaged requests, and the departments' digests."""


@escalation_group.command("run")
@click.option("--city", "slug", default=None, help="Only this city (default: every city).")
@pass_runtime
def escalation_run(rt: Runtime, slug: str | None) -> None:
    """Escalate the open requests whose policy says so, and mail who must know."""
    from routing.escalation import sweep_result
    from spatial.cities import get_city

    with rt.sessions().begin() as session:
        city = get_city(session, slug) if slug is not None else None
        result = sweep_result(session, public_base_url=rt.settings.public_base_url, city=city)
    click.echo(
        f"{len(result.level1)} escalated to level 1, {len(result.level2)} to level 2, "
        f"{result.messages} messages"
    )
    for public_id in result.level1:
        click.echo(f"  1 {public_id}")
    for public_id in result.level2:
        click.echo(f"  2 {public_id}")


@escalation_group.command("digest")
@click.option("--city", "slug", default=None, help="Only this city (default: every city).")
@click.option("--force", is_flag=True, help="Send now, whatever the hour, even if sent today.")
@pass_runtime
def escalation_digest(rt: Runtime, slug: str | None, force: bool) -> None:
    """Send the departments' morning digests of overdue and escalated work."""
    from routing.escalation import send_digests
    from spatial.cities import get_city

    with rt.sessions().begin() as session:
        city = get_city(session, slug) if slug is not None else None
        counts = send_digests(
            session, public_base_url=rt.settings.public_base_url, city=city, force=force
        )
    click.echo(f"{counts['departments']} department digests, {counts['messages']} messages")


@escalation_group.command("show")
@click.option("--city", "slug", default=None, help="City slug (default: the only city).")
@pass_runtime
def escalation_show(rt: Runtime, slug: str | None) -> None:
    """The city's escalation policies, reopening window and digest hour."""
    from routing.escalation import IMPLICIT, policies
    from spatial.cities import get_city
    from spatial.models import Service

    with rt.sessions().begin() as session:
        city = get_city(session, slug)
        rows = policies(session, city)
        names = {s.id: s.code for s in session.query(Service).filter_by(jurisdiction_id=city.id)}
        click.echo(
            f"{city.slug}: reopen within {city.reopen_days} days; digest at {city.digest_hour}:00"
        )

        def line(label: str, values: dict) -> str:
            untriaged = values["untriaged_minutes"]
            level2 = values["level2_minutes"]
            return (
                f"{label}: untriaged {f'{untriaged} min' if untriaged else 'off'}, "
                f"overdue {'on' if values['when_overdue'] else 'off'}, "
                f"level 2 {f'after {level2} min' if level2 else 'off'}"
            )

        default = rows.get(None)
        if default is None:
            click.echo(line("default (none set)", IMPLICIT))
        for service_id, p in sorted(rows.items(), key=lambda kv: (kv[0] is not None, kv[0] or 0)):
            label = "default" if service_id is None else names.get(service_id, str(service_id))
            click.echo(line(label, {k: getattr(p, k) for k in IMPLICIT}))
