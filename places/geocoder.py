"""The geocoder: a text to candidate points, and a point back to words.

One look-up is one SQL statement (pg_trgm on the street names, exact numbers, range
interpolation with ``ST_LineInterpolatePoint``), so it is fast and the same in every
process. Matches, best first: the city's address point; interpolation along a street
segment whose range on that side holds the number; an intersection; the street alone.
It never places a report silently: :attr:`Geocoded.confident` is None below
:data:`CONFIDENT`, and every channel then asks or refuses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from math import cos, radians, sqrt

import sqlalchemy as sa
from sqlalchemy.orm import Session

from places.parse import MAX_TEXT, ParsedPlace, Street, normalise_street, parse_place
from spatial.errors import InvalidInput
from spatial.models import Jurisdiction

CONFIDENT = 0.8  # a candidate scoring this or more may be used without asking
REVERSE_MAX_M = 60.0  # a dropped pin takes an address within this distance
MATCH_TYPES = ("address_point", "range", "intersection", "street")
AMBIGUOUS_GAP = 0.1  # another candidate this close in score ...
AMBIGUOUS_M = 100.0  # ... and this far away makes the best one unsure


class GeocodeRefused(InvalidInput):
    """The text cannot be looked up (too long, control characters); ``field`` 'address'."""


@dataclass(frozen=True)
class Candidate:
    """One place a text may mean. ``score`` is 0..1; ``address`` the normalised text;
    ``address_id`` the city's own id when it is an address point."""

    score: float
    match_type: str
    lat: float
    lon: float
    address: str
    address_id: str | None = None

    def as_json(self) -> dict:
        out = {
            "score": round(self.score, 3),
            "match_type": self.match_type,
            "lat": round(self.lat, 7),
            "lon": round(self.lon, 7),
            "address": self.address,
        }
        if self.address_id is not None:
            out["address_id"] = self.address_id
        return out


@dataclass(frozen=True)
class Geocoded:
    """The candidates for ``query``, best first."""

    query: str
    candidates: list[Candidate] = field(default_factory=list)
    # Set when the best candidate is unsure judged over every candidate, those left
    # out by ``limit`` too.
    ambiguous: bool = False

    @property
    def confident(self) -> Candidate | None:
        """The best candidate if it may be used without asking the person, else None.

        Confident when it scores :data:`CONFIDENT` or more and no other candidate of a
        similar score (within :data:`AMBIGUOUS_GAP`) lies more than
        :data:`AMBIGUOUS_M` metres away: "12 Elm" with 12 ELM ST and 12 ELM AVE asks.
        """
        if not self.candidates or self.ambiguous:
            return None
        best = self.candidates[0]
        if best.score < CONFIDENT:
            return None
        for other in self.candidates[1:]:
            if other.score >= best.score - AMBIGUOUS_GAP and _metres(best, other) > AMBIGUOUS_M:
                return None
        return best


@dataclass(frozen=True)
class ReversePlace:
    """Words for a point: an address ("12 ELM ST") or "near MAIN ST and 5TH ST".

    ``match_type`` is 'address_point', 'range' or 'near'.
    """

    address: str
    match_type: str
    distance_m: float
    address_id: str | None = None


def check_text(text: str | None) -> str:
    """``text`` on one line with single spaces; raises :class:`GeocodeRefused` when it
    is longer than ``places.parse.MAX_TEXT`` or holds control characters."""
    if text is None:
        raise GeocodeRefused("Type an address, an intersection or a street.", field="address")
    if not isinstance(text, str):
        raise GeocodeRefused("The address must be text.", field="address")
    if len(text) > MAX_TEXT:
        raise GeocodeRefused(
            f"The address is too long ({len(text):,} characters; at most {MAX_TEXT}).",
            field="address",
        )
    # Tabs and line breaks from a pasted address are spaces; any other control
    # character is not something a person typed.
    if _CONTROL_RE.search(text.replace("\t", " ").replace("\n", " ").replace("\r", " ")):
        raise GeocodeRefused("The address holds control characters.", field="address")
    return " ".join(text.split())


_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")

# Base scores by match type, best first; a street alone is never confident.
_BASE = {"address_point": 1.0, "range": 0.95, "intersection": 0.95, "street": 0.6}
_ORDER = {t: i for i, t in enumerate(MATCH_TYPES)}
# A typed prefix of a longer street name ("Mass Ave") counts as this similar.
_PREFIX_SIM = 0.75
_NAMES = 6  # candidate street cores per typed name

# One look-up, one statement. ``n1``/``n2``: the few street cores nearest the typed
# names (trigram ``%`` on the GIN index, or a typed prefix); then exact btree look-ups:
# address points by (city, core, number); segments by (city, core) whose range on a
# side holds the number with the same parity, interpolated from -> to in the city's
# metric projection (a fraction of the length in degrees is not one in metres); intersections
# of the two cores in either order; the street alone (the point or range nearest the
# number, or a point on the street's middle). ``zip_known``: whether a ZIP in the text
# is one the matched streets have at all (else it names somewhere else).
GEOCODE_SQL = sa.text(
    """
    WITH n1 AS (
        SELECT core, count(*) AS names,
               max(CASE WHEN core = :core THEN 1.0
                        WHEN core LIKE :prefix THEN greatest(similarity(core, :core), :psim)
                        ELSE similarity(core, :core) END) AS sim
        FROM street_name
        WHERE jurisdiction_id = :j AND (core % :core OR core LIKE :prefix)
        GROUP BY core
        ORDER BY sim DESC, core
        LIMIT :nlimit
    ),
    n2 AS (
        SELECT core, count(*) AS names,
               max(CASE WHEN core = :ccore THEN 1.0
                        WHEN core LIKE :cprefix THEN greatest(similarity(core, :ccore), :psim)
                        ELSE similarity(core, :ccore) END) AS sim
        FROM street_name
        WHERE jurisdiction_id = :j AND CAST(:ccore AS text) IS NOT NULL
          AND (core % :ccore OR core LIKE :cprefix)
        GROUP BY core
        ORDER BY sim DESC, core
        LIMIT :nlimit
    ),
    ap AS (
        SELECT 'address_point' AS mt, n1.sim, n1.names, NULL::float8 AS sim2,
               NULL::bigint AS names2, a.street AS name, NULL::text AS name2,
               a.address AS label, a.source_id, a.zip, a.number, a.number_suffix,
               ST_X(a.location) AS lon, ST_Y(a.location) AS lat
        FROM n1
        JOIN address_point a
          ON a.jurisdiction_id = :j AND a.street_core = n1.core AND a.number = :num
        WHERE CAST(:num AS integer) IS NOT NULL
        ORDER BY (a.number_suffix IS NOT DISTINCT FROM :suffix) DESC,
                 (a.unit IS NOT DISTINCT FROM :unit) DESC, a.id
        LIMIT 30
    ),
    rng AS (
        SELECT 'range' AS mt, n1.sim, n1.names, NULL::float8, NULL::bigint, s.name, NULL::text,
               NULL::text, NULL::text, side.z, CAST(:num AS integer), NULL::text,
               ST_X(p.pt), ST_Y(p.pt)
        FROM n1
        JOIN street_segment s ON s.jurisdiction_id = :j AND s.name_core = n1.core
        CROSS JOIN LATERAL (VALUES
            (coalesce(s.from_left, s.to_left), coalesce(s.to_left, s.from_left), s.zip_left),
            (coalesce(s.from_right, s.to_right), coalesce(s.to_right, s.from_right), s.zip_right)
        ) AS side(f, t, z)
        CROSS JOIN LATERAL (
            SELECT ST_Transform(ST_LineInterpolatePoint(ST_Transform(s.geom, :srid), CASE
                WHEN side.f = side.t THEN 0.5
                ELSE least(1.0, greatest(0.0,
                    (CAST(:num AS float8) - side.f) / (side.t - side.f))) END), 4326) AS pt
        ) AS p
        WHERE CAST(:num AS integer) IS NOT NULL AND side.f IS NOT NULL
          AND :num BETWEEN least(side.f, side.t) AND greatest(side.f, side.t)
          AND (side.f % 2 <> side.t % 2 OR side.f % 2 = CAST(:num AS integer) % 2)
        LIMIT 30
    ),
    ix AS (
        SELECT 'intersection' AS mt, n1.sim, n1.names, n2.sim AS sim2, n2.names AS names2,
               CASE WHEN i.core_a = n1.core AND (i.core_a <> i.core_b OR i.name_a = :name
                                                  OR i.name_b <> :name)
                    THEN i.name_a ELSE i.name_b END,
               CASE WHEN i.core_a = n1.core AND (i.core_a <> i.core_b OR i.name_a = :name
                                                  OR i.name_b <> :name)
                    THEN i.name_b ELSE i.name_a END,
               NULL::text, NULL::text, NULL::text, NULL::integer, NULL::text,
               ST_X(i.location), ST_Y(i.location)
        FROM n1 CROSS JOIN n2 CROSS JOIN LATERAL (
            SELECT * FROM street_intersection x
            WHERE x.jurisdiction_id = :j AND x.core_a = n1.core AND x.core_b = n2.core
            UNION ALL
            SELECT * FROM street_intersection x
            WHERE x.jurisdiction_id = :j AND x.core_a = n2.core AND x.core_b = n1.core
              AND n1.core <> n2.core
        ) AS i
        LIMIT 30
    ),
    -- The street alone only when nothing with the very names typed was found.
    exact AS (
        SELECT EXISTS (SELECT 1 FROM ap WHERE ap.sim = 1.0)
            OR EXISTS (SELECT 1 FROM rng WHERE rng.sim = 1.0)
            OR EXISTS (SELECT 1 FROM ix WHERE ix.sim = 1.0 AND ix.sim2 = 1.0) AS hit
    ),
    top AS (
        SELECT * FROM n1 WHERE NOT (SELECT hit FROM exact) ORDER BY sim DESC, core LIMIT 3
    ),
    st_pt AS (
        SELECT 'street' AS mt, top.sim, top.names, NULL::float8, NULL::bigint, q.street,
               NULL::text, NULL::text, NULL::text, q.zip, q.number, NULL::text,
               ST_X(q.location), ST_Y(q.location)
        FROM top CROSS JOIN LATERAL (
            SELECT a.street, a.zip, a.number, a.location
            FROM address_point a
            WHERE a.jurisdiction_id = :j AND a.street_core = top.core
              AND a.number IS NOT NULL AND CAST(:num AS integer) IS NOT NULL
            ORDER BY abs(a.number - :num), a.id
            LIMIT 1
        ) AS q
    ),
    st_seg AS (
        SELECT 'street' AS mt, top.sim, top.names, NULL::float8, NULL::bigint, q.name,
               NULL::text, NULL::text, NULL::text, NULL::text, NULL::integer, NULL::text,
               ST_X(q.pt), ST_Y(q.pt)
        FROM top CROSS JOIN LATERAL (
            SELECT s.name,
                   CASE WHEN CAST(:num AS integer) IS NULL
                        THEN ST_ClosestPoint(ST_Collect(s.geom), ST_Centroid(ST_Collect(s.geom)))
                        ELSE (array_agg(ST_LineInterpolatePoint(s.geom, 0.5) ORDER BY
                              least(abs(coalesce(s.from_left, s.to_left, s.from_right,
                                                 s.to_right, 0) - :num),
                                    abs(coalesce(s.to_right, s.from_right, s.to_left,
                                                 s.from_left, 0) - :num))))[1]
                   END AS pt
            FROM street_segment s
            WHERE s.jurisdiction_id = :j AND s.name_core = top.core
            GROUP BY s.name
            LIMIT 4
        ) AS q
    ),
    st_only_pt AS (
        SELECT 'street' AS mt, top.sim, top.names, NULL::float8, NULL::bigint, q.street,
               NULL::text, NULL::text, NULL::text, NULL::text, NULL::integer, NULL::text,
               ST_X(q.pt), ST_Y(q.pt)
        FROM top CROSS JOIN LATERAL (
            SELECT a.street,
                   ST_ClosestPoint(ST_Collect(a.location), ST_Centroid(ST_Collect(a.location)))
                       AS pt
            FROM address_point a
            WHERE a.jurisdiction_id = :j AND a.street_core = top.core
            GROUP BY a.street
            LIMIT 4
        ) AS q
        WHERE CAST(:num AS integer) IS NULL
          AND NOT EXISTS (SELECT 1 FROM street_segment s
                          WHERE s.jurisdiction_id = :j AND s.name_core = top.core)
    ),
    zk AS (
        SELECT CAST(:zip AS text) IS NULL
            OR EXISTS (SELECT 1 FROM n1 JOIN street_segment s
                         ON s.jurisdiction_id = :j AND s.name_core = n1.core
                       WHERE s.zip_left = :zip OR s.zip_right = :zip)
            OR EXISTS (SELECT 1 FROM n1 JOIN address_point a
                         ON a.jurisdiction_id = :j AND a.street_core = n1.core
                       WHERE a.zip = :zip) AS zip_known
    )
    SELECT u.*, zk.zip_known
    FROM (
        SELECT * FROM ap UNION ALL SELECT * FROM rng UNION ALL SELECT * FROM ix
        UNION ALL SELECT * FROM st_pt UNION ALL SELECT * FROM st_seg
        UNION ALL SELECT * FROM st_only_pt
    ) AS u CROSS JOIN zk
    """
)


def _prefix(core: str | None) -> str | None:
    """A LIKE pattern for a typed name that may be a short form ("MASS" of
    "MASSACHUSETTS"); the bare name (an exact match) when it is too short to be one."""
    if core is None:
        return None
    escaped = core.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    if len(core) >= 4 and " " not in core and not core[0].isdigit():
        return escaped + "%"
    return escaped


def _loose(name: str | None) -> str:
    words = re.sub(r"[^A-Z0-9 ]", " ", (name or "").upper()).split()
    drop = {"CITY", "OF", "TOWN", "VILLAGE", "THE", "COUNTY", "BOROUGH"}
    return " ".join(w for w in words if w not in drop)


def _place_agrees(place: str | None, city: Jurisdiction) -> bool:
    if not place:
        return True
    a, b = _loose(place), _loose(city.name)
    if not a or not b:
        return True
    return a == b or a in b or b in a or a.replace(" ", "") == b.replace(" ", "")


def _street_penalty(typed: Street, name: str | None, sim: float, names: int) -> float:
    """How much a candidate street differs from the typed one: spelling, type and
    direction. A missing type or direction costs more where the city has several
    streets of that name ("Elm St" and "Elm Ave")."""
    cand = normalise_street(name or "") if name else None
    if cand is None:
        return 0.05 + (1.0 - sim) * 0.6
    if cand.core != typed.core:
        # Trigrams find the candidates; an edit ratio judges a slip of the finger
        # ("FLAAGG") more fairly than trigrams, which one doubled letter halves.
        sim = max(sim, SequenceMatcher(None, typed.core, cand.core).ratio())
    penalty = 0.0
    if sim < 1.0:
        penalty += 0.05 + (1.0 - sim) * 0.6
    several = names > 1
    if typed.type and cand.type and typed.type != cand.type:
        penalty += 0.2
    elif typed.type and not cand.type:
        penalty += 0.1
    elif not typed.type and cand.type and several:
        penalty += 0.2
    for mine, theirs in ((typed.predir, cand.predir), (typed.postdir, cand.postdir)):
        if mine and theirs and mine != theirs:
            penalty += 0.3
        elif mine and not theirs:
            penalty += 0.1
        elif not mine and theirs and several:
            penalty += 0.2
    return penalty


def _metres(a: Candidate, b: Candidate) -> float:
    """Distance between two candidates (equirectangular: they are close or far)."""
    dy = (a.lat - b.lat) * 111_320.0
    dx = (a.lon - b.lon) * 111_320.0 * cos(radians((a.lat + b.lat) / 2))
    return sqrt(dx * dx + dy * dy)


def _label(parsed: ParsedPlace, row) -> str:
    if row.mt == "address_point":
        return row.label
    if row.mt == "intersection":
        return f"{row.name} & {row.name2}"
    if row.mt == "range":
        num = str(parsed.number)
        if parsed.number_suffix:
            sep = " " if "/" in parsed.number_suffix else ""
            num += sep + parsed.number_suffix
        text = f"{num} {row.name}"
        return f"{text}, {row.zip}" if row.zip else text
    return row.name


def _score(parsed: ParsedPlace, city: Jurisdiction, row) -> float:
    score = _BASE[row.mt] - _street_penalty(parsed.street, row.name, row.sim, row.names)
    if row.mt == "intersection" and parsed.cross is not None:
        score -= _street_penalty(parsed.cross, row.name2, row.sim2, row.names2)
    if row.mt == "address_point" and (row.number_suffix or None) != parsed.number_suffix:
        score -= 0.05
    zip_agrees = False
    if parsed.zip:
        if row.zip and row.zip[:5] != parsed.zip:
            score -= 0.3
        elif not row.zip_known:
            score -= 0.3
        else:
            zip_agrees = bool(row.zip) or row.mt in ("intersection", "street")
    if not _place_agrees(parsed.place, city) and not zip_agrees:
        score -= 0.3
    if row.sim < 0.5:
        score = min(score, CONFIDENT - 0.05)
    return max(0.0, min(1.0, score))


def geocode(session: Session, city: Jurisdiction, text: str | None, *, limit: int = 5) -> Geocoded:
    """Candidates in ``city`` for ``text``, best first (at most ``limit``).

    Raises :class:`GeocodeRefused` for text that cannot be looked up. An empty result
    means nothing matched at all.
    """
    query = check_text(text)
    parsed = parse_place(query) if query else None
    if parsed is None:
        return Geocoded(query=query)
    cross = parsed.cross if parsed.kind == "intersection" else None
    rows = session.execute(
        GEOCODE_SQL,
        {
            "j": city.id,
            "core": parsed.street.core,
            "name": parsed.street.name,
            "srid": city.metric_srid,
            "prefix": _prefix(parsed.street.core),
            "ccore": cross.core if cross else None,
            "cprefix": _prefix(cross.core) if cross else None,
            "psim": _PREFIX_SIM,
            "nlimit": _NAMES,
            "num": parsed.number if parsed.kind == "address" else None,
            "suffix": parsed.number_suffix,
            "unit": parsed.unit,
            "zip": parsed.zip,
        },
    ).all()
    found: list[Candidate] = []
    for row in rows:
        if row.lon is None or row.lat is None:
            continue
        if parsed.kind == "intersection" and row.mt != "intersection" and row.mt != "street":
            continue
        found.append(
            Candidate(
                score=_score(parsed, city, row),
                match_type=row.mt,
                lat=float(row.lat),
                lon=float(row.lon),
                address=_label(parsed, row),
                address_id=row.source_id,
            )
        )
    found.sort(key=lambda c: (-c.score, _ORDER[c.match_type], c.address))
    kept: list[Candidate] = []
    for cand in found:
        # The same place found twice (two entrances, a divided road's two nodes, the
        # point and the range of one address) is one candidate.
        if any(
            _metres(cand, k) <= 30.0 and (k.address == cand.address or k.score >= cand.score)
            for k in kept
        ):
            continue
        kept.append(cand)
    limit = max(1, limit)
    ambiguous = Geocoded(query=query, candidates=kept).confident is None
    return Geocoded(query=query, candidates=kept[:limit], ambiguous=ambiguous and bool(kept))


ADDRESS_BY_ID_SQL = sa.text(
    """
    SELECT address, source_id, ST_X(location) AS lon, ST_Y(location) AS lat
    FROM address_point
    WHERE jurisdiction_id = :j AND source_id = :sid
    LIMIT 1
    """
)


def address_by_id(session: Session, city: Jurisdiction, address_id: str) -> Candidate | None:
    """The city's address point with its own id ``address_id`` (Open311 address_id)."""
    sid = (address_id or "").strip()
    if not sid or len(sid) > 100 or _CONTROL_RE.search(sid):
        return None
    row = session.execute(ADDRESS_BY_ID_SQL, {"j": city.id, "sid": sid}).first()
    if row is None:
        return None
    return Candidate(
        score=1.0,
        match_type="address_point",
        lat=float(row.lat),
        lon=float(row.lon),
        address=row.address,
        address_id=row.source_id,
    )


# The nearest address point and the nearest segment (KNN on the GiST indexes, then
# true distance on the spheroid), the segment's side of the point and where along it
# the point falls, and the nearest intersection on that segment's street.
REVERSE_SQL = sa.text(
    """
    WITH pt AS (
        SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS g,
               CAST(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS geography) AS gg
    ),
    ap AS (
        SELECT a.address, a.source_id,
               ST_Distance(CAST(a.location AS geography), pt.gg) AS d
        FROM (SELECT * FROM address_point, pt
              WHERE jurisdiction_id = :j
              ORDER BY location <-> ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) LIMIT 8) AS a, pt
        ORDER BY d, a.id
        LIMIT 1
    ),
    seg AS (
        SELECT s.*, ST_Distance(CAST(s.geom AS geography), pt.gg) AS d,
               ST_Transform(s.geom, :srid) AS gm,
               ST_Transform(pt.g, :srid) AS pm
        FROM (SELECT * FROM street_segment, pt
              WHERE jurisdiction_id = :j
              ORDER BY geom <-> ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) LIMIT 8) AS s, pt
        ORDER BY d, s.id
        LIMIT 1
    ),
    located AS (SELECT seg.*, ST_LineLocatePoint(seg.gm, seg.pm) AS frac FROM seg),
    side AS (
        SELECT located.*,
               ST_LineInterpolatePoint(located.gm, greatest(0.0, located.frac - 0.01)) AS p0,
               ST_LineInterpolatePoint(located.gm, least(1.0, located.frac + 0.01)) AS p1
        FROM located
    ),
    cross_street AS (
        SELECT CASE WHEN i.name_a = side.name THEN i.name_b ELSE i.name_a END AS name
        FROM side, pt, LATERAL (
            SELECT * FROM street_intersection i
            WHERE i.jurisdiction_id = :j AND (i.name_a = side.name OR i.name_b = side.name)
            ORDER BY i.location <-> ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)
            LIMIT 1
        ) AS i
    )
    SELECT (SELECT address FROM ap) AS ap_address,
           (SELECT source_id FROM ap) AS ap_id,
           (SELECT d FROM ap) AS ap_d,
           side.name AS seg_name, side.d AS seg_d, side.frac,
           side.from_left, side.to_left, side.from_right, side.to_right,
           side.zip_left, side.zip_right,
           (ST_X(side.p1) - ST_X(side.p0)) * (ST_Y(side.pm) - ST_Y(side.p0))
             - (ST_Y(side.p1) - ST_Y(side.p0)) * (ST_X(side.pm) - ST_X(side.p0))
               AS cross_product,
           (SELECT name FROM cross_street) AS cross_name
    FROM (SELECT 1) AS one LEFT JOIN side ON true
    """
)


def _number_on_side(f: int | None, t: int | None, frac: float) -> int | None:
    """The number a fraction of the way along a side's range, of that side's parity."""
    f, t = (f if f is not None else t), (t if t is not None else f)
    if f is None or t is None:
        return None
    raw = f + (t - f) * frac
    n = int(round(raw))
    if f % 2 == t % 2 and n % 2 != f % 2:
        n = n + 1 if raw > n else n - 1
    lo, hi = min(f, t), max(f, t)
    return min(hi, max(lo, n))


def reverse_geocode(
    session: Session,
    city: Jurisdiction,
    lon: float,
    lat: float,
    *,
    max_distance_m: float = REVERSE_MAX_M,
) -> ReversePlace | None:
    """Words for (lon, lat): the nearest address point or interpolated address within
    ``max_distance_m``, else "near <street> and <cross street>", else None."""
    try:
        lon, lat = float(lon), float(lat)
    except (TypeError, ValueError):
        raise InvalidInput("The point's coordinates must be numbers.", field="location") from None
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise InvalidInput("The point is not on the Earth.", field="location")
    row = session.execute(
        REVERSE_SQL, {"j": city.id, "lon": lon, "lat": lat, "srid": city.metric_srid}
    ).one()
    if row.ap_address is not None and row.ap_d <= max_distance_m:
        return ReversePlace(
            address=row.ap_address,
            match_type="address_point",
            distance_m=float(row.ap_d),
            address_id=row.ap_id,
        )
    if row.seg_name is None or row.seg_d > max_distance_m:
        return None
    left = (row.cross_product or 0.0) > 0
    sides = [
        (row.from_left, row.to_left, row.zip_left),
        (row.from_right, row.to_right, row.zip_right),
    ]
    if not left:
        sides.reverse()
    for f, t, zip_code in sides:
        number = _number_on_side(f, t, float(row.frac))
        if number is not None:
            text = f"{number} {row.seg_name}"
            return ReversePlace(
                address=f"{text}, {zip_code}" if zip_code else text,
                match_type="range",
                distance_m=float(row.seg_d),
            )
    text = f"near {row.seg_name}"
    if row.cross_name:
        text += f" and {row.cross_name}"
    return ReversePlace(address=text, match_type="near", distance_m=float(row.seg_d))
