"""The layer upload in real Chromium: the validation report's map draws the zones, the
overlap and the gap with self-hosted Leaflet under the strict CSP (no console errors)."""

from __future__ import annotations

import pytest

from tests.support.browser import chromium, serve, watch_problems
from tests.support.dispatch_city import PASSWORD, make_dispatch_city
from tests.test_admin import three_zones


@pytest.fixture
def city(sessions):
    with sessions.begin() as s:
        return make_dispatch_city(s)


def test_upload_report_map_in_chromium(app, city, tmp_path):
    path = tmp_path / "wards.geojson"
    three_zones(path)
    with serve(app) as base, chromium() as browser:
        page = browser.new_page()
        problems = watch_problems(page)
        page.goto(f"{base}/login?next=/admin/layers")
        page.fill('input[name="email"]', "admin@city.example")
        page.fill('input[name="password"]', PASSWORD)
        page.click('button[type="submit"]')
        page.wait_for_url(f"{base}/admin/layers")
        page.set_input_files('input[name="file"]', str(path))
        page.fill('input[name="layer_name"]', "wards")
        page.click("text=Upload and choose the fields")
        # the file's fields, each with a sample; "code" is the obvious code field
        page.wait_for_selector("#field-chooser")
        assert page.locator("#file-fields td").first.inner_text() == "code"
        page.select_option('select[name="code_field"]', "code")
        page.select_option('select[name="name_field"]', "name")
        page.click("#field-chooser button[type=submit]")
        page.wait_for_selector("#admin-map .leaflet-interactive")
        # 3 zones + 1 overlap + 1 gap drawn as SVG paths
        assert page.locator("#admin-map path.leaflet-interactive").count() == 5
        assert page.locator("#overlaps td").first.inner_text() == "A"
        assert problems == []
