"""The database commands and the schema, against real PostGIS."""

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from geoalchemy2 import alembic_helpers

from spatial.db import downgrade, migrate
from spatial.models import Base


def _include(obj, name, type_, reflected, compare_to):
    if type_ == "table" and reflected and compare_to is None:
        return False
    return alembic_helpers.include_object(obj, name, type_, reflected, compare_to)


def test_upgrade_head_matches_models(engine):
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"include_object": _include, "compare_type": True}
        )
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def test_downgrade_base_then_upgrade_again(engine):
    downgrade(engine, "base")
    with engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
    assert "service_request" not in tables and "zone" not in tables
    migrate(engine)
    with engine.connect() as conn:
        assert "service_request" in sa.inspect(conn).get_table_names()
        # geometry columns are SRID 4326 with GiST indexes
        rows = conn.execute(
            sa.text(
                "SELECT f_table_name, f_geometry_column, srid FROM geometry_columns "
                "WHERE f_table_schema='public' ORDER BY 1"
            )
        ).all()
        assert {r.srid for r in rows} == {4326}
        gist = conn.execute(
            sa.text("SELECT count(*) FROM pg_indexes WHERE indexdef ILIKE '%USING gist%'")
        ).scalar()
        assert gist >= len(rows)


def test_db_status_counts_lines(cli):
    res = cli("db", "status")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        "jurisdictions: 0",
        "zone_layers: 0",
        "zones: 0",
        "services: 0",
        "requests: 0",
        "users: 0",
    ]


def test_users_create_and_duplicate_is_one_line_error(cli, engine):
    ok = cli("users", "create", "--email", "Ann@City.example", "--role", "dispatcher")
    assert ok.returncode == 0, ok.stderr
    assert "password:" in ok.stdout
    dup = cli("users", "create", "--email", "ann@city.example", "--role", "admin")
    assert dup.returncode != 0
    assert dup.stderr.strip().count("\n") == 0 and "already exists" in dup.stderr
    bad_role = cli("users", "create", "--email", "b@city.example", "--role", "mayor")
    assert bad_role.returncode != 0 and bad_role.stderr.count("\n") == 1
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM app_user")).scalar() == 1


def test_bad_setting_names_the_variable(cli):
    res = cli("db", "status", env={"PORT": "http"})
    assert res.returncode != 0
    assert res.stderr.strip() == "civicpin: error: PORT: 'http' is not a port number"


def test_unknown_city_is_one_line_error(cli):
    res = cli("users", "create", "--email", "c@city.example", "--role", "crew", "--city", "nowhere")
    assert res.returncode == 1
    assert res.stderr.strip() == "civicpin: error: no city with slug 'nowhere'"


def test_the_open_requests_index_covers_exactly_the_open_statuses():
    from spatial.models import OPEN_LOCATION_PREDICATE, OPEN_STATUSES

    named = set(OPEN_LOCATION_PREDICATE.split("(", 1)[1].rstrip(")").replace("'", "").split(", "))
    assert named == {s.value for s in OPEN_STATUSES}
