"""zone_piece, boundary_piece: zones and city boundaries cut into small pieces

Kept by row triggers on zone and jurisdiction (see spatial/pieces.py for why).

Revision ID: 0400
Revises: 0390
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = "0400"
down_revision = "0390"
branch_labels = None
depends_on = None

MAX_VERTICES = 64  # spatial.pieces.MAX_VERTICES when this migration was written

# (table, piece table, owner column, geometry column)
PIECES = (
    ("zone", "zone_piece", "zone_id", "geom"),
    ("jurisdiction", "boundary_piece", "jurisdiction_id", "boundary"),
)


def _function(table: str, piece: str, owner: str, column: str) -> str:
    # Identifiers from the constant PIECES above, no input.
    return f"""
CREATE FUNCTION {piece}_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM {piece} WHERE {owner} = OLD.id;
    END IF;
    IF NEW.{column} IS NOT NULL AND NOT ST_IsEmpty(NEW.{column}) THEN
        INSERT INTO {piece} ({owner}, geom)
        SELECT NEW.id, ST_Subdivide(NEW.{column}, {MAX_VERTICES});
    END IF;
    RETURN NULL;
END
$$"""  # noqa: S608


def upgrade() -> None:
    for table, piece, owner, column in PIECES:
        op.create_geospatial_table(
            piece,
            sa.Column("id", sa.BigInteger(), nullable=False),
            sa.Column(owner, sa.Integer(), nullable=False),
            sa.Column(
                "geom",
                Geometry(
                    geometry_type="GEOMETRY",
                    srid=4326,
                    spatial_index=False,
                    from_text="ST_GeomFromEWKT",
                    name="geometry",
                    nullable=False,
                ),
                nullable=False,
            ),
            sa.ForeignKeyConstraint(
                [owner],
                [f"{table}.id"],
                name=op.f(f"fk_{piece}_{owner}_{table}"),
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{piece}")),
        )
        op.create_index(op.f(f"ix_{piece}_{owner}"), piece, [owner], unique=False)
        op.create_geospatial_index(
            f"idx_{piece}_geom",
            piece,
            ["geom"],
            unique=False,
            postgresql_using="gist",
            postgresql_ops={},
        )
        op.execute(_function(table, piece, owner, column))
        op.execute(
            f"CREATE TRIGGER {piece}_insert AFTER INSERT ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {piece}_sync()"
        )
        op.execute(
            f"CREATE TRIGGER {piece}_update AFTER UPDATE OF {column} ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {piece}_sync()"
        )
        # What exists already (an upgraded installation).
        op.execute(
            f"INSERT INTO {piece} ({owner}, geom) "  # noqa: S608
            f"SELECT id, ST_Subdivide({column}, {MAX_VERTICES}) FROM {table} "
            f"WHERE {column} IS NOT NULL AND NOT ST_IsEmpty({column})"
        )


def downgrade() -> None:
    for table, piece, owner, _column in reversed(PIECES):
        op.execute(f"DROP TRIGGER IF EXISTS {piece}_update ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {piece}_insert ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS {piece}_sync()")
        op.drop_geospatial_index(
            f"idx_{piece}_geom",
            table_name=piece,
            postgresql_using="gist",
            column_name="geom",
        )
        op.drop_index(op.f(f"ix_{piece}_{owner}"), table_name=piece)
        op.drop_geospatial_table(piece)
