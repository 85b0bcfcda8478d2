"""The crew page over HTTP: own assignments only, sorting (priority, due, distance),
contact details only for own work, status updates with a completion photo, and the
crew layer exported as GeoJSON and CSV."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from spatial.models import Photo, RequestEvent, ServiceRequest, now_utc
from tests.support.dispatch_city import (
    EAST,
    csrf_from,
    login,
    make_dispatch_city,
    report,
    user,
)
from tests.support.images import jpeg_bytes


@pytest.fixture
def city(sessions):
    with sessions.begin() as s:
        return make_dispatch_city(s)


@pytest.fixture
def media(settings):
    return settings.media_dir


def _new(sessions, media, **kw):
    with sessions.begin() as s:
        req = report(s, media, **kw)
        return req.id, req.public_id


@pytest.fixture
def three(sessions, city, media):
    """Two West requests (one urgent and due later, one normal and due sooner), one East."""
    a = _new(sessions, media, where=(34.02, -118.29), address='=HYPERLINK("http://x")')
    b = _new(sessions, media, where=(34.08, -118.26))
    e = _new(sessions, media, where=EAST)
    with sessions.begin() as s:
        ra, rb = s.get(ServiceRequest, a[0]), s.get(ServiceRequest, b[0])
        ra.priority, ra.due_at = "urgent", now_utc() + timedelta(days=3)
        rb.priority, rb.due_at = "normal", now_utc() + timedelta(hours=2)
    return a, b, e


def test_crew_sees_only_its_open_work_sorted(client, three):
    a, b, e = three
    login(client, "crew")
    page = client.get("/crew").get_data(as_text=True)
    assert a[1] in page and b[1] in page and e[1] not in page
    assert page.index(a[1]) < page.index(b[1])  # urgent first
    by_due = client.get("/crew/api/requests?sort=due").get_json()["items"]
    assert [i["public_id"] for i in by_due] == [b[1], a[1]]
    # Standing at b's corner, b is nearest.
    near = client.get("/crew/api/requests?sort=distance&near=34.081,-118.261").get_json()
    assert [i["public_id"] for i in near["items"]] == [b[1], a[1]]
    assert near["items"][0]["meters"] < 200 < near["items"][1]["meters"]
    bad = client.get("/crew/api/requests?sort=distance")
    assert bad.status_code == 400 and bad.get_json()["field"] == "near"
    bad = client.get("/crew/api/requests?sort=distance&near=91,0")
    assert bad.status_code == 400


def test_crew_zone_outlines(client, three):
    login(client, "crew")
    body = json.loads(client.get("/crew/zones.geojson").get_data(as_text=True))
    assert [f["properties"]["code"] for f in body["features"]] == ["W"]
    assert body["features"][0]["geometry"]["type"] == "MultiPolygon"


def test_contact_only_on_own_crews_requests(client, sessions, three):
    a, _, e = three
    login(client, "crew")
    own = client.get(f"/crew/requests/{a[1]}").get_data(as_text=True)
    assert "resident@example.org" in own and 'action="/crew/requests/' in own
    # another crew's open work is theirs: refused, saying why
    refused = client.get(f"/crew/requests/{e[1]}")
    assert refused.status_code == 403
    assert "assigned to East crew" in refused.get_data(as_text=True)
    # its closed work (an asset's past requests) reads without contact or actions
    with sessions.begin() as s:
        s.get(ServiceRequest, e[0]).status = "resolved"
    other = client.get(f"/crew/requests/{e[1]}").get_data(as_text=True)
    assert "resident@example.org" not in other and "Rosa Resident" not in other
    assert "hidden (not your crew" in other
    assert "/status" not in other  # no action forms on another crew's work


def test_resolve_with_a_photo_through_the_form(client, sessions, three, media):
    a, _, _ = three
    login(client, "crew")
    token = csrf_from(client, f"/crew/requests/{a[1]}")
    res = client.post(
        f"/crew/requests/{a[1]}/status",
        data={
            "csrf_token": token,
            "status": "resolved",
            "note": "Patched",
            "public": ["0", "1"],
            "photo": (io.BytesIO(jpeg_bytes(lat=34.02, lon=-118.29)), "after.jpg"),
        },
        content_type="multipart/form-data",
    )
    assert res.status_code == 303, res.get_data(as_text=True)
    page = client.get(res.headers["Location"]).get_data(as_text=True)
    assert "is now resolved" in page and "completion photo" in page
    with sessions() as s:
        req = s.get(ServiceRequest, a[0])
        assert req.status == "resolved"
        photo = s.scalar(sa.select(Photo).where(Photo.request_id == a[0]))
        assert photo.stage == "completion"
    thumb = client.get(f"/staff/media/{photo.thumb_key[7:]}")
    assert thumb.status_code == 200 and thumb.mimetype == "image/jpeg"
    # Resolved work leaves the crew's open list.
    assert a[1] not in client.get("/crew").get_data(as_text=True)


def test_private_note_checkbox_off_keeps_the_note_internal(client, sessions, three):
    a, _, _ = three
    login(client, "crew")
    token = csrf_from(client, f"/crew/requests/{a[1]}")
    res = client.post(
        f"/crew/requests/{a[1]}/status",
        data={
            "csrf_token": token,
            "status": "acknowledged",
            "note": "Gate code 1234",
            "public": "0",
        },
    )
    assert res.status_code == 303
    with sessions() as s:
        events = s.scalars(
            sa.select(RequestEvent).where(RequestEvent.request_id == a[0]).order_by(RequestEvent.id)
        ).all()
        status = next(e for e in events if e.kind == "status")
        note = next(e for e in events if e.kind == "note")
        assert status.public and status.note is None
        assert not note.public and note.note == "Gate code 1234"


def test_bad_photo_is_refused_with_the_reason_and_nothing_changes(client, sessions, three):
    a, _, _ = three
    login(client, "crew")
    token = csrf_from(client, f"/crew/requests/{a[1]}")
    res = client.post(
        f"/crew/requests/{a[1]}/status",
        data={
            "csrf_token": token,
            "status": "resolved",
            "photo": (io.BytesIO(b"GIF89a not really"), "x.gif"),
        },
        content_type="multipart/form-data",
    )
    assert res.status_code == 400
    assert "x.gif" in res.get_data(as_text=True)
    with sessions() as s:
        assert s.get(ServiceRequest, a[0]).status == "new"


def test_exports_geojson_and_csv(client, three):
    a, b, e = three
    login(client, "crew")
    res = client.get("/crew/layer.geojson")
    assert res.mimetype == "application/geo+json"
    assert "attachment" in res.headers["Content-Disposition"]
    fc = json.loads(res.get_data(as_text=True))
    ids = [f["properties"]["public_id"] for f in fc["features"]]
    assert ids == [a[1], b[1]]
    first = fc["features"][0]
    assert first["geometry"]["coordinates"] == pytest.approx([-118.29, 34.02])
    assert first["properties"]["zone:districts"] == "W"
    assert "contact_email" not in first["properties"]

    res = client.get("/crew/layer.csv")
    assert res.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(res.get_data(as_text=True))))
    assert [r["public_id"] for r in rows] == [a[1], b[1]]
    assert rows[0]["zone:districts"] == "W"
    assert float(rows[0]["lat"]) == pytest.approx(34.02)
    assert rows[0]["address"].startswith("'=")  # no spreadsheet formula from a resident


def test_admin_picks_a_crew(client, city, three):
    a, _, e = three
    login(client, "admin")
    assert "Choose a crew" in client.get("/crew").get_data(as_text=True)
    page = client.get(f"/crew?crew={city.crew_e_id}").get_data(as_text=True)
    assert e[1] in page and a[1] not in page
    assert client.get("/crew?crew=999").status_code == 404


def test_crew_without_a_crew_is_told_so(client, sessions, city):
    with sessions.begin() as s:
        member = user(s, "crew")
        member.crews.clear()
    login(client, "crew")
    res = client.get("/crew")
    assert res.status_code == 404 and "not in a crew" in res.get_data(as_text=True)


def test_every_crew_form_carries_a_csrf_token(client, three):
    a, _, _ = three
    login(client, "crew")
    for path in ("/crew", f"/crew/requests/{a[1]}"):
        html = client.get(path).get_data(as_text=True)
        assert html.count('method="post"') == html.count('name="csrf_token"') >= 1
