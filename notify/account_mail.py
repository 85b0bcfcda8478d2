"""Mail about a staff account itself: the link to set a new password.

Written to the outbox in the caller's transaction like every message, so a link is
mailed only if its row committed. It is no newsletter: an address that unsubscribed
from a city's mail as a resident still gets it (the worker does not hold it back).
The link goes to the account's own address only, and nowhere else: not to the logs
(the worker logs the recipient, never the body), not to the admin audit log.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from notify.links import mail_config
from notify.outbox import enqueue
from spatial.cities import city_base_url
from spatial.models import Jurisdiction, OutboxMessage, User
from spatial.password_reset import LINK_LIFETIME, issue_reset

PASSWORD_RESET = "password_reset"


def account_base_url(session: Session, user: User, public_base_url: str) -> str:
    """Where the account signs in: its city's own address (its host name, or
    ``/c/<slug>`` under the install's), the install's address for an install
    administrator or an account of no city yet."""
    city = session.get(Jurisdiction, user.jurisdiction_id) if user.jurisdiction_id else None
    if city is None:
        return public_base_url.rstrip("/")
    return city_base_url(public_base_url, city)


def send_password_reset(session: Session, user: User, public_base_url: str) -> OutboxMessage | None:
    """Issue a new reset link for ``user`` (ending their earlier ones) and mail it to
    their address. The caller commits."""
    secret = issue_reset(session, user)
    base = account_base_url(session, user, public_base_url)
    city = session.get(Jurisdiction, user.jurisdiction_id) if user.jurisdiction_id else None
    where = city.name if city is not None else "civicpin"
    minutes = int(LINK_LIFETIME.total_seconds() // 60)
    body = (
        f"Someone, probably you, asked to set a new password for the {where} staff "
        f"account {user.email}.\n\n"
        f"Set a new password here (the link works once, for {minutes} minutes):\n"
        f"{base}/login/reset?token={secret}\n\n"
        "Then sign in with it as usual; two-factor sign-in stays on if you use it.\n\n"
        "If you did not ask, ignore this message: your password stays as it is. "
        "Do not forward it: the link lets anyone who has it set your password.\n"
        f"\n--\n{where}\n"
    )
    headers = {
        "Auto-Submitted": "auto-generated",
        "X-Auto-Response-Suppress": "All",
        "X-Civicpin-Kind": PASSWORD_RESET,
    }
    if city is not None:
        cfg = mail_config(session, city.id)
        if cfg.from_address:
            headers["From"] = cfg.from_address
    return enqueue(
        session,
        kind=PASSWORD_RESET,
        to_addr=user.email,
        subject=f"Set a new password for {where}",
        body_text=body,
        public_base_url=public_base_url,
        jurisdiction_id=city.id if city is not None else None,
        headers=headers,
    )
