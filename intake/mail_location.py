"""Where an e-mail says the problem is: map links, coordinates, or an address in the text.

The pure parts (:func:`coordinates_in_text`, :func:`address_candidates`) need no database;
:func:`match_address` looks a candidate up in the city's ``address_point`` table, first
as an exact match once case, punctuation and street-type spelling are ignored, then by
pg_trgm similarity above :data:`SIMILARITY_MIN`. Short links (``maps.app.goo.gl``) are
never fetched: the server makes no outbound requests on behalf of a sender.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote_plus, urlsplit

import sqlalchemy as sa
from sqlalchemy.orm import Session

from spatial.models import AddressPoint, Jurisdiction

SIMILARITY_MIN = 0.5

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

STREET_TYPES = {
    "STREET": "ST",
    "ST": "ST",
    "AVENUE": "AVE",
    "AVE": "AVE",
    "AV": "AVE",
    "BOULEVARD": "BLVD",
    "BLVD": "BLVD",
    "ROAD": "RD",
    "RD": "RD",
    "DRIVE": "DR",
    "DR": "DR",
    "WAY": "WAY",
    "PLACE": "PL",
    "PL": "PL",
    "LANE": "LN",
    "LN": "LN",
    "COURT": "CT",
    "CT": "CT",
    "TERRACE": "TER",
    "TER": "TER",
    "PARKWAY": "PKWY",
    "PKWY": "PKWY",
    "HIGHWAY": "HWY",
    "HWY": "HWY",
    "CIRCLE": "CIR",
    "CIR": "CIR",
    "SQUARE": "SQ",
    "SQ": "SQ",
    "ALLEY": "ALY",
    "TRAIL": "TRL",
}
DIRECTIONS = {"NORTH": "N", "SOUTH": "S", "EAST": "E", "WEST": "W"}
_TYPES_RE = "|".join(sorted(STREET_TYPES, key=len, reverse=True))
ADDRESS_RE = re.compile(
    rf"\b(\d{{1,6}}[A-Za-z]?\s+(?:[A-Za-z0-9'.-]+\s+){{0,4}}?(?:{_TYPES_RE}))\b\.?",
    re.I,
)
# Words that end a street name: "3 cats in the road" is not an address.
NOT_IN_STREET_NAMES = frozenset(
    "the a an in on of at and or to from my our your near by is are was with for".split()
)
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


def normalise_address(text: str) -> str:
    """Upper case, no punctuation, one space, street types and directions abbreviated."""
    words = re.sub(r"[^\w]+", " ", text.upper()).split()
    out = []
    for i, word in enumerate(words):
        if word in DIRECTIONS and 0 < i < len(words) - 1:
            word = DIRECTIONS[word]
        elif word in STREET_TYPES and i > 0:
            word = STREET_TYPES[word]
        out.append(word)
    return " ".join(out)


def address_candidates(text: str) -> list[str]:
    """Phrases of a text that look like a street address, labelled lines first."""
    out: list[str] = []
    for m in LABELLED_RE.finditer(text or ""):
        out.append(m.group(1).strip().rstrip("."))
    plain = URL_RE.sub(" ", text or "")
    # Try every house number, so a false start ("3 cats near 100 Main St") hides nothing.
    for start in re.finditer(r"\b\d", plain):
        m = ADDRESS_RE.match(plain, start.start())
        if m is None:
            continue
        words = m.group(1).split()
        if not any(w.lower() in NOT_IN_STREET_NAMES for w in words[1:]):
            out.append(" ".join(words))
    seen: set[str] = set()
    unique = []
    for cand in out:
        key = normalise_address(cand)
        if key and key not in seen:
            seen.add(key)
            unique.append(cand)
    return unique[:10]


def match_address(session: Session, city: Jurisdiction, text: str) -> AddressPoint | None:
    """The address point ``text`` names: exact-ish match first, else pg_trgm similarity."""
    wanted = normalise_address(text)
    if len(wanted) < 4:
        return None
    # Address points are usually abbreviated ("N MAIN ST"): compare in that spelling.
    similarity = sa.func.similarity(AddressPoint.address, wanted)
    rows = session.execute(
        sa.select(AddressPoint, similarity.label("sim"))
        .where(AddressPoint.jurisdiction_id == city.id, AddressPoint.address.op("%")(wanted))
        .order_by(similarity.desc(), AddressPoint.id)
        .limit(10)
    ).all()
    for point, _sim in rows:
        known = normalise_address(point.address)
        # Address points often end in ", ZIP": the street part alone must match.
        if known == wanted or normalise_address(point.address.split(",")[0]) == wanted:
            return point
    if rows and rows[0].sim >= SIMILARITY_MIN:
        return rows[0][0]
    return None
