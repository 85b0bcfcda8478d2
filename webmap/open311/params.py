"""Reading Open311 parameters: every value from outside is checked here, with a message
that names the parameter and says what was expected (raised as a 400 Open311 error)."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import request

from webmap.open311.errors import bad_request

MAX_SPAN = timedelta(days=90)
MAX_PAGE_SIZE = 1000
MAX_IDS = 1000
_W3C = re.compile(
    r"^\d{4}-\d{2}-\d{2}"
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|z|[+-]\d{2}:?\d{2})?)?$"
)
# A "+" in an unencoded query string arrives as a space: "…T10:00:00 01:00".
_SPACE_OFFSET = re.compile(r"^(.*T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?) (\d{2}:?\d{2})$")


def shown(value: str, limit: int = 60) -> str:
    """A user value quoted for an error message, cut to a readable length."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


def opt(name: str) -> str | None:
    """A parameter from the query or the form body; empty counts as absent (spec)."""
    value = request.values.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def flag(name: str) -> bool:
    value = opt(name)
    if value is None:
        return False
    value = value.lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise bad_request(f"{name} must be true or false, not {shown(value)}")


def when(name: str, tz: ZoneInfo) -> datetime | None:
    """A W3C date or date-time; without an offset it is read in the jurisdiction's zone."""
    text = opt(name)
    if text is None:
        return None
    if m := _SPACE_OFFSET.match(text):
        text = f"{m[1]}+{m[2]}"
    if not _W3C.match(text):
        raise bad_request(
            f"{name} {shown(text)} is not a W3C date-time such as 2010-01-01T00:00:00Z"
        )
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise bad_request(f"{name} {shown(text)} is not a valid date-time") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    try:
        # In UTC: PostgreSQL refuses offsets beyond 15:59 that Python accepts.
        return value.astimezone(UTC)
    except OverflowError:
        raise bad_request(f"{name} {shown(text)} is out of range") from None


def window(
    start: datetime | None, end: datetime | None, now: datetime
) -> tuple[datetime | None, datetime | None]:
    """The spec's date range: at most 90 days; the most recent 90 days by default."""
    try:
        if start is None and end is None:
            return now - MAX_SPAN, None
        if end is None:
            return start, start + MAX_SPAN
        if start is None:
            return end - MAX_SPAN, end
        backwards, too_long = end < start, end - start > MAX_SPAN
    except OverflowError:
        raise bad_request("start_date or end_date is out of range") from None
    if backwards:
        raise bad_request("end_date is before start_date")
    if too_long:
        raise bad_request(
            "start_date and end_date may not span more than 90 days "
            "(use page and page_size, or several ranges)"
        )
    return start, end


def integer(name: str, default: int, lo: int, hi: int) -> int:
    text = opt(name)
    if text is None:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", text) or not lo <= int(text) <= hi:
        raise bad_request(f"{name} must be a whole number from {lo} to {hi}, not {shown(text)}")
    return int(text)


def comma_list(name: str, max_items: int = MAX_IDS, max_len: int = 100) -> list[str] | None:
    text = opt(name)
    if text is None:
        return None
    items = [item.strip() for item in text.split(",") if item.strip()]
    if len(items) > max_items:
        raise bad_request(f"{name} lists {len(items)} values; at most {max_items} are allowed")
    if any(len(item) > max_len for item in items):
        raise bad_request(f"{name} holds a value longer than {max_len} characters")
    return items or None


def statuses() -> set[str] | None:
    items = comma_list("status", max_items=10)
    if items is None:
        return None
    wanted = {item.lower() for item in items}
    bad = wanted - {"open", "closed"}
    if bad:
        raise bad_request(f"status must be open, closed or both, not {shown(sorted(bad)[0])}")
    return wanted


def number(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise bad_request(f"{name} {shown(text)} is not a number") from None
    if not math.isfinite(value):
        raise bad_request(f"{name} {shown(text)} is not a finite number")
    return value


def bbox() -> tuple[float, float, float, float] | None:
    """``bbox=min_long,min_lat,max_long,max_lat`` in WGS84 degrees."""
    text = opt("bbox")
    if text is None:
        return None
    parts = text.split(",")
    if len(parts) != 4:
        raise bad_request("bbox must be min_long,min_lat,max_long,max_lat")
    west, south, east, north = (number("bbox", p.strip()) for p in parts)
    if not (-180 <= west <= east <= 180 and -90 <= south <= north <= 90):
        raise bad_request(
            "bbox must be min_long,min_lat,max_long,max_lat with min <= max, "
            "longitudes in -180..180 and latitudes in -90..90"
        )
    return west, south, east, north
