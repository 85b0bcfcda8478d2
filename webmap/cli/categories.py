"""``civicpin categories|questions|calendar ...`` and ``civicpin city import-open311``:
the city's catalogue from the command line.

The same functions as the admin pages (:mod:`routing.categories`,
:mod:`routing.open311_import`); each change writes one admin audit event, and a bad
value is one line (``civicpin: error: ...``) with nothing written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from webmap.cli import Runtime, audit, cli, pass_runtime
from webmap.cli.city import city as city_group

CITY_OPTION = click.option(
    "--city", "city_slug", default=None, help="The city's slug (default: CIVICPIN_CITY)."
)


def _city(session, rt: Runtime, slug: str | None):
    from spatial.cities import city_for_cli

    return city_for_cli(session, slug, rt.settings.default_city)


def _given(**options: Any) -> dict[str, Any]:
    """The options given on the command line (click leaves the others None)."""
    return {k: v for k, v in options.items() if v is not None}


def _category_options(f):
    """The category fields, shared by ``add`` and ``set``."""
    for option in reversed(
        [
            click.option("--name", help="The name residents see."),
            click.option("--group", help="Open311 group, e.g. 'Streets'."),
            click.option("--description", help="A sentence on what the category is for."),
            click.option("--keywords", help="Comma-separated search words."),
            click.option(
                "--type",
                "type_",
                type=click.Choice(["realtime", "batch", "blackbox"]),
                help="Open311 service type (default realtime).",
            ),
            click.option(
                "--private/--public",
                default=None,
                help="Private: not in the public catalogue, map or Open311 list.",
            ),
            click.option(
                "--internal/--not-internal",
                default=None,
                help="Internal: for city staff only (the help desk, on the intranet); "
                "always private.",
            ),
            click.option(
                "--contact-required/--contact-optional",
                default=None,
                help="Whether a report needs an e-mail address or phone number.",
            ),
            click.option(
                "--location",
                "location_mode",
                type=click.Choice(["required", "optional", "none"]),
                help="Whether a report needs a place (default required).",
            ),
            click.option("--notice", help="Shown to the reporter after a report ('' clears)."),
            click.option(
                "--department",
                "default_department",
                help="Code of the department that gets it when no rule matches ('' clears).",
            ),
            click.option(
                "--priority",
                "default_priority",
                type=click.Choice(["low", "normal", "high", "urgent"]),
                help="A new request's priority when no rule sets one.",
            ),
            click.option("--sla-hours", help="Hours to resolve ('' clears: no SLA)."),
            click.option(
                "--sla-clock",
                type=click.Choice(["business", "calendar"]),
                help="business: count the city's business hours; calendar: elapsed hours.",
            ),
            click.option(
                "--asset-layer",
                help="Name of the asset layer its reports are about, e.g. streetlights "
                "('' clears).",
            ),
        ]
    ):
        f = option(f)
    return f


def _category_data(**kw: Any) -> dict[str, Any]:
    data = _given(**kw)
    if "type_" in data:
        data["type"] = data.pop("type_")
    return data


def _describe(record: dict[str, Any]) -> str:
    parts = [f"{k}={v}" for k, v in record.items() if v not in (None, "", [], False)]
    return " ".join(parts)


# --------------------------------------------------------------------------- categories


@cli.group()
def categories() -> None:
    """Categories (Open311 services) of a city: what can be reported."""


@categories.command("list")
@CITY_OPTION
@pass_runtime
def categories_list(rt: Runtime, city_slug: str | None) -> None:
    """One line per category: CODE, group, name, location, SLA, active, questions."""
    from routing import categories as catalog

    with rt.sessions().begin() as session:
        target = _city(session, rt, city_slug)
        lines = []
        for service, n in catalog.categories(session, target):
            sla = (
                "-" if service.sla_hours is None else f"{service.sla_hours:g}h {service.sla_clock}"
            )
            lines.append(
                "\t".join(
                    [
                        service.code,
                        service.group or "-",
                        service.name,
                        f"location {service.location_mode}",
                        f"SLA {sla}",
                        f"priority {service.default_priority}",
                        "internal"
                        if service.internal
                        else ("private" if service.private else "public"),
                        "active" if service.active else "INACTIVE",
                        f"{n} question(s)",
                    ]
                )
            )
    if not lines:
        click.echo(
            "no categories yet: add one with 'civicpin categories add CODE --name ...'", err=True
        )
    for line in lines:
        click.echo(line)


@categories.command("add")
@CITY_OPTION
@click.argument("code")
@_category_options
@pass_runtime
def categories_add(rt: Runtime, city_slug: str | None, code: str, **kw: Any) -> None:
    """Create category CODE (its Open311 service code)."""
    from routing import categories as catalog

    with rt.sessions().begin() as session:
        target = _city(session, rt, city_slug)
        service = catalog.create_category(session, target, {"code": code, **_category_data(**kw)})
        record = catalog.category_record(session, service)
        audit(session, "category.create", "service", service.id, target, **record)
    click.echo(f"created category {code} in {target.slug}: {_describe(record)}")


@categories.command("set")
@CITY_OPTION
@click.argument("code")
@click.option(
    "--code", "new_code", help="A new service code (apps using the old one stop working)."
)
@_category_options
@click.option("--active/--inactive", default=None, help="Inactive: no longer offered anywhere.")
@pass_runtime
def categories_set(
    rt: Runtime, city_slug: str | None, code: str, new_code: str | None, **kw: Any
) -> None:
    """Change the given fields of category CODE."""
    from routing import categories as catalog

    data = _category_data(**kw)
    if new_code is not None:
        data["code"] = new_code
    if not data:
        raise click.UsageError("give at least one field to change (see --help)")
    with rt.sessions().begin() as session:
        target = _city(session, rt, city_slug)
        service = catalog.category_by_code(session, target, code)
        changed = catalog.update_category(session, target, service, data)
        if changed:
            audit(session, "category.edit", "service", service.id, target, code=code, **changed)
    if not changed:
        click.echo(f"category {code}: nothing changed")
        return
    for name, (old, new) in changed.items():
        click.echo(f"category {code}: {name} {old!r} -> {new!r}")


@categories.command("remove")
@CITY_OPTION
@click.argument("code")
@pass_runtime
def categories_remove(rt: Runtime, city_slug: str | None, code: str) -> None:
    """Delete category CODE; one with requests is refused (use 'set CODE --inactive')."""
    from routing import categories as catalog

    with rt.sessions().begin() as session:
        target = _city(session, rt, city_slug)
        service = catalog.category_by_code(session, target, code)
        service_id = service.id
        catalog.delete_category(session, service)
        audit(session, "category.delete", "service", service_id, target, code=code)
    click.echo(f"deleted category {code} of {target.slug}")


# --------------------------------------------------------------------------- questions


def _question_options(f):
    for option in reversed(
        [
            click.option(
                "--datatype",
                type=click.Choice(
                    ["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"]
                ),
                help="Open311 datatype of the answer.",
            ),
            click.option(
                "--question", "description", help="The question, as the reporter reads it."
            ),
            click.option(
                "--help-text", "datatype_description", help="A hint shown with the question."
            ),
            click.option(
                "--required/--optional", default=None, help="Whether it must be answered."
            ),
            click.option("--order", type=int, help="Its place among the questions (1 = first)."),
            click.option(
                "--value",
                "values",
                multiple=True,
                metavar="KEY=NAME",
                help="An allowed answer of a list question (repeat; replaces the list).",
            ),
            click.option(
                "--default",
                "default_value",
                help="Answer taken when a channel cannot ask (e.g. an intake address); "
                "keys separated by commas for a multivaluelist; '' clears.",
            ),
        ]
    ):
        f = option(f)
    return f


def _question_data(**kw: Any) -> dict[str, Any]:
    data = _given(**kw)
    if not data.get("values"):
        data.pop("values", None)
    else:
        data["values"] = list(data["values"])
    return data


@cli.group()
def questions() -> None:
    """Questions (Open311 attributes) a category asks."""


QUESTION_CATEGORY = click.option(
    "--category", "category_code", required=True, help="Service code of the category."
)


@questions.command("list")
@CITY_OPTION
@QUESTION_CATEGORY
@pass_runtime
def questions_list(rt: Runtime, city_slug: str | None, category_code: str) -> None:
    """One line per question, in order: ORDER, CODE, datatype, required, question, values."""
    from routing import categories as catalog

    with rt.sessions().begin() as session:
        target = _city(session, rt, city_slug)
        service = catalog.category_by_code(session, target, category_code)
        lines = []
        for attr in sorted(service.attributes, key=lambda a: (a.order, a.id)):
            record = catalog.question_record(attr)
            lines.append(
                "\t".join(
                    [
                        str(attr.order),
                        attr.code,
                        attr.datatype,
                        "required" if attr.required else "optional",
                        attr.description,
                        ", ".join(record["values"] or []) or "-",
                        f"default {json.dumps(attr.default_value)}"
                        if attr.default_value is not None
                        else "no default",
                    ]
                )
            )
    if not lines:
        click.echo(f"{category_code} asks no questions", err=True)
    for line in lines:
        click.echo(line)


@questions.command("add")
@CITY_OPTION
@QUESTION_CATEGORY
@click.argument("code")
@_question_options
@pass_runtime
def questions_add(
    rt: Runtime, city_slug: str | None, category_code: str, code: str, **kw: Any
) -> None:
    """Add question CODE (its Open311 attribute code) to a category."""
    from routing import categories as catalog

    with rt.sessions().begin() as session:
        target = _city(session, rt, city_slug)
        service = catalog.category_by_code(session, target, category_code)
        attr = catalog.add_question(session, service, {"code": code, **_question_data(**kw)})
        record = catalog.question_record(attr)
        audit(
            session,
            "question.add",
            "service_attribute",
            attr.id,
            target,
            category=service.code,
            **record,
        )
    click.echo(f"added question {code} to {category_code}: {_describe(record)}")


@questions.command("set")
@CITY_OPTION
@QUESTION_CATEGORY
@click.argument("code")
@click.option("--code", "new_code", help="A new attribute code.")
@_question_options
@pass_runtime
def questions_set(
    rt: Runtime,
    city_slug: str | None,
    category_code: str,
    code: str,
    new_code: str | None,
    **kw: Any,
) -> None:
    """Change the given fields of question CODE."""
    from routing import categories as catalog

    data = _question_data(**kw)
    if new_code is not None:
        data["code"] = new_code
    if not data:
        raise click.UsageError("give at least one field to change (see --help)")
    with rt.sessions().begin() as session:
        target = _city(session, rt, city_slug)
        service = catalog.category_by_code(session, target, category_code)
        attr = catalog.question_by_code(service, code)
        changed = catalog.update_question(session, service, attr, data)
        if changed:
            audit(
                session,
                "question.edit",
                "service_attribute",
                attr.id,
                target,
                category=service.code,
                code=attr.code,
                **changed,
            )
    if not changed:
        click.echo(f"question {code}: nothing changed")
        return
    for name, (old, new) in changed.items():
        click.echo(f"question {code}: {name} {old!r} -> {new!r}")


@questions.command("remove")
@CITY_OPTION
@QUESTION_CATEGORY
@click.argument("code")
@pass_runtime
def questions_remove(rt: Runtime, city_slug: str | None, category_code: str, code: str) -> None:
    """Remove question CODE from a category (answers already given are kept)."""
    from routing import categories as catalog

    with rt.sessions().begin() as session:
        target = _city(session, rt, city_slug)
        service = catalog.category_by_code(session, target, category_code)
        attr = catalog.question_by_code(service, code)
        attr_id, record = attr.id, catalog.question_record(attr)
        catalog.remove_question(session, service, attr)
        audit(
            session,
            "question.remove",
            "service_attribute",
            attr_id,
            target,
            category=service.code,
            **record,
        )
    click.echo(f"removed question {code} from {category_code}")


# --------------------------------------------------------------------------- calendar


@cli.group()
def calendar() -> None:
    """A city's business calendar: opening hours and holidays for business-hour SLAs."""


@calendar.command("show")
@CITY_OPTION
@pass_runtime
def calendar_show(rt: Runtime, city_slug: str | None) -> None:
    """The opening hours of each day, then the holidays."""
    from routing import categories as catalog

    with rt.sessions().begin() as session:
        target = _city(session, rt, city_slug)
        view = catalog.calendar_view(target)
        tz = target.timezone
    if not view["enabled"]:
        click.echo(f"no business calendar: SLAs count elapsed hours ({tz})")
        return
    for day, span in view["hours"].items():
        click.echo(f"{day}\t{span[0]}-{span[1]}" if span else f"{day}\tclosed")
    for day, name in view["holidays"]:
        click.echo(f"holiday\t{day}" + (f"\t{name}" if name else ""))
    click.echo(f"(local time, {tz})")


@calendar.command("set")
@CITY_OPTION
@click.option(
    "--hours",
    "hours",
    multiple=True,
    metavar="DAYS=HH:MM-HH:MM",
    help="Opening hours, e.g. mon-fri=08:00-17:00, sat=09:00-12:00, sun=closed (repeat).",
)
@click.option(
    "--holiday",
    "holidays",
    multiple=True,
    metavar="YYYY-MM-DD[=NAME]",
    help="Add a holiday, e.g. 2026-12-25='Christmas Day' (repeat).",
)
@click.option(
    "--remove-holiday", "removed", multiple=True, metavar="YYYY-MM-DD", help="Remove a holiday."
)
@click.option(
    "--replace",
    is_flag=True,
    help="Start from an empty calendar: the days not given are closed, old holidays go.",
)
@click.option(
    "--none",
    "disable",
    is_flag=True,
    help="Remove the calendar: every SLA counts elapsed hours.",
)
@pass_runtime
def calendar_set(
    rt: Runtime,
    city_slug: str | None,
    hours: tuple[str, ...],
    holidays: tuple[str, ...],
    removed: tuple[str, ...],
    replace: bool,
    disable: bool,
) -> None:
    """Change the opening hours and holidays; days not named keep their hours."""
    from routing import categories as catalog

    if disable and (hours or holidays or removed):
        raise click.UsageError("--none removes the calendar: give no hours or holidays with it")
    if not (disable or replace or hours or holidays or removed):
        raise click.UsageError("give --hours, --holiday, --remove-holiday, --replace or --none")
    day_hours: dict[str, list[str] | None] = {}
    for spec in hours:
        day_hours.update(catalog.parse_hours(spec))
    added = [catalog.parse_holiday(spec) for spec in holidays]
    with rt.sessions().begin() as session:
        target = _city(session, rt, city_slug)
        new = (
            None
            if disable
            else catalog.change_calendar(
                target,
                hours=day_hours,
                add_holidays=added,
                remove_holidays=list(removed),
                clear=replace,
            )
        )
        changed = catalog.save_calendar(target, new)
        if changed:
            audit(session, "calendar.set", "jurisdiction", target.id, target, **changed)
        view = catalog.calendar_view(target)
    if not changed:
        click.echo(f"calendar of {target.slug}: nothing changed")
        return
    if not view["enabled"]:
        click.echo(f"calendar of {target.slug} removed: SLAs count elapsed hours")
        return
    open_days = [f"{d} {s[0]}-{s[1]}" for d, s in view["hours"].items() if s]
    click.echo(
        f"calendar of {target.slug}: {', '.join(open_days)}; {len(view['holidays'])} holiday(s)"
    )


# --------------------------------------------------------------------------- import


@city_group.command("import-open311")
@click.argument("services", type=click.Path(path_type=Path))
@click.option(
    "--definitions",
    type=click.Path(path_type=Path),
    default=None,
    help="Directory of service definitions, one <service_code>.json each.",
)
@CITY_OPTION
@click.option("--dry-run", is_flag=True, help="Check and show the changes; write nothing.")
@pass_runtime
def city_import_open311(
    rt: Runtime, services: Path, definitions: Path | None, city_slug: str | None, dry_run: bool
) -> None:
    """Create or update categories and questions from another Open311 server's
    services.json and its service definitions, keeping their service codes."""
    from routing import open311_import

    if definitions is not None and not definitions.is_dir():
        raise click.UsageError(f"--definitions {definitions}: not a directory")
    entries = open311_import.read_catalogue(services, definitions)
    with rt.sessions().begin() as session:
        target = _city(session, rt, city_slug)
        plan = open311_import.plan_import(session, target, entries)
        if plan.changes and not dry_run:
            open311_import.apply_import(session, target, plan)
            audit(
                session,
                "category.import",
                "jurisdiction",
                target.id,
                target,
                file=services.name,
                created=plan.creates,
                updated=plan.updates,
                codes=[entry.code for entry, _ in plan.work],
            )
        slug = target.slug
    for line in plan.lines:
        click.echo(line)
    summary = (
        f"{plan.creates} created, {plan.updates} updated, {plan.unchanged} unchanged "
        f"of {len(entries)} service(s) in {slug}"
    )
    if not plan.changes:
        click.echo(f"nothing to change: {summary}")
    elif dry_run:
        click.echo(f"dry run, nothing written: would be {summary}")
    else:
        click.echo(summary)
