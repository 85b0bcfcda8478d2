"""A tiny city for the map page tests: a square, two zone layers, public and private pins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from geoalchemy2.shape import from_shape
from shapely.geometry import MultiPolygon, Point, box

from spatial.models import Department, Jurisdiction, Service, ServiceRequest, Zone, ZoneLayer

CITY_NAME = "Squareville"
SLUG = "squareville"
BOUNDS = (-118.30, 34.00, -118.20, 34.10)
# A zone name that would break out of folium's inline script if it were not escaped.
HOSTILE_ZONE_NAME = "East</script><script>alert('pwned')</script>"
CONTACT_EMAIL = "resident@example.org"
CONTACT_PHONE = "+1 555 0100"
CONTACT_NAME = "Rita Resident"

# public_id -> (lon, lat, status, private?)
REQUESTS = {
    "SQ-1": (-118.25, 34.05, "new", False),
    "SQ-2": (-118.22, 34.08, "in_progress", False),
    "SQ-3": (-118.28, 34.02, "resolved", False),
    "SQ-4": (-118.21, 34.01, "closed", False),
    "SQ-P": (-118.24, 34.06, "new", True),
}
# Holds SQ-1 and SQ-2 (and the private SQ-P) but not SQ-3 or SQ-4.
BBOX = (-118.27, 34.03, -118.215, 34.09)


def _multi(minx: float, miny: float, maxx: float, maxy: float):
    return from_shape(MultiPolygon([box(minx, miny, maxx, maxy)]), srid=4326)


def make_map_city(session) -> Jurisdiction:
    """Add the city with its zones, services and requests; commits."""
    west, south, east, north = BOUNDS
    mid = (west + east) / 2
    city = Jurisdiction(
        slug=SLUG,
        name=CITY_NAME,
        timezone="America/Los_Angeles",
        public_id_prefix="SQ",
        boundary=_multi(*BOUNDS),
    )
    session.add(city)
    session.flush()
    wards = ZoneLayer(jurisdiction_id=city.id, name="wards", title="Wards")
    crews = ZoneLayer(jurisdiction_id=city.id, name="crew-districts", title="Crew districts")
    old = ZoneLayer(
        jurisdiction_id=city.id, name="wards", title="Old wards", version=0, is_current=False
    )
    session.add_all([wards, crews, old])
    session.flush()
    session.add_all(
        [
            Zone(layer_id=wards.id, code="W", name="West", geom=_multi(west, south, mid, north)),
            Zone(
                layer_id=wards.id,
                code="E",
                name=HOSTILE_ZONE_NAME,
                geom=_multi(mid, south, east, north),
            ),
            Zone(layer_id=crews.id, code="ALL", name="Whole city", geom=_multi(*BOUNDS)),
            Zone(layer_id=old.id, code="OLD", name="Retired ward", geom=_multi(*BOUNDS)),
        ]
    )
    dept = Department(jurisdiction_id=city.id, code="streets", name="Streets")
    session.add(dept)
    session.flush()
    pothole = Service(
        jurisdiction_id=city.id, code="pothole", name="Pothole", default_department_id=dept.id
    )
    welfare = Service(
        jurisdiction_id=city.id,
        code="welfare",
        name="Welfare check",
        private=True,
        default_department_id=dept.id,
    )
    session.add_all([pothole, welfare])
    session.flush()
    start = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
    for i, (public_id, (lon, lat, status, private)) in enumerate(REQUESTS.items()):
        session.add(
            ServiceRequest(
                jurisdiction_id=city.id,
                public_id=public_id,
                token=f"token-{public_id}",
                service_id=(welfare if private else pothole).id,
                status=status,
                location=from_shape(Point(lon, lat), srid=4326),
                description="secret description " + public_id,
                contact_name=CONTACT_NAME,
                contact_email=CONTACT_EMAIL,
                contact_phone=CONTACT_PHONE,
                requested_at=start + timedelta(days=i),
                department_id=dept.id,
            )
        )
    session.commit()
    return city
