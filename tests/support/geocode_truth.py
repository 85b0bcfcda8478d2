"""Truth for the geocoder's accuracy, built from the raw files with shapely alone.

Nothing here imports ``places``: the points come straight from the published geometry, so
the accuracy test and ``bench/geocode_bench.py`` measure the geocoder against an
independent answer.

Cambridge (``tests/data/cambridge/TRANS_Centerlines.geojson``):

- Range addresses. Every segment side with a real range (``L_From``/``L_To`` or
  ``R_From``/``R_To`` both > 0) gives its first number, its last number and one in the
  middle of the same parity. The true point lies on the centreline at the fraction
  ``(n - from) / (to - from)`` of its length from the line's first vertex (lengths in
  metres); a one-number range gives the middle of the line. Cambridge's sides hold one
  parity; a side whose ends differ in parity holds any number in between.
- Overlapping ranges. Another segment side of the same street may hold the same number
  (ranges overlapping, or two streets of one name). Every side that holds the number
  (same parity, or a mixed-parity side) gives its own interpolated point; when those
  points lie within :data:`SAME_PLACE_M` of ours, the number means one place (typically
  the shared end of two adjacent segments) and stays in the truth set; otherwise no
  answer can be called right and the number is left out (counted in ``skipped``).
- Node ids. A few segments' ``FromNode``/``ToNode`` disagree with their geometry (the
  line drawn the other way, or an id reused). A node's coordinate is the end most of its
  segments put there; a segment whose ends do not lie at its own nodes gives no range
  addresses (which end its range starts from is unknown), though its ranges still count
  in the overlap check, and it meets a node only where one of its ends lies there.
- Intersections. Two segments with different streets (by ``Street``, and by
  ``Street_Name`` so that "Elm St" and "Elm St N" do not count) sharing a ``FromNode`` or
  ``ToNode`` meet at that node's coordinate. A pair of streets may meet at several nodes
  (a divided road, a loop): when those nodes lie within :data:`ONE_CORNER_M` of each
  other, the pair is one corner and the nearest node counts as the truth; further apart,
  the pair names no single place and is left out.

Los Angeles: the demo's records (one point per distinct "number street, zip" address, the
first record's coordinates), written as an address-point file for ``civicpin addresses
import``, and queried in the spellings people use.

The hard set: texts where a confident answer far from the truth is the failure
(misspellings, missing street types, wrong ZIPs, numbers outside every range, addresses
of other cities, a name that exists with two types). ``truth`` is None when no place in
the city is right: any confident answer is then wrong.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import shapely
from pyproj import Transformer
from shapely.geometry import LineString, shape

ROOT = Path(__file__).resolve().parents[2]
CAMBRIDGE_DIR = ROOT / "tests" / "data" / "cambridge"
CENTERLINES = CAMBRIDGE_DIR / "TRANS_Centerlines.geojson"
CAMBRIDGE_BOUNDARY = CAMBRIDGE_DIR / "BOUNDARY_CityBoundary.geojson"
LA_DIR = ROOT / "intake" / "demo" / "data" / "los_angeles"
LA_RECORDS = LA_DIR / "la_311_2020_sample_normalized.csv"
LA_BOUNDARY = LA_DIR / "la_neighborhood_councils.geojson"

SAME_PLACE_M = 25.0  # two sides' points this close mean one place
ONE_CORNER_M = 60.0  # nodes of one street pair this close are one corner
NODE_M = 1.0  # a segment end this close to a node's coordinate lies at the node

# Cambridge's abbreviated types as people say them in full.
TYPE_WORDS = {
    "St": "Street",
    "Ave": "Avenue",
    "Rd": "Road",
    "Pl": "Place",
    "Dr": "Drive",
    "Ct": "Court",
    "Ter": "Terrace",
    "Pkwy": "Parkway",
    "Ln": "Lane",
    "Cir": "Circle",
    "Hwy": "Highway",
    "Blvd": "Boulevard",
    "Sq": "Square",
    "Aly": "Alley",
    "Pk": "Park",
    "Tpk": "Turnpike",
    "N": "North",
    "S": "South",
    "E": "East",
    "W": "West",
}
# Los Angeles' normalised abbreviations, spelled out.
LA_WORDS = {
    "ST": "Street",
    "AVE": "Avenue",
    "BLVD": "Boulevard",
    "DR": "Drive",
    "RD": "Road",
    "PL": "Place",
    "WAY": "Way",
    "CT": "Court",
    "LN": "Lane",
    "TER": "Terrace",
    "CIR": "Circle",
    "PKWY": "Parkway",
    "HWY": "Highway",
    "N": "North",
    "S": "South",
    "E": "East",
    "W": "West",
}


@dataclass(frozen=True)
class Case:
    """One query and its independent answer.

    ``truth`` is (lon, lat), or None when no place in the city is a right answer;
    ``alternatives`` are other points that count as right (another node of the same
    corner). ``kind`` groups the cases in reports.
    """

    text: str
    truth: tuple[float, float] | None
    kind: str
    alternatives: tuple[tuple[float, float], ...] = ()

    def error_m(self, lon: float, lat: float) -> float:
        """Metres from (lon, lat) to the nearest right point (inf when none is right)."""
        points = ([self.truth] if self.truth else []) + list(self.alternatives)
        if not points:
            return math.inf
        return min(haversine_m(lon, lat, x, y) for x, y in points)


@dataclass
class Truth:
    """A city's cases and how many candidates were left out as ambiguous."""

    ranges: list[Case] = field(default_factory=list)
    intersections: list[Case] = field(default_factory=list)
    hard: list[Case] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres."""
    r = 6_371_008.8
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


# ---------------------------------------------------------------- Cambridge: raw segments


@dataclass(frozen=True)
class _Side:
    street: str  # "Cambridge St"
    name: str  # "Cambridge"
    type: str | None  # "St"
    start: int
    end: int
    zip: str | None
    line_m: LineString  # metres (local transverse Mercator)
    trusted: bool  # its ends lie at its FromNode and ToNode, so its ranges run from its start

    def holds(self, n: int) -> bool:
        lo, hi = sorted((self.start, self.end))
        if not lo <= n <= hi:
            return False
        return self.start % 2 != self.end % 2 or n % 2 == self.start % 2

    def point_m(self, n: int):
        if self.end == self.start:
            frac = 0.5
        else:
            frac = (n - self.start) / (self.end - self.start)
        return self.line_m.interpolate(frac, normalized=True)


@cache
def _to_metres() -> tuple[Transformer, Transformer]:
    crs = "+proj=tmerc +lat_0=42.37 +lon_0=-71.11 +k=1 +x_0=0 +y_0=0 +ellps=WGS84 +units=m"
    fwd = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    back = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    return fwd, back


def _project(x, y):
    fwd, _ = _to_metres()
    return fwd.transform(x, y)


def _lonlat(point_m) -> tuple[float, float]:
    _, back = _to_metres()
    x, y = back.transform(point_m.x, point_m.y)
    return (x, y)


@cache
def cambridge_features() -> list[dict]:
    """The centreline features with a street name and a single LineString."""
    out = []
    for f in json.loads(CENTERLINES.read_text())["features"]:
        p, g = f["properties"], f["geometry"]
        if not p.get("Street") or g is None or g["type"] != "LineString":
            continue
        out.append(f)
    return out


def _sides() -> list[_Side]:
    sides = []
    for f in cambridge_features():
        p = f["properties"]
        trusted = _agrees_with_nodes(f)
        line_m = shapely.transform(shape(f["geometry"]), _project, interleaved=False)
        for s in "LR":
            a, b = p.get(f"{s}_From"), p.get(f"{s}_To")
            if not a or not b or a <= 0 or b <= 0:
                continue
            zip_ = p.get("ZIP_Left" if s == "L" else "ZIP_Right") or None
            sides.append(
                _Side(
                    p["Street"],
                    p.get("Street_Name") or p["Street"],
                    p.get("Street_Type"),
                    int(a),
                    int(b),
                    zip_,
                    line_m,
                    trusted,
                )
            )
    return sides


def _middle(a: int, b: int) -> int:
    lo, hi = sorted((a, b))
    mid = (lo + hi) // 2
    if a % 2 == b % 2 and mid % 2 != a % 2:
        mid += 1
    return mid


def spelled_out(street: str) -> str:
    """ "Cambridge St" -> "Cambridge Street", "Elm St N" -> "Elm Street North"."""
    words = street.split()
    # Only the trailing type and direction words: "St Paul St" keeps its first "St".
    i = len(words) - 1
    while i > 0 and words[i] in TYPE_WORDS:
        words[i] = TYPE_WORDS[words[i]]
        i -= 1
    return " ".join(words)


def _range_text(n: int, side: _Side, form: int) -> str:
    street = side.street
    if form == 0:
        return f"{n} {street}"
    if form == 1:
        tail = f" {side.zip}" if side.zip else ""
        return f"{n} {spelled_out(street)}, Cambridge, MA{tail}"
    if form == 2:
        return f"{n} {street.upper()}"
    return f"{n} {spelled_out(street).lower()}, cambridge ma"


RANGE_FORMS = 4
CORNER_FORMS = 6


def _corner_text(a: str, b: str, form: int) -> str:
    return [
        f"{a} & {b}",
        f"{spelled_out(a)} and {spelled_out(b)}",
        f"corner of {a} and {b}",
        f"{a} at {b}",
        f"{b} & {a}",
        f"{a.lower()} and {b.lower()}",
    ][form]


@dataclass(frozen=True)
class RangeAddress:
    number: int
    side: _Side
    lonlat: tuple[float, float]


def _range_addresses() -> tuple[list[RangeAddress], int]:
    sides = _sides()
    by_street: dict[str, list[_Side]] = defaultdict(list)
    for side in sides:
        by_street[side.street].append(side)
    seen: set[tuple[str, int]] = set()
    out: list[RangeAddress] = []
    skipped = 0
    for side in sides:
        if not side.trusted:
            skipped += 1  # which end its range starts from is unknown
            continue
        for n in dict.fromkeys((side.start, _middle(side.start, side.end), side.end)):
            if (side.street, n) in seen:
                continue
            seen.add((side.street, n))
            mine = side.point_m(n)
            others = [o.point_m(n) for o in by_street[side.street] if o.holds(n)]
            if any(mine.distance(o) > SAME_PLACE_M for o in others):
                skipped += 1
                continue
            out.append(RangeAddress(n, side, _lonlat(mine)))
    return out, skipped


def cambridge_ranges(
    *, all_forms: bool = False, one_per_side: bool = False
) -> tuple[list[Case], int]:
    """Range-address cases (one spelling each, rotating; every spelling with
    ``all_forms``) and the number of numbers left out. ``one_per_side`` keeps one number
    of every segment side, taking its first, middle and last number in turn."""
    addresses, skipped = _range_addresses()
    if one_per_side:
        per_side: dict[int, list[RangeAddress]] = defaultdict(list)
        for ra in addresses:
            per_side[id(ra.side)].append(ra)
        addresses = [picks[i % len(picks)] for i, picks in enumerate(per_side.values())]
    cases = []
    for i, ra in enumerate(addresses):
        forms = range(RANGE_FORMS) if all_forms else (i % RANGE_FORMS,)
        for form in forms:
            cases.append(Case(_range_text(ra.number, ra.side, form), ra.lonlat, "range"))
    return cases, skipped


@cache
def _node_points() -> dict[float, tuple[float, float]]:
    """Each node id's coordinate: the segment end most of its segments put there.

    A few segments' ``FromNode``/``ToNode`` disagree with their geometry (the line drawn
    the other way, or an id reused); the majority decides, and a node whose segments
    split evenly between two places has no coordinate.
    """
    votes: dict[float, Counter] = defaultdict(Counter)
    for f in cambridge_features():
        p, coords = f["properties"], f["geometry"]["coordinates"]
        for key, xy in (("FromNode", coords[0]), ("ToNode", coords[-1])):
            if p.get(key) is not None:
                votes[p[key]][(round(xy[0], 7), round(xy[1], 7))] += 1
    out = {}
    for node, counter in votes.items():
        (xy, n), *rest = counter.most_common()
        if not rest or rest[0][1] < n:
            out[node] = xy
    return out


def _at(xy, node_xy) -> bool:
    return node_xy is not None and haversine_m(xy[0], xy[1], *node_xy) < NODE_M


def _agrees_with_nodes(f: dict) -> bool:
    """The segment's first vertex lies at its FromNode and its last at its ToNode."""
    p, coords = f["properties"], f["geometry"]["coordinates"]
    nodes = _node_points()
    return _at(coords[0], nodes.get(p.get("FromNode"))) and _at(
        coords[-1], nodes.get(p.get("ToNode"))
    )


def _corners() -> tuple[dict[tuple[str, str], list[tuple[float, float]]], int]:
    """(street a, street b) -> node coordinates where they meet; pairs left out."""
    nodes = _node_points()
    at_node: dict[float, dict[str, str]] = defaultdict(dict)
    for f in cambridge_features():
        p, coords = f["properties"], f["geometry"]["coordinates"]
        for key in ("FromNode", "ToNode"):
            node = p.get(key)
            # The segment meets the node only where one of its ends lies there.
            if node is None or not any(_at(xy, nodes.get(node)) for xy in (coords[0], coords[-1])):
                continue
            at_node[node][p["Street"]] = (p.get("Street_Name") or p["Street"]).upper()
    pairs: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for node, streets in at_node.items():
        names = sorted(streets)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                if streets[a] != streets[b]:
                    pairs[(a, b)].append(nodes[node])
    kept, skipped = {}, 0
    for pair, points in pairs.items():
        spread = max(haversine_m(*p, *q) for p in points for q in points)
        if spread > ONE_CORNER_M:
            skipped += 1
            continue
        kept[pair] = points
    return kept, skipped


def cambridge_intersections(*, all_forms: bool = False) -> tuple[list[Case], int]:
    """Intersection cases (rotating spellings, or all with ``all_forms``) and the number
    of street pairs left out because they meet at places far apart."""
    corners, skipped = _corners()
    cases = []
    for i, ((a, b), nodes) in enumerate(sorted(corners.items())):
        forms = range(CORNER_FORMS) if all_forms else (i % CORNER_FORMS,)
        for form in forms:
            cases.append(Case(_corner_text(a, b, form), nodes[0], "intersection", tuple(nodes[1:])))
    return cases, skipped


# ---------------------------------------------------------------- Los Angeles

_LA_ADDRESS = re.compile(r"^(\d+)\s+([A-Z0-9 ]+?),\s*(\d{5})$")


@dataclass(frozen=True)
class LaAddress:
    source_id: str
    number: int
    street: str  # "W VANOWEN ST"
    zip: str
    lon: float
    lat: float


@cache
def _la_area():
    features = json.loads(LA_BOUNDARY.read_text())["features"]
    area = shapely.union_all([shape(f["geometry"]) for f in features])
    shapely.prepare(area)
    return area


@cache
def la_addresses() -> list[LaAddress]:
    """One address point per distinct "number street, zip" of the demo's records, inside
    the city's boundary (the union of its neighbourhood councils; a few records lie
    beyond it, and the import refuses points outside the city)."""
    area = _la_area()
    out: dict[tuple[int, str, str], LaAddress] = {}
    with LA_RECORDS.open(newline="") as fh:
        for row in csv.DictReader(fh):
            m = _LA_ADDRESS.match((row["address"] or "").strip())
            if not m or not row["latitude"] or not row["longitude"]:
                continue
            number, street, zip_ = int(m.group(1)), " ".join(m.group(2).split()), m.group(3)
            key = (number, street, zip_)
            lon, lat = float(row["longitude"]), float(row["latitude"])
            if key not in out and area.contains(shapely.Point(lon, lat)):
                out[key] = LaAddress(
                    f"LA-{len(out) + 1:06d}",
                    number,
                    street,
                    zip_,
                    lon,
                    lat,
                )
    return list(out.values())


def write_la_address_file(path: Path) -> Path:
    """The LA address points as a CSV for ``civicpin addresses import``
    (``--map id=address_id,number=house_number,street=street_name,zip=zip,lat=lat,lon=lon``)."""
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["address_id", "house_number", "street_name", "zip", "lat", "lon"])
        for a in la_addresses():
            w.writerow([a.source_id, a.number, a.street, a.zip, a.lat, a.lon])
    return path


LA_MAP = "id=address_id,number=house_number,street=street_name,zip=zip,lat=lat,lon=lon"


def _la_words(street: str) -> str:
    """ "N ST ANDREWS PL" -> "North St Andrews Place": the leading direction and the
    trailing type spelled out, the words between as they are (ST there is Saint)."""
    words = [w.capitalize() for w in street.split()]
    raw = street.split()
    if len(raw) > 1 and raw[0] in {"N", "S", "E", "W"}:
        words[0] = LA_WORDS[raw[0]]
    if len(raw) > 1 and raw[-1] in LA_WORDS:
        words[-1] = LA_WORDS[raw[-1]]
    return " ".join(words)


def _without_direction(street: str) -> str | None:
    words = street.split()
    if len(words) > 2 and words[0] in {"N", "S", "E", "W"}:
        return " ".join(words[1:])
    return None


def la_cases(*, all_forms: bool = False, every: int = 1) -> list[Case]:
    """Address-point cases for every ``every``-th LA address, in other spellings:
    "16815 West Vanowen Street, Los Angeles, CA 91406", "16815 vanowen st" (without the
    direction only where no other direction of that street holds the number), and the
    file's own text."""
    addresses = la_addresses()
    undirected: dict[tuple[int, str], int] = defaultdict(int)
    for a in addresses:
        undirected[(a.number, _without_direction(a.street) or a.street)] += 1
    cases = []
    for i, a in enumerate(addresses):
        if i % every:
            continue
        texts = [
            f"{a.number} {_la_words(a.street)}, Los Angeles, CA {a.zip}",
            f"{a.number} {a.street.lower()}",
            f"{a.number} {a.street}, {a.zip}",
        ]
        bare = _without_direction(a.street)
        if bare and undirected[(a.number, bare)] == 1:
            texts[1] = f"{a.number} {bare.lower()}"
        picked = texts if all_forms else [texts[(i // every) % len(texts)]]
        cases.extend(Case(t, (a.lon, a.lat), "address_point") for t in picked)
    return cases


# ---------------------------------------------------------------- the hard sets

OUTSIDE_BOTH = [
    "100 Main St, Boston, MA 02129",
    "1600 Pennsylvania Ave NW, Washington, DC 20500",
    "350 5th Ave, New York, NY 10118",
    "233 S Wacker Dr, Chicago, IL 60606",
    "1 Infinite Loop, Cupertino, CA 95014",
]
CAMBRIDGE_ZIPS = ("02138", "02139", "02140", "02141", "02142")


def _drop_letter(word: str) -> str:
    """A plausible typo: one inner letter left out ("Cambridge" -> "Cambrdge")."""
    i = len(word) // 2
    return word[:i] + word[i + 1 :]


def cambridge_hard(every: int = 1) -> list[Case]:
    """The hard set asked of Cambridge."""
    addresses, _ = _range_addresses()
    la = la_addresses()
    sides = _sides()
    cases: list[Case] = []
    # Misspellings named by people, with real numbers.
    for street, typo in (
        ("Cambridge St", "Cambrige St"),
        ("Massachusetts Ave", "Massachusets Ave"),
    ):
        picks = [ra for ra in addresses if ra.side.street == street][:: max(1, 8 * every)]
        for ra in picks:
            cases.append(Case(f"{ra.number} {typo}", ra.lonlat, "misspelling"))
    long_names = [ra for ra in addresses if len(ra.side.name) >= 7][:: 25 * every]
    for ra in long_names:
        typo = ra.side.street.replace(ra.side.name, _drop_letter(ra.side.name), 1)
        cases.append(Case(f"{ra.number} {typo}", ra.lonlat, "misspelling"))
    # Missing types: right when one street of that name holds the number, else nowhere.
    by_name: dict[str, list[_Side]] = defaultdict(list)
    for side in sides:
        by_name[side.name.upper()].append(side)
    for ra in addresses[:: 20 * every]:
        if ra.side.type is None:
            continue
        holders = [s for s in by_name[ra.side.name.upper()] if s.holds(ra.number)]
        elsewhere = [s for s in holders if s.street != ra.side.street]
        truth = None if elsewhere else ra.lonlat
        cases.append(Case(f"{ra.number} {ra.side.name}", truth, "missing type"))
    # A name with two types, asked with its type: only that street is right.
    types_of: dict[str, set[str]] = defaultdict(set)
    for side in sides:
        types_of[side.name.upper()].add(side.street)
    for ra in addresses[:: 6 * every]:
        if len(types_of[ra.side.name.upper()]) > 1:
            cases.append(Case(f"{ra.number} {ra.side.street}", ra.lonlat, "two types"))
    # Wrong ZIP (another Cambridge ZIP): the street and number still name one place.
    for i, ra in enumerate(addresses[:: 30 * every]):
        if not ra.side.zip:
            continue
        others = [z for z in CAMBRIDGE_ZIPS if z != ra.side.zip]
        wrong = others[i % len(others)]
        cases.append(
            Case(f"{ra.number} {ra.side.street}, Cambridge, MA {wrong}", ra.lonlat, "wrong zip")
        )
    # Numbers outside every range of the street.
    top: dict[str, int] = defaultdict(int)
    for side in sides:
        top[side.street] = max(top[side.street], side.start, side.end)
    for street in sorted(top)[:: 4 * every]:
        n = (top[street] // 1000 + 5) * 1000 + 1
        cases.append(Case(f"{n} {street}", None, "number outside ranges"))
    # Other cities.
    cases.extend(Case(t, None, "other city") for t in OUTSIDE_BOTH)
    for a in la[:: 200 * every]:
        cases.append(
            Case(f"{a.number} {_la_words(a.street)}, Los Angeles, CA {a.zip}", None, "other city")
        )
    return cases


def _la_core(street: str) -> str:
    """ "W VANOWEN ST" -> "VANOWEN"."""
    words = street.split()
    if len(words) > 2 and words[0] in {"N", "S", "E", "W"}:
        words = words[1:]
    if len(words) > 1 and words[-1] in LA_WORDS:
        words = words[:-1]
    return " ".join(words)


def la_hard(every: int = 1) -> list[Case]:
    """The hard set asked of Los Angeles (address points only)."""
    la = la_addresses()
    la_cores = {_la_core(a.street) for a in la}
    cases: list[Case] = []
    for a in la[:: 40 * every]:
        words = a.street.split()
        core_i = 1 if len(words) > 2 and words[0] in {"N", "S", "E", "W"} else 0
        core = words[core_i]
        if len(core) >= 6 and not core.isdigit():
            typo = words.copy()
            typo[core_i] = _drop_letter(core)
            cases.append(
                Case(f"{a.number} {' '.join(typo)}, {a.zip}", (a.lon, a.lat), "misspelling")
            )
        if len(words) >= 2 and words[-1] in LA_WORDS:
            untyped = " ".join(words[:-1])
            others = [
                b for b in la if b.number == a.number and b.street.rsplit(" ", 1)[0] == untyped
            ]
            truth = (a.lon, a.lat) if len(others) == 1 else None
            cases.append(Case(f"{a.number} {untyped}", truth, "missing type"))
        wrong = f"{(int(a.zip) + 7) % 100000:05d}"
        cases.append(
            Case(f"{a.number} {a.street}, Los Angeles, CA {wrong}", (a.lon, a.lat), "wrong zip")
        )
    cases.extend(Case(t, None, "other city") for t in OUTSIDE_BOTH)
    addresses, _ = _range_addresses()
    for ra in addresses[:: 150 * every]:
        if ra.side.name.upper() in la_cores:
            continue  # a street of the same name exists in LA; the texts say MA all the same
        cases.append(
            Case(
                f"{ra.number} {spelled_out(ra.side.street)}, Cambridge, MA {ra.side.zip or ''}".strip(),
                None,
                "other city",
            )
        )
    return cases


def cambridge_truth(*, all_forms: bool = False, hard_every: int = 1) -> Truth:
    ranges, skipped_ranges = cambridge_ranges(all_forms=all_forms)
    corners, skipped_corners = cambridge_intersections(all_forms=all_forms)
    return Truth(
        ranges,
        corners,
        cambridge_hard(hard_every),
        {
            "range addresses left out": skipped_ranges,
            "street pairs meeting far apart": skipped_corners,
        },
    )


# ---------------------------------------------------------------- reporting


@dataclass(frozen=True)
class Outcome:
    case: Case
    answer: tuple[float, float] | None  # the best candidate's point
    confident: bool
    address: str | None
    match_type: str | None
    error_m: float  # inf when there is no answer (or no right place)


def worst(outcomes: Iterable[Outcome], n: int = 10) -> str:
    """The worst outcomes, one line each: text, answer, truth, distance."""
    rows = sorted(outcomes, key=lambda o: -o.error_m if o.answer else -1e12)[:n]
    lines = []
    for o in rows:
        ans = (
            f"{o.address!r} {o.match_type} ({o.answer[1]:.6f}, {o.answer[0]:.6f})"
            f"{' confident' if o.confident else ''}"
            if o.answer
            else "no answer"
        )
        truth = f"({o.case.truth[1]:.6f}, {o.case.truth[0]:.6f})" if o.case.truth else "nowhere"
        lines.append(f"  {o.case.text!r} -> {ans}; truth {truth}; {o.error_m:.0f} m")
    return "\n".join(lines)
