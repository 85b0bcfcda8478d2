"""Signed links in messages (survey, unsubscribe, follow confirmation) and the unsubscribe
list.

Links are signed with itsdangerous using the city's ``mail_config.link_secret``, created on
first use. The payload names the city (``c``); a link is checked by reading that id
unverified, loading the city's key, then verifying the signature with it, so a tampered
payload fails the check.
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from itsdangerous import BadSignature, Serializer, SignatureExpired, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.util import identity_key

from spatial.db import StampedCache, new_object, settings_stamp
from spatial.errors import CivicpinError
from spatial.models import Follower, now_utc
from spatial.models_mail import MailAddress, MailConfig, MessageTemplate, Unsubscribe

SURVEY_SALT = "civicpin-survey"
UNSUBSCRIBE_SALT = "civicpin-unsubscribe"
FOLLOW_SALT = "civicpin-follow"
FOLLOW_CONFIRM_DAYS = 7


class BadLink(CivicpinError):
    """The link was altered, cut short, or made with a key that is no longer valid."""


class ExpiredLink(CivicpinError):
    """The link was genuine but is too old."""


def transaction_memo(session: Session) -> dict | None:
    """A dict that lives as long as the session's current transaction (None outside one).

    For values read several times while one change is notified (a new request writes two
    messages, each needing the city's mail settings, templates and reply-to address):
    read once per transaction, never across transactions, so another process's changes
    are seen by the next transaction as before.
    """
    txn = session.get_transaction()
    if txn is None:
        return None
    memo = session.info.get("civicpin_txn_memo")
    if memo is None or memo[0] is not txn:
        memo = session.info["civicpin_txn_memo"] = (txn, {})
    return memo[1]


def mail_config(session: Session, city_id: int) -> MailConfig:
    """The city's mail settings row, created with defaults (and a link key) if missing.

    Read from the database once per transaction; later calls in the same transaction get
    the same (identity-mapped) object, changes made to it included.
    """
    memo = transaction_memo(session)
    cfg = memo.get(("mail_config", city_id)) if memo is not None else None
    if cfg is not None and cfg in session:
        return cfg
    held = session.identity_map.get(identity_key(MailConfig, city_id))
    if held is not None and (held in session.new or session.is_modified(held)):
        cfg = held  # changed in this transaction and not flushed yet: newer than the row
    else:
        cfg = None if held is not None else _from_stamped_cache(session, city_id)
        if cfg is None:
            cfg = _load_mail_settings(session, city_id)
            if cfg is not None and cfg.link_secret:
                _remember_stamped(session, city_id, cfg)
    if cfg is None:
        session.execute(
            insert(MailConfig)
            .values(
                jurisdiction_id=city_id,
                reply_limit_per_hour=5,
                accept_limit_per_hour=30,
                link_secret=secrets.token_urlsafe(32),
            )
            .on_conflict_do_nothing(index_elements=["jurisdiction_id"])
        )
        cfg = session.get(MailConfig, city_id, populate_existing=True)
    assert cfg is not None
    if not cfg.link_secret:
        cfg.link_secret = secrets.token_urlsafe(32)
        session.flush()
    memo = transaction_memo(session)  # the first query may have begun the transaction
    if memo is not None:
        memo[("mail_config", city_id)] = cfg
    return cfg


# What a message needs besides the settings row, read in the same statement: the city's
# reply-to address (its first active intake address) and its template overrides.
_REPLY_TO = (
    sa.select(MailAddress.address)
    .where(MailAddress.jurisdiction_id == MailConfig.jurisdiction_id, MailAddress.active)
    .order_by(MailAddress.id)
    .limit(1)
    .scalar_subquery()
)
_OVERRIDES = (
    sa.select(
        sa.func.json_object_agg(
            MessageTemplate.kind,
            sa.func.json_build_array(MessageTemplate.subject, MessageTemplate.body),
        )
    )
    .where(MessageTemplate.jurisdiction_id == MailConfig.jurisdiction_id)
    .scalar_subquery()
)


_MAIL_SETTINGS = (
    sa.select(MailConfig, _REPLY_TO, _OVERRIDES)
    .where(MailConfig.jurisdiction_id == sa.bindparam("city_id"))
    .execution_options(populate_existing=True)
)  # built once: every new request reads it


def _load_mail_settings(session: Session, city_id: int) -> MailConfig | None:
    """The settings row, fresh from the database, and into the transaction's memo the
    reply-to address and template overrides (``reply_to``/``templates`` entries)."""
    row = session.execute(_MAIL_SETTINGS, {"city_id": city_id}).first()
    if row is None:
        return None
    memo = transaction_memo(session)
    if memo is not None:
        memo[("reply_to", city_id)] = row[1]
        memo[("templates", city_id)] = {k: (v[0], v[1]) for k, v in (row[2] or {}).items()}
    return row[0]


# The mail settings a new request's messages read (the row, the reply-to address, the
# template overrides), kept in process memory under the settings stamp that the Open311
# POST reads first (webmap.open311.catalog): for as long as that stamp is unchanged, none
# of those rows changed. Other callers (no stamp in their transaction) read the database.
_stamped = StampedCache()  # city id -> (the row's values, reply-to address, overrides)
_CONFIG_COLUMNS = tuple(c.key for c in MailConfig.__table__.columns)


def _stamped_entries(session: Session) -> dict | None:
    stamp = settings_stamp(session)
    return None if stamp is None else _stamped.entries(session, stamp)


def _from_stamped_cache(session: Session, city_id: int) -> MailConfig | None:
    entries = _stamped_entries(session)
    entry = entries.get(city_id) if entries is not None else None
    if entry is None:
        return None
    values, reply_to, overrides = entry
    cfg = new_object(MailConfig, **values)  # without attribute events: committed at once
    make_transient_to_detached(cfg)
    session.add(cfg)  # as if loaded: clean, persistent
    memo = transaction_memo(session)
    if memo is not None:
        memo[("reply_to", city_id)] = reply_to
        memo[("templates", city_id)] = overrides
    return cfg


def _remember_stamped(session: Session, city_id: int, cfg: MailConfig) -> None:
    entries = _stamped_entries(session)
    memo = transaction_memo(session)
    if entries is None or memo is None or ("templates", city_id) not in memo:
        return
    entry = (
        {key: getattr(cfg, key) for key in _CONFIG_COLUMNS},
        memo.get(("reply_to", city_id)),
        memo[("templates", city_id)],
    )
    with _stamped.lock:
        entries[city_id] = entry


class _LinkSerializer(URLSafeTimedSerializer):
    """itsdangerous' URL-safe timed serializer, cheaper for the links written on every new
    request: its signer is built once, and the payload is not compressed. A link's payload
    (a city id, an address, a request id) is too short for zlib to shorten it, which
    itsdangerous finds out by compressing it each time; reading still takes both forms,
    so links already sent keep working."""

    def __init__(self, key: str, salt: str):
        super().__init__(key, salt=salt)
        self._signer = super().make_signer(salt)

    def make_signer(self, salt=None):
        if salt is None or salt == self.salt:
            return self._signer  # stateless: signing derives its key on each call
        return super().make_signer(salt)

    def dump_payload(self, obj: Any) -> bytes:
        return base64_encode(Serializer.dump_payload(self, obj))


@lru_cache(maxsize=256)
def _serializer(key: str, salt: str) -> URLSafeTimedSerializer:
    # Stateless once built; building one per link was a measurable part of each POST.
    return _LinkSerializer(key, salt)


def sign(session: Session, city_id: int, salt: str, payload: dict[str, Any]) -> str:
    key = mail_config(session, city_id).link_secret
    return _serializer(key, salt).dumps({"c": city_id, **payload})


def verify(session: Session, token: str, salt: str, max_age: int | None = None) -> dict:
    """The payload of a genuine link; raises :class:`BadLink` or :class:`ExpiredLink`."""
    try:
        _ok, unsafe = _serializer("unverified", salt).loads_unsafe(token)
        city_id = int(unsafe["c"]) if isinstance(unsafe, dict) else None
    except (BadSignature, KeyError, TypeError, ValueError):
        city_id = None
    cfg = session.get(MailConfig, city_id) if city_id is not None else None
    if cfg is None or not cfg.link_secret:
        raise BadLink("This link is not valid: it may have been cut short when it was copied.")
    try:
        return _serializer(cfg.link_secret, salt).loads(token, max_age=max_age)
    except SignatureExpired:
        raise ExpiredLink("This link has expired.") from None
    except BadSignature:
        raise BadLink(
            "This link is not valid: it may have been cut short when it was copied."
        ) from None


def unsubscribe_url(
    session: Session,
    public_base_url: str,
    city_id: int,
    email: str,
    request_id: int | None,
    kind: str | None = None,
) -> str:
    """The recipient's own unsubscribe link: from one request's mail, or (no request)
    from one ``kind`` of message. Its page also offers "no mail at all" and an undo."""
    payload: dict[str, Any] = {"e": email.lower(), "r": request_id}
    if kind is not None:
        payload["k"] = kind
    token = sign(session, city_id, UNSUBSCRIBE_SALT, payload)
    return f"{public_base_url}/unsubscribe/{token}"


def follow_confirm_url(
    session: Session,
    public_base_url: str,
    city_id: int,
    email: str,
    request_id: int,
    public_id: str,
) -> str:
    """The link that confirms ``email`` follows the request (checked by :func:`verify_follow`)."""
    token = sign(session, city_id, FOLLOW_SALT, {"e": email.lower(), "r": request_id})
    return f"{public_base_url}/requests/{public_id}/follow/confirm/{token}"


def verify_follow(session: Session, token: str) -> tuple[str, int]:
    """(address, request id) of a genuine, unexpired follow confirmation link."""
    payload = verify(session, token, FOLLOW_SALT, max_age=FOLLOW_CONFIRM_DAYS * 86400)
    email, request_id = payload.get("e"), payload.get("r")
    if not isinstance(email, str) or not isinstance(request_id, int):
        raise BadLink("This link is not valid: it may have been cut short when it was copied.")
    return email, request_id


# Written out once (every new request checks its recipients): a statement built per call
# costs more Python than the look-up costs the database. A row without a request, kind or
# city stands for every request, kind or city.
UNSUBSCRIBED_MATCH = """
    lower(u.email) = CAST(:email AS text)
    AND (u.request_id IS NULL OR u.request_id = CAST(:request_id AS bigint))
    AND (u.kind IS NULL OR u.kind = CAST(:kind AS text))
    AND (u.jurisdiction_id IS NULL OR u.jurisdiction_id = CAST(:city_id AS integer))
"""
_UNSUBSCRIBED_SQL = sa.text(
    f"SELECT EXISTS (SELECT 1 FROM mail_unsubscribe u WHERE {UNSUBSCRIBED_MATCH})"  # noqa: S608
)


def is_unsubscribed(
    session: Session,
    email: str,
    request_id: int | None,
    kind: str | None = None,
    city_id: int | None = None,
) -> bool:
    """True if ``email`` asked for no mail at all, none about ``request_id``, none of
    ``kind``, or none from city ``city_id``."""
    return bool(
        session.execute(
            _UNSUBSCRIBED_SQL,
            {"email": email.lower(), "request_id": request_id, "kind": kind, "city_id": city_id},
        ).scalar()
    )


def _same_wish(email: str, request_id: int | None, kind: str | None, city_id: int | None):
    return sa.and_(
        sa.func.lower(Unsubscribe.email) == email,
        Unsubscribe.request_id.is_(None)
        if request_id is None
        else Unsubscribe.request_id == request_id,
        Unsubscribe.kind.is_(None) if kind is None else Unsubscribe.kind == kind,
        # a row from before cities were recorded counts as this city's
        sa.or_(Unsubscribe.jurisdiction_id.is_(None), Unsubscribe.jurisdiction_id == city_id),
    )


def has_unsubscribed(
    session: Session, email: str, request_id: int | None, kind: str | None, city_id: int | None
) -> bool:
    """True if exactly this wish (this request, or this kind, or everything) is recorded."""
    return bool(
        session.scalar(
            sa.select(sa.exists().where(_same_wish(email.lower(), request_id, kind, city_id)))
        )
    )


def unsubscribe(
    session: Session,
    email: str,
    request_id: int | None,
    kind: str | None = None,
    city_id: int | None = None,
) -> bool:
    """Record the wish (idempotent). True if new.

    One address only, and only what it names: a request (following it stops too), a kind
    of message, or (neither) all mail from the city.
    """
    email = email.lower()
    if has_unsubscribed(session, email, request_id, kind, city_id):
        return False
    session.add(Unsubscribe(email=email, request_id=request_id, kind=kind, jurisdiction_id=city_id))
    if request_id is not None:
        session.execute(
            sa.update(Follower)
            .where(
                sa.func.lower(Follower.email) == email,
                Follower.request_id == request_id,
                Follower.unsubscribed_at.is_(None),
            )
            .values(unsubscribed_at=now_utc())
        )
    session.flush()
    return True


def resubscribe(
    session: Session,
    email: str,
    request_id: int | None,
    kind: str | None = None,
    city_id: int | None = None,
) -> bool:
    """Undo :func:`unsubscribe` for the same wish (a follower follows again). True if
    there was something to undo."""
    email = email.lower()
    gone = session.execute(
        sa.delete(Unsubscribe)
        .where(_same_wish(email, request_id, kind, city_id))
        .returning(Unsubscribe.id)
    ).all()
    if request_id is not None:
        session.execute(
            sa.update(Follower)
            .where(
                sa.func.lower(Follower.email) == email,
                Follower.request_id == request_id,
                Follower.unsubscribed_at.is_not(None),
            )
            .values(unsubscribed_at=None)
        )
    session.flush()
    return bool(gone)
