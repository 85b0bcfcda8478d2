"""SLA due times: plain elapsed hours, or business hours from a jurisdiction's calendar.

A business calendar is a JSON object stored on the jurisdiction::

    {"hours": {"mon": ["08:00", "17:00"], ..., "fri": ["08:00", "17:00"]},
     "holidays": ["2026-12-25", {"date": "2027-01-01", "name": "New Year's Day"}]}

Opening hours are local wall-clock times in the city's time zone (so a business day
stays 08:00-17:00 across daylight-saving changes); days missing from ``hours`` and the
listed holidays are closed (a holiday is a date, or an object with its date and a
name to show). Without a calendar an SLA of N hours means N elapsed hours,
also across daylight-saving changes. All functions here are pure (no database).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from spatial.errors import InvalidInput

DAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HHMM_RE = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")
# A calendar walk never needs more than this: the longest sensible SLA is far shorter.
MAX_DAYS = 3660


def _parse_hhmm(value: Any, where: str) -> time | None:
    """``"HH:MM"`` as a time; ``"24:00"`` (end of day) is returned as None."""
    m = HHMM_RE.match(value) if isinstance(value, str) else None
    if m is None or (m.group(1) == "24" and m.group(2) != "00"):
        raise InvalidInput(
            f"business calendar: {where} must be a time 'HH:MM' (00:00-24:00), not {value!r}",
            field="business_calendar",
        )
    if m.group(1) == "24":
        return None
    return time(int(m.group(1)), int(m.group(2)))


def validate_calendar(calendar: Any) -> dict[str, Any]:
    """Check a business calendar; returns it unchanged or raises :class:`InvalidInput`."""
    if not isinstance(calendar, dict):
        raise InvalidInput("business calendar must be a JSON object", field="business_calendar")
    unknown = set(calendar) - {"hours", "holidays"}
    if unknown:
        raise InvalidInput(
            f"business calendar: unknown keys {', '.join(sorted(unknown))} "
            "(allowed: hours, holidays)",
            field="business_calendar",
        )
    hours = calendar.get("hours")
    if not isinstance(hours, dict) or not hours:
        raise InvalidInput(
            "business calendar: 'hours' must map at least one day (mon..sun) to ['HH:MM', 'HH:MM']",
            field="business_calendar",
        )
    for day, span in hours.items():
        if day not in DAY_KEYS:
            raise InvalidInput(
                f"business calendar: unknown day {day!r} (use mon, tue, wed, thu, fri, sat, sun)",
                field="business_calendar",
            )
        if not isinstance(span, list | tuple) or len(span) != 2:
            raise InvalidInput(
                f"business calendar: hours for {day} must be ['HH:MM', 'HH:MM']",
                field="business_calendar",
            )
        opens = _parse_hhmm(span[0], f"opening time on {day}")
        closes = _parse_hhmm(span[1], f"closing time on {day}")
        if opens is None or (closes is not None and closes <= opens):
            raise InvalidInput(
                f"business calendar: on {day} the closing time must be after the opening time",
                field="business_calendar",
            )
    holidays = calendar.get("holidays", [])
    if not isinstance(holidays, list):
        raise InvalidInput(
            "business calendar: 'holidays' must be a list of dates", field="business_calendar"
        )
    for h in holidays:
        if isinstance(h, dict):
            extra = set(h) - {"date", "name"}
            name = h.get("name")
            if extra or (name is not None and not isinstance(name, str)):
                raise InvalidInput(
                    f"business calendar: a holiday is a date or {{'date': ..., 'name': ...}}, "
                    f"not {h!r}",
                    field="business_calendar",
                )
        try:
            holiday_date(h)
        except (TypeError, ValueError, KeyError):
            raise InvalidInput(
                f"business calendar: holiday {h!r} is not a date YYYY-MM-DD",
                field="business_calendar",
            ) from None
    return calendar


def holiday_date(holiday: Any) -> date:
    """The date of one ``holidays`` entry: ``"YYYY-MM-DD"`` or ``{"date": ..., "name": ...}``."""
    return date.fromisoformat(holiday["date"] if isinstance(holiday, dict) else holiday)


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown time zone {tz!r}", field="timezone") from None


def business_intervals(
    calendar: dict[str, Any], tz: str, start: date
) -> Iterator[tuple[datetime, datetime]]:
    """The open intervals (UTC) of ``calendar`` from local day ``start`` on, in order.

    Stops after :data:`MAX_DAYS` days; a validated calendar opens at least weekly.
    """
    validate_calendar(calendar)
    zone = _zone(tz)
    holidays = {holiday_date(h) for h in calendar.get("holidays", [])}
    spans = {}
    for day, (opens, closes) in calendar["hours"].items():
        spans[DAY_KEYS.index(day)] = (_parse_hhmm(opens, day), _parse_hhmm(closes, day))
    for offset in range(MAX_DAYS):
        day = start + timedelta(days=offset)
        span = spans.get(day.weekday())
        if span is None or day in holidays:
            continue
        opens, closes = span
        begin = datetime.combine(day, opens, tzinfo=zone)
        if closes is None:
            end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
        else:
            end = datetime.combine(day, closes, tzinfo=zone)
        yield begin.astimezone(UTC), end.astimezone(UTC)


def due_at(
    requested_at: datetime,
    hours: float | None,
    calendar: dict[str, Any] | None = None,
    tz: str = "UTC",
) -> datetime | None:
    """When a request made at ``requested_at`` (aware) is due after ``hours`` of SLA.

    None when there is no SLA; ``requested_at`` itself when ``hours`` <= 0. Without
    ``calendar``: ``hours`` elapsed hours. With one:
    ``hours`` of business time in ``tz``; a request made while closed starts its clock
    at the next opening. The result is in UTC.
    """
    if hours is None:
        return None
    if requested_at.tzinfo is None:
        raise ValueError("requested_at must be timezone-aware")
    start = requested_at.astimezone(UTC)
    remaining = timedelta(hours=float(hours))
    if remaining <= timedelta(0):
        return start
    if calendar is None:
        return start + remaining
    local_day = start.astimezone(_zone(tz)).date()
    for begin, end in business_intervals(calendar, tz, local_day):
        if end <= start:
            continue
        begin = max(begin, start)
        open_time = end - begin
        if remaining <= open_time:
            return begin + remaining
        remaining -= open_time
    raise InvalidInput(
        f"an SLA of {hours} business hours does not end within {MAX_DAYS} days",
        field="sla_hours",
    )
