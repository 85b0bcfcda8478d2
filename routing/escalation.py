"""Escalation of open work that waits too long, and the departments' morning digest.

A city's :class:`~spatial.models_work.EscalationPolicy` rows say when: the row without a
category is the city's default, a category's own row replaces it for that category, and a
city with no row at all escalates overdue work only (level 1, no second level).

- :func:`sweep` (every minute in ``civicpin worker``; ``civicpin escalation run``) moves
  open requests from level 0 to 1 when they stayed untriaged for the policy's minutes or
  went past their due time, and from 1 to 2 when the reason still holds ``level2_minutes``
  after level 1. Each step is one conditional ``UPDATE ... WHERE escalation_level = N ...
  RETURNING``, so of several workers sweeping at once only one moves a request and mails.
  Level 1 goes to the department's supervisors (else its address, else the city's
  dispatch address); level 2 to the department's escalation address and its supervisors.
  Requests held for review and closed requests never escalate.
- :func:`send_digests` (at the city's ``digest_hour``, once per local day per
  department, claimed on ``department_digest``) mails each department with overdue or
  escalated open work the list of it.
- :func:`save_policy`, :func:`remove_policy` and :func:`save_settings` are the admin
  page's and the city file's writes, validated first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from notify import messages
from notify.links import mail_config
from spatial.city_time import city_time
from spatial.errors import InvalidInput, NotFound
from spatial.models import (
    OPEN_STATUSES,
    Department,
    Jurisdiction,
    RequestEvent,
    Service,
    ServiceRequest,
    User,
    now_utc,
    staff_department,
)
from spatial.models_work import DepartmentDigest, EscalationPolicy

# A year: longer than any wait a city would escalate on.
MAX_MINUTES = 525_600
MAX_REOPEN_DAYS = 365
POLICY_FIELDS = ("untriaged_minutes", "when_overdue", "level2_minutes")
# What a city without any policy row gets: overdue work reaches its supervisors.
IMPLICIT = {"untriaged_minutes": None, "when_overdue": True, "level2_minutes": None}
# The digest lists at most this many requests per department (and says how many more).
DIGEST_MAX_ITEMS = 200
# More escalations than this for one person in one sweep come as one list.
SUMMARY_OVER = 10
ACTOR = "Escalation"


# --------------------------------------------------------------------------- policies


def _minutes(value: Any, field: str) -> int | None:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        raise InvalidInput(
            "Give a whole number of minutes, or leave it empty", field=field
        ) from None
    if not 1 <= number <= MAX_MINUTES:
        raise InvalidInput(
            f"Give between 1 and {MAX_MINUTES} minutes, or leave it empty", field=field
        )
    return number


def policies(session: Session, city: Jurisdiction) -> dict[int | None, EscalationPolicy]:
    """The city's rows by category id (None: the city's default)."""
    rows = session.scalars(
        sa.select(EscalationPolicy).where(EscalationPolicy.jurisdiction_id == city.id)
    )
    return {p.service_id: p for p in rows}


def policy_values(policy: EscalationPolicy | None) -> dict[str, Any] | None:
    if policy is None:
        return None
    return {k: getattr(policy, k) for k in POLICY_FIELDS}


def save_policy(
    session: Session,
    city: Jurisdiction,
    service_id: int | None,
    *,
    untriaged_minutes: Any = None,
    when_overdue: bool = True,
    level2_minutes: Any = None,
) -> tuple[EscalationPolicy, dict[str, Any] | None]:
    """Create or change the city's default (``service_id`` None) or a category's row.

    Returns the row and its values before (None: new). Raises :class:`InvalidInput`
    naming the field before anything is written.
    """
    if service_id is not None:
        service = session.get(Service, service_id)
        if service is None or service.jurisdiction_id != city.id:
            raise InvalidInput("Choose one of the city's categories", field="service_id")
    values = {
        "untriaged_minutes": _minutes(untriaged_minutes, "untriaged_minutes"),
        "when_overdue": bool(when_overdue),
        "level2_minutes": _minutes(level2_minutes, "level2_minutes"),
    }
    row = policies(session, city).get(service_id)
    before = policy_values(row)
    if row is None:
        row = EscalationPolicy(jurisdiction_id=city.id, service_id=service_id)
        session.add(row)
    for key, value in values.items():
        setattr(row, key, value)
    row.updated_at = now_utc()
    session.flush()
    return row, before


def remove_policy(session: Session, city: Jurisdiction, service_id: int | None) -> dict[str, Any]:
    """Remove a row (a category then follows the city's default); returns its values."""
    row = policies(session, city).get(service_id)
    if row is None:
        raise NotFound("no such escalation policy")
    before = policy_values(row)
    session.delete(row)
    session.flush()
    return before


def _whole(value: Any, field: str, low: int, high: int, what: str) -> int:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise InvalidInput(f"Give a whole number of {what}", field=field) from None
    if not low <= number <= high:
        raise InvalidInput(f"Give between {low} and {high} {what}", field=field)
    return number


def save_settings(
    session: Session, city: Jurisdiction, *, reopen_days: Any, digest_hour: Any
) -> dict[str, tuple[int, int]]:
    """Set the reopening window (days; 0: no reopening) and the digest's local hour;
    returns what changed as ``{field: (old, new)}``."""
    new = {
        "reopen_days": _whole(reopen_days, "reopen_days", 0, MAX_REOPEN_DAYS, "days"),
        "digest_hour": _whole(digest_hour, "digest_hour", 0, 23, "hours (0 to 23)"),
    }
    changed = {k: (getattr(city, k), v) for k, v in new.items() if getattr(city, k) != v}
    for key, (_, value) in changed.items():
        setattr(city, key, value)
    session.flush()
    return changed


# --------------------------------------------------------------------------- the sweep

_OPEN = [s.value for s in OPEN_STATUSES]

# The policy of each open request of the swept cities, and whether its reason holds now.
_CANDIDATES = """
WITH p AS (
  SELECT r.id, r.jurisdiction_id, r.escalation_level, r.escalated_at, r.requested_at,
         r.due_at, r.status,
         CASE WHEN pc.id IS NOT NULL THEN pc.untriaged_minutes
              ELSE pd.untriaged_minutes END AS untriaged_minutes,
         CASE WHEN pc.id IS NOT NULL THEN pc.when_overdue
              WHEN pd.id IS NOT NULL THEN pd.when_overdue ELSE true END AS when_overdue,
         CASE WHEN pc.id IS NOT NULL THEN pc.level2_minutes
              ELSE pd.level2_minutes END AS level2_minutes
  FROM service_request r
  LEFT JOIN escalation_policy pc
         ON pc.jurisdiction_id = r.jurisdiction_id AND pc.service_id = r.service_id
  LEFT JOIN escalation_policy pd
         ON pd.jurisdiction_id = r.jurisdiction_id AND pd.service_id IS NULL
  WHERE r.status IN :open AND r.held_at IS NULL AND r.closed_at IS NULL
    AND r.escalation_level = :level
    AND (CAST(:city_id AS integer) IS NULL OR r.jurisdiction_id = :city_id)
), c AS (
  SELECT p.*,
         (p.untriaged_minutes IS NOT NULL AND p.status = 'new'
          AND p.requested_at <= :now - make_interval(mins => p.untriaged_minutes)
          AND NOT EXISTS (SELECT 1 FROM request_event e
                          WHERE e.request_id = p.id AND e.kind = 'triaged')) AS untriaged,
         (p.when_overdue AND p.due_at IS NOT NULL AND p.due_at < :now) AS overdue
  FROM p
)
"""

_LEVEL1 = sa.text(
    _CANDIDATES
    + """
UPDATE service_request r SET escalation_level = 1, escalated_at = :now
FROM c
WHERE r.id = c.id AND r.escalation_level = 0 AND (c.untriaged OR c.overdue)
RETURNING r.id, c.untriaged, c.overdue
"""
).bindparams(sa.bindparam("open", expanding=True))

_LEVEL2 = sa.text(
    _CANDIDATES
    + """
UPDATE service_request r SET escalation_level = 2, escalated_at = :now
FROM c
WHERE r.id = c.id AND r.escalation_level = 1 AND c.level2_minutes IS NOT NULL
  AND c.escalated_at <= :now - make_interval(mins => c.level2_minutes)
  AND (c.untriaged OR c.overdue)
RETURNING r.id, c.untriaged, c.overdue, c.escalated_at AS level1_at
"""
).bindparams(sa.bindparam("open", expanding=True))


@dataclass
class SweepResult:
    level1: list[str] = field(default_factory=list)  # public ids
    level2: list[str] = field(default_factory=list)
    messages: int = 0

    def counts(self) -> dict[str, int]:
        return {"level1": len(self.level1), "level2": len(self.level2), "messages": self.messages}


def _duration(delta: timedelta) -> str:
    minutes = max(int(delta.total_seconds() // 60), 0)
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h"
    return f"{hours // 24} days"


def _reason(
    req: ServiceRequest, city: Jurisdiction, untriaged: bool, overdue: bool, now: datetime
) -> str:
    parts = []
    if untriaged:
        parts.append(f"untriaged for {_duration(now - req.requested_at)}")
    if overdue and req.due_at is not None:
        parts.append(f"overdue since {city_time(req.due_at, city)}")
    return " and ".join(parts) or "waiting too long"


def supervisors(session: Session, department_id: int) -> list[str]:
    """The active supervisors' addresses of a department."""
    return list(
        session.scalars(
            sa.select(User.email)
            .join(staff_department, staff_department.c.user_id == User.id)
            .where(
                staff_department.c.department_id == department_id,
                staff_department.c.supervisor.is_(True),
                User.active.is_(True),
            )
            .order_by(User.id)
        )
    )


def recipients(session: Session, request: ServiceRequest, level: int) -> list[str]:
    """Who hears of ``request`` reaching ``level`` (see the module's summary)."""
    dept = session.get(Department, request.department_id) if request.department_id else None
    found: list[str] = []
    if dept is not None:
        if level >= 2 and dept.escalation_email:
            found.append(dept.escalation_email)
        found += supervisors(session, dept.id)
        if not found and dept.email:
            found.append(dept.email)
    if not found:
        dispatch = mail_config(session, request.jurisdiction_id).dispatch_email
        if dispatch:
            found.append(dispatch)
    return found


def _message_values(session: Session, req: ServiceRequest, city: Jurisdiction) -> dict[str, str]:
    dept = session.get(Department, req.department_id) if req.department_id else None
    return {
        "department": dept.name if dept else "central dispatch (no department)",
        "reported": city_time(req.requested_at, city),
        "due": city_time(req.due_at, city) if req.due_at else "no due time",
    }


def _escalate(
    session: Session,
    rows: list,
    level: int,
    now: datetime,
    public_base_url: str,
    result: SweepResult,
) -> None:
    cities: dict[int, Jurisdiction] = {}
    moved: list[tuple[ServiceRequest, Jurisdiction, str, list[str]]] = []
    per_addr: dict[tuple[int, str], list[ServiceRequest]] = {}
    for row in rows:
        req = session.get(ServiceRequest, row.id)
        city = cities.get(req.jurisdiction_id) or session.get(Jurisdiction, req.jurisdiction_id)
        cities[city.id] = city
        reason = _reason(req, city, row.untriaged, row.overdue, now)
        if level == 2:
            reason = f"{reason}, still {_duration(now - row.level1_at)} after level 1"
        session.add(
            RequestEvent(
                request_id=req.id,
                at=now,
                actor_label=ACTOR,
                kind="escalated",
                from_value=str(level - 1),
                to_value=str(level),
                note=reason,
                public=False,
                department_id=req.department_id,
            )
        )
        addrs = list(dict.fromkeys(a.strip().lower() for a in recipients(session, req, level)))
        moved.append((req, city, reason, addrs))
        for addr in addrs:
            per_addr.setdefault((city.id, addr), []).append(req)
        (result.level1 if level == 1 else result.level2).append(req.public_id)
    # Whoever would get more than SUMMARY_OVER mails from one sweep (a city's first policy,
    # an imported backlog) gets one list instead of a flood.
    summarised = {key for key, reqs in per_addr.items() if len(reqs) > SUMMARY_OVER}
    for req, city, reason, addrs in moved:
        singles = [a for a in addrs if (city.id, a) not in summarised]
        if singles:
            sent = messages.on_escalated(
                session,
                req,
                public_base_url,
                level=level,
                reason=reason,
                to_addrs=singles,
                values=_message_values(session, req, city),
            )
            result.messages += len(sent)
    for city_id, addr in summarised:
        reqs = per_addr[(city_id, addr)]
        city = cities[city_id]
        base = messages.city_links_base(session, city_id, public_base_url)
        lines = [_digest_line(r, city, now, base) for r in reqs[:DIGEST_MAX_ITEMS]]
        if len(reqs) > DIGEST_MAX_ITEMS:
            lines.append(f"... and {len(reqs) - DIGEST_MAX_ITEMS} more")
        sent = messages.escalation_summary(
            session,
            city_id,
            public_base_url,
            to_addr=addr,
            level=level,
            count=len(reqs),
            items="\n".join(lines),
        )
        result.messages += len(sent)


def sweep(
    session: Session,
    now: datetime | None = None,
    public_base_url: str = "",
    city: Jurisdiction | None = None,
) -> dict[str, int]:
    """Escalate what is due in every city (or ``city``) at ``now``, in the caller's
    transaction (the caller commits); returns the counts of requests moved to each level
    and of messages written."""
    return sweep_result(session, now, public_base_url, city).counts()


def sweep_result(
    session: Session,
    now: datetime | None = None,
    public_base_url: str = "",
    city: Jurisdiction | None = None,
) -> SweepResult:
    """:func:`sweep` with the public ids of the requests it moved."""
    now = now or now_utc()
    params = {"now": now, "open": _OPEN, "city_id": city.id if city else None}
    result = SweepResult()
    # Level 2 first: a request that reaches level 1 now waits its full delay for level 2.
    level2 = session.execute(_LEVEL2, {**params, "level": 1}).all()
    level1 = session.execute(_LEVEL1, {**params, "level": 0}).all()
    _escalate(session, level2, 2, now, public_base_url, result)
    _escalate(session, level1, 1, now, public_base_url, result)
    session.flush()
    return result


# --------------------------------------------------------------------------- the digest


def local_day(city: Jurisdiction, now: datetime) -> tuple[date, int]:
    """The city's local date and hour at ``now``."""
    local = now.astimezone(ZoneInfo(city.timezone))
    return local.date(), local.hour


def digest_items(session: Session, department: Department, now: datetime) -> list[ServiceRequest]:
    """The department's open, public-or-held-aside work that is overdue or escalated,
    most escalated first, then the longest overdue."""
    r = ServiceRequest
    return list(
        session.scalars(
            sa.select(r)
            .where(
                r.department_id == department.id,
                r.status.in_(_OPEN),
                r.held_at.is_(None),
                sa.or_(r.escalation_level > 0, sa.and_(r.due_at.is_not(None), r.due_at < now)),
            )
            .order_by(r.escalation_level.desc(), r.due_at.asc().nulls_last(), r.id)
        )
    )


def _digest_line(req: ServiceRequest, city: Jurisdiction, now: datetime, base: str) -> str:
    category = req.service.name if req.service else ""
    due = city_time(req.due_at, city) if req.due_at else "no due time"
    level = f", escalation level {req.escalation_level}" if req.escalation_level else ""
    return (
        f"- {req.public_id} {category}: {_duration(now - req.requested_at)} old, due {due}"
        f"{level}\n  {messages.staff_url(base, req)}"
    )


def _claim(session: Session, department_id: int, day: date, force: bool) -> bool:
    """Take the department's digest for ``day``: True for exactly one caller per day
    (``force``: also when sent already)."""
    stmt = sa.text(
        "INSERT INTO department_digest (department_id, sent_on) VALUES (:d, :day) "
        "ON CONFLICT (department_id) DO UPDATE SET sent_on = EXCLUDED.sent_on "
        "WHERE department_digest.sent_on < EXCLUDED.sent_on OR :force "
        "RETURNING department_id"
    )
    return (
        session.execute(stmt, {"d": department_id, "day": day, "force": force}).first() is not None
    )


def send_digests(
    session: Session,
    now: datetime | None = None,
    public_base_url: str = "",
    city: Jurisdiction | None = None,
    force: bool = False,
) -> dict[str, int]:
    """Mail each department whose city's local ``digest_hour`` has come today its digest,
    once per local day (``force``: now, whatever the hour, again if sent). In the
    caller's transaction; returns the departments mailed and the messages written."""
    now = now or now_utc()
    cities = [city] if city is not None else list(session.scalars(sa.select(Jurisdiction)))
    mailed = written = 0
    for c in cities:
        day, hour = local_day(c, now)
        if not force and hour < c.digest_hour:
            continue
        base = messages.city_links_base(session, c.id, public_base_url)
        departments = session.scalars(
            sa.select(Department)
            .where(Department.jurisdiction_id == c.id)
            .order_by(Department.code)
        ).all()
        sent_on = dict(
            session.execute(
                sa.select(DepartmentDigest.department_id, DepartmentDigest.sent_on).where(
                    DepartmentDigest.department_id.in_([d.id for d in departments])
                )
            ).all()
        )
        for dept in departments:
            if not force and sent_on.get(dept.id) is not None and sent_on[dept.id] >= day:
                continue  # the worker asks every minute; most of the day it is done
            # Claimed first, with work or without: the day's question is answered once.
            if not _claim(session, dept.id, day, force):
                continue
            items = digest_items(session, dept, now)
            to = supervisors(session, dept.id) + ([dept.email] if dept.email else [])
            if not items or not to:
                continue
            lines = [_digest_line(r, c, now, base) for r in items[:DIGEST_MAX_ITEMS]]
            if len(items) > DIGEST_MAX_ITEMS:
                lines.append(f"... and {len(items) - DIGEST_MAX_ITEMS} more")
            sent = messages.department_digest(
                session,
                c.id,
                public_base_url,
                to_addrs=to,
                values={
                    "department": dept.name,
                    "day": city_time(now, c, with_time=False),
                    "count": str(len(items)),
                    "items": "\n".join(lines),
                },
            )
            mailed += 1
            written += len(sent)
    session.flush()
    return {"departments": mailed, "messages": written}
