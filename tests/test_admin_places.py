"""The admin page of a city's places (/admin/places): upload, check and import address,
street and asset files through the real forms (CSRF and all); versions and who imported
them; an asset layer's title and its removal."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
import sqlalchemy as sa

from spatial.models import Service
from spatial.models_ops import AdminEvent
from tests.support.dispatch_city import DispatchCity, csrf_from, login, make_dispatch_city

ROWS = [
    ("A-100", "1111", "S Figueroa St", "90015", "34.0430", "-118.2673"),
    ("A-101", "401", "W 5th St", "90013", "34.0470", "-118.2510"),
    ("A-102", "200", "N Spring St", "90012", "34.0540", "-118.2430"),
]
HEADER = ("ID", "NUM", "STREET", "ZIP", "LAT", "LON")
MAPPING = {
    "map_number": "NUM",
    "map_street": "STREET",
    "map_zip": "ZIP",
    "map_id": "ID",
    "map_lat": "LAT",
    "map_lon": "LON",
}


def csv_bytes(rows) -> bytes:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(HEADER)
    w.writerows(rows)
    return out.getvalue().encode()


def lights_bytes() -> bytes:
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [-118.25 + i * 0.001, 34.05]},
            "properties": {"POLE": f"P-{i}", "STREET": "MAIN ST", "OWNER": "City"},
        }
        for i in range(3)
    ]
    return json.dumps({"type": "FeatureCollection", "features": features}).encode()


@pytest.fixture
def city(sessions) -> DispatchCity:
    with sessions.begin() as s:
        return make_dispatch_city(s)


@pytest.fixture
def admin(client, city):
    login(client, "admin")
    return client


def post(client, path, data, token=True):
    if token:
        data = {"csrf_token": csrf_from(client, "/admin/places"), **data}
    return client.post(path, data=data, content_type="multipart/form-data")


def count(engine, table: str) -> int:
    with engine.connect() as c:
        return c.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


def test_check_then_import_an_address_file(admin, engine, city):
    page = admin.get("/admin/places")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'href="/admin/places"' in html and "Nothing imported yet." in html

    checked = post(
        admin,
        "/admin/places/addresses",
        {"file": (io.BytesIO(csv_bytes(ROWS)), "addresses.csv"), "action": "check", **MAPPING},
    )
    html = checked.get_data(as_text=True)
    assert checked.status_code == 200, html
    assert "3 rows read, 3 good, 0 bad" in html
    assert "dry run: nothing written (the import would be version 1)" in html
    assert "ID, NUM, STREET, ZIP, LAT, LON" in html
    assert count(engine, "address_point") == 0 and count(engine, "place_dataset") == 0
    token = re.search(r'name="upload" value="([^"]+)"', html).group(1)

    # Import the checked file without uploading it again.
    done = post(admin, "/admin/places/addresses", {"upload": token, "action": "import", **MAPPING})
    assert done.status_code == 302, done.get_data(as_text=True)
    assert count(engine, "address_point") == 3
    with engine.connect() as c:
        assert c.execute(
            sa.text("SELECT address FROM address_point WHERE source_id = 'A-100'")
        ).scalar() == ("1111 S FIGUEROA ST, 90015")
        event = c.execute(sa.select(AdminEvent.action, AdminEvent.actor_label, AdminEvent.what))
        event = event.one()
    assert event.action == "addresses.import" and event.actor_label == "admin@city.example"
    assert event.what == {"file": "addresses.csv", "version": 1, "rows": 3, "bad": 0}
    listing = admin.get("/admin/places").get_data(as_text=True)
    versions = listing.split('id="address-versions"')[1].split("</table>")[0]
    assert "1 (current)" in versions and "admin@city.example" in versions
    assert "addresses.csv" in versions


def test_a_missing_column_is_named_beside_the_map_and_nothing_is_written(admin, engine, city):
    res = post(
        admin,
        "/admin/places/addresses",
        {
            "file": (io.BytesIO(csv_bytes(ROWS)), "addresses.csv"),
            "action": "import",
            **MAPPING,
            "map_number": "HOUSE",
        },
    )
    html = res.get_data(as_text=True)
    assert res.status_code == 400
    assert re.search(
        r'id="error-map"[^>]*>the file has no column &#39;HOUSE&#39; \(mapped to number\); '
        r"its columns: ID, NUM, STREET, ZIP, LAT, LON<",
        html,
    ), html
    assert count(engine, "place_dataset") == 0 and count(engine, "admin_event") == 0


def test_bad_rows_refuse_the_import_and_are_listed(admin, engine, city):
    rows = ROWS + [("A-103", "", "Main St", "90012", "34.05", "-118.25"), ROWS[0]]
    data = {"file": (io.BytesIO(csv_bytes(rows)), "addresses.csv"), "action": "import", **MAPPING}
    res = post(admin, "/admin/places/addresses", data)
    html = res.get_data(as_text=True)
    assert res.status_code == 400
    assert "2 bad rows in addresses.csv: nothing written" in html
    assert "line 5: no house number" in html
    assert "line 6: duplicate id &#39;A-100&#39; (also line 2)" in html
    assert count(engine, "address_point") == 0 and count(engine, "place_dataset") == 0

    token = re.search(r'name="upload" value="([^"]+)"', html).group(1)
    skipped = post(
        admin,
        "/admin/places/addresses",
        {"upload": token, "action": "import", "skip_bad": "1", **MAPPING},
    )
    assert skipped.status_code == 302
    assert count(engine, "address_point") == 3


def test_an_unsupported_file_is_refused_beside_the_file_field(admin, engine, city):
    res = post(
        admin,
        "/admin/places/streets",
        {"file": (io.BytesIO(b"x"), "streets.xlsx"), "action": "check", "map_name": "NAME"},
    )
    assert res.status_code == 400
    assert re.search(r'id="error-file"[^>]*>streets.xlsx: not a supported format', res.text)
    assert count(engine, "place_dataset") == 0


def test_a_post_without_its_csrf_token_is_refused(admin, engine, city):
    res = post(
        admin,
        "/admin/places/addresses",
        {"file": (io.BytesIO(csv_bytes(ROWS)), "a.csv"), "action": "import", **MAPPING},
        token=False,
    )
    assert res.status_code == 400
    assert count(engine, "address_point") == 0


def test_only_a_city_admin_reaches_the_page(client, city):
    login(client, "dispatcher")
    assert client.get("/admin/places").status_code == 403


def test_an_asset_layer_imported_retitled_and_removed(admin, engine, sessions, city):
    res = post(
        admin,
        "/admin/places/assets",
        {
            "file": (io.BytesIO(lights_bytes()), "lights.geojson"),
            "action": "import",
            "layer": "streetlights",
            "id_field": "POLE",
            "label_field": "Pole {POLE}, {STREET}",
        },
    )
    assert res.status_code == 302, res.get_data(as_text=True)
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT label FROM asset WHERE ref = 'P-1'")).scalar() == (
            "Pole P-1, MAIN ST"
        )
    page = admin.get("/admin/places").get_data(as_text=True)
    assert "Streetlights <small>(streetlights: 3 assets)</small>" in page

    bad = post(admin, "/admin/places/assets/title", {"layer": "streetlights", "title": " "})
    assert bad.status_code == 400
    assert 'id="error-title"' in bad.text and "the title must not be empty" in bad.text
    ok = post(admin, "/admin/places/assets/title", {"layer": "streetlights", "title": "Lamp"})
    assert ok.status_code == 302
    assert "Lamp <small>" in admin.get("/admin/places").text

    with sessions.begin() as s:
        s.execute(
            sa.update(Service)
            .where(Service.id == city.pothole_id)
            .values(asset_layer_id=sa.select(sa.text("id FROM asset_layer")).scalar_subquery())
        )
    refused = post(admin, "/admin/places/assets/remove", {"layer": "streetlights"})
    assert refused.status_code == 400
    assert "is used by the category pothole" in refused.text
    assert count(engine, "asset") == 3
    with sessions.begin() as s:
        s.execute(sa.update(Service).values(asset_layer_id=None))
    removed = post(admin, "/admin/places/assets/remove", {"layer": "streetlights"})
    assert removed.status_code == 302
    assert count(engine, "asset") == 0 and count(engine, "asset_layer") == 0
    with engine.connect() as c:
        actions = c.execute(sa.select(AdminEvent.action).order_by(AdminEvent.id)).scalars().all()
    assert actions == ["assets.import", "asset_layer.update", "asset_layer.remove"]


def test_another_citys_layer_is_not_found(admin, engine, sessions, city):
    from tests.support.places_city import make_cambridge_city

    with sessions.begin() as s:
        make_cambridge_city(s, streets=False)
    res = post(admin, "/admin/places/assets/remove", {"layer": "streetlights"})
    assert res.status_code == 400
    assert "testville has no asset layer &#39;streetlights&#39;" in res.text
    assert count(engine, "asset") == 6117
