"""Writing a city's imported places: one :class:`PlaceDataset` version per import.

A caller streams rows in: :func:`begin` a dataset, :func:`add_addresses`,
:func:`add_streets` or :func:`add_assets` in batches, then :func:`finish`, which records
the counts, derives the intersections of streets and refreshes the city's street names.
The previous version's rows go in :func:`begin`, before the new ones arrive, because the
city's ids are unique (an address id, a pole number) and the new set repeats them. All in
the caller's transaction: a failed import leaves the city's current set as it was, and
other readers see the old set until the import commits.

Rows are written with COPY: a 500,000-point address file is one stream, not 500,000
statements (``bench/`` measures it). The caller checks the rows first (ids unique within
the file, numbers, points); the store writes what it is given.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from places import network
from places.parse import ParsedPlace, Street
from spatial.errors import InvalidInput
from spatial.models import Jurisdiction, Service
from spatial.models_places import PLACE_KINDS, Asset, AssetLayer, PlaceDataset


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
    """A new dataset version of ``kind`` ('addresses', 'streets', 'assets').

    The previous version's rows are deleted here (see the module's docstring); an asset
    dataset needs its ``layer``.
    """
    if kind not in PLACE_KINDS:
        raise ValueError(f"unknown kind of places {kind!r}")
    if (kind == "assets") != (layer is not None):
        raise ValueError("an asset dataset needs its layer, and only it")
    layer_id = layer.id if layer is not None else None
    # Two imports of the same set at once would both take the same next version.
    session.execute(
        sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
        {"key": f"place_dataset:{city.id}:{kind}:{layer_id}"},
    )
    version = session.execute(
        sa.select(sa.func.coalesce(sa.func.max(PlaceDataset.version), 0) + 1).where(
            PlaceDataset.jurisdiction_id == city.id,
            PlaceDataset.kind == kind,
            PlaceDataset.asset_layer_id.is_not_distinct_from(layer_id),
        )
    ).scalar_one()
    dataset = PlaceDataset(
        jurisdiction_id=city.id,
        kind=kind,
        asset_layer_id=layer_id,
        version=version,
        source_name=source_name[:500],
        mapping=dict(mapping),
        rows_read=0,
        rows_written=0,
        rows_bad=0,
        imported_by=imported_by[:254],
    )
    session.add(dataset)
    session.flush()
    for statement in _DELETE_PREVIOUS[kind]:
        session.execute(statement, {"j": city.id, "l": layer_id})
    return dataset


_DELETE_PREVIOUS = {
    "addresses": [sa.text("DELETE FROM address_point WHERE jurisdiction_id = :j")],
    "streets": [
        sa.text("DELETE FROM street_intersection WHERE jurisdiction_id = :j"),
        sa.text("DELETE FROM street_segment WHERE jurisdiction_id = :j"),
    ],
    "assets": [sa.text("DELETE FROM asset WHERE layer_id = :l")],
}


def address_text(
    street: Street,
    number: int | None,
    number_suffix: str | None = None,
    unit: str | None = None,
    zip: str | None = None,
) -> str:
    """The normalised full text of an address point ("1111 S FIGUEROA ST, 90015"), as the
    geocoder writes a parsed address (:meth:`places.parse.ParsedPlace.normalised`)."""
    kind = "address" if number is not None else "street"
    return ParsedPlace(
        kind=kind, street=street, number=number, number_suffix=number_suffix, unit=unit, zip=zip
    ).normalised()


def _copy(session: Session, table: str, columns: tuple[str, ...], rows: Iterable[tuple]) -> int:
    """COPY ``rows`` into ``table`` on the session's own connection (its transaction)."""
    conn = session.connection().connection.driver_connection
    n = 0
    with conn.cursor() as cur:
        with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                n += 1
    return n


def _point(lon: float, lat: float) -> str:
    return f"SRID=4326;POINT({lon!r} {lat!r})"


def _line(coords: list[tuple[float, float]]) -> str:
    return "SRID=4326;LINESTRING(" + ",".join(f"{x!r} {y!r}" for x, y in coords) + ")"


ADDRESS_COLUMNS = (
    "jurisdiction_id",
    "dataset_id",
    "source_id",
    "address",
    "number",
    "number_suffix",
    "street",
    "street_core",
    "unit",
    "zip",
    "location",
)


def add_addresses(session: Session, dataset: PlaceDataset, rows: Iterable[AddressRow]) -> int:
    """Write a batch of address points; the number written."""
    j, d = dataset.jurisdiction_id, dataset.id
    n = _copy(
        session,
        "address_point",
        ADDRESS_COLUMNS,
        (
            (
                j,
                d,
                r.source_id,
                address_text(r.street, r.number, r.number_suffix, r.unit, r.zip)[:500],
                r.number,
                r.number_suffix,
                r.street.name,
                r.street.core,
                r.unit,
                r.zip,
                _point(r.lon, r.lat),
            )
            for r in rows
        ),
    )
    dataset.rows_written += n
    return n


STREET_COLUMNS = (
    "jurisdiction_id",
    "dataset_id",
    "source_id",
    "name",
    "name_core",
    "from_left",
    "to_left",
    "from_right",
    "to_right",
    "zip_left",
    "zip_right",
    "geom",
)


def add_streets(session: Session, dataset: PlaceDataset, rows: Iterable[StreetRow]) -> int:
    """Write a batch of street segments; the number written."""
    j, d = dataset.jurisdiction_id, dataset.id
    n = _copy(
        session,
        "street_segment",
        STREET_COLUMNS,
        (
            (
                j,
                d,
                r.source_id,
                r.street.name,
                r.street.core,
                r.from_left,
                r.to_left,
                r.from_right,
                r.to_right,
                r.zip_left,
                r.zip_right,
                _line(r.coords),
            )
            for r in rows
        ),
    )
    dataset.rows_written += n
    return n


ASSET_COLUMNS = (
    "jurisdiction_id",
    "layer_id",
    "dataset_id",
    "ref",
    "label",
    "attributes",
    "location",
)


def add_assets(session: Session, dataset: PlaceDataset, rows: Iterable[AssetRow]) -> int:
    """Write a batch of assets of the dataset's layer; the number written."""
    j, d, layer_id = dataset.jurisdiction_id, dataset.id, dataset.asset_layer_id
    if layer_id is None:
        raise ValueError("not an asset dataset")
    n = _copy(
        session,
        "asset",
        ASSET_COLUMNS,
        (
            (
                j,
                layer_id,
                d,
                r.ref,
                r.label[:300] if r.label else None,
                json.dumps(r.attributes, default=str),
                _point(r.lon, r.lat),
            )
            for r in rows
        ),
    )
    dataset.rows_written += n
    return n


def finish(session: Session, dataset: PlaceDataset, *, rows_read: int, rows_bad: int) -> int | None:
    """Make ``dataset`` the city's current set: record the counts and, for streets, derive
    the intersections (their number is returned; None for other kinds). The city's street
    names are rebuilt after addresses or streets."""
    dataset.rows_read = rows_read
    dataset.rows_bad = rows_bad
    session.flush()
    intersections = None
    if dataset.kind == "streets":
        intersections = network.build_intersections(session, dataset.jurisdiction_id, dataset.id)
    if dataset.kind in ("addresses", "streets"):
        network.refresh_street_names(session, dataset.jurisdiction_id)
    return intersections


def datasets(
    session: Session, city: Jurisdiction, kind: str, layer: AssetLayer | None = None
) -> list[PlaceDataset]:
    """Every version of the city's addresses, streets or one layer's assets, newest first
    (the first is the current set)."""
    return list(
        session.scalars(
            sa.select(PlaceDataset)
            .where(
                PlaceDataset.jurisdiction_id == city.id,
                PlaceDataset.kind == kind,
                PlaceDataset.asset_layer_id.is_not_distinct_from(layer.id if layer else None),
            )
            .order_by(PlaceDataset.version.desc())
        )
    )


def asset_layers(session: Session, city: Jurisdiction) -> list[AssetLayer]:
    """The city's asset layers by name."""
    return list(
        session.scalars(
            sa.select(AssetLayer)
            .where(AssetLayer.jurisdiction_id == city.id)
            .order_by(AssetLayer.name)
        )
    )


def asset_layer(session: Session, city: Jurisdiction, name: str) -> AssetLayer:
    """The city's layer ``name``, or InvalidInput (field "layer")."""
    layer = session.scalar(
        sa.select(AssetLayer).where(AssetLayer.jurisdiction_id == city.id, AssetLayer.name == name)
    )
    if layer is None:
        raise InvalidInput(f"{city.slug} has no asset layer {name!r}", field="layer")
    return layer


def asset_count(session: Session, layer: AssetLayer) -> int:
    """How many assets the layer holds now."""
    return session.scalar(
        sa.select(sa.func.count()).select_from(Asset).where(Asset.layer_id == layer.id)
    )


def set_layer_title(session: Session, layer: AssetLayer, title: str) -> str:
    """Give ``layer`` a new title (what people read: "Street light"); the old one."""
    title = (title or "").strip()
    if not title:
        raise InvalidInput("the title must not be empty", field="title")
    if len(title) > 200:
        raise InvalidInput("the title must be at most 200 characters", field="title")
    old, layer.title = layer.title, title
    session.flush()
    return old


def remove_layer(session: Session, layer: AssetLayer) -> int:
    """Delete ``layer``, its assets and its versions; the number of assets removed.

    Refused while a category is tied to it (the category's reports would lose their
    asset list): the message names the categories.
    """
    users = session.scalars(
        sa.select(Service.code).where(Service.asset_layer_id == layer.id).order_by(Service.code)
    ).all()
    if users:
        raise InvalidInput(
            f"asset layer {layer.name!r} is used by the "
            f"categor{'ies' if len(users) > 1 else 'y'} {', '.join(users)}: "
            "untie them from the layer first",
            field="layer",
        )
    removed = asset_count(session, layer)
    session.execute(sa.delete(Asset).where(Asset.layer_id == layer.id))
    session.execute(sa.delete(PlaceDataset).where(PlaceDataset.asset_layer_id == layer.id))
    session.delete(layer)
    session.flush()
    return removed
