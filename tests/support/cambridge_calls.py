"""Cambridge with its streets, ready for the channels that take addresses: a Street
Lights department and category, a call-taker and an e-mail intake address; and the
independent truth of a range address, interpolated with shapely from the centrelines."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import cache

import shapely
from shapely.geometry import shape

from spatial.accounts import create_user
from spatial.models import Department, Service
from spatial.models_mail import MailAddress, MailConfig
from tests.support.dispatch_city import PASSWORD
from tests.support.places_city import CENTERLINES, make_cambridge_city

INTAKE = "311@cambridge.example"
DISPATCH = "dispatch@cambridge.example"
AGENT = "calls@cambridge.example"  # the call-taker (role agent), password PASSWORD


@dataclass(frozen=True)
class CambridgeCalls:
    city_id: int
    slug: str
    service_id: int
    service_code: str


def make_cambridge_calls(session) -> CambridgeCalls:
    """Cambridge (streets, no lights) with a "streetlight" category that needs a place,
    its department, the call-taker :data:`AGENT` and the intake address :data:`INTAKE`."""
    city = make_cambridge_city(session, lights=False)
    dept = Department(jurisdiction_id=city.id, code="lights", name="Street Lights")
    session.add(dept)
    session.flush()
    service = Service(
        jurisdiction_id=city.id,
        code="streetlight",
        name="Street light out",
        default_department_id=dept.id,
    )
    session.add(service)
    session.flush()
    session.add_all(
        [
            MailAddress(jurisdiction_id=city.id, address=INTAKE, service_id=service.id),
            MailConfig(
                jurisdiction_id=city.id,
                dispatch_email=DISPATCH,
                reply_limit_per_hour=5,
                accept_limit_per_hour=30,
            ),
        ]
    )
    create_user(
        session,
        email=AGENT,
        role="agent",
        city_slug=city.slug,
        name="Carla Calltaker",
        password=PASSWORD,
    )
    session.flush()
    return CambridgeCalls(city.id, city.slug, service.id, service.code)


def login_as(client, email: str) -> None:
    """Sign ``email`` in through the real login form."""
    html = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    res = client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
    assert res.status_code == 302, res.get_data(as_text=True)


@cache
def _segments() -> list[dict]:
    return json.loads(CENTERLINES.read_text())["features"]


def range_truth(street: str, number: int) -> tuple[float, float]:
    """(lat, lon) of ``number`` on the centreline labelled ``street`` ("Cambridge St"):
    the segment whose range on the number's side (odd or even) holds it, interpolated
    linearly along the line from the range's first number."""
    for f in _segments():
        p = f["properties"]
        if (p.get("Street") or "").upper() != street.upper() or not f.get("geometry"):
            continue
        for lo, hi in ((p.get("L_From"), p.get("L_To")), (p.get("R_From"), p.get("R_To"))):
            try:
                lo, hi = int(lo), int(hi)
            except (TypeError, ValueError):
                continue
            if lo <= 0 or hi <= 0 or lo % 2 != number % 2:
                continue
            if min(lo, hi) <= number <= max(lo, hi):
                line = shapely.line_merge(shape(f["geometry"]))
                share = 0.0 if hi == lo else (number - lo) / (hi - lo)
                pt = line.interpolate(share, normalized=True)
                return pt.y, pt.x
    raise LookupError(f"no segment of {street} holds {number}")


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    """The distance between two (lat, lon) points, on a sphere (enough within a city)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6_371_000 * math.asin(math.sqrt(h))


def intersection_truth(a: str, b: str) -> tuple[float, float]:
    """(lat, lon) of the node that centrelines labelled ``a`` and ``b`` share."""

    def ends(label: str) -> set[tuple[float, float]]:
        out = set()
        for f in _segments():
            if (f["properties"].get("Street") or "").upper() == label.upper() and f["geometry"]:
                line = shapely.line_merge(shape(f["geometry"]))
                for x, y, *_ in (line.coords[0], line.coords[-1]):
                    out.add((round(y, 7), round(x, 7)))
        return out

    shared = sorted(ends(a) & ends(b))
    if not shared:
        raise LookupError(f"{a} and {b} share no node")
    return shared[0]
