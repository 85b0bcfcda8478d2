"""Benchmark of the geocoder: accuracy on the full truth sets, and look-up speed with
500,000 address points beside a bare ``pg_trgm`` similarity query.

Usage (a scratch embedded cluster; nothing else is touched)::

    env -u DATABASE_URL VAR_DIR=/tmp/geocodebench/var \\
        .venv/bin/python bench/geocode_bench.py --points 500000

Set-up, through the real import path (only what is missing, so a second run reuses it):

- "cambridge": its boundary, and its centrelines by ``civicpin streets import``;
- "los-angeles": the neighbourhood councils as boundary, and one address point per
  address of the demo's records by ``civicpin addresses import``;
- "pinecrest", a synthetic city of ``--points`` address points: streets with US names,
  directions and types (4,000 streets for 500,000 points), numbers on both sides,
  points 12 m off the centreline, ZIPs by district; written as a CSV and imported with
  ``civicpin addresses import`` (timed: the import time is printed).

Then, in the same run:

1. Accuracy (truth from ``tests/support/geocode_truth.py``, built with shapely from the
   raw files, never from ``places``): every Cambridge range address and every corner in
   every spelling, the Los Angeles address points in three spellings, and the hard sets
   of both cities. Targets: >= 99 % of addresses within 25 m, 100 % of intersections
   within 30 m, 0 confident answers more than 100 m from the truth on the hard sets.
2. Speed: ``--lookups`` texts of pinecrest addresses (as typed, spelled out with city,
   state and ZIP, lower case without the direction, one letter missing), each looked up
   with ``geocode()`` and, right after it, with the bare query
   ``SELECT ... FROM address_point WHERE jurisdiction_id = :j AND address % :q
   ORDER BY similarity(address, :q) DESC LIMIT 5`` on the same table; p50/p95/p99 of
   both and the p95 ratio. Target: geocode p95 <= 20 ms.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from places.geocoder import GeocodeRefused, geocode  # noqa: E402
from spatial.models import AddressPoint, Jurisdiction  # noqa: E402
from spatial.models_places import PlaceDataset  # noqa: E402
from spatial.zones import create_city  # noqa: E402
from tests.support import geocode_truth as truth  # noqa: E402
from tests.support.geocode_truth import Case, Outcome, haversine_m, worst  # noqa: E402
from webmap.cli import Runtime  # noqa: E402

STREET_MAP = (
    "name=Street,from_left=L_From,to_left=L_To,from_right=R_From,to_right=R_To,"
    "zip_left=ZIP_Left,zip_right=ZIP_Right,id=ID"
)
BARE_TRGM_SQL = sa.text(
    "SELECT id, address FROM address_point WHERE jurisdiction_id = :j AND address % :q "
    "ORDER BY similarity(address, :q) DESC LIMIT 5"
)

# The synthetic city: a 0.4 x 0.4 degree square (about 35 x 44 km) in the Great Plains.
SYN_SLUG, SYN_NAME, SYN_STATE = "pinecrest", "Pinecrest", "KS"
SYN_BOX = (-97.60, 37.50, -97.20, 37.90)
CORES = """OAK MAPLE PINE CEDAR ELM WALNUT CHESTNUT SPRUCE BIRCH WILLOW ASH HICKORY
SYCAMORE MAGNOLIA DOGWOOD LAUREL HOLLY JUNIPER POPLAR ASPEN CYPRESS REDWOOD SEQUOIA
WASHINGTON LINCOLN JEFFERSON MADISON MONROE ADAMS JACKSON HARRISON TYLER POLK TAYLOR
FILLMORE PIERCE BUCHANAN JOHNSON GRANT HAYES GARFIELD ARTHUR CLEVELAND MCKINLEY ROOSEVELT
WILSON HARDING COOLIDGE HOOVER TRUMAN KENNEDY FRANKLIN HAMILTON MARSHALL JAY HANCOCK
PARK LAKE HILL RIVER SPRING VALLEY MEADOW FOREST RIDGE SUNSET SUNRISE HIGHLAND CHURCH MILL
MARKET UNION BROAD CENTER COLLEGE SCHOOL PROSPECT PLEASANT CHERRY VINE GROVE ORCHARD
ALABAMA ARIZONA CALIFORNIA COLORADO DAKOTA FLORIDA GEORGIA IDAHO ILLINOIS INDIANA IOWA
KANSAS KENTUCKY LOUISIANA MAINE MARYLAND MICHIGAN MINNESOTA MISSOURI MONTANA NEBRASKA
NEVADA OHIO OKLAHOMA OREGON TENNESSEE TEXAS UTAH VERMONT VIRGINIA WISCONSIN WYOMING
ALDER BAYWOOD BRIARWOOD BROOKSIDE CAMBRIDGE CARLISLE CHARLESTON CLAREMONT CLIFTON
COLONIAL CROSSWOOD DEERFIELD DOVER EASTWOOD EDGEWOOD FAIRVIEW FAIRWAY FOXCROFT GLENWOOD
GREENBRIAR HARVARD HAWTHORNE HERITAGE HOLLYWOOD INDEPENDENCE KENSINGTON KINGSTON
LAFAYETTE LEXINGTON LIBERTY LINDEN MAYFAIR MONTEREY NEWPORT NORMANDY OXFORD PALISADE
PATRIOT PRINCETON QUAIL RAVENWOOD REGENCY RICHMOND ROCKWOOD SARATOGA SHERIDAN SHERWOOD
SOMERSET STRATFORD SUMMIT TIMBERLINE TRENTON VICTORIA WESTMINSTER WESTWOOD WINDSOR
YORKSHIRE ABERDEEN BELMONT BRIGHTON CAMDEN DEVONSHIRE ESSEX FAIRFAX GLOUCESTER HAMPTON
LANCASTER MARLBOROUGH NORFOLK PEMBROKE ROCHESTER SALISBURY SUFFOLK WARWICK WORCESTER
SANTA_FE SAN_JUAN EL_CAMINO LA_PALOMA MARTIN_LUTHER_KING
"""
# Multi-word names are written with "_" above.
CORES = [c.replace("_", " ") for c in CORES.split()]
ORDINALS = [
    f"{n}{'TH' if 10 <= n % 100 <= 20 else {1: 'ST', 2: 'ND', 3: 'RD'}.get(n % 10, 'TH')}"
    for n in range(1, 151)
]
TYPES = (
    ["ST"] * 6
    + ["AVE"] * 4
    + ["DR"] * 2
    + ["RD", "BLVD", "LN", "CT", "PL", "WAY", "TER", "CIR", "PKWY"]
)
DIRS = [""] * 3 + ["N", "S", "E", "W"]
SPELLED = {**truth.LA_WORDS, "CIR": "Circle", "PKWY": "Parkway"}


def civicpin(*args: str) -> float:
    """Run the real command; its wall time in seconds."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "webmap.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        sys.exit(f"civicpin {' '.join(args[:3])} failed:\n{done.stderr}")
    return time.perf_counter() - t0


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# ---------------------------------------------------------------- set-up


def _city(sessions, slug: str) -> Jurisdiction | None:
    with sessions() as s:
        return s.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == slug))


def _current(sessions, slug: str, kind: str) -> int:
    """Rows written by the city's newest dataset of ``kind`` (0 when none)."""
    with sessions() as s:
        return (
            s.scalar(
                sa.select(PlaceDataset.rows_written)
                .join(Jurisdiction, Jurisdiction.id == PlaceDataset.jurisdiction_id)
                .where(Jurisdiction.slug == slug, PlaceDataset.kind == kind)
                .order_by(PlaceDataset.version.desc())
                .limit(1)
            )
            or 0
        )


def _make_city(sessions, slug: str, name: str, tz: str, boundary: Path) -> None:
    if _city(sessions, slug) is None:
        with sessions() as s:
            create_city(s, slug, name, tz, boundary)
            s.commit()


def prepare_real_cities(sessions, work: Path) -> None:
    _make_city(sessions, "cambridge", "Cambridge", "America/New_York", truth.CAMBRIDGE_BOUNDARY)
    if not _current(sessions, "cambridge", "streets"):
        secs = civicpin(
            "streets", "import", str(truth.CENTERLINES), "--city", "cambridge",
            "--map", STREET_MAP, "--skip-bad",
        )  # fmt: skip
        print(f"Cambridge centrelines imported in {secs:.1f} s")
    _make_city(sessions, "los-angeles", "Los Angeles", "America/Los_Angeles", truth.LA_BOUNDARY)
    if not _current(sessions, "los-angeles", "addresses"):
        path = truth.write_la_address_file(work / "la_addresses.csv")
        secs = civicpin(
            "addresses", "import", str(path), "--city", "los-angeles", "--map", truth.LA_MAP
        )
        print(
            f"Los Angeles address points ({len(truth.la_addresses()):,}) imported in {secs:.1f} s"
        )


def synthetic_points(n: int, seed: int) -> list[dict]:
    """``n`` address points of a synthetic city: streets of ~125 addresses each."""
    rnd = random.Random(seed)
    west, south, east, north = SYN_BOX
    names: set[tuple[str, str, str]] = set()
    rows: list[dict] = []
    m_lat = 1 / 111_320
    m_lon = 1 / (111_320 * 0.79)  # cos(37.7 deg)
    while len(rows) < n:
        while True:
            core = rnd.choice(CORES) if rnd.random() < 0.8 else rnd.choice(ORDINALS)
            name = (rnd.choice(DIRS), core, rnd.choice(TYPES))
            if name not in names:
                names.add(name)
                break
        street = " ".join(w for w in name if w)
        count = min(rnd.randint(40, 210), n - len(rows))
        start = rnd.randint(1, 60) * 100
        horizontal = rnd.random() < 0.5
        x0 = rnd.uniform(west + 0.01, east - 0.06)
        y0 = rnd.uniform(south + 0.01, north - 0.06)
        for j in range(count):
            number = start + j
            along = (j // 2) * 12.0  # a house every 12 m on each side
            side = 12.0 if number % 2 else -12.0
            if horizontal:
                lon, lat = x0 + along * m_lon, y0 + side * m_lat
            else:
                lon, lat = x0 + side * m_lon, y0 + along * m_lat
            district = int((lon - west) / 0.08) * 5 + int((lat - south) / 0.08)
            rows.append(
                {
                    "address_id": f"PC-{len(rows) + 1:07d}",
                    "house_number": number,
                    "street_name": street,
                    "zip": f"{67100 + district:05d}",
                    "lat": round(lat, 7),
                    "lon": round(lon, 7),
                }
            )
    return rows


def prepare_synthetic(sessions, work: Path, n: int, seed: int) -> list[dict]:
    rows = synthetic_points(n, seed)
    west, south, east, north = SYN_BOX
    boundary = work / "pinecrest_boundary.geojson"
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    boundary.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {},
                        "geometry": {"type": "Polygon", "coordinates": [ring]},
                    }
                ],
            }
        )
    )
    _make_city(sessions, SYN_SLUG, SYN_NAME, "America/Chicago", boundary)
    if _current(sessions, SYN_SLUG, "addresses") != n:
        path = work / f"pinecrest_{n}.csv"
        with path.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        secs = civicpin("addresses", "import", str(path), "--city", SYN_SLUG, "--map", truth.LA_MAP)
        print(f"pinecrest: {n:,} address points imported in {secs:.1f} s ({n / secs:,.0f} rows/s)")
        with sessions() as s:
            s.execute(sa.text("ANALYZE address_point"))
            s.commit()
    with sessions() as s:
        city = s.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == SYN_SLUG))
        have = s.scalar(sa.select(sa.func.count()).where(AddressPoint.jurisdiction_id == city.id))
    print(f"pinecrest holds {have:,} address points")
    return rows


# ---------------------------------------------------------------- measuring


def look_up(sessions, slug: str, cases: list[Case]) -> tuple[list[Outcome], list[float]]:
    out, ms = [], []
    with sessions() as s:
        city = s.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == slug))
        for case in cases:
            t0 = time.perf_counter()
            try:
                result = geocode(s, city, case.text)
            except GeocodeRefused:
                result = None
            ms.append((time.perf_counter() - t0) * 1000)
            best = result.candidates[0] if result and result.candidates else None
            if best is None:
                out.append(Outcome(case, None, False, None, None, float("inf")))
            else:
                out.append(
                    Outcome(
                        case,
                        (best.lon, best.lat),
                        result.confident is not None,
                        best.address,
                        best.match_type,
                        case.error_m(best.lon, best.lat),
                    )
                )
        s.rollback()
    return out, ms


def report_within(what: str, outcomes: list[Outcome], metres: float, target: float) -> None:
    misses = [o for o in outcomes if o.error_m > metres]
    share = 1 - len(misses) / len(outcomes)
    sure = sum(o.confident for o in outcomes) / len(outcomes)
    kinds = Counter(o.match_type or "none" for o in outcomes)
    mark = "met" if share >= target else "MISSED"
    print(
        f"{what}: {share:.2%} of {len(outcomes):,} within {metres:.0f} m "
        f"(target {target:.0%}: {mark}); confident {sure:.1%}; "
        + ", ".join(f"{k} {v:,}" for k, v in kinds.most_common())
    )
    if misses:
        print(worst(misses, 8))


def report_hard(what: str, outcomes: list[Outcome]) -> None:
    wrong = [o for o in outcomes if o.confident and o.error_m > 100]
    by_kind = Counter(o.case.kind for o in wrong)
    placed = [o for o in outcomes if o.case.truth and o.error_m <= 25]
    with_truth = [o for o in outcomes if o.case.truth]
    print(
        f"{what}: {len(wrong)} of {len(outcomes):,} confident answers > 100 m from the truth "
        f"(target 0: {'met' if not wrong else 'MISSED'})"
        + (f" [{', '.join(f'{k} {v}' for k, v in by_kind.items())}]" if wrong else "")
        + f"; of the {len(with_truth):,} with one right place, {len(placed):,} placed within 25 m"
    )
    if wrong:
        print(worst(wrong, 10))


def accuracy(sessions) -> None:
    t = truth.cambridge_truth(all_forms=True)
    print(f"Cambridge truth left out: {t.skipped}")
    ranges, ms_r = look_up(sessions, "cambridge", t.ranges)
    report_within("Cambridge range addresses, 4 spellings", ranges, 25, 0.99)
    corners, ms_c = look_up(sessions, "cambridge", t.intersections)
    report_within("Cambridge intersections, 6 spellings", corners, 30, 1.0)
    hard, _ = look_up(sessions, "cambridge", t.hard)
    report_hard("Cambridge hard set", hard)
    la, ms_la = look_up(sessions, "los-angeles", truth.la_cases(all_forms=True))
    report_within("Los Angeles address points, 3 spellings", la, 25, 0.99)
    la_hard, _ = look_up(sessions, "los-angeles", truth.la_hard())
    report_hard("Los Angeles hard set", la_hard)
    for what, ms in (("Cambridge ranges", ms_r), ("Cambridge corners", ms_c), ("LA points", ms_la)):
        print(
            f"  look-up time, {what}: p50 {statistics.median(ms):.2f} ms, p95 {pct(ms, 95):.2f} ms"
        )


def _bare(street: str) -> str:
    words = street.split()
    return " ".join(words[1:]) if words[0] in {"N", "S", "E", "W"} else street


def _speed_texts(rows: list[dict], count: int, seed: int) -> list[Case]:
    rnd = random.Random(seed + 1)
    undirected = Counter((r["house_number"], _bare(r["street_name"])) for r in rows)
    cases = []
    for i, r in enumerate(rnd.sample(rows, count)):
        n, street, words = r["house_number"], r["street_name"], r["street_name"].split()
        form = i % 4
        if form == 0:
            text = f"{n} {street}"
        elif form == 1:
            spelled = " ".join(SPELLED.get(w, w.capitalize()) for w in words)
            text = f"{n} {spelled}, {SYN_NAME}, {SYN_STATE} {r['zip']}"
        elif form == 2:
            bare = _bare(street)
            # Without its direction only when no other direction holds the number.
            text = f"{n} {(bare if undirected[(n, bare)] == 1 else street).lower()}"
        else:
            core_i = 1 if words[0] in {"N", "S", "E", "W"} else 0
            if len(words[core_i]) >= 5 and not words[core_i][0].isdigit():
                words = words.copy()
                words[core_i] = truth._drop_letter(words[core_i])
            text = f"{n} {' '.join(words)}, {r['zip']}"
        cases.append(Case(text, (r["lon"], r["lat"]), f"form {form}"))
    return cases


def speed(sessions, rows: list[dict], count: int, seed: int) -> None:
    cases = _speed_texts(rows, count, seed)
    geo_ms, bare_ms, outcomes = [], [], []
    with sessions() as s:
        city = s.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == SYN_SLUG))
        for case in cases[:50]:  # warm the caches for both
            geocode(s, city, case.text)
            s.execute(BARE_TRGM_SQL, {"j": city.id, "q": case.text.upper()}).all()
        for case in cases:
            t0 = time.perf_counter()
            result = geocode(s, city, case.text)
            geo_ms.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            s.execute(BARE_TRGM_SQL, {"j": city.id, "q": case.text.upper()}).all()
            bare_ms.append((time.perf_counter() - t0) * 1000)
            best = result.candidates[0] if result.candidates else None
            err = haversine_m(best.lon, best.lat, *case.truth) if best else float("inf")
            outcomes.append(
                Outcome(
                    case,
                    (best.lon, best.lat) if best else None,
                    result.confident is not None,
                    best.address if best else None,
                    best.match_type if best else None,
                    err,
                )
            )
        s.rollback()
    p95 = pct(geo_ms, 95)
    # Absolute times move with what else runs on the machine; the ratio less so.
    print(f"load average during the look-ups: {os.getloadavg()[0]:.1f}")
    print(
        f"geocode() x{len(geo_ms):,} on {len(rows):,} points: p50 {statistics.median(geo_ms):.2f} ms, "
        f"p95 {p95:.2f} ms, p99 {pct(geo_ms, 99):.2f} ms "
        f"(target p95 <= 20 ms: {'met' if p95 <= 20 else 'MISSED'})"
    )
    print(
        f"bare pg_trgm similarity query x{len(bare_ms):,}: p50 {statistics.median(bare_ms):.2f} ms, "
        f"p95 {pct(bare_ms, 95):.2f} ms, p99 {pct(bare_ms, 99):.2f} ms; "
        f"ratio p95 geocode / bare {p95 / pct(bare_ms, 95):.2f}x"
    )
    for form in range(4):
        of = [o for o in outcomes if o.case.kind == f"form {form}"]
        ok = sum(o.error_m <= 25 for o in of)
        sure_wrong = sum(o.confident and o.error_m > 100 for o in of)
        print(
            f"  {of[0].case.text!r}-like: {ok / len(of):.1%} within 25 m, "
            f"{sure_wrong} confident > 100 m"
        )
        misses = [o for o in of if o.error_m > 25]
        if misses:
            print(worst(misses, 3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=500_000)
    parser.add_argument("--lookups", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--speed-only", action="store_true", help="only the synthetic city and the speed figures"
    )
    args = parser.parse_args()
    if "DATABASE_URL" in os.environ:
        sys.exit("unset DATABASE_URL: this benchmark uses its own embedded cluster (VAR_DIR)")
    os.environ.setdefault("VAR_DIR", "/tmp/geocodebench/var")
    work = Path(os.environ["VAR_DIR"]).parent / "files"
    work.mkdir(parents=True, exist_ok=True)
    civicpin("db", "up")
    sessions = Runtime().sessions()
    if not args.speed_only:
        prepare_real_cities(sessions, work)
    rows = prepare_synthetic(sessions, work, args.points, args.seed)
    if not args.speed_only:
        accuracy(sessions)
    speed(sessions, rows, args.lookups, args.seed)


if __name__ == "__main__":
    main()
