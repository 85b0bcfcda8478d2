"""Staff pages show times on the city's clock with its zone's label, as residents see
them: a request made at a known instant reads the same wall-clock time on the dispatch
list and its JSON, the request page, the crew's list and its JSON, the crew's request
page, the call-taker's search and the admin pages, whatever the machine's zone."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from spatial.city_time import city_time
from spatial.models import Jurisdiction, RequestEvent, ServiceRequest
from tests.support.dispatch_city import login, make_dispatch_city, report

REPORTED = datetime(2026, 12, 7, 13, 15, tzinfo=UTC)
DUE = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)  # summer time, where the zone has one
# zone -> (reported, due) as a person in that city reads them
LOCAL = {
    "America/New_York": ("7 Dec 2026 08:15 EST", "1 Jul 2026 08:00 EDT"),
    "Europe/Madrid": ("7 Dec 2026 14:15 CET", "1 Jul 2026 14:00 CEST"),
    "America/Sao_Paulo": ("7 Dec 2026 10:15 UTC-03", "1 Jul 2026 09:00 UTC-03"),
}


@pytest.fixture
def machine_in_tokyo(monkeypatch):
    """The server's own zone is neither the city's nor UTC."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_city_time_labels_each_zone_and_its_summer_time():
    for zone, (reported, due) in LOCAL.items():
        assert city_time(REPORTED, zone) == reported
        assert city_time(DUE.isoformat(), zone) == due
    assert city_time(None, "Europe/Madrid") == ""
    assert city_time(REPORTED, "Europe/Madrid", with_time=False) == "7 Dec 2026"
    with pytest.raises(ValueError):
        city_time(datetime(2026, 12, 7, 13, 15), "Europe/Madrid")


@pytest.fixture(params=["America/New_York", "Europe/Madrid"])
def city_in(request, sessions, settings, machine_in_tokyo):
    """The test city moved to a zone, with one West pothole made at REPORTED, due at DUE."""
    zone = request.param
    with sessions.begin() as s:
        city = make_dispatch_city(s)
        s.get(Jurisdiction, city.city_id).timezone = zone
        req = report(s, settings.media_dir)
        req.requested_at, req.due_at = REPORTED, DUE
        s.execute(
            sa.update(RequestEvent).where(RequestEvent.request_id == req.id).values(at=REPORTED)
        )
        public_id = req.public_id
        assert req.crew_id == city.crew_w_id
    return zone, public_id


def test_dispatch_list_request_page_and_json_show_the_citys_time(app, city_in):
    zone, public_id = city_in
    reported, due = LOCAL[zone]
    client = app.test_client()
    login(client, "dispatcher")
    console = client.get("/dispatch").get_data(as_text=True)
    item = console.split(f'data-public-id="{public_id}"')[1].split("</li>")[0]
    assert f">{reported}</time>" in item
    data = client.get("/dispatch/api/queue").get_json()
    (it,) = [i for i in data["items"] if i["public_id"] == public_id]
    assert (it["reported"], it["due"]) == (reported, due)
    # the list's "updated" time is the server's, on the city's clock
    label = city_time(datetime.now(UTC), zone).split()[-1]
    assert data["cursor"]["updated"].endswith(label)
    shown = console.split('data-updated="')[1].split('"')[0]
    assert shown.endswith(label)
    page = client.get(f"/dispatch/requests/{public_id}").get_data(as_text=True)
    assert f"<dt>Reported</dt><dd>{reported} via web" in page
    assert f"<dt>Due</dt><dd>{due}</dd>" in page
    history = page.split('aria-label="History"')[1].split("</ol>")[0]
    assert f">{reported}</time>" in history
    panel = client.get(f"/dispatch/requests/{public_id}?partial=1").get_data(as_text=True)
    assert reported in panel and due in panel
    # the machine's own clock (Tokyo) and UTC are nowhere
    for wrong in ("2026-12-07 13:15", "7 Dec 2026 22:15", "7 Dec 2026 13:15"):
        assert wrong not in console and wrong not in page


def test_crew_list_request_page_and_json_show_the_citys_time(app, city_in):
    zone, public_id = city_in
    reported, due = LOCAL[zone]
    client = app.test_client()
    login(client, "crew")
    listing = client.get("/crew").get_data(as_text=True)
    item = listing.split(f'data-public-id="{public_id}"')[1].split("</li>")[0]
    assert f"due {due}" in item
    (it,) = client.get("/crew/api/requests").get_json()["items"]
    assert (it["public_id"], it["reported"], it["due"]) == (public_id, reported, due)
    page = client.get(f"/crew/requests/{public_id}").get_data(as_text=True)
    assert f"<dt>Reported</dt><dd>{reported}</dd>" in page
    assert f"<dt>Due</dt><dd>{due}</dd>" in page
    assert "2026-07-01 12:00" not in listing + page


def test_call_taker_search_and_admin_pages_show_the_citys_time(app, city_in, sessions):
    zone, public_id = city_in
    reported, _ = LOCAL[zone]
    client = app.test_client()
    login(client, "agent")
    found = client.get(f"/agent?q={public_id}").get_data(as_text=True)
    assert reported in found.split(f'data-public-id="{public_id}"')[1]
    with sessions.begin() as s:
        s.execute(sa.text("UPDATE api_key SET created_at = :t"), {"t": REPORTED})
        s.execute(sa.text("UPDATE zone_layer SET imported_at = :t"), {"t": REPORTED})
        s.execute(
            sa.text("UPDATE routing_ruleset SET published_at = :t WHERE status = 'published'"),
            {"t": REPORTED},
        )
        s.execute(sa.update(ServiceRequest).values(requested_at=REPORTED))
    admin = app.test_client()
    login(admin, "admin")
    token = admin.get("/admin/apikeys").get_data(as_text=True)
    token = token.split('name="csrf_token" value="')[1].split('"')[0]
    admin.post("/admin/apikeys", data={"csrf_token": token, "name": "Client"})
    with sessions.begin() as s:
        s.execute(sa.text("UPDATE api_key SET created_at = :t"), {"t": REPORTED})
    for path in ("/admin/apikeys", "/admin/layers", "/admin/rules"):
        assert reported in admin.get(path).get_data(as_text=True), path
    audit = admin.get("/admin/audit").get_data(as_text=True)
    assert "apikey.create" in audit
    with sessions() as s:
        at = s.scalar(sa.text("SELECT at FROM admin_event"))
    assert city_time(at, zone) in audit
