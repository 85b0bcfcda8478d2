"""Reporting in a real Chromium: a photo's GPS places the pin, the report is routed and
tracked, served photos carry no EXIF, duplicates are offered and followed, a pin outside
the city is refused, bad photos and missing answers are shown next to their fields, and
the map-free form works with JavaScript switched off.
"""

from __future__ import annotations

import io
import re
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from PIL import Image
from playwright.sync_api import expect

from spatial.models import (
    Follower,
    Jurisdiction,
    OutboxMessage,
    Photo,
    RequestEvent,
    Service,
    ServiceRequest,
)
from spatial.models_mail import FaqArticle
from tests.support.browser import chromium, serve, watch_problems
from tests.support.images import jpeg_bytes
from tests.support.resident_city import ADDRESSES, OUTSIDE, add_request, make_resident_city

pytestmark = pytest.mark.e2e

SHOTS = "/tmp/civicpin-report-{}.png"
SPRING = "250 S SPRING ST, 90012"
MAIN = "100 N MAIN ST, 90012"


@pytest.fixture
def city(sessions):
    with sessions.begin() as s:
        made = make_resident_city(s)
        return {k: v.id for k, v in made.items() if hasattr(v, "id")}


@pytest.fixture
def site(app, city):
    with serve(app) as base, chromium() as browser:
        yield base, browser


def _count(sessions, model) -> int:
    with sessions() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(model))


def _real(problems: list[str]) -> list[str]:
    """Problems other than Chromium's note that a refused form came back as a 422 page."""
    return [p for p in problems if "status of 422" not in p]


def _local_only(requested: list[str]) -> None:
    outside = [u for u in requested if urlsplit(u).hostname not in ("127.0.0.1", None)]
    assert outside == [], f"requests left localhost: {outside}"


def _open_report(browser, base, **context):
    ctx = browser.new_context(viewport={"width": 412, "height": 860}, is_mobile=True, **context)
    page = ctx.new_page()
    problems = watch_problems(page)
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(f"{base}/report")
    page.wait_for_selector("#report-map[data-ready='1']")
    return ctx, page, problems, requested


def test_photo_gps_suggests_the_spot_then_report_is_routed_and_tracked(site, sessions, tmp_path):
    base, browser = site
    lon, lat = ADDRESSES[SPRING]
    photo = tmp_path / "pothole.jpg"
    photo.write_bytes(jpeg_bytes(lat=lat, lon=lon, size=(800, 600)))
    with sessions.begin() as s:
        pothole = s.scalar(sa.select(Service).where(Service.code == "pothole"))
        s.add(
            FaqArticle(
                jurisdiction_id=pothole.jurisdiction_id,
                slug="potholes",
                title="When are potholes fixed?",
                service_id=pothole.id,
                body="Crews check every report.\n\n- Deep holes first\n- Then the rest",
            )
        )
    ctx, page, problems, requested = _open_report(browser, base)

    page.get_by_label("Category").select_option("pothole")
    notice = page.locator("#notice-pothole")
    notice.wait_for(state="visible")
    assert "usually fixed within three days" in notice.inner_text()
    # The category's help article comes with the notice, linked to the help pages.
    assert notice.get_by_role("heading", name="When are potholes fixed?").is_visible()
    assert notice.get_by_role("listitem").all_inner_texts() == ["Deep holes first", "Then the rest"]
    help_link = notice.get_by_role("link", name="Read the full article in the help pages")
    assert help_link.get_attribute("href") == "/help/potholes?city=testville"
    assert page.locator("#report-rest").is_hidden()
    page.get_by_role("button", name="Continue anyway").click()
    assert page.evaluate("document.activeElement.id") == "q-pothole-depth"
    page.get_by_label("How deep (cm)?").fill("15")
    page.get_by_label("Right").check()
    page.get_by_label("Describe the problem").fill("Wheel-sized hole")

    # No pin yet: the photo's EXIF GPS, read in the browser, places it.
    assert page.input_value("#lat") == ""
    page.set_input_files("#photos", str(photo))
    page.locator("#photo-location").wait_for(state="visible")
    assert "where pothole.jpg was taken" in page.locator("#photo-location").inner_text()
    assert float(page.input_value("#lat")) == pytest.approx(lat, abs=1e-5)
    assert float(page.input_value("#lon")) == pytest.approx(lon, abs=1e-5)
    page.locator("#pin-info", has_text=f"Nearest address: {SPRING}").wait_for()
    assert page.locator(".leaflet-marker-icon").count() == 1
    page.screenshot(path=SHOTS.format("photo-pin"), full_page=True)

    page.get_by_label("E-mail", exact=True).fill("rosa@example.org")
    page.get_by_label("Name", exact=True).fill("Rosa Resident")
    page.get_by_role("button", name="Send report").click()
    page.wait_for_url("**/report/done/**")
    public_id = page.locator("#public-id").inner_text()
    assert re.fullmatch(r"TV-\d{4}-000001", public_id)
    assert "Streets, East crew" in page.locator("#sent-to").inner_text()
    page.screenshot(path=SHOTS.format("done"), full_page=True)

    page.locator("#tracking-link").click()
    page.wait_for_selector("#track-map[data-ready='1']")
    assert page.locator("#routed-to").inner_text() == "Streets, East crew"
    assert (
        "pin inside zone 'East' (E) of layer 'districts'"
        in page.locator("#routing-explanation").inner_text()
    )
    assert re.search(r"\d{4}, \d\d:\d\d", page.locator("#due").inner_text())
    timeline = page.locator("#timeline").inner_text()
    assert "Reported via web" in timeline and "Sent to the responsible team" in timeline
    assert page.locator("#where").inner_text() == SPRING
    assert "rosa@example.org" in page.locator("#private").inner_text()
    assert "Rosa Resident" not in page.content()
    page.screenshot(path=SHOTS.format("track"), full_page=True)

    # The served copies carry no EXIF at all (GPS included); the original stays private.
    image_urls = page.eval_on_selector_all(
        ".rp-photos a, .rp-photos img",
        "els => els.map(e => e.getAttribute('href') || e.getAttribute('src'))",
    )
    assert len(image_urls) == 2
    for url in image_urls:
        served = page.request.get(base + url)
        assert served.status == 200
        img = Image.open(io.BytesIO(served.body()))
        assert len(img.getexif()) == 0 and "exif" not in img.info
    with sessions() as s:
        photo_row = s.scalars(sa.select(Photo)).one()
        assert page.request.get(f"{base}/media/{photo_row.original_key}").status == 404

    # Without the token: the public page, no contact details.
    page.goto(f"{base}/requests/{public_id}")
    assert "rosa@example.org" not in page.content()
    assert page.locator("#private").count() == 0
    _local_only(requested)
    assert problems == []
    ctx.close()


def test_duplicate_is_offered_and_followed_instead(site, sessions, city):
    base, browser = site
    with sessions.begin() as s:
        town = s.get(Jurisdiction, city["city"])
        lon, lat = ADDRESSES[MAIN]
        old = add_request(
            s,
            town,
            s.get(Service, city["graffiti"]),
            lon + 0.0001,
            lat,
            description="Tags on the bus shelter",
        )
        old_id = old.public_id
    ctx, page, problems, requested = _open_report(browser, base)

    # The address search, by keyboard: type, arrow down, Enter.
    search = page.get_by_role("combobox", name="Search an address, a corner or a street")
    search.click()
    search.type("100 main", delay=20)
    page.locator("#address-list [role=option]").first.wait_for()
    search.press("ArrowDown")
    assert search.get_attribute("aria-activedescendant") == "addr-opt-0"
    search.press("Enter")
    page.locator("#pin-info", has_text=f"Pin placed at {MAIN} (exact address)").wait_for()
    assert page.input_value("#address") == MAIN

    # The category search narrows the list to one and picks it.
    page.get_by_label("Search the categories").fill("spray")
    assert page.input_value("#service_code") == "graffiti"
    page.locator("#duplicates").wait_for(state="visible")
    item = page.locator("#duplicates-list li").first
    text = item.inner_text()
    assert "Graffiti" in text and "New" in text and "9 m away" in text
    assert "reported 1 day ago" in text and "Tags on the bus shelter" in text
    page.screenshot(path=SHOTS.format("duplicate"), full_page=True)

    page.get_by_label("Your e-mail, to follow a report").fill("ben@example.org")
    page.get_by_role("button", name=f"Follow report {old_id} instead").click()
    page.wait_for_url(f"**/requests/{old_id}/follow")
    assert page.locator("h1").inner_text() == "Check your mail"
    with sessions() as s:
        assert s.scalars(sa.select(Follower.email)).all() == ["ben@example.org"]
        assert s.scalar(sa.select(sa.func.count()).select_from(ServiceRequest)) == 1
        assert s.scalars(sa.select(RequestEvent.kind)).all() == []
        body = s.scalar(
            sa.select(OutboxMessage.body_text).where(OutboxMessage.kind == "follow_confirmation")
        )
    # the link in the confirmation e-mail, then its button
    link = re.search(r"http://\S+/follow/confirm/\S+", body).group(0)
    page.goto(base + urlsplit(link).path)
    page.get_by_role("button", name="Yes, follow this report").click()
    page.locator("h1", has_text=f"You are following report {old_id}").wait_for()
    assert page.locator("#supporters").inner_text() == "1 resident"
    with sessions() as s:
        assert s.scalars(sa.select(RequestEvent.kind)).all() == ["followed"]
    _local_only(requested)
    assert problems == []
    ctx.close()


def test_pin_outside_the_city_is_refused(site, sessions):
    base, browser = site
    ctx, page, problems, requested = _open_report(
        browser,
        base,
        geolocation={"latitude": OUTSIDE[0], "longitude": OUTSIDE[1], "accuracy": 30},
        permissions=["geolocation"],
    )
    # "Use my location" puts the pin where the device is: outside, and says so at once.
    page.get_by_role("button", name="Use my location").click()
    page.locator("#locate-status", has_text="accurate to about 30 m").wait_for()
    info = page.locator("#pin-info")
    info.filter(has_text="outside Testville").wait_for()
    assert "rp-pin-info--error" in info.get_attribute("class")
    # Tapping the map beside the city square: outside as well.
    box = page.locator("#report-map").bounding_box()
    page.mouse.click(box["x"] + 8, box["y"] + box["height"] / 2)
    # (Locator assertions, not wait_for_function: the page's CSP rightly forbids eval.)
    expect(page.locator("#lat")).not_to_have_value(f"{OUTSIDE[0]:.6f}")
    info.filter(has_text="outside Testville").wait_for()

    page.get_by_label("Category").select_option("graffiti")
    page.get_by_label("A wall").check()
    page.get_by_role("button", name="Send report").click()
    page.wait_for_load_state()
    error = page.locator("#err-location")
    assert "This spot is outside Testville" in error.inner_text()
    assert page.locator("#error-summary").is_visible()
    assert page.evaluate("document.activeElement.id") == "error-summary"
    assert _count(sessions, ServiceRequest) == 0
    page.screenshot(path=SHOTS.format("outside"), full_page=True)
    _local_only(requested)
    assert _real(problems) == []
    ctx.close()


def test_invalid_photo_and_missing_answer_are_shown_as_errors(site, sessions, tmp_path):
    base, browser = site
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    ctx, page, problems, requested = _open_report(browser, base)
    lon, lat = ADDRESSES[MAIN]
    page.locator("summary", has_text="Enter coordinates instead").click()
    page.get_by_label("Latitude").fill(str(lat))
    page.get_by_label("Longitude").fill(str(lon))
    page.get_by_label("Longitude").press("Tab")
    page.locator("#pin-info", has_text=f"Nearest address: {MAIN}").wait_for()
    page.get_by_label("Category").select_option("pothole")
    page.get_by_role("button", name="Continue anyway").click()
    page.get_by_label("Describe the problem").fill("Kept after the error")
    page.set_input_files("#photos", str(broken))
    page.get_by_role("button", name="Send report").click()
    page.wait_for_load_state()

    summary = page.locator("#error-summary")
    assert "Please check these 2 answers" in summary.inner_text()
    assert "Please answer: How deep (cm)?" in page.locator("#err-attribute-depth").inner_text()
    assert (
        "broken.jpg: the image is damaged or incomplete" in page.locator("#err-photos").inner_text()
    )
    assert page.get_by_label("How deep (cm)?").get_attribute("aria-invalid") == "true"
    assert page.input_value("#description") == "Kept after the error"
    assert page.locator("#report-rest").is_visible()  # the questions stay open
    assert float(page.input_value("#lat")) == pytest.approx(lat)
    page.screenshot(path=SHOTS.format("errors"), full_page=True)
    # The summary links take the keyboard to the field.
    summary.get_by_role("link", name="Please answer: How deep (cm)?").click()
    assert page.evaluate("document.activeElement.id") == "q-pothole-depth"
    assert _count(sessions, ServiceRequest) == 0 and _count(sessions, Photo) == 0
    _local_only(requested)
    assert _real(problems) == []
    ctx.close()


def test_map_free_path_without_javascript(site, sessions):
    base, browser = site
    ctx = browser.new_context(java_script_enabled=False, viewport={"width": 412, "height": 860})
    page = ctx.new_page()
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(f"{base}/report")
    page.get_by_role("link", name="Report without the map").first.click()
    page.wait_for_url("**/report/plain**")

    # No 250 N SPRING ST in the city: the near match is offered, never taken unasked.
    page.get_by_label("Address or place").fill("250 N Spring St")
    page.get_by_label("Category").select_option("pothole")
    page.get_by_role("button", name="Continue").click()
    choices = page.get_by_role("group", name="Which place do you mean?")
    assert choices.get_by_role("radio").count() == 1
    choices.get_by_label(f"{SPRING} (exact address)").check()
    page.get_by_role("button", name="Continue").click()
    assert "Before you report: Pothole" in page.locator("h1").inner_text()
    page.get_by_role("button", name="Continue anyway").click()
    assert SPRING in page.locator("#summary").inner_text()

    page.get_by_label("How deep (cm)?").fill("8")
    page.get_by_label("Water").check()
    page.get_by_role("button", name="Send report").click()
    page.wait_for_url("**/report/done/**")
    public_id = page.locator("#public-id").inner_text()
    with sessions() as s:
        req = s.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == public_id))
        assert req.address == SPRING and req.attributes == {"depth": 8, "hazards": ["water"]}
        assert req.crew.name == "East crew"
    _local_only(requested)
    ctx.close()
