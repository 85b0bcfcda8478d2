"""Reverse geocoding for the pin, duplicate suggestions, following, and the map-cell
counts kept by triggers: all against real PostGIS."""

from __future__ import annotations

import random
import re

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from geoalchemy2 import alembic_helpers
from pyproj import Geod

from intake.duplicates import (
    confirm_follow,
    find_duplicates,
    follow,
    search_envelope,
    supporters,
)
from places.geocoder import address_by_id, reverse_geocode
from spatial import map_cells
from spatial.errors import InvalidInput
from spatial.models import (
    Base,
    Follower,
    OutboxMessage,
    Photo,
    RequestEvent,
    ServiceRequest,
    now_utc,
)
from tests.support.resident_city import (
    ADDRESS_IDS,
    ADDRESSES,
    INSIDE,
    add_request,
    make_resident_city,
)

GEOD = Geod(ellps="WGS84")
LAT, LON = INSIDE


def offset(lon: float, lat: float, metres: float, bearing: float = 90.0) -> tuple[float, float]:
    x, y, _ = GEOD.fwd(lon, lat, bearing, metres)
    return x, y


@pytest.fixture
def city(sessions):
    with sessions.begin() as s:
        made = make_resident_city(s)
        ids = {k: v.id for k, v in made.items() if hasattr(v, "id")}
    return ids


# ------------------------------------------------------------------------ addresses
# The geocoder itself is tested in test_geocoder.py; here, what the resident pages lean on.


def test_reverse_geocode_names_the_closest_address_on_the_ground(sessions, city):
    with sessions() as s:
        from spatial.models import Jurisdiction

        town = s.get(Jurisdiction, city["city"])
        lon, lat = ADDRESSES["100 N MAIN ST, 90012"]
        # 5 m east of 100 N MAIN: nearer than 102 N MAIN (about 28 m away)
        near = reverse_geocode(s, town, *offset(lon, lat, 5))
        assert near.address == "100 N MAIN ST, 90012"
        assert near.distance_m == pytest.approx(5, abs=0.5)
        assert near.address_id == ADDRESS_IDS["100 N MAIN ST, 90012"]
        # far from every address and street: none
        assert reverse_geocode(s, town, -118.29, 34.09) is None
        assert reverse_geocode(s, town, -118.29, 34.09, max_distance_m=10_000) is not None
        point = address_by_id(s, town, near.address_id)
        assert point.address == near.address and point.match_type == "address_point"
        assert address_by_id(s, town, "no-such-id") is None


def test_reverse_geocode_ranks_by_metres_not_degrees(sessions, city):
    """At 34° a degree of longitude is 17 % shorter: the planar KNN order alone is wrong."""
    from places import store
    from places.parse import normalise_street
    from spatial.models import Jurisdiction

    with sessions.begin() as s:
        town = s.get(Jurisdiction, city["city"])
        base_lon, base_lat = -118.26, 34.07
        # A: 0.00100 degrees east (about 92 m); B: 0.00095 degrees north (about 105 m).
        points = store.begin(
            s, town, "addresses", source_name="test", mapping={}, imported_by="test"
        )
        store.add_addresses(
            s,
            points,
            [
                store.AddressRow(base_lon + 0.00100, base_lat, 1, normalise_street("East St")),
                store.AddressRow(base_lon, base_lat + 0.00095, 1, normalise_street("North St")),
            ],
        )
        store.finish(s, points, rows_read=2, rows_bad=0)
        near = reverse_geocode(s, town, base_lon, base_lat, max_distance_m=150)
        assert near.address == "1 EAST ST"


# ----------------------------------------------------------------------- duplicates


def test_search_envelope_holds_every_point_within_the_radius():
    rng = random.Random(4)
    for _ in range(300):
        lon, lat = rng.uniform(-179, 179), rng.uniform(-80, 80)
        radius = rng.choice([10, 50, 200, 1000])
        minlon, minlat, maxlon, maxlat = search_envelope(lon, lat, radius)
        for bearing in range(0, 360, 15):
            x, y = offset(lon, lat, radius, bearing)
            assert minlon <= x <= maxlon and minlat <= y <= maxlat


def _town(s, city):
    from spatial.models import Jurisdiction, Service

    return s.get(Jurisdiction, city["city"]), s.get(Service, city["pothole"])


def test_duplicates_are_open_same_category_recent_and_within_the_radius(sessions, city):
    from spatial.models import Service

    with sessions.begin() as s:
        town, pothole = _town(s, city)
        graffiti = s.get(Service, city["graffiti"])
        near = add_request(s, town, pothole, *offset(LON, LAT, 45), description="hole A")
        nearer = add_request(s, town, pothole, *offset(LON, LAT, 10, 200), days_ago=3)
        add_request(s, town, pothole, *offset(LON, LAT, 55))  # outside 50 m
        add_request(s, town, pothole, *offset(LON, LAT, 20), status="closed")
        add_request(s, town, pothole, *offset(LON, LAT, 20), days_ago=31)
        add_request(s, town, graffiti, *offset(LON, LAT, 5))  # other category
        s.add(
            Photo(
                request_id=near.id,
                content_hash="a" * 64,
                mime_type="image/jpeg",
                width=10,
                height=10,
                bytes=100,
                original_key="private/aa/x.jpg",
                public_key="public/aa/" + "a" * 64 + ".jpg",
                thumb_key="public/aa/" + "a" * 64 + "_t.jpg",
            )
        )
        s.add(Follower(request_id=near.id, email="x@example.org", confirmed_at=now_utc()))
        ids = (nearer.public_id, near.public_id)
    with sessions() as s:
        town, pothole = _town(s, city)
        found = find_duplicates(s, town, pothole, LON, LAT)
        assert tuple(c.public_id for c in found) == ids  # nearest first
        assert found[0].distance_m == pytest.approx(10, abs=0.3)
        assert found[1].distance_m == pytest.approx(45, abs=0.3)
        assert found[1].thumb_key.endswith("_t.jpg") and found[0].thumb_key is None
        assert found[1].supporters == 1 and found[1].description == "hole A"
        assert found[0].age_days() == 3
        # the radius is a setting
        wider = find_duplicates(s, town, pothole, LON, LAT, radius_m=60)
        assert len(wider) == 3
        with pytest.raises(InvalidInput):
            find_duplicates(s, town, pothole, LON, LAT, radius_m=0)


def test_private_categories_never_list_duplicates(sessions, city):
    from spatial.models import Service

    with sessions.begin() as s:
        town, _ = _town(s, city)
        private = s.get(Service, city["private"])
        add_request(s, town, private, LON, LAT)
    with sessions() as s:
        town, _ = _town(s, city)
        assert find_duplicates(s, town, s.get(Service, city["private"]), LON, LAT) == []


def test_follow_subscribes_counts_as_support_and_creates_no_request(sessions, city):
    with sessions.begin() as s:
        town, pothole = _town(s, city)
        req_id = add_request(s, town, pothole, LON, LAT).id
    before = _count(sessions, ServiceRequest)
    with sessions.begin() as s:
        req = s.get(ServiceRequest, req_id)
        result = follow(s, req, " Ana@Example.org ", public_base_url="http://311.test")
        assert result.created
    with sessions.begin() as s:
        req = s.get(ServiceRequest, req_id)
        again = follow(s, req, "ana@example.org", public_base_url="http://311.test")
        assert not again.created and not again.mailed  # asked again at once: no second mail
        assert supporters(s, req) == 0  # not before the address is confirmed
    assert _count(sessions, ServiceRequest) == before
    with sessions() as s:
        assert (
            s.scalars(sa.select(RequestEvent).where(RequestEvent.request_id == req_id)).all() == []
        )
        mail = s.scalars(sa.select(OutboxMessage)).all()
        assert [(m.kind, m.to_addr) for m in mail] == [("follow_confirmation", "Ana@Example.org")]
        assert "/requests/TV-OLD" in mail[0].body_text and "token=" not in mail[0].body_text
        link = re.search(r"/follow/confirm/(\S+)", mail[0].body_text).group(1)
    with sessions.begin() as s:
        confirm_follow(s, s.get(ServiceRequest, req_id), link)
    with sessions() as s:
        assert supporters(s, s.get(ServiceRequest, req_id)) == 1
        events = s.scalars(sa.select(RequestEvent).where(RequestEvent.request_id == req_id)).all()
        assert [(e.kind, e.public) for e in events] == [("followed", True)]
        assert "example.org" not in (events[0].note or "")


@pytest.mark.parametrize(
    ("email", "status", "message"),
    [
        ("", "new", "Give your e-mail"),
        ("not-an-address", "new", "is not an e-mail address"),
        ("ana@example.org", "closed", "already closed"),
    ],
)
def test_follow_refuses_bad_input_and_writes_nothing(sessions, city, email, status, message):
    with sessions.begin() as s:
        town, pothole = _town(s, city)
        req_id = add_request(s, town, pothole, LON, LAT, status=status).id
    with sessions() as s:
        with pytest.raises(InvalidInput, match=message):
            follow(s, s.get(ServiceRequest, req_id), email, public_base_url="http://311.test")
        s.rollback()
    assert _count(sessions, Follower) == 0
    assert _count(sessions, RequestEvent) == 0


def _count(sessions, model) -> int:
    with sessions() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(model))


# --------------------------------------------------------------- map cell counts


def test_map_cell_model_matches_the_migration(engine):
    def include(obj, name, type_, reflected, compare_to):
        if type_ == "table" and reflected and compare_to is None:
            return False
        return alembic_helpers.include_object(obj, name, type_, reflected, compare_to)

    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"include_object": include, "compare_type": True}
        )
        diff = compare_metadata(ctx, Base.metadata)
    assert "map_cell_count" in Base.metadata.tables
    assert diff == []


def test_triggers_keep_cell_counts_exact_through_every_kind_of_change(sessions, city):
    from spatial.models import Service

    rng = random.Random(11)
    with sessions.begin() as s:
        town, pothole = _town(s, city)
        graffiti = s.get(Service, city["graffiti"])
        made = [
            add_request(
                s,
                town,
                rng.choice([pothole, graffiti]),
                rng.uniform(-118.30, -118.20),
                rng.uniform(34.00, 34.10),
                status=rng.choice(["new", "closed", "in_progress"]),
            ).id
            for _ in range(300)
        ]
        assert map_cells.drift(s) == []
        stored = s.scalar(sa.text("SELECT sum(n) FROM map_cell_count WHERE level = 12"))
        assert stored == 300
    with sessions.begin() as s:
        # status changes, moves, recategorising, a no-op routing update, deletes, no location
        s.execute(
            sa.text("UPDATE service_request SET status = 'resolved' WHERE id = ANY(:ids)"),
            {"ids": made[:50]},
        )
        s.execute(
            sa.text(
                "UPDATE service_request SET location = ST_Translate(location, 0.013, -0.007) "
                "WHERE id = ANY(:ids)"
            ),
            {"ids": made[40:90]},
        )
        s.execute(
            sa.text("UPDATE service_request SET service_id = :g WHERE id = ANY(:ids)"),
            {"g": city["graffiti"], "ids": made[80:120]},
        )
        s.execute(sa.text("UPDATE service_request SET priority = 'high'"))
        s.execute(
            sa.text("UPDATE service_request SET location = NULL WHERE id = ANY(:ids)"),
            {"ids": made[200:210]},
        )
        s.execute(sa.text("DELETE FROM service_request WHERE id = ANY(:ids)"), {"ids": made[250:]})
        assert map_cells.drift(s) == []
    with sessions.begin() as s:
        s.execute(sa.text("TRUNCATE service_request CASCADE"))
        assert map_cells.drift(s) == []
        assert s.scalar(sa.text("SELECT count(*) FROM map_cell_count")) == 0


def test_rebuild_recounts_after_triggers_were_bypassed(sessions, city):
    with sessions.begin() as s:
        town, pothole = _town(s, city)
        add_request(s, town, pothole, LON, LAT)
        s.execute(sa.text("DELETE FROM map_cell_count"))
        assert len(map_cells.drift(s)) == len(map_cells.LEVELS)  # one cell per level
        written = map_cells.rebuild(s, town.id)
        assert written == len(map_cells.LEVELS)
        assert map_cells.drift(s) == []


def test_cells_and_levels_are_aligned():
    assert map_cells.cell_size(12) == 90 / 4096
    assert map_cells.level_for_zoom(3) == 12
    assert map_cells.level_for_zoom(12) == 12
    assert map_cells.level_for_zoom(13) == 14
    assert map_cells.level_for_zoom(15) == 16
    assert map_cells.level_for_zoom(17) is None
    assert map_cells.cluster_level(17) == 16 and map_cells.cluster_level(9) == 9
    gx, gy = map_cells.cell_of(-118.25, 34.05, 14)
    # A level-14 cell lies inside the level-12 cell two bits up, negative longitudes too.
    assert (gx >> 2, gy >> 2) == map_cells.cell_of(-118.25, 34.05, 12)
