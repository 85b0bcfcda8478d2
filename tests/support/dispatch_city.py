"""The small test city with what dispatch, crews and call-takers need: two departments,
crews that own the district zones, a staff user per role, a response template."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from intake.submit import Draft, submit
from spatial.accounts import create_user
from spatial.models import (
    Crew,
    Department,
    ResponseTemplate,
    RoutingRule,
    ServiceRequest,
    User,
)
from tests.support.city import make_small_city

PASSWORD = "correct horse battery"
BASE_URL = "http://127.0.0.1:5000"
# (lat, lon) inside the west and the east district of testville
WEST = (34.05, -118.28)
EAST = (34.05, -118.22)

ROLES = {
    "agent": dict(role="agent"),
    "dispatcher": dict(role="dispatcher"),
    "crew": dict(role="crew", crew="streets-W"),
    "crew_other": dict(role="crew", crew="streets-E"),
    "planner": dict(role="planner"),
    "admin": dict(role="admin"),
    "parks_dispatcher": dict(role="dispatcher", department="parks"),
}


@dataclass
class DispatchCity:
    city_id: int
    slug: str
    streets_id: int
    parks_id: int
    crew_w_id: int
    crew_e_id: int
    parks_crew_id: int
    pothole_id: int
    private_id: int
    template_id: int
    users: dict[str, int]


def make_dispatch_city(session) -> DispatchCity:
    """testville + crews ``streets-W``/``streets-E`` (potholes go to the zone's crew), a
    Parks department with one crew, one staff user per entry of ``ROLES``
    (``<key>@city.example``), and a response template."""
    base = make_small_city(session)
    city, streets = base["city"], base["department"]
    parks = Department(jurisdiction_id=city.id, code="parks", name="Parks")
    session.add(parks)
    session.flush()
    crew_w = Crew(department_id=streets.id, code="streets-W", name="West crew")
    crew_e = Crew(department_id=streets.id, code="streets-E", name="East crew")
    parks_crew = Crew(department_id=parks.id, code="parks-1", name="Park rangers")
    session.add_all([crew_w, crew_e, parks_crew])
    session.flush()
    rule = session.scalar(sa.select(RoutingRule).where(RoutingRule.name == "Potholes by district"))
    rule.crew_from_zone = True
    template = ResponseTemplate(
        jurisdiction_id=city.id,
        name="Scheduled",
        body="Thank you. {service} {public_id} is scheduled for repair within 3 days.",
    )
    session.add(template)
    session.flush()
    crews = {"streets-W": crew_w.id, "streets-E": crew_e.id}
    departments = {"parks": parks.id}
    users = {}
    for key, spec in ROLES.items():
        user, _ = create_user(
            session,
            email=f"{key}@city.example",
            role=spec["role"],
            city_slug=city.slug,
            name=key.replace("_", " ").title(),
            password=PASSWORD,
        )
        if "crew" in spec:
            user.crews.append(session.get(Crew, crews[spec["crew"]]))
        if "department" in spec:
            user.departments.append(session.get(Department, departments[spec["department"]]))
        users[key] = user.id
    session.flush()
    return DispatchCity(
        city_id=city.id,
        slug=city.slug,
        streets_id=streets.id,
        parks_id=parks.id,
        crew_w_id=crew_w.id,
        crew_e_id=crew_e.id,
        parks_crew_id=parks_crew.id,
        pothole_id=base["pothole"].id,
        private_id=base["private"].id,
        template_id=template.id,
        users=users,
    )


def report(
    session,
    media_dir: Path,
    *,
    where: tuple[float, float] = WEST,
    email: str | None = "resident@example.org",
    channel: str = "web",
    description: str = "Deep pothole in the right lane",
    address: str | None = "100 Main St",
    **kw,
) -> ServiceRequest:
    """A pothole report through the real ``intake.submit``."""
    draft = Draft(
        city="testville",
        service_code="pothole",
        lat=where[0],
        lon=where[1],
        attributes={"depth": "12"},
        description=description,
        address=address,
        contact_name="Rosa Resident" if email else None,
        contact_email=email,
        channel=channel,
        **kw,
    )
    return submit(session, draft, media_dir=media_dir, public_base_url=BASE_URL).request


def user(session, key: str) -> User:
    return session.scalar(sa.select(User).where(User.email == f"{key}@city.example"))


def login(client, key: str) -> None:
    """Sign ``<key>@city.example`` in through the real login form."""
    html = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    res = client.post(
        "/login",
        data={"email": f"{key}@city.example", "password": PASSWORD, "csrf_token": token},
    )
    assert res.status_code == 302, res.get_data(as_text=True)


def csrf_from(client, path: str) -> str:
    html = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, f"no CSRF token on {path}"
    return match.group(1)
