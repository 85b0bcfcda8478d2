"""The transactional outbox: messages are rows written in the caller's transaction.

A message exists only if the change that caused it committed, and the worker delivers
every committed row. All messages about one request share a thread: each carries
``References``/``In-Reply-To`` to the request's thread root id, so mail clients group them.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from spatial.models import OutboxMessage, ServiceRequest


def mail_domain(public_base_url: str) -> str:
    return urlsplit(public_base_url).hostname or "localhost"


def thread_root_id(request: ServiceRequest, domain: str) -> str:
    """The Message-ID every message about ``request`` refers to."""
    return f"<request-{request.public_id}@{domain}>"


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
) -> OutboxMessage:
    """Add one outgoing message to the outbox (no commit; the caller's transaction)."""
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
    msg = OutboxMessage(
        jurisdiction_id=jurisdiction_id or (request.jurisdiction_id if request else None),
        request_id=request.id if request is not None else None,
        kind=kind,
        to_addr=to_addr,
        subject=subject,
        body_text=body_text,
        body_html=body_html,
        headers=hdrs,
        message_id=message_id,
        status="pending",
    )
    session.add(msg)
    return msg
