"""Possible duplicates of a report about to be made, and following one instead.

Before submitting, a resident sees the open requests of the same category near the pin
from the last 30 days (:func:`find_duplicates`). They can follow one of them
(:func:`follow`): a link to confirm is mailed to their address, and once it is opened
(:func:`confirm_follow`) they get the request's updates, the request gets a public
"followed" event, and its support count grows. No request is created.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from notify.links import BadLink, resubscribe, verify_follow
from notify.messages import follow_confirmation
from records.moderation import TEXT_REMOVED
from spatial.accounts import EMAIL_RE
from spatial.db import driver_execute, driver_sql
from spatial.errors import InvalidInput
from spatial.models import (
    OPEN_LOCATION_PREDICATE,
    OPEN_STATUSES,
    Follower,
    Jurisdiction,
    RequestEvent,
    Service,
    ServiceRequest,
    now_utc,
)

DEFAULT_RADIUS_M = 50.0
MAX_RADIUS_M = 1000.0
DEFAULT_DAYS = 30
MAX_CANDIDATES = 10
METRES_PER_DEGREE = 111_320.0

# The open requests inside the search box come first, from their partial GiST index
# alone (OPEN_LOCATION_PREDICATE, migration 0430), behind a fence, so that no plan, the
# server's generic plan of this prepared statement included, combines it with the index
# of the category, which matches a tenth of the table; the other conditions then filter
# those few rows. The box is a sub-select, so that every plan estimates it alike: given
# as constants, the server planned each execution anew (the generic plan's estimate
# stayed above the custom plans'), which took longer than running it; now it settles on
# the generic plan of the prepared statement.
_DUPLICATES_SELECT = f"""
    WITH pt AS (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS g),
    boxed AS MATERIALIZED (
        SELECT r.id, r.public_id, r.status, r.requested_at, r.address,
               CASE r.description_moderation
                   WHEN 'hidden' THEN :text_removed
                   WHEN 'redacted' THEN r.public_description
                   ELSE r.description END AS description,
               r.location, r.jurisdiction_id, r.service_id, r.duplicate_of_id, r.held_at
        FROM service_request r
        WHERE r.location && (SELECT ST_MakeEnvelope(:minlon, :minlat, :maxlon, :maxlat, 4326))
          AND r.{OPEN_LOCATION_PREDICATE}
    )
    SELECT r.id, r.public_id, r.status, r.requested_at, r.address, r.description,
           ST_Distance(r.location::geography, pt.g::geography) AS distance_m,
           (SELECT p.thumb_key FROM photo p
             WHERE p.request_id = r.id AND p.stage = 'report' AND p.hidden_at IS NULL
               AND p.public
             ORDER BY p.id LIMIT 1) AS thumb_key,
           (SELECT count(*) FROM follower f
             WHERE f.request_id = r.id AND f.confirmed_at IS NOT NULL) AS supporters
    FROM boxed r, pt
    WHERE r.jurisdiction_id = :jid
      AND r.service_id = :service_id
      AND r.requested_at >= :since
      AND r.duplicate_of_id IS NULL
      -- a held report (records.moderation) is offered to no one but staff
      AND (r.held_at IS NULL OR NOT CAST(:public_only AS boolean))
      -- ST_DWithin on geography keeps exactly the requests within the radius in metres
      AND ST_DWithin(r.location::geography, pt.g::geography, :radius)
    ORDER BY distance_m, r.requested_at DESC
    LIMIT :limit
    """  # noqa: S608 - constant SQL
DUPLICATES_SQL = sa.text(_DUPLICATES_SELECT)
_DUPLICATES_DRIVER_SQL = driver_sql(DUPLICATES_SQL)
# The same search as one more column of another statement (a JSON array, nearest first;
# NULL when :search_duplicates is false or nothing was found): a new request reads it
# with its routing inputs (intake.submit), in one round trip.
DUPLICATES_COLUMN = f"""
       CASE WHEN :search_duplicates THEN (
           SELECT json_agg(d ORDER BY d.distance_m, d.requested_at DESC)
           FROM ({_DUPLICATES_SELECT}) AS d
       ) END AS duplicates"""  # noqa: S608 - constant SQL


@dataclass(frozen=True)
class DuplicateCandidate:
    """An open request near the pin that may be the same problem (public fields only)."""

    public_id: str
    service: str
    status: str
    requested_at: datetime
    distance_m: float
    address: str | None
    description: str | None
    thumb_key: str | None
    supporters: int

    def age_days(self, now: datetime | None = None) -> int:
        return max(0, ((now or now_utc()) - self.requested_at).days)


@dataclass(frozen=True)
class FollowResult:
    follower: Follower
    created: bool  # False when this e-mail already followed the request
    mailed: bool = False  # a confirmation link was put in the outbox


def search_envelope(lon: float, lat: float, radius_m: float) -> tuple[float, float, float, float]:
    """A lon/lat box that surely holds every point within ``radius_m`` of (lon, lat).

    Degrees of longitude shrink with cos(latitude); 10 % spare covers the spheroid.
    """
    dlat = radius_m / METRES_PER_DEGREE * 1.1
    cos_lat = max(math.cos(math.radians(min(abs(lat), 89.0))), 0.01)
    dlon = min(180.0, dlat / cos_lat)
    return (
        max(-180.0, lon - dlon),
        max(-90.0, lat - dlat),
        min(180.0, lon + dlon),
        min(90.0, lat + dlat),
    )


def find_duplicates(
    session: Session,
    city: Jurisdiction,
    service: Service,
    lon: float,
    lat: float,
    **search: Any,
) -> list[DuplicateCandidate]:
    """Open requests of ``service`` within ``radius_m`` of the point from the last ``days``
    (``search``: the options of :func:`search_params`: ``radius_m``, ``days``, ``now``, ``limit``).

    Nearest first. A private category never lists anything: those reports are not
    public, so no one may see or follow them.
    """
    params = search_params(city, service, lon, lat, **search)
    if not params["search_duplicates"]:
        return []
    rows = driver_execute(session, _DUPLICATES_DRIVER_SQL, params).fetchall()
    return [_candidate(r, service) for r in rows]


def search_params(
    city: Jurisdiction,
    service: Service,
    lon: float,
    lat: float,
    *,
    radius_m: float = DEFAULT_RADIUS_M,
    days: int = DEFAULT_DAYS,
    now: datetime | None = None,
    limit: int = MAX_CANDIDATES,
    public_only: bool = True,
) -> dict:
    """The parameters of the duplicate search (:data:`DUPLICATES_SQL`, or
    :data:`DUPLICATES_COLUMN` with ``search_duplicates``: false for a private category
    or one of another city, which are never searched). ``public_only``: leave out the
    held requests (for residents; staff's duplicate flags include them)."""
    if not 0 < radius_m <= MAX_RADIUS_M:
        raise InvalidInput(f"the radius must be between 0 and {MAX_RADIUS_M:g} m", field="radius")
    minlon, minlat, maxlon, maxlat = search_envelope(lon, lat, radius_m)
    return {
        "search_duplicates": not service.private and service.jurisdiction_id == city.id,
        "lon": lon,
        "lat": lat,
        "jid": city.id,
        "service_id": service.id,
        "since": (now or now_utc()) - timedelta(days=days),
        "minlon": minlon,
        "minlat": minlat,
        "maxlon": maxlon,
        "maxlat": maxlat,
        "radius": radius_m,
        "limit": limit,
        "public_only": public_only,
        "text_removed": TEXT_REMOVED,
    }


def candidates_from_json(found: list[dict] | None, service: Service) -> list[DuplicateCandidate]:
    """The candidates of a :data:`DUPLICATES_COLUMN` value."""
    return [
        _candidate(
            SimpleNamespace(**{**d, "requested_at": datetime.fromisoformat(d["requested_at"])}),
            service,
        )
        for d in found or ()
    ]


def _candidate(r, service: Service) -> DuplicateCandidate:
    return DuplicateCandidate(
        public_id=r.public_id,
        service=service.name,
        status=r.status,
        requested_at=r.requested_at,
        distance_m=float(r.distance_m),
        address=r.address,
        description=r.description,
        thumb_key=r.thumb_key,
        supporters=int(r.supporters),
    )


def supporters(session: Session, request: ServiceRequest) -> int:
    """How many residents follow ``request`` (each confirmed follow counts as support)."""
    return int(
        session.scalar(
            sa.select(sa.func.count())
            .select_from(Follower)
            .where(Follower.request_id == request.id, Follower.confirmed_at.is_not(None))
        )
        or 0
    )


# A confirmation link is mailed again to an unconfirmed follower at most this often, and
# one address gets at most CONFIRMATIONS_PER_DAY of them (for any requests of the city):
# typing a stranger's address in again and again cannot fill their mailbox. The daily cap
# counts followers whose link went out in the last day, so a follower may not be mailed
# more than once in that time either.
CONFIRMATION_RESEND = timedelta(days=1)
CONFIRMATIONS_PER_DAY = 5


def _may_mail_confirmation(
    session: Session, follower: Follower, city_id: int, now: datetime
) -> bool:
    if (
        follower.confirm_sent_at is not None
        and follower.confirm_sent_at > now - CONFIRMATION_RESEND
    ):
        return False
    recent = session.scalar(
        sa.select(sa.func.count())
        .select_from(Follower)
        .join(ServiceRequest, ServiceRequest.id == Follower.request_id)
        .where(
            sa.func.lower(Follower.email) == follower.email.lower(),
            ServiceRequest.jurisdiction_id == city_id,
            Follower.confirm_sent_at > now - timedelta(days=1),
        )
    )
    return (recent or 0) < CONFIRMATIONS_PER_DAY


def follow(
    session: Session,
    request: ServiceRequest,
    email: str | None,
    *,
    public_base_url: str | None = None,
    now: datetime | None = None,
) -> FollowResult:
    """Ask to follow ``request``: an unconfirmed follower, and a confirmation link mailed.

    Nothing but that link is sent to the address until it is opened
    (:func:`confirm_follow`); the support and the public "followed" event come then too.
    Following again before confirming mails the link again, at most once per
    :data:`CONFIRMATION_RESEND` (and :data:`CONFIRMATIONS_PER_DAY` per address). An
    address that stopped mail about the request gets no link either: the undo on its
    unsubscribe page turns the updates back on. Whoever asks learns
    nothing of the address (the page is the same whatever it is), and the reporter's own
    address is treated like any other: the reporter keeps their own messages, and gets
    one message per change. Open, public requests only. Without ``public_base_url``
    nothing is mailed.
    """
    address = (email or "").strip() or None
    if address is None:
        raise InvalidInput("Give your e-mail address to follow this report", field="email")
    if len(address) > 254 or not EMAIL_RE.match(address):
        raise InvalidInput(f"{address!r} is not an e-mail address", field="email")
    service = request.service
    if service.private:
        raise InvalidInput("This report cannot be followed", field="request")
    if request.status not in {s.value for s in OPEN_STATUSES}:
        raise InvalidInput(
            f"{request.public_id} is already closed; it can no longer be followed",
            field="request",
        )
    when = now or now_utc()
    follower = session.scalar(
        sa.select(Follower)
        .where(Follower.request_id == request.id, sa.func.lower(Follower.email) == address.lower())
        .with_for_update()
    )
    created = follower is None
    if follower is None:
        follower = Follower(request_id=request.id, email=address, created_at=when)
        session.add(follower)
        session.flush()
    elif follower.confirmed_at is not None and follower.unsubscribed_at is None:
        return FollowResult(follower, created=False)  # already following: nothing to send
    mailed = False
    if public_base_url and _may_mail_confirmation(session, follower, request.jurisdiction_id, when):
        follower.confirm_sent_at = when
        mailed = (
            follow_confirmation(session, request, public_base_url, to_addr=follower.email)
            is not None
        )
    session.flush()
    return FollowResult(follower, created=created, mailed=mailed)


def follow_link_address(session: Session, request: ServiceRequest, token: str) -> str:
    """The address a follow confirmation link for ``request`` was mailed to.

    ``BadLink`` if it was altered or made for another request (except one merged into
    ``request``), ``ExpiredLink`` after :data:`notify.links.FOLLOW_CONFIRM_DAYS`."""
    email, request_id = verify_follow(session, token)
    if request_id != request.id:
        child = session.get(ServiceRequest, request_id)
        if child is None or child.duplicate_of_id != request.id:
            raise BadLink("This link is not valid for this report.")
    return email


def confirm_follow(
    session: Session, request: ServiceRequest, token: str, *, now: datetime | None = None
) -> Follower:
    """Open a follow confirmation link: from now on its address gets ``request``'s updates.

    The link names one address and one request; it is refused (``BadLink``) for any other
    request, except the one it was merged into, and when its follower is gone.
    ``ExpiredLink`` after :data:`notify.links.FOLLOW_CONFIRM_DAYS`. Opening it twice
    changes nothing.
    """
    email = follow_link_address(session, request, token)
    follower = session.scalar(
        sa.select(Follower)
        .where(Follower.request_id == request.id, sa.func.lower(Follower.email) == email)
        .with_for_update()
    )
    if follower is None:
        raise BadLink("This link is no longer valid: ask to follow the report again.")
    when = now or now_utc()
    if follower.confirmed_at is not None and follower.unsubscribed_at is None:
        return follower
    first = follower.confirmed_at is None
    follower.confirmed_at = follower.confirmed_at or when
    follower.unsubscribed_at = None
    resubscribe(session, email, request.id, None, request.jurisdiction_id)
    if first:
        session.add(
            RequestEvent(
                request_id=request.id,
                at=when,
                kind="followed",
                note="Another resident reported this too and is following it",
                public=True,
                actor_label="resident",
            )
        )
    session.flush()
    return follower
