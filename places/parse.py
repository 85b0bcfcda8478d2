"""What people type, taken apart: an address, an intersection or a street, normalised.

Built on ``usaddress`` (a probabilistic US address parser). Normalisation makes the
city's file and a resident's text meet: USPS street types ("Street" -> "ST"),
directions ("South" -> "S"), ordinals ("Fifth" -> "5TH"), units ("Apt 4" -> unit "4"),
and trailing city, state or ZIP text taken off the street. Pure functions: no database.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_TEXT = 200  # longer texts are refused (places.geocoder.GeocodeRefused)


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
        raise NotImplementedError


def normalise_street(text: str) -> Street | None:
    """A street name from a file or a person ("south figueroa street") normalised."""
    raise NotImplementedError


def parse_place(text: str) -> ParsedPlace | None:
    """``text`` parsed, or None when it holds no street at all."""
    raise NotImplementedError
