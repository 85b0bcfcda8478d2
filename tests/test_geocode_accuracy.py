"""The geocoder's accuracy against truth built without it (``tests.support.geocode_truth``).

Cambridge's centrelines and a Los Angeles address-point file (one point per address of the
demo's records) are loaded through ``civicpin streets import`` and ``civicpin addresses
import``; one number of every Cambridge segment side (its first, middle and last in
turn), every corner, each in one spelling, every sixth Los Angeles address and the hard
sets of both cities are then looked up with :func:`places.geocoder.geocode`.

Targets: >= 99 % of range addresses and address points within 25 m; every intersection
within 30 m; no confident answer more than 100 m from the truth on the hard sets (texts
of other cities count as wrong wherever they are placed).
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from places.geocoder import GeocodeRefused, geocode
from spatial.db import make_engine, make_sessionmaker
from spatial.models import Jurisdiction
from spatial.zones import create_city
from tests.conftest import TEMPLATE, run_cli
from tests.support import geocode_truth as truth
from tests.support.geocode_truth import Case, Outcome, worst

RANGE_M, CORNER_M, WRONG_M = 25.0, 30.0, 100.0
STREET_MAP = (
    "name=Street,from_left=L_From,to_left=L_To,from_right=R_From,to_right=R_To,"
    "zip_left=ZIP_Left,zip_right=ZIP_Right,id=ID"
)
LA_EVERY = 6  # every sixth LA address (about 1,200 look-ups), in a rotating spelling


@pytest.fixture(scope="module")
def places_db(pg, tmp_path_factory):
    """Cambridge with its streets and Los Angeles with its address points, imported."""
    name = "geocode_accuracy"
    url = pg.create_db(name, template=TEMPLATE)
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    sessions = make_sessionmaker(engine)
    with sessions() as s:
        create_city(s, "cambridge", "Cambridge", "America/New_York", truth.CAMBRIDGE_BOUNDARY)
        create_city(s, "los-angeles", "Los Angeles", "America/Los_Angeles", truth.LA_BOUNDARY)
        s.commit()
    tmp = tmp_path_factory.mktemp("geocode")
    env = {"DATABASE_URL": url, "VAR_DIR": str(tmp / "var")}
    streets = run_cli(
        ["streets", "import", str(truth.CENTERLINES), "--city", "cambridge", "--map", STREET_MAP]
        + ["--skip-bad"],
        env=env,
    )
    assert streets.returncode == 0, streets.stderr
    la_file = truth.write_la_address_file(tmp / "la_addresses.csv")
    addresses = run_cli(
        ["addresses", "import", str(la_file), "--city", "los-angeles", "--map", truth.LA_MAP],
        env=env,
    )
    assert addresses.returncode == 0, addresses.stderr
    with sessions() as s:
        s.execute(sa.text("ANALYZE"))
        s.commit()
    yield sessions
    engine.dispose()
    pg.drop_db(name)


def look_up(sessions, slug: str, cases: list[Case]) -> list[Outcome]:
    """Each case's best candidate, whether it is confident, and its error in metres."""
    out = []
    with sessions() as s:
        city = s.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == slug))
        for case in cases:
            try:
                result = geocode(s, city, case.text)
            except GeocodeRefused:
                result = None
            best = result.candidates[0] if result and result.candidates else None
            if best is None:
                out.append(Outcome(case, None, False, None, None, float("inf")))
                continue
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
    return out


def assert_share_within(outcomes: list[Outcome], metres: float, share: float, what: str) -> None:
    misses = [o for o in outcomes if o.error_m > metres]
    got = 1 - len(misses) / len(outcomes)
    assert got >= share, (
        f"{what}: {got:.2%} of {len(outcomes):,} within {metres:.0f} m "
        f"(target {share:.0%}); worst:\n{worst(misses)}"
    )


def assert_no_confident_wrong(outcomes: list[Outcome], what: str) -> None:
    wrong = [o for o in outcomes if o.confident and o.error_m > WRONG_M]
    assert not wrong, (
        f"{what}: {len(wrong)} of {len(outcomes):,} confident answers more than "
        f"{WRONG_M:.0f} m from the truth; worst:\n{worst(wrong)}"
    )


def test_the_truth_set_covers_the_city():
    """The independent truth is the whole file, not a toy: every range side and corner."""
    ranges, skipped = truth.cambridge_ranges()
    corners, pairs_skipped = truth.cambridge_intersections()
    assert len(ranges) > 9_000 and skipped < len(ranges) / 50
    sides, _ = truth.cambridge_ranges(one_per_side=True)
    assert len(sides) > 3_500
    # Odd and even, first, middle and last numbers all asked.
    assert {int(c.text.split()[0]) % 2 for c in sides} == {0, 1}
    assert len(corners) > 1_400 and pairs_skipped < 40
    # The texts people type, odd and even numbers on both sides.
    texts = {c.text for c in ranges}
    assert "1334 Cambridge St" in texts
    assert "1356 Cambridge Street, Cambridge, MA 02139" in texts
    assert {int(c.text.split()[0]) % 2 for c in ranges} == {0, 1}
    assert any(c.text.startswith("corner of ") for c in corners)
    assert any(" at " in c.text for c in corners)


def test_cambridge_range_addresses_within_25_m(places_db):
    # Every side of every segment, once (the benchmark asks all three numbers of each
    # side in every spelling).
    cases, _ = truth.cambridge_ranges(one_per_side=True)
    outcomes = look_up(places_db, "cambridge", cases)
    assert_share_within(outcomes, RANGE_M, 0.99, "Cambridge range addresses")


def test_cambridge_intersections_all_within_30_m(places_db):
    cases, _ = truth.cambridge_intersections()
    outcomes = look_up(places_db, "cambridge", cases)
    assert_share_within(outcomes, CORNER_M, 1.0, "Cambridge intersections")


def test_cambridge_hard_set_has_no_confident_wrong_answer(places_db):
    cases = truth.cambridge_hard()
    outcomes = look_up(places_db, "cambridge", cases)
    assert_no_confident_wrong(outcomes, "Cambridge hard set")
    # Refusing everything would pass the line above: the misspelled and wrong-ZIP
    # addresses that name one place are still mostly placed.
    placeable = [o for o in outcomes if o.case.kind in {"misspelling", "wrong zip", "two types"}]
    placed = [o for o in placeable if o.error_m <= RANGE_M]
    assert len(placed) >= 0.8 * len(placeable), worst([o for o in placeable if o.error_m > RANGE_M])


def test_los_angeles_address_points_within_25_m(places_db):
    cases = truth.la_cases(every=LA_EVERY)
    outcomes = look_up(places_db, "los-angeles", cases)
    assert_share_within(outcomes, RANGE_M, 0.99, "Los Angeles address points")
    exact = [o for o in outcomes if o.error_m <= 1.0 and o.match_type == "address_point"]
    assert len(exact) >= 0.99 * len(outcomes), "address points are answered with the point"


def test_los_angeles_hard_set_has_no_confident_wrong_answer(places_db):
    outcomes = look_up(places_db, "los-angeles", truth.la_hard())
    assert_no_confident_wrong(outcomes, "Los Angeles hard set")
