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
from places import store
from places.parse import normalise_street
from spatial.db import make_engine, make_sessionmaker
from spatial.models import Jurisdiction
from tests.conftest import _fresh_db
from tests.support.city import make_small_city
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
NAMES = {normalise_street(seg["p"]["Street"]).name for seg in SEGMENTS}


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
        # Along the segment in metres: a degree of longitude here is 0.74 of one of
        # latitude, so the line is scaled to equal units before it is measured.
        k = math.cos(math.radians(seg["line"].centroid.y))
        flat = LineString([(x * k, y) for x, y in seg["line"].coords])
        pt = flat.interpolate(frac, normalized=True)
        out.append((f"{num} {seg['p']['Street']}", pt.x / k, pt.y))
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
                if normalise_street(a).name != normalise_street(b).name:
                    pairs[(a, b)].append(xy)
    return pairs


# An address-point city: a few points as a city's address file gives them (downtown
# Los Angeles), with the city's own ids; two streets named ELM a kilometre apart.
POINTS = [
    ("A-100", 1111, None, "S Figueroa St", "90015", -118.2673, 34.0430),
    ("A-101", 12, "A", "W 5th St", "90013", -118.2510, 34.0470),
    ("A-102", 200, None, "N Spring St", "90012", -118.2430, 34.0540),
    ("A-103", 12, None, "Elm St", "90012", -118.2400, 34.0600),
    ("A-104", 12, None, "Elm Ave", "90013", -118.2500, 34.0700),
    ("A-105", 14, None, "Elm St", "90012", -118.2401, 34.0601),
]


@pytest.fixture(scope="module")
def cam(pg):
    """A module-wide database with Cambridge's streets loaded, and an address-point
    city "pointville" (read-only tests)."""
    name, url = _fresh_db(pg, "civicpin_template", "geo")
    eng = make_engine(url, poolclass=sa.pool.NullPool)
    maker = make_sessionmaker(eng)
    with maker() as s:
        make_cambridge_city(s, lights=False)
        make_small_city(s, slug="pointville")
        city = s.scalars(sa.select(Jurisdiction).where(Jurisdiction.slug == "pointville")).one()
        city.name = "City of Los Angeles"
        dataset = store.begin(
            s, city, "addresses", source_name="points.csv", mapping={}, imported_by="test"
        )
        store.add_addresses(
            s,
            dataset,
            [
                store.AddressRow(
                    lon=lon,
                    lat=lat,
                    number=num,
                    number_suffix=suffix,
                    street=normalise_street(street),
                    zip=zip_code,
                    source_id=sid,
                )
                for sid, num, suffix, street, zip_code, lon, lat in POINTS
            ],
        )
        store.finish(s, dataset, rows_read=len(POINTS), rows_bad=0)
        s.commit()
    yield maker
    eng.dispose()
    pg.drop_db(name)


def _city(s, slug: str = "cambridge") -> Jurisdiction:
    return s.scalars(sa.select(Jurisdiction).where(Jurisdiction.slug == slug)).one()


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


def _misspell(word: str) -> str:
    """One letter doubled in the middle of the name: "CAMBRIIDGE"."""
    i = len(word) // 2
    return word[:i] + word[i] + word[i:]


def test_no_confident_answer_is_placed_more_than_100_m_from_the_truth(cam):
    """Misspellings, missing and wrong types, wrong ZIPs and other cities: the geocoder
    may be unsure, but when it is sure it is right."""
    truth = range_truth(seed=11, n=120)
    wrong, confident_kinds = [], defaultdict(int)
    with cam() as s:
        city = _city(s)
        for text, lon, lat in truth:
            number, street = text.split(" ", 1)
            parsed = normalise_street(street)
            variants = {
                "misspelt": f"{number} {_misspell(street.split()[0])} {' '.join(street.split()[1:])}",
                "no type": f"{number} {parsed.core}",
                "wrong type": f"{number} {parsed.core} {'Ave' if parsed.type != 'AVE' else 'St'}",
                "wrong zip": f"{text}, Cambridge, MA 02101",
                "other city": f"{text}, Boston, MA 02129",
                "zip of nowhere": f"{text} 99999",
            }
            if normalise_street(variants["wrong type"].split(" ", 1)[1]).name in NAMES:
                del variants["wrong type"]  # another real street: a right answer elsewhere
            for kind, query in variants.items():
                best = gc.geocode(s, city, query).confident
                if best is None:
                    continue
                confident_kinds[kind] += 1
                if metres(best.lon, best.lat, lon, lat) > 100:
                    wrong.append((kind, query, best))
    print("confident by kind:", dict(confident_kinds))
    assert wrong == []
    # Wrong ZIPs and other cities are never sure; a doubled letter usually is.
    assert confident_kinds["wrong zip"] == confident_kinds["other city"] == 0
    assert confident_kinds["zip of nowhere"] == 0
    assert confident_kinds["misspelt"] > len(truth) // 2


def test_an_address_in_another_city_is_not_confident(cam):
    with cam() as s:
        city = _city(s)
        got = gc.geocode(s, city, "100 Main St, Boston, MA 02129")
        assert got.candidates  # Cambridge has a Main St: offered, not chosen
        assert got.confident is None
        assert gc.geocode(s, city, "1400 Cambridge St, Boston, MA 02129").confident is None
        # The same address in Cambridge's own words is confident.
        best = gc.geocode(s, city, "1400 Cambridge St, Cambridge, MA 02139").confident
        assert best is not None and best.address == "1400 CAMBRIDGE ST, 02139"
        assert gc.geocode(s, city, "1400 Cambridge St, City of Cambridge").confident == best


def test_a_street_alone_or_a_number_outside_every_range_is_never_confident(cam):
    with cam() as s:
        city = _city(s)
        for text in ("Cambridge St", "cambridge street", "99999 Cambridge St"):
            got = gc.geocode(s, city, text)
            assert got.candidates, text
            assert got.candidates[0].match_type == "street"
            assert got.confident is None, text


def test_a_misspelt_street_finds_the_street_and_names_it(cam):
    with cam() as s:
        city = _city(s)
        got = gc.geocode(s, city, "1000 Masachusetts Avenue")
        best = got.candidates[0]
        assert best.match_type == "range"
        assert best.address.startswith("1000 MASSACHUSETTS AVE")
        # "Mass Ave" is how people in Cambridge say it.
        got = gc.geocode(s, city, "Mass Ave and Prospect St")
        assert got.candidates[0].match_type == "intersection"
        assert got.candidates[0].address in (
            "MASSACHUSETTS AVE & PROSPECT ST",
            "PROSPECT ST & MASSACHUSETTS AVE",
        )


def test_the_address_points_of_a_city_file_with_their_ids(cam):
    with cam() as s:
        city = _city(s, "pointville")
        got = gc.geocode(s, city, "1111 S Figueroa St, Los Angeles, CA 90015")
        best = got.confident
        assert best is not None
        assert (best.match_type, best.address_id) == ("address_point", "A-100")
        assert best.address == "1111 S FIGUEROA ST, 90015"
        assert (round(best.lon, 4), round(best.lat, 4)) == (-118.2673, 34.043)
        # ", Los Angeles" is the city, never a street called Los Angeles.
        assert all("LOS ANGELES" not in c.address for c in got.candidates)
        # A unit and the number's suffix are no obstacle.
        assert gc.geocode(s, city, "12A West Fifth Street #4").confident.address_id == "A-101"
        # "12 Elm": ELM ST and ELM AVE both hold 12, a kilometre apart: ask.
        elm = gc.geocode(s, city, "12 Elm")
        assert {c.address_id for c in elm.candidates} >= {"A-103", "A-104"}
        assert elm.confident is None
        assert gc.geocode(s, city, "12 Elm Ave").confident.address_id == "A-104"
        # A ZIP that is not the point's makes it unsure.
        assert gc.geocode(s, city, "200 N Spring St 90015").confident is None
        assert gc.geocode(s, city, "200 N Spring St 90012").confident.address_id == "A-102"
        # The city's own id, as Open311's address_id.
        by_id = gc.address_by_id(s, city, "A-102")
        assert (by_id.address, by_id.score, by_id.match_type) == (
            "200 N SPRING ST, 90012",
            1.0,
            "address_point",
        )
        assert gc.address_by_id(s, city, "A-999") is None
        assert gc.address_by_id(s, _city(s), "A-102") is None  # another city's id


def test_reverse_geocoding_a_point_beside_an_address_point(cam):
    with cam() as s:
        city = _city(s, "pointville")
        # About 20 m north-east of 200 N Spring St.
        got = gc.reverse_geocode(s, city, -118.24285, 34.05415)
        assert (got.match_type, got.address_id) == ("address_point", "A-102")
        assert got.address == "200 N SPRING ST, 90012"
        assert 10 < got.distance_m < 30
        # Too far from every address and without streets: nothing to say.
        assert gc.reverse_geocode(s, city, -118.2200, 34.0900) is None


def _left_offset(line: LineString, frac: float, m: float) -> tuple[float, float]:
    """The point ``m`` metres to the left of ``line`` at ``frac`` of its length."""
    a = line.interpolate(max(0.0, frac - 0.01), normalized=True)
    b = line.interpolate(min(1.0, frac + 0.01), normalized=True)
    mid = line.interpolate(frac, normalized=True)
    kx = 111_320.0 * math.cos(math.radians(mid.y))
    dx, dy = (b.x - a.x) * kx, (b.y - a.y) * 111_320.0
    norm = math.hypot(dx, dy)
    return mid.x + (-dy / norm) * m / kx, mid.y + (dx / norm) * m / 111_320.0


def test_reverse_geocoding_interpolates_the_number_on_the_side_of_the_point(cam):
    # Long segments with both sides numbered, odd on one side and even on the other.
    picks = []
    for seg in SEGMENTS:
        p = seg["p"]
        lf, lt, rf, rt = (_int(p.get(k)) for k in ("L_From", "L_To", "R_From", "R_To"))
        if None in (lf, lt, rf, rt) or lf % 2 == rf % 2 or abs(lt - lf) < 20:
            continue
        if seg["line"].length < 0.001:
            continue
        picks.append((seg, lf, lt, rf, rt))
    assert len(picks) > 20
    with cam() as s:
        city = _city(s)
        for seg, lf, lt, rf, rt in picks[:20]:
            name = normalise_street(seg["p"]["Street"]).name
            for side, (f, t), m in (("left", (lf, lt), 8.0), ("right", (rf, rt), -8.0)):
                lon, lat = _left_offset(seg["line"], 0.5, m)
                got = gc.reverse_geocode(s, city, lon, lat)
                assert got is not None and got.match_type == "range", (name, side, got)
                number = int(got.address.split()[0])
                expected = f + (t - f) * 0.5
                assert number % 2 == f % 2, (name, side, got.address)
                assert abs(number - expected) <= 2, (name, side, got.address, expected)
                assert got.address.split(",")[0] == f"{number} {name}"


def test_reverse_geocoding_a_street_without_numbers_says_near_what(cam):
    # A segment without any range whose street meets another one.
    pairs = intersection_truth()
    with cam() as s:
        city = _city(s)
        for seg in SEGMENTS:
            p = seg["p"]
            if any(_int(p.get(k)) for k in ("L_From", "L_To", "R_From", "R_To")):
                continue
            street = p["Street"]
            if not any(street in pair for pair in pairs):
                continue
            mid = seg["line"].interpolate(0.5, normalized=True)
            got = gc.reverse_geocode(s, city, mid.x, mid.y)
            if got is None or got.match_type != "near":
                continue  # a numbered street passes closer
            name = normalise_street(street).name
            assert got.address.startswith(f"near {name} and "), got
            cross = got.address.split(" and ", 1)[1]
            assert cross != name
            assert got.distance_m < 1.0
            break
        else:
            pytest.fail("no un-numbered street found")


def test_one_statement_per_look_up(cam):
    statements = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    with cam() as s:
        city = _city(s)
        s.connection()  # the transaction is open before counting
        sa.event.listen(s.get_bind(), "before_cursor_execute", count)
        try:
            for text in (
                "1000 Massachusetts Ave, Cambridge, MA 02138",
                "Mass Ave & Prospect St",
                "Cambridge St",
                "99999 Nowhere Rd",
            ):
                statements.clear()
                gc.geocode(s, city, text)
                assert len(statements) == 1, text
            statements.clear()
            gc.reverse_geocode(s, city, -71.1190, 42.3736)
            assert len(statements) == 1
        finally:
            sa.event.remove(s.get_bind(), "before_cursor_execute", count)


@pytest.mark.parametrize(
    "text, message",
    [
        ("x" * 10_000, "too long"),
        ("12 Elm St\x00", "control characters"),
        ("12 Elm\x1b[31m St", "control characters"),
        (None, "Type an address"),
    ],
)
def test_text_that_cannot_be_looked_up_is_refused(cam, text, message):
    with cam() as s:
        with pytest.raises(gc.GeocodeRefused) as exc:
            gc.geocode(s, _city(s), text)
    assert message in str(exc.value)
    assert exc.value.field == "address"


def test_whitespace_is_collapsed_and_nonsense_finds_nothing(cam):
    assert gc.check_text("  12   Elm\tSt \n") == "12 Elm St"
    with cam() as s:
        got = gc.geocode(s, _city(s), "qqqq zzzz xxxx")
        assert got.candidates == [] and got.confident is None
