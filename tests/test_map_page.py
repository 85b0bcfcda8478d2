"""The city map page (``/``) and the bbox API behind its pins, against real PostGIS."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from shapely.geometry import shape

from spatial.errors import InvalidInput
from tests.support.map_city import (
    BBOX,
    CITY_NAME,
    CONTACT_EMAIL,
    CONTACT_NAME,
    CONTACT_PHONE,
    HOSTILE_ZONE_NAME,
    REQUESTS,
    SLUG,
    make_map_city,
)
from webmap.mapping import (
    MAX_PINS,
    coordinate_digits,
    drop_specks,
    parse_bbox,
    requests_in_bbox,
)


class _Assets(HTMLParser):
    """Collects every URL the page would load, and the inline scripts' nonces."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.inline_nonces: list[str | None] = []
        self.h1 = ""
        self._in_h1 = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            if a.get("src"):
                self.urls.append(a["src"])
            else:
                self.inline_nonces.append(a.get("nonce"))
        elif tag == "link" and a.get("href"):
            self.urls.append(a["href"])
        elif tag in {"img", "iframe", "source"} and a.get("src"):
            self.urls.append(a["src"])
        elif tag == "h1":
            self._in_h1 = True

    def handle_endtag(self, tag):
        if tag == "h1":
            self._in_h1 = False

    def handle_data(self, data):
        if self._in_h1:
            self.h1 += data


@pytest.fixture
def city(sessions):
    with sessions() as session:
        return make_map_city(session)


def _bbox(values) -> str:
    return ",".join(str(v) for v in values)


def test_map_page_renders_city_with_self_hosted_assets_only(client, city):
    res = client.get("/")
    assert res.status_code == 200
    page = res.get_data(as_text=True)
    parsed = _Assets()
    parsed.feed(page)

    assert parsed.h1.strip() == CITY_NAME
    assert f"<title>{CITY_NAME}" in page
    assert '<html lang="en">' in page
    assert 'name="viewport"' in page
    # 4 public requests (the private one is not counted), 2 of them open; 3 current zones.
    assert re.search(r"4 public requests\s*·\s*2 open\s*·\s*3 zones in 2\s+layers", page)

    assert parsed.urls, "the page loads no assets at all"
    for url in parsed.urls:
        assert url.startswith("/static/"), f"asset not self-hosted: {url}"
        asset = client.get(url)
        assert asset.status_code == 200, f"{url} is missing (run 'make setup')"
        asset.close()
    names = " ".join(parsed.urls)
    for needed in ("leaflet.js", "leaflet.css", "leaflet.markercluster.js", "map.js"):
        assert needed in names
    for dropped in ("jquery", "bootstrap", "awesome"):
        assert dropped not in page.lower()
    assert "http://" not in names and "https://" not in names

    # Zone outlines of current layers only, each its own overlay; no tiles with tile_url=none.
    assert '"Zones: Wards"' in page and '"Zones: Crew districts"' in page
    assert "Retired ward" not in page
    assert "L.tileLayer" not in page
    assert "civicpin.loadRequestPins" in page
    # Pins are fetched by bbox, never embedded: no request id or contact field in the page.
    for public_id in REQUESTS:
        assert public_id not in page
    for secret in (CONTACT_EMAIL, CONTACT_NAME, CONTACT_PHONE, "secret description"):
        assert secret not in page
    # A hostile zone name stays data: it cannot close folium's inline script.
    assert HOSTILE_ZONE_NAME not in page
    assert "<script>alert" not in page


def test_csp_allows_only_self_and_the_nonced_inline_script(client, city):
    res = client.get("/")
    csp = res.headers["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
    parsed = _Assets()
    parsed.feed(res.get_data(as_text=True))
    assert parsed.inline_nonces == [nonce]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "default-src 'self'" in csp and "style-src 'self'" in csp
    assert "http" not in csp  # tile_url is "none": no outside host at all
    # A new nonce for every response.
    again = client.get("/").headers["Content-Security-Policy"]
    assert re.search(r"'nonce-([^']+)'", again).group(1) != nonce


def test_tile_layer_and_its_host_in_csp_when_configured(settings, engine, city):
    from webmap.app import create_app

    tiled = settings.with_overrides(tile_url="https://{s}.tiles.example.org/{z}/{x}/{y}.png")
    app = create_app(tiled, engine=engine)
    res = app.test_client().get("/")
    assert res.status_code == 200
    page = res.get_data(as_text=True)
    assert "L.tileLayer" in page and "tiles.example.org/{z}/{x}/{y}.png" in page
    assert (
        "img-src 'self' data: https://*.tiles.example.org"
        in (res.headers["Content-Security-Policy"])
    )


def test_city_param_and_unknown_city(client, city):
    assert client.get(f"/?city={SLUG}").status_code == 200
    res = client.get("/?city=atlantis")
    assert res.status_code == 404
    assert "no city with slug" in res.get_data(as_text=True)
    assert client.get("/?city=Not A Slug!").status_code == 400


def test_no_city_yet_page_says_how_to_load_the_demo(client):
    res = client.get("/")
    assert res.status_code == 200
    page = res.get_data(as_text=True)
    assert "civicpin demo load" in page
    assert "leaflet" not in page


def test_bbox_api_returns_exactly_the_public_requests_inside(client, city):
    res = client.get(f"/api/map/requests?city={SLUG}&bbox={_bbox(BBOX)}")
    assert res.status_code == 200
    assert res.is_json
    body = res.get_json()
    assert body["type"] == "FeatureCollection"
    assert body["truncated"] is False
    ids = sorted(f["properties"]["public_id"] for f in body["features"])
    assert ids == ["SQ-1", "SQ-2"]  # SQ-P lies inside too, but its service is private
    for f in body["features"]:
        assert set(f["properties"]) == {"public_id", "service", "status", "requested_at"}
        lon, lat, status, _ = REQUESTS[f["properties"]["public_id"]]
        assert f["geometry"] == {"type": "Point", "coordinates": [lon, lat]}
        assert f["properties"]["status"] == status
        assert f["properties"]["service"] == "Pothole"
    text = res.get_data(as_text=True)
    for secret in (
        CONTACT_EMAIL,
        CONTACT_NAME,
        CONTACT_PHONE,
        "token-",
        "secret description",
        "contact",
        "Welfare",
    ):
        assert secret not in text


def test_bbox_api_whole_city_without_city_param(client, city):
    res = client.get("/api/map/requests?bbox=-180,-90,180,90")
    ids = sorted(f["properties"]["public_id"] for f in res.get_json()["features"])
    assert ids == ["SQ-1", "SQ-2", "SQ-3", "SQ-4"]


@pytest.mark.parametrize(
    "bbox",
    [
        None,
        "",
        "1,2,3",
        "1,2,3,4,5",
        "a,b,c,d",
        "-118.2,34.0,-118.3,34.1",  # min > max
        "-118.3,34.1,-118.2,34.1",  # empty
        "-181,0,0,1",
        "0,-91,1,0",
        "nan,0,1,1",
        "0,0,inf,1",
    ],
)
def test_bad_bbox_is_a_400_json_error(client, city, bbox):
    url = f"/api/map/requests?city={SLUG}" + ("" if bbox is None else f"&bbox={bbox}")
    res = client.get(url)
    assert res.status_code == 400
    body = res.get_json()
    assert body["field"] == "bbox"
    assert "bbox" in body["error"]


def test_bad_zoom_and_unknown_city_are_json_errors(client, city):
    res = client.get(f"/api/map/requests?bbox={_bbox(BBOX)}&zoom=99")
    assert res.status_code == 400 and res.get_json()["field"] == "zoom"
    res = client.get(f"/api/map/requests?city=atlantis&bbox={_bbox(BBOX)}")
    assert res.status_code == 404 and "atlantis" in res.get_json()["error"]


def test_bbox_limit_keeps_the_newest_and_says_truncated(sessions, city):
    with sessions() as session:
        whole = (-118.31, 33.99, -118.19, 34.11)
        body = requests_in_bbox(session, city, whole, limit=2)
    assert body["truncated"] is True
    assert [f["properties"]["public_id"] for f in body["features"]] == ["SQ-4", "SQ-3"]
    assert MAX_PINS >= 1000


def test_coordinates_keep_about_one_pixel_of_precision():
    assert coordinate_digits(None) == 6
    assert coordinate_digits(18) == 6
    assert coordinate_digits(11) == 4
    assert coordinate_digits(5) == 2
    assert coordinate_digits(0) == 1


def test_parse_bbox_accepts_valid_input():
    assert parse_bbox("-118.3,34,-118.2,34.1") == (-118.3, 34.0, -118.2, 34.1)
    with pytest.raises(InvalidInput):
        parse_bbox("1,1,1,1")


def test_drop_specks_removes_sliver_holes_and_islands_but_keeps_enclaves():
    outer = [(0, 0), (10, 0), (10, 10), (0, 10), (0, 0)]
    enclave = [(2, 2), (5, 2), (5, 5), (2, 5), (2, 2)]  # area 9: a real hole
    sliver = [(6, 6), (8, 6), (8, 6.01), (6, 6.01), (6, 6)]  # area 0.02
    islet = [[(20, 20), (20.1, 20), (20.1, 20.1), (20, 20.1), (20, 20)]]  # area 0.01
    geometry = {
        "type": "MultiPolygon",
        "coordinates": [[outer, enclave, sliver], islet],
    }
    cleaned = drop_specks(geometry, min_area=0.5)
    assert cleaned["type"] == "MultiPolygon"
    polygons = cleaned["coordinates"]
    assert len(polygons) == 1
    assert len(polygons[0]) == 2  # exterior + the enclave
    assert shape(cleaned).area == pytest.approx(100 - 9)
    # Nothing is lost when everything is small, and points pass through untouched.
    assert drop_specks(geometry, min_area=1000) == geometry
    point = {"type": "Point", "coordinates": [1, 2]}
    assert drop_specks(point, 1.0) == point
