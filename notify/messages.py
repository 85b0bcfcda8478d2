"""The kinds of message civicpin sends, written to the outbox in the caller's transaction.

Call these from the code that makes the change, inside its transaction, so a message
exists only if the change commits:

- :func:`acknowledge` - a new report (web, API, phone, e-mail);
- :func:`on_new_request` - the dispatcher alert, for every new request from any channel;
- :func:`on_status_change` - reporter (if opted in) and followers; a change to
  ``resolved`` sends the resolution message with its survey link instead;
- :func:`on_resolved` - the resolution message alone (same as a change to resolved);
- :func:`on_crew_assigned` - the crew's members, of each new assignment;
- :func:`on_crew_rerouted` - the crew's members, one summary of a bulk re-route;
- :func:`on_template_reply` - a dispatcher's reply to the reporter;
- :func:`on_reply` - a dispatcher's reply to the reporter and the followers;
- :func:`on_reporter_message` - the reporter wrote or reopened: the department or dispatch;
- :func:`follow_confirmation` - the link a new follower opens before they get anything.

Every message carries only its recipient's own links. The reporter's private tracking
link (``?token=``, whose page shows their contact details and answers) goes only into
mail to the reporter's own address (``_common(private=True)``); everyone else gets the
public page, staff the staff page too. Every message carries its recipient's own
unsubscribe link and ``List-Unsubscribe``: from the request, for mail about a request
to a resident; from that kind of message, for staff alerts and mail about no request.
An address that unsubscribed (from everything, the request or the kind) gets nothing.
The same change notified twice in one transaction is sent once.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.orm import Session

from notify import templates
from notify.links import (
    follow_confirm_url,
    is_unsubscribed,
    mail_config,
    transaction_memo,
    unsubscribe_url,
)
from notify.outbox import enqueue, mail_domain, thread_root_id
from spatial.accounts import EMAIL_RE
from spatial.cities import city_base_url, city_path
from spatial.city_time import city_time
from spatial.db import driver_execute, driver_sql
from spatial.models import (
    Crew,
    Follower,
    InboundEmail,
    Jurisdiction,
    OutboxMessage,
    ServiceRequest,
    Status,
    shown_description,
)

STATUS_LABELS = {
    Status.NEW.value: "New",
    Status.ACKNOWLEDGED.value: "Acknowledged",
    Status.IN_PROGRESS.value: "In progress",
    Status.REFERRED.value: "Referred to another agency",
    Status.RESOLVED.value: "Resolved",
    Status.CANT_FIX.value: "Closed: cannot be fixed",
    Status.DUPLICATE.value: "Closed: duplicate of another report",
    Status.CANCELLED.value: "Cancelled",
    Status.CLOSED.value: "Closed",
}
# Channels whose requests are history, not news: no dispatcher alert.
QUIET_CHANNELS = frozenset({"import"})


def status_label(status: str | None) -> str:
    return STATUS_LABELS.get(status or "", (status or "").replace("_", " ").capitalize())


def tracking_url(public_base_url: str, request: ServiceRequest) -> str:
    """The reporter's private link: for mail to the reporter's own address only."""
    return f"{public_base_url}/requests/{request.public_id}?token={request.token}"


def public_url(public_base_url: str, request: ServiceRequest) -> str:
    """The request's public page, which shows nothing of the reporter."""
    return f"{public_base_url}/requests/{request.public_id}"


def locate_url(public_base_url: str, request: ServiceRequest) -> str:
    """Where the sender of a request without a location can drop the pin."""
    return tracking_url(public_base_url, request) + "&locate=1"


def staff_url(public_base_url: str, request: ServiceRequest) -> str:
    return f"{public_base_url}/dispatch/requests/{request.public_id}"


def city_links_base(session: Session, city_id: int, public_base_url: str) -> str:
    """Where the links in a message about ``city_id`` point: the city's own address
    (``spatial.cities.city_base_url``: its host name, or ``/c/<slug>`` under the install's
    address), so that adding another city, or changing the install's default one, never
    changes the links a city has mailed. Given that address already, returns it as is."""
    city = session.get(Jurisdiction, city_id)
    if city is None:
        return public_base_url
    if not city.host and public_base_url.rstrip("/").endswith(city_path(city.slug)):
        return public_base_url
    return city_base_url(public_base_url, city)


def _once(session: Session, key: tuple) -> bool:
    """False if the same notification was already written in this transaction."""
    seen = session.info.setdefault("civicpin_notified", set())
    if key in seen:
        return False
    seen.add(key)
    return True


def _valid_email(addr: str | None) -> str | None:
    addr = (addr or "").strip()
    return addr if addr and len(addr) <= 254 and EMAIL_RE.match(addr) else None


def _city(session: Session, request: ServiceRequest) -> Jurisdiction:
    return session.get(Jurisdiction, request.jurisdiction_id)


def _where(request: ServiceRequest) -> str:
    if request.address:
        return f"Where: {request.address}\n"
    if request.needs_location:
        return "Where: not known yet (needs a location)\n"
    return ""


def _common(
    session: Session,
    request: ServiceRequest,
    public_base_url: str,
    *,
    private: bool = False,
    staff: bool = False,
) -> dict:
    """The values every template about ``request`` may use.

    ``tracking_url`` is the public page unless ``private``: only a message to the
    reporter's own address may pass ``private=True`` and carry their private link.
    ``description`` is what the public page shows, except to the reporter and to
    ``staff``, who read the reporter's own words.
    """
    city = _city(session, request)
    return {
        "city_name": city.name,
        "public_id": request.public_id,
        "category": request.service.name if request.service else "",
        "status": status_label(request.status),
        "tracking_url": (
            tracking_url(public_base_url, request)
            if private
            else public_url(public_base_url, request)
        ),
        "triage_url": f"{public_base_url}/help/triage",
        "address": request.address or "",
        # The reporter sees their own text; anyone else what the public page shows.
        "description": (
            (request.description if private or staff else shown_description(request))
            or "(no description)"
        ),
        "where": _where(request),
        "routing": (
            f"Routed to: {request.routing_explanation}\n" if request.routing_explanation else ""
        ),
    }


# A help-desk address (an internal category's) answers staff only: never the Reply-To.
_REPLY_TO_SQL = sa.text(
    "SELECT address FROM mail_address WHERE jurisdiction_id = :city_id AND active "
    "AND NOT EXISTS (SELECT 1 FROM service s WHERE s.id = service_id AND s.internal) "
    "ORDER BY id LIMIT 1"
)


def reply_to_address(session: Session, city_id: int) -> str | None:
    """The city's first intake address, so that residents' replies come back as notes.

    Read once per transaction (a new request writes two messages)."""
    memo = transaction_memo(session)
    key = ("reply_to", city_id)
    if memo is not None and key in memo:
        return memo[key]
    address = session.execute(_REPLY_TO_SQL, {"city_id": city_id}).scalar()
    memo = transaction_memo(session)
    if memo is not None:
        memo[key] = address
    return address


def _original_message_id(session: Session, request: ServiceRequest) -> str | None:
    """The Message-ID of the e-mail that created ``request``, to thread under it."""
    if request.channel != "email" or request.id is None:
        return None  # only the e-mail intake creates requests from an e-mail
    return session.scalar(
        sa.select(InboundEmail.message_id)
        .where(InboundEmail.request_id == request.id, InboundEmail.outcome == "created")
        .order_by(InboundEmail.id)
        .limit(1)
    )


def _send(
    session: Session,
    request: ServiceRequest | None,
    *,
    city_id: int,
    kind: str,
    template: str,
    to_addr: str,
    values: dict,
    public_base_url: str,
    unsubscribe_scope: int | None,
    headers: dict[str, str] | None = None,
    auto: str = "auto-generated",
    outbox: list[dict] | None = None,
) -> OutboxMessage | None:
    """Render ``template`` for ``to_addr`` and enqueue it, unless they unsubscribed
    (``outbox``: see :func:`notify.outbox.enqueue`'s ``defer_to``).

    The unsubscribe link is the recipient's own: from request ``unsubscribe_scope``, or
    (None) from messages of this ``kind``.
    """
    to_addr = _valid_email(to_addr)
    if to_addr is None:
        return None
    unsub = unsubscribe_url(
        session,
        public_base_url,
        city_id,
        to_addr,
        unsubscribe_scope,
        kind if unsubscribe_scope is None else None,
    )
    rendered = templates.render(session, city_id, template, {**values, "unsubscribe_url": unsub})
    hdrs: dict[str, str] = {
        "List-Unsubscribe": f"<{unsub}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        # RFC 3834: tells other robots (autoresponders, our own intake) not to answer.
        "Auto-Submitted": auto,
        "X-Auto-Response-Suppress": "All",
        "X-Civicpin-Kind": kind,
    }
    cfg = mail_config(session, city_id)
    if cfg.from_address:
        hdrs["From"] = cfg.from_address
    if (reply_to := reply_to_address(session, city_id)) is not None:
        hdrs["Reply-To"] = reply_to
    if request is not None and kind != "acknowledgement":
        # Thread under the resident's own first e-mail as well as our thread root; that
        # e-mail's Message-ID is the reporter's (it may name their machine or address).
        root = thread_root_id(request, mail_domain(public_base_url))
        own = _original_message_id(session, request) if _is_reporter(request, to_addr) else None
        refs = [r for r in (own, root) if r]
        hdrs["In-Reply-To"] = root
        hdrs["References"] = " ".join(refs)
    hdrs.update(headers or {})
    return enqueue(
        session,
        kind=kind,
        to_addr=to_addr,
        subject=rendered.subject,
        body_text=rendered.body,
        public_base_url=public_base_url,
        request=request,
        jurisdiction_id=city_id,
        headers=hdrs,
        unless_unsubscribed=(to_addr, unsubscribe_scope),
        defer_to=outbox,
    )


def _send_each(
    session: Session,
    request: ServiceRequest | None,
    to_addrs,
    *,
    city_id: int,
    kind: str,
    template: str,
    values: dict,
    public_base_url: str,
    headers: dict[str, str] | None = None,
    outbox: list[dict] | None = None,
) -> list[OutboxMessage]:
    """The same staff message to each distinct address of ``to_addrs`` (case ignored);
    each may unsubscribe from this ``kind``. Returns the messages queued."""
    sent = []
    for addr in dict.fromkeys(a.strip().lower() for a in to_addrs if a):
        msg = _send(
            session,
            request,
            city_id=city_id,
            kind=kind,
            template=template,
            to_addr=addr,
            values=values,
            public_base_url=public_base_url,
            unsubscribe_scope=None,
            headers=headers,
            outbox=outbox,
        )
        if msg is not None:
            sent.append(msg)
    return sent


def acknowledge(
    session: Session,
    request: ServiceRequest,
    public_base_url: str,
    *,
    to_addr: str | None = None,
    in_reply_to: str | None = None,
    references: str | None = None,
    notes: list[str] | None = None,
    outbox: list[dict] | None = None,
) -> OutboxMessage | None:
    """The acknowledgement of a new report (its Message-ID is the request's thread root).

    For a request without a location it carries the link where the pin can be dropped.
    ``in_reply_to``/``references`` thread it under the e-mail that created the request.
    ``outbox``: for a request not written yet, the list its message goes to (see
    :func:`notify.outbox.enqueue`'s ``defer_to``).
    """
    public_base_url = city_links_base(session, request.jurisdiction_id, public_base_url)
    to_addr = to_addr or request.contact_email
    if not to_addr or not _once(session, ("ack", request.public_id)):
        return None
    # the acknowledgement goes to whoever made the report: it is theirs
    values = _common(session, request, public_base_url, private=True)
    if request.requester_id is not None:
        # A staff member's own request: followed on the intranet, not a public page.
        values["tracking_url"] = f"{public_base_url}/intranet/requests"
    if request.needs_location:
        values["location_help"] = (
            "\nWe could not tell where the problem is. Please show us on the map "
            f"(it takes a few seconds): {locate_url(public_base_url, request)}\n"
        )
    if notes:
        values["notes"] = "\n" + "\n".join(f"Note: {n}" for n in notes) + "\n"
    headers = {}
    if in_reply_to:
        headers["In-Reply-To"] = in_reply_to
        headers["References"] = " ".join(r for r in (references, in_reply_to) if r)
    return _send(
        session,
        request,
        city_id=request.jurisdiction_id,
        kind="acknowledgement",
        template="acknowledgement",
        to_addr=to_addr,
        values=values,
        public_base_url=public_base_url,
        unsubscribe_scope=request.id,
        headers=headers,
        auto="auto-replied" if in_reply_to else "auto-generated",
        outbox=outbox,
    )


def note_received(
    session: Session,
    request: ServiceRequest,
    public_base_url: str,
    *,
    to_addr: str,
    in_reply_to: str,
    references: str | None = None,
    notes: list[str] | None = None,
) -> OutboxMessage | None:
    """Tell the sender of a reply that it was added to their request (the private link
    only if the sender is the reporter)."""
    public_base_url = city_links_base(session, request.jurisdiction_id, public_base_url)
    values = _common(session, request, public_base_url, private=_is_reporter(request, to_addr))
    if notes:
        values["notes"] = "\n" + "\n".join(f"Note: {n}" for n in notes) + "\n"
    return _send(
        session,
        request,
        city_id=request.jurisdiction_id,
        kind="note_received",
        template="note_received",
        to_addr=to_addr,
        values=values,
        public_base_url=public_base_url,
        unsubscribe_scope=request.id,
        headers={
            "In-Reply-To": in_reply_to,
            "References": " ".join(r for r in (references, in_reply_to) if r),
        },
        auto="auto-replied",
    )


def on_new_request(
    session: Session,
    request: ServiceRequest,
    public_base_url: str,
    *,
    outbox: list[dict] | None = None,
) -> OutboxMessage | None:
    """Alert the city's dispatch address (``civicpin mail config --dispatch-email``).

    ``outbox``: as for :func:`acknowledge`."""
    public_base_url = city_links_base(session, request.jurisdiction_id, public_base_url)
    if request.channel in QUIET_CHANNELS or not _once(session, ("new", request.public_id)):
        return None
    cfg = mail_config(session, request.jurisdiction_id)
    if not cfg.dispatch_email:
        return None
    values = _common(session, request, public_base_url, staff=True)
    values.update(
        channel=request.channel,
        staff_url=staff_url(public_base_url, request),
        needs_location_tag=" (needs location)" if request.needs_location else "",
    )
    return _send(
        session,
        request,
        city_id=request.jurisdiction_id,
        kind="dispatcher_alert",
        template="dispatcher_alert",
        to_addr=cfg.dispatch_email,
        values=values,
        public_base_url=public_base_url,
        unsubscribe_scope=None,
        headers={"X-Civicpin-Request": request.public_id},
        outbox=outbox,
    )


def on_escalated(
    session: Session,
    request: ServiceRequest,
    public_base_url: str,
    *,
    level: int,
    reason: str,
    to_addrs: list[str],
    values: dict[str, str],
) -> list[OutboxMessage]:
    """Tell staff (``to_addrs``: supervisors, the department, its director) that
    ``request`` reached escalation ``level``; staff links only. ``values``: the
    department's name and the request's times on the city's clock."""
    public_base_url = city_links_base(session, request.jurisdiction_id, public_base_url)
    if not _once(session, ("escalated", request.id, level)):
        return []
    common = _common(session, request, public_base_url, staff=True)
    common.update(values, level=str(level), reason=reason)
    common["staff_url"] = staff_url(public_base_url, request)
    return _send_each(
        session,
        request,
        to_addrs,
        city_id=request.jurisdiction_id,
        kind="escalation",
        template="escalation",
        values=common,
        public_base_url=public_base_url,
        headers={"X-Civicpin-Request": request.public_id},
    )


def escalation_summary(
    session: Session,
    city_id: int,
    public_base_url: str,
    *,
    to_addr: str,
    level: int,
    count: int,
    items: str,
) -> list[OutboxMessage]:
    """One list of the ``count`` requests a sweep escalated to ``level`` for one person,
    in place of a mail each (``items``: one line per request, staff links only)."""
    public_base_url = city_links_base(session, city_id, public_base_url)
    city = session.get(Jurisdiction, city_id)
    values = {
        "city_name": city.name,
        "level": str(level),
        "count": f"{count:,}",
        "items": items,
        "console_url": f"{public_base_url}/dispatch?escalated=1&sort=escalation",
    }
    return _send_each(
        session,
        None,
        [to_addr],
        city_id=city_id,
        kind="escalation",
        template="escalation_summary",
        values=values,
        public_base_url=public_base_url,
    )


def department_digest(
    session: Session,
    city_id: int,
    public_base_url: str,
    *,
    to_addrs: list[str],
    values: dict[str, str],
) -> list[OutboxMessage]:
    """A department's morning digest (``values``: department, day, count, items) to its
    supervisors and address; the items carry staff links only."""
    public_base_url = city_links_base(session, city_id, public_base_url)
    city = session.get(Jurisdiction, city_id)
    base = {
        **values,
        "city_name": city.name,
        "console_url": f"{public_base_url}/dispatch?escalated=1&sort=escalation",
    }
    return _send_each(
        session,
        None,
        to_addrs,
        city_id=city_id,
        kind="department_digest",
        template="department_digest",
        values=base,
        public_base_url=public_base_url,
    )


def _is_reporter(request: ServiceRequest, addr: str | None) -> bool:
    """True if ``addr`` is the reporter's own address (the one that may get the token)."""
    own = (request.contact_email or "").strip().lower()
    return bool(own) and (addr or "").strip().lower() == own


def _residents(session: Session, request: ServiceRequest) -> list[tuple[str, str]]:
    """(address, role) of the reporter (if opted in) and of the confirmed, active followers.

    An address that is both gets one message, as the reporter."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    if request.contact_email and request.notify_updates and not request.anonymous:
        out.append((request.contact_email, "reporter"))
        seen.add(request.contact_email.lower())
    followers = session.scalars(
        sa.select(Follower.email)
        .where(
            Follower.request_id == request.id,
            Follower.email.is_not(None),
            Follower.confirmed_at.is_not(None),
            Follower.unsubscribed_at.is_(None),
        )
        .order_by(Follower.id)
    ).all()
    for email in followers:
        if email.lower() not in seen:
            seen.add(email.lower())
            out.append((email, "follower"))
    return out


def on_status_change(
    session: Session,
    request: ServiceRequest,
    old: str | None,
    new: str,
    public_base_url: str,
    *,
    note: str | None = None,
) -> list[OutboxMessage]:
    """Tell the reporter (opted in) and followers; ``new == 'resolved'`` -> resolution."""
    public_base_url = city_links_base(session, request.jurisdiction_id, public_base_url)
    if old == new:
        return []
    if new == Status.RESOLVED.value:
        return on_resolved(session, request, public_base_url, note=note)
    if not _once(session, ("status", request.id, new)):
        return []
    change = {
        "status": status_label(new),
        "old_status": status_label(old),
        "note": f"\n{note.strip()}\n" if note and note.strip() else "",
    }
    sent = []
    for addr, role in _residents(session, request):
        values = _common(session, request, public_base_url, private=role == "reporter")
        msg = _send(
            session,
            request,
            city_id=request.jurisdiction_id,
            kind="status_change",
            template="status_change",
            to_addr=addr,
            values={**values, **change},
            public_base_url=public_base_url,
            unsubscribe_scope=request.id,
        )
        if msg is not None:
            sent.append(msg)
    return sent


def on_resolved(
    session: Session, request: ServiceRequest, public_base_url: str, *, note: str | None = None
) -> list[OutboxMessage]:
    """The resolution message: the reporter's carries a one-time survey link."""
    public_base_url = city_links_base(session, request.jurisdiction_id, public_base_url)
    from notify.survey import create_link

    if not _once(session, ("status", request.id, Status.RESOLVED.value)):
        return []
    change = {
        "status": status_label(Status.RESOLVED.value),
        "note": f"\n{note.strip()}\n" if note and note.strip() else "",
    }
    sent = []
    for addr, role in _residents(session, request):
        if is_unsubscribed(session, addr, request.id, "resolution", request.jurisdiction_id):
            continue  # no survey token for mail that will not be sent
        values = {
            **_common(session, request, public_base_url, private=role == "reporter"),
            **change,
        }
        template = "resolution_follower"
        extra = {}
        if role == "reporter":
            link, token = create_link(session, request, public_base_url, addr)
            template = "resolution"
            extra = {"survey_url": link, "survey_expires": f"{token.expires_at:%d %B %Y}"}
            extra.update(_reopen_values(session, request, public_base_url))
        msg = _send(
            session,
            request,
            city_id=request.jurisdiction_id,
            kind="resolution",
            template=template,
            to_addr=addr,
            values={**values, **extra},
            public_base_url=public_base_url,
            unsubscribe_scope=request.id,
        )
        if msg is not None:
            sent.append(msg)
    return sent


def _reopen_values(session: Session, request: ServiceRequest, public_base_url: str) -> dict:
    """The resolution's line for the reporter: their private link to the reopen form."""
    days = _city(session, request).reopen_days
    if not days:
        return {"reopen_url": "", "reopen_line": ""}
    url = tracking_url(public_base_url, request) + "#reopen"
    return {
        "reopen_url": url,
        "reopen_line": f"\nNot fixed? Tell us within {days} days and we reopen it: {url}\n",
    }


def on_reporter_message(
    session: Session,
    request: ServiceRequest,
    text: str,
    public_base_url: str,
    *,
    reopened: bool = False,
) -> OutboxMessage | None:
    """Tell the department (its address; without one, the city's dispatch address) that
    the reporter wrote, or reopened the request (``reopened``), with the staff link."""
    public_base_url = city_links_base(session, request.jurisdiction_id, public_base_url)
    dept = request.department
    to_addr = (dept.email if dept is not None else None) or mail_config(
        session, request.jurisdiction_id
    ).dispatch_email
    if not to_addr or not _once(session, ("reporter_message", request.id, reopened, text)):
        return None
    values = _common(session, request, public_base_url, staff=True)
    values.update(
        what="Reopened by the reporter" if reopened else "A message from the reporter",
        message=text,
        staff_url=staff_url(public_base_url, request),
    )
    return _send(
        session,
        request,
        city_id=request.jurisdiction_id,
        kind="reporter_message",
        template="reporter_message",
        to_addr=to_addr,
        values=values,
        public_base_url=public_base_url,
        unsubscribe_scope=None,
        headers={"X-Civicpin-Request": request.public_id},
    )


def crew_url(public_base_url: str, request: ServiceRequest) -> str:
    """The crew's own page of ``request`` (a crew member may not open the dispatch page)."""
    return f"{public_base_url}/crew/requests/{request.public_id}"


# The crew's name and its active members' addresses, in one prepared statement: a new
# request routed to a crew reads them (membership and accounts are not stamped
# settings, so they cannot be kept in process memory; see spatial.models.STAMPED_TABLES).
_CREW_MEMBERS_SQL = driver_sql(
    sa.text(
        "SELECT c.name, ARRAY(SELECT u.email FROM staff_crew sc "
        "JOIN app_user u ON u.id = sc.user_id "
        "WHERE sc.crew_id = c.id AND u.active ORDER BY u.id) AS emails "
        "FROM crew c WHERE c.id = :crew_id"
    )
)


def crew_members(session: Session, crew_id: int) -> tuple[str, list[str]] | None:
    """(the crew's name, its active members' addresses), None without such a crew."""
    row = driver_execute(session, _CREW_MEMBERS_SQL, {"crew_id": crew_id}).fetchone()
    return None if row is None else (row.name, list(row.emails or ()))


def _assignment_values(
    session: Session, request: ServiceRequest, crew_name: str, public_base_url: str
) -> dict:
    city = _city(session, request)
    link = crew_url(public_base_url, request)
    values = _common(session, request, public_base_url, staff=True)
    values.update(
        crew=crew_name,
        priority=request.priority or "normal",
        due=city_time(request.due_at, city) if request.due_at else "no due time",
        crew_url=link,
        # Older city templates name the link $staff_url: it is the crew's page too.
        staff_url=link,
    )
    return values


def on_crew_assigned(
    session: Session,
    request: ServiceRequest,
    crew: Crew | None,
    public_base_url: str,
    *,
    outbox: list[dict] | None = None,
) -> list[OutboxMessage]:
    """Tell the active members of the crew (``staff_crew``; None: the request's crew) of
    their new work: what, where, priority and due, with the link to the crew's own page
    of the request. ``outbox``: for a request not written yet (see :func:`acknowledge`)."""
    public_base_url = city_links_base(session, request.jurisdiction_id, public_base_url)
    crew_id = crew.id if crew is not None else request.crew_id
    if crew_id is None or not _once(session, ("crew", request.public_id, crew_id)):
        return []
    found = crew_members(session, crew_id)
    if found is None or not found[1]:
        return []
    name, members = found
    values = _assignment_values(session, request, name, public_base_url)
    return _send_each(
        session,
        request,
        members,
        city_id=request.jurisdiction_id,
        kind="crew_assignment",
        template="crew_assignment",
        values=values,
        public_base_url=public_base_url,
        headers={"X-Civicpin-Request": request.public_id},
        outbox=outbox,
    )


def on_crew_rerouted(
    session: Session, city_id: int, crew_id: int, count: int, public_base_url: str
) -> list[OutboxMessage]:
    """One summary per crew after a bulk re-route moved ``count`` requests to it, with
    the link to the crew's page (same kind as an assignment: one unsubscribe for both)."""
    public_base_url = city_links_base(session, city_id, public_base_url)
    found = crew_members(session, crew_id) if count > 0 else None
    if found is None or not found[1]:
        return []
    name, members = found
    city = session.get(Jurisdiction, city_id)
    values = {
        "city_name": city.name,
        "crew": name,
        "count": f"{count:,}",
        "requests": "request" if count == 1 else "requests",
        "crew_page_url": f"{public_base_url}/crew?crew={crew_id}",
    }
    return _send_each(
        session,
        None,
        members,
        city_id=city_id,
        kind="crew_assignment",
        template="crew_reroute_summary",
        values=values,
        public_base_url=public_base_url,
    )


def on_template_reply(
    session: Session, request: ServiceRequest, body: str, public_base_url: str
) -> OutboxMessage | None:
    """Send a dispatcher's standard response (already filled in) to the reporter."""
    public_base_url = city_links_base(session, request.jurisdiction_id, public_base_url)
    body = (body or "").strip()
    if not body or not request.contact_email or request.anonymous:
        return None
    if not _once(session, ("reply", request.id, body)):
        return None
    values = _common(session, request, public_base_url, private=True)
    values["reply"] = body
    return _send(
        session,
        request,
        city_id=request.jurisdiction_id,
        kind="template_reply",
        template="template_reply",
        to_addr=request.contact_email,
        values=values,
        public_base_url=public_base_url,
        unsubscribe_scope=request.id,
    )


def on_reply(
    session: Session, request: ServiceRequest, body: str, public_base_url: str
) -> list[OutboxMessage]:
    """Send a dispatcher's reply (a standard response or their own words): the reporter
    gets it with their private link (:func:`on_template_reply`), each confirmed follower
    with the public page only."""
    public_base_url = city_links_base(session, request.jurisdiction_id, public_base_url)
    body = (body or "").strip()
    first = on_template_reply(session, request, body, public_base_url)
    sent = [first] if first is not None else []
    if not body or not _once(session, ("reply_followers", request.id, body)):
        return sent
    for addr, role in _residents(session, request):
        if role != "follower" or _is_reporter(request, addr):
            continue
        values = _common(session, request, public_base_url)
        values["reply"] = body
        msg = _send(
            session,
            request,
            city_id=request.jurisdiction_id,
            kind="template_reply",
            template="template_reply",
            to_addr=addr,
            values=values,
            public_base_url=public_base_url,
            unsubscribe_scope=request.id,
        )
        if msg is not None:
            sent.append(msg)
    return sent


def intake_refused(
    session: Session,
    city_id: int,
    public_base_url: str,
    *,
    to_addr: str,
    original_subject: str,
    intake_address: str,
    reason: str,
    in_reply_to: str | None,
) -> OutboxMessage | None:
    """Explain to a sender why their e-mail did not become a report (IMAP path)."""
    return _answer_sender(
        session,
        city_id,
        public_base_url,
        "intake_refused",
        to_addr=to_addr,
        in_reply_to=in_reply_to,
        values={
            "original_subject": original_subject or "(no subject)",
            "intake_address": intake_address,
            "reason": reason,
        },
    )


def _answer_sender(
    session: Session,
    city_id: int,
    public_base_url: str,
    kind: str,
    *,
    to_addr: str,
    in_reply_to: str | None,
    values: dict,
) -> OutboxMessage | None:
    """An auto-reply to an e-mail that is about no request: threaded under that e-mail,
    with the city's name and its report page besides ``values``."""
    public_base_url = city_links_base(session, city_id, public_base_url)
    city = session.get(Jurisdiction, city_id)
    headers = {}
    if in_reply_to:
        headers = {"In-Reply-To": in_reply_to, "References": in_reply_to}
    return _send(
        session,
        None,
        city_id=city_id,
        kind=kind,
        template=kind,
        to_addr=to_addr,
        values={
            "city_name": city.name if city else "",
            "report_url": f"{public_base_url}/",
            **values,
        },
        public_base_url=public_base_url,
        unsubscribe_scope=None,
        headers=headers,
        auto="auto-replied",
    )


def follow_confirmation(
    session: Session,
    request: ServiceRequest,
    public_base_url: str,
    *,
    to_addr: str,
) -> OutboxMessage | None:
    """The link a new follower opens to start getting updates (nothing else before).

    It carries the public page and the address's own confirmation link, never the
    reporter's private link. Its unsubscribe link stops mail about the request, so that
    a stranger who keeps typing the address in cannot keep mailing it.
    """
    public_base_url = city_links_base(session, request.jurisdiction_id, public_base_url)
    values = _common(session, request, public_base_url)
    values["confirm_url"] = follow_confirm_url(
        session, public_base_url, request.jurisdiction_id, to_addr, request.id, request.public_id
    )
    return _send(
        session,
        request,
        city_id=request.jurisdiction_id,
        kind="follow_confirmation",
        template="follow_confirmation",
        to_addr=to_addr,
        values=values,
        public_base_url=public_base_url,
        unsubscribe_scope=request.id,
    )


def reply_unverified(
    session: Session,
    city_id: int,
    public_base_url: str,
    *,
    to_addr: str,
    original_subject: str,
    in_reply_to: str | None,
) -> OutboxMessage | None:
    """Answer an e-mail that names a report but could not be added to it (the sender is
    not verified, or no such report): "passed to staff", and nothing about the report.

    The text is the same whether the report exists or not, so that it tells a stranger
    nothing; it is about no request, so it carries no request's link or thread.
    """
    subject = _REPLY_PREFIX.sub("", original_subject or "") or "(no subject)"
    return _answer_sender(
        session,
        city_id,
        public_base_url,
        "reply_unverified",
        to_addr=to_addr,
        in_reply_to=in_reply_to,
        values={"original_subject": subject},
    )


_REPLY_PREFIX = re.compile(r"^\s*(?:(?:re|aw|sv|antw|r)\s*:\s*)+", re.I)
