"""``civicpin geocode --city SLUG "TEXT"``: candidates as tab-separated lines, best first;
exit 1 with one line when unsure; exit 2 for text that cannot be looked up."""

from __future__ import annotations

import json

import pytest

from places import store
from places.parse import normalise_street
from spatial.db import make_sessionmaker
from tests.support.city import make_small_city

POINTS = [
    ("A-100", 1111, "S Figueroa St", "90015", -118.2673, 34.0430),
    ("A-103", 12, "Elm St", "90012", -118.2400, 34.0600),
    ("A-104", 12, "Elm Ave", "90013", -118.2500, 34.0700),
]


@pytest.fixture
def city(engine):
    with make_sessionmaker(engine)() as s:
        make_small_city(s)
        from spatial.cities import get_city

        c = get_city(s, "testville")
        dataset = store.begin(
            s, c, "addresses", source_name="points.csv", mapping={}, imported_by="test"
        )
        store.add_addresses(
            s,
            dataset,
            [
                store.AddressRow(
                    lon=lon,
                    lat=lat,
                    number=num,
                    street=normalise_street(street),
                    zip=zip_code,
                    source_id=sid,
                )
                for sid, num, street, zip_code, lon, lat in POINTS
            ],
        )
        store.finish(s, dataset, rows_read=len(POINTS), rows_bad=0)
        s.commit()


def test_a_confident_address_prints_its_line_and_exits_0(cli, city):
    r = cli("geocode", "--city", "testville", "1111 south figueroa street, 90015")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    lines = r.stdout.splitlines()
    assert lines[0].split("\t") == [
        "1.000",
        "address_point",
        "34.0430000",
        "-118.2673000",
        "1111 S FIGUEROA ST, 90015",
    ]


def test_an_unsure_look_up_prints_the_candidates_then_one_error_line(cli, city):
    r = cli("geocode", "--city", "testville", "12 Elm")
    assert r.returncode == 1
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    assert {row[4] for row in rows} >= {"12 ELM ST, 90012", "12 ELM AVE, 90013"}
    assert all(len(row) == 5 and row[1] == "address_point" for row in rows)
    scores = [float(row[0]) for row in rows]
    assert scores == sorted(scores, reverse=True)
    err = r.stderr.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith('civicpin: error: no confident match for "12 Elm"; best: 12 ELM')


def test_limit_and_json(cli, city):
    r = cli("geocode", "--city", "testville", "--limit", "1", "12 Elm")
    assert r.returncode == 1 and len(r.stdout.splitlines()) == 1
    r = cli("geocode", "--city", "testville", "--json", "12 Elm St")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["confident"] is True
    assert out["candidates"][0]["address_id"] == "A-103"
    assert out["candidates"][0]["match_type"] == "address_point"


def test_no_match_at_all(cli, city):
    r = cli("geocode", "--city", "testville", "qqqq zzzz")
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr.strip() == 'civicpin: error: no match for "qqqq zzzz"'


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["x" * 10_000], 2, "too long"),
        (["12 Elm\x07 St"], 2, "control characters"),
        (["--limit", "0", "12 Elm"], 2, "--limit"),
    ],
)
def test_bad_input_is_one_line(cli, city, args, code, message):
    r = cli("geocode", "--city", "testville", *args)
    assert r.returncode == code
    assert r.stdout == ""
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("civicpin: error: ") and message in err[0]


def test_an_unknown_city_is_one_line(cli, city):
    r = cli("geocode", "--city", "nowhere", "12 Elm St")
    assert r.returncode == 1
    assert r.stderr.startswith("civicpin: error: ") and len(r.stderr.strip().splitlines()) == 1
