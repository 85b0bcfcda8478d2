"""Password reset by a one-time, expiring link mailed to the account's own address.

The link carries a random secret; the table keeps only its SHA-256 digest, so reading
``password_reset`` gives no usable link. A link works once, for an hour, for an active
account, and only while it is the account's newest: issuing another one, or any change
of the password, ends the ones before. Redeeming it sets the password with the usual
policy (``spatial.accounts``), which ends the account's sessions (a trigger on
``app_user``), and clears the account's sign-in lock-out; it signs nobody in.

Requests from the "forgot your password" page are limited in the database, so every
worker and machine shares the counts: per account by the links issued in the last hour
(over the limit, nothing is sent, and the page says the same as ever, so it never tells
which addresses have an account), and per client address like failed sign-ins
(``spatial.signin``: a lock-out once the limit is reached).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from spatial.accounts import set_password
from spatial.errors import CivicpinError, InvalidInput
from spatial.models import User, now_utc
from spatial.models_ops import PasswordReset
from spatial.signin import CLIENT, RECORD_FAILURE, attempt_key, record_success

LINK_LIFETIME = timedelta(hours=1)
# Links one account may be sent from the public page within LINK_LIFETIME.
ACCOUNT_LIMIT = 3
# Requests one client address may make: (requests, minutes), then as many minutes' wait.
CLIENT_LIMIT = (10, 60)
INVALID_LINK = (
    "This link does not work any more: it was used, it expired after an hour, or a newer "
    "one was sent. Ask for a new one."
)


class TooManyResets(CivicpinError):
    """The client address asked for too many links; ``seconds`` until it may again."""

    def __init__(self, seconds: int):
        minutes = max(1, -(-seconds // 60))
        super().__init__(
            f"Too many requests for a new password from your address. "
            f"Try again in {minutes} minute{'' if minutes == 1 else 's'}."
        )
        self.seconds = seconds


def token_digest(secret: str) -> str:
    """The digest stored for a link's secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def end_links(session: Session, user_id: int) -> None:
    """End every unused link of the account (a newer one, or a new password)."""
    session.execute(
        sa.update(PasswordReset)
        .where(
            PasswordReset.user_id == user_id,
            PasswordReset.used_at.is_(None),
            PasswordReset.expires_at > sa.func.now(),
        )
        .values(expires_at=sa.func.now())
        .execution_options(synchronize_session=False)
    )


def issue_reset(session: Session, user: User) -> str:
    """A new link's secret for ``user``; their earlier unused links stop working.

    The caller mails it (``notify.account_mail``) and commits; the secret is never
    stored, logged or shown.
    """
    end_links(session, user.id)
    secret = secrets.token_urlsafe(32)
    now = now_utc()
    session.add(
        PasswordReset(
            user_id=user.id,
            token_hash=token_digest(secret),
            created_at=now,
            expires_at=now + LINK_LIFETIME,
        )
    )
    session.flush()
    return secret


_CLIENT_LOCKED = sa.text(
    """
    SELECT coalesce(max(ceil(extract(epoch FROM locked_until - now()))), 0)::int
    FROM signin_attempt WHERE kind = :kind AND key = :key AND locked_until > now()
    """
)


def _client_key(client: str) -> str:
    # Its own key beside the client's sign-in failures: asking for links does not lock
    # sign-in, and failed sign-ins do not stop a reset.
    return attempt_key(CLIENT, f"password-reset {client}")


def account_for_reset(session: Session, email: str, client: str) -> User | None:
    """The account a link should be mailed to for this request from the public page, or
    None (no such account, deactivated, or enough links sent in the last hour).

    Counts the request against ``client``; raises :class:`TooManyResets` when the client
    is over its limit, whatever the address. The caller commits either way.
    """
    key = _client_key(client)
    wait = session.execute(_CLIENT_LOCKED, {"kind": CLIENT, "key": key}).scalar_one()
    if wait:
        raise TooManyResets(wait)
    limit, minutes = CLIENT_LIMIT
    session.execute(
        RECORD_FAILURE, {"kind": CLIENT, "key": key, "limit": limit, "minutes": minutes}
    )
    email = (email or "").strip().lower()
    if not email or len(email) > 254:
        return None
    # Locked, so that two requests at once cannot both pass the account's count.
    user = session.scalar(
        sa.select(User).where(sa.func.lower(User.email) == email).with_for_update()
    )
    if user is None or not user.active:
        return None
    recent = session.scalar(
        sa.select(sa.func.count())
        .select_from(PasswordReset)
        .where(
            PasswordReset.user_id == user.id,
            PasswordReset.created_at > sa.func.now() - LINK_LIFETIME,
        )
    )
    return user if recent < ACCOUNT_LIMIT else None


def _valid_link(session: Session, secret: str, *, lock: bool = False) -> PasswordReset | None:
    if not secret or len(secret) > 200:
        return None
    query = sa.select(PasswordReset).where(
        PasswordReset.token_hash == token_digest(secret),
        PasswordReset.used_at.is_(None),
        PasswordReset.expires_at > sa.func.now(),
    )
    if lock:
        query = query.with_for_update()
    return session.scalar(query)


def reset_link_user(session: Session, secret: str) -> User | None:
    """The active account a still-valid link is for, or None. Changes nothing (mail
    scanners open links)."""
    link = _valid_link(session, secret)
    if link is None:
        return None
    user = session.get(User, link.user_id)
    return user if user is not None and user.active else None


def redeem_reset(session: Session, secret: str, password: str) -> User:
    """Set the password of the link's account and use the link up (the caller commits).

    Raises InvalidInput: field ``link`` for a used, expired, ended or unknown link or a
    deactivated account; field ``password`` for a password the policy refuses (the link
    then still works). The account's sessions end and its sign-in lock-out is cleared.
    """
    link = _valid_link(session, secret, lock=True)
    user = session.get(User, link.user_id) if link is not None else None
    if link is None or user is None or not user.active:
        raise InvalidInput(INVALID_LINK, field="link")
    set_password(user, password)  # which also ends the account's other links
    link.used_at = now_utc()
    record_success(session, user.email)
    session.flush()
    return user
