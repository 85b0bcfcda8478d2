"""The resident pages through the real app and database: report, confirm, track, follow,
the map-free form, and the JSON helpers of the map form."""

from __future__ import annotations

import html as htmllib
import io
import re
from html.parser import HTMLParser

import pytest
import sqlalchemy as sa
from PIL import Image

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
from tests.support.images import jpeg_bytes
from tests.support.resident_city import ADDRESSES, INSIDE, OUTSIDE, add_request, make_resident_city

LAT, LON = INSIDE
MAIN = "100 N MAIN ST, 90012"


@pytest.fixture
def city(sessions):
    with sessions.begin() as s:
        made = make_resident_city(s)
        return {k: v.id for k, v in made.items() if hasattr(v, "id")}


def csrf(client, path="/report") -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def count(sessions, model) -> int:
    with sessions() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(model))


def report_form(client, **overrides) -> dict:
    data = {
        "csrf_token": csrf(client),
        "form": "map",
        "service_code": "pothole",
        "lat": str(LAT),
        "lon": str(LON),
        "address": "",
        "attribute[depth]": "12",
        "description": "Deep hole by the bus stop",
        "contact_email": "ana@example.org",
        "contact_name": "Ana Example",
        "contact_phone": "",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


class Page(HTMLParser):
    """Scripts, stylesheets and the labels of the form controls of a page."""

    def __init__(self):
        super().__init__()
        self.scripts: list[dict] = []
        self.links: list[str] = []
        self.label_for: set[str] = set()
        self.controls: list[dict] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.scripts.append(a)
        elif tag == "link" and a.get("href"):
            self.links.append(a["href"])
        elif tag == "label" and a.get("for"):
            self.label_for.add(a["for"])
        elif tag in {"input", "select", "textarea"}:
            self.controls.append(a)


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    return page


def field_error(html: str, control_id: str) -> str:
    """The error message printed right before the control ``control_id`` (or, for a group
    of choices, inside its fieldset before the first choice)."""
    at = html.index(f'id="{control_id}"')
    pattern = r'class="rp-field-error"[^>]*>(.*?)</p>'
    end = html.find("<input", at)
    inside = re.search(pattern, html[at:end], re.S) if "<fieldset" in html[at - 40 : at] else None
    errors = [inside] if inside else list(re.finditer(pattern, html[:at], re.S))
    assert errors, f"no error message before #{control_id}"
    text = htmllib.unescape(re.sub(r"<[^>]+>", "", errors[-1].group(1)))
    return " ".join(text.split())


# ------------------------------------------------------------------------ the report page


def test_report_page_is_labelled_self_hosted_and_has_no_inline_script(client, city):
    res = client.get("/report")
    assert res.status_code == 200
    html = res.get_data(as_text=True)
    csp = res.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in csp and "default-src 'self'" in csp
    assert res.headers["Referrer-Policy"] == "no-referrer"
    page = parse(html)
    for script in page.scripts:
        # executable scripts come from our static folder; the only inline one is JSON data
        assert script.get("src", "").startswith("/static/") or script.get("type") == (
            "application/json"
        )
    for href in page.links:
        assert href.startswith("/static/")
        assert client.get(href).status_code == 200
    srcs = " ".join(s.get("src", "") for s in page.scripts)
    assert "vendor/exifr/mini.umd.js" in srcs and "report.js" in srcs
    for control in page.controls:
        if control.get("type") in {"hidden", "submit"}:
            continue
        assert control.get("id") in page.label_for, f"unlabelled control {control}"
    # categories grouped, private ones offered (and marked), the notice with its button
    assert '<optgroup label="Streets">' in html and '<optgroup label="Clean streets">' in html
    assert "Abuse report (kept private)" in html
    assert "Small potholes are usually fixed within three days." in html
    assert "Continue anyway" in html
    assert "Report without the map" in html
    assert "olga@example.org" not in html


def test_good_report_is_stored_routed_and_confirmed_with_a_private_link(client, sessions, city):
    res = client.post("/report", data=report_form(client))
    assert res.status_code == 303
    done = client.get(res.headers["Location"])
    assert done.status_code == 200
    html = done.get_data(as_text=True)
    public_id = re.search(r'id="public-id">([^<]+)<', html).group(1)
    assert re.fullmatch(r"TV-\d{4}-000001", public_id)
    link = re.search(r'id="tracking-link" href="([^"]+)"', html).group(1)
    token = link.split("token=")[1]
    with sessions() as s:
        req = s.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == public_id))
        assert req.token == token and len(token) >= 32
        assert req.address == MAIN  # the nearest known address, filled in by the server
        assert req.department.name == "Streets" and req.crew.name == "East crew"
        assert req.attributes == {"depth": 12}
        assert req.channel == "web"
        mail = s.scalars(sa.select(OutboxMessage)).all()
        assert [m.to_addr for m in mail] == ["ana@example.org"]
        assert token in mail[0].body_text
    assert "Streets, East crew" in html
    # the link works only for this browser: another one sees the public page instead
    other = client.application.test_client()
    assert other.get(f"/report/done/{public_id}").status_code == 302


def test_missing_required_answer_keeps_the_form_and_stores_nothing(client, sessions, city):
    res = client.post(
        "/report",
        data=report_form(client, **{"attribute[depth]": "", "attribute[lane]": "left"}),
    )
    assert res.status_code == 422
    html = res.get_data(as_text=True)
    assert field_error(html, "q-pothole-depth") == "Error: Please answer: How deep (cm)?"
    assert 'href="#q-pothole-depth"' in html  # the summary links to the field
    assert "Deep hole by the bus stop" in html  # what was typed is kept
    assert re.search(r'value="left"\s+checked', html)
    assert 'value="ana@example.org"' in html
    assert count(sessions, ServiceRequest) == 0 and count(sessions, OutboxMessage) == 0


def test_bad_answers_are_named_per_field(client, sessions, city):
    res = client.post(
        "/report",
        data=report_form(
            client,
            **{"attribute[depth]": "deep", "attribute[seen]": "yesterday"},
            contact_email="nope",
        ),
    )
    assert res.status_code == 422
    html = res.get_data(as_text=True)
    assert "'deep' is not a number" in field_error(html, "q-pothole-depth")
    assert "not a date and time" in field_error(html, "q-pothole-seen")
    assert "'nope' is not an e-mail address" in field_error(html, "contact_email")
    assert count(sessions, ServiceRequest) == 0


def test_invalid_photo_is_refused_next_to_the_field_and_nothing_is_stored(
    client, sessions, city, settings
):
    data = report_form(client)
    data["photos"] = [
        (io.BytesIO(jpeg_bytes()), "good.jpg"),
        (io.BytesIO(b"this is not a picture"), "holiday.jpg"),
    ]
    res = client.post("/report", data=data, content_type="multipart/form-data")
    assert res.status_code == 422
    html = res.get_data(as_text=True)
    assert "holiday.jpg: not an image we can read" in field_error(html, "photos")
    assert "please add them again" in html
    assert count(sessions, ServiceRequest) == 0 and count(sessions, Photo) == 0
    media = settings.media_dir
    assert not media.exists() or not any(p.is_file() for p in media.rglob("*"))


def test_pin_outside_the_city_is_refused(client, sessions, city):
    res = client.post("/report", data=report_form(client, lat=OUTSIDE[0], lon=OUTSIDE[1]))
    assert res.status_code == 422
    html = res.get_data(as_text=True)
    assert "This spot is outside Testville" in field_error(html, "address-q")
    res = client.post("/report", data=report_form(client, lat="north", lon=LON))
    assert "latitude and longitude" in res.get_data(as_text=True)
    assert count(sessions, ServiceRequest) == 0


def test_photo_gps_places_a_report_without_a_pin_and_served_copies_have_no_exif(
    client, sessions, city
):
    lon, lat = ADDRESSES["250 S SPRING ST, 90012"]
    data = report_form(client, lat="", lon="")
    data["photos"] = [(io.BytesIO(jpeg_bytes(lat=lat, lon=lon)), "spot.jpg")]
    res = client.post("/report", data=data, content_type="multipart/form-data")
    assert res.status_code == 303, res.get_data(as_text=True)
    done = client.get(res.headers["Location"]).get_data(as_text=True)
    assert "Taken from your photo" in done
    with sessions() as s:
        req = s.scalars(sa.select(ServiceRequest)).one()
        x, y = s.execute(
            sa.select(sa.func.ST_X(ServiceRequest.location), sa.func.ST_Y(ServiceRequest.location))
        ).one()
        assert (x, y) == pytest.approx((lon, lat), abs=1e-5)
        assert req.address == "250 S SPRING ST, 90012"
        public_id = req.public_id
    page = client.get(f"/requests/{public_id}").get_data(as_text=True)
    urls = re.findall(r'(?:src|href)="(/media/public/[^"]+)"', page)
    assert len(urls) == 2  # the public copy and its thumbnail
    for url in urls:
        served = client.get(url)
        assert served.status_code == 200
        img = Image.open(io.BytesIO(served.data))
        assert img.format == "JPEG"
        assert len(img.getexif()) == 0 and "exif" not in img.info


def test_rate_limit_per_client_refuses_with_the_form_kept(app, client, sessions, city):
    app.config["REPORT_RATE_LIMIT"] = "0.001/2"
    assert client.post("/report", data=report_form(client)).status_code == 303
    assert client.post("/report", data=report_form(client)).status_code == 303
    res = client.post("/report", data=report_form(client, description="third one"))
    assert res.status_code == 429
    assert int(res.headers["Retry-After"]) > 0
    html = res.get_data(as_text=True)
    assert "several reports in a short time" in html and "third one" in html
    assert count(sessions, ServiceRequest) == 2
    # another address is not affected
    other = app.test_client()
    res = other.post("/report", data=report_form(other), environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert res.status_code == 303


def test_form_without_csrf_token_is_refused(client, sessions, city):
    data = report_form(client)
    del data["csrf_token"]
    assert client.post("/report", data=data).status_code == 400
    assert count(sessions, ServiceRequest) == 0


def test_upload_over_the_request_limit_gets_a_clear_page(app, client, city):
    app.config["MAX_CONTENT_LENGTH"] = 4096
    data = report_form(client)
    data["photos"] = [(io.BytesIO(b"x" * 10_000), "big.jpg")]
    res = client.post("/report", data=data, content_type="multipart/form-data")
    assert res.status_code == 413
    assert "Too much to upload" in res.get_data(as_text=True)


# ---------------------------------------------------------------------------- tracking


def _submit(client, sessions, **overrides) -> tuple[str, str]:
    res = client.post("/report", data=report_form(client, **overrides))
    assert res.status_code == 303, res.get_data(as_text=True)
    with sessions() as s:
        req = s.scalars(sa.select(ServiceRequest).order_by(ServiceRequest.id.desc())).first()
        return req.public_id, req.token


def test_tracking_page_shows_public_parts_and_the_token_shows_private_ones(client, sessions, city):
    public_id, token = _submit(
        client, sessions, contact_phone="+1 555 0123", **{"attribute[lane]": "right"}
    )
    public = htmllib.unescape(client.get(f"/requests/{public_id}").get_data(as_text=True))
    assert "Pothole" in public and public_id in public
    assert 'id="status">New<' in public
    assert "Streets</strong>, East crew" in public
    assert "pin inside zone 'East' (E) of layer 'districts'" in public
    assert re.search(r'id="due">\d{1,2} \w{3} \d{4}, \d\d:\d\d<', public)
    assert "Reported via web" in public and "Sent to the responsible team" in public
    assert MAIN in public and 'id="track-map"' in public
    for secret in ("ana@example.org", "Ana Example", "555 0123", "Only you see this", "Which lane"):
        assert secret not in public
    private = client.get(f"/requests/{public_id}?token={token}").get_data(as_text=True)
    assert "Only you see this" in private
    assert "ana@example.org" in private and "+1 555 0123" in private
    assert "Which lane?</dt><dd>Right" in private and "How deep (cm)?</dt><dd>12" in private
    assert "Ana Example" not in private  # the name is never shown
    wrong = client.get(f"/requests/{public_id}?token=guess").get_data(as_text=True)
    assert "not valid" in wrong and "ana@example.org" not in wrong
    assert client.get("/requests/TV-2099-999999").status_code == 404
    assert client.get("/requests/<script>").status_code == 404


def test_private_category_reports_exist_only_with_their_token(client, sessions, city):
    public_id, token = _submit(client, sessions, service_code="abuse", **{"attribute[depth]": None})
    assert client.get(f"/requests/{public_id}").status_code == 404
    assert client.get(f"/api/requests/{public_id}").status_code == 404
    assert client.get(f"/requests/{public_id}?token={token}").status_code == 200
    assert client.get(f"/requests/{public_id}/follow").status_code == 404


def test_contact_required_category_refuses_anonymous(client, sessions, city):
    res = client.post(
        "/report",
        data=report_form(client, service_code="abuse", anonymous="1", **{"attribute[depth]": None}),
    )
    assert res.status_code == 422
    assert "need an e-mail address or phone number" in field_error(
        res.get_data(as_text=True), "contact_email"
    )


# ---------------------------------------------------------------------------- following


def test_following_from_the_duplicates_list_creates_no_request(client, sessions, city):
    with sessions.begin() as s:
        town = s.get(Jurisdiction, city["city"])
        old = add_request(s, town, s.get(Service, city["pothole"]), LON + 0.0002, LAT)
        old_id = old.public_id
    # the map form rendered again (here after an error) lists it, with a follow button
    res = client.post("/report", data=report_form(client, **{"attribute[depth]": ""}))
    html = res.get_data(as_text=True)
    assert f"See report {old_id}" in html
    assert f'formaction="/requests/{old_id}/follow"' in html
    # the follow button posts the whole form (urlencoded) to the follow address
    data = report_form(client, follow_email="ben@example.org")
    res = client.post(f"/requests/{old_id}/follow", data=data)
    assert res.status_code == 200
    page = res.get_data(as_text=True)
    assert "Check your mail" in page and "We send nothing else until then" in page
    assert count(sessions, ServiceRequest) == 1
    with sessions() as s:
        assert s.scalars(sa.select(Follower.email)).all() == ["ben@example.org"]
        assert s.scalars(sa.select(RequestEvent.kind)).all() == []  # not before confirming
        body = s.scalar(sa.select(OutboxMessage.body_text))
    confirm = re.search(r"http://[^/]+(/c/testville/requests/\S+/follow/confirm/\S+)", body).group(
        1
    )
    page = client.get(confirm).get_data(as_text=True)
    assert "ben@example.org" in page and "Yes, follow this report" in page
    res = client.post(confirm, data={"csrf_token": csrf(client, confirm)})
    page = res.get_data(as_text=True)
    assert res.status_code == 200 and f"You are following report {old_id}" in page
    assert 'id="supporters">1 resident<' in page
    with sessions() as s:
        assert s.scalars(sa.select(RequestEvent.kind)).all() == ["followed"]
    public = client.get(f"/requests/{old_id}").get_data(as_text=True)
    assert "1 other resident following" in public
    assert "Another resident reported this too" in public
    assert "ben@example.org" not in public


def test_follow_without_email_asks_for_it(client, sessions, city):
    with sessions.begin() as s:
        town = s.get(Jurisdiction, city["city"])
        old_id = add_request(s, town, s.get(Service, city["pothole"]), LON, LAT).public_id
    token = csrf(client, f"/requests/{old_id}/follow")
    res = client.post(f"/requests/{old_id}/follow", data={"csrf_token": token, "follow_email": ""})
    assert res.status_code == 422
    assert "Give your e-mail address" in res.get_data(as_text=True)
    assert count(sessions, Follower) == 0


# ------------------------------------------------------------------------- JSON helpers


def test_address_search_and_reverse_json(client, city):
    body = client.get("/api/addresses/search?q=100%20main").get_json()
    assert body["candidates"][0]["address"] == MAIN and body["confident"] is True
    assert set(body["candidates"][0]) == {
        "score",
        "match_type",
        "match_label",
        "lat",
        "lon",
        "address",
        "address_id",
    }
    body = client.get(f"/api/addresses/reverse?lat={LAT}&lon={LON}").get_json()
    assert body["inside"] is True and body["address"] == MAIN
    body = client.get(f"/api/addresses/reverse?lat={OUTSIDE[0]}&lon={OUTSIDE[1]}").get_json()
    assert body["inside"] is False and "outside Testville" in body["message"]
    res = client.get("/api/addresses/reverse?lat=abc&lon=1")
    assert res.status_code == 400 and res.get_json()["field"] == "location"
    assert client.get("/api/addresses/search?q=x&city=atlantis").status_code == 404


def test_duplicates_json_lists_public_fields_only(client, sessions, city):
    with sessions.begin() as s:
        town = s.get(Jurisdiction, city["city"])
        add_request(s, town, s.get(Service, city["pothole"]), LON, LAT, description="hole")
    body = client.get(f"/api/report/duplicates?service=pothole&lat={LAT}&lon={LON}").get_json()
    assert body["radius_m"] == 50 and body["days"] == 30
    (item,) = body["candidates"]
    assert item["distance_m"] == 0 and item["status_label"] == "New"
    assert item["age"] == "1 day ago" and item["description"] == "hole"
    assert "olga" not in str(body).lower() and "token" not in str(body)
    res = client.get(f"/api/report/duplicates?service=nope&lat={LAT}&lon={LON}")
    assert res.status_code == 400


def test_duplicate_radius_is_a_setting(app, client, sessions, city):
    with sessions.begin() as s:
        town = s.get(Jurisdiction, city["city"])
        add_request(s, town, s.get(Service, city["pothole"]), LON + 0.001, LAT)  # ~92 m
    url = f"/api/report/duplicates?service=pothole&lat={LAT}&lon={LON}"
    assert client.get(url).get_json()["candidates"] == []
    app.config["DUPLICATE_RADIUS_M"] = 100
    assert len(client.get(url).get_json()["candidates"]) == 1


def test_request_json_for_map_popups(client, sessions, city):
    public_id, _ = _submit(client, sessions)
    body = client.get(f"/api/requests/{public_id}").get_json()
    assert body["service"] == "Pothole" and body["department"] == "Streets"
    assert body["address"] == MAIN and body["url"] == f"/requests/{public_id}"
    assert "ana" not in str(body).lower()


# --------------------------------------------------------------------- the map-free form


def test_map_free_form_from_address_search_to_confirmation(client, sessions, city):
    start = client.get("/report/plain")
    assert start.status_code == 200
    html = start.get_data(as_text=True)
    assert "<script" not in html  # it works without JavaScript
    # an unsure address search offers the places as plain radio buttons
    res = client.get("/report/plain?q=100+s+main+st&service_code=graffiti&go=1")
    assert res.status_code == 422
    html = res.get_data(as_text=True)
    assert '<input type="radio" id="place-choice-0" name="place_choice" value="0"' in html
    assert MAIN in html
    # choosing one goes to the details (graffiti has no notice)
    res = client.get(
        "/report/plain?q=100+s+main+st&q_searched=100+s+main+st&place_choice=0"
        "&service_code=graffiti&go=1"
    )
    assert res.status_code == 200
    html = res.get_data(as_text=True)
    assert "Step 2 of 2" in html and MAIN in html
    assert "What is painted?" in html
    fields = dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', html))
    assert fields["form"] == "plain" and fields["address"] == MAIN
    fields.update({"attribute[surface]": "wall", "contact_email": ""})
    res = client.post("/report", data=fields)
    assert res.status_code == 303
    with sessions() as s:
        req = s.scalars(sa.select(ServiceRequest)).one()
        assert req.address == MAIN and req.attributes == {"surface": "wall"}
        assert req.anonymous is True


def test_map_free_form_shows_the_notice_first_then_the_questions(client, city):
    res = client.get(f"/report/plain?lat={LAT}&lon={LON}&service_code=pothole&go=1")
    html = res.get_data(as_text=True)
    assert "Before you report: Pothole" in html and "Continue anyway" in html
    assert "How deep" not in html
    res = client.get(f"/report/plain?lat={LAT}&lon={LON}&service_code=pothole&continue=1")
    html = res.get_data(as_text=True)
    assert "How deep (cm)?" in html and MAIN in html


def test_map_free_form_errors_sit_next_to_their_fields(client, sessions, city):
    html = client.get("/report/plain?q=zzzz+qqqq&go=1").get_data(as_text=True)
    assert "Choose what the problem is" in field_error(html, "service_code")
    assert "No place in Testville matches 'zzzz qqqq'" in field_error(html, "q")
    html = client.get(
        f"/report/plain?lat={OUTSIDE[0]}&lon={OUTSIDE[1]}&service_code=graffiti&go=1"
    ).get_data(as_text=True)
    assert "outside Testville" in field_error(html, "lat")
    assert f'value="{OUTSIDE[0]}"' in html  # kept
    # a missing answer on the details step comes back to the same step, values kept
    token = csrf(client)
    res = client.post(
        "/report",
        data={
            "csrf_token": token,
            "form": "plain",
            "service_code": "graffiti",
            "lat": str(LAT),
            "lon": str(LON),
            "address": MAIN,
            "attribute[size]": "two metres",
        },
    )
    assert res.status_code == 422
    html = res.get_data(as_text=True)
    assert "Step 2 of 2" in html
    assert "Please answer: What is painted?" in field_error(html, "q-graffiti-surface")
    assert 'value="two metres"' in html
    assert count(sessions, ServiceRequest) == 0


# ------------------------------------------------------- help articles before the form


def _add_help(sessions, city) -> None:
    with sessions.begin() as s:
        s.add_all(
            [
                FaqArticle(
                    jurisdiction_id=city["city"],
                    slug="graffiti-help",
                    title="Graffiti: what we remove",
                    topic="Clean streets",
                    service_id=city["graffiti"],
                    body="We remove graffiti from public walls within two days.\n\n"
                    "## Private walls\n- Owners clean their own walls\n- <b>not</b> markup",
                ),
                FaqArticle(
                    jurisdiction_id=city["city"],
                    slug="pothole-draft",
                    title="Draft pothole help",
                    service_id=city["pothole"],
                    body="Not ready.",
                    published=False,
                ),
            ]
        )


def _section(html: str, element_id: str) -> str:
    at = html.index(f'id="{element_id}"')
    return html[at : html.index("</section>", at)]


def test_report_page_shows_a_categorys_help_article_before_its_form(client, sessions, city):
    _add_help(sessions, city)
    html = client.get("/report").get_data(as_text=True)
    graffiti = _section(html, "notice-graffiti")
    assert "Before you report: Graffiti" in graffiti
    assert '<h4 id="notice-graffiti-help-h">Graffiti: what we remove</h4>' in graffiti
    assert "<p>We remove graffiti from public walls within two days.</p>" in graffiti
    assert "<h5>Private walls</h5>" in graffiti
    assert "<li>Owners clean their own walls</li>" in graffiti
    assert "<li>&lt;b&gt;not&lt;/b&gt; markup</li>" in graffiti  # text, never HTML
    assert 'href="/help/graffiti-help?city=testville"' in graffiti
    assert "Continue anyway" in graffiti
    assert client.get("/help/graffiti-help?city=testville").status_code == 200
    # The pothole keeps its notice; its unpublished article is not shown anywhere.
    pothole = _section(html, "notice-pothole")
    assert "usually fixed within three days" in pothole and "rp-help" not in pothole
    assert "Draft pothole help" not in html
    # A category with neither notice nor article goes straight to its questions.
    assert 'id="notice-abuse"' not in html
    assert html.count('class="rp-help"') == 1


def test_map_free_form_shows_the_help_article_first_and_nothing_extra_without_one(
    client, sessions, city
):
    _add_help(sessions, city)
    start = f"/report/plain?lat={LAT}&lon={LON}&go=1"
    html = client.get(f"{start}&service_code=graffiti").get_data(as_text=True)
    assert "<script" not in html
    assert "Before you report: Graffiti" in html and "What is painted?" not in html
    assert '<h2 id="notice-graffiti-help-h">Graffiti: what we remove</h2>' in html
    assert "<h3>Private walls</h3>" in html and "&lt;b&gt;not&lt;/b&gt;" in html
    assert 'href="/help/graffiti-help?city=testville"' in html
    assert "Continue anyway" in html
    html = client.get(
        f"/report/plain?lat={LAT}&lon={LON}&service_code=graffiti&continue=1"
    ).get_data(as_text=True)
    assert "What is painted?" in html and "Graffiti: what we remove" not in html
    # Pothole: its notice only (the article is a draft); abuse: straight to the details.
    html = client.get(f"{start}&service_code=pothole").get_data(as_text=True)
    assert "usually fixed within three days" in html
    assert "Draft pothole help" not in html and "rp-help" not in html
    html = client.get(f"{start}&service_code=abuse").get_data(as_text=True)
    assert "Step 2 of 2" in html
    assert "Before you report" not in html and "rp-help" not in html
