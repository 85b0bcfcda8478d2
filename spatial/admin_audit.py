"""The admin audit log: every change to a city's set-up, with who, when and what.

Each admin page and command that changes rules, zone layers, users, API keys,
templates, the catalogue or the mail and city settings calls :func:`record` before its
commit, so the event and the change are written in one transaction (a failed change
leaves no event, an event always names a change that happened).

``what`` is a small JSON object of the changed fields. Secrets never go in it: fields
whose name says password, key, secret, token or hash are dropped by :func:`record`,
whatever the caller passes, so a new call site cannot leak one by mistake.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from spatial.errors import InvalidInput
from spatial.models import Jurisdiction, User
from spatial.models_ops import AdminEvent

PAGE_SIZE = 50
# Parts of a field name that mark a secret (``password``, ``key_hash``, ``api_key``,
# ``link_secret``, ``totp_secret``, ``token``...). ``what`` never holds them.
SECRET_PARTS = ("password", "secret", "token", "hash", "key")
# Fields that hold "key" in their name but are no secret.
NOT_SECRET = frozenset({"key_prefix", "keywords"})
MAX_TEXT = 300


def _secret(name: str) -> bool:
    lowered = name.lower()
    return lowered not in NOT_SECRET and any(part in lowered for part in SECRET_PARTS)


def _plain(value: Any) -> Any:
    """A JSON value for ``value``: long text cut short, dates as ISO text, secrets out."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if not _secret(str(k))}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return value[: MAX_TEXT - 1] + "…"
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def cli_actor() -> str:
    """Who runs a command: ``cli:<OS user>``."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = str(os.getuid())
    return f"cli:{name}"


def changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The fields that differ, as ``{field: [old, new]}``."""
    return {k: [before.get(k), after.get(k)] for k in after if before.get(k) != after.get(k)}


def record(
    session: Session,
    action: str,
    object_type: str,
    object_id: Any = None,
    *,
    city: Jurisdiction | int | None,
    actor: User | str,
    what: dict[str, Any] | None = None,
) -> AdminEvent:
    """Add one event to ``session`` (the caller commits it with the change).

    ``actor`` is the signed-in user, or a label such as :func:`cli_actor`'s. ``city`` is
    the city changed (None for an install-wide change). Secret fields of ``what`` are
    dropped.
    """
    if isinstance(actor, User):
        actor_id, label = actor.id, actor.email
    else:
        actor_id, label = None, actor
    jid = city.id if isinstance(city, Jurisdiction) else city
    event = AdminEvent(
        actor_id=actor_id,
        actor_label=label[:200],
        jurisdiction_id=jid,
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id)[:200],
        what=_plain(what or {}),
    )
    session.add(event)
    return event


@dataclass(frozen=True)
class AuditPage:
    events: list[Any]
    total: int
    page: int
    pages: int
    actions: list[str]


def parse_page(value: str | None) -> int:
    text = (value or "1").strip()
    if not text.isdigit() or int(text) < 1:
        raise InvalidInput(f"page {text!r} is not a whole number from 1", field="page")
    return int(text)


def events(
    session: Session,
    city_ids: list[int] | None,
    *,
    action: str | None = None,
    page: int = 1,
    page_size: int = PAGE_SIZE,
) -> AuditPage:
    """Events newest first, of the cities ``city_ids`` (None: every city and the
    install-wide ones), optionally of one ``action``, one page at a time.

    Rows carry the event's columns and ``city`` (the city's name, or None)."""
    conds = []
    scope = []
    if city_ids is not None:
        scope.append(AdminEvent.jurisdiction_id.in_(city_ids))
        conds.append(AdminEvent.jurisdiction_id.in_(city_ids))
    if action:
        conds.append(AdminEvent.action == action)
    total = session.scalar(sa.select(sa.func.count()).select_from(AdminEvent).where(*conds)) or 0
    pages = max(1, -(-total // page_size))
    rows = session.execute(
        sa.select(AdminEvent, Jurisdiction.name.label("city"), Jurisdiction.timezone)
        .outerjoin(Jurisdiction, Jurisdiction.id == AdminEvent.jurisdiction_id)
        .where(*conds)
        .order_by(AdminEvent.id.desc())
        .limit(page_size)
        .offset((page - 1) * page_size)
    ).all()
    actions = session.scalars(
        sa.select(AdminEvent.action).where(*scope).distinct().order_by(AdminEvent.action)
    ).all()
    return AuditPage(
        events=list(rows), total=int(total), page=page, pages=pages, actions=list(actions)
    )
