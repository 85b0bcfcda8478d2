"""``civicpin projects ...``: a city's projects and their requests, for scripts."""

from __future__ import annotations

import json

import click

from webmap.cli import Runtime, cli, pass_runtime


@cli.group()
def projects() -> None:
    """Projects that group requests ("Repave Main St")."""


def _city(session, slug: str):
    from spatial.cities import get_city, validate_slug

    return get_city(session, validate_slug(slug, "city"))


@projects.command("list")
@click.option("--city", "city_slug", required=True, help="Slug of the city.")
@click.option(
    "--status",
    default=None,
    help="open, or one of planned, active, on_hold, done, cancelled.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_runtime
def projects_list(rt: Runtime, city_slug: str, status: str | None, as_json: bool) -> None:
    """One line per project: id, status, target date, requests (open), owner, name."""
    from routing.projects import list_projects

    with rt.sessions().begin() as session:
        rows = list_projects(session, _city(session, city_slug).id, status)
        out = [
            {
                "id": r["project"].id,
                "name": r["project"].name,
                "status": r["project"].status,
                "target_date": (
                    r["project"].target_date.isoformat() if r["project"].target_date else None
                ),
                "requests": r["linked"],
                "open_requests": r["open"],
                "owner": r["owner"],
                "department": r["department"],
            }
            for r in rows
        ]
    if not out:
        click.echo("no projects", err=True)
    for row in out:
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False))
        else:
            click.echo(
                "\t".join(
                    [
                        str(row["id"]),
                        row["status"],
                        row["target_date"] or "-",
                        f"{row['requests']} ({row['open_requests']} open)",
                        row["owner"] or "-",
                        row["name"],
                    ]
                )
            )


@projects.command("requests")
@click.option("--city", "city_slug", required=True, help="Slug of the city.")
@click.argument("project_id", type=int)
@pass_runtime
def projects_requests(rt: Runtime, city_slug: str, project_id: int) -> None:
    """The project's requests, one reference a line with its status (for scripts)."""
    from routing.projects import get_project, linked_requests

    with rt.sessions().begin() as session:
        project = get_project(session, _city(session, city_slug).id, project_id)
        rows = linked_requests(session, project)
        lines = [f"{r.public_id}\t{r.status}\t{r.service}\t{r.address or '-'}" for r in rows]
    for line in lines:
        click.echo(line)
