"""A small hand-made city for tests that need one without the 10,000-request demo."""

from __future__ import annotations

from geoalchemy2.shape import from_shape
from shapely.geometry import MultiPolygon, box

from spatial.models import (
    Department,
    Jurisdiction,
    RoutingRule,
    RuleSet,
    Service,
    ServiceAttribute,
    Zone,
    ZoneLayer,
)

# A 0.1 x 0.1 degree square in downtown Los Angeles, split in a west and an east zone.
BOUNDS = (-118.30, 34.00, -118.20, 34.10)
INSIDE = (34.05, -118.25)  # (lat, lon)
OUTSIDE = (34.30, -118.60)


def make_small_city(session, slug: str = "testville") -> dict:
    west, south, east, north = BOUNDS
    city = Jurisdiction(
        slug=slug,
        name="Testville",
        timezone="America/Los_Angeles",
        metric_srid=32611,
        public_id_prefix="TV",
        boundary=from_shape(MultiPolygon([box(*BOUNDS)]), srid=4326),
    )
    session.add(city)
    session.flush()
    streets = Department(jurisdiction_id=city.id, code="streets", name="Streets")
    session.add(streets)
    session.flush()
    layer = ZoneLayer(jurisdiction_id=city.id, name="districts", version=1, is_current=True)
    session.add(layer)
    session.flush()
    mid = (west + east) / 2
    session.add_all(
        [
            Zone(
                layer_id=layer.id,
                code="W",
                name="West",
                geom=from_shape(MultiPolygon([box(west, south, mid, north)]), srid=4326),
            ),
            Zone(
                layer_id=layer.id,
                code="E",
                name="East",
                geom=from_shape(MultiPolygon([box(mid, south, east, north)]), srid=4326),
            ),
        ]
    )
    pothole = Service(
        jurisdiction_id=city.id,
        code="pothole",
        name="Pothole",
        group="Streets",
        default_department_id=streets.id,
        sla_hours=72,
        notice="Small potholes are usually fixed within three days.",
        attributes=[
            ServiceAttribute(
                code="depth",
                datatype="number",
                description="How deep (cm)?",
                required=True,
                order=1,
            ),
            ServiceAttribute(
                code="lane",
                datatype="singlevaluelist",
                description="Which lane?",
                required=False,
                order=2,
                values=[{"key": "left", "name": "Left"}, {"key": "right", "name": "Right"}],
            ),
            ServiceAttribute(
                code="hazards",
                datatype="multivaluelist",
                description="Hazards nearby",
                order=3,
                values=[{"key": "water", "name": "Water"}, {"key": "traffic", "name": "Traffic"}],
            ),
            ServiceAttribute(code="seen", datatype="datetime", description="When seen?", order=4),
        ],
    )
    secret = Service(
        jurisdiction_id=city.id,
        code="abuse",
        name="Abuse report",
        private=True,
        contact_required=True,
        default_department_id=streets.id,
    )
    session.add_all([pothole, secret])
    session.flush()
    rs = RuleSet(jurisdiction_id=city.id, version=1, status="published")
    rs.rules = [
        RoutingRule(
            position=1,
            name="Potholes by district",
            service_id=pothole.id,
            layer_name="districts",
            department_id=streets.id,
        ),
    ]
    session.add(rs)
    session.flush()
    return {
        "city": city,
        "department": streets,
        "pothole": pothole,
        "private": secret,
        "layer": layer,
    }
