"""Writing a city's imported places: one :class:`PlaceDataset` version per import.

A caller streams rows in: :func:`begin` a dataset, :func:`add_addresses`,
:func:`add_streets` or :func:`add_assets` in batches, then :func:`finish`, which deletes
the previous version's rows (and, for streets, derives the intersections). All in the
caller's transaction: a failed import leaves the city's current set as it was.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from places.parse import Street
from spatial.models import Jurisdiction
from spatial.models_places import AssetLayer, PlaceDataset


@dataclass(frozen=True)
class AddressRow:
    """One address point, its street already normalised (``places.parse``)."""

    lon: float
    lat: float
    number: int | None
    street: Street
    number_suffix: str | None = None
    unit: str | None = None
    zip: str | None = None
    source_id: str | None = None


@dataclass(frozen=True)
class StreetRow:
    """One centreline segment (a LineString as [(lon, lat), ...]) and its ranges."""

    coords: list[tuple[float, float]]
    street: Street
    from_left: int | None = None
    to_left: int | None = None
    from_right: int | None = None
    to_right: int | None = None
    zip_left: str | None = None
    zip_right: str | None = None
    source_id: str | None = None


@dataclass(frozen=True)
class AssetRow:
    """One asset: the city's id, a label, its other fields as text."""

    lon: float
    lat: float
    ref: str
    label: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


def begin(
    session: Session,
    city: Jurisdiction,
    kind: str,
    *,
    source_name: str,
    mapping: dict[str, str],
    imported_by: str,
    layer: AssetLayer | None = None,
) -> PlaceDataset:
    """A new dataset version of ``kind`` ('addresses', 'streets', 'assets')."""
    raise NotImplementedError


def add_addresses(session: Session, dataset: PlaceDataset, rows: Iterable[AddressRow]) -> int:
    """Write a batch of address points; the number written."""
    raise NotImplementedError


def add_streets(session: Session, dataset: PlaceDataset, rows: Iterable[StreetRow]) -> int:
    """Write a batch of street segments; the number written."""
    raise NotImplementedError


def add_assets(session: Session, dataset: PlaceDataset, rows: Iterable[AssetRow]) -> int:
    """Write a batch of assets of the dataset's layer; the number written."""
    raise NotImplementedError


def finish(session: Session, dataset: PlaceDataset, *, rows_read: int, rows_bad: int) -> None:
    """Make ``dataset`` the city's current set: delete the previous version's rows,
    record the counts and, for streets, derive the intersections."""
    raise NotImplementedError
