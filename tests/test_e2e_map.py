"""The map page in a real Chromium: pins and outlines appear, nothing is fetched from outside.

Debian's Chromium is driven by Playwright's Python API (never ``playwright install``); the
app is served by werkzeug on 127.0.0.1 in a thread of this test process.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect, sync_playwright
from werkzeug.serving import make_server

from spatial.settings import PROJECT_ROOT
from tests.support.map_city import CITY_NAME, HOSTILE_ZONE_NAME, REQUESTS, SLUG, make_map_city

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOT = Path("/tmp/map.png")


@pytest.fixture
def live_server(app, sessions):
    with sessions() as session:
        make_map_city(session)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture
def browser():
    assert Path(CHROMIUM).exists(), "Chromium is missing: apt-get install chromium (make setup)"
    vendor = PROJECT_ROOT / "webmap/static/vendor/leaflet/leaflet.js"
    assert vendor.exists(), "map assets are missing: run 'make setup'"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def test_map_shows_pins_and_outlines_and_talks_only_to_localhost(live_server, browser):
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    requested: list[str] = []
    problems: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    # An alert() would mean the hostile zone name was run as script.
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.on(
        "console",
        lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
    )

    page.goto(f"{live_server}/?city={SLUG}", wait_until="load")
    assert page.locator("h1").inner_text() == CITY_NAME
    # Pins arrive from the bbox API after the first `moveend`-style refresh.
    page.wait_for_selector(".folium-map[data-pins-loaded]", timeout=15_000)
    pins = page.locator(".marker-cluster, .civicpin-pin")
    pins.first.wait_for(state="visible", timeout=10_000)
    assert pins.count() >= 1
    loaded = int(page.locator(".folium-map").get_attribute("data-pins-loaded"))
    assert loaded == 4  # the 4 public requests; the private one never reaches the browser
    assert "4 requests in view" in page.locator("#map-status").inner_text()

    # Boundary plus the two zones of the first layer are drawn as SVG paths.
    paths = page.locator(".leaflet-overlay-pane svg path")
    assert paths.count() >= 3
    # The layer control lists the outline layers and the pins.
    control = page.locator(".leaflet-control-layers").text_content()
    assert "Zones: Wards" in control and "Zones: Crew districts" in control
    assert "Requests" in control

    page.wait_for_timeout(400)  # let the fit-to-city zoom animation settle for the picture
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # Hovering the east ward shows its (hostile) name as plain text in the tooltip.
    x, y = page.evaluate(
        "() => { const el = document.querySelector('.folium-map');"
        " const p = window[el.id].latLngToContainerPoint([34.035, -118.23]);"
        " const r = el.getBoundingClientRect(); return [r.left + p.x, r.top + p.y]; }"
    )
    page.mouse.move(x, y)
    tooltip = page.locator(".leaflet-tooltip")
    tooltip.wait_for(state="visible", timeout=5_000)
    assert tooltip.inner_text().strip() == HOSTILE_ZONE_NAME

    # Zooming in refetches for the new view: only the public requests now in view remain.
    api_calls_before = sum("/api/map/requests" in u for u in requested)
    lon, lat = REQUESTS["SQ-2"][:2]
    page.evaluate(
        "([lat, lon]) => window[document.querySelector('.folium-map').id]"
        ".setView([lat, lon], 16, {animate: false})",
        [lat, lon],
    )
    # (A selector, not wait_for_function: the page's CSP rightly forbids eval.)
    page.wait_for_selector(".folium-map:not([data-pins-loaded='4'])", timeout=10_000)
    west, south, east, north = page.evaluate(
        "(() => { const b = window[document.querySelector('.folium-map').id].getBounds();"
        " return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()]; })()"
    )
    in_view = [
        pid
        for pid, (x, y, _s, private) in REQUESTS.items()
        if not private and west <= x <= east and south <= y <= north
    ]
    assert in_view == ["SQ-2"]
    assert page.locator(".folium-map").get_attribute("data-pins-loaded") == "1"
    assert sum("/api/map/requests" in u for u in requested) > api_calls_before

    # Clicking a single pin opens its popup with public fields only.
    page.locator(".civicpin-pin").first.click()
    popup = page.locator(".leaflet-popup-content").inner_text()
    assert "Pothole" in popup and "SQ-" in popup
    assert "example.org" not in popup

    page.wait_for_timeout(300)  # popup fade-in
    page.screenshot(path=str(SCREENSHOT.with_name("map-popup.png")))

    assert requested, "the page made no requests at all"
    outside = [u for u in requested if urlsplit(u).hostname != "127.0.0.1"]
    assert outside == [], f"requests left localhost: {outside}"
    # CSP violations and script errors show up as console errors.
    assert problems == []
    page.close()


def test_narrow_phone_screen_still_shows_the_map(live_server, browser):
    page = browser.new_page(viewport={"width": 375, "height": 700}, is_mobile=True)
    page.goto(f"{live_server}/", wait_until="load")
    page.wait_for_selector(".folium-map[data-pins-loaded]", timeout=15_000)
    box = page.locator(".folium-map").bounding_box()
    assert box is not None
    assert box["width"] >= 370 and box["height"] >= 350
    page.close()


def test_filters_list_and_keyboard_popup(live_server, browser):
    """Filters refetch the view; the list beside the map opens a popup from the keyboard."""
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on(
        "console",
        lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
    )
    page.goto(f"{live_server}/?city={SLUG}", wait_until="load")
    page.wait_for_selector(".folium-map[data-pins-loaded='4']", timeout=15_000)
    items = page.locator("#request-list li")
    assert items.count() == 4
    assert page.locator("#request-list-count").inner_text() == "4 requests in view"

    meta = page.locator("#request-list .request-list__meta")
    # (Locator assertions, not wait_for_function: the page's CSP rightly forbids eval.)
    page.get_by_label("Status").select_option("closed")
    expect(meta).to_have_text([re.compile(r"^Closed · SQ-4 · "), re.compile(r"^Resolved · SQ-3 ")])
    page.get_by_label("Status").select_option("")
    expect(meta).to_have_count(4)
    page.get_by_label("Reported").select_option("custom")
    page.get_by_label("From").fill("2024-05-02")  # local days in Los Angeles
    page.get_by_label("To").fill("2024-05-03")
    expect(meta).to_have_text([re.compile(r" · SQ-3 · "), re.compile(r" · SQ-2 · ")])
    assert page.locator(".folium-map").get_attribute("data-pins-loaded") == "2"

    # Keyboard only: Tab to the first "Show on map" button, Enter opens the popup there.
    page.get_by_label("Reported").select_option("")
    expect(meta).to_have_count(4)
    first_show = page.locator("#request-list .request-list__show").first
    first_show.focus()
    page.keyboard.press("Enter")
    popup = page.locator(".leaflet-popup-content")
    popup.wait_for(state="visible")
    assert "SQ-4" in popup.inner_text() and "Details and timeline" in popup.inner_text()
    assert page.evaluate("document.activeElement.textContent") == "Details and timeline"
    assert problems == []
    page.close()


def test_crowded_city_view_shows_counts_per_area(app, sessions, browser):
    """Over 2,000 requests in view: numbered circles per area, not thousands of pins."""
    import sqlalchemy as sa

    with sessions() as s:
        city = make_map_city(s)
        service_id = s.scalar(sa.text("SELECT id FROM service WHERE code = 'pothole'"))
        s.execute(
            sa.text(
                """
                INSERT INTO service_request (jurisdiction_id, public_id, token, service_id,
                    status, priority, location, channel, anonymous, notify_updates,
                    needs_location, requested_at, updated_at)
                SELECT :j, 'SQ-B' || g, md5(g::text) || md5('y' || g), :s,
                    CASE WHEN g % 3 = 0 THEN 'closed' ELSE 'new' END, 'normal',
                    ST_SetSRID(ST_MakePoint(-118.295 + (g % 83) * 0.0011,
                                            34.005 + (g % 79) * 0.0011), 4326),
                    'web', true, false, false, now() - g * interval '1 hour', now()
                FROM generate_series(1, 2400) AS g
                """
            ),
            {"j": city.id, "s": service_id},
        )
        s.commit()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        page.goto(f"http://127.0.0.1:{server.server_port}/?city={SLUG}", wait_until="load")
        page.wait_for_selector(".folium-map[data-map-mode='clusters']", timeout=15_000)
        assert page.locator(".folium-map").get_attribute("data-pins-loaded") == "2404"
        cells = page.locator(".civicpin-cell")
        assert 1 <= cells.count() <= 200
        assert page.locator(".civicpin-pin").count() == 0
        texts = cells.all_inner_texts()
        assert sum(int(t.replace(",", "")) for t in texts) == 2404
        assert "counted by area" in page.locator("#map-status").inner_text()
        assert page.locator("#request-list li").count() == 50
        page.screenshot(path=str(SCREENSHOT.with_name("map-cells.png")))
        zoom_before = page.evaluate("window[document.querySelector('.folium-map').id].getZoom()")
        cells.first.click()  # zooms in on that area
        page.wait_for_selector(".folium-map:not([data-pins-loaded='2404'])", timeout=10_000)
        zoom_after = page.evaluate("window[document.querySelector('.folium-map').id].getZoom()")
        assert zoom_after == zoom_before + 2
        page.close()
    finally:
        server.shutdown()
        thread.join(timeout=10)
