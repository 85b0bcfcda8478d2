"""Where an e-mail says the problem is: map links, coordinates, or an address in the text.

The pure parts (:func:`coordinates_in_text`, :func:`place_phrases`) need no database;
:func:`locate_address` hands the phrases to the city's geocoder (``places.geocoder``) and
takes a place only when the geocoder is confident, else it returns the candidates for a
dispatcher to choose. Short links (``maps.app.goo.gl``) are never fetched: the server
makes no outbound requests on behalf of a sender.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote_plus, urlsplit

from sqlalchemy.orm import Session

from places.geocoder import Candidate, GeocodeRefused, geocode
from places.parse import MAX_TEXT
from spatial.models import Jurisdiction

URL_RE = re.compile(r"https?://[^\s<>\"')\]]+|geo:-?\d[^\s<>\"')\]]*", re.I)
NUM = r"[-+]?\d{1,3}(?:\.\d+)?"
PAIR_RE = re.compile(rf"^\s*({NUM})\s*[, ;/]\s*({NUM})\b")
# Decimal degrees in prose: at least 3 decimals each, so "3.5, 12.75" is not a place.
TEXT_PAIR_RE = re.compile(
    r"(?<![\w.])([-+]?\d{1,2}\.\d{3,})\s*[,;]?\s+([-+]?\d{1,3}\.\d{3,})(?![\w.])"
)
TEXT_PAIR_COMMA_RE = re.compile(
    r"(?<![\w.])([-+]?\d{1,2}\.\d{3,})\s*,\s*([-+]?\d{1,3}\.\d{3,})(?![\w.])"
)
DMS_RE = re.compile(
    r"(\d{1,2})\s*°\s*(\d{1,2})\s*['′]\s*(\d{1,2}(?:\.\d+)?)\s*(?:\"|″|'')?\s*([NS])"
    r"[\s,]+"
    r"(\d{1,3})\s*°\s*(\d{1,2})\s*['′]\s*(\d{1,2}(?:\.\d+)?)\s*(?:\"|″|'')?\s*([EW])",
    re.I,
)
GOOGLE_AT_RE = re.compile(rf"@({NUM}),({NUM})(?:,|$)")
GOOGLE_3D4D_RE = re.compile(rf"!3d({NUM})!4d({NUM})")
OSM_MAP_RE = re.compile(rf"map=\d+(?:\.\d+)?/({NUM})/({NUM})")

# A house number, then the words of a street until a word no street name has, a
# punctuation mark or the end of the line: "the light outside 1334 Cambridge St is out".
NUMBER_LED_RE = re.compile(r"(?<![\w.$#/:-])(\d{1,6}[A-Za-z]?)((?:[ \t]+[A-Za-z0-9][\w'.-]*){1,6})")
CORNER_RE = re.compile(r"\bcorner\s+of\s+([^.,;:!?\n]{3,120})", re.I)
# Words that end a street name: "3 cats in the road" is not an address.
NOT_IN_STREET_NAMES = frozenset(
    "the a an in on of at and or to from my our your near by is are was with for has have "
    "had it its this that there been be since again still".split()
)
MAX_PHRASES = 8  # groups of phrases looked up per e-mail
LABELLED_RE = re.compile(
    r"^\s*(?:address|location|where|place|at)\s*[:\-]\s*(.{4,200}?)\s*$", re.I | re.M
)


@dataclass(frozen=True)
class Coordinates:
    lat: float
    lon: float
    source: str


def _plausible(lat: float, lon: float) -> bool:
    return (
        math.isfinite(lat)
        and math.isfinite(lon)
        and -90 <= lat <= 90
        and -180 <= lon <= 180
        and not (lat == 0 and lon == 0)
    )


def _pair(text: str) -> tuple[float, float] | None:
    m = PAIR_RE.match(unquote_plus(text or ""))
    if not m:
        return None
    lat, lon = float(m.group(1)), float(m.group(2))
    return (lat, lon) if _plausible(lat, lon) else None


def coordinates_from_url(url: str) -> tuple[Coordinates | None, str | None]:
    """(coordinates, note) from a Google, OpenStreetMap, Apple Maps or ``geo:`` link."""
    if url.lower().startswith("geo:"):
        pair = _pair(url[4:])
        return (Coordinates(*pair, "geo: link") if pair else None), None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None, None
    host = (parts.hostname or "").lower()
    query = parse_qs(parts.query)
    whole = parts.path + "?" + parts.query + "#" + parts.fragment

    def from_params(names: tuple[str, ...], label: str) -> Coordinates | None:
        for name in names:
            for value in query.get(name, []):
                if (pair := _pair(value)) is not None:
                    return Coordinates(*pair, label)
        return None

    if host in ("goo.gl", "maps.app.goo.gl") or host.endswith(".goo.gl"):
        return None, f"the short map link {url} cannot be read without opening it"
    if "google." in host and ("/maps" in parts.path or host.startswith("maps.")):
        # Place pages: the !3d!4d pair is the pin; "@lat,lon" is only the view centre.
        for regex in (GOOGLE_3D4D_RE, GOOGLE_AT_RE):
            if (m := regex.search(unquote_plus(whole))) is not None:
                lat, lon = float(m.group(1)), float(m.group(2))
                if _plausible(lat, lon):
                    return Coordinates(lat, lon, "Google Maps link"), None
        found = from_params(
            ("q", "query", "ll", "center", "destination", "daddr"), "Google Maps link"
        )
        if found is None and (m := re.search(r"/maps/(?:search|place|dir)/([^/]+)", parts.path)):
            if (pair := _pair(m.group(1))) is not None:
                found = Coordinates(*pair, "Google Maps link")
        return found, None
    if host.endswith("openstreetmap.org") or host in ("osm.org", "www.osm.org"):
        mlat, mlon = query.get("mlat"), query.get("mlon")
        if mlat and mlon:
            try:
                lat, lon = float(mlat[0]), float(mlon[0])
            except ValueError:
                lat = lon = float("nan")
            if _plausible(lat, lon):
                return Coordinates(lat, lon, "OpenStreetMap link"), None
        if (m := OSM_MAP_RE.search(whole)) is not None:
            lat, lon = float(m.group(1)), float(m.group(2))
            if _plausible(lat, lon):
                return Coordinates(lat, lon, "OpenStreetMap link"), None
        return None, None
    if host in ("maps.apple.com", "maps.apple") or host.endswith(".maps.apple.com"):
        return from_params(
            ("ll", "q", "sll", "coordinate", "daddr", "address"), "Apple Maps link"
        ), None
    return None, None


def coordinates_in_text(text: str) -> tuple[list[Coordinates], list[str]]:
    """Every location a text gives, in the order found: links first, then coordinates."""
    found: list[Coordinates] = []
    notes: list[str] = []
    for m in URL_RE.finditer(text or ""):
        coords, note = coordinates_from_url(m.group(0).rstrip(".,;:!?"))
        if coords is not None:
            found.append(coords)
        if note:
            notes.append(note)
    stripped = URL_RE.sub(" ", text or "")
    for m in DMS_RE.finditer(stripped):
        lat = float(m.group(1)) + float(m.group(2)) / 60 + float(m.group(3)) / 3600
        lon = float(m.group(5)) + float(m.group(6)) / 60 + float(m.group(7)) / 3600
        if m.group(4).upper() == "S":
            lat = -lat
        if m.group(8).upper() == "W":
            lon = -lon
        if _plausible(lat, lon):
            found.append(Coordinates(round(lat, 7), round(lon, 7), "coordinates in the text"))
    for regex in (TEXT_PAIR_COMMA_RE, TEXT_PAIR_RE):
        for m in regex.finditer(stripped):
            lat, lon = float(m.group(1)), float(m.group(2))
            if _plausible(lat, lon):
                found.append(Coordinates(lat, lon, "coordinates in the text"))
    return found, notes


def _number_led(match: re.Match) -> list[str]:
    """The phrases a house number starts, longest first: "1334 Cambridge St",
    "1334 Cambridge" (the geocoder judges which one names a street)."""
    words = []
    for word in match.group(2).split():
        if word.lower() in NOT_IN_STREET_NAMES:
            break
        words.append(word.rstrip("."))
    if not words or not any(ch.isalpha() for ch in "".join(words)):
        return []
    return [" ".join([match.group(1), *words[:k]]) for k in range(len(words), 0, -1)]


def place_phrases(text: str) -> list[list[str]]:
    """Groups of phrases of a text that may name a place, in the order to trust them:
    labelled lines ("Location: 5th & Main") and "corner of ..." first, then the phrases
    each house number starts (longest first within its group)."""
    groups: list[list[str]] = []
    for m in LABELLED_RE.finditer(text or ""):
        groups.append([m.group(1).strip().rstrip(".")])
    plain = URL_RE.sub(" ", text or "")
    for m in CORNER_RE.finditer(plain):
        groups.append([m.group(1).strip()])
    # Every house number, so a false start ("3 cats near 100 Main St") hides nothing.
    pos = 0
    while (m := NUMBER_LED_RE.search(plain, pos)) is not None:
        if phrases := _number_led(m):
            groups.append(phrases)
        pos = m.start(1) + len(m.group(1))
    seen: set[str] = set()
    unique = []
    for group in groups:
        if group[0].upper() in seen:
            continue  # the same words as a labelled line, or a repeat
        keep = [p for p in group if p.upper() not in seen and len(p) <= MAX_TEXT]
        seen.update(p.upper() for p in keep)
        if keep:
            unique.append(keep)
    return unique[:MAX_PHRASES]


@dataclass(frozen=True)
class AddressFinding:
    """What the text's addresses came to: ``placed`` (a confident candidate, from
    ``phrase``), else the ``candidates`` a dispatcher may choose from, best first."""

    placed: Candidate | None = None
    phrase: str | None = None
    candidates: list[Candidate] = field(default_factory=list)

    def note(self) -> str | None:
        """One line for staff: where the place came from, or the candidates."""
        if self.placed is not None:
            return (
                f"location taken from the address {self.phrase!r}: {self.placed.address} "
                f"({self.placed.match_type}, score {self.placed.score:.2f})"
            )
        if not self.candidates:
            return None
        listed = "; ".join(
            f"{c.address} ({c.match_type}, score {c.score:.2f}, {c.lat:.6f}, {c.lon:.6f})"
            for c in self.candidates
        )
        return f"the address in the e-mail is not sure; candidates: {listed}"


def locate_address(
    session: Session, city: Jurisdiction, text: str, *, limit: int = 5
) -> AddressFinding:
    """The place the text's addresses name, when the geocoder is confident of one.

    Groups are tried in :func:`place_phrases` order; within one, the best-scoring
    confident candidate wins (the longer phrase on a tie). Phrases the geocoder refuses
    are passed over."""
    unsure: dict[str, Candidate] = {}
    for group in place_phrases(text):
        best: tuple[Candidate, str] | None = None
        for phrase in group:
            try:
                found = geocode(session, city, phrase, limit=limit)
            except GeocodeRefused:
                continue
            pick = found.confident
            if pick is not None and (best is None or pick.score > best[0].score):
                best = (pick, phrase)
            for c in found.candidates:
                if c.address not in unsure or c.score > unsure[c.address].score:
                    unsure[c.address] = c
        if best is not None:
            return AddressFinding(placed=best[0], phrase=best[1])
    ranked = sorted(unsure.values(), key=lambda c: -c.score)[:limit]
    return AddressFinding(candidates=ranked)
