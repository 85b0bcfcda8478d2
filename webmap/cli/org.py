"""``civicpin departments ...``, ``civicpin crews ...`` and ``civicpin users member``:
a city's organisation, the same functions as the admin pages (:mod:`routing.organisation`).

Every change writes one admin audit event in the command's transaction; bad input is one
line and writes nothing.
"""

from __future__ import annotations

import click
import sqlalchemy as sa

from webmap.cli import Runtime, audit, cli, pass_runtime
from webmap.cli.db import users

CITY_HELP = "The city's slug (default: CIVICPIN_CITY, or the only city)."


def _city(session, rt: Runtime, slug: str | None):
    from spatial.cities import city_for_cli

    return city_for_cli(session, slug, rt.settings.default_city)


def _zone_refs(value: str | None) -> list[str]:
    return [ref.strip() for ref in (value or "").split(",") if ref.strip()]


# --------------------------------------------------------------------------- departments


@cli.group()
def departments() -> None:
    """A city's departments: code, name, contact e-mail."""


@departments.command("add")
@click.argument("code")
@click.option("--name", required=True)
@click.option("--email", default=None, help="The department's contact address.")
@click.option("--city", "city_slug", default=None, help=CITY_HELP)
@pass_runtime
def departments_add(
    rt: Runtime, code: str, name: str, email: str | None, city_slug: str | None
) -> None:
    """Add a department; CODE is unique in the city (letters, digits, . - _)."""
    from routing import organisation as org

    with rt.sessions().begin() as session:
        city = _city(session, rt, city_slug)
        dept = org.create_department(session, city, code=code, name=name, email=email)
        what = {"code": dept.code, "name": dept.name, "email": dept.email}
        audit(session, "department.create", "department", dept.id, city.id, **what)
        line = f"added department {dept.code} ({dept.name}) to {city.slug}"
    click.echo(line)


@departments.command("set")
@click.argument("code")
@click.option("--code", "new_code", default=None, help="A new code.")
@click.option("--name", default=None)
@click.option("--email", default=None)
@click.option("--no-email", is_flag=True, help="Remove the contact address.")
@click.option(
    "--escalation-email", default=None, help="Who hears of level-2 escalations (a director)."
)
@click.option("--no-escalation-email", is_flag=True, help="Remove the escalation address.")
@click.option("--city", "city_slug", default=None, help=CITY_HELP)
@pass_runtime
def departments_set(
    rt: Runtime,
    code: str,
    new_code: str | None,
    name: str | None,
    email: str | None,
    no_email: bool,
    escalation_email: str | None,
    no_escalation_email: bool,
    city_slug: str | None,
) -> None:
    """Change a department's code, name, contact e-mail or escalation e-mail."""
    from routing import organisation as org

    if email is not None and no_email:
        raise click.UsageError("give --email or --no-email, not both")
    if escalation_email is not None and no_escalation_email:
        raise click.UsageError("give --escalation-email or --no-escalation-email, not both")
    with rt.sessions().begin() as session:
        city = _city(session, rt, city_slug)
        dept = org.department_by_code(session, city, code)
        changes = org.update_department(
            session,
            dept,
            code=new_code,
            name=name,
            email=email,
            clear_email=no_email,
            escalation_email=escalation_email,
            clear_escalation_email=no_escalation_email,
        )
        if changes:
            what = {"code": dept.code, **changes}
            audit(session, "department.edit", "department", dept.id, city.id, **what)
        line = (
            f"department {dept.code}: "
            + "; ".join(f"{k} {old or '-'} -> {new or '-'}" for k, (old, new) in changes.items())
            if changes
            else f"department {dept.code}: nothing changed"
        )
    click.echo(line)


@departments.command("remove")
@click.argument("code")
@click.option("--city", "city_slug", default=None, help=CITY_HELP)
@pass_runtime
def departments_remove(rt: Runtime, code: str, city_slug: str | None) -> None:
    """Delete a department no request, rule, category, mail address or crew uses."""
    from routing import organisation as org

    with rt.sessions().begin() as session:
        city = _city(session, rt, city_slug)
        dept = org.department_by_code(session, city, code)
        dept_id, name = dept.id, dept.name
        org.delete_department(session, dept)
        audit(session, "department.delete", "department", dept_id, city.id, code=code, name=name)
    click.echo(f"removed department {code} from {city.slug}")


@departments.command("list")
@click.option("--city", "city_slug", default=None, help=CITY_HELP)
@pass_runtime
def departments_list(rt: Runtime, city_slug: str | None) -> None:
    """One line per department: code, name, contact e-mail, crews, staff."""
    from routing import organisation as org
    from spatial.models import Department, User

    with rt.sessions().begin() as session:
        city = _city(session, rt, city_slug)
        lines = []
        for dept in org.departments(session, city):
            staff = session.scalars(
                sa.select(User.email)
                .where(User.departments.any(Department.id == dept.id))
                .order_by(User.email)
            ).all()
            crews = ",".join(c.code for c in sorted(dept.crews, key=lambda c: c.code)) or "-"
            lines.append(
                f"{dept.code}\t{dept.name}\t{dept.email or '-'}\tcrews: {crews}"
                f"\tstaff: {','.join(staff) or '-'}"
            )
    if not lines:
        click.echo(
            f"{city.slug} has no departments: add one with 'civicpin departments add'", err=True
        )
    for line in lines:
        click.echo(line)


# --------------------------------------------------------------------------- crews


def _crew(session, city, ref: str, department: str | None):
    """A crew by ``DEPARTMENT/CREW``, or by its code with ``--department``."""
    from routing import organisation as org
    from spatial.errors import InvalidInput

    if "/" in ref:
        return org.crew_by_ref(session, city, ref)
    if not department:
        raise InvalidInput(f"name the crew as DEPARTMENT/CREW or give --department: {ref!r}")
    return org.crew_by_ref(session, city, f"{department}/{ref}")


@cli.group()
def crews() -> None:
    """A city's crews: department, the zones they own, their members."""


@crews.command("add")
@click.argument("code")
@click.option("--department", required=True, help="The department's code.")
@click.option("--name", required=True)
@click.option(
    "--zones", default=None, help="Zones it owns: LAYER:CODE,... of the city's current layers."
)
@click.option("--city", "city_slug", default=None, help=CITY_HELP)
@pass_runtime
def crews_add(
    rt: Runtime, code: str, department: str, name: str, zones: str | None, city_slug: str | None
) -> None:
    """Add a crew to a department; CODE is unique in the department."""
    from routing import organisation as org

    with rt.sessions().begin() as session:
        city = _city(session, rt, city_slug)
        dept = org.department_by_code(session, city, department)
        zone_ids = org.zones_by_refs(session, city, _zone_refs(zones))
        crew = org.create_crew(session, dept, code=code, name=name)
        added, _ = org.set_crew_zones(session, crew, zone_ids)
        what = {"department": dept.code, "code": crew.code, "name": crew.name, "zones": added}
        audit(session, "crew.create", "crew", crew.id, city.id, **what)
        line = f"added crew {dept.code}/{crew.code} ({crew.name}), owning {len(added)} zone(s)"
    click.echo(line)


@crews.command("set")
@click.argument("crew_ref", metavar="CREW")
@click.option("--department", default=None, help="The crew's department (with a bare CREW code).")
@click.option("--code", "new_code", default=None, help="A new code.")
@click.option("--name", default=None)
@click.option("--move-to", default=None, help="Move the crew (and its zones) to this department.")
@click.option("--zones", default=None, help="Exactly the zones it owns: LAYER:CODE,...")
@click.option("--no-zones", is_flag=True, help="It owns no zone.")
@click.option("--city", "city_slug", default=None, help=CITY_HELP)
@pass_runtime
def crews_set(
    rt: Runtime,
    crew_ref: str,
    department: str | None,
    new_code: str | None,
    name: str | None,
    move_to: str | None,
    zones: str | None,
    no_zones: bool,
    city_slug: str | None,
) -> None:
    """Change a crew (DEPARTMENT/CREW): code, name, department, the zones it owns."""
    from routing import organisation as org

    if zones is not None and no_zones:
        raise click.UsageError("give --zones or --no-zones, not both")
    with rt.sessions().begin() as session:
        city = _city(session, rt, city_slug)
        crew = _crew(session, city, crew_ref, department)
        target = org.department_by_code(session, city, move_to) if move_to else None
        changes = org.update_crew(session, crew, code=new_code, name=name, department=target)
        if zones is not None or no_zones:
            zone_ids = org.zones_by_refs(session, city, _zone_refs(zones))
            added, released = org.set_crew_zones(session, crew, zone_ids)
            if added or released:
                changes["zones"] = {"added": added, "released": released}
        if changes:
            audit(session, "crew.edit", "crew", crew.id, city.id, code=crew.code, **changes)
        ref = f"{crew.department.code}/{crew.code}"
        line = f"crew {ref}: " + ("; ".join(changes) + " changed" if changes else "nothing changed")
    click.echo(line)


@crews.command("remove")
@click.argument("crew_ref", metavar="CREW")
@click.option("--department", default=None, help="The crew's department (with a bare CREW code).")
@click.option("--city", "city_slug", default=None, help=CITY_HELP)
@pass_runtime
def crews_remove(rt: Runtime, crew_ref: str, department: str | None, city_slug: str | None) -> None:
    """Delete a crew (DEPARTMENT/CREW) no request or rule uses; its zones become unowned."""
    from routing import organisation as org

    with rt.sessions().begin() as session:
        city = _city(session, rt, city_slug)
        crew = _crew(session, city, crew_ref, department)
        crew_id, ref = crew.id, f"{crew.department.code}/{crew.code}"
        what = {"department": crew.department.code, "code": crew.code}
        org.delete_crew(session, crew)
        audit(session, "crew.delete", "crew", crew_id, city.id, **what)
    click.echo(f"removed crew {ref}")


@crews.command("list")
@click.option("--department", default=None, help="Only this department's crews.")
@click.option("--city", "city_slug", default=None, help=CITY_HELP)
@pass_runtime
def crews_list(rt: Runtime, department: str | None, city_slug: str | None) -> None:
    """One line per crew: DEPARTMENT/CREW, name, zones owned, members."""
    from routing import organisation as org

    with rt.sessions().begin() as session:
        city = _city(session, rt, city_slug)
        dept = org.department_by_code(session, city, department) if department else None
        lines = [
            f"{crew.department.code}/{crew.code}\t{crew.name}"
            f"\tzones: {','.join(org.zone_refs(session, crew)) or '-'}"
            f"\tmembers: {','.join(u.email for u in org.members(session, crew)) or '-'}"
            for crew in org.crews(session, city)
            if dept is None or crew.department_id == dept.id
        ]
    if not lines:
        click.echo("no crews yet: add one with 'civicpin crews add'", err=True)
    for line in lines:
        click.echo(line)


# --------------------------------------------------------------------------- membership


@users.command("member")
@click.option("--email", required=True)
@click.option("--crew", "crew_ref", default=None, help="DEPARTMENT/CREW")
@click.option("--department", default=None, help="A department's code.")
@click.option("--remove", is_flag=True, help="End the membership instead.")
@click.option(
    "--supervisor/--not-supervisor",
    default=None,
    help="With --department: the member hears of its escalations and gets its digest (or not).",
)
@click.option("--city", "city_slug", default=None, help="The crew's city (default: the user's).")
@pass_runtime
def users_member(
    rt: Runtime,
    email: str,
    crew_ref: str | None,
    department: str | None,
    remove: bool,
    supervisor: bool | None,
    city_slug: str | None,
) -> None:
    """Put a user in a crew or a department of their city (or take them out with --remove).

    A dispatcher or agent in departments works those departments' requests and the
    central queue; one in none works every request of the city.
    """
    from routing import organisation as org
    from spatial.errors import InvalidInput
    from spatial.models import Jurisdiction
    from webmap.cli.db import _user_by_email

    if (crew_ref is None) == (department is None):
        raise click.UsageError("give --crew DEPARTMENT/CREW or --department CODE")
    if supervisor is not None and (department is None or remove):
        raise click.UsageError("--supervisor goes with --department, and not with --remove")
    with rt.sessions().begin() as session:
        user = _user_by_email(session, email)
        if city_slug is not None:
            city = _city(session, rt, city_slug)
        elif user.jurisdiction_id is None:
            raise InvalidInput(f"{user.email} works in no one city: an install administrator")
        else:
            city = session.get(Jurisdiction, user.jurisdiction_id)
        if crew_ref is not None:
            target = org.crew_by_ref(session, city, crew_ref)
            kind, label = "crew", f"{target.department.code}/{target.code}"
            fn = org.remove_from_crew if remove else org.add_to_crew
        else:
            target = org.department_by_code(session, city, department)
            kind, label = "department", target.code
            fn = org.remove_from_department if remove else org.add_to_department
        changed = fn(session, user, target)
        op = "remove" if remove else "add"
        if changed:
            what = {"email": user.email, kind: label}
            audit(session, f"membership.{op}", "user", user.id, city.id, **what)
        supervises = None
        if supervisor is not None and org.set_supervisor(session, user, target, supervisor):
            supervises = "supervisor" if supervisor else "not supervisor"
            op = "supervise" if supervisor else "unsupervise"
            what = {"email": user.email, kind: label}
            audit(session, f"membership.{op}", "user", user.id, city.id, **what)
    verb = (
        ("left" if remove else "joined") if changed else ("was not in" if remove else "already in")
    )
    click.echo(f"{user.email} {verb} {kind} {label}" + (f" ({supervises})" if supervises else ""))
