"""The transactional outbox: messages are rows written in the caller's transaction.

A message exists only if the change that caused it committed, and the worker delivers
every committed row. All messages about one request share a thread: each carries
``References``/``In-Reply-To`` to the request's thread root id, so mail clients group them.
"""

from __future__ import annotations

import json
import secrets
from functools import lru_cache
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.orm import Session

from spatial.db import attach_inserted
from spatial.models import OutboxMessage, ServiceRequest, now_utc


@lru_cache(maxsize=16)
def mail_domain(public_base_url: str) -> str:
    """The host of the public address, the domain of the Message-IDs (every message asks)."""
    return urlsplit(public_base_url).hostname or "localhost"


def thread_root_id(request: ServiceRequest, domain: str) -> str:
    """The Message-ID every message about ``request`` refers to."""
    return f"<request-{request.public_id}@{domain}>"


# One statement per message, which also leaves it out when the recipient unsubscribed
# (from everything, from this request, from this kind, or from this city's mail): no
# look-up first, no unit of work.
_ENQUEUE_SQL = sa.text(
    """
    INSERT INTO outbox_message (jurisdiction_id, request_id, kind, to_addr, subject,
                                body_text, body_html, headers, message_id, status, attempts,
                                next_attempt_at, created_at)
    SELECT CAST(:jurisdiction_id AS integer), CAST(:request_id AS bigint),
           CAST(:kind AS text), CAST(:to_addr AS text), CAST(:subject AS text),
           CAST(:body_text AS text), CAST(:body_html AS text), CAST(:headers AS jsonb),
           CAST(:message_id AS text), 'pending', 0, CAST(:now AS timestamptz),
           CAST(:now AS timestamptz)
    WHERE NOT EXISTS (
        SELECT 1 FROM mail_unsubscribe u
        WHERE lower(u.email) = CAST(:unsub_email AS text)
          AND (u.request_id IS NULL OR u.request_id = CAST(:unsub_request AS bigint))
          AND (u.kind IS NULL OR u.kind = CAST(:kind AS text))
          AND (u.jurisdiction_id IS NULL
               OR u.jurisdiction_id = CAST(:jurisdiction_id AS integer))
    )
    RETURNING id
    """
)


# A deferred message (``enqueue(defer_to=...)``): its row's columns, with their SQL types,
# and the address whose unsubscription leaves it out.
DEFERRED_COLUMNS = (
    ("jurisdiction_id", "integer"),
    ("kind", "text"),
    ("to_addr", "text"),
    ("subject", "text"),
    ("body_text", "text"),
    ("body_html", "text"),
    ("headers", "jsonb"),
    ("message_id", "text"),
    ("created_at", "timestamptz"),
    ("unsub_email", "text"),
)


def enqueue(
    session: Session,
    *,
    kind: str,
    to_addr: str,
    subject: str,
    body_text: str,
    public_base_url: str,
    request: ServiceRequest | None = None,
    jurisdiction_id: int | None = None,
    body_html: str | None = None,
    headers: dict[str, str] | None = None,
    unless_unsubscribed: tuple[str, int | None] | None = None,
    defer_to: list[dict] | None = None,
) -> OutboxMessage | None:
    """Add one outgoing message to the outbox (no commit; the caller's transaction).

    ``unless_unsubscribed`` = (address, request id or None): nothing is written (None is
    returned) if that address unsubscribed from all mail (of the city), from that
    request's, or from messages of this ``kind``.

    ``defer_to``: a list to append the message to, as a row of :data:`DEFERRED_COLUMNS`,
    instead of writing it; for a new request that is not written yet, whose statement
    then writes its messages too (``intake.submit``). Returns None.
    """
    domain = mail_domain(public_base_url)
    hdrs = dict(headers or {})
    if request is not None:
        root = thread_root_id(request, domain)
        if kind == "acknowledgement":
            message_id = root
        else:
            message_id = f"<{kind}-{secrets.token_hex(8)}-{request.public_id}@{domain}>"
            hdrs.setdefault("In-Reply-To", root)
            hdrs.setdefault("References", root)
    else:
        message_id = f"<{kind}-{secrets.token_hex(12)}@{domain}>"
    now = now_utc()
    city_id = jurisdiction_id or (request.jurisdiction_id if request is not None else None)
    unsub_email, unsub_request = unless_unsubscribed or (None, None)
    unsub_email = unsub_email.lower() if unsub_email else None
    if defer_to is not None:
        defer_to.append(
            {
                "jurisdiction_id": city_id,
                "kind": kind,
                "to_addr": to_addr,
                "subject": subject,
                "body_text": body_text,
                "body_html": body_html,
                "headers": hdrs,
                "message_id": message_id,
                "created_at": now.isoformat(),
                "unsub_email": unsub_email,
            }
        )
        return None
    msg = OutboxMessage(
        jurisdiction_id=city_id,
        request_id=request.id if request is not None else None,
        kind=kind,
        to_addr=to_addr,
        subject=subject,
        body_text=body_text,
        body_html=body_html,
        headers=hdrs,
        message_id=message_id,
        status="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    new_id = session.execute(
        _ENQUEUE_SQL,
        {
            "jurisdiction_id": msg.jurisdiction_id,
            "request_id": msg.request_id,
            "kind": kind,
            "to_addr": to_addr,
            "subject": subject,
            "body_text": body_text,
            "body_html": body_html,
            "headers": json.dumps(hdrs),
            "message_id": message_id,
            "now": now,
            "unsub_email": unsub_email,
            "unsub_request": unsub_request,
        },
    ).scalar()
    if new_id is None:
        return None
    attach_inserted(session, msg, new_id)
    return msg
