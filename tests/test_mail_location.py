"""Reading a location out of an e-mail: map links, coordinates, addresses (pure), and the
address match against the city's address points (PostGIS + pg_trgm)."""

from __future__ import annotations

import pytest

from intake.email_intake import gateway_verdict, html_to_text, plain_safe, strip_quoted
from intake.mail_location import coordinates_in_text, locate_address, place_phrases
from tests.support.mail import make_mail_city


@pytest.mark.parametrize(
    ("text", "expected", "source"),
    [
        ("https://www.google.com/maps/@34.0522,-118.2437,17z", (34.0522, -118.2437), "Google"),
        (
            "https://www.google.com/maps/place/City+Hall/@34.05,-118.24,15z/data=!3m1!4b1"
            "!4m6!3m5!1s0x0:0x0!8m2!3d34.0537!4d-118.2428",
            (34.0537, -118.2428),
            "Google",
        ),
        ("see https://maps.google.com/?q=34.0611,-118.2502 thanks", (34.0611, -118.2502), "Google"),
        ("https://www.google.com/maps/search/34.0611,+-118.2502", (34.0611, -118.2502), "Google"),
        (
            "https://www.openstreetmap.org/?mlat=34.07&mlon=-118.22#map=17/34.07/-118.22",
            (34.07, -118.22),
            "OpenStreetMap",
        ),
        ("https://www.openstreetmap.org/#map=18/34.0712/-118.2201", (34.0712, -118.2201), "Open"),
        (
            "https://maps.apple.com/?ll=34.0633,-118.2355&q=Dropped%20Pin",
            (34.0633, -118.2355),
            "Apple",
        ),
        ("geo:34.0501,-118.2601?z=19", (34.0501, -118.2601), "geo"),
        ("It is at 34.05123, -118.25678 exactly", (34.05123, -118.25678), "coordinates"),
        ("GPS 34.05123 -118.25678", (34.05123, -118.25678), "coordinates"),
        ("34°03'08.0\"N 118°14'37.0\"W", (34.052222, -118.243611), "coordinates"),
    ],
)
def test_coordinates_in_text(text, expected, source):
    found, _notes = coordinates_in_text(text)
    assert found, text
    assert (round(found[0].lat, 6), round(found[0].lon, 6)) == expected
    assert source in found[0].source


def test_things_that_are_not_locations():
    for text in ("Version 3.5, 12.75 build", "Call 555-1234", "price 12.50 USD", "0.000, 0.000"):
        assert coordinates_in_text(text)[0] == [], text
    found, notes = coordinates_in_text("pin: https://maps.app.goo.gl/AbCdEf123")
    assert found == [] and "cannot be read without opening it" in notes[0]


def test_place_phrases_labelled_lines_first_then_each_house_number():
    text = "Hi,\nthe light in front of 100 North Main Street is out.\nAddress: 250 W 1st St."
    assert place_phrases(text) == [
        ["250 W 1st St"],
        ["100 North Main Street", "100 North Main", "100 North"],
    ]
    assert place_phrases("I saw 3 cats in the road") == [["3 cats"]]
    assert place_phrases("3 cats near 100 Main St") == [["3 cats"], ["100 Main St", "100 Main"]]
    assert place_phrases("at the corner of Cambridge St and Prospect St, by the bank") == [
        ["Cambridge St and Prospect St"]
    ]
    # Times, prices and references start no address.
    assert place_phrases("since 10:30 today, cost $250 000, ref TV-2026-12") == []


def test_locate_address_through_the_geocoder(sessions):
    with sessions.begin() as s:
        info = make_mail_city(s)
    city = info["city"]
    with sessions() as s:
        found = locate_address(s, city, "the light outside 100 North Main Street is out")
        assert found.placed.address == "100 N MAIN ST, 90012"
        assert found.placed.address_id == "A-100N"
        assert "100 N MAIN ST, 90012" in found.note()
        found = locate_address(s, city, "Hole at 250 W. 1st Street.")
        assert found.placed.address == "250 W 1ST ST, 90012"
        # "Main St" is north and south: the geocoder is not sure which one.
        found = locate_address(s, city, "hole at 100 Main St")
        assert found.placed is None
        assert {c.address for c in found.candidates} >= {
            "100 N MAIN ST, 90012",
            "100 S MAIN ST, 90012",
        }
        assert "not sure" in found.note()
        nothing = locate_address(s, city, "9999 Nowhere Boulevard")
        assert nothing.placed is None


def test_html_to_text_and_plain_safe():
    html = (
        "<div>Hello<br>world &lt;3</div><script>evil()</script>"
        '<ul><li>one</li><li>two</li></ul><a href="javascript:alert(1)">x</a>'
        '<a href="https://example.org/p">site</a>'
    )
    text = html_to_text(html)
    assert "evil" not in text and "javascript" not in text
    assert "Hello\nworld <3" in text and "- one" in text
    assert "site (https://example.org/p)" in text
    safe = plain_safe(text + "\n<b>bold</b> <https://x.example/a> <me@example.org>")
    assert "<" not in safe.replace("<3", "") and "https://x.example/a" in safe
    assert "me@example.org" in safe


def test_strip_quoted_reply():
    text = (
        "New photo attached.\nThanks\n\nOn Mon, 3 Jan 2026, 311 <311@city.example> wrote:\n"
        "> Thank you.\n> Reference: TV-2026-000001\n"
    )
    assert strip_quoted(text) == "New photo attached.\nThanks"
    assert strip_quoted("> only quoted\nmine") == "mine"


@pytest.mark.parametrize(
    ("text", "kept", "gone"),
    [
        (  # Gmail wraps a long attribution line
            "Still broken.\n\nOn Mon, 7 Dec 2026 at 10:00, Testville 311 <\n"
            "311@city.example> wrote:\n> Follow it here: https://x/requests/A?token=s",
            "Still broken.",
            "token",
        ),
        (
            "Still broken.\n\n-----Original Message-----\nFrom: 311\nSent: Monday\ntoken=s",
            "Still broken.",
            "token",
        ),
        (  # Outlook's header block under a rule, no "Original Message"
            "Still broken.\n\n________________________________\nFrom: Testville 311 "
            "<311@city.example>\nSent: Monday, 7 December 2026 10:00\nSubject: [TV-1]\ntoken=s",
            "Still broken.",
            "token",
        ),
        (
            "Still broken.\n\nDe : Testville 311\nEnvoyé : lundi\nObjet : [TV-1]\ntoken=s",
            "Still broken.",
            "token",
        ),
        ("Still broken.\n\nSent from my iPhone", "Still broken.", "iPhone"),
        ("Toujours cassé.\n\nEnvoyé de mon iPhone", "Toujours cassé.", "iPhone"),
        ("Still broken.\n--\nAna Resident\n555 0100", "Still broken.", "555"),
        ("Still broken.\nAm 7.12.2026 schrieb Testville 311:\n> alt", "Still broken.", "alt"),
        # Not a quote: "From:" in the resident's own words, with no header block after it.
        (
            "From: the corner of 1st and Main\nTo: the bridge, the road is flooded.",
            "From: the corner of 1st and Main\nTo: the bridge, the road is flooded.",
            None,
        ),
        ("- pothole one\n- pothole two", "- pothole one\n- pothole two", None),
    ],
)
def test_strip_quoted_leaves_the_senders_own_words(text, kept, gone):
    out = strip_quoted(text)
    assert out == kept
    if gone:
        assert gone not in out


GW = "mx.city.example"


@pytest.mark.parametrize(
    ("headers", "from_addr", "trusted", "expected"),
    [
        ([f"{GW}; dmarc=pass header.from=example.org"], "a@example.org", GW, "pass"),
        ([f"{GW}; dmarc=fail (p=reject) header.from=example.org"], "a@example.org", GW, "fail"),
        ([f"{GW}; spf=pass smtp.mailfrom=a@example.org"], "a@example.org", GW, "pass"),
        ([f"{GW}; spf=pass smtp.mailfrom=bounce@mailer.example"], "a@example.org", GW, "none"),
        ([f"{GW}; dkim=pass header.d=example.org"], "a@news.example.org", GW, "pass"),
        # A signer below the From domain does not speak for it.
        ([f"{GW}; dkim=pass header.d=evil.example.org"], "a@example.org", GW, "none"),
        ([f"{GW}; dkim=fail header.d=example.org; spf=softfail"], "a@example.org", GW, "fail"),
        ([f"{GW}; dkim=fail; spf=pass smtp.mailfrom=example.org"], "a@example.org", GW, "pass"),
        ([f"{GW}; none"], "a@example.org", GW, "none"),
        # Only the gateway's id counts, compared without case; the topmost one decides.
        (["MX.City.Example 1; dmarc=pass"], "a@example.org", GW, "pass"),
        (["mx.other.example; dmarc=pass"], "a@example.org", GW, "none"),
        ([f"{GW}; dmarc=fail", f"{GW}; dmarc=pass"], "a@example.org", GW, "fail"),
        ([f"{GW} (comment); dmarc=pass"], "a@example.org", GW, "pass"),
        ([f"{GW}; dmarc"], "a@example.org", GW, "none"),  # unreadable
        ([f"{GW}; dmarc=pass"], "a@example.org", None, "none"),  # no gateway set
        ([f"{GW}; dmarc=pass"], None, GW, "none"),
    ],
)
def test_gateway_verdict(headers, from_addr, trusted, expected):
    assert gateway_verdict(headers, from_addr, trusted)[0] == expected
