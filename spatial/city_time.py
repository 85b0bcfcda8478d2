"""Times as staff read them: on the city's wall clock, with the zone's label.

A dispatcher in Madrid and a server in UTC must agree on "08:15": every staff page, and
the JSON their scripts render, shows a time as ``7 Dec 2026 08:15 CET`` in the city's
``timezone``, whatever the machine's zone or the browser's.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from spatial.models import Jurisdiction

FORMAT = "%-d %b %Y %H:%M"
DATE_FORMAT = "%-d %b %Y"


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def zone_label(local: datetime) -> str:
    """The zone's abbreviation at that moment (``PST``, ``CEST``), or ``UTC-03`` where the
    zone has none."""
    label = local.strftime("%Z")
    return f"UTC{label}" if label[:1] in "+-" else label


def city_time(
    value: datetime | str | None, city: Jurisdiction | str, with_time: bool = True
) -> str:
    """``value`` (aware, or ISO 8601 text with an offset) on ``city``'s clock, labelled:
    ``7 Dec 2026 08:15 PST``; with ``with_time=False`` the local date alone. ``city`` is a
    jurisdiction or its IANA zone name. None (or '') gives ''."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        raise ValueError("a naive time has no place on a city's clock")
    local = value.astimezone(_zone(city if isinstance(city, str) else city.timezone))
    if not with_time:
        return local.strftime(DATE_FORMAT)
    return f"{local.strftime(FORMAT)} {zone_label(local)}"


# The ISO times of a staff list's items (routing.queue) and the labelled text beside them.
ITEM_TIMES = {"requested_at": "reported", "due_at": "due"}


def label_items(items: list[dict], city: Jurisdiction | str) -> list[dict]:
    """Add to each item the text of its times on ``city``'s clock (``reported``, ``due``),
    for the pages' scripts to show as they are; returns ``items``."""
    for item in items:
        for field, label in ITEM_TIMES.items():
            if field in item:
                item[label] = city_time(item[field], city)
    return items
