"""What people type, taken apart: an address, an intersection or a street, normalised.

Built on ``usaddress`` (a probabilistic US address parser). Normalisation makes the
city's file and a resident's text meet: USPS street types ("Street" -> "ST"),
directions ("South" -> "S"), ordinals ("Fifth" -> "5TH"), units ("Apt 4" -> unit "4"),
and trailing city, state or ZIP text taken off the street. Pure functions: no database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import usaddress

MAX_TEXT = 200  # longer texts are refused (places.geocoder.GeocodeRefused)

# USPS Publication 28, Appendix C1 (street suffix abbreviations): the standard
# abbreviation, then the primary name and the common variants that map to it.
_SUFFIXES: dict[str, tuple[str, ...]] = {
    "ALY": ("ALLEY", "ALLEE", "ALLY"),
    "ANX": ("ANNEX", "ANEX", "ANNX"),
    "ARC": ("ARCADE",),
    "AVE": ("AVENUE", "AV", "AVEN", "AVENU", "AVN", "AVNUE"),
    "BYU": ("BAYOU", "BAYOO"),
    "BCH": ("BEACH",),
    "BND": ("BEND",),
    "BLF": ("BLUFF", "BLUF"),
    "BLFS": ("BLUFFS",),
    "BTM": ("BOTTOM", "BOT", "BOTTM"),
    "BLVD": ("BOULEVARD", "BOUL", "BOULV", "BLV"),
    "BR": ("BRANCH", "BRNCH"),
    "BRG": ("BRIDGE", "BRDGE"),
    "BRK": ("BROOK",),
    "BRKS": ("BROOKS",),
    "BG": ("BURG",),
    "BGS": ("BURGS",),
    "BYP": ("BYPASS", "BYPA", "BYPAS", "BYPS"),
    "CP": ("CAMP", "CMP"),
    "CYN": ("CANYON", "CANYN", "CNYN"),
    "CPE": ("CAPE",),
    "CSWY": ("CAUSEWAY", "CAUSWA"),
    "CTR": ("CENTER", "CEN", "CENT", "CENTR", "CENTRE", "CNTER", "CNTR"),
    "CTRS": ("CENTERS",),
    "CIR": ("CIRCLE", "CIRC", "CIRCL", "CRCL", "CRCLE"),
    "CIRS": ("CIRCLES",),
    "CLF": ("CLIFF",),
    "CLFS": ("CLIFFS",),
    "CLB": ("CLUB",),
    "CMN": ("COMMON",),
    "CMNS": ("COMMONS",),
    "COR": ("CORNER",),
    "CORS": ("CORNERS",),
    "CRSE": ("COURSE",),
    "CT": ("COURT",),
    "CTS": ("COURTS",),
    "CV": ("COVE",),
    "CVS": ("COVES",),
    "CRK": ("CREEK",),
    "CRES": ("CRESCENT", "CRSENT", "CRSNT"),
    "CRST": ("CREST",),
    "XING": ("CROSSING", "CRSSNG"),
    "XRD": ("CROSSROAD",),
    "XRDS": ("CROSSROADS",),
    "CURV": ("CURVE",),
    "DL": ("DALE",),
    "DM": ("DAM",),
    "DV": ("DIVIDE", "DIV", "DVD"),
    "DR": ("DRIVE", "DRIV", "DRV"),
    "DRS": ("DRIVES",),
    "EST": ("ESTATE",),
    "ESTS": ("ESTATES",),
    "EXPY": ("EXPRESSWAY", "EXP", "EXPR", "EXPRESS", "EXPW"),
    "EXT": ("EXTENSION", "EXTN", "EXTNSN"),
    "EXTS": ("EXTENSIONS",),
    "FALL": ("FALL",),
    "FLS": ("FALLS",),
    "FRY": ("FERRY", "FRRY"),
    "FLD": ("FIELD",),
    "FLDS": ("FIELDS",),
    "FLT": ("FLAT",),
    "FLTS": ("FLATS",),
    "FRD": ("FORD",),
    "FRDS": ("FORDS",),
    "FRST": ("FOREST", "FORESTS"),
    "FRG": ("FORGE", "FORG"),
    "FRGS": ("FORGES",),
    "FRK": ("FORK",),
    "FRKS": ("FORKS",),
    "FT": ("FORT", "FRT"),
    "FWY": ("FREEWAY", "FREEWY", "FRWAY", "FRWY"),
    "GDN": ("GARDEN", "GARDN", "GRDEN", "GRDN"),
    "GDNS": ("GARDENS", "GRDNS"),
    "GTWY": ("GATEWAY", "GATEWY", "GATWAY", "GTWAY"),
    "GLN": ("GLEN",),
    "GLNS": ("GLENS",),
    "GRN": ("GREEN",),
    "GRNS": ("GREENS",),
    "GRV": ("GROVE", "GROV"),
    "GRVS": ("GROVES",),
    "HBR": ("HARBOR", "HARB", "HARBR", "HRBOR"),
    "HBRS": ("HARBORS",),
    "HVN": ("HAVEN",),
    "HTS": ("HEIGHTS", "HT"),
    "HWY": ("HIGHWAY", "HIGHWY", "HIWAY", "HIWY", "HWAY"),
    "HL": ("HILL",),
    "HLS": ("HILLS",),
    "HOLW": ("HOLLOW", "HLLW", "HOLLOWS", "HOLWS"),
    "INLT": ("INLET",),
    "IS": ("ISLAND", "ISLND"),
    "ISS": ("ISLANDS", "ISLNDS"),
    "ISLE": ("ISLES",),
    "JCT": ("JUNCTION", "JCTION", "JCTN", "JUNCTN", "JUNCTON"),
    "JCTS": ("JUNCTIONS", "JCTNS"),
    "KY": ("KEY",),
    "KYS": ("KEYS",),
    "KNL": ("KNOLL", "KNOL"),
    "KNLS": ("KNOLLS",),
    "LK": ("LAKE",),
    "LKS": ("LAKES",),
    "LAND": ("LAND",),
    "LNDG": ("LANDING", "LNDNG"),
    "LN": ("LANE",),
    "LGT": ("LIGHT",),
    "LGTS": ("LIGHTS",),
    "LF": ("LOAF",),
    "LCK": ("LOCK",),
    "LCKS": ("LOCKS",),
    "LDG": ("LODGE", "LDGE", "LODG"),
    "LOOP": ("LOOPS",),
    "MALL": ("MALL",),
    "MNR": ("MANOR",),
    "MNRS": ("MANORS",),
    "MDW": ("MEADOW",),
    "MDWS": ("MEADOWS", "MDW", "MEDOWS"),
    "MEWS": ("MEWS",),
    "ML": ("MILL",),
    "MLS": ("MILLS",),
    "MSN": ("MISSION", "MISSN", "MSSN"),
    "MTWY": ("MOTORWAY",),
    "MT": ("MOUNT", "MNT"),
    "MTN": ("MOUNTAIN", "MNTAIN", "MNTN", "MOUNTIN", "MTIN"),
    "MTNS": ("MOUNTAINS", "MNTNS"),
    "NCK": ("NECK",),
    "ORCH": ("ORCHARD", "ORCHRD"),
    "OVAL": ("OVL",),
    "OPAS": ("OVERPASS",),
    "PARK": ("PARKS", "PRK"),
    "PKWY": ("PARKWAY", "PARKWY", "PKWAY", "PKY", "PARKWAYS", "PKWYS"),
    "PASS": ("PASS",),
    "PSGE": ("PASSAGE",),
    "PATH": ("PATHS",),
    "PIKE": ("PIKES",),
    "PNE": ("PINE",),
    "PNES": ("PINES",),
    "PL": ("PLACE",),
    "PLN": ("PLAIN",),
    "PLNS": ("PLAINS",),
    "PLZ": ("PLAZA", "PLZA"),
    "PT": ("POINT",),
    "PTS": ("POINTS",),
    "PRT": ("PORT",),
    "PRTS": ("PORTS",),
    "PR": ("PRAIRIE", "PRR"),
    "RADL": ("RADIAL", "RAD", "RADIEL"),
    "RAMP": ("RAMP",),
    "RNCH": ("RANCH", "RANCHES", "RNCHS"),
    "RPD": ("RAPID",),
    "RPDS": ("RAPIDS",),
    "RST": ("REST",),
    "RDG": ("RIDGE", "RDGE"),
    "RDGS": ("RIDGES",),
    "RIV": ("RIVER", "RVR", "RIVR"),
    "RD": ("ROAD",),
    "RDS": ("ROADS",),
    "RTE": ("ROUTE",),
    "ROW": ("ROW",),
    "RUE": ("RUE",),
    "RUN": ("RUN",),
    "SHL": ("SHOAL",),
    "SHLS": ("SHOALS",),
    "SHR": ("SHORE", "SHOAR"),
    "SHRS": ("SHORES", "SHOARS"),
    "SKWY": ("SKYWAY",),
    "SPG": ("SPRING", "SPNG", "SPRNG"),
    "SPGS": ("SPRINGS", "SPNGS", "SPRNGS"),
    "SPUR": ("SPURS",),
    "SQ": ("SQUARE", "SQR", "SQRE", "SQU"),
    "SQS": ("SQUARES", "SQRS"),
    "STA": ("STATION", "STATN", "STN"),
    "STRA": ("STRAVENUE", "STRAV", "STRAVEN", "STRAVN", "STRVN", "STRVNUE"),
    "STRM": ("STREAM", "STREME"),
    "ST": ("STREET", "STRT", "STR"),
    "STS": ("STREETS",),
    "SMT": ("SUMMIT", "SUMIT", "SUMITT"),
    "TER": ("TERRACE", "TERR"),
    "TRWY": ("THROUGHWAY",),
    "TRCE": ("TRACE", "TRACES"),
    "TRAK": ("TRACK", "TRACKS", "TRK", "TRKS"),
    "TRFY": ("TRAFFICWAY",),
    "TRL": ("TRAIL", "TRAILS", "TRLS"),
    "TRLR": ("TRAILER", "TRLRS"),
    "TUNL": ("TUNNEL", "TUNEL", "TUNLS", "TUNNELS", "TUNNL"),
    "TPKE": ("TURNPIKE", "TRNPK", "TURNPK"),
    "UPAS": ("UNDERPASS",),
    "UN": ("UNION",),
    "UNS": ("UNIONS",),
    "VLY": ("VALLEY", "VALLY", "VLLY"),
    "VLYS": ("VALLEYS",),
    "VIA": ("VIADUCT", "VDCT", "VIADCT"),
    "VW": ("VIEW",),
    "VWS": ("VIEWS",),
    "VLG": ("VILLAGE", "VILL", "VILLAG", "VILLG", "VILLIAGE"),
    "VLGS": ("VILLAGES",),
    "VL": ("VILLE",),
    "VIS": ("VISTA", "VIST", "VST", "VSTA"),
    "WALK": ("WALKS",),
    "WALL": ("WALL",),
    "WAY": ("WY",),
    "WAYS": ("WAYS",),
    "WL": ("WELL",),
    "WLS": ("WELLS",),
}
STREET_TYPES: dict[str, str] = {}
for _std, _variants in _SUFFIXES.items():
    STREET_TYPES[_std] = _std
    for _v in _variants:
        STREET_TYPES.setdefault(_v, _std)
# Not in Publication 28 but common in city files ("Austin Pk", "Sq." handled above).
STREET_TYPES.setdefault("PK", "PARK")
STREET_TYPES.setdefault("TPK", "TPKE")

DIRECTIONS: dict[str, str] = {
    "N": "N",
    "NORTH": "N",
    "S": "S",
    "SOUTH": "S",
    "E": "E",
    "EAST": "E",
    "W": "W",
    "WEST": "W",
    "NE": "NE",
    "NORTHEAST": "NE",
    "NW": "NW",
    "NORTHWEST": "NW",
    "SE": "SE",
    "SOUTHEAST": "SE",
    "SW": "SW",
    "SOUTHWEST": "SW",
    "NORTE": "N",
    "SUR": "S",
    "ESTE": "E",
    "OESTE": "W",
}

_ORDINAL_WORDS = {
    "FIRST": 1,
    "SECOND": 2,
    "THIRD": 3,
    "FOURTH": 4,
    "FIFTH": 5,
    "SIXTH": 6,
    "SEVENTH": 7,
    "EIGHTH": 8,
    "NINTH": 9,
    "TENTH": 10,
    "ELEVENTH": 11,
    "TWELFTH": 12,
    "THIRTEENTH": 13,
    "FOURTEENTH": 14,
    "FIFTEENTH": 15,
    "SIXTEENTH": 16,
    "SEVENTEENTH": 17,
    "EIGHTEENTH": 18,
    "NINETEENTH": 19,
    "TWENTIETH": 20,
}

UNIT_WORDS = {
    "APT": "APT",
    "APARTMENT": "APT",
    "UNIT": "UNIT",
    "STE": "STE",
    "SUITE": "STE",
    "RM": "RM",
    "ROOM": "RM",
    "FL": "FL",
    "FLOOR": "FL",
    "BLDG": "BLDG",
    "BUILDING": "BLDG",
    "LOT": "LOT",
    "SPC": "SPC",
    "SPACE": "SPC",
    "TRLR": "TRLR",
    "DEPT": "DEPT",
    "#": "#",
    "NO": "#",
}

STATES = {
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL",
    "IN", "IA", "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE",
    "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD",
    "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY", "PR", "GU", "VI",
    "CALIFORNIA", "MASSACHUSETTS", "NEW YORK", "TEXAS", "ILLINOIS", "FLORIDA",
}  # fmt: skip
_STATE_WORDS = {s for s in STATES if " " not in s}

# Words that are the whole of a street's name apart from its type ("The Circle").
_ARTICLES = {"THE", "LA", "EL", "LOS", "LAS", "DE", "OF"}


@dataclass(frozen=True)
class Street:
    """A normalised street: ``name`` "S FIGUEROA ST", ``core`` "FIGUEROA"."""

    name: str
    core: str
    predir: str | None = None
    type: str | None = None
    postdir: str | None = None


@dataclass(frozen=True)
class ParsedPlace:
    """One text, parsed. ``kind`` is 'address', 'intersection' or 'street'.

    An 'address' has ``number`` and ``street``; an 'intersection' has ``street`` and
    ``cross``; a 'street' has only ``street``. ``zip``, ``place`` and ``state`` are what
    the text said (None when it said nothing).
    """

    kind: str
    street: Street
    number: int | None = None
    number_suffix: str | None = None
    unit: str | None = None
    cross: Street | None = None
    zip: str | None = None
    place: str | None = None
    state: str | None = None

    def normalised(self) -> str:
        """The normalised text: "1111 S FIGUEROA ST, 90015", "5TH ST & MAIN ST"."""
        if self.kind == "intersection" and self.cross is not None:
            text = f"{self.street.name} & {self.cross.name}"
        elif self.number is not None:
            num = str(self.number)
            if self.number_suffix:
                sep = " " if "/" in self.number_suffix else ""
                num = f"{num}{sep}{self.number_suffix}"
            text = f"{num} {self.street.name}"
            if self.unit:
                text += f" #{self.unit}"
        else:
            text = self.street.name
        if self.zip:
            text += f", {self.zip}"
        return text


def ordinal(n: int) -> str:
    """12 -> "12TH", 1 -> "1ST", 22 -> "22ND"."""
    if 10 <= n % 100 <= 20:
        suffix = "TH"
    else:
        suffix = {1: "ST", 2: "ND", 3: "RD"}.get(n % 10, "TH")
    return f"{n}{suffix}"


_ORDINAL_RE = re.compile(r"^(\d+)(ST|ND|RD|TH)$")
_TOKEN_RE = re.compile(r"[A-Z0-9]+(?:'[A-Z]+)?|&|/|@|#|½")


def _tokens(text: str) -> list[str]:
    # Apostrophes inside a word go ("O'Brien" -> "OBRIEN"); other punctuation splits.
    return [t.replace("'", "") for t in _TOKEN_RE.findall(text.upper().replace(".", ""))]


def _name_token(tok: str) -> str:
    """A word of a street's name: ordinals written out or bare become "5TH"."""
    if tok in _ORDINAL_WORDS:
        return ordinal(_ORDINAL_WORDS[tok])
    m = _ORDINAL_RE.match(tok)
    if m:
        return ordinal(int(m.group(1)))
    return tok


def _street_from_tokens(toks: list[str]) -> Street | None:
    toks = [t for t in toks if t not in ("&", "/", "@", "#", "½")]
    if not toks:
        return None
    predir = postdir = stype = None
    # A direction is the name itself when only a type would be left ("South St").
    if len(toks) > 1 and toks[0] in DIRECTIONS and not (len(toks) == 2 and toks[1] in STREET_TYPES):
        predir = DIRECTIONS[toks[0]]
        toks = toks[1:]
    if (
        len(toks) > 1
        and toks[-1] in DIRECTIONS
        and not (len(toks) == 2 and toks[0] in STREET_TYPES)
    ):
        postdir = DIRECTIONS[toks[-1]]
        toks = toks[:-1]
    if len(toks) > 1 and toks[-1] in STREET_TYPES:
        stype = STREET_TYPES[toks[-1]]
        toks = toks[:-1]
    elif len(toks) > 1 and toks[0] in STREET_TYPES and toks[0] not in ("ST", "MT", "FT"):
        # A leading type ("Avenue of the Stars", "Highway 101") is part of the name.
        toks = [STREET_TYPES[toks[0]], *toks[1:]]
    name_toks = [_name_token(t) for t in toks]
    if len(name_toks) == 1 and name_toks[0].isdigit() and stype is not None:
        # "5 St" is Fifth Street; a bare number with a type is an ordinal.
        name_toks = [ordinal(int(name_toks[0]))]
    if len(name_toks) == 1 and name_toks[0].isdigit() and stype is None and predir is None:
        name_toks = [ordinal(int(name_toks[0]))]
    core = " ".join(name_toks)
    if all(t in _ARTICLES for t in name_toks) and stype:
        # "The Circle": the type is the name; keep it in the core.
        core = f"{core} {stype}"
    name = " ".join(p for p in (predir, " ".join(name_toks), stype, postdir) if p)
    return Street(name=name, core=core, predir=predir, type=stype, postdir=postdir)


@lru_cache(maxsize=200_000)
def normalise_street(text: str) -> Street | None:
    """A street name from a file or a person ("south figueroa street") normalised."""
    if not text:
        return None
    return _street_from_tokens(_tokens(text))


# ---------------------------------------------------------------------------
# Whole texts

_ZIP_RE = re.compile(r"\b(\d{5})(?:-\d{4})?\s*$")
_CORNER_RE = re.compile(r"^\s*(?:(?:AT\s+)?THE\s+)?(?:CORNER|ESQUINA)\s+(?:OF|DE)\s+", re.I)
# "E" joins two streets only when no house number stands before it: "742 E 82ND ST" is East.
_INTERSECTION_SPLIT = re.compile(
    r"\s*(?:&|\bAND\b|\bAT\b|@|/|\bY\b|(?<!\d\s)\bE\b(?=\s+\d))\s*", re.I
)
_UNIT_RE = re.compile(
    r"(?:,\s*|\s+)(?:(APT|APARTMENT|UNIT|STE|SUITE|RM|ROOM|FL|FLOOR|BLDG|BUILDING|LOT|SPC|SPACE|"
    r"DEPT)\b\.?\s*#?\s*|#\s*)([A-Z0-9-]+)\b",
    re.I,
)
_NUMBER_RE = re.compile(
    r"^\s*(\d{1,7})(?:-\d{1,7})?(?:([A-Z])(?=\s))?(?:\s+(1/2|½))?\s+(.*)$", re.I
)
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def _strip_tail(text: str) -> tuple[str, str | None, str | None, str | None]:
    """``text`` without its trailing ", City, ST 12345"; (rest, place, state, zip)."""
    zip_code = place = state = None
    text = text.strip().rstrip(",").strip()
    text = re.sub(r",?\s*(USA|U\.S\.A\.|UNITED STATES)\s*$", "", text, flags=re.I).strip()
    m = _ZIP_RE.search(text)
    if m and m.start() > 0:
        before = text[: m.start()].rstrip()
        # A ZIP is trailing text only after a comma, a state, or after a street address
        # ("16815 W VANOWEN ST 91406"); never the house number itself.
        if before and not before.isdigit():
            zip_code = m.group(1)
            text = before.rstrip(",").strip()
    parts = [p.strip() for p in text.split(",")]
    if len(parts) > 1:
        tail = parts[1:]
        head = parts[0]
        # ", Los Angeles, CA" / ", Cambridge MA" / ", CA"
        rest: list[str] = []
        for p in tail:
            words = p.upper().split()
            if words and words[-1] in _STATE_WORDS:
                state = words[-1]
                words = words[:-1]
            if not words:
                continue
            if _UNIT_RE.match(" " + p) or p.startswith("#"):
                rest.append(p)
            elif place is None:
                place = " ".join(words)
        text = ", ".join([head, *rest])
    else:
        # No comma: a trailing state word after a street type ("... St Cambridge MA").
        words = text.split()
        # "Reed Street Ct" ends in a type, not in Connecticut, unless a ZIP follows.
        last = words[-1].upper() if words else ""
        if (
            len(words) > 2
            and last in _STATE_WORDS
            and (zip_code is not None or last not in STREET_TYPES)
        ):
            state = words[-1].upper()
            text = " ".join(words[:-1])
    return text, place, state, zip_code


def _split_unit(text: str) -> tuple[str, str | None]:
    m = _UNIT_RE.search(text)
    if not m:
        return text, None
    unit = m.group(2).upper()
    return (text[: m.start()] + text[m.end() :]).strip(), unit


def _tag(text: str) -> dict[str, str]:
    """usaddress's labels for ``text``; on a repeated label, the first of each."""
    try:
        tagged, _ = usaddress.tag(text)
        return dict(tagged)
    except usaddress.RepeatedLabelError as e:
        out: dict[str, str] = {}
        for tok, label in e.parsed_string:
            if label in out:
                if label.startswith("StreetName") or label == "AddressNumber":
                    continue
                out[label] = f"{out[label]} {tok}"
            else:
                out[label] = tok
        return out


_STREET_LABELS = (
    "StreetNamePreModifier",
    "StreetNamePreDirectional",
    "StreetNamePreType",
    "StreetName",
    "StreetNamePostType",
    "StreetNamePostDirectional",
    "StreetNamePostModifier",
)


def _street_part(text: str) -> tuple[Street | None, str | None]:
    """The street of ``text`` (a street with no number) and any place name usaddress saw
    after it, for text without commas ("Main St Cambridge")."""
    toks = _tokens(text)
    if not toks:
        return None, None
    # Cut after the last street type when more words follow that are not a direction:
    # those are a place name ("Figueroa St Los Angeles"). A leading type stays.
    place = None
    for i in range(len(toks) - 1, 0, -1):
        if toks[i] in STREET_TYPES and i == len(toks) - 1:
            break
        if toks[i] in STREET_TYPES:
            rest = toks[i + 1 :]
            if len(rest) == 1 and rest[0] in DIRECTIONS:
                break
            if rest and rest[0] in DIRECTIONS:
                rest = rest[1:]
                i += 1
            if rest and not any(t.isdigit() for t in rest):
                place = " ".join(rest)
                toks = toks[: i + 1]
            break
    return _street_from_tokens(toks), place


@lru_cache(maxsize=10_000)
def parse_place(text: str) -> ParsedPlace | None:
    """``text`` parsed, or None when it holds no street at all."""
    if not text or _CONTROL_RE.search(text):
        return None
    text = " ".join(text.split())[: MAX_TEXT * 2]
    if not text:
        return None
    body, place, state, zip_code = _strip_tail(text)
    body = _CORNER_RE.sub("", body)
    body, unit = _split_unit(body)
    # "12 1/2 Elm St": the half is a number suffix, not an intersection's "/".
    body = re.sub(r"(?<=\d)\s+1/2\b", " ½", body)

    parts = [p for p in _INTERSECTION_SPLIT.split(body) if p.strip()]
    if len(parts) == 2:
        first, second = parts
        m = _NUMBER_RE.match(first)
        a, place_a = _street_part(first if not (m and m.group(4)) else m.group(4))
        b, place_b = _street_part(second)
        if a and b and a.name != b.name:
            if m and m.group(4) and a:
                # "12 Main St at 5th St": an address, the cross street a hint.
                return ParsedPlace(
                    kind="address",
                    street=a,
                    number=int(m.group(1)),
                    number_suffix=(m.group(2) or m.group(3) or "").upper().replace("½", "1/2")
                    or None,
                    unit=unit,
                    cross=b,
                    zip=zip_code,
                    place=place or place_b,
                    state=state,
                )
            return ParsedPlace(
                kind="intersection",
                street=a,
                cross=b,
                zip=zip_code,
                place=place or place_b or place_a,
                state=state,
            )

    if not body[:1].isdigit():
        # Words before the address ("the light outside 12 Elm St"): start at the first
        # house number, unless the word before it makes it a name ("Highway 101").
        lead = re.search(r"(?:^|\s)(\d{1,7}[A-Z]?\s+[A-Z].*)$", body, re.I)
        before = _tokens(body[: lead.start(1)]) if lead else []
        if lead and before and before[-1] not in STREET_TYPES and before[-1] not in DIRECTIONS:
            body = lead.group(1)
    m = _NUMBER_RE.match(body)
    if m and m.group(4).strip():
        rest = m.group(4)
        # A number that is a street name ("5th St", "5 St") is not a house number.
        if (
            rest.strip().split()[0].upper() not in DIRECTIONS
            and len(rest.split()) == 1
            and rest.split()[0].upper() in STREET_TYPES
        ):
            m = None
    if m and m.group(4).strip():
        number = int(m.group(1))
        suffix = (m.group(2) or m.group(3) or "").upper().replace("½", "1/2") or None
        rest = m.group(4)
        street, place_b = _street_for_address(f"{m.group(1)} {rest}")
        if street is None:
            return None
        return ParsedPlace(
            kind="address",
            street=street,
            number=number,
            number_suffix=suffix,
            unit=unit,
            zip=zip_code,
            place=place or place_b,
            state=state,
        )
    street, place_b = _street_part(body)
    if street is None:
        return None
    return ParsedPlace(
        kind="street", street=street, zip=zip_code, place=place or place_b, state=state
    )


def _street_for_address(text: str) -> tuple[Street | None, str | None]:
    """The street of "NUMBER STREET [PLACE]" via usaddress, with a rule-based fallback."""
    tags = _tag(text)
    parts = [tags[label] for label in _STREET_LABELS if label in tags]
    place = tags.get("PlaceName")
    # usaddress is trusted when its reading is whole: the number where we saw it, and no
    # state left in what is already without one ("26 St Sauveur Ct" is not in CT).
    sane = "AddressNumber" in tags and "StateName" not in tags
    if sane and parts and "StreetName" in tags:
        street = _street_from_tokens(_tokens(" ".join(parts)))
        if street is not None:
            if place and _tokens(place) and _tokens(place)[0] in STREET_TYPES:
                # usaddress took a type for a place ("Main Street" -> "Main" + "Street").
                return _street_part(text.split(None, 1)[1])
            return street, place.upper() if place else None
    rest = text.split(None, 1)
    return _street_part(rest[1] if len(rest) > 1 else "")
