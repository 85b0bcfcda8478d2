"""The geocoder on a real city's streets: Cambridge's centrelines with their address
ranges, with truth computed independently with shapely from the same file."""

from __future__ import annotations

import json
import math
import random
from collections import Counter, defaultdict

import pytest
import sqlalchemy as sa
from shapely.geometry import LineString, shape

from places import geocoder as gc
from places.parse import normalise_street
from spatial.db import make_engine, make_sessionmaker
from spatial.models import Jurisdiction
from tests.conftest import _fresh_db
from tests.support.places_city import CENTERLINES, make_cambridge_city


def metres(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Haversine distance; independent of PostGIS."""
    r = 6_371_008.8
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


def _int(v) -> int | None:
    try:
        n = int(float(v))
    except (TypeError, ValueError):
        return None
    return n if n > 0 else None


def _segments() -> list[dict]:
    out = []
    for f in json.loads(CENTERLINES.read_text())["features"]:
        p, g = f["properties"], f.get("geometry")
        if not g or not p.get("Street"):
            continue
        line = shape(g)
        if line.geom_type != "LineString":
            continue
        out.append({"p": p, "line": LineString([c[:2] for c in line.coords])})
    return out


SEGMENTS = _segments()


def range_truth(seed: int = 7, n: int = 300) -> list[tuple[str, float, float]]:
    """Addresses picked from the file's ranges, odd and even, each with the point
    interpolated along its segment by shapely; only numbers one segment side holds."""
    holders: dict[tuple[str, int], int] = defaultdict(int)
    sides = []
    for seg in SEGMENTS:
        p = seg["p"]
        for f, t in ((p.get("L_From"), p.get("L_To")), (p.get("R_From"), p.get("R_To"))):
            f, t = _int(f), _int(t)
            if f is None or t is None:
                continue
            sides.append((seg, f, t))
            for num in range(min(f, t), max(f, t) + 1, 2 if f % 2 == t % 2 else 1):
                holders[(normalise_street(p["Street"]).name, num)] += 1
    rnd = random.Random(seed)
    rnd.shuffle(sides)
    out = []
    for seg, f, t in sides:
        lo, hi = min(f, t), max(f, t)
        step = 2 if f % 2 == t % 2 else 1
        num = rnd.randrange(lo, hi + 1, step) if hi > lo else lo
        name = normalise_street(seg["p"]["Street"]).name
        if holders[(name, num)] != 1:
            continue
        frac = 0.5 if f == t else (num - f) / (t - f)
        pt = seg["line"].interpolate(frac, normalized=True)
        out.append((f"{num} {seg['p']['Street']}", pt.x, pt.y))
        if len(out) >= n:
            break
    return out


def intersection_truth() -> dict[tuple[str, str], list[tuple[float, float]]]:
    """Pairs of differently named streets whose segments share a node: their points.

    A node's point is the segment end most of its segments have in common; a street
    counts at a node only when one of its segments ends within 2 m of that point (a few
    of the file's node ids are wrong: "North First St" is listed at a node 1 km away).
    """
    at: dict[float, list[tuple[str, tuple, tuple]]] = defaultdict(list)
    for seg in SEGMENTS:
        p, coords = seg["p"], list(seg["line"].coords)
        for node in (p.get("FromNode"), p.get("ToNode")):
            if node is not None:
                at[node].append((p["Street"], coords[0], coords[-1]))
    pairs: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for segs in at.values():
        (xy, count), *_ = Counter(e for _, a, b in segs for e in {a, b}).most_common(1)
        if count < 2:
            continue
        names = sorted({n for n, a, b in segs if min(metres(*a, *xy), metres(*b, *xy)) <= 2.0})
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                if normalise_street(a).core != normalise_street(b).core:
                    pairs[(a, b)].append(xy)
    return pairs


@pytest.fixture(scope="module")
def cam(pg):
    """A module-wide database with Cambridge's streets loaded (read-only tests)."""
    name, url = _fresh_db(pg, "civicpin_template", "geo")
    eng = make_engine(url, poolclass=sa.pool.NullPool)
    maker = make_sessionmaker(eng)
    with maker() as s:
        make_cambridge_city(s, lights=False)
        s.commit()
    yield maker
    eng.dispose()
    pg.drop_db(name)


def _city(s) -> Jurisdiction:
    return s.scalars(sa.select(Jurisdiction).where(Jurisdiction.slug == "cambridge")).one()


def test_range_addresses_land_within_25_m_of_the_shapely_point(cam):
    truth = range_truth()
    assert len(truth) >= 250
    misses, unsure = [], []
    with cam() as s:
        city = _city(s)
        for text, lon, lat in truth:
            got = gc.geocode(s, city, text)
            best = got.candidates[0] if got.candidates else None
            if best is None or metres(best.lon, best.lat, lon, lat) > 25:
                misses.append((text, best))
            if got.confident is None:
                unsure.append((text, got.candidates[:2]))
    print(f"range: {len(truth) - len(misses)}/{len(truth)} within 25 m; unsure {len(unsure)}")
    print(misses[:10], unsure[:10])
    assert len(misses) <= len(truth) // 100
    assert len(unsure) <= len(truth) // 50


def test_every_intersection_within_30_m_of_a_shared_node(cam):
    pairs = intersection_truth()
    assert len(pairs) > 1000
    misses = []
    forms = ["{a} & {b}", "{b} and {a}", "{a} at {b}", "corner of {b} and {a}", "{a} / {b}"]
    with cam() as s:
        city = _city(s)
        for k, ((a, b), points) in enumerate(sorted(pairs.items())):
            got = gc.geocode(s, city, forms[k % len(forms)].format(a=a, b=b))
            best = got.candidates[0] if got.candidates else None
            if (
                best is None
                or best.match_type != "intersection"
                or min(metres(best.lon, best.lat, x, y) for x, y in points) > 30
            ):
                misses.append((a, b, best))
    print(f"intersections: {len(pairs) - len(misses)}/{len(pairs)}")
    assert misses == []
