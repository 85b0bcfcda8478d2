"""The resident drops the missing pin: a request that arrived without a usable location.

An e-mail without a place becomes a request with ``needs_location`` set; its auto-reply
links to the tracking page with ``&locate=1`` (:func:`notify.messages.locate_url`), where
the reporter, holding the request's private token, shows the spot on a map or by
address. :func:`set_location_by_resident` then places the pin, fills the address under it
(:func:`places.geocoder.reverse_geocode`), clears ``needs_location``, routes the request again and writes a public event,
all in the caller's transaction. Anything wrong leaves the request as it was.
"""

from __future__ import annotations

import math
import secrets
from datetime import datetime

from geoalchemy2.shape import from_shape
from shapely.geometry import Point
from sqlalchemy.orm import Session

from intake.submit import point_in_city
from notify import messages
from places.geocoder import reverse_geocode
from routing.actions import is_triaged
from routing.engine import route_request
from spatial.errors import CivicpinError, InvalidInput
from spatial.models import OPEN_STATUSES, Jurisdiction, RequestEvent, ServiceRequest, now_utc

RESIDENT_LABEL = "resident"


class LocateRefused(CivicpinError):
    """The request may not be located this way (``reason``: token, located or closed)."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def token_matches(request: ServiceRequest, token: str | None) -> bool:
    """True if ``token`` is the request's private token (compared in constant time)."""
    return bool(token) and secrets.compare_digest(request.token.encode(), token.encode())


def needs_resident_location(request: ServiceRequest) -> bool:
    """Whether the reporter may still drop the pin: no location yet, and still open."""
    open_values = {s.value for s in OPEN_STATUSES}
    return (
        bool(request.needs_location)
        and request.location is None
        and (request.status in open_values)
    )


def check_may_locate(request: ServiceRequest, token: str | None) -> None:
    """Raise :class:`LocateRefused` unless ``token`` may set the location of ``request``."""
    if not token_matches(request, token):
        raise LocateRefused(
            "This link cannot set the location: use the link from your e-mail.", "token"
        )
    if request.location is not None or not request.needs_location:
        raise LocateRefused("This report already has a location.", "located")
    if request.status not in {s.value for s in OPEN_STATUSES}:
        raise LocateRefused(
            "This report is closed, so its location can no longer be changed.", "closed"
        )


def _coordinate(value: object, name: str, limit: float) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or not -limit <= number <= limit:
        raise InvalidInput(
            f"Give the {name} (-{limit:g} to {limit:g}) in decimal degrees", field="location"
        )
    return number


def set_location_by_resident(
    session: Session,
    request: ServiceRequest,
    token: str | None,
    *,
    lon: object,
    lat: object,
    address: str | None = None,
    address_id: str | None = None,
    now: datetime | None = None,
    public_base_url: str | None = None,
) -> ServiceRequest:
    """Place the pin the reporter chose, route the request again, and record it.
    Routed to a crew, it is the crew's new work (its members are told, with
    ``public_base_url``).

    Raises :class:`LocateRefused` (wrong token, already located, closed) or
    :class:`InvalidInput` with ``field="location"`` (not a point, outside the city)
    before anything is written. ``address`` (with ``address_id``, the city's id of an
    address point) is a place the resident picked; without one the pin's address comes
    from reverse geocoding (an address near it, or "near X and Y"). The row is locked, so
    two submissions at once place the pin only once. Nothing is committed here.
    """
    # Lock first, then decide: a second click sent at the same time waits and is refused.
    session.refresh(request, with_for_update=True)
    check_may_locate(request, token)
    lat_f = _coordinate(lat, "latitude", 90)
    lon_f = _coordinate(lon, "longitude", 180)
    city = session.get(Jurisdiction, request.jurisdiction_id)
    if not point_in_city(session, city, lon_f, lat_f):
        raise InvalidInput(
            f"This spot is outside {city.name}. Choose a place inside the city boundary.",
            field="location",
        )
    now = now or now_utc()
    if not address:
        near = reverse_geocode(session, city, lon_f, lat_f)
        address = near.address if near else None
        address_id = near.address_id if near else None
    # A priority a dispatcher set while the request waited survives the new routing.
    kept_priority = request.priority if is_triaged(session, request) else None
    request.location = from_shape(Point(lon_f, lat_f), srid=4326)
    request.address = address
    request.address_id = address_id
    request.needs_location = False
    request.updated_at = now
    session.add(
        RequestEvent(
            request_id=request.id,
            at=now,
            actor_label=RESIDENT_LABEL,
            kind="located",
            to_value=address or f"{lat_f:.5f}, {lon_f:.5f}",
            note="The resident showed where the problem is",
            public=True,
        )
    )
    crew_before = request.crew_id
    route_request(session, request)
    if kept_priority is not None:
        request.priority = kept_priority
    if request.crew_id is not None and request.crew_id != crew_before:
        request.crew_assigned_at = now
        request.crew_acknowledged_at = None
        if public_base_url:
            messages.on_crew_assigned(session, request, None, public_base_url)
    session.flush()
    return request
