"""Places as the city knows them: address points with their parts, street centrelines
with address ranges, their intersections, asset layers and assets

Revision ID: 0550
Revises: 0540

- ``place_dataset``: one import of a city's addresses, streets or one asset layer; a
  re-import is a new version and replaces the rows of the previous one.
- ``address_point`` gains the city's own id (``source_id``) and the parsed parts the
  geocoder matches on; an address may now appear twice (two entrances), so the unique
  constraint on the text goes, and the city's id is unique instead.
- ``street_segment`` and ``street_intersection``: the street network for range
  interpolation and "5th & Main"; ``street_name``: every distinct street, matched by
  trigram before the exact look-ups.
- ``asset_layer`` and ``asset``: things reported against (street lights by pole number).
- ``service.asset_layer_id``: a category about a layer's assets.
- ``service_request.address_id``, ``asset_layer_id``, ``asset_ref``: the city's address id
  and the asset a request is about.
- ``routing_rule.asset_attribute`` / ``asset_value``: a rule on the asset's attributes.
"""

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0550"
down_revision = "0540"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "asset_layer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("jurisdiction_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("id_field", sa.String(length=100), nullable=True),
        sa.Column("label_field", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["jurisdiction_id"], ["jurisdiction.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("jurisdiction_id", "name"),
    )
    op.create_index(
        op.f("ix_asset_layer_jurisdiction_id"), "asset_layer", ["jurisdiction_id"], unique=False
    )
    op.create_table(
        "place_dataset",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("jurisdiction_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("asset_layer_id", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("source_name", sa.String(length=500), nullable=False),
        sa.Column("mapping", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("rows_read", sa.Integer(), nullable=False),
        sa.Column("rows_written", sa.Integer(), nullable=False),
        sa.Column("rows_bad", sa.Integer(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("imported_by", sa.String(length=254), nullable=False),
        sa.CheckConstraint("kind IN ('addresses', 'streets', 'assets')", name="kind"),
        sa.ForeignKeyConstraint(["asset_layer_id"], ["asset_layer.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["jurisdiction_id"], ["jurisdiction.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_place_dataset_city_kind",
        "place_dataset",
        ["jurisdiction_id", "kind", "version"],
        unique=False,
    )
    op.create_table(
        "asset",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("jurisdiction_id", sa.Integer(), nullable=False),
        sa.Column("layer_id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=True),
        sa.Column("ref", sa.String(length=100), nullable=False),
        sa.Column("label", sa.String(length=300), nullable=True),
        sa.Column("attributes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "location",
            geoalchemy2.types.Geometry(
                geometry_type="POINT", srid=4326, from_text="ST_GeomFromEWKT", name="geometry"
            ),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["dataset_id"], ["place_dataset.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["jurisdiction_id"], ["jurisdiction.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["layer_id"], ["asset_layer.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("layer_id", "ref"),
    )
    op.create_index(op.f("ix_asset_jurisdiction_id"), "asset", ["jurisdiction_id"], unique=False)
    op.create_table(
        "street_segment",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("jurisdiction_id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=True),
        sa.Column("source_id", sa.String(length=100), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("name_core", sa.String(length=200), nullable=False),
        sa.Column("from_left", sa.Integer(), nullable=True),
        sa.Column("to_left", sa.Integer(), nullable=True),
        sa.Column("from_right", sa.Integer(), nullable=True),
        sa.Column("to_right", sa.Integer(), nullable=True),
        sa.Column("zip_left", sa.String(length=10), nullable=True),
        sa.Column("zip_right", sa.String(length=10), nullable=True),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                geometry_type="LINESTRING", srid=4326, from_text="ST_GeomFromEWKT", name="geometry"
            ),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["dataset_id"], ["place_dataset.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["jurisdiction_id"], ["jurisdiction.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_street_segment_city_name_core",
        "street_segment",
        ["jurisdiction_id", "name_core"],
        unique=False,
    )
    op.create_index(
        "ix_street_segment_name_core_trgm",
        "street_segment",
        ["name_core"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"name_core": "gin_trgm_ops"},
    )
    op.create_table(
        "street_intersection",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("jurisdiction_id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=True),
        sa.Column("name_a", sa.String(length=200), nullable=False),
        sa.Column("core_a", sa.String(length=200), nullable=False),
        sa.Column("name_b", sa.String(length=200), nullable=False),
        sa.Column("core_b", sa.String(length=200), nullable=False),
        sa.Column(
            "location",
            geoalchemy2.types.Geometry(
                geometry_type="POINT", srid=4326, from_text="ST_GeomFromEWKT", name="geometry"
            ),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["dataset_id"], ["place_dataset.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["jurisdiction_id"], ["jurisdiction.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_street_intersection_jurisdiction_id"),
        "street_intersection",
        ["jurisdiction_id"],
        unique=False,
    )
    for col in ("core_a", "core_b"):
        op.create_index(
            f"ix_street_intersection_{col}_trgm",
            "street_intersection",
            [col],
            unique=False,
            postgresql_using="gin",
            postgresql_ops={col: "gin_trgm_ops"},
        )

    op.create_table(
        "street_name",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("jurisdiction_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("core", sa.String(length=200), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("segments", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["jurisdiction_id"], ["jurisdiction.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("jurisdiction_id", "name"),
    )
    op.create_index(
        "ix_street_name_core_trgm",
        "street_name",
        ["core"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"core": "gin_trgm_ops"},
    )

    op.drop_constraint(
        op.f("uq_address_point_jurisdiction_id_address"), "address_point", type_="unique"
    )
    op.add_column("address_point", sa.Column("dataset_id", sa.Integer(), nullable=True))
    op.add_column("address_point", sa.Column("source_id", sa.String(length=100), nullable=True))
    op.add_column("address_point", sa.Column("number", sa.Integer(), nullable=True))
    op.add_column("address_point", sa.Column("number_suffix", sa.String(length=16), nullable=True))
    op.add_column("address_point", sa.Column("street", sa.String(length=200), nullable=True))
    op.add_column("address_point", sa.Column("street_core", sa.String(length=200), nullable=True))
    op.add_column("address_point", sa.Column("unit", sa.String(length=50), nullable=True))
    op.add_column("address_point", sa.Column("zip", sa.String(length=10), nullable=True))
    op.create_foreign_key(
        op.f("fk_address_point_dataset_id_place_dataset"),
        "address_point",
        "place_dataset",
        ["dataset_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index(
        "ix_address_point_street_core_trgm",
        "address_point",
        ["street_core"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"street_core": "gin_trgm_ops"},
    )
    op.create_index(
        "ix_address_point_street_number",
        "address_point",
        ["jurisdiction_id", "street_core", "number"],
        unique=False,
    )
    op.create_index(
        "uq_address_point_source_id",
        "address_point",
        ["jurisdiction_id", "source_id"],
        unique=True,
        postgresql_where=sa.text("source_id IS NOT NULL"),
    )

    op.add_column("service", sa.Column("asset_layer_id", sa.Integer(), nullable=True))
    op.create_foreign_key(
        op.f("fk_service_asset_layer_id_asset_layer"),
        "service",
        "asset_layer",
        ["asset_layer_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.add_column("service_request", sa.Column("address_id", sa.String(length=100), nullable=True))
    op.add_column("service_request", sa.Column("asset_layer_id", sa.Integer(), nullable=True))
    op.add_column("service_request", sa.Column("asset_ref", sa.String(length=100), nullable=True))
    op.create_foreign_key(
        op.f("fk_service_request_asset_layer_id_asset_layer"),
        "service_request",
        "asset_layer",
        ["asset_layer_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index(
        "ix_service_request_asset",
        "service_request",
        ["asset_layer_id", "asset_ref"],
        unique=False,
        postgresql_where=sa.text("asset_ref IS NOT NULL"),
    )
    op.add_column(
        "routing_rule", sa.Column("asset_attribute", sa.String(length=100), nullable=True)
    )
    op.add_column("routing_rule", sa.Column("asset_value", sa.String(length=200), nullable=True))
    _fill_address_parts()


def _fill_address_parts(batch: int = 5000) -> None:
    """The parts of the address points already there (the demo's, from its history),
    parsed from their text, and every city's street names, so the geocoder finds them."""
    from places.network import REFRESH_SQL
    from places.parse import parse_place

    bind = op.get_bind()
    last = 0
    while True:
        rows = bind.execute(
            sa.text(
                "SELECT id, address FROM address_point WHERE id > :last AND street IS NULL "
                "ORDER BY id LIMIT :n"
            ),
            {"last": last, "n": batch},
        ).all()
        if not rows:
            break
        last = rows[-1].id
        parts = []
        for row in rows:
            p = parse_place(row.address)
            if p is None or p.kind != "address":
                continue
            parts.append(
                {
                    "id": row.id,
                    "number": p.number,
                    "suffix": p.number_suffix,
                    "street": p.street.name[:200],
                    "core": p.street.core[:200],
                    "unit": p.unit[:50] if p.unit else None,
                    "zip": p.zip,
                }
            )
        if parts:
            bind.execute(
                sa.text(
                    "UPDATE address_point SET number = :number, number_suffix = :suffix, "
                    "street = :street, street_core = :core, unit = :unit, zip = :zip "
                    "WHERE id = :id"
                ),
                parts,
            )
    for (city_id,) in bind.execute(sa.text("SELECT DISTINCT jurisdiction_id FROM address_point")):
        for statement in REFRESH_SQL:
            bind.execute(statement, {"j": city_id})


def downgrade() -> None:
    op.drop_column("routing_rule", "asset_value")
    op.drop_column("routing_rule", "asset_attribute")
    op.drop_constraint(
        op.f("fk_service_request_asset_layer_id_asset_layer"), "service_request", "foreignkey"
    )
    op.drop_column("service_request", "asset_ref")
    op.drop_column("service_request", "asset_layer_id")
    op.drop_column("service_request", "address_id")
    op.drop_constraint(op.f("fk_service_asset_layer_id_asset_layer"), "service", "foreignkey")
    op.drop_column("service", "asset_layer_id")
    op.drop_index("uq_address_point_source_id", table_name="address_point")
    op.drop_index("ix_address_point_street_number", table_name="address_point")
    op.drop_index("ix_address_point_street_core_trgm", table_name="address_point")
    op.drop_constraint(
        op.f("fk_address_point_dataset_id_place_dataset"), "address_point", "foreignkey"
    )
    for col in ("zip", "unit", "street_core", "street", "number_suffix", "number", "source_id"):
        op.drop_column("address_point", col)
    op.drop_column("address_point", "dataset_id")
    # Keep one point per address so the old unique constraint can come back.
    op.execute(
        "DELETE FROM address_point a USING address_point b "
        "WHERE a.jurisdiction_id = b.jurisdiction_id AND a.address = b.address AND a.id > b.id"
    )
    op.create_unique_constraint(
        op.f("uq_address_point_jurisdiction_id_address"),
        "address_point",
        ["jurisdiction_id", "address"],
    )
    op.drop_table("street_name")
    op.drop_table("street_intersection")
    op.drop_table("street_segment")
    op.drop_table("asset")
    op.drop_table("place_dataset")
    op.drop_table("asset_layer")
