"""The JSON Schema (draft 2020-12) of a city file, as :mod:`routing.city_file` reads it.

The schema checks shapes and single values; references between sections (a crew's
department, a rule's category) and against the city (its layers and zones) are checked
by :func:`routing.city_file.validate` after it.
"""

from __future__ import annotations

from typing import Any

from notify.templates import DEFAULTS as MESSAGE_KINDS
from routing.categories import (
    CODE_RE,
    DATATYPES,
    LIST_DATATYPES,
    MAX_GROUP,
    MAX_KEYWORDS,
    MAX_NAME,
    MAX_TEXT,
    SERVICE_TYPES,
)
from routing.escalation import MAX_MINUTES, MAX_REOPEN_DAYS
from routing.rules import MAX_SLA_HOURS as MAX_RULE_SLA_HOURS
from spatial.models import LOCATION_MODES, PRIORITIES, SLA_CLOCKS

__all__ = ["LIST_DATATYPES", "SCHEMA"]

HOLD_MODES = ("none", "email", "all")
# The limits of the catalogue's own checks (routing.categories, routing.rules), so that a
# file and the admin pages accept the same values.
CODE_PATTERN = CODE_RE.pattern
MAX_CATEGORY_SLA_HOURS = 24 * 366
MAX_DAYS = 36_500
MAX_LIMIT = 100_000


def _text(max_length: int, min_length: int = 1) -> dict[str, Any]:
    return {"type": "string", "minLength": min_length, "maxLength": max_length}


def _optional(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _object(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


def _list(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


CODE = {"type": "string", "pattern": CODE_PATTERN}
EMAIL = {"type": "string", "pattern": r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+$", "maxLength": 254}
HOURS = {"type": "number", "minimum": 0, "maximum": MAX_CATEGORY_SLA_HOURS}
RULE_HOURS = {"type": "number", "minimum": 0, "maximum": MAX_RULE_SLA_HOURS}
HHMM = {"type": "string", "pattern": r"^([01]\d|2[0-4]):[0-5]\d$"}
DAYS = _optional({"type": "integer", "minimum": 1, "maximum": MAX_DAYS})

MINUTES = _optional({"type": "integer", "minimum": 1, "maximum": MAX_MINUTES})
# When open requests escalate (routing.escalation); empty minutes turn a trigger off.
ESCALATION = _optional(
    _object(
        {
            "untriaged_minutes": MINUTES,
            "when_overdue": {"type": "boolean"},
            "level2_minutes": MINUTES,
        }
    )
)

VALUE = _object({"key": _text(MAX_NAME), "name": _text(MAX_NAME)}, ("key", "name"))

QUESTION = _object(
    {
        "code": CODE,
        "datatype": {"enum": list(DATATYPES)},
        "description": _text(MAX_TEXT),
        "help": _optional(_text(MAX_TEXT, 0)),
        "required": {"type": "boolean"},
        "variable": {"type": "boolean"},
        "values": _optional({**_list(VALUE), "minItems": 1}),
        "default_value": _optional(
            {"anyOf": [_text(2000, 0), _list({"type": "string", "maxLength": 100})]}
        ),
    },
    ("code", "datatype", "description"),
)

CATEGORY = _object(
    {
        "code": CODE,
        "name": _text(MAX_NAME),
        "group": _optional(_text(MAX_GROUP, 0)),
        "description": _optional(_text(MAX_TEXT, 0)),
        "keywords": _optional({**_list(_text(MAX_GROUP)), "maxItems": MAX_KEYWORDS}),
        "type": {"enum": list(SERVICE_TYPES)},
        "private": {"type": "boolean"},
        # For staff only (the internal help desk): never on a public page or the API.
        "internal": {"type": "boolean"},
        "active": {"type": "boolean"},
        "contact_required": {"type": "boolean"},
        "notice": _optional(_text(MAX_TEXT, 0)),
        "location_mode": {"enum": list(LOCATION_MODES)},
        "default_priority": {"enum": list(PRIORITIES)},
        "sla_hours": _optional(HOURS),
        "sla_clock": {"enum": list(SLA_CLOCKS)},
        "default_department": _optional(CODE),
        # The name of one of the city's asset layers (a street-light category: "streetlights").
        "asset_layer": _optional(CODE),
        "questions": _list(QUESTION),
        # The category's own escalation policy, in place of the city's.
        "escalation": ESCALATION,
    },
    ("code", "name"),
)

RULE = _object(
    {
        "name": _text(200),
        "category": _optional(CODE),
        "group": _optional(_text(100)),
        "layer": _optional(_text(100)),
        "zone": _optional(_text(100)),
        "department": CODE,
        "crew": _optional(CODE),
        "crew_from_zone": {"type": "boolean"},
        # null or left out: the category's default priority
        "priority": _optional({"enum": list(PRIORITIES)}),
        "sla_hours": _optional(RULE_HOURS),
        "active": {"type": "boolean"},
        # Only a request about an asset whose attribute has this value (no case).
        "asset": _optional(
            _object(
                {"attribute": _text(100), "value": _text(200)},
                ("attribute", "value"),
            )
        ),
    },
    ("name", "department"),
)

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "civicpin city file",
    **_object(
        {
            "version": {"const": 1},
            "city": _object(
                {
                    "name": _text(200),
                    "timezone": _text(64),
                    "public_id_prefix": {"type": "string", "pattern": r"^[A-Z0-9]{1,8}$"},
                    "moderation_hold": {"enum": list(HOLD_MODES)},
                    "open311_ids": _list({"type": "string", "maxLength": 100}),
                    "host": _optional(_text(253)),
                    # Days after resolution the reporter may reopen (0: never).
                    "reopen_days": {"type": "integer", "minimum": 0, "maximum": MAX_REOPEN_DAYS},
                    # The local hour of the departments' morning digest.
                    "digest_hour": {"type": "integer", "minimum": 0, "maximum": 23},
                }
            ),
            "calendar": _optional(
                _object(
                    {
                        "hours": {
                            "type": "object",
                            "propertyNames": {
                                "enum": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
                            },
                            "additionalProperties": {
                                "type": "array",
                                "prefixItems": [HHMM, HHMM],
                                "minItems": 2,
                                "maxItems": 2,
                            },
                            "minProperties": 1,
                        },
                        # A date, or a date with its name (routing.sla).
                        "holidays": _list(
                            {
                                "anyOf": [
                                    {"type": "string"},
                                    _object(
                                        {"date": {"type": "string"}, "name": _text(MAX_NAME)},
                                        ("date",),
                                    ),
                                ]
                            }
                        ),
                    },
                    ("hours",),
                )
            ),
            "layers": _list(
                _object(
                    {
                        "name": _text(100),
                        "version": {"type": "integer", "minimum": 1},
                        "title": _optional(_text(200)),
                    },
                    ("name",),
                )
            ),
            "departments": _list(
                _object(
                    {
                        "code": CODE,
                        "name": _text(200),
                        "email": _optional(EMAIL),
                        # Who hears of the second level of an escalation (a director).
                        "escalation_email": _optional(EMAIL),
                    },
                    ("code", "name"),
                )
            ),
            "crews": _list(
                _object(
                    {
                        "department": CODE,
                        "code": CODE,
                        "name": _text(200),
                        "zones": _list(
                            _object({"layer": _text(100), "code": _text(100)}, ("layer", "code"))
                        ),
                    },
                    ("department", "code", "name"),
                )
            ),
            "categories": _list(CATEGORY),
            "rules": _list(RULE),
            "response_templates": _list(
                _object(
                    {"name": _text(200), "category": _optional(CODE), "body": _text(10_000)},
                    ("name", "body"),
                )
            ),
            "mail_templates": _list(
                _object(
                    {
                        "kind": {"enum": sorted(MESSAGE_KINDS)},
                        "subject": _text(500),
                        "body": _text(10_000),
                    },
                    ("kind", "subject", "body"),
                )
            ),
            "faq": _list(
                _object(
                    {
                        "slug": {
                            "type": "string",
                            "pattern": r"^[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?$",
                        },
                        "title": _text(200),
                        "topic": _optional(_text(100)),
                        "category": _optional(CODE),
                        "published": {"type": "boolean"},
                        "position": {"type": "integer"},
                        "body": _text(20_000),
                    },
                    ("slug", "title", "body"),
                )
            ),
            "mail": _object(
                {
                    "addresses": _list(
                        _object(
                            {
                                "address": EMAIL,
                                "category": CODE,
                                "department": _optional(CODE),
                                "active": {"type": "boolean"},
                            },
                            ("address", "category"),
                        )
                    ),
                    "dispatch_email": _optional(EMAIL),
                    "from_address": _optional(_text(254)),
                    "reply_limit_per_hour": {"type": "integer", "minimum": 0, "maximum": 1000},
                    "accept_limit_per_hour": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_LIMIT,
                    },
                    "address_reply_limit_per_hour": {
                        "type": "integer",
                        "minimum": 0,
                        "maximum": MAX_LIMIT,
                    },
                    "trusted_authserv_id": _optional(_text(255)),
                }
            ),
            "retention": _object(
                {
                    "contact_days": DAYS,
                    "answers_days": DAYS,
                    "raw_mail_days": DAYS,
                    "originals_days": DAYS,
                }
            ),
            # The city's default escalation policy (null: overdue work escalates).
            "escalation": ESCALATION,
        },
        ("version",),
    ),
}
