"""A city's mail set-up: the intake addresses whose mail becomes requests, and the mail
settings (dispatch address, sender, loop limits, the trusted mail gateway).

The admin page and ``civicpin mail address ...`` / ``civicpin mail config`` share these
functions; they raise :class:`InvalidInput` (with the field) before anything is written,
and leave the admin audit event to their caller.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from intake.submit import with_defaults
from notify.links import mail_config
from spatial.accounts import EMAIL_RE
from spatial.errors import InvalidInput, NotFound
from spatial.models import Department, Jurisdiction, Service
from spatial.models_mail import MailAddress, MailConfig

# An authserv-id as gateways write it: a host name or a similar token (RFC 8601 section 2.2).
AUTHSERV_ID_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,253}[A-Za-z0-9])?$")

# The settings ``mail config`` changes, as the audit log records them.
MAIL_CONFIG_FIELDS = (
    "dispatch_email",
    "from_address",
    "reply_limit_per_hour",
    "accept_limit_per_hour",
    "address_reply_limit_per_hour",
    "trusted_authserv_id",
)
# Inclusive ranges of the limits, per setting.
LIMITS = {
    "reply_limit_per_hour": (0, 1000),
    "accept_limit_per_hour": (1, 100000),
    "address_reply_limit_per_hour": (0, 100000),
}


def check_email(value: str | None, what: str) -> str:
    """An e-mail address, lower-cased; ``what`` names the field in the message."""
    value = (value or "").strip().lower()
    if len(value) > 254 or not EMAIL_RE.match(value):
        raise InvalidInput(f"{what} {value!r} is not an e-mail address", field=what)
    return value


def check_authserv_id(value: str | None, field: str = "trusted-authserv-id") -> str:
    """An authserv-id, lower-cased ('' = none)."""
    value = (value or "").strip()
    if value and not AUTHSERV_ID_RE.match(value):
        raise InvalidInput(
            f"{field} {value!r} is not an authserv-id: give the name the gateway "
            "writes first in its Authentication-Results header, such as mx.example.org",
            field=field,
        )
    return value.lower()


def check_from(value: str | None, field: str = "from") -> str:
    """A From: line ('' = the install's), such as ``City 311 <311@city.example>``."""
    value = (value or "").strip()
    if value:
        check_email(parseaddr(value)[1], field)
    return value


@dataclass(frozen=True)
class IntakeAddress:
    """One intake address as the page and the list show it."""

    id: int
    city: str
    address: str
    category: str
    category_name: str
    department: str | None
    active: bool
    unanswered: list[str]  # required questions without a default: requests need answers


def _department(session: Session, city: Jurisdiction, code: str) -> Department:
    dept = session.scalar(
        sa.select(Department).where(Department.jurisdiction_id == city.id, Department.code == code)
    )
    if dept is None:
        raise InvalidInput(f"{city.slug} has no department {code!r}", field="department")
    return dept


def _category(session: Session, city: Jurisdiction, code: str) -> Service:
    service = session.scalar(
        sa.select(Service).where(
            Service.jurisdiction_id == city.id, Service.code == code, Service.active.is_(True)
        )
    )
    if service is None:
        raise InvalidInput(f"{city.slug} has no active category {code!r}", field="category")
    return service


def unanswered(service: Service) -> list[str]:
    """The required questions of ``service`` an e-mail leaves unanswered (no default)."""
    return with_defaults(service, {})[1]


def add_address(
    session: Session,
    city: Jurisdiction,
    address: str,
    category: str | None = None,
    department: str | None = None,
) -> MailAddress:
    """Accept mail to ``address`` for ``city``: new requests get ``category`` (a code)
    and, with ``department``, go to that department whatever the rules say.

    Without a category, the department's first public category is taken, one whose
    required questions all have defaults if there is one. A category with required
    questions is accepted: e-mail takes their defaults, else the request needs answers.
    """
    address = check_email(address, "address")
    category = (category or "").strip() or None
    department = (department or "").strip() or None
    existing = session.scalar(
        sa.select(MailAddress).where(sa.func.lower(MailAddress.address) == address)
    )
    if existing is not None:
        owner = session.get(Jurisdiction, existing.jurisdiction_id)
        raise InvalidInput(
            f"{address} is already an intake address of {owner.slug}", field="address"
        )
    dept = _department(session, city, department) if department else None
    if category:
        service = _category(session, city, category)
    elif dept is not None:
        candidates = session.scalars(
            sa.select(Service)
            .where(
                Service.jurisdiction_id == city.id,
                Service.default_department_id == dept.id,
                Service.active.is_(True),
                Service.private.is_(False),
            )
            .order_by(Service.name)
        ).all()
        if not candidates:
            raise InvalidInput(
                f"department {dept.code} has no public category of its own: choose a category",
                field="category",
            )
        service = next((s for s in candidates if not unanswered(s)), candidates[0])
    else:
        raise InvalidInput("choose a category or a department (or both)", field="category")
    row = MailAddress(
        jurisdiction_id=city.id,
        address=address,
        service_id=service.id,
        department_id=dept.id if dept else None,
        active=True,
    )
    session.add(row)
    session.flush()
    return row


def list_addresses(session: Session, city: Jurisdiction | None = None) -> list[IntakeAddress]:
    """The intake addresses (of ``city``, or of every city), by city and address."""
    stmt = (
        sa.select(MailAddress, Jurisdiction.slug, Service, Department.code)
        .join(Jurisdiction, Jurisdiction.id == MailAddress.jurisdiction_id)
        .join(Service, Service.id == MailAddress.service_id)
        .outerjoin(Department, Department.id == MailAddress.department_id)
        .order_by(Jurisdiction.slug, MailAddress.address)
    )
    if city is not None:
        stmt = stmt.where(MailAddress.jurisdiction_id == city.id)
    return [
        IntakeAddress(
            addr.id,
            slug,
            addr.address,
            service.code,
            service.name,
            dept,
            addr.active,
            unanswered(service),
        )
        for addr, slug, service, dept in session.execute(stmt).all()
    ]


def remove_address(session: Session, address: str, city: Jurisdiction | None = None) -> MailAddress:
    """Stop accepting mail to ``address`` (of ``city`` only, when given); returns the
    removed row (deleted at the next flush)."""
    address = check_email(address, "address")
    row = session.scalar(
        sa.select(MailAddress).where(sa.func.lower(MailAddress.address) == address)
    )
    if row is None or (city is not None and row.jurisdiction_id != city.id):
        raise NotFound(f"{address} is not an intake address")
    session.delete(row)
    return row


def _limit(name: str, value: Any, field: str) -> int:
    lo, hi = LIMITS[name]
    text = str(value).strip()
    if not re.fullmatch(r"[0-9]+", text) or not lo <= int(text) <= hi:
        raise InvalidInput(f"{field} must be a whole number from {lo} to {hi}", field=field)
    return int(text)


def update_config(
    session: Session,
    city: Jurisdiction,
    values: dict[str, Any],
    fields: dict[str, str] | None = None,
) -> tuple[MailConfig, dict[str, Any]]:
    """Change a city's mail settings; returns the settings and what changed
    (``{name: [before, after]}``).

    ``values`` maps names of :data:`MAIL_CONFIG_FIELDS` to new values; a name left out
    stays as it is; '' clears an address or the gateway. ``fields``: the name each setting
    has for the caller (an option, a form field), for the messages.
    """
    from spatial.admin_audit import changes

    fields = fields or {}
    unknown = set(values) - set(MAIL_CONFIG_FIELDS)
    if unknown:
        raise ValueError(f"unknown mail settings: {sorted(unknown)}")
    clean: dict[str, Any] = {}
    for name, value in values.items():
        field = fields.get(name, name)
        if name == "dispatch_email":
            clean[name] = check_email(value, field) if (value or "").strip() else None
        elif name == "from_address":
            clean[name] = check_from(value, field) or None
        elif name == "trusted_authserv_id":
            clean[name] = check_authserv_id(value, field) or None
        else:
            clean[name] = _limit(name, value, field)
    cfg = mail_config(session, city.id)
    before = {f: getattr(cfg, f) for f in MAIL_CONFIG_FIELDS}
    for name, value in clean.items():
        setattr(cfg, name, value)
    return cfg, changes(before, {f: getattr(cfg, f) for f in MAIL_CONFIG_FIELDS})
