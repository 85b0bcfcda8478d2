"""The small test city (``tests.support.city``) made ready for residents: address points,
crews on the routing rule, and a category without a notice. Used by the resident tests."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from geoalchemy2.shape import from_shape
from shapely.geometry import Point

from places import store
from places.parse import parse_place
from spatial.models import (
    Crew,
    RoutingRule,
    Service,
    ServiceAttribute,
    ServiceRequest,
)
from tests.support.city import BOUNDS, INSIDE, OUTSIDE, make_small_city

__all__ = [
    "ADDRESSES",
    "ADDRESS_IDS",
    "BOUNDS",
    "INSIDE",
    "OUTSIDE",
    "add_request",
    "make_resident_city",
]

# address -> (lon, lat); all inside Testville's square (-118.30..-118.20, 34.00..34.10).
# Written as the city's address file would be imported, so the text is the normalised one.
ADDRESSES = {
    "100 N MAIN ST, 90012": (-118.2500, 34.0500),
    "102 N MAIN ST, 90012": (-118.2502, 34.0502),
    "250 S SPRING ST, 90012": (-118.2450, 34.0480),
    "1500 W 7TH ST, 90017": (-118.2800, 34.0300),
    "777 E VANOWEN AVE, 90021": (-118.2200, 34.0800),
}
# The city's own id of each address point, as its address file gives it.
ADDRESS_IDS = {address: f"TV-{i}" for i, address in enumerate(ADDRESSES, start=1)}


def make_resident_city(session) -> dict:
    """Testville with crews per district, a notice-free category and address points."""
    made = make_small_city(session)
    city, streets = made["city"], made["department"]
    west = Crew(department_id=streets.id, code="W", name="West crew")
    east = Crew(department_id=streets.id, code="E", name="East crew")
    session.add_all([west, east])
    session.flush()
    rule = session.scalar(sa.select(RoutingRule).where(RoutingRule.name == "Potholes by district"))
    rule.crew_id = east.id
    graffiti = Service(
        jurisdiction_id=city.id,
        code="graffiti",
        name="Graffiti",
        group="Clean streets",
        keywords=["tag", "paint", "spray"],
        default_department_id=streets.id,
        sla_hours=48,
        attributes=[
            ServiceAttribute(
                code="surface",
                datatype="singlevaluelist",
                description="What is painted?",
                required=True,
                order=1,
                values=[{"key": "wall", "name": "A wall"}, {"key": "sign", "name": "A sign"}],
            ),
            ServiceAttribute(code="size", datatype="string", description="How big?", order=2),
        ],
    )
    session.add(graffiti)
    session.flush()
    points = store.begin(
        session, city, "addresses", source_name="test", mapping={}, imported_by="test"
    )
    rows = []
    for address, (lon, lat) in ADDRESSES.items():
        parsed = parse_place(address)
        rows.append(
            store.AddressRow(
                lon,
                lat,
                parsed.number,
                parsed.street,
                zip=parsed.zip,
                source_id=ADDRESS_IDS[address],
            )
        )
    store.add_addresses(session, points, rows)
    store.finish(session, points, rows_read=len(rows), rows_bad=0)
    made.update(graffiti=graffiti, west=west, east=east)
    return made


_counter = iter(range(1, 1_000_000))


def add_request(
    session,
    city,
    service,
    lon: float,
    lat: float,
    *,
    status: str = "new",
    days_ago: float = 1,
    description: str | None = None,
) -> ServiceRequest:
    """A stored request as another channel would have left it (no routing)."""
    n = next(_counter)
    req = ServiceRequest(
        jurisdiction_id=city.id,
        public_id=f"TV-OLD-{n:04d}",
        token=f"token-old-{n:04d}-xxxxxxxxxxxxxxxxxxxxxxxx",
        service_id=service.id,
        status=status,
        location=from_shape(Point(lon, lat), srid=4326),
        description=description,
        contact_name="Olga Older",
        contact_email="olga@example.org",
        requested_at=datetime.now().astimezone() - timedelta(days=days_ago),
    )
    session.add(req)
    session.flush()
    return req
