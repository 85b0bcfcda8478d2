"""The city's catalogue: categories (Open311 services), their questions (Open311
attributes) and the city's business calendar.

The admin pages, the CLI and the Open311 catalogue import call these functions with plain
values: text from a form, or typed values from a command line or a file. Each checks every
field before it changes anything and raises :class:`InvalidInput` naming the field
(``code``, ``sla_hours``, ``values``...), so a caller that rolls back leaves nothing
half-written. Nothing here commits.

The Open311 catalogue (``services.json``, service definitions) is cached under the
settings stamp, which triggers on ``service`` and ``service_attribute`` raise: a change
shows there at the next request.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from routing.sla import DAY_KEYS, HHMM_RE, holiday_date, validate_calendar
from spatial.errors import InvalidInput, NotFound
from spatial.models import (
    LOCATION_MODES,
    PRIORITIES,
    SLA_CLOCKS,
    Department,
    Jurisdiction,
    RoutingRule,
    RuleSet,
    Service,
    ServiceAttribute,
    ServiceRequest,
)
from spatial.models_mail import MailAddress
from spatial.models_places import AssetLayer

# Open311 service and attribute codes travel in URLs (``services/CODE.json``), file names
# (an import's definitions) and form fields: letters, digits and ``_ . -`` only.
CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SERVICE_TYPES = ("realtime", "batch", "blackbox")
DATATYPES = ("string", "number", "datetime", "text", "singlevaluelist", "multivaluelist")
LIST_DATATYPES = ("singlevaluelist", "multivaluelist")
MAX_NAME = 200
MAX_GROUP = 100
MAX_TEXT = 4000
MAX_STRING = 500
MAX_KEYWORDS = 50

# The category fields a caller may give, in the order pages and listings show them.
CATEGORY_FIELDS = (
    "code",
    "name",
    "group",
    "description",
    "keywords",
    "type",
    "private",
    "internal",
    "contact_required",
    "location_mode",
    "notice",
    "default_department",
    "default_priority",
    "sla_hours",
    "sla_clock",
    "active",
    "asset_layer",
)
QUESTION_FIELDS = (
    "code",
    "datatype",
    "description",
    "datatype_description",
    "required",
    "variable",
    "order",
    "values",
    "default_value",
)

TRUE_WORDS = frozenset({"1", "on", "true", "yes", "y"})
FALSE_WORDS = frozenset({"", "0", "off", "false", "no", "n"})


# --------------------------------------------------------------------------- plain values


def _text(value: Any, field: str, limit: int, *, required: bool = False, label: str = "") -> Any:
    if value is None:
        text = None
    elif isinstance(value, str):
        text = value.replace("\r\n", "\n").strip() or None
    else:
        raise InvalidInput(f"{label or field} must be text", field=field)
    if text is None and required:
        raise InvalidInput(f"{label or field} is required", field=field)
    if text is not None and len(text) > limit:
        raise InvalidInput(f"{label or field} is longer than {limit} characters", field=field)
    return text


def _bool(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise InvalidInput(f"{field} must be yes or no, not {value!r}", field=field)


def _choice(value: Any, field: str, allowed: tuple[str, ...], label: str) -> str:
    text = str(value if value is not None else "").strip().lower()
    if text not in allowed:
        raise InvalidInput(f"{label} {value!r} is not one of {', '.join(allowed)}", field=field)
    return text


def check_code(value: Any, field: str = "code", what: str = "code") -> str:
    """An Open311-safe code: 1-64 letters, digits, ``_``, ``.`` or ``-``."""
    code = str(value if value is not None else "").strip()
    if not CODE_RE.match(code):
        raise InvalidInput(
            f"{what} {code!r} must be 1-64 letters, digits, '_', '.' or '-' "
            "(starting with a letter or digit)",
            field=field,
        )
    return code


def parse_keywords(value: Any) -> list[str] | None:
    """Keywords as a list: from a list, or comma-separated text (Open311's form)."""
    if value is None:
        return None
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    words: list[str] = []
    for item in items:
        word = str(item).strip()
        if word and word not in words:
            if len(word) > MAX_GROUP:
                raise InvalidInput(
                    f"keyword {word[:20]!r}... is longer than {MAX_GROUP} characters",
                    field="keywords",
                )
            words.append(word)
    if len(words) > MAX_KEYWORDS:
        raise InvalidInput(f"give at most {MAX_KEYWORDS} keywords", field="keywords")
    return words or None


def _sla_hours(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        hours = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"SLA {value!r} is not a number of hours", field="sla_hours") from None
    if not math.isfinite(hours) or hours < 0:
        raise InvalidInput("the SLA must be zero or more hours", field="sla_hours")
    if hours > 24 * 366:
        raise InvalidInput("the SLA must be at most a year (8784 hours)", field="sla_hours")
    return hours


# --------------------------------------------------------------------------- categories


def get_category(session: Session, city: Jurisdiction, service_id: int) -> Service:
    """The city's category ``service_id`` (404 for another city's)."""
    service = session.get(Service, service_id)
    if service is None or service.jurisdiction_id != city.id:
        raise NotFound(f"no category {service_id} in this city")
    return service


def category_by_code(session: Session, city: Jurisdiction, code: str) -> Service:
    """The city's category with service code ``code``."""
    service = session.scalar(
        sa.select(Service).where(Service.jurisdiction_id == city.id, Service.code == code.strip())
    )
    if service is None:
        raise InvalidInput(f"{city.slug} has no category with code {code!r}", field="category")
    return service


def categories(session: Session, city: Jurisdiction) -> list[tuple[Service, int]]:
    """The city's categories by group and code, each with its number of questions."""
    count = (
        sa.select(sa.func.count(ServiceAttribute.id))
        .where(ServiceAttribute.service_id == Service.id)
        .scalar_subquery()
    )
    rows = session.execute(
        sa.select(Service, count)
        .where(Service.jurisdiction_id == city.id)
        .order_by(sa.func.coalesce(Service.group, ""), Service.code)
    ).all()
    return [(service, int(n)) for service, n in rows]


def departments(session: Session, city: Jurisdiction) -> list[Department]:
    return list(
        session.scalars(
            sa.select(Department)
            .where(Department.jurisdiction_id == city.id)
            .order_by(Department.code)
        )
    )


def category_values(
    session: Session, city: Jurisdiction, data: Mapping[str, Any], service: Service | None = None
) -> dict[str, Any]:
    """The model values of the fields given in ``data`` (keys of :data:`CATEGORY_FIELDS`),
    checked. A new category (``service`` None) needs ``code`` and ``name``; for an
    existing one, only the fields given change."""
    given = {k: data[k] for k in CATEGORY_FIELDS if k in data}
    out: dict[str, Any] = {}
    if service is None or "code" in given:
        code = check_code(given.get("code"))
        clash = session.scalar(
            sa.select(Service.id).where(
                Service.jurisdiction_id == city.id,
                Service.code == code,
                Service.id != (service.id if service else 0),
            )
        )
        if clash:
            raise InvalidInput(f"a category with code {code!r} already exists", field="code")
        out["code"] = code
    if service is None or "name" in given:
        out["name"] = _text(given.get("name"), "name", MAX_NAME, required=True)
    if "group" in given:
        out["group"] = _text(given["group"], "group", MAX_GROUP)
    if "description" in given:
        out["description"] = _text(given["description"], "description", MAX_TEXT)
    if "keywords" in given:
        out["keywords"] = parse_keywords(given["keywords"])
    if "type" in given:
        out["type"] = _choice(given["type"] or "realtime", "type", SERVICE_TYPES, "type")
    for flag in ("private", "internal", "contact_required", "active"):
        if flag in given:
            out[flag] = _bool(given[flag], flag)
    # A staff-only category is never public: its requests fall under every private filter.
    internal = out.get("internal", bool(service.internal) if service is not None else False)
    if internal:
        out["private"] = True
    if "location_mode" in given:
        out["location_mode"] = _choice(
            given["location_mode"] or "required", "location_mode", LOCATION_MODES, "location mode"
        )
    if "notice" in given:
        out["notice"] = _text(given["notice"], "notice", MAX_TEXT)
    if "default_department" in given:
        code = str(given["default_department"] or "").strip()
        dept_id = None
        if code:
            dept_id = session.scalar(
                sa.select(Department.id).where(
                    Department.jurisdiction_id == city.id, Department.code == code
                )
            )
            if dept_id is None:
                raise InvalidInput(f"no department with code {code!r}", field="default_department")
        out["default_department_id"] = dept_id
    if "default_priority" in given:
        out["default_priority"] = _choice(
            given["default_priority"] or "normal", "default_priority", PRIORITIES, "priority"
        )
    if "sla_hours" in given:
        out["sla_hours"] = _sla_hours(given["sla_hours"])
    if "sla_clock" in given:
        out["sla_clock"] = _choice(
            given["sla_clock"] or "business", "sla_clock", SLA_CLOCKS, "SLA clock"
        )
    if "asset_layer" in given:
        out["asset_layer_id"] = asset_layer_id(session, city, given["asset_layer"])
    return out


def asset_layers(session: Session, city: Jurisdiction) -> list[AssetLayer]:
    """The city's asset layers, by name (the choices of a category's layer)."""
    return list(
        session.scalars(
            sa.select(AssetLayer)
            .where(AssetLayer.jurisdiction_id == city.id)
            .order_by(AssetLayer.name)
        )
    )


def asset_layer_id(session: Session, city: Jurisdiction, name: Any) -> int | None:
    """The id of the city's asset layer ``name`` (empty: none); another city's layer, or
    an unknown name, is refused (field ``asset_layer``)."""
    name = str(name or "").strip()
    if not name:
        return None
    found = session.scalar(
        sa.select(AssetLayer.id).where(
            AssetLayer.jurisdiction_id == city.id, AssetLayer.name == name
        )
    )
    if found is None:
        raise InvalidInput(
            f"no asset layer {name[:64]!r} in this city: import its assets first",
            field="asset_layer",
        )
    return found


def category_record(session: Session, service: Service) -> dict[str, Any]:
    """A category's fields as plain values (the audit's before/after, listings)."""
    dept = (
        session.get(Department, service.default_department_id)
        if service.default_department_id
        else None
    )
    return {
        "code": service.code,
        "name": service.name,
        "group": service.group,
        "description": service.description,
        "keywords": list(service.keywords or []) or None,
        "type": service.type or "realtime",
        "private": bool(service.private),
        "internal": bool(service.internal),
        "contact_required": bool(service.contact_required),
        "location_mode": service.location_mode or "required",
        "notice": service.notice,
        "default_department": dept.code if dept else None,
        "default_priority": service.default_priority or "normal",
        "sla_hours": service.sla_hours,
        "sla_clock": service.sla_clock or "business",
        "active": service.active is not False,
        "asset_layer": _layer_name(session, service.asset_layer_id),
    }


def _layer_name(session: Session, layer_id: int | None) -> str | None:
    layer = session.get(AssetLayer, layer_id) if layer_id else None
    return layer.name if layer else None


def _as_record(session: Session, values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    if "default_department_id" in out:
        dept_id = out.pop("default_department_id")
        dept = session.get(Department, dept_id) if dept_id else None
        out["default_department"] = dept.code if dept else None
    if "asset_layer_id" in out:
        out["asset_layer"] = _layer_name(session, out.pop("asset_layer_id"))
    return out


def create_category(session: Session, city: Jurisdiction, data: Mapping[str, Any]) -> Service:
    """A new category of ``city`` from ``data``; flushed, so it has its id."""
    values = category_values(session, city, data)
    service = Service(
        jurisdiction_id=city.id,
        type="realtime",
        private=False,
        internal=False,
        active=True,
        contact_required=False,
        location_mode="required",
        default_priority="normal",
        sla_clock="business",
    )
    for key, value in values.items():
        setattr(service, key, value)
    session.add(service)
    session.flush()
    return service


def update_category(
    session: Session, city: Jurisdiction, service: Service, data: Mapping[str, Any]
) -> dict[str, list[Any]]:
    """Change the fields given in ``data``; returns ``{field: [old, new]}`` of those that
    changed (empty: nothing to do)."""
    values = category_values(session, city, data, service)
    before = category_record(session, service)
    after = _as_record(session, values)
    changed = {k: [before.get(k), v] for k, v in after.items() if before.get(k) != v}
    for key, value in values.items():
        setattr(service, key, value)
    session.flush()
    return changed


def delete_category(session: Session, service: Service) -> None:
    """Delete a category that nothing refers to; one with requests, rules or an intake
    address is refused (deactivate it instead: it leaves the forms and the API)."""
    requests = session.scalar(
        sa.select(sa.func.count()).where(ServiceRequest.service_id == service.id)
    )
    if requests:
        raise InvalidInput(
            f"{service.code} has {requests} request(s): deactivate it instead of deleting it",
            field="delete",
        )
    rule = session.execute(
        sa.select(RuleSet.version, RoutingRule.position)
        .join(RuleSet, RuleSet.id == RoutingRule.ruleset_id)
        .where(RoutingRule.service_id == service.id, RuleSet.status != "retired")
        .limit(1)
    ).first()
    if rule is not None:
        raise InvalidInput(
            f"rule {rule.position} of rule set version {rule.version} names {service.code}: "
            "change that rule first, or deactivate the category",
            field="delete",
        )
    address = session.scalar(
        sa.select(MailAddress.address).where(MailAddress.service_id == service.id).limit(1)
    )
    if address is not None:
        raise InvalidInput(
            f"the intake address {address} files {service.code} requests: change it first",
            field="delete",
        )
    session.delete(service)
    session.flush()


# --------------------------------------------------------------------------- questions


def get_question(session: Session, service: Service, attribute_id: int) -> ServiceAttribute:
    attr = session.get(ServiceAttribute, attribute_id)
    if attr is None or attr.service_id != service.id:
        raise NotFound(f"no question {attribute_id} in category {service.code}")
    return attr


def question_by_code(service: Service, code: str) -> ServiceAttribute:
    for attr in service.attributes:
        if attr.code == code.strip():
            return attr
    raise InvalidInput(f"{service.code} has no question with code {code!r}", field="question")


def parse_values(value: Any) -> list[dict[str, str]] | None:
    """Allowed answers as ``[{"key", "name"}]``: from such a list, from ``key=Name``
    lines (a page's text box), or from a list of ``key=Name`` strings (the CLI)."""
    if value is None:
        return None
    if isinstance(value, str):
        items: list[Any] = [line for line in value.splitlines() if line.strip()]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise InvalidInput("values must be a list of key and name pairs", field="values")
    out: list[dict[str, str]] = []
    for item in items:
        if isinstance(item, Mapping):
            key, name = item.get("key"), item.get("name")
            if key is None or isinstance(key, dict | list) or isinstance(name, dict | list):
                raise InvalidInput(f"value {dict(item)!r} needs a key and a name", field="values")
            key = str(key).strip()
            name = str(name if name is not None else key).strip()
        else:
            key, _, name = str(item).partition("=")
            key, name = key.strip(), name.strip() or key.strip()
        if not key:
            raise InvalidInput(f"value {item!r} has no key (write key=Name)", field="values")
        if len(key) > MAX_NAME or len(name) > MAX_NAME:
            raise InvalidInput(
                f"value keys and names are at most {MAX_NAME} characters", field="values"
            )
        if any(v["key"] == key for v in out):
            raise InvalidInput(f"value key {key!r} is listed twice", field="values")
        out.append({"key": key, "name": name})
    return out or None


def check_answer(datatype: str, values: list[dict[str, str]] | None, answer: Any) -> Any:
    """A default answer, checked against the question's datatype and allowed values:
    text, a number, an ISO date and time, a key, or a list of keys (multivaluelist;
    text is split at commas). None when empty."""
    if answer is None or (isinstance(answer, str | list | tuple) and not answer):
        return None
    keys = [v["key"] for v in values or []]
    if datatype == "multivaluelist":
        items = answer if isinstance(answer, list | tuple) else str(answer).split(",")
        chosen = [str(i).strip() for i in items if str(i).strip()]
        bad = [c for c in chosen if c not in keys]
        if bad:
            raise InvalidInput(
                f"default {bad[0]!r} is not among the values ({', '.join(keys)})",
                field="default_value",
            )
        return list(dict.fromkeys(chosen)) or None
    if isinstance(answer, list | tuple):
        raise InvalidInput("give one default answer only", field="default_value")
    text = str(answer).strip()
    if not text:
        return None
    if datatype == "singlevaluelist" and text not in keys:
        raise InvalidInput(
            f"default {text!r} is not among the values ({', '.join(keys)})", field="default_value"
        )
    if datatype == "number":
        try:
            number = float(text)
            if not math.isfinite(number):
                raise ValueError
        except ValueError:
            raise InvalidInput(f"default {text!r} is not a number", field="default_value") from None
    elif datatype == "datetime":
        try:
            datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(
                f"default {text!r} is not a date and time (YYYY-MM-DDTHH:MM)",
                field="default_value",
            ) from None
    elif datatype == "string" and (len(text) > MAX_STRING or "\n" in text):
        raise InvalidInput(
            f"a string default is one line of at most {MAX_STRING} characters",
            field="default_value",
        )
    elif len(text) > MAX_TEXT:
        raise InvalidInput(
            f"the default is longer than {MAX_TEXT} characters", field="default_value"
        )
    return text


def question_values(
    service: Service, data: Mapping[str, Any], attr: ServiceAttribute | None = None
) -> dict[str, Any]:
    """The model values of the fields given in ``data`` (keys of
    :data:`QUESTION_FIELDS`), checked together with the question's other fields: a list
    datatype needs values, any other refuses them, a default must fit."""
    given = {k: data[k] for k in QUESTION_FIELDS if k in data}
    out: dict[str, Any] = {}
    if attr is None or "code" in given:
        code = check_code(given.get("code"), what="question code")
        if any(a.code == code and a is not attr for a in service.attributes):
            raise InvalidInput(
                f"{service.code} already has a question with code {code!r}", field="code"
            )
        out["code"] = code
    if attr is None or "datatype" in given:
        out["datatype"] = _choice(given.get("datatype"), "datatype", DATATYPES, "datatype")
    if attr is None or "description" in given:
        out["description"] = _text(
            given.get("description"), "description", MAX_TEXT, required=True, label="the question"
        )
    if "datatype_description" in given:
        out["datatype_description"] = _text(
            given["datatype_description"], "datatype_description", MAX_TEXT, label="help text"
        )
    for flag in ("required", "variable"):
        if flag in given:
            out[flag] = _bool(given[flag], flag)
    if "order" in given and given["order"] not in (None, ""):
        try:
            order = int(str(given["order"]).strip())
        except ValueError:
            raise InvalidInput(
                f"order {given['order']!r} is not a whole number", field="order"
            ) from None
        if order < 1 or order > 10_000:
            raise InvalidInput("order must be a whole number from 1", field="order")
        out["order"] = order
    datatype = out.get("datatype", attr.datatype if attr else None)
    if "values" in given:
        out["values"] = parse_values(given["values"])
    values = out["values"] if "values" in out else (attr.values if attr else None)
    if datatype in LIST_DATATYPES:
        if not values:
            raise InvalidInput(
                f"a {datatype} question needs its values (key=Name, one a line)", field="values"
            )
    elif values:
        if "values" in out:
            raise InvalidInput(
                f"only list questions have values; a {datatype} question has none",
                field="values",
            )
        # A question changed from a list to another datatype drops its values.
        out["values"] = values = None
    default = (
        given["default_value"]
        if "default_value" in given
        else (attr.default_value if attr else None)
    )
    checked = check_answer(datatype, values, default)
    if "default_value" in given or (attr is not None and checked != attr.default_value):
        out["default_value"] = checked
    return out


def question_record(attr: ServiceAttribute) -> dict[str, Any]:
    """A question's fields as plain values (audit, listings)."""
    return {
        "code": attr.code,
        "datatype": attr.datatype,
        "description": attr.description,
        "datatype_description": attr.datatype_description,
        "required": bool(attr.required),
        "variable": attr.variable is not False,
        "order": attr.order,
        "values": values_text(attr.values),
        "default_value": attr.default_value,
    }


def values_text(values: list[dict[str, str]] | None) -> list[str] | None:
    """``key=Name`` strings (the audit log keeps no field named ``key``)."""
    return [f"{v['key']}={v.get('name', v['key'])}" for v in values] if values else None


def _renumber(service: Service) -> None:
    for position, attr in enumerate(
        sorted(service.attributes, key=lambda a: (a.order, a.id or 0)), 1
    ):
        if attr.order != position:
            attr.order = position


def add_question(session: Session, service: Service, data: Mapping[str, Any]) -> ServiceAttribute:
    """A new question of ``service`` (last unless ``order`` is given); flushed."""
    values = question_values(service, data)
    last = max((a.order for a in service.attributes), default=0)
    order = values.pop("order", last + 1)
    attr = ServiceAttribute(**{"required": False, "variable": True, **values})
    # Put it before the question now at ``order``: it takes that place.
    for other in service.attributes:
        if other.order >= order:
            other.order += 1
    attr.order = order
    service.attributes.append(attr)
    session.flush()
    _renumber(service)
    session.flush()
    return attr


def update_question(
    session: Session, service: Service, attr: ServiceAttribute, data: Mapping[str, Any]
) -> dict[str, list[Any]]:
    """Change the fields given in ``data``; ``{field: [old, new]}`` of those changed."""
    values = question_values(service, data, attr)
    order = values.pop("order", None)
    before = question_record(attr)
    for key, value in values.items():
        setattr(attr, key, value)
    session.flush()
    if order is not None and order != attr.order:
        move_question(session, service, attr, order)
    after = question_record(attr)
    return {k: [before[k], after[k]] for k in after if before[k] != after[k]}


def remove_question(session: Session, service: Service, attr: ServiceAttribute) -> None:
    service.attributes.remove(attr)
    session.flush()
    _renumber(service)
    session.flush()


def move_question(session: Session, service: Service, attr: ServiceAttribute, to: int) -> int:
    """Put ``attr`` at position ``to`` (1 = first; clamped); returns its new position."""
    ordered = sorted(service.attributes, key=lambda a: (a.order, a.id or 0))
    ordered.remove(attr)
    to = max(1, min(int(to), len(ordered) + 1))
    ordered.insert(to - 1, attr)
    for position, item in enumerate(ordered, 1):
        item.order = position
    session.flush()
    return to


# --------------------------------------------------------------------------- calendar

DAY_NAMES = {
    "mon": "Monday",
    "tue": "Tuesday",
    "wed": "Wednesday",
    "thu": "Thursday",
    "fri": "Friday",
    "sat": "Saturday",
    "sun": "Sunday",
}


def _calendar_error(exc: InvalidInput, field: str) -> InvalidInput:
    return InvalidInput(str(exc).removeprefix("business calendar: "), field=field)


def check_calendar(calendar: dict[str, Any] | None, field: str = "hours") -> dict[str, Any] | None:
    """A calendar checked by :func:`routing.sla.validate_calendar` (None: no calendar,
    SLAs count elapsed hours); the message is given for ``field``."""
    if calendar is None:
        return None
    try:
        return validate_calendar(calendar)
    except InvalidInput as exc:
        raise _calendar_error(exc, field) from None


def day_range(spec: str) -> list[str]:
    """``mon``, ``mon-fri``, ``sat,sun`` or ``all`` as day keys."""
    days: list[str] = []
    for part in spec.lower().split(","):
        part = part.strip()
        if part in ("all", "daily"):
            days.extend(DAY_KEYS)
            continue
        first, _, last = part.partition("-")
        if first not in DAY_KEYS or (last and last not in DAY_KEYS):
            raise InvalidInput(
                f"{spec!r}: days are mon, tue, wed, thu, fri, sat, sun, a range such as "
                "mon-fri, or all",
                field="hours",
            )
        a, b = DAY_KEYS.index(first), DAY_KEYS.index(last or first)
        if b < a:
            raise InvalidInput(f"{spec!r}: write the range from the earlier day", field="hours")
        days.extend(DAY_KEYS[a : b + 1])
    return days


def parse_hours(spec: str) -> dict[str, list[str] | None]:
    """``mon-fri=08:00-17:00`` or ``sun=closed`` as ``{day: [opens, closes] | None}``."""
    days, eq, span = spec.partition("=")
    if not eq:
        raise InvalidInput(
            f"{spec!r}: write DAYS=HH:MM-HH:MM (e.g. mon-fri=08:00-17:00) or DAYS=closed",
            field="hours",
        )
    span = span.strip().lower()
    if span == "closed":
        return dict.fromkeys(day_range(days))
    opens, dash, closes = span.partition("-")
    if not dash or not HHMM_RE.match(opens.strip()) or not HHMM_RE.match(closes.strip()):
        raise InvalidInput(f"{spec!r}: hours are HH:MM-HH:MM, e.g. 08:00-17:00", field="hours")
    return {day: [opens.strip(), closes.strip()] for day in day_range(days)}


def parse_holiday(spec: str, name: str | None = None) -> dict[str, str] | str:
    """``2026-12-25`` or ``2026-12-25=Christmas Day`` as a calendar holiday entry."""
    day, _, named = spec.partition("=")
    name = (name if name is not None else named).strip() or None
    try:
        when = date.fromisoformat(day.strip())
    except ValueError:
        raise InvalidInput(
            f"holiday {day.strip()!r} is not a date YYYY-MM-DD", field="holiday"
        ) from None
    if name is not None and len(name) > MAX_NAME:
        raise InvalidInput(f"a holiday's name is at most {MAX_NAME} characters", field="holiday")
    return {"date": when.isoformat(), "name": name} if name else when.isoformat()


def calendar_view(city: Jurisdiction) -> dict[str, Any]:
    """The city's calendar for a page or a listing: ``hours`` for every day (None:
    closed) and ``holidays`` as ``[(date, name)]`` in date order."""
    cal = city.business_calendar or {}
    hours = cal.get("hours") or {}
    return {
        "enabled": city.business_calendar is not None,
        "hours": {day: hours.get(day) for day in DAY_KEYS},
        "holidays": sorted(
            (holiday_date(h).isoformat(), h.get("name") if isinstance(h, dict) else None)
            for h in cal.get("holidays") or []
        ),
    }


def change_calendar(
    city: Jurisdiction,
    *,
    hours: Mapping[str, list[str] | None] | None = None,
    add_holidays: list[dict[str, str] | str] = (),
    remove_holidays: list[str] = (),
    clear: bool = False,
) -> dict[str, Any] | None:
    """The city's calendar with these changes, checked (not stored): ``hours`` set per day
    (None: closed that day), holidays added (replacing one of the same date) or removed
    by date. Without open days and holidays the result is None (no calendar: SLAs count
    elapsed hours); holidays without open days are refused."""
    cal = {} if clear else dict(city.business_calendar or {})
    day_hours = dict(cal.get("hours") or {})
    for day, span in (hours or {}).items():
        if span is None:
            day_hours.pop(day, None)
        else:
            day_hours[day] = list(span)
    holidays = {holiday_date(h).isoformat(): h for h in cal.get("holidays") or []}
    for day in remove_holidays:
        try:
            key = date.fromisoformat(day.strip()).isoformat()
        except ValueError:
            raise InvalidInput(
                f"holiday {day!r} is not a date YYYY-MM-DD", field="holiday"
            ) from None
        if key not in holidays:
            raise InvalidInput(f"{key} is not a holiday of {city.name}", field="holiday")
        del holidays[key]
    for entry in add_holidays:
        holidays[holiday_date(entry).isoformat()] = entry
    if not day_hours and not holidays:
        return None
    if not day_hours:
        raise InvalidInput(
            "holidays need business hours: open at least one day of the week", field="hours"
        )
    result: dict[str, Any] = {
        "hours": {day: day_hours[day] for day in DAY_KEYS if day in day_hours},
    }
    if holidays:
        result["holidays"] = [holidays[k] for k in sorted(holidays)]
    return check_calendar(result)


def save_calendar(city: Jurisdiction, calendar: dict[str, Any] | None) -> dict[str, Any]:
    """Store ``calendar`` (from :func:`change_calendar`) on the city; returns the
    change for the audit log (``{}``: nothing changed)."""
    before = city.business_calendar
    if before == calendar:
        return {}
    city.business_calendar = calendar
    return {"business_calendar": [before, calendar]}
