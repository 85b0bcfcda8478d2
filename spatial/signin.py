"""Staff sign-in: throttling with lock-outs, the same cost for unknown accounts, and
two-factor codes (TOTP).

Failed sign-ins are counted in ``signin_attempt``, in the database, so every worker and
machine shares them: per account (the e-mail address typed, whether or not an account has
it, so the answer never tells which addresses exist) and per client address. Reaching the
limit locks that account or address out; each later lock-out of the same key lasts twice
as long, up to 64 times the first. A success clears the account's count, never the
client's (one good account must not buy a client more guesses at the others).

Keys are SHA-256 digests: the table holds no typed address, which may be a mistyped
password, and no client address.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime

import pyotp
import sqlalchemy as sa
from sqlalchemy.orm import Session

from spatial.accounts import hash_password, verify_password
from spatial.models import SigninAttempt, User

ACCOUNT = "account"
CLIENT = "client"
TOTP_ISSUER = "civicpin"
CODE_RE = re.compile(r"^[0-9]{6}$")

# One statement, so concurrent failures on the same key never lose a count: the row is
# locked for the update and each one sees the count the one before it left. The count
# restarts when its window has passed; reaching the limit starts a lock-out (the window's
# length, doubled for each lock-out before it that ended less than a day ago).
_FRESH = "a.window_start <= now() - make_interval(mins => :minutes)"
_COUNT = f"(CASE WHEN {_FRESH} THEN 1 ELSE a.failures + 1 END)"
_LOCK = f"({_COUNT} >= :limit)"
_EARLIER = (
    "(CASE WHEN a.locked_until IS NULL OR a.locked_until > now() - interval '1 day' "
    "THEN a.lockouts ELSE 0 END)"
)
RECORD_FAILURE = sa.text(
    f"""
    INSERT INTO signin_attempt AS a (kind, key, failures, window_start, lockouts, locked_until)
    VALUES (:kind, :key, 1, now(), 0, NULL)
    ON CONFLICT (kind, key) DO UPDATE SET
        failures = CASE WHEN {_LOCK} THEN 0 ELSE {_COUNT} END,
        window_start = CASE WHEN {_FRESH} OR {_LOCK} THEN now() ELSE a.window_start END,
        lockouts = CASE WHEN {_LOCK} THEN {_EARLIER} + 1 ELSE a.lockouts END,
        locked_until = CASE WHEN {_LOCK}
            THEN now() + make_interval(mins => :minutes) * power(2, least({_EARLIER}, 6))
            ELSE a.locked_until END
    RETURNING greatest(0, ceil(extract(epoch FROM a.locked_until - now())))::int
    """  # noqa: S608 - only the constant fragments above are formatted in
)
LOCKED_SECONDS = sa.text(
    """
    SELECT coalesce(max(ceil(extract(epoch FROM locked_until - now()))), 0)::int
    FROM signin_attempt
    WHERE locked_until > now() AND (kind, key) IN ((:kind_a, :key_a), (:kind_c, :key_c))
    """
)
# Rows with nothing left to remember: no recent failure, and no lock-out in the last day.
FORGET_OLD = sa.text(
    """
    DELETE FROM signin_attempt
    WHERE window_start < now() - interval '1 day'
      AND (locked_until IS NULL OR locked_until < now() - interval '1 day')
    """
)


def attempt_key(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}:{value.strip().lower()}".encode()).hexdigest()


def locked_seconds(session: Session, email: str, client: str) -> int:
    """Seconds until sign-in may be tried again for this account and client (0: now)."""
    return session.execute(
        LOCKED_SECONDS,
        {
            "kind_a": ACCOUNT,
            "key_a": attempt_key(ACCOUNT, email),
            "kind_c": CLIENT,
            "key_c": attempt_key(CLIENT, client),
        },
    ).scalar_one()


def record_failure(
    session: Session,
    email: str,
    client: str,
    *,
    account_limit: tuple[int, int],
    client_limit: tuple[int, int],
) -> int:
    """Count one failed sign-in (password or code) against the account and the client.

    ``*_limit``: (failures, minutes). Returns the seconds of the lock-out this failure
    started, or 0. The caller commits.
    """
    locked = 0
    for kind, value, (limit, minutes) in (
        (ACCOUNT, email, account_limit),
        (CLIENT, client, client_limit),
    ):
        seconds = session.execute(
            RECORD_FAILURE,
            {"kind": kind, "key": attempt_key(kind, value), "limit": limit, "minutes": minutes},
        ).scalar_one()
        locked = max(locked, seconds)
    return locked


def record_success(session: Session, email: str) -> None:
    """Clear the account's failures (not the client's) and forget rows long past."""
    session.execute(
        sa.delete(SigninAttempt).where(
            SigninAttempt.kind == ACCOUNT, SigninAttempt.key == attempt_key(ACCOUNT, email)
        )
    )
    session.execute(FORGET_OLD)


_dummy_hash: str | None = None


def password_matches(user: User | None, password: str) -> bool:
    """Whether ``password`` is ``user``'s, at the same cost when there is no such user.

    An unknown address is checked against a throwaway argon2 hash, so the time of the
    answer does not tell which staff addresses exist.
    """
    global _dummy_hash
    stored = user.password_hash if user is not None else None
    if not stored:
        if _dummy_hash is None:
            _dummy_hash = hash_password(secrets.token_urlsafe(16))
        verify_password(_dummy_hash, password)
        return False
    return verify_password(stored, password)


# --- two-factor codes -------------------------------------------------------------------


def new_totp_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, email: str) -> str:
    """The ``otpauth://`` address an authenticator app reads (often shown as a QR code)."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=TOTP_ISSUER)


def accept_totp_code(session: Session, user: User, code: str, at: datetime | None = None) -> bool:
    """Whether ``code`` is ``user``'s current code, used for the first time.

    A code of the step before or after is accepted too (a phone's clock a little off).
    Accepting records the step, atomically, so the same code, or an earlier one, is
    refused afterwards even if two requests bring it at once.
    """
    step = code_step(user.totp_secret, code, at)
    if step is None:
        return False
    claimed = session.execute(
        sa.update(User)
        .where(
            User.id == user.id,
            sa.or_(User.totp_last_step.is_(None), User.totp_last_step < step),
        )
        .values(totp_last_step=step)
        .returning(User.id)
        .execution_options(synchronize_session=False)
    ).first()
    return claimed is not None


def code_step(secret: str | None, code: str, at: datetime | None = None) -> int | None:
    """The time step whose code ``code`` is for ``secret`` (this one or a neighbour), or None."""
    code = re.sub(r"\s", "", code or "")
    if not secret or not CODE_RE.match(code):
        return None
    totp = pyotp.TOTP(secret)
    now_step = totp.timecode(at or datetime.now())
    for step in (now_step - 1, now_step, now_step + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None
