"""The internal help desk: staff of the city as requesters (internal customers).

Any active staff member of a city may file a request of an internal (staff-only)
category: on the intranet, or by e-mail to a help-desk address (a mail address whose
category is internal) when the city's mail gateway vouches for the sender. Such a
request carries ``requester_id``; its category is private, so no public page, map, feed
or API answer shows it, and :func:`routing.actions.internal_outsider` keeps it from
other departments' staff. The requester follows it on "My requests"
(:func:`my_requests`): its status and what is meant for them (the public events and
their own messages), never the internal notes.

The intranet's emergency contacts (:class:`IntranetContact`) are edited here too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from spatial.accounts import EMAIL_RE, is_install_admin
from spatial.errors import InvalidInput, NotFound
from spatial.models import Jurisdiction, RequestEvent, Service, ServiceRequest, User, now_utc
from spatial.models_work import IntranetContact

MAX_CONTACT_NAME = 200
MAX_CONTACT_DESCRIPTION = 500
# Digits with the usual separators, an optional leading + and an extension ("x 4471").
PHONE_RE = re.compile(r"^\+?[0-9][0-9 ()./-]{2,40}(?:\s*(?:x|ext\.?)\s*[0-9]{1,6})?$", re.I)
# The events a requester reads besides the public ones: their own messages.
REQUESTER_KINDS = ("message",)


def is_city_staff(user: User | None, city: Jurisdiction) -> bool:
    """Whether ``user`` is an active staff member of ``city`` (any role): who may use its
    intranet and file requests there. An install administrator is nobody's colleague."""
    return (
        user is not None
        and bool(user.active)
        and not is_install_admin(user)
        and user.jurisdiction_id == city.id
    )


def staff_sender(session: Session, city_id: int, address: str | None) -> User | None:
    """The active staff member of city ``city_id`` whose e-mail address is ``address``."""
    address = (address or "").strip().lower()
    if not address:
        return None
    return session.scalar(
        sa.select(User).where(
            sa.func.lower(User.email) == address,
            User.active.is_(True),
            User.jurisdiction_id == city_id,
        )
    )


def is_helpdesk(service: Service | None) -> bool:
    """Whether mail filed under ``service`` is for staff only (a help-desk address)."""
    return service is not None and bool(service.internal)


def intranet_services(session: Session, city: Jurisdiction) -> list[Service]:
    """The city's active internal categories with their questions, by group and name."""
    return list(
        session.scalars(
            sa.select(Service)
            .where(
                Service.jurisdiction_id == city.id,
                Service.internal.is_(True),
                Service.active.is_(True),
            )
            .options(selectinload(Service.attributes))
            .order_by(Service.group.nulls_last(), Service.name)
        )
    )


def intranet_service(session: Session, city: Jurisdiction, code: str) -> Service:
    """The active internal category ``code`` of ``city``, or :class:`NotFound`."""
    found = next((s for s in intranet_services(session, city) if s.code == code), None)
    if found is None:
        raise NotFound(f"there is no staff form {code[:64]!r}")
    return found


@dataclass
class MyRequest:
    """One of a requester's requests with what they may read of it (oldest event first)."""

    request: ServiceRequest
    service_name: str
    events: list[RequestEvent]


def my_requests(session: Session, user: User, limit: int = 100) -> list[MyRequest]:
    """The requests ``user`` filed as a requester, newest first, with their status and the
    events meant for them: public ones and their own messages (no internal note)."""
    requests = list(
        session.scalars(
            sa.select(ServiceRequest)
            .where(
                ServiceRequest.requester_id == user.id,
                ServiceRequest.jurisdiction_id == user.jurisdiction_id,
            )
            .order_by(ServiceRequest.requested_at.desc(), ServiceRequest.id.desc())
            .limit(limit)
        )
    )
    if not requests:
        return []
    names = dict(
        session.execute(
            sa.select(Service.id, Service.name).where(
                Service.id.in_({r.service_id for r in requests})
            )
        ).all()
    )
    events: dict[int, list[RequestEvent]] = {r.id: [] for r in requests}
    for event in session.scalars(
        sa.select(RequestEvent)
        .where(
            RequestEvent.request_id.in_(list(events)),
            sa.or_(RequestEvent.public.is_(True), RequestEvent.kind.in_(REQUESTER_KINDS)),
        )
        .order_by(RequestEvent.at, RequestEvent.id)
    ):
        events[event.request_id].append(event)
    return [MyRequest(r, names.get(r.service_id, ""), events[r.id]) for r in requests]


# --------------------------------------------------------------------- emergency contacts


def contacts(session: Session, city: Jurisdiction) -> list[IntranetContact]:
    """The city's intranet contacts in their order."""
    return list(
        session.scalars(
            sa.select(IntranetContact)
            .where(IntranetContact.jurisdiction_id == city.id)
            .order_by(IntranetContact.position, IntranetContact.id)
        )
    )


def _contact_of(session: Session, city: Jurisdiction, contact_id: int) -> IntranetContact:
    contact = session.get(IntranetContact, contact_id)
    if contact is None or contact.jurisdiction_id != city.id:
        raise NotFound(f"no contact #{contact_id}")
    return contact


def contact_record(contact: IntranetContact) -> dict[str, Any]:
    """A contact's fields as plain values (the audit's record)."""
    return {
        "name": contact.name,
        "description": contact.description,
        "phone": contact.phone,
        "email": contact.email,
        "position": contact.position,
    }


def validate_contact(form: dict[str, Any]) -> dict[str, Any]:
    """Clean contact fields, or :class:`InvalidInput` with ``.errors`` (field -> message).

    A contact needs a name and a way to reach it: a phone number, an e-mail address or both.
    """
    errors: dict[str, str] = {}
    name = " ".join(str(form.get("name") or "").split())
    description = " ".join(str(form.get("description") or "").split()) or None
    phone = " ".join(str(form.get("phone") or "").split()) or None
    email = str(form.get("email") or "").strip() or None
    if not name:
        errors["name"] = "Give the contact a name (for example: IT on call)"
    elif len(name) > MAX_CONTACT_NAME:
        errors["name"] = f"Keep the name to {MAX_CONTACT_NAME} characters"
    if description and len(description) > MAX_CONTACT_DESCRIPTION:
        errors["description"] = f"Keep the description to {MAX_CONTACT_DESCRIPTION} characters"
    if phone and (len(phone) > 50 or not PHONE_RE.match(phone)):
        errors["phone"] = f"{phone[:50]!r} is not a phone number"
    if email and (len(email) > 254 or not EMAIL_RE.match(email)):
        errors["email"] = f"{email[:254]!r} is not an e-mail address"
    if not (phone or email) and not ({"phone", "email"} & errors.keys()):
        errors["phone"] = "Give a phone number or an e-mail address"
    if errors:
        exc = InvalidInput(next(iter(errors.values())), field=next(iter(errors)))
        exc.errors = errors  # type: ignore[attr-defined]
        raise exc
    return {"name": name, "description": description, "phone": phone, "email": email}


def save_contact(
    session: Session, city: Jurisdiction, form: dict[str, Any], contact_id: int | None = None
) -> IntranetContact:
    """Add a contact (last in the order) or change one; validated before anything is
    written."""
    clean = validate_contact(form)
    if contact_id is None:
        last = session.scalar(
            sa.select(sa.func.max(IntranetContact.position)).where(
                IntranetContact.jurisdiction_id == city.id
            )
        )
        contact = IntranetContact(jurisdiction_id=city.id, position=(last or 0) + 1)
        session.add(contact)
    else:
        contact = _contact_of(session, city, contact_id)
    for key, value in clean.items():
        setattr(contact, key, value)
    contact.updated_at = now_utc()
    session.flush()
    return contact


def delete_contact(session: Session, city: Jurisdiction, contact_id: int) -> str:
    """Remove a contact; returns its name."""
    contact = _contact_of(session, city, contact_id)
    name = contact.name
    session.delete(contact)
    session.flush()
    return name


def move_contact(
    session: Session, city: Jurisdiction, contact_id: int, direction: str
) -> IntranetContact:
    """Move a contact one place ``up`` or ``down`` in the order (the ends stay put)."""
    ordered = contacts(session, city)
    index = next((i for i, c in enumerate(ordered) if c.id == contact_id), None)
    if index is None:
        raise NotFound(f"no contact #{contact_id}")
    if direction not in ("up", "down"):
        raise InvalidInput("move a contact up or down", field="direction")
    other = index - 1 if direction == "up" else index + 1
    if 0 <= other < len(ordered):
        ordered[index], ordered[other] = ordered[other], ordered[index]
    for position, contact in enumerate(ordered, start=1):
        contact.position = position
    session.flush()
    return ordered[other] if 0 <= other < len(ordered) else ordered[index]
