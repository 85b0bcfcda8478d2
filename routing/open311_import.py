"""Bring a city's catalogue from its previous Open311 (GeoReport v2) server.

The input is that server's ``services.json`` (the Service List: a JSON list of services)
and a directory of its service definitions, one ``<service_code>.json`` per service whose
``metadata`` is true (``GET services/<code>.json``). Each service becomes a category
with the *same* service code, and each attribute a question with the same code,
datatype, values and order, so an app configured for the old server (a FixMyStreet
install, a city's own app) keeps posting the same codes and answers to civicpin.

:func:`read_catalogue` reads and checks the files; :func:`plan_import` checks every
category and question against the city (with :mod:`routing.categories`' rules) and works
out what would change; :func:`apply_import` writes it. Nothing is written unless all of
it is valid, and a second run with the same files changes nothing.

The import sets the fields Open311 carries (name, description, group, keywords, type,
questions). Fields the old server does not publish (location mode, SLA, department,
private flag) keep their values, or the defaults for a new category. Questions a
category has that its definition no longer lists are removed, so that the category
asks exactly what the apps send.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from routing import categories as catalog
from spatial.errors import InvalidInput
from spatial.models import Jurisdiction, Service

# The Open311 service fields the import takes, as category fields.
SERVICE_FIELDS = {
    "service_name": "name",
    "description": "description",
    "group": "group",
    "keywords": "keywords",
    "type": "type",
}
MAX_FILE_BYTES = 20 * 1024 * 1024


@dataclass
class ServiceEntry:
    """One service of the list, with its definition's attributes (already read)."""

    where: str  # "services.json[3] (pothole)" for messages
    code: str
    data: dict[str, Any]  # category fields
    attributes: list[tuple[str, dict[str, Any]]]  # (where, question fields)


@dataclass
class ImportPlan:
    """What an import does: lines for a person, and the work to do."""

    lines: list[str] = field(default_factory=list)
    creates: int = 0
    updates: int = 0
    unchanged: int = 0
    work: list[tuple[ServiceEntry, Service | None]] = field(default_factory=list)

    @property
    def changes(self) -> bool:
        return bool(self.creates or self.updates)


def _load_json(path: Path, what: str) -> Any:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise InvalidInput(f"{path}: larger than {MAX_FILE_BYTES // 2**20} MB", field=what)
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file", field=what) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot read it ({exc})", field=what) from None
    if text.lstrip().startswith("<"):
        raise InvalidInput(
            f"{path}: this is XML; download the .json form of the same document",
            field=what,
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})", field=what
        ) from None


def _flag(value: Any, where: str, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise InvalidInput(f"{where}: {name} must be true or false, not {value!r}", field=name)


def _question(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where}: an attribute must be a JSON object", field="attributes")
    code = raw.get("code")
    if code is None:
        raise InvalidInput(f"{where}: the attribute has no code", field="code")
    data: dict[str, Any] = {
        "code": str(code),
        "datatype": raw.get("datatype"),
        "description": raw.get("description"),
        "datatype_description": raw.get("datatype_description") or None,
        "required": _flag(raw.get("required", False), where, "required"),
        "variable": _flag(raw.get("variable", True), where, "variable"),
        "values": raw.get("values") or None,
    }
    if raw.get("order") is not None:
        data["order"] = raw["order"]
    return data


def read_catalogue(services_path: Path, definitions: Path | None) -> list[ServiceEntry]:
    """The services of ``services_path`` with their definitions from ``definitions``,
    checked for shape; raises :class:`InvalidInput` naming the file and entry."""
    services = _load_json(services_path, "services")
    if isinstance(services, dict) and isinstance(services.get("services"), list):
        services = services["services"]
    if not isinstance(services, list):
        raise InvalidInput(f"{services_path}: expected a JSON list of services", field="services")
    entries: list[ServiceEntry] = []
    seen: set[str] = set()
    for i, raw in enumerate(services):
        where = f"{services_path.name}[{i}]"
        if not isinstance(raw, dict):
            raise InvalidInput(f"{where}: a service must be a JSON object", field="services")
        code = catalog.check_code(raw.get("service_code"), "service_code", f"{where}: service_code")
        where = f"{where} ({code})"
        if code in seen:
            raise InvalidInput(f"{where}: service_code {code!r} is listed twice", field="services")
        seen.add(code)
        data = {ours: raw.get(theirs) for theirs, ours in SERVICE_FIELDS.items()}
        if not isinstance(data["keywords"], str | list):
            data["keywords"] = None
        data["code"] = code
        attributes: list[tuple[str, dict[str, Any]]] = []
        if _flag(raw.get("metadata", False), where, "metadata"):
            if definitions is None:
                raise InvalidInput(
                    f"{where}: has metadata: give its definition's directory with --definitions",
                    field="definitions",
                )
            path = definitions / f"{code}.json"
            definition = _load_json(path, "definitions")
            if isinstance(definition, dict) and "service_definition" in definition:
                definition = definition["service_definition"]
            if isinstance(definition, list) and len(definition) == 1:
                definition = definition[0]
            if not isinstance(definition, dict) or not isinstance(
                definition.get("attributes", []), list
            ):
                raise InvalidInput(
                    f"{path.name}: expected an object with a list of attributes",
                    field="definitions",
                )
            if str(definition.get("service_code", code)) != code:
                raise InvalidInput(
                    f"{path.name}: its service_code is {definition.get('service_code')!r}, "
                    f"not {code!r}",
                    field="definitions",
                )
            for j, attr in enumerate(definition.get("attributes") or []):
                attr_where = f"{path.name} attributes[{j}]"
                attributes.append((attr_where, _question(attr, attr_where)))
        entries.append(ServiceEntry(where, code, data, attributes))
    return entries


def _check(where: str, call, *args: Any) -> Any:
    """Run a :mod:`routing.categories` check; its message gets the entry's place."""
    try:
        return call(*args)
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc.field}: {exc}", field=exc.field) from None


def _question_changes(service: Service | None, entry: ServiceEntry) -> list[str]:
    """Check every question of ``entry`` (as a new category's when ``service`` is None)
    and name the changes: 'question X added', 'question Y: datatype', 'question Z removed'."""
    # A stand-in for the category: the checks read its code and its questions' codes.
    probe = SimpleNamespace(code=entry.code, attributes=[])
    existing = {a.code: a for a in service.attributes} if service is not None else {}
    changes: list[str] = []
    for where, data in entry.attributes:
        values = _check(where, catalog.question_values, probe, data)
        # Keep the probe's codes so that a code listed twice is caught.
        probe.attributes.append(SimpleNamespace(code=values["code"]))
        current = existing.get(values["code"])
        if current is None:
            changes.append(f"question {values['code']} added")
            continue
        differs = [
            key
            for key, value in values.items()
            if key != "order" and getattr(current, key) != value
        ]
        if differs:
            changes.append(f"question {values['code']}: {', '.join(differs)}")
    listed = [a.code for a in probe.attributes]
    changes += [f"question {code} removed" for code in existing if code not in listed]
    if service is not None and not changes:
        current_order = [a.code for a in sorted(service.attributes, key=lambda a: (a.order, a.id))]
        if current_order != _ordered_codes(entry):
            changes.append("questions reordered")
    return changes


def _ordered_codes(entry: ServiceEntry) -> list[str]:
    """The definition's question codes in its ``order`` (then listing) order."""
    indexed = [
        (int(data.get("order") or 0), i, str(data["code"]).strip())
        for i, (_where, data) in enumerate(entry.attributes)
    ]
    return [code for _o, _i, code in sorted(indexed)]


def plan_import(session: Session, city: Jurisdiction, entries: list[ServiceEntry]) -> ImportPlan:
    """Check every entry against ``city``'s catalogue and describe the changes (writes
    nothing)."""
    plan = ImportPlan()
    for entry in entries:
        service = session.scalar(
            sa.select(Service).where(Service.jurisdiction_id == city.id, Service.code == entry.code)
        )
        fields = {k: v for k, v in entry.data.items() if k != "code"}
        values = _check(entry.where, catalog.category_values, session, city, entry.data, service)
        question_changes = _question_changes(service, entry)
        if service is None:
            plan.creates += 1
            plan.lines.append(
                f"create {entry.code} {values['name']!r} with {len(entry.attributes)} question(s)"
            )
        else:
            record = catalog.category_record(session, service)
            differs = [k for k in fields if k in values and record.get(k) != values[k]]
            if not service.active:
                differs.append("active")
            if differs or question_changes:
                plan.updates += 1
                plan.lines.append(
                    f"update {entry.code}: " + "; ".join([*differs, *question_changes])
                )
            else:
                plan.unchanged += 1
                continue
        plan.work.append((entry, service))
    return plan


def apply_import(session: Session, city: Jurisdiction, plan: ImportPlan) -> None:
    """Write what :func:`plan_import` found, in the caller's transaction."""
    for entry, service in plan.work:
        data = {k: v for k, v in entry.data.items() if k != "code"}
        if service is None:
            service = catalog.create_category(session, city, entry.data)
        else:
            # An imported service is offered again, even if it had been deactivated.
            catalog.update_category(session, city, service, {**data, "active": True})
        listed = [str(d["code"]).strip() for _w, d in entry.attributes]
        for attr in [a for a in service.attributes if a.code not in listed]:
            catalog.remove_question(session, service, attr)
        by_code = {a.code: a for a in service.attributes}
        for _where, qdata in entry.attributes:
            qdata = {k: v for k, v in qdata.items() if k != "order"}
            current = by_code.get(str(qdata["code"]).strip())
            if current is None:
                catalog.add_question(session, service, qdata)
            else:
                catalog.update_question(session, service, current, qdata)
        ordered = {code: i for i, code in enumerate(_ordered_codes(entry), 1)}
        for attr in service.attributes:
            attr.order = ordered.get(attr.code, attr.order)
        session.flush()
