"""Staff see the asset a request is about: the dispatch queue and request page, the crew's
request page and layer exports, ``civicpin requests export`` and the public-records zip
(the asset is the city's data, not personal data). Moving a pin from the dispatch page
shows the new address."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from spatial.models import AddressPoint, Crew, ServiceRequest, now_utc
from spatial.models_places import Asset, AssetLayer
from tests.support.dispatch_city import WEST, csrf_from, login, make_dispatch_city, report

POLE = "791-2"
LABEL = "Pole 791-2, Main St"


@pytest.fixture
def lit(sessions, settings):
    """testville with a street-light layer; one report about pole 791-2, one about none,
    both in the west crew's district."""
    with sessions.begin() as s:
        city = make_dispatch_city(s)
        layer = AssetLayer(jurisdiction_id=city.city_id, name="streetlights", title="Street light")
        s.add(layer)
        s.flush()
        lat, lon = WEST
        s.add(
            Asset(
                jurisdiction_id=city.city_id,
                layer_id=layer.id,
                ref=POLE,
                label=LABEL,
                attributes={"Owner": "City"},
                location=f"SRID=4326;POINT({lon} {lat})",
            )
        )
        about = report(s, settings.media_dir, description="The light is out")
        about.asset_layer_id, about.asset_ref = layer.id, POLE
        plain = report(s, settings.media_dir, description="Deep pothole")
        assert about.crew_id == s.get(Crew, city.crew_w_id).id
        return {"city": city, "about": about.public_id, "plain": plain.public_id}


def test_the_dispatch_queue_and_request_page_show_the_asset_linked_to_its_history(client, lit):
    login(client, "dispatcher")
    items = {i["public_id"]: i for i in client.get("/dispatch/api/queue").get_json()["items"]}
    about, plain = items[lit["about"]], items[lit["plain"]]
    assert (about["asset_title"], about["asset_ref"], about["asset_label"]) == (
        "Street light",
        POLE,
        LABEL,
    )
    assert plain["asset_ref"] is None
    console = client.get("/dispatch").get_data(as_text=True)
    assert f'<span class="queue-item__asset">Street light {POLE}</span>' in console
    page = client.get(f"/dispatch/requests/{lit['about']}").get_data(as_text=True)
    assert f'<a href="/staff/assets/streetlights/{POLE}">Street light {POLE}</a>' in page
    assert LABEL in page
    # The link opens the asset's history, which lists this request.
    history = client.get(f"/staff/assets/streetlights/{POLE}")
    assert history.status_code == 200
    assert lit["about"] in history.get_data(as_text=True)
    assert "panel-asset" not in client.get(f"/dispatch/requests/{lit['plain']}").get_data(
        as_text=True
    )


def test_the_crew_sees_the_asset_on_its_page_and_in_its_layer(client, lit):
    login(client, "crew")
    page = client.get(f"/crew/requests/{lit['about']}").get_data(as_text=True)
    assert f'href="/staff/assets/streetlights/{POLE}"' in page and LABEL in page
    fc = json.loads(client.get("/crew/layer.geojson").get_data(as_text=True))
    props = {f["properties"]["public_id"]: f["properties"] for f in fc["features"]}
    assert props[lit["about"]]["asset_ref"] == POLE
    assert props[lit["about"]]["asset_layer"] == "streetlights"
    assert props[lit["about"]]["asset_label"] == LABEL
    assert props[lit["plain"]]["asset_ref"] is None
    rows = {
        r["public_id"]: r
        for r in csv.DictReader(io.StringIO(client.get("/crew/layer.csv").get_data(as_text=True)))
    }
    assert (rows[lit["about"]]["asset_title"], rows[lit["about"]]["asset_ref"]) == (
        "Street light",
        POLE,
    )
    assert rows[lit["plain"]]["asset_ref"] == ""


def test_civicpin_export_carries_the_asset(cli, lit, tmp_path):
    out = tmp_path / "requests.csv"
    res = cli("requests", "export", "--city", "testville", "--format", "csv", "--output", str(out))
    assert res.returncode == 0, res.stderr
    rows = {r["public_id"]: r for r in csv.DictReader(io.StringIO(out.read_text()))}
    about = rows[lit["about"]]
    assert (about["asset_layer"], about["asset_ref"], about["asset_label"]) == (
        "streetlights",
        POLE,
        LABEL,
    )
    assert rows[lit["plain"]]["asset_ref"] == ""


def test_the_public_records_zip_carries_the_asset(cli, lit, tmp_path):
    today = now_utc().astimezone(ZoneInfo("America/Los_Angeles")).date()
    out = tmp_path / "testville.zip"
    res = cli(
        "records", "export", "--city", "testville",
        "--since", (today - timedelta(days=1)).isoformat(),
        "--until", (today + timedelta(days=1)).isoformat(),
        "--out", str(out),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    with zipfile.ZipFile(out) as zf:
        rows = {
            r["public_id"]: r
            for r in csv.DictReader(io.StringIO(zf.read("requests.csv").decode("utf-8")))
        }
        features = json.loads(zf.read("requests.geojson"))["features"]
    assert (rows[lit["about"]]["asset_ref"], rows[lit["about"]]["asset_label"]) == (POLE, LABEL)
    assert rows[lit["plain"]]["asset_ref"] == ""
    geo = {f["properties"]["public_id"]: f["properties"] for f in features}
    assert geo[lit["about"]]["asset_layer"] == "streetlights"


def test_moving_the_pin_on_the_dispatch_page_shows_the_new_address(client, sessions, lit):
    lat, lon = WEST
    with sessions.begin() as s:
        s.add(
            AddressPoint(
                jurisdiction_id=lit["city"].city_id,
                source_id="A-12",
                address="12 ELM ST",
                number=12,
                street="ELM ST",
                street_core="ELM",
                location=f"SRID=4326;POINT({lon} {lat + 0.002})",
            )
        )
    login(client, "dispatcher")
    path = f"/dispatch/requests/{lit['plain']}"

    def move(to_lat: float) -> dict:
        res = client.post(
            f"{path}/move",
            data={"csrf_token": csrf_from(client, path), "lat": str(to_lat), "lon": str(lon)},
            headers={"Accept": "application/json"},
        )
        assert res.status_code == 200, res.get_data(as_text=True)
        return res.get_json()

    body = move(lat + 0.002)
    assert body["address"] == "12 ELM ST"
    assert body["message"] == f"{lit['plain']} moved to 12 ELM ST and routed again"
    page = client.get(path).get_data(as_text=True)
    assert "<dt>Where</dt><dd>12 ELM ST" in page
    # The history holds the move, from the old address to the new one.
    assert "100 Main St (34.05000, -118.28000) → 12 ELM ST (34.05200, -118.28000)" in page
    with sessions() as s:
        req = s.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == lit["plain"]))
        assert (req.address, req.address_id) == ("12 ELM ST", "A-12")

    # 111 m from the only address, and no streets: the address is cleared, not kept.
    body = move(lat + 0.001)
    assert body["address"] is None
    assert body["message"] == (
        f"{lit['plain']} moved to a spot with no address nearby and routed again"
    )
    page = client.get(path).get_data(as_text=True)
    assert "<dt>Where</dt><dd>(no address)" in page
    with sessions() as s:
        req = s.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == lit["plain"]))
        assert (req.address, req.address_id) == (None, None)
