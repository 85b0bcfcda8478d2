"""The demo city's catalogue as plain values, read from its data files, for the tests and
benchmarks that check the loaded city against what its files say."""

from __future__ import annotations

from typing import Any

from intake.demo import manifest
from routing.city_file import parse

_RECORDS = manifest()["records"]
_SETUP = parse(manifest()["city_file"].read_text(encoding="utf-8"))
_PRIORITY = {r["category"]: r.get("priority", "normal") for r in _SETUP.get("rules") or []}
_SOURCE = {code: source for source, code in _RECORDS["categories"].items()}

# Record status -> internal status; record channel -> civicpin channel (else the default).
STATUSES: dict[str, str] = dict(_RECORDS["statuses"])
CHANNELS: dict[str, str] = dict(_RECORDS["channels"])
DEFAULT_CHANNEL: str = _RECORDS["default_channel"]

# One entry per category of the city file: ``source`` is the records' name for it,
# ``department`` its default department, ``priority`` its rule's.
SERVICES: list[dict[str, Any]] = [
    {
        "source": _SOURCE.get(c["code"]),
        "code": c["code"],
        "name": c["name"],
        "group": c.get("group"),
        "department": c.get("default_department"),
        "sla_hours": c.get("sla_hours"),
        "priority": _PRIORITY.get(c["code"], "normal"),
    }
    for c in _SETUP["categories"]
]
