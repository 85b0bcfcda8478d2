"""What a new city still lacks before it can take reports, and the default response templates.

:func:`checklist` reads, for one city, each thing a working city needs (a zone layer,
departments, crews, categories, published rules, a dispatcher, an intake address,
response templates; a business calendar is optional) and returns plain items the admin
home shows with a link to the page that adds it. :func:`add_default_templates` gives a
city standard responses for the common status changes; ``city create`` and the new city
page call it, and an admin can call it later for a city that has none.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from spatial.errors import InvalidInput
from spatial.models import (
    Crew,
    Department,
    Jurisdiction,
    ResponseTemplate,
    RoutingRule,
    RuleSet,
    Service,
    User,
    ZoneLayer,
)
from spatial.models_mail import MailAddress

# Standard responses for the common status changes. The placeholders are those
# routing.actions.render_template_text fills in; a dispatcher can edit the text
# before sending it, and the city's admin can change or delete each template.
DEFAULT_TEMPLATES: tuple[tuple[str, str], ...] = (
    (
        "Received",
        "Thank you for your report {public_id} ({service}) at {address}. We have received "
        "it and passed it to the team responsible. We will let you know how it goes.",
    ),
    (
        "Scheduled",
        "The work on your report {public_id} ({service}) at {address} is scheduled. "
        "We will tell you when it is done.",
    ),
    (
        "In progress",
        "A crew is now working on your report {public_id} ({service}) at {address}.",
    ),
    (
        "Completed",
        "Your report {public_id} ({service}) at {address} has been dealt with. "
        "Thank you for helping {city}.",
    ),
    (
        "Duplicate",
        "Thank you for your report {public_id}. We already know about this problem from "
        "an earlier report and are dealing with it there; updates will follow.",
    ),
    (
        "Not the city's responsibility",
        "Thank you for your report {public_id} ({service}) at {address}. This is not "
        "something {city} looks after, so we cannot act on it. Please contact the owner "
        "or the agency responsible.",
    ),
    (
        "Needs more information",
        "Thank you for your report {public_id} ({service}). To act on it we need more "
        "information: please reply to this message with the exact place and a short "
        "description of the problem.",
    ),
)


@dataclass(frozen=True)
class SetupItem:
    """One line of the checklist: what, whether it is done, the detail, where to do it."""

    key: str
    label: str
    done: bool
    detail: str
    endpoint: str
    optional: bool = False


def _counted(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def checklist(session: Session, city: Jurisdiction) -> list[SetupItem]:
    """The set-up items of ``city``, in the order a new city does them."""
    cid = city.id

    def count(query: sa.Select) -> sa.ScalarSelect:
        return query.scalar_subquery()

    row = session.execute(
        sa.select(
            count(
                sa.select(sa.func.count()).where(
                    ZoneLayer.jurisdiction_id == cid, ZoneLayer.is_current.is_(True)
                )
            ),
            count(sa.select(sa.func.count()).where(Department.jurisdiction_id == cid)),
            count(
                sa.select(sa.func.count())
                .select_from(Crew)
                .join(Department, Department.id == Crew.department_id)
                .where(Department.jurisdiction_id == cid)
            ),
            count(
                sa.select(sa.func.count()).where(
                    Service.jurisdiction_id == cid, Service.active.is_(True)
                )
            ),
            count(
                sa.select(sa.func.count())
                .select_from(RoutingRule)
                .join(RuleSet, RuleSet.id == RoutingRule.ruleset_id)
                .where(
                    RuleSet.jurisdiction_id == cid,
                    RuleSet.status == "published",
                    RoutingRule.active.is_(True),
                )
            ),
            count(
                sa.select(sa.func.count()).where(
                    User.jurisdiction_id == cid,
                    User.active.is_(True),
                    # An account whose job is dispatch: an admin may dispatch too, but
                    # counting the admin reading this list would make the item
                    # always done.
                    User.role == "dispatcher",
                )
            ),
            count(
                sa.select(sa.func.count()).where(
                    MailAddress.jurisdiction_id == cid, MailAddress.active.is_(True)
                )
            ),
            count(sa.select(sa.func.count()).where(ResponseTemplate.jurisdiction_id == cid)),
        )
    ).one()
    layers, departments, crews, categories, rules, dispatchers, addresses, templates = row
    calendar = city.business_calendar
    return [
        SetupItem(
            "zones",
            "A zone layer",
            layers > 0,
            _counted(layers, "current layer")
            if layers
            else "no zone layer yet: upload the city's districts or wards",
            "admin.layers",
        ),
        SetupItem(
            "departments",
            "Departments",
            departments > 0,
            _counted(departments, "department") if departments else "no department yet",
            "admin_org.departments",
        ),
        SetupItem(
            "crews",
            "Crews",
            crews > 0,
            _counted(crews, "crew") if crews else "no crew yet",
            "admin_org.crews",
        ),
        SetupItem(
            "categories",
            "Categories",
            categories > 0,
            _counted(categories, "active category", "active categories")
            if categories
            else "no category yet: residents have nothing to report",
            "admin_catalog.categories",
        ),
        SetupItem(
            "rules",
            "Routing rules",
            rules > 0,
            _counted(rules, "active rule") + " published"
            if rules
            else "no published rule set with an active rule: requests go to central dispatch",
            "admin.rules",
        ),
        SetupItem(
            "dispatcher",
            "A dispatcher",
            dispatchers > 0,
            _counted(dispatchers, "active dispatcher or admin", "active dispatchers or admins")
            if dispatchers
            else "no active dispatcher yet: nobody watches new requests",
            "admin.users",
        ),
        SetupItem(
            "intake",
            "An intake e-mail address",
            addresses > 0,
            _counted(addresses, "active address", "active addresses")
            if addresses
            else "no intake address yet: reports by e-mail, and residents' replies, go nowhere",
            "admin_mail.addresses",
        ),
        SetupItem(
            "templates",
            "Response templates",
            templates > 0,
            _counted(templates, "template") if templates else "no response template yet",
            "admin.templates",
        ),
        SetupItem(
            "calendar",
            "A business calendar",
            bool(calendar),
            "set: SLAs in business hours follow it"
            if calendar
            else "none: SLAs count calendar hours",
            "admin_catalog.calendar",
            optional=True,
        ),
    ]


def is_complete(items: list[SetupItem]) -> bool:
    """Whether every item that is not optional is done."""
    return all(item.done for item in items if not item.optional)


def add_default_templates(session: Session, city: Jurisdiction) -> list[ResponseTemplate]:
    """Add the standard response templates ``city`` does not have by name yet.

    Returns the templates added; raises :class:`InvalidInput` when the city already has
    every one (nothing to add).
    """
    existing = set(
        session.scalars(
            sa.select(ResponseTemplate.name).where(ResponseTemplate.jurisdiction_id == city.id)
        )
    )
    added = [
        ResponseTemplate(jurisdiction_id=city.id, name=name, body=body)
        for name, body in DEFAULT_TEMPLATES
        if name not in existing
    ]
    if not added:
        raise InvalidInput("the city already has every default template", field="templates")
    session.add_all(added)
    session.flush()
    return added
