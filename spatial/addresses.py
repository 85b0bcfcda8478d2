"""Known addresses of a city: search by text (pg_trgm) and the nearest one to a point.

Search uses the trigram GIN index on ``address_point.address``: the ``<%`` operator
(word similarity) matches what people type while they type ("16815 vanowen" finds
"16815 W VANOWEN ST, 91406"). When nothing matches closely, a looser pass returns
"did you mean" suggestions instead of an empty list.

Reverse look-up takes a few nearest candidates by the GiST index's KNN order (``<->``,
in degrees) and ranks them by true distance on the spheroid, because a degree of
longitude is shorter than a degree of latitude away from the equator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from spatial.models import Jurisdiction

MIN_QUERY = 3
MAX_QUERY = 200
STRICT_THRESHOLD = 0.6  # pg_trgm's default word_similarity_threshold
LOOSE_THRESHOLD = 0.3
NEAREST_CANDIDATES = 8
NEAREST_MAX_M = 150.0

SEARCH_SQL = sa.text(
    """
    SELECT id, address, ST_X(location) AS lon, ST_Y(location) AS lat,
           word_similarity(:q, address) AS score
    FROM address_point
    WHERE jurisdiction_id = :j AND (:q <% address OR address ILIKE :prefix)
    ORDER BY (address ILIKE :prefix) DESC, score DESC, length(address), address
    LIMIT :limit
    """
)

NEAREST_SQL = sa.text(
    """
    WITH pt AS (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS g),
    near AS (
        SELECT a.id, a.address, a.location
        FROM address_point a, pt
        WHERE a.jurisdiction_id = :j
        ORDER BY a.location <-> pt.g
        LIMIT :k
    )
    SELECT near.id, near.address, ST_X(near.location) AS lon, ST_Y(near.location) AS lat,
           ST_Distance(near.location::geography, pt.g::geography) AS distance_m
    FROM near, pt
    ORDER BY distance_m, near.address
    LIMIT 1
    """
)


@dataclass(frozen=True)
class AddressMatch:
    """One known address; ``score`` is the word similarity, ``distance_m`` for reverse."""

    id: int
    address: str
    lon: float
    lat: float
    score: float | None = None
    distance_m: float | None = None

    def as_json(self) -> dict:
        out = {"id": self.id, "address": self.address, "lat": self.lat, "lon": self.lon}
        if self.distance_m is not None:
            out["distance_m"] = round(self.distance_m, 1)
        return out


@dataclass(frozen=True)
class AddressSearch:
    """Matches for a text; ``suggestions`` is True when they are only loose guesses."""

    query: str
    matches: list[AddressMatch]
    suggestions: bool = False


def normalise_query(text: str | None) -> str:
    """The query as searched: one line, single spaces, at most ``MAX_QUERY`` characters."""
    return re.sub(r"\s+", " ", text or "").strip()[:MAX_QUERY]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_addresses(
    session: Session, city: Jurisdiction, text: str | None, *, limit: int = 8
) -> AddressSearch:
    """Addresses of ``city`` matching ``text``, best first (empty for under 3 characters)."""
    query = normalise_query(text)
    if len(query) < MIN_QUERY:
        return AddressSearch(query, [])
    params = {"q": query, "prefix": _escape_like(query) + "%", "j": city.id, "limit": limit}
    matches = _run_search(session, params, STRICT_THRESHOLD)
    if matches:
        return AddressSearch(query, matches)
    return AddressSearch(query, _run_search(session, params, LOOSE_THRESHOLD), suggestions=True)


def _run_search(session: Session, params: dict, threshold: float) -> list[AddressMatch]:
    # is_local=true: the threshold lasts only until the end of this transaction.
    session.execute(
        sa.text("SELECT set_config('pg_trgm.word_similarity_threshold', :t, true)"),
        {"t": str(threshold)},
    )
    try:
        rows = session.execute(SEARCH_SQL, params).all()
    finally:
        session.execute(
            sa.text("SELECT set_config('pg_trgm.word_similarity_threshold', :t, true)"),
            {"t": str(STRICT_THRESHOLD)},
        )
    return [AddressMatch(r.id, r.address, r.lon, r.lat, score=float(r.score)) for r in rows]


def nearest_address(
    session: Session,
    city: Jurisdiction,
    lon: float,
    lat: float,
    *,
    max_distance_m: float = NEAREST_MAX_M,
) -> AddressMatch | None:
    """The known address of ``city`` closest to (lon, lat), if within ``max_distance_m``."""
    row = session.execute(
        NEAREST_SQL, {"lon": lon, "lat": lat, "j": city.id, "k": NEAREST_CANDIDATES}
    ).first()
    if row is None or row.distance_m > max_distance_m:
        return None
    return AddressMatch(row.id, row.address, row.lon, row.lat, distance_m=float(row.distance_m))


def address_by_id(session: Session, city: Jurisdiction, address_id: int) -> AddressMatch | None:
    """One address point of ``city`` by id (the map-free form sends the chosen id)."""
    row = session.execute(
        sa.text(
            "SELECT id, address, ST_X(location) AS lon, ST_Y(location) AS lat "
            "FROM address_point WHERE jurisdiction_id = :j AND id = :id"
        ),
        {"j": city.id, "id": address_id},
    ).first()
    return AddressMatch(row.id, row.address, row.lon, row.lat) if row else None
