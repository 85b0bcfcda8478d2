"""API keys for the Open311 POST: creation, revocation, verification and rate limiting.

A key is shown once, when it is created, and only its SHA-256 digest is stored. A plain
(unsalted, fast) digest is enough here because keys are 256-bit random strings, not
passwords: nobody can guess one from its digest, and a fast digest lets every POST be
checked with one indexed look-up instead of an argon2 run per request. The first
characters of the key are kept as ``prefix`` so an admin can name a key to revoke it.

Rate limiting is a per-key token bucket kept in process memory (:class:`TokenBuckets`).
Why not in the database: ``api_key`` has no column for limiter state, and a write to the
key's row on every POST would make all concurrent POSTs of one client queue on that
row's lock, which the POST throughput target cannot afford. The cost of keeping it in
memory: with N server processes a client can reach N times the rate, and the buckets
refill on restart. A shared limit needs one more column (a GCRA "theoretical arrival
time" updated with a single ``UPDATE ... RETURNING`` in its own short transaction).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from spatial.cities import get_city
from spatial.errors import CivicpinError, InvalidInput, NotFound
from spatial.models import ApiKey, Jurisdiction, now_utc

KEY_PREFIX = "cp_"
PREFIX_LENGTH = 12  # "cp_" + 9 random characters: enough to name a key, useless to guess it
MIN_REVOKE_PREFIX = 8
MAX_KEY_LENGTH = 200
_KEY_RE = re.compile(r"^[A-Za-z0-9_-]+$")
LAST_USED_RESOLUTION_S = 60


class ApiKeyRejected(CivicpinError):
    """The key is missing, unknown, revoked, or belongs to another jurisdiction."""


def hash_key(key: str) -> str:
    """The stored form of a key (hex SHA-256)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(session: Session, city_slug: str, name: str) -> tuple[ApiKey, str]:
    """Create a key for city ``city_slug``; returns the row and the key (shown only now)."""
    name = (name or "").strip()
    if not name or len(name) > 200 or "\n" in name or "\r" in name:
        raise InvalidInput("the key's name must be one line of 1-200 characters", field="name")
    city = get_city(session, city_slug)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        jurisdiction_id=city.id, name=name, prefix=key[:PREFIX_LENGTH], key_hash=hash_key(key)
    )
    session.add(row)
    session.flush()
    return row, key


def find_key(session: Session, key_or_prefix: str) -> ApiKey:
    """The key given in full, or the one key whose prefix starts with ``key_or_prefix``."""
    text = (key_or_prefix or "").strip()
    if not text or len(text) > MAX_KEY_LENGTH or not _KEY_RE.match(text):
        raise InvalidInput(f"{text!r} is not an API key or key prefix", field="key")
    row = session.scalar(sa.select(ApiKey).where(ApiKey.key_hash == hash_key(text)))
    if row is not None:
        return row
    if len(text) > PREFIX_LENGTH:
        raise NotFound(f"no API key {text[:PREFIX_LENGTH]}...")
    if len(text) < MIN_REVOKE_PREFIX:
        raise InvalidInput(
            f"give at least {MIN_REVOKE_PREFIX} characters of the key (e.g. cp_AbCdE)", field="key"
        )
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = session.scalars(
        sa.select(ApiKey).where(ApiKey.prefix.like(escaped + "%", escape="\\")).limit(2)
    ).all()
    if not rows:
        raise NotFound(f"no API key starts with {text}")
    if len(rows) > 1:
        raise InvalidInput(f"several API keys start with {text}: give more characters", field="key")
    return rows[0]


def revoke_key(session: Session, key_or_prefix: str) -> ApiKey:
    """Revoke a key named in full or by prefix; revoking twice is an error."""
    row = find_key(session, key_or_prefix)
    if row.revoked_at is not None:
        raise InvalidInput(
            f"API key {row.prefix}... ({row.name}) was already revoked on "
            f"{row.revoked_at:%Y-%m-%d %H:%M %Z}",
            field="key",
        )
    row.revoked_at = now_utc()
    session.flush()
    return row


def list_keys(session: Session, city_slug: str | None = None) -> list[tuple[ApiKey, str]]:
    """All keys (of one city if given) with their city's slug, newest first."""
    query = (
        sa.select(ApiKey, Jurisdiction.slug)
        .join(Jurisdiction, Jurisdiction.id == ApiKey.jurisdiction_id)
        .order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
    )
    if city_slug:
        query = query.where(ApiKey.jurisdiction_id == get_city(session, city_slug).id)
    return [(row, slug) for row, slug in session.execute(query).all()]


# What verifying a key needs of its row, read as plain columns: an ORM entity cost more
# Python than the look-up costs the database, on every POST.
KEY_COLUMNS = (ApiKey.id, ApiKey.jurisdiction_id, ApiKey.revoked_at, ApiKey.last_used_at)
_FIND_KEY = sa.select(*KEY_COLUMNS).where(ApiKey.key_hash == sa.bindparam("digest"))
_TOUCH_KEY = sa.text("UPDATE api_key SET last_used_at = :now WHERE id = :id")


@dataclass(frozen=True)
class VerifiedKey:
    id: int
    jurisdiction_id: int
    touched: bool  # last_used_at was written in the caller's transaction


def verify_key(
    session: Session,
    key: str | None,
    city: Jurisdiction,
    found: tuple[str, sa.Row | None] | None = None,
) -> VerifiedKey:
    """The live key ``key`` of ``city``, or :class:`ApiKeyRejected` saying what is wrong.

    Also notes when the key was last used (at most once a minute, so that a busy client
    does not write to its key's row on every request), in the caller's transaction.
    ``found``: (digest, row of :data:`KEY_COLUMNS` or None) when the caller already looked
    the digest up in this transaction (the Open311 POST does, in the statement it starts
    with); used only if it is this key's digest.
    """
    key = (key or "").strip()
    if not key:
        raise ApiKeyRejected("api_key was not provided: POST needs an API key")
    if len(key) > MAX_KEY_LENGTH or not _KEY_RE.match(key):
        raise ApiKeyRejected("invalid api_key")
    digest = hash_key(key)
    if found is not None and found[0] == digest:
        row = found[1]
    else:
        row = session.execute(_FIND_KEY, {"digest": digest}).first()
    if row is None or row.id is None:
        raise ApiKeyRejected("invalid api_key")
    if row.revoked_at is not None:
        raise ApiKeyRejected("this api_key has been revoked")
    if row.jurisdiction_id != city.id:
        raise ApiKeyRejected(f"this api_key is not valid for jurisdiction {city.slug}")
    now = now_utc()
    touched = (
        row.last_used_at is None
        or (now - row.last_used_at).total_seconds() > LAST_USED_RESOLUTION_S
    )
    if touched:
        session.execute(_TOUCH_KEY, {"now": now, "id": row.id})
    return VerifiedKey(row.id, row.jurisdiction_id, touched)


@dataclass
class _Bucket:
    tokens: float
    at: float


class TokenBuckets:
    """Per-key token buckets: ``burst`` requests at once, then ``rate`` per second.

    Thread-safe; one instance per server process (see the module docstring for why).
    """

    def __init__(self, rate: float, burst: int, clock=time.monotonic):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = float(rate)
        self.burst = int(burst)
        self._clock = clock
        self._buckets: dict[int, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key_id: int) -> float:
        """Spend one token of ``key_id``: 0.0 if allowed, else the seconds until one is back."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key_id)
            if bucket is None:
                bucket = self._buckets[key_id] = _Bucket(float(self.burst), now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate


def parse_rate_limit(text: str) -> tuple[float, int]:
    """``"RATE/BURST"`` (requests per second / bucket size), e.g. ``"10/60"``."""
    try:
        rate_s, burst_s = text.split("/")
        rate, burst = float(rate_s), int(burst_s)
    except ValueError:
        raise InvalidInput(
            f"rate limit {text!r} must be RATE/BURST, e.g. 10/60", field="rate_limit"
        ) from None
    if not (rate > 0 and burst >= 1):
        raise InvalidInput(f"rate limit {text!r} needs RATE > 0 and BURST >= 1", field="rate_limit")
    return rate, burst
