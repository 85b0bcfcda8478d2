"""The planner's maps in a real Chromium: the heat layer and its slider, a choropleth, all
from this server only and without a CSP complaint."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from spatial.accounts import create_user
from spatial.db import make_sessionmaker
from tests.conftest import make_settings
from tests.support import analytics_truth as truth
from tests.support.browser import chromium, serve, watch_problems

pytestmark = pytest.mark.e2e
CITY = "los-angeles"


@pytest.fixture(scope="module")
def live(demo_engine, tmp_path_factory):
    from webmap.app import create_app

    url = demo_engine.url.render_as_string(hide_password=False)
    app = create_app(make_settings(tmp_path_factory.mktemp("planner-e2e"), url), engine=demo_engine)
    with make_sessionmaker(demo_engine).begin() as s:
        create_user(
            s, email="maps@city.example", role="planner", password="correct horse 5", city_slug=CITY
        )
    with serve(app) as base:
        yield base


def test_heatmap_slider_and_choropleth_in_chromium(live):
    days = (
        truth.requests()
        .query("lat == lat")["requested"]
        .dt.tz_convert(truth.TZ)
        .dt.date.astype(str)
        .value_counts()
    )
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        problems = watch_problems(page)
        requested: list[str] = []
        page.on("request", lambda r: requested.append(r.url))

        page.goto(f"{live}/planner/heatmap?city={CITY}")
        assert "/login" in page.url  # planners sign in first
        page.fill("input[name=email]", "maps@city.example")
        page.fill("input[name=password]", "correct horse 5")
        page.click("button[type=submit]")
        page.wait_for_selector("#planner-map[data-requests-loaded]", timeout=20_000)
        node = page.locator("#planner-map")
        assert node.get_attribute("data-requests-loaded") == "9989"
        assert page.locator("canvas.leaflet-heatmap-layer").count() == 1
        page.screenshot(path="/tmp/planner-heatmap.png")

        # The slider steps through the days; each shows that day's requests.
        slider = page.locator("#period")
        assert slider.get_attribute("max") == "3"
        slider.fill("2")
        # (No wait_for_function: the page's CSP rightly forbids evaluating strings.)
        expect(node).to_have_attribute(
            "data-requests-loaded", str(days["2020-01-02"]), timeout=20_000
        )
        assert page.locator("#period-label").inner_text() == "2020-01-02"
        assert "2020-01-02:" in page.locator("#map-status").inner_text()

        page.goto(f"{live}/planner/areas?city={CITY}&layer=neighborhood-councils&metric=sla_pct")
        page.wait_for_selector("#planner-map[data-features-loaded]", timeout=20_000)
        assert node.get_attribute("data-features-loaded") == "99"
        assert page.locator("#areas-table tbody tr").count() == 100
        page.screenshot(path="/tmp/planner-areas.png", full_page=False)

        page.goto(f"{live}/planner/scorecards?city={CITY}")
        img = page.locator("table.scorecards img").first
        img.scroll_into_view_if_needed()
        expect(img).to_have_js_property("complete", True, timeout=20_000)
        assert img.evaluate("(i) => i.naturalWidth") == 720
        page.close()

    assert problems == []
    hosts = {urlsplit(u).netloc for u in requested if u.startswith("http")}
    assert hosts == {urlsplit(live).netloc}
