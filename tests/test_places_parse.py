"""The address parser on what people and city files really write: Los Angeles records,
Cambridge streets, intersections in every form, units, ordinals and junk."""

from __future__ import annotations

import time

import pytest

from places.parse import normalise_street, parse_place

# text -> (kind, normalised, street core, number, suffix, unit, zip, place)
ADDRESSES = [
    ("16815 W VANOWEN ST, 91406",
     ("address", "16815 W VANOWEN ST, 91406", "VANOWEN", 16815, None, None, "91406", None)),
    ("1111 S Figueroa St, Los Angeles, CA 90015",
     ("address", "1111 S FIGUEROA ST, 90015", "FIGUEROA", 1111, None, None, "90015",
      "LOS ANGELES")),
    ("1111 S Figueroa St Los Angeles CA 90015",
     ("address", "1111 S FIGUEROA ST, 90015", "FIGUEROA", 1111, None, None, "90015",
      "LOS ANGELES")),
    ("14500 Roscoe Blvd, Van Nuys, CA 91402",
     ("address", "14500 ROSCOE BLVD, 91402", "ROSCOE", 14500, None, None, "91402", "VAN NUYS")),
    ("200 N. Spring Street, Los Angeles",
     ("address", "200 N SPRING ST", "SPRING", 200, None, None, None, "LOS ANGELES")),
    ("6801 Hollywood Boulevard", ("address", "6801 HOLLYWOOD BLVD", "HOLLYWOOD", 6801, None,
                                  None, None, None)),
    ("795 Massachusetts Avenue, Cambridge, MA 02139",
     ("address", "795 MASSACHUSETTS AVE, 02139", "MASSACHUSETTS", 795, None, None, "02139",
      "CAMBRIDGE")),
    ("795 Massachusetts Ave Cambridge MA",
     ("address", "795 MASSACHUSETTS AVE", "MASSACHUSETTS", 795, None, None, None, "CAMBRIDGE")),
    ("12 Elm St Apt 4", ("address", "12 ELM ST #4", "ELM", 12, None, "4", None, None)),
    ("12 Elm St #4B", ("address", "12 ELM ST #4B", "ELM", 12, None, "4B", None, None)),
    ("12 Elm Street, Unit B", ("address", "12 ELM ST #B", "ELM", 12, None, "B", None, None)),
    ("500 Broadway Ste 200", ("address", "500 BROADWAY #200", "BROADWAY", 500, None, "200",
                              None, None)),
    ("12A Elm St", ("address", "12A ELM ST", "ELM", 12, "A", None, None, None)),
    ("12 1/2 Elm St", ("address", "12 1/2 ELM ST", "ELM", 12, "1/2", None, None, None)),
    ("123 Fifth Ave", ("address", "123 5TH AVE", "5TH", 123, None, None, None, None)),
    ("123 5 Ave", ("address", "123 5TH AVE", "5TH", 123, None, None, None, None)),
    ("40 w 2nd st", ("address", "40 W 2ND ST", "2ND", 40, None, None, None, None)),
    ("1900 Avenue of the Stars", ("address", "1900 AVE OF THE STARS", "AVE OF THE STARS", 1900,
                                  None, None, None, None)),
    ("9 The Circle", ("address", "9 THE CIR", "THE CIR", 9, None, None, None, None)),
    ("45 St Paul St", ("address", "45 ST PAUL ST", "ST PAUL", 45, None, None, None, None)),
    ("3 Reed Street Ct", ("address", "3 REED STREET CT", "REED STREET", 3, None, None, None,
                          None)),
    ("10 South St", ("address", "10 SOUTH ST", "SOUTH", 10, None, None, None, None)),
    ("  the light outside 12 Elm St  ", None),
]  # fmt: skip

INTERSECTIONS = [
    ("5th & Main", ("5TH", "MAIN")),
    ("5th and Main", ("5TH", "MAIN")),
    ("Main St at 5th St", ("MAIN", "5TH")),
    ("Main St @ 5th", ("MAIN", "5TH")),
    ("Main / 5th", ("MAIN", "5TH")),
    ("corner of Mass Ave and Prospect St", ("MASS", "PROSPECT")),
    ("At the corner of Broadway & Inman St", ("BROADWAY", "INMAN")),
    ("Main St y 5th St", ("MAIN", "5TH")),
    ("esquina de Main St y Fifth St", ("MAIN", "5TH")),
    ("Reed St & Reed Street Ct", ("REED", "REED STREET")),
    ("Avon Hill St and Wyman St", ("AVON HILL", "WYMAN")),
    ("S Figueroa St & W Olympic Blvd, Los Angeles, CA 90015", ("FIGUEROA", "OLYMPIC")),
]

STREETS = [
    ("south figueroa street", ("S FIGUEROA ST", "FIGUEROA", "S", "ST", None)),
    ("S FIGUEROA ST", ("S FIGUEROA ST", "FIGUEROA", "S", "ST", None)),
    ("Cambridge St", ("CAMBRIDGE ST", "CAMBRIDGE", None, "ST", None)),
    ("Massachusetts Ave", ("MASSACHUSETTS AVE", "MASSACHUSETTS", None, "AVE", None)),
    ("Northeast 5th Av.", ("NE 5TH AVE", "5TH", "NE", "AVE", None)),
    ("Fifth Str", ("5TH ST", "5TH", None, "ST", None)),
    ("Main St N", ("MAIN ST N", "MAIN", None, "ST", "N")),
    ("Broadway", ("BROADWAY", "BROADWAY", None, None, None)),
    ("The Circle", ("THE CIR", "THE CIR", None, "CIR", None)),
    ("Avenue of the Stars", ("AVE OF THE STARS", "AVE OF THE STARS", None, None, None)),
    ("Monsignor O'Brien Hwy", ("MONSIGNOR OBRIEN HWY", "MONSIGNOR OBRIEN", None, "HWY", None)),
    ("Concord Tpk", ("CONCORD TPKE", "CONCORD", None, "TPKE", None)),
    ("Alewife Brook Pkwy", ("ALEWIFE BROOK PKWY", "ALEWIFE BROOK", None, "PKWY", None)),
    ("South St", ("SOUTH ST", "SOUTH", None, "ST", None)),
    ("West", ("WEST", "WEST", None, None, None)),
    ("Twenty-first", ("TWENTY 1ST", "TWENTY 1ST", None, None, None)),
]


@pytest.mark.parametrize("text, expected", ADDRESSES)
def test_addresses(text, expected):
    p = parse_place(text)
    if expected is None:
        # Words before the number: still an address with the right street.
        assert p is not None and p.street.core == "ELM"
        return
    kind, normalised, core, number, suffix, unit, zip_code, place = expected
    assert p is not None
    got = (p.kind, p.normalised(), p.street.core, p.number, p.number_suffix, p.unit, p.zip, p.place)
    assert got == expected


@pytest.mark.parametrize("text, cores", INTERSECTIONS)
def test_intersections_in_every_form(text, cores):
    p = parse_place(text)
    assert p is not None and p.kind == "intersection", p
    assert (p.street.core, p.cross.core) == cores
    assert " & " in p.normalised()


def test_an_intersection_keeps_the_zip_and_city_off_the_streets():
    p = parse_place("S Figueroa St & W Olympic Blvd, Los Angeles, CA 90015")
    assert p.normalised() == "S FIGUEROA ST & W OLYMPIC BLVD, 90015"
    assert (p.place, p.state, p.zip) == ("LOS ANGELES", "CA", "90015")


@pytest.mark.parametrize("text, expected", STREETS)
def test_street_names_normalise_to_usps_forms(text, expected):
    s = normalise_street(text)
    assert (s.name, s.core, s.predir, s.type, s.postdir) == expected


def test_a_city_file_and_a_resident_meet():
    """The file's way and a person's way of one street give the same name and core."""
    pairs = [
        ("S FIGUEROA ST", "south figueroa street"),
        ("W 5TH ST", "West Fifth Street"),
        ("MASSACHUSETTS AVE", "Massachusetts Avenue"),
        ("MARTIN LUTHER KING JR BLVD", "Martin Luther King Jr. Boulevard"),
        ("N 1ST ST", "North First Street"),
    ]
    for file_name, typed in pairs:
        assert normalise_street(file_name) == normalise_street(typed)


def test_a_street_alone_and_the_city_name_is_never_a_street():
    p = parse_place("Figueroa St, Los Angeles")
    assert (p.kind, p.street.name, p.place) == ("street", "FIGUEROA ST", "LOS ANGELES")
    p = parse_place("1111 S Figueroa St, Los Angeles")
    assert "LOS ANGELES" not in p.street.name


@pytest.mark.parametrize("text", ["", "   ", ",,,", "12 Elm\x00St", "&&&"])
def test_junk_is_none(text):
    assert parse_place(text) is None


def test_normalise_street_is_fast_for_an_import():
    names = [f"{d} {n} {t}" for d in ("N", "S", "") for n in range(1, 200)
             for t in ("St", "Ave", "Blvd", "Street")]  # fmt: skip
    rows = names * 40  # a city file repeats each name many times
    start = time.perf_counter()
    for name in rows:
        normalise_street(name)
    per_second = len(rows) / (time.perf_counter() - start)
    assert per_second > 20_000, per_second
