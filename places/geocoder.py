"""The geocoder: a text to candidate points, and a point back to words.

One look-up is one SQL statement (pg_trgm on the street names, exact numbers, range
interpolation with ``ST_LineInterpolatePoint``), so it is fast and the same in every
process. Matches, best first: the city's address point; interpolation along a street
segment whose range on that side holds the number; an intersection; the street alone.
It never places a report silently: :attr:`Geocoded.confident` is None below
:data:`CONFIDENT`, and every channel then asks or refuses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from spatial.errors import InvalidInput
from spatial.models import Jurisdiction

CONFIDENT = 0.8  # a candidate scoring this or more may be used without asking
REVERSE_MAX_M = 60.0  # a dropped pin takes an address within this distance
MATCH_TYPES = ("address_point", "range", "intersection", "street")


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

    @property
    def confident(self) -> Candidate | None:
        """The best candidate if it may be used without asking the person, else None."""
        raise NotImplementedError


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
    raise NotImplementedError


def geocode(session: Session, city: Jurisdiction, text: str | None, *, limit: int = 5) -> Geocoded:
    """Candidates in ``city`` for ``text``, best first (at most ``limit``).

    Raises :class:`GeocodeRefused` for text that cannot be looked up. An empty result
    means nothing matched at all.
    """
    raise NotImplementedError


def address_by_id(session: Session, city: Jurisdiction, address_id: str) -> Candidate | None:
    """The city's address point with its own id ``address_id`` (Open311 address_id)."""
    raise NotImplementedError


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
    raise NotImplementedError
