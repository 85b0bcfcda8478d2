"""Possible duplicates of a report about to be made, and following one instead.

Before submitting, a resident sees the open requests of the same category near the pin
from the last 30 days (:func:`find_duplicates`). They can follow one of them
(:func:`follow`): their e-mail is subscribed to its updates, the request gets a public
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

from notify.outbox import enqueue
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
        SELECT r.id, r.public_id, r.status, r.requested_at, r.address, r.description,
               r.location, r.jurisdiction_id, r.service_id, r.duplicate_of_id
        FROM service_request r
        WHERE r.location && (SELECT ST_MakeEnvelope(:minlon, :minlat, :maxlon, :maxlat, 4326))
          AND r.{OPEN_LOCATION_PREDICATE}
    )
    SELECT r.id, r.public_id, r.status, r.requested_at, r.address, r.description,
           ST_Distance(r.location::geography, pt.g::geography) AS distance_m,
           (SELECT p.thumb_key FROM photo p
             WHERE p.request_id = r.id AND p.stage = 'report'
             ORDER BY p.id LIMIT 1) AS thumb_key,
           (SELECT count(*) FROM follower f
             WHERE f.request_id = r.id) AS supporters
    FROM boxed r, pt
    WHERE r.jurisdiction_id = :jid
      AND r.service_id = :service_id
      AND r.requested_at >= :since
      AND r.duplicate_of_id IS NULL
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
) -> dict:
    """The parameters of the duplicate search (:data:`DUPLICATES_SQL`, or
    :data:`DUPLICATES_COLUMN` with ``search_duplicates``: false for a private category
    or one of another city, which are never searched)."""
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
    """How many residents follow ``request`` (each follow counts as support)."""
    return int(
        session.scalar(
            sa.select(sa.func.count())
            .select_from(Follower)
            .where(Follower.request_id == request.id)
        )
        or 0
    )


def follow(
    session: Session,
    request: ServiceRequest,
    email: str | None,
    *,
    public_base_url: str | None = None,
    now: datetime | None = None,
) -> FollowResult:
    """Subscribe ``email`` to ``request``'s updates and count it as support.

    Writes a :class:`Follower` row and a public "followed" event (which never names the
    follower) in the caller's transaction; with ``public_base_url`` a confirmation goes to
    the outbox. Following again with the same e-mail changes nothing (and re-subscribes
    an address that had unsubscribed). Open, public requests only.
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
    existing = session.scalar(
        sa.select(Follower).where(
            Follower.request_id == request.id, sa.func.lower(Follower.email) == address.lower()
        )
    )
    if existing is not None:
        if existing.unsubscribed_at is not None:
            existing.unsubscribed_at = None
            session.flush()
        return FollowResult(existing, created=False)
    when = now or now_utc()
    follower = Follower(request_id=request.id, email=address, created_at=when)
    session.add(follower)
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
    if public_base_url:
        city = session.get(Jurisdiction, request.jurisdiction_id)
        enqueue(
            session,
            kind="follow_confirmation",
            to_addr=address,
            subject=f"[{request.public_id}] You are following: {service.name}",
            body_text=(
                f"You are now following report {request.public_id} ({service.name}) "
                f"in {city.name}.\n"
                "We will e-mail you when its status changes.\n\n"
                f"See it here: {public_base_url}/requests/{request.public_id}\n"
            ),
            public_base_url=public_base_url,
            request=request,
        )
    session.flush()
    return FollowResult(follower, created=True)
