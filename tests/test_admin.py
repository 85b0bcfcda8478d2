"""Admin pages over HTTP: layer upload with its report, rule sets, users, API keys,
response templates; bad forms write nothing; every other role gets 403 and changes nothing."""

from __future__ import annotations

import io
import json
import re
import zipfile

import geopandas as gpd
import pytest
import sqlalchemy as sa
from shapely.geometry import box

from spatial.apikeys import hash_key
from spatial.models import ApiKey, ResponseTemplate, RuleSet, User, Zone, ZoneLayer
from tests.support.city import BOUNDS
from tests.support.dispatch_city import csrf_from, login, make_dispatch_city

FINGERPRINT_TABLES = (
    "zone_layer",
    "zone",
    "routing_ruleset",
    "routing_rule",
    "app_user",
    "api_key",
    "response_template",
    "service_request",
)


@pytest.fixture
def city(sessions):
    with sessions.begin() as s:
        return make_dispatch_city(s)


@pytest.fixture
def admin(client, city):
    login(client, "admin")
    return client


def fingerprint(engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {
            t: conn.execute(
                sa.text(
                    f"SELECT count(*) || ':' || coalesce(md5(string_agg(x::text, '|' "  # noqa: S608
                    f"ORDER BY x::text)), '') FROM {t} x"
                )
            ).scalar()
            for t in FINGERPRINT_TABLES
        }


def three_zones(path, fmt: str = "GeoJSON") -> None:
    """Three zones over testville: A and B overlap, C leaves a gap in the north."""
    w, s, e, n = BOUNDS
    gdf = gpd.GeoDataFrame(
        {
            "code": ["A", "B", "C"],
            "name": ["Alpha", "Bravo", "Charlie"],
        },
        geometry=[
            box(w, s, w + 0.06, n),
            box(w + 0.05, s, e, n - 0.03),
            box(w + 0.06, n - 0.02, e, n),
        ],
        crs=4326,
    )
    gdf.to_file(path, driver=fmt)


def _upload(client, data: bytes, filename: str, **fields):
    token = csrf_from(client, "/admin/layers")
    form = {"csrf_token": token, "layer_name": "wards", **fields}
    form["file"] = (io.BytesIO(data), filename)
    return client.post("/admin/layers", data=form, content_type="multipart/form-data")


# --------------------------------------------------------------------------- pages


@pytest.mark.parametrize(
    "path",
    [
        "/admin/",
        "/admin/layers",
        "/admin/rules",
        "/admin/users",
        "/admin/apikeys",
        "/admin/templates",
    ],
)
def test_each_page_works_for_admin(admin, path):
    res = admin.get(path)
    assert res.status_code == 200, res.get_data(as_text=True)
    html = res.get_data(as_text=True)
    assert "Administration" in html
    assert "script-src 'self'" in res.headers["Content-Security-Policy"]


def test_layer_page_and_ruleset_page_work(admin, sessions):
    with sessions() as s:
        layer_id = s.scalar(sa.select(ZoneLayer.id))
        rs_id = s.scalar(sa.select(RuleSet.id))
    assert admin.get(f"/admin/layers/{layer_id}").status_code == 200
    html = admin.get(f"/admin/rules/{rs_id}").get_data(as_text=True)
    assert "Potholes by district" in html


# --------------------------------------------------------------------------- uploads


def test_upload_geojson_shows_report_table_and_map(admin, sessions, tmp_path):
    path = tmp_path / "wards.geojson"
    three_zones(path)
    res = _upload(admin, path.read_bytes(), "wards.geojson", code_field="code")
    assert res.status_code == 302, res.get_data(as_text=True)
    page = admin.get(res.headers["Location"])
    html = page.get_data(as_text=True)
    assert re.search(r'id="overlap-count">1<', html)
    assert re.search(r'id="gap-count">1<', html)
    overlaps = html.split('id="overlaps"')[1].split("</table>")[0]
    assert "<td>A</td><td>B</td>" in overlaps
    data = json.loads(
        re.search(
            r'<script type="application/json" id="map-data">(.*?)</script>', html, re.S
        ).group(1)
    )
    kinds = sorted(f["properties"]["kind"] for f in data["features"])
    assert kinds == ["gap", "overlap", "zone", "zone", "zone"]
    assert "/static/vendor/leaflet/leaflet.js" in html and "/static/admin.js" in html
    with sessions() as s:
        layer = s.scalar(sa.select(ZoneLayer).where(ZoneLayer.name == "wards"))
        assert layer.is_current and layer.version == 1
        assert sorted(s.scalars(sa.select(Zone.code).where(Zone.layer_id == layer.id))) == [
            "A",
            "B",
            "C",
        ]
    listing = admin.get("/admin/layers").get_data(as_text=True)
    assert "wards" in listing and "districts" in listing


def test_upload_zipped_shapefile(admin, sessions, tmp_path):
    folder = tmp_path / "shp"
    folder.mkdir()
    three_zones(folder / "wards.shp", fmt="ESRI Shapefile")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in folder.iterdir():
            zf.write(f, f.name)
    res = _upload(admin, buf.getvalue(), "wards.zip", code_field="code")
    assert res.status_code == 302, res.get_data(as_text=True)
    with sessions() as s:
        codes = s.scalars(
            sa.select(Zone.code).join(ZoneLayer).where(ZoneLayer.name == "wards")
        ).all()
    assert sorted(codes) == ["A", "B", "C"]


def test_upload_as_draft_keeps_current_version(admin, sessions, tmp_path):
    path = tmp_path / "d.geojson"
    three_zones(path)
    res = _upload(
        admin, path.read_bytes(), "d.geojson", layer_name="districts", draft="1", code_field="code"
    )
    assert res.status_code == 302
    with sessions() as s:
        rows = s.execute(
            sa.select(ZoneLayer.version, ZoneLayer.is_current)
            .where(ZoneLayer.name == "districts")
            .order_by(ZoneLayer.version)
        ).all()
    assert [tuple(r) for r in rows] == [(1, True), (2, False)]


@pytest.mark.parametrize(
    "data,filename,fields,field,needle",
    [
        (b"not json at all", "bad.geojson", {}, "file", "bad.geojson"),
        (b"x", "zones.txt", {}, "file", ".gpkg"),
        (
            b'{"type": "FeatureCollection", "features": []}',
            "z.geojson",
            {"layer_name": "Bad Name!"},
            "layer",
            "layer",
        ),
    ],
)
def test_bad_upload_shows_message_at_field_and_writes_nothing(
    admin, engine, data, filename, fields, field, needle
):
    before = fingerprint(engine)
    res = _upload(admin, data, filename, **fields)
    assert res.status_code == 400
    html = res.get_data(as_text=True)
    msg = re.search(rf'id="error-{field}" role="alert">([^<]+)<', html)
    assert msg and needle in msg.group(1), html[-3000:]
    assert fingerprint(engine) == before


# --------------------------------------------------------------------------- users, keys, templates


def test_users_create_change_role_deactivate(admin, sessions):
    token = csrf_from(admin, "/admin/users")
    res = admin.post(
        "/admin/users",
        data={
            "csrf_token": token,
            "email": "new@city.example",
            "role": "agent",
            "password": "long enough password",
        },
    )
    assert res.status_code == 302
    with sessions() as s:
        u = s.scalar(sa.select(User).where(User.email == "new@city.example"))
        assert u.role == "agent" and u.password_hash.startswith("$argon2")
        uid = u.id
    assert (
        admin.post(
            f"/admin/users/{uid}/role", data={"csrf_token": token, "role": "crew"}
        ).status_code
        == 302
    )
    assert (
        admin.post(
            f"/admin/users/{uid}/active", data={"csrf_token": token, "active": "0"}
        ).status_code
        == 302
    )
    with sessions() as s:
        u = s.get(User, uid)
        assert (u.role, u.active) == ("crew", False)


def test_user_form_errors_write_nothing(admin, engine):
    token = csrf_from(admin, "/admin/users")
    before = fingerprint(engine)
    for data, field in [
        ({"email": "nope", "role": "agent"}, "email"),
        ({"email": "a@city.example", "role": "boss"}, "role"),
        ({"email": "a@city.example", "role": "agent", "password": "short"}, "password"),
        ({"email": "agent@city.example", "role": "agent"}, "email"),
    ]:
        res = admin.post("/admin/users", data={"csrf_token": token, **data})
        assert res.status_code == 400
        assert f'id="error-{field}"' in res.get_data(as_text=True)
    assert fingerprint(engine) == before


def test_api_key_shown_once_and_revoked(admin, sessions):
    token = csrf_from(admin, "/admin/apikeys")
    res = admin.post("/admin/apikeys", data={"csrf_token": token, "name": "City app"})
    assert res.status_code == 200
    key = re.search(r'<code id="new-key">([^<]+)</code>', res.get_data(as_text=True)).group(1)
    with sessions() as s:
        row = s.scalar(sa.select(ApiKey).where(ApiKey.name == "City app"))
        assert row.key_hash == hash_key(key) and row.revoked_at is None
        key_id = row.id
    listing = admin.get("/admin/apikeys").get_data(as_text=True)
    assert key not in listing and key[:12] in listing
    assert (
        admin.post(f"/admin/apikeys/{key_id}/revoke", data={"csrf_token": token}).status_code == 302
    )
    with sessions() as s:
        assert s.get(ApiKey, key_id).revoked_at is not None
    res = admin.post("/admin/apikeys", data={"csrf_token": token, "name": ""})
    assert res.status_code == 400 and 'id="error-name"' in res.get_data(as_text=True)


def test_response_templates_create_edit_delete(admin, sessions, engine):
    token = csrf_from(admin, "/admin/templates")
    res = admin.post(
        "/admin/templates",
        data={
            "csrf_token": token,
            "name": "Fixed",
            "body": "We fixed {public_id}.",
            "service_code": "pothole",
        },
    )
    assert res.status_code == 302
    with sessions() as s:
        t = s.scalar(sa.select(ResponseTemplate).where(ResponseTemplate.name == "Fixed"))
        tid = t.id
        assert t.service_id is not None
    assert (
        admin.post(
            f"/admin/templates/{tid}",
            data={"csrf_token": token, "name": "Fixed", "body": "Repaired."},
        ).status_code
        == 302
    )
    with sessions() as s:
        assert s.get(ResponseTemplate, tid).body == "Repaired."
    before = fingerprint(engine)
    for data, field in [
        ({"name": "Scheduled", "body": "dup"}, "name"),
        ({"name": "X", "body": ""}, "body"),
        ({"name": "X", "body": "b", "service_code": "nope"}, "service_code"),
    ]:
        res = admin.post("/admin/templates", data={"csrf_token": token, **data})
        assert res.status_code == 400
        assert f'id="error-{field}"' in res.get_data(as_text=True)
    assert fingerprint(engine) == before
    assert (
        admin.post(f"/admin/templates/{tid}/delete", data={"csrf_token": token}).status_code == 302
    )
    with sessions() as s:
        assert s.get(ResponseTemplate, tid) is None


# --------------------------------------------------------------------------- permissions


def _admin_actions(sessions, tmp_path):
    with sessions() as s:
        layer_id = s.scalar(sa.select(ZoneLayer.id))
        rs_id = s.scalar(sa.select(RuleSet.id))
        uid = s.scalar(sa.select(User.id).where(User.email == "agent@city.example"))
        tid = s.scalar(sa.select(ResponseTemplate.id))
    path = tmp_path / "p.geojson"
    three_zones(path)
    return [
        ("GET", "/admin/", None),
        ("GET", "/admin/layers", None),
        ("GET", f"/admin/layers/{layer_id}", None),
        ("GET", "/admin/rules", None),
        ("GET", f"/admin/rules/{rs_id}", None),
        ("GET", f"/admin/whatif?ruleset={rs_id}&days=30", None),
        ("GET", "/admin/users", None),
        ("GET", "/admin/apikeys", None),
        ("GET", "/admin/templates", None),
        (
            "POST",
            "/admin/layers",
            {"layer_name": "wards", "file": (io.BytesIO(path.read_bytes()), "p.geojson")},
        ),
        ("POST", f"/admin/layers/{layer_id}/publish", {}),
        ("POST", "/admin/rules", {"note": "x"}),
        ("POST", f"/admin/rules/{rs_id}/publish", {}),
        ("POST", f"/admin/rules/{rs_id}/discard", {}),
        (
            "POST",
            "/admin/users",
            {"email": "z@city.example", "role": "admin", "password": "0123456789ab"},
        ),
        ("POST", f"/admin/users/{uid}/role", {"role": "admin"}),
        ("POST", f"/admin/users/{uid}/active", {"active": "0"}),
        ("POST", "/admin/apikeys", {"name": "sneaky"}),
        ("POST", "/admin/templates", {"name": "N", "body": "b"}),
        ("POST", f"/admin/templates/{tid}", {"name": "N", "body": "b"}),
        ("POST", f"/admin/templates/{tid}/delete", {}),
    ]


@pytest.mark.parametrize("role", ["agent", "dispatcher", "crew", "planner", "parks_dispatcher"])
def test_every_other_role_gets_403_and_nothing_changes(
    client, city, sessions, engine, tmp_path, role
):
    login(client, role)
    token = csrf_from(client, "/staff")
    before = fingerprint(engine)
    for method, path, data in _admin_actions(sessions, tmp_path):
        if method == "GET":
            res = client.get(path)
        else:
            res = client.post(
                path, data={"csrf_token": token, **data}, content_type="multipart/form-data"
            )
        assert res.status_code == 403, (role, method, path, res.status_code)
    assert fingerprint(engine) == before


def test_anonymous_is_sent_to_login(client, city):
    res = client.get("/admin/rules")
    assert res.status_code == 302 and "/login" in res.headers["Location"]
