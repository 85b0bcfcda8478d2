"""A city's whole set-up as one YAML file: export it, check it, make a city match it.

The file (``version: 1``) holds the city's settings, business calendar, the layers it
refers to (by name and version: zones are not in the file), departments, crews and the
zones they own, categories with their questions, the published routing rules, response
and mail templates, help articles, mail addresses and settings, the retention
policy, and the escalation policies (``escalation``: the city's default; a category's
own ``escalation`` replaces it). Accounts and their memberships are people, not set-up: they are not in it.

:func:`export_city` and :func:`canonical` give the same shape, so making a city match a
file is a comparison of two documents section by section. :func:`apply_city` writes the
differences and returns one line per change (``+``, ``~``, ``-``); a second apply of the
same file returns none. Removal keeps what history needs: a category with requests is
deactivated rather than deleted, and a department or crew that requests refer to is kept
and reported with a ``!`` line (not a change). Every error is an
:class:`~spatial.errors.InvalidInput` whose message starts with the path inside the file
(``categories[3].questions[1].datatype: ...``); the caller's transaction is then left
for the caller to roll back, and nothing was written before the checks passed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jsonschema
import sqlalchemy as sa
import yaml
from sqlalchemy.orm import Session

from notify.links import mail_config
from notify.templates import check_template
from routing.categories import check_answer, parse_keywords
from routing.city_schema import LIST_DATATYPES, SCHEMA
from routing.engine import forget_rules, published
from routing.escalation import policies as escalation_policies
from routing.escalation import policy_values, remove_policy, save_policy
from routing.rules import create_draft, ordered_rules, parse_asset_condition, publish
from routing.sla import validate_calendar
from spatial.cities import city_by_open311_id, validate_host, validate_open311_id
from spatial.errors import InvalidInput
from spatial.models import (
    Crew,
    Department,
    Jurisdiction,
    ResponseTemplate,
    RoutingRule,
    RuleSet,
    Service,
    ServiceAttribute,
    ServiceRequest,
    Zone,
    ZoneLayer,
    now_utc,
)
from spatial.models_mail import FaqArticle, MailAddress, MailConfig, MessageTemplate
from spatial.models_ops import RetentionPolicy
from spatial.models_places import AssetLayer
from spatial.zones import validate_timezone

FORMAT_VERSION = 1
MAIL_DEFAULTS = {
    "dispatch_email": None,
    "from_address": None,
    "reply_limit_per_hour": 5,
    "accept_limit_per_hour": 30,
    "address_reply_limit_per_hour": 200,
    "trusted_authserv_id": None,
}
CITY_FIELDS = (
    "name",
    "timezone",
    "public_id_prefix",
    "moderation_hold",
    "open311_ids",
    "host",
    "reopen_days",
    "digest_hour",
)
RETENTION_FIELDS = ("contact_days", "answers_days", "raw_mail_days", "originals_days")
CATEGORY_FIELDS = (
    "name",
    "group",
    "description",
    "keywords",
    "type",
    "private",
    "internal",
    "active",
    "contact_required",
    "notice",
    "location_mode",
    "default_priority",
    "sla_hours",
    "sla_clock",
    "default_department",
)
QUESTION_FIELDS = (
    "datatype",
    "description",
    "help",
    "required",
    "variable",
    "values",
    "default_value",
)
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


# --------------------------------------------------------------------------- YAML


class _Dumper(yaml.SafeDumper):
    """Safe YAML with multi-line text as ``|`` blocks, lists indented under their key."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> Any:
        return super().increase_indent(flow, False)


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(document: dict[str, Any]) -> str:
    """The document as YAML: keys in the order given, the same text for the same set-up."""
    return yaml.dump(
        document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100, indent=2
    )


def parse(text: str) -> Any:
    """The YAML text as data; a syntax error names its line and column."""
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        raise InvalidInput(f"{where}: {exc.problem or exc.context}", field="file") from None
    except yaml.YAMLError as exc:
        raise InvalidInput(f"not a YAML file: {exc}", field="file") from None


# --------------------------------------------------------------------------- shapes


def _number(value: Any) -> Any:
    """Whole hours as integers, so that the file reads ``72`` rather than ``72.0``."""
    if value is None:
        return None
    value = float(value)
    return int(value) if value.is_integer() else value


def _text(value: Any) -> str | None:
    """Text as the catalogue's pages keep it: trimmed, and empty as none."""
    if not isinstance(value, str):
        return value
    return value.replace("\r\n", "\n").strip() or None


def _name(value: str) -> str:
    return " ".join(value.split())


def _clean_body(value: str) -> str:
    return value.replace("\r\n", "\n").strip() + "\n"


def _question(q: dict[str, Any]) -> dict[str, Any]:
    return {
        "code": q["code"],
        "datatype": q["datatype"],
        "description": _text(q["description"]),
        "help": _text(q.get("help")),
        "required": bool(q.get("required", False)),
        "variable": bool(q.get("variable", True)),
        "values": q.get("values"),
        "default_value": q.get("default_value"),
    }


def _escalation(p: dict[str, Any] | None) -> dict[str, Any] | None:
    if p is None:
        return None
    return {
        "untriaged_minutes": p.get("untriaged_minutes"),
        "when_overdue": bool(p.get("when_overdue", True)),
        "level2_minutes": p.get("level2_minutes"),
    }


def _category(c: dict[str, Any]) -> dict[str, Any]:
    return {
        "code": c["code"],
        "name": _text(c["name"]),
        "group": _text(c.get("group")),
        "description": _text(c.get("description")),
        "keywords": parse_keywords(c.get("keywords")),
        "type": c.get("type", "realtime"),
        "private": bool(c.get("private", False)),
        "internal": bool(c.get("internal", False)),
        "active": bool(c.get("active", True)),
        "contact_required": bool(c.get("contact_required", False)),
        "notice": _text(c.get("notice")),
        "location_mode": c.get("location_mode", "required"),
        "default_priority": c.get("default_priority", "normal"),
        "sla_hours": _number(c.get("sla_hours")),
        "sla_clock": c.get("sla_clock", "business"),
        "default_department": c.get("default_department"),
        "questions": [_question(q) for q in c.get("questions") or []],
        # Written only when set, as the export writes it.
        **({"asset_layer": c["asset_layer"]} if c.get("asset_layer") else {}),
        **({"escalation": _escalation(c["escalation"])} if c.get("escalation") else {}),
    }


def _rule(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": r["name"].strip(),
        "category": r.get("category"),
        "group": r.get("group"),
        "layer": r.get("layer"),
        "zone": r.get("zone"),
        "department": r["department"],
        "crew": r.get("crew"),
        "crew_from_zone": bool(r.get("crew_from_zone", False)),
        "priority": r.get("priority"),
        "sla_hours": _number(r.get("sla_hours")),
        "active": bool(r.get("active", True)),
        # Written only when set, as the export writes it.
        **(
            {
                "asset": {
                    "attribute": r["asset"]["attribute"].strip(),
                    "value": r["asset"]["value"].strip(),
                }
            }
            if r.get("asset")
            else {}
        ),
    }


def canonical(data: dict[str, Any]) -> dict[str, Any]:
    """A schema-valid file with every default filled in, in export order and shape."""
    city = data.get("city") or {}
    mail = data.get("mail") or {}
    retention = data.get("retention") or {}
    return {
        "version": FORMAT_VERSION,
        # Only the settings the file names: a file without ``host`` leaves the host alone.
        "city": {k: city[k] for k in CITY_FIELDS if k in city},
        "calendar": data.get("calendar"),
        "layers": [
            {"name": x["name"], "version": x.get("version"), "title": x.get("title")}
            for x in data.get("layers") or []
        ],
        "departments": [
            {
                "code": d["code"],
                "name": _name(d["name"]),
                "email": d["email"].strip().lower() if d.get("email") else None,
                "escalation_email": (
                    d["escalation_email"].strip().lower() if d.get("escalation_email") else None
                ),
            }
            for d in data.get("departments") or []
        ],
        "crews": [
            {
                "department": c["department"],
                "code": c["code"],
                "name": _name(c["name"]),
                "zones": sorted(
                    ({"layer": z["layer"], "code": z["code"]} for z in c.get("zones") or []),
                    key=lambda z: (z["layer"], z["code"]),
                ),
            }
            for c in data.get("crews") or []
        ],
        "categories": [_category(c) for c in data.get("categories") or []],
        "rules": [_rule(r) for r in data.get("rules") or []],
        "response_templates": [
            {"name": t["name"].strip(), "category": t.get("category"), "body": t["body"].strip()}
            for t in data.get("response_templates") or []
        ],
        "mail_templates": [
            dict(
                zip(
                    ("kind", "subject", "body"),
                    (t["kind"], *_checked_template(t)),
                    strict=True,
                )
            )
            for t in data.get("mail_templates") or []
        ],
        "faq": [
            {
                "slug": a["slug"],
                "title": " ".join(a["title"].split()),
                "topic": " ".join((a.get("topic") or "").split()) or None,
                "category": a.get("category"),
                "published": bool(a.get("published", True)),
                "position": int(a.get("position", 0)),
                "body": _clean_body(a["body"]),
            }
            for a in data.get("faq") or []
        ],
        "mail": {
            "addresses": [
                {
                    "address": m["address"].strip().lower(),
                    "category": m["category"],
                    "department": m.get("department"),
                    "active": bool(m.get("active", True)),
                }
                for m in mail.get("addresses") or []
            ],
            **{k: mail.get(k, default) for k, default in MAIL_DEFAULTS.items()},
        },
        "retention": {k: retention.get(k) for k in RETENTION_FIELDS},
        "escalation": _escalation(data.get("escalation")),
    }


def _checked_template(t: dict[str, Any]) -> tuple[str, str]:
    try:
        return check_template(t["kind"], t["subject"], t["body"])
    except InvalidInput:
        return t["subject"], t["body"]  # reported with its path by validate()


# --------------------------------------------------------------------------- export


def _code_of(rows: dict[int, str], key: int | None) -> str | None:
    return None if key is None else rows.get(key)


def export_city(session: Session, city: Jurisdiction) -> dict[str, Any]:
    """The city's set-up as a city-file document (see :func:`dump`)."""
    j = city.id
    departments = list(
        session.scalars(
            sa.select(Department).where(Department.jurisdiction_id == j).order_by(Department.code)
        )
    )
    dept_codes = {d.id: d.code for d in departments}
    crews = list(
        session.execute(
            sa.select(Crew, Department.code)
            .join(Department, Department.id == Crew.department_id)
            .where(Department.jurisdiction_id == j)
            .order_by(Department.code, Crew.code)
        )
    )
    crew_codes = {c.id: c.code for c, _ in crews}
    layers = list(
        session.scalars(
            sa.select(ZoneLayer)
            .where(ZoneLayer.jurisdiction_id == j, ZoneLayer.is_current)
            .order_by(ZoneLayer.name)
        )
    )
    owned: dict[int, list[dict[str, str]]] = {}
    for crew_id, layer_name, zone_code in session.execute(
        sa.select(Zone.crew_id, ZoneLayer.name, Zone.code)
        .join(ZoneLayer, ZoneLayer.id == Zone.layer_id)
        .where(ZoneLayer.jurisdiction_id == j, ZoneLayer.is_current, Zone.crew_id.is_not(None))
        .order_by(ZoneLayer.name, Zone.code)
    ):
        owned.setdefault(crew_id, []).append({"layer": layer_name, "code": zone_code})
    services = list(
        session.scalars(
            sa.select(Service).where(Service.jurisdiction_id == j).order_by(Service.code)
        )
    )
    service_codes = {s.id: s.code for s in services}
    asset_layers = dict(
        session.execute(
            sa.select(AssetLayer.id, AssetLayer.name).where(AssetLayer.jurisdiction_id == j)
        ).all()
    )
    rs = published(session, city)
    rules = ordered_rules(session, rs) if rs is not None else []
    mail_cfg = session.get(MailConfig, j)
    policy = session.get(RetentionPolicy, j)
    escalations = escalation_policies(session, city)
    return {
        "version": FORMAT_VERSION,
        "city": {
            "name": city.name,
            "timezone": city.timezone,
            "public_id_prefix": city.public_id_prefix,
            "moderation_hold": city.moderation_hold,
            "open311_ids": list(city.open311_ids or []),
            "host": city.host,
            "reopen_days": city.reopen_days,
            "digest_hour": city.digest_hour,
        },
        "calendar": city.business_calendar,
        "layers": [{"name": x.name, "version": x.version, "title": x.title} for x in layers],
        "departments": [
            {
                "code": d.code,
                "name": d.name,
                "email": d.email,
                "escalation_email": d.escalation_email,
            }
            for d in departments
        ],
        "crews": [
            {"department": dept, "code": c.code, "name": c.name, "zones": owned.get(c.id, [])}
            for c, dept in crews
        ],
        "categories": [
            {
                "code": s.code,
                "name": s.name,
                "group": s.group,
                "description": s.description,
                "keywords": s.keywords,
                "type": s.type,
                "private": s.private,
                "internal": s.internal,
                "active": s.active,
                "contact_required": s.contact_required,
                "notice": s.notice,
                "location_mode": s.location_mode,
                "default_priority": s.default_priority,
                "sla_hours": _number(s.sla_hours),
                "sla_clock": s.sla_clock,
                "default_department": _code_of(dept_codes, s.default_department_id),
                "questions": [
                    {
                        "code": a.code,
                        "datatype": a.datatype,
                        "description": a.description,
                        "help": a.datatype_description,
                        "required": a.required,
                        "variable": a.variable,
                        "values": a.values,
                        "default_value": a.default_value,
                    }
                    for a in sorted(s.attributes, key=lambda a: (a.order, a.id))
                ],
                **(
                    {"asset_layer": asset_layers.get(s.asset_layer_id)}
                    if s.asset_layer_id in asset_layers
                    else {}
                ),
                **({"escalation": policy_values(escalations[s.id])} if s.id in escalations else {}),
            }
            for s in services
        ],
        "rules": [
            {
                "name": r.name,
                "category": _code_of(service_codes, r.service_id),
                "group": r.service_group,
                "layer": r.layer_name,
                "zone": r.zone_code,
                "department": dept_codes.get(r.department_id),
                "crew": _code_of(crew_codes, r.crew_id),
                "crew_from_zone": r.crew_from_zone,
                "priority": r.priority,
                "sla_hours": _number(r.sla_hours),
                "active": r.active,
                **(
                    {"asset": {"attribute": r.asset_attribute, "value": r.asset_value}}
                    if r.asset_attribute is not None
                    else {}
                ),
            }
            for r in rules
        ],
        "response_templates": [
            {"name": t.name, "category": _code_of(service_codes, t.service_id), "body": t.body}
            for t in session.scalars(
                sa.select(ResponseTemplate)
                .where(ResponseTemplate.jurisdiction_id == j)
                .order_by(ResponseTemplate.name)
            )
        ],
        "mail_templates": [
            {"kind": t.kind, "subject": t.subject, "body": t.body}
            for t in session.scalars(
                sa.select(MessageTemplate)
                .where(MessageTemplate.jurisdiction_id == j)
                .order_by(MessageTemplate.kind)
            )
        ],
        "faq": [
            {
                "slug": a.slug,
                "title": a.title,
                "topic": a.topic,
                "category": _code_of(service_codes, a.service_id),
                "published": a.published,
                "position": a.position,
                "body": a.body,
            }
            for a in session.scalars(
                sa.select(FaqArticle)
                .where(FaqArticle.jurisdiction_id == j)
                .order_by(FaqArticle.position, FaqArticle.slug)
            )
        ],
        "mail": {
            "addresses": [
                {
                    "address": m.address,
                    "category": service_codes.get(m.service_id),
                    "department": _code_of(dept_codes, m.department_id),
                    "active": m.active,
                }
                for m in session.scalars(
                    sa.select(MailAddress)
                    .where(MailAddress.jurisdiction_id == j)
                    .order_by(MailAddress.address)
                )
            ],
            **{
                k: (getattr(mail_cfg, k) if mail_cfg is not None else default)
                for k, default in MAIL_DEFAULTS.items()
            },
        },
        "retention": {
            k: (getattr(policy, k) if policy is not None else None) for k in RETENTION_FIELDS
        },
        "escalation": policy_values(escalations.get(None)),
    }


# --------------------------------------------------------------------------- validation


def _path(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _bad(path: str, message: str) -> InvalidInput:
    return InvalidInput(f"{path}: {message}", field=path)


def check_schema(data: Any) -> None:
    """The first schema error as ``path: message``."""
    error = jsonschema.exceptions.best_match(VALIDATOR.iter_errors(data))
    if error is not None:
        raise _bad(_path(error.absolute_path), error.message)


def _unique(items: list[dict[str, Any]], key: Any, section: str, what: str) -> None:
    seen: set[Any] = set()
    for i, item in enumerate(items):
        k = key(item)
        if k in seen:
            raise _bad(f"{section}[{i}]", f"{what} {k!r} appears twice")
        seen.add(k)


def _check_question(path: str, q: dict[str, Any]) -> None:
    values = q["values"]
    default = q["default_value"]
    listed = q["datatype"] in LIST_DATATYPES
    if listed and not values:
        raise _bad(f"{path}.values", f"a {q['datatype']} question needs values")
    if not listed and values:
        raise _bad(f"{path}.values", f"a {q['datatype']} question takes no values")
    if values:
        _unique(values, lambda v: v["key"], f"{path}.values", "key")
    if q["datatype"] == "multivaluelist" and default is not None and not isinstance(default, list):
        raise _bad(f"{path}.default_value", "a multivaluelist default is a list of keys")
    try:
        # As the category pages keep it: an empty default is none, list keys once each.
        q["default_value"] = check_answer(q["datatype"], values, default)
    except InvalidInput as exc:
        raise _bad(f"{path}.default_value", str(exc)) from None


def validate(session: Session, city: Jurisdiction, data: Any) -> dict[str, Any]:
    """Check a parsed file against the schema, itself and the city; return it canonical."""
    check_schema(data)
    doc = canonical(data)
    c = {k: doc["city"].get(k) for k in CITY_FIELDS}
    if c["timezone"] is not None:
        try:
            validate_timezone(c["timezone"])
        except InvalidInput as exc:
            raise _bad("city.timezone", str(exc)) from None
    if c["host"] is not None:
        try:
            host = validate_host(c["host"])
        except InvalidInput as exc:
            raise _bad("city.host", str(exc)) from None
        other = session.scalar(
            sa.select(Jurisdiction.slug).where(
                Jurisdiction.host == host, Jurisdiction.id != city.id
            )
        )
        if other is not None:
            raise _bad("city.host", f"{host!r} already serves the city {other!r}")
    if c["public_id_prefix"] is not None:
        other = session.scalar(
            sa.select(Jurisdiction.slug).where(
                Jurisdiction.public_id_prefix == c["public_id_prefix"],
                Jurisdiction.id != city.id,
            )
        )
        if other is not None:
            # Public ids are unique across the install: two cities numbering LA-2026-...
            # would hand out the same ids.
            raise _bad(
                "city.public_id_prefix",
                f"{c['public_id_prefix']!r} is the public id prefix of the city {other!r}",
            )
    for i, value in enumerate(c["open311_ids"] or []):
        try:
            value = validate_open311_id(value)
        except InvalidInput as exc:
            raise _bad(f"city.open311_ids[{i}]", str(exc)) from None
        other_city = city_by_open311_id(session, value)
        if other_city is not None and other_city.id != city.id:
            raise _bad(f"city.open311_ids[{i}]", f"{value!r} already names {other_city.slug!r}")
    if doc["calendar"] is not None:
        try:
            validate_calendar(doc["calendar"])
        except InvalidInput as exc:
            raise _bad("calendar", str(exc).removeprefix("business calendar: ")) from None

    # Layers: referenced, so the city must have them (current) at the version named.
    _unique(doc["layers"], lambda x: x["name"], "layers", "layer")
    zones_of: dict[str, set[str]] = {}
    for i, layer in enumerate(doc["layers"]):
        current = session.scalar(
            sa.select(ZoneLayer).where(
                ZoneLayer.jurisdiction_id == city.id,
                ZoneLayer.name == layer["name"],
                ZoneLayer.is_current,
            )
        )
        if current is None:
            raise _bad(
                f"layers[{i}].name",
                f"{city.slug} has no layer {layer['name']!r}: import it first "
                "(civicpin zones import)",
            )
        if layer["version"] is not None and layer["version"] != current.version:
            raise _bad(
                f"layers[{i}].version",
                f"{city.slug}'s current version of {layer['name']!r} is {current.version}",
            )
        zones_of[layer["name"]] = set(
            session.scalars(sa.select(Zone.code).where(Zone.layer_id == current.id))
        )

    def zone_ref(path: str, layer: str | None, zone: str | None) -> None:
        if layer is not None and layer not in zones_of:
            raise _bad(f"{path}.layer", f"layer {layer!r} is not among the file's layers")
        if zone is not None:
            if layer is None:
                raise _bad(f"{path}.zone", "a zone needs its layer")
            if zone not in zones_of[layer]:
                raise _bad(f"{path}.zone", f"layer {layer!r} has no zone {zone!r}")

    _unique(doc["departments"], lambda d: d["code"], "departments", "department code")
    departments = {d["code"] for d in doc["departments"]}
    _unique(doc["crews"], lambda c: (c["department"], c["code"]), "crews", "crew")
    crews: set[tuple[str, str]] = set()
    owner: dict[tuple[str, str], str] = {}
    for i, crew in enumerate(doc["crews"]):
        if crew["department"] not in departments:
            raise _bad(
                f"crews[{i}].department", f"no department {crew['department']!r} in the file"
            )
        crews.add((crew["department"], crew["code"]))
        for k, z in enumerate(crew["zones"]):
            path = f"crews[{i}].zones[{k}]"
            if z["layer"] not in zones_of:
                raise _bad(f"{path}.layer", f"layer {z['layer']!r} is not among the file's layers")
            if z["code"] not in zones_of[z["layer"]]:
                raise _bad(f"{path}.code", f"layer {z['layer']!r} has no zone {z['code']!r}")
            key = (z["layer"], z["code"])
            if key in owner:
                raise _bad(path, f"zone {z['code']!r} of {z['layer']!r} is {owner[key]}'s already")
            owner[key] = f"crews[{i}]"

    _unique(doc["categories"], lambda c: c["code"], "categories", "category code")
    categories = {c["code"] for c in doc["categories"]}
    asset_layers = set(
        session.scalars(sa.select(AssetLayer.name).where(AssetLayer.jurisdiction_id == city.id))
    )
    groups = {c["group"] for c in doc["categories"] if c["group"]}
    for i, cat in enumerate(doc["categories"]):
        path = f"categories[{i}]"
        dept = cat["default_department"]
        if dept is not None and dept not in departments:
            raise _bad(f"{path}.default_department", f"no department {dept!r} in the file")
        if cat.get("asset_layer") and cat["asset_layer"] not in asset_layers:
            raise _bad(
                f"{path}.asset_layer",
                f"{city.slug} has no asset layer {cat['asset_layer']!r}: import its assets first"
                + (f" (its layers: {', '.join(sorted(asset_layers))})" if asset_layers else ""),
            )
        _unique(cat["questions"], lambda q: q["code"], f"{path}.questions", "question code")
        for k, q in enumerate(cat["questions"]):
            _check_question(f"{path}.questions[{k}]", q)

    for i, rule in enumerate(doc["rules"]):
        path = f"rules[{i}]"
        if rule["category"] is not None and rule["group"] is not None:
            raise _bad(path, "a rule matches a category or a group, not both")
        if rule["category"] is not None and rule["category"] not in categories:
            raise _bad(f"{path}.category", f"no category {rule['category']!r} in the file")
        if rule["group"] is not None and rule["group"] not in groups:
            raise _bad(f"{path}.group", f"no category of group {rule['group']!r} in the file")
        zone_ref(path, rule["layer"], rule["zone"])
        if rule["department"] not in departments:
            raise _bad(f"{path}.department", f"no department {rule['department']!r} in the file")
        if rule["crew"] is not None and (rule["department"], rule["crew"]) not in crews:
            raise _bad(
                f"{path}.crew",
                f"department {rule['department']!r} has no crew {rule['crew']!r} in the file",
            )
        if rule["crew_from_zone"] and rule["layer"] is None:
            raise _bad(f"{path}.crew_from_zone", "'crew from zone' needs a layer")
        if rule.get("asset"):
            try:
                parse_asset_condition(rule["asset"]["attribute"], rule["asset"]["value"])
            except InvalidInput as exc:
                field = "attribute" if exc.field == "asset_attribute" else "value"
                raise _bad(f"{path}.asset.{field}", str(exc)) from None

    _unique(doc["response_templates"], lambda t: t["name"], "response_templates", "name")
    for i, t in enumerate(doc["response_templates"]):
        if t["category"] is not None and t["category"] not in categories:
            raise _bad(f"response_templates[{i}].category", f"no category {t['category']!r}")
    _unique(doc["mail_templates"], lambda t: t["kind"], "mail_templates", "kind")
    for i, t in enumerate(data.get("mail_templates") or []):
        try:
            check_template(t["kind"], t["subject"], t["body"])
        except InvalidInput as exc:
            raise _bad(f"mail_templates[{i}].{exc.field or 'body'}", str(exc)) from None
    _unique(doc["faq"], lambda a: a["slug"], "faq", "slug")
    for i, a in enumerate(doc["faq"]):
        if a["category"] is not None and a["category"] not in categories:
            raise _bad(f"faq[{i}].category", f"no category {a['category']!r} in the file")
    _unique(doc["mail"]["addresses"], lambda m: m["address"], "mail.addresses", "address")
    for i, m in enumerate(doc["mail"]["addresses"]):
        path = f"mail.addresses[{i}]"
        if m["category"] not in categories:
            raise _bad(f"{path}.category", f"no category {m['category']!r} in the file")
        if m["department"] is not None and m["department"] not in departments:
            raise _bad(f"{path}.department", f"no department {m['department']!r} in the file")
        other = session.scalar(
            sa.select(Jurisdiction.slug)
            .join(MailAddress, MailAddress.jurisdiction_id == Jurisdiction.id)
            .where(sa.func.lower(MailAddress.address) == m["address"], Jurisdiction.id != city.id)
        )
        if other is not None:
            raise _bad(f"{path}.address", f"{m['address']} is an intake address of {other!r}")
    return doc


# --------------------------------------------------------------------------- apply


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
        return text if len(text) <= 60 else text[:57] + "..."
    text = str(value).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


def _diff(kind: str, name: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    fields = [k for k in new if k in old and old[k] != new[k]]
    if not fields:
        return []
    parts = ", ".join(f"{k} {_show(old[k])} -> {_show(new[k])}" for k in fields)
    return [f"~ {kind} {name}: {parts}"]


class _Apply:
    """One apply: the city's current document, the file's, and the lines written."""

    def __init__(self, session: Session, city: Jurisdiction, doc: dict[str, Any], by: str):
        self.by = by
        self.s = session
        self.city = city
        self.doc = doc
        self.old = export_city(session, city)
        self.lines: list[str] = []
        self.notes: list[str] = []

    # ids by code, read after each section that may add rows
    def departments(self) -> dict[str, Department]:
        return {
            d.code: d
            for d in self.s.scalars(
                sa.select(Department).where(Department.jurisdiction_id == self.city.id)
            )
        }

    def crews(self) -> dict[tuple[str, str], Crew]:
        return {
            (dept, c.code): c
            for c, dept in self.s.execute(
                sa.select(Crew, Department.code)
                .join(Department, Department.id == Crew.department_id)
                .where(Department.jurisdiction_id == self.city.id)
            )
        }

    def services(self) -> dict[str, Service]:
        return {
            s.code: s
            for s in self.s.scalars(
                sa.select(Service).where(Service.jurisdiction_id == self.city.id)
            )
        }

    def run(self) -> list[str]:
        self.city_settings()
        self.upsert_departments()
        self.upsert_crews()
        self.upsert_categories()
        self.zone_links()
        self.rules()
        self.response_templates()
        self.mail_templates()
        self.faq()
        self.mail()
        self.retention()
        self.escalation()
        self.remove_categories()
        self.remove_crews()
        self.remove_departments()
        self.s.flush()
        return self.lines

    def city_settings(self) -> None:
        new = dict(self.doc["city"])
        if new.get("host") is not None:
            new["host"] = validate_host(new["host"])
        if "open311_ids" in new:
            new["open311_ids"] = [
                validate_open311_id(v) for v in new["open311_ids"] if v != self.city.slug
            ]
        if changed := _diff("city", self.city.slug, self.old["city"], new):
            for key, value in new.items():
                setattr(self.city, key, value)
            self.lines += changed
        if self.doc["calendar"] != self.old["calendar"]:
            self.city.business_calendar = self.doc["calendar"]
            state = "set" if self.doc["calendar"] is not None else "removed"
            self.lines.append(f"~ calendar: {state}")
        self.s.flush()

    def upsert_departments(self) -> None:
        have = {d["code"]: d for d in self.old["departments"]}
        rows = self.departments()
        for d in self.doc["departments"]:
            if d["code"] not in have:
                self.s.add(
                    Department(
                        jurisdiction_id=self.city.id,
                        code=d["code"],
                        name=d["name"],
                        email=d["email"],
                        escalation_email=d["escalation_email"],
                    )
                )
                self.lines.append(f"+ department {d['code']}")
            else:
                changed = _diff("department", d["code"], have[d["code"]], d)
                if changed:
                    row = rows[d["code"]]
                    row.name, row.email = d["name"], d["email"]
                    row.escalation_email = d["escalation_email"]
                    self.lines += changed
        self.s.flush()

    def upsert_crews(self) -> None:
        have = {(c["department"], c["code"]): c for c in self.old["crews"]}
        departments = self.departments()
        rows = self.crews()
        for c in self.doc["crews"]:
            key = (c["department"], c["code"])
            label = f"{c['department']}/{c['code']}"
            if key not in have:
                self.s.add(
                    Crew(
                        department_id=departments[c["department"]].id,
                        code=c["code"],
                        name=c["name"],
                    )
                )
                self.lines.append(f"+ crew {label}")
            else:
                changed = _diff("crew", label, have[key], {"name": c["name"]})
                if changed:
                    rows[key].name = c["name"]
                    self.lines += changed
        self.s.flush()

    def upsert_categories(self) -> None:
        have = {c["code"]: c for c in self.old["categories"]}
        departments = {code: d.id for code, d in self.departments().items()}
        rows = self.services()
        asset_layers = dict(
            self.s.execute(
                sa.select(AssetLayer.name, AssetLayer.id).where(
                    AssetLayer.jurisdiction_id == self.city.id
                )
            ).all()
        )
        for c in self.doc["categories"]:
            fields = {k: c[k] for k in CATEGORY_FIELDS}
            values = {
                **{k: v for k, v in fields.items() if k != "default_department"},
                "default_department_id": departments.get(c["default_department"]),
                "sla_hours": None if c["sla_hours"] is None else float(c["sla_hours"]),
                "asset_layer_id": asset_layers.get(c.get("asset_layer")),
            }
            old = have.get(c["code"])
            if old is None:
                service = Service(jurisdiction_id=self.city.id, code=c["code"], **values)
                self.s.add(service)
                self.lines.append(f"+ category {c['code']}")
            else:
                service = rows[c["code"]]
                changed = _diff(
                    "category",
                    c["code"],
                    {k: old.get(k) for k in (*CATEGORY_FIELDS, "asset_layer")},
                    {**fields, "asset_layer": c.get("asset_layer")},
                )
                if changed:
                    for key, value in values.items():
                        setattr(service, key, value)
                    self.lines += changed
            if service.internal:
                service.private = True  # a staff-only category stays private
            self.questions(service, c, old)
        self.s.flush()

    def questions(self, service: Service, c: dict[str, Any], old: dict[str, Any] | None) -> None:
        have = {q["code"]: q for q in (old or {}).get("questions", [])}
        rows = {a.code: a for a in service.attributes}
        wanted = [q["code"] for q in c["questions"]]
        for position, q in enumerate(c["questions"], start=1):
            label = f"{c['code']}.{q['code']}"
            values = {
                "datatype": q["datatype"],
                "description": q["description"],
                "datatype_description": q["help"],
                "required": q["required"],
                "variable": q["variable"],
                "values": q["values"],
                "default_value": q["default_value"],
                "order": position,
            }
            row = rows.get(q["code"])
            if row is None:
                service.attributes.append(ServiceAttribute(code=q["code"], **values))
                if old is not None:
                    self.lines.append(f"+ question {label}")
                continue
            changed = _diff("question", label, have[q["code"]], {k: q[k] for k in QUESTION_FIELDS})
            if row.order != position:
                changed = changed or [f"~ question {label}: order {row.order} -> {position}"]
            if changed:
                for key, value in values.items():
                    setattr(row, key, value)
                self.lines += changed
        for code, row in rows.items():
            if code not in wanted:
                service.attributes.remove(row)
                self.lines.append(f"- question {c['code']}.{code}")

    def zone_links(self) -> None:
        have = {(c["department"], c["code"]): c["zones"] for c in self.old["crews"]}
        crews = self.crews()
        desired: dict[tuple[str, str], Crew] = {}
        for c in self.doc["crews"]:
            key = (c["department"], c["code"])
            if have.get(key, []) != c["zones"]:
                self.lines.append(
                    f"~ crew {c['department']}/{c['code']}: zones "
                    f"{_show([z['code'] for z in have.get(key, [])])} -> "
                    f"{_show([z['code'] for z in c['zones']])}"
                )
            for z in c["zones"]:
                desired[(z["layer"], z["code"])] = crews[key]
        zones = self.s.execute(
            sa.select(Zone, ZoneLayer.name)
            .join(ZoneLayer, ZoneLayer.id == Zone.layer_id)
            .where(ZoneLayer.jurisdiction_id == self.city.id, ZoneLayer.is_current)
        ).all()
        departments_of = {c.id: c.department_id for c in crews.values()}
        for zone, layer_name in zones:
            crew = desired.get((layer_name, zone.code))
            if crew is not None and zone.crew_id != crew.id:
                zone.crew_id, zone.department_id = crew.id, crew.department_id
            elif crew is None and zone.crew_id is not None:
                # The department came with the crew; a zone's own department link stays.
                if zone.department_id == departments_of.get(zone.crew_id):
                    zone.department_id = None
                zone.crew_id = None
        self.s.flush()

    def rules(self) -> None:
        if self.doc["rules"] == self.old["rules"]:
            return
        if not self.doc["rules"]:
            self.s.execute(
                sa.update(RuleSet)
                .where(RuleSet.jurisdiction_id == self.city.id, RuleSet.status == "published")
                .values(status="retired")
            )
            forget_rules()
            self.lines.append("- rules: the published rule set is retired (no rules)")
            return
        departments = {code: d.id for code, d in self.departments().items()}
        crews = {key: c.id for key, c in self.crews().items()}
        services = {code: s.id for code, s in self.services().items()}
        draft = create_draft(self.s, self.city, note="city apply")
        for rule in ordered_rules(self.s, draft):
            self.s.delete(rule)
        self.s.flush()
        for position, r in enumerate(self.doc["rules"], start=1):
            self.s.add(
                RoutingRule(
                    ruleset_id=draft.id,
                    position=position,
                    name=r["name"],
                    service_id=services.get(r["category"]) if r["category"] else None,
                    service_group=r["group"],
                    layer_name=r["layer"],
                    zone_code=r["zone"],
                    department_id=departments[r["department"]],
                    crew_id=crews[(r["department"], r["crew"])] if r["crew"] else None,
                    crew_from_zone=r["crew_from_zone"],
                    priority=r["priority"],
                    sla_hours=None if r["sla_hours"] is None else float(r["sla_hours"]),
                    active=r["active"],
                    asset_attribute=r["asset"]["attribute"] if r.get("asset") else None,
                    asset_value=r["asset"]["value"] if r.get("asset") else None,
                )
            )
        self.s.flush()
        publish(self.s, self.city, draft.id, by=self.by)
        self.lines.append(
            f"~ rules: version {draft.version} published ({len(self.doc['rules'])} rules)"
        )

    def response_templates(self) -> None:
        services = {code: s.id for code, s in self.services().items()}
        rows = {
            t.name: t
            for t in self.s.scalars(
                sa.select(ResponseTemplate).where(ResponseTemplate.jurisdiction_id == self.city.id)
            )
        }
        have = {t["name"]: t for t in self.old["response_templates"]}
        for t in self.doc["response_templates"]:
            service_id = services.get(t["category"]) if t["category"] else None
            if t["name"] not in have:
                self.s.add(
                    ResponseTemplate(
                        jurisdiction_id=self.city.id,
                        name=t["name"],
                        body=t["body"],
                        service_id=service_id,
                    )
                )
                self.lines.append(f"+ template {t['name']}")
            elif changed := _diff("template", t["name"], have[t["name"]], t):
                row = rows[t["name"]]
                row.body, row.service_id = t["body"], service_id
                self.lines += changed
        for name, row in rows.items():
            if name not in {t["name"] for t in self.doc["response_templates"]}:
                self.s.delete(row)
                self.lines.append(f"- template {name}")
        self.s.flush()

    def mail_templates(self) -> None:
        rows = {
            t.kind: t
            for t in self.s.scalars(
                sa.select(MessageTemplate).where(MessageTemplate.jurisdiction_id == self.city.id)
            )
        }
        have = {t["kind"]: t for t in self.old["mail_templates"]}
        for t in self.doc["mail_templates"]:
            row = rows.get(t["kind"])
            if row is None:
                row = MessageTemplate(jurisdiction_id=self.city.id, kind=t["kind"])
                self.s.add(row)
                self.lines.append(f"+ mail template {t['kind']}")
            elif changed := _diff("mail template", t["kind"], have[t["kind"]], t):
                self.lines += changed
            else:
                continue
            row.subject, row.body = t["subject"], t["body"]
            row.updated_at, row.updated_by = now_utc(), self.by
        for kind, row in rows.items():
            if kind not in {t["kind"] for t in self.doc["mail_templates"]}:
                self.s.delete(row)
                self.lines.append(f"- mail template {kind}")
        self.s.flush()

    def faq(self) -> None:
        services = {code: s.id for code, s in self.services().items()}
        rows = {
            a.slug: a
            for a in self.s.scalars(
                sa.select(FaqArticle).where(FaqArticle.jurisdiction_id == self.city.id)
            )
        }
        have = {a["slug"]: a for a in self.old["faq"]}
        for a in self.doc["faq"]:
            row = rows.get(a["slug"])
            if row is None:
                row = FaqArticle(jurisdiction_id=self.city.id, slug=a["slug"])
                self.s.add(row)
                self.lines.append(f"+ faq {a['slug']}")
            elif changed := _diff("faq", a["slug"], have[a["slug"]], a):
                self.lines += changed
            else:
                continue
            row.title, row.topic, row.body = a["title"], a["topic"], a["body"]
            row.published, row.position = a["published"], a["position"]
            row.service_id = services.get(a["category"]) if a["category"] else None
            row.updated_at, row.updated_by = now_utc(), self.by
        for slug, row in rows.items():
            if slug not in {a["slug"] for a in self.doc["faq"]}:
                self.s.delete(row)
                self.lines.append(f"- faq {slug}")
        self.s.flush()

    def mail(self) -> None:
        services = {code: s.id for code, s in self.services().items()}
        departments = {code: d.id for code, d in self.departments().items()}
        rows = {
            m.address: m
            for m in self.s.scalars(
                sa.select(MailAddress).where(MailAddress.jurisdiction_id == self.city.id)
            )
        }
        have = {m["address"]: m for m in self.old["mail"]["addresses"]}
        wanted = self.doc["mail"]["addresses"]
        for m in wanted:
            row = rows.get(m["address"])
            if row is None:
                row = MailAddress(jurisdiction_id=self.city.id, address=m["address"])
                self.s.add(row)
                self.lines.append(f"+ mail address {m['address']}")
            elif changed := _diff("mail address", m["address"], have[m["address"]], m):
                self.lines += changed
            else:
                continue
            row.service_id = services[m["category"]]
            row.department_id = departments.get(m["department"]) if m["department"] else None
            row.active = m["active"]
        for address, row in rows.items():
            if address not in {m["address"] for m in wanted}:
                self.s.delete(row)
                self.lines.append(f"- mail address {address}")
        settings = {k: self.doc["mail"][k] for k in MAIL_DEFAULTS}
        old = {k: self.old["mail"][k] for k in MAIL_DEFAULTS}
        if changed := _diff("mail", "settings", old, settings):
            cfg = mail_config(self.s, self.city.id)
            for key, value in settings.items():
                setattr(cfg, key, value)
            self.lines += changed
        self.s.flush()

    def retention(self) -> None:
        new = self.doc["retention"]
        if changed := _diff("retention", "policy", self.old["retention"], new):
            policy = self.s.get(RetentionPolicy, self.city.id)
            if policy is None:
                policy = RetentionPolicy(jurisdiction_id=self.city.id)
                self.s.add(policy)
            for key, value in new.items():
                setattr(policy, key, value)
            policy.updated_at, policy.updated_by = now_utc(), self.by
            self.lines += changed
            self.s.flush()

    def escalation(self) -> None:
        """The city's default policy and each category of the file's own."""
        services = self.services()
        old = {None: self.old["escalation"]}
        new = {None: self.doc["escalation"]}
        for c in self.old["categories"]:
            old[c["code"]] = c.get("escalation")
        for c in self.doc["categories"]:
            new[c["code"]] = c.get("escalation")
        for code, wanted in new.items():
            have = old.get(code)
            label = code or "default"
            service_id = services[code].id if code else None
            if wanted == have:
                continue
            if wanted is None:
                remove_policy(self.s, self.city, service_id)
                self.lines.append(f"- escalation {label}")
                continue
            save_policy(self.s, self.city, service_id, **wanted)
            if have is None:
                self.lines.append(f"+ escalation {label}")
            else:
                self.lines += _diff("escalation", label, have, wanted)
        self.s.flush()

    def _requests(self, column: Any, value: int) -> int:
        return self.s.scalar(sa.select(sa.func.count()).where(column == value)) or 0

    def remove_categories(self) -> None:
        wanted = {c["code"] for c in self.doc["categories"]}
        for code, service in sorted(self.services().items()):
            if code in wanted:
                continue
            used = self._requests(ServiceRequest.service_id, service.id)
            if not used:
                # The database's cascades take its questions and its old rule versions.
                self.s.execute(sa.delete(Service).where(Service.id == service.id))
                self.lines.append(f"- category {code}")
            elif service.active:
                service.active = False
                self.lines.append(
                    f"~ category {code}: active true -> false ({used} requests: deactivated, "
                    "not removed)"
                )
        self.s.flush()

    def remove_crews(self) -> None:
        wanted = {(c["department"], c["code"]) for c in self.doc["crews"]}
        for key, crew in sorted(self.crews().items()):
            if key in wanted:
                continue
            used = self._requests(ServiceRequest.crew_id, crew.id)
            if used:
                self.notes.append(f"! crew {key[0]}/{key[1]} kept: {used} requests refer to it")
            else:
                self.s.execute(sa.delete(Crew).where(Crew.id == crew.id))
                self.lines.append(f"- crew {key[0]}/{key[1]}")
        self.s.flush()

    def remove_departments(self) -> None:
        wanted = {d["code"] for d in self.doc["departments"]}
        for code, dept in sorted(self.departments().items()):
            if code in wanted:
                continue
            used = self._requests(ServiceRequest.department_id, dept.id)
            if used:
                self.notes.append(f"! department {code} kept: {used} requests refer to it")
            else:
                self.s.execute(sa.delete(Department).where(Department.id == dept.id))
                self.lines.append(f"- department {code}")
        self.s.flush()


def apply_city(
    session: Session, city: Jurisdiction, data: Any, by: str = "city apply"
) -> tuple[list[str], list[str]]:
    """Make ``city`` match the parsed file ``data`` in ``session``'s transaction.

    Returns the change lines and the notes (what removal kept, and why). Raises
    :class:`InvalidInput` naming the path in the file before anything is written.
    ``by`` is who applies it, as the templates, articles and re-routing record it.
    """
    if isinstance(data, dict):
        # A section the file leaves out stays as the city has it, so a file of only the
        # categories changes only the categories (and `city create`'s default templates
        # survive a file without templates); an empty section (`faq: []`) empties it.
        current = export_city(session, city)
        data = {**{k: v for k, v in current.items() if k not in data}, **data}
    doc = validate(session, city, data)
    run = _Apply(session, city, doc, by)
    return run.run(), run.notes
