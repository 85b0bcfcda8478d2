"""Message templates: defaults in code, per-city overrides in ``message_template``.

Templates use ``$name`` / ``${name}`` placeholders (:class:`string.Template`): simple enough
for a clerk to edit, and unlike ``str.format`` or Jinja they cannot reach into Python
objects. Saving an override checks every placeholder against the kind's known names, so a
typo is refused at once instead of showing up in a resident's inbox.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from notify.links import transaction_memo
from spatial.errors import InvalidInput
from spatial.models import Jurisdiction, now_utc
from spatial.models_mail import MessageTemplate

MAX_SUBJECT = 200
MAX_BODY = 10_000

COMMON = (
    "city_name",
    "public_id",
    "category",
    "status",
    "tracking_url",
    "triage_url",
    "unsubscribe_url",
    "address",
    "description",
)


@dataclass(frozen=True)
class TemplateDefault:
    kind: str
    title: str
    subject: str
    body: str
    variables: tuple[str, ...]


_FOOTER = "\n--\n$city_name 311\nStop these e-mails: $unsubscribe_url\n"

DEFAULTS: dict[str, TemplateDefault] = {
    t.kind: t
    for t in (
        TemplateDefault(
            "acknowledgement",
            "Acknowledgement of a new report",
            "[$public_id] We received your report: $category",
            "Thank you. Your report to $city_name has been received.\n\n"
            "Reference: $public_id\nCategory: $category\n$where$routing\n"
            "Follow it here (keep this link private): $tracking_url\n"
            "How we triage reports: $triage_url\n$location_help$notes" + _FOOTER,
            (*COMMON, "where", "routing", "location_help", "notes"),
        ),
        TemplateDefault(
            "note_received",
            "Reply to a resident's e-mail about an existing report",
            "Re: [$public_id] $category",
            "Thank you. We added your message to report $public_id.\n\n"
            "Current status: $status\nFollow it here: $tracking_url\n$notes" + _FOOTER,
            (*COMMON, "notes"),
        ),
        TemplateDefault(
            "status_change",
            "Status change (reporter who opted in, and followers)",
            "[$public_id] $category: $status",
            "The status of report $public_id ($category) changed from $old_status "
            "to $status.\n$note\nFollow it here: $tracking_url\n" + _FOOTER,
            (*COMMON, "old_status", "note"),
        ),
        TemplateDefault(
            "resolution",
            "Resolution, with the satisfaction survey link",
            "[$public_id] Resolved: $category",
            "Report $public_id ($category) has been resolved.\n$note\n"
            "How did we do? Tell us in one minute (the link works once and expires on "
            "$survey_expires): $survey_url\n$reopen_line\nFollow it here: $tracking_url\n"
            + _FOOTER,
            (*COMMON, "note", "survey_url", "survey_expires", "reopen_line", "reopen_url"),
        ),
        TemplateDefault(
            "resolution_follower",
            "Resolution, for followers",
            "[$public_id] Resolved: $category",
            "Report $public_id ($category), which you follow, has been resolved.\n$note\n"
            "Details: $tracking_url\n" + _FOOTER,
            (*COMMON, "note"),
        ),
        TemplateDefault(
            "dispatcher_alert",
            "Dispatcher alert for every new request",
            "New $channel request $public_id: $category$needs_location_tag",
            "A new request arrived by $channel.\n\nReference: $public_id\n"
            "Category: $category\n$where$routing\nDescription:\n$description\n\n"
            "Open it: $staff_url\n" + _FOOTER,
            (*COMMON, "channel", "where", "routing", "staff_url", "needs_location_tag"),
        ),
        TemplateDefault(
            "escalation",
            "Escalation to a department's supervisors (level 1) and director (level 2)",
            "[$public_id] Escalated (level $level): $category",
            "Request $public_id ($category) is escalated to level $level: $reason.\n\n"
            "Department: $department\nStatus: $status\nReported: $reported\nDue: $due\n"
            "$where\nDescription:\n$description\n\nOpen it: $staff_url\n" + _FOOTER,
            (*COMMON, "level", "reason", "department", "reported", "due", "where", "staff_url"),
        ),
        TemplateDefault(
            "escalation_summary",
            "Many escalations at once for one person (in place of a mail each)",
            "$count requests escalated to level $level",
            "$count open requests of $city_name were escalated to level $level just now:\n\n"
            "$items\n\nThe dispatch console: $console_url\n" + _FOOTER,
            ("city_name", "unsubscribe_url", "level", "count", "items", "console_url"),
        ),
        TemplateDefault(
            "department_digest",
            "Morning digest of a department's overdue and escalated work",
            "$department: $count overdue or escalated requests ($day)",
            "Good morning. $department has $count open requests that are overdue or "
            "escalated ($day):\n\n$items\n\nThe dispatch console: $console_url\n" + _FOOTER,
            ("city_name", "unsubscribe_url", "department", "day", "count", "items", "console_url"),
        ),
        TemplateDefault(
            "crew_assignment",
            "New work for a crew (to its members)",
            "[$public_id] New for $crew: $category ($priority)",
            "New work for $crew: request $public_id ($category).\n\n"
            "${where}Priority: $priority\nDue: $due\n\nDescription:\n$description\n\n"
            "Open it and acknowledge it: $crew_url\n" + _FOOTER,
            (*COMMON, "crew", "where", "priority", "due", "crew_url", "staff_url"),
        ),
        TemplateDefault(
            "crew_reroute_summary",
            "Requests moved to a crew by new routing rules or zones (one per crew)",
            "$count $requests moved to $crew",
            "New routing rules or zones of $city_name moved $count $requests to $crew.\n\n"
            "They show as new on the crew's page: $crew_page_url\n" + _FOOTER,
            ("city_name", "unsubscribe_url", "crew", "count", "requests", "crew_page_url"),
        ),
        TemplateDefault(
            "reporter_message",
            "A reporter's message or reopening, to the department or dispatch",
            "[$public_id] $what: $category",
            "$what on request $public_id ($category).\n$where\n"
            "In the reporter's words:\n$message\n\nOpen it: $staff_url\n" + _FOOTER,
            (*COMMON, "what", "message", "where", "staff_url"),
        ),
        TemplateDefault(
            "template_reply",
            "Standard-response reply from a dispatcher",
            "Re: [$public_id] $category",
            "$reply\n\nReference: $public_id\nFollow it here: $tracking_url\n" + _FOOTER,
            (*COMMON, "reply"),
        ),
        TemplateDefault(
            "follow_confirmation",
            "Confirmation asked of a new follower",
            "[$public_id] Confirm that you want to follow: $category",
            "Someone asked for updates on report $public_id ($category) in $city_name "
            "to be sent to this address.\n\n"
            "To get them, confirm here (the link works for 7 days): $confirm_url\n\n"
            "If it was not you, do nothing: you will get no updates.\n"
            "See the report: $tracking_url\n" + _FOOTER,
            (*COMMON, "confirm_url"),
        ),
        TemplateDefault(
            "intake_refused",
            "Reply to an e-mail that could not become a report",
            "Re: $original_subject",
            "We could not turn your e-mail to $intake_address into a report: $reason\n\n"
            "You can report the problem on the map instead: $report_url\n" + _FOOTER,
            (
                "city_name",
                "unsubscribe_url",
                "original_subject",
                "intake_address",
                "reason",
                "report_url",
            ),
        ),
        TemplateDefault(
            "reply_unverified",
            "Reply to an e-mail about a report that could not be added to it",
            "Re: $original_subject",
            "Thank you. We received your e-mail and passed it to the staff of $city_name.\n\n"
            "We add an e-mail to a report only when we can tell it comes from the person who "
            "made the report or follows it, so we cannot send you anything about it by "
            "e-mail. If you made the report, use the link in our first e-mail to you.\n\n"
            "You can see reports and make a new one here: $report_url\n" + _FOOTER,
            ("city_name", "unsubscribe_url", "original_subject", "report_url"),
        ),
    )
}


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str


def _identifiers(text: str) -> list[str]:
    return string.Template(text).get_identifiers()


def check_template(kind: str, subject: str, body: str) -> tuple[str, str]:
    """Validate an edited template; returns it cleaned or raises ``InvalidInput``."""
    default = DEFAULTS.get(kind)
    if default is None:
        raise InvalidInput(
            f"unknown message kind {kind!r} (one of {', '.join(DEFAULTS)})", field="kind"
        )
    subject = " ".join((subject or "").split())
    body = (body or "").replace("\r\n", "\n").strip() + "\n"
    if not subject:
        raise InvalidInput("The subject must not be empty", field="subject")
    if len(subject) > MAX_SUBJECT:
        raise InvalidInput(f"Keep the subject to {MAX_SUBJECT} characters", field="subject")
    if not body.strip():
        raise InvalidInput("The body must not be empty", field="body")
    if len(body) > MAX_BODY:
        raise InvalidInput(f"Keep the body to {MAX_BODY} characters", field="body")
    for field, text in (("subject", subject), ("body", body)):
        tmpl = string.Template(text)
        if not tmpl.is_valid():
            raise InvalidInput(
                f"The {field} has a stray '$': write '$$' for a dollar sign", field=field
            )
        unknown = [n for n in _identifiers(text) if n not in default.variables]
        if unknown:
            raise InvalidInput(
                f"The {field} uses ${unknown[0]}, which this message does not have "
                f"(available: {', '.join('$' + v for v in default.variables)})",
                field=field,
            )
    if (
        "unsubscribe_url" in default.variables
        and "$unsubscribe_url" not in body
        and ("${unsubscribe_url}" not in body)
    ):
        raise InvalidInput(
            "The body must keep the $unsubscribe_url link (every message carries one)",
            field="body",
        )
    if kind == "follow_confirmation" and not {"confirm_url"} & set(_identifiers(body)):
        raise InvalidInput(
            "The body must keep the $confirm_url link (the follower opens it to confirm)",
            field="body",
        )
    return subject, body


def get_override(session: Session, city_id: int, kind: str) -> MessageTemplate | None:
    return session.scalar(
        sa.select(MessageTemplate).where(
            MessageTemplate.jurisdiction_id == city_id, MessageTemplate.kind == kind
        )
    )


def current(session: Session, city_id: int | None, kind: str) -> tuple[str, str, bool]:
    """(subject, body, is_override) for ``kind`` in a city (read once per transaction)."""
    default = DEFAULTS[kind]
    if city_id is None:
        return default.subject, default.body, False
    memo = transaction_memo(session)
    overrides = memo.get(("templates", city_id)) if memo is not None else None
    if overrides is None:
        # All of the city's overrides at once: a new request renders two kinds.
        overrides = {
            row.kind: (row.subject, row.body)
            for row in session.execute(_OVERRIDES_SQL, {"city_id": city_id})
        }
        memo = transaction_memo(session)
        if memo is not None:
            memo[("templates", city_id)] = overrides
    if kind in overrides:
        return *overrides[kind], True
    return default.subject, default.body, False


_OVERRIDES_SQL = sa.text(
    "SELECT kind, subject, body FROM message_template WHERE jurisdiction_id = :city_id"
)


def _forget(session: Session, city_id: int, kind: str) -> None:
    memo = transaction_memo(session)
    if memo is not None:
        memo.pop(("templates", city_id), None)


def save_override(
    session: Session, city: Jurisdiction, kind: str, subject: str, body: str, by: str | None
) -> MessageTemplate:
    """Store a city's version of a template (validated first; nothing written if bad)."""
    subject, body = check_template(kind, subject, body)
    row = get_override(session, city.id, kind)
    if row is None:
        row = MessageTemplate(jurisdiction_id=city.id, kind=kind)
        session.add(row)
    row.subject, row.body, row.updated_at, row.updated_by = subject, body, now_utc(), by
    session.flush()
    _forget(session, city.id, kind)
    return row


def reset_override(session: Session, city: Jurisdiction, kind: str) -> bool:
    """Go back to the default text; True if there was an override."""
    if kind not in DEFAULTS:
        raise InvalidInput(f"unknown message kind {kind!r}", field="kind")
    row = get_override(session, city.id, kind)
    if row is None:
        return False
    session.delete(row)
    session.flush()
    _forget(session, city.id, kind)
    return True


def render(session: Session, city_id: int | None, kind: str, values: dict[str, object]) -> Rendered:
    """Fill in a city's template for ``kind``; unknown or missing values become ''."""
    subject, body, _ = current(session, city_id, kind)
    known = {name: "" for name in DEFAULTS[kind].variables}
    known.update({k: "" if v is None else str(v) for k, v in values.items()})
    subject = string.Template(subject).safe_substitute(known)
    # Newlines in a subject would let a value inject headers; keep it one line.
    subject = " ".join(subject.split())[:500]
    text = string.Template(body).safe_substitute(known)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return Rendered(subject, text)
