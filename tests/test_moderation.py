"""Moderation, played by a stranger: text and photos staff hid, and reports the city holds
for review, are gone from every public view (status page, map data and popups, the
duplicates offered to residents, Open311 in JSON and XML, the photo files), while staff
still see them and the audit trail says who did what and why."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from records import moderation
from spatial import map_cells
from spatial.media import PhotoUpload
from spatial.models import Jurisdiction, Photo, RequestEvent, ServiceRequest
from tests.support.city import BOUNDS
from tests.support.dispatch_city import WEST, csrf_from, login, make_dispatch_city, report
from tests.support.images import jpeg_bytes
from webmap.mapping import city_overview, map_data

V2 = "/open311/v2"
SECRET_TEXT = "Pothole outside the flat of Mortimer Quigglesby, who is never home on Tuesdays"
BBOX = ",".join(str(v) for v in BOUNDS)


@pytest.fixture
def city(sessions):
    with sessions.begin() as s:
        return make_dispatch_city(s)


def _report(sessions, settings, *, photos: int = 0, **kw) -> tuple[int, str, str]:
    """A pothole report through the real intake; (id, public id, private token)."""
    uploads = [
        PhotoUpload(f"hole{i}.jpg", jpeg_bytes(color=(40 * i, 90, 200 - 40 * i)))
        for i in range(photos)
    ]
    with sessions.begin() as s:
        req = report(s, settings.media_dir, photos=uploads, **kw)
        return req.id, req.public_id, req.token


def _photo_keys(sessions, request_id: int) -> list[tuple[int, str, str]]:
    with sessions() as s:
        return [
            (p.id, p.public_key, p.thumb_key)
            for p in s.scalars(
                sa.select(Photo).where(Photo.request_id == request_id).order_by(Photo.id)
            )
        ]


def _media(key: str) -> str:
    return "/media/" + key


def _act(staff, public_id: str, action: str, **data):
    """A dispatcher's form post from the request page (real session and CSRF token)."""
    token = csrf_from(staff, f"/dispatch/requests/{public_id}")
    return staff.post(
        f"/dispatch/requests/{public_id}/{action}", data={"csrf_token": token, **data}
    )


def _public_texts(stranger, public_id: str) -> dict[str, str]:
    """Everything a stranger can read about the request, by where they read it."""
    lat, lon = WEST
    return {
        "status page": stranger.get(f"/requests/{public_id}").get_data(as_text=True),
        "popup": stranger.get(f"/api/requests/{public_id}").get_data(as_text=True),
        "map": stranger.get("/api/map/requests", query_string={"bbox": BBOX}).get_data(
            as_text=True
        ),
        "duplicates": stranger.get(
            "/api/report/duplicates",
            query_string={"service": "pothole", "lat": lat, "lon": lon},
        ).get_data(as_text=True),
        "open311 list json": stranger.get(
            f"{V2}/requests.json", query_string={"extensions": "true"}
        ).get_data(as_text=True),
        "open311 list xml": stranger.get(
            f"{V2}/requests.xml", query_string={"extensions": "true"}
        ).get_data(as_text=True),
        "open311 one json": stranger.get(f"{V2}/requests/{public_id}.json").get_data(as_text=True),
        "open311 one xml": stranger.get(f"{V2}/requests/{public_id}.xml").get_data(as_text=True),
        "open311 updates": stranger.get(f"{V2}/servicerequestupdates.json").get_data(as_text=True),
    }


# ----------------------------------------------------------------- hidden text, photos


def test_hidden_text_and_photo_reach_no_stranger_and_staff_keep_both(
    app, client, sessions, settings, city
):
    rid, public_id, _token = _report(sessions, settings, photos=2, description=SECRET_TEXT)
    (keep_id, keep_key, keep_thumb), (hide_id, hide_key, hide_thumb) = _photo_keys(sessions, rid)
    stranger = app.test_client()
    # Before: the stranger reads the text and loads both photos (so the test can fail).
    before = _public_texts(stranger, public_id)
    assert "Mortimer Quigglesby" in before["status page"]
    assert "Mortimer Quigglesby" in before["open311 one json"]
    assert stranger.get(_media(hide_key)).status_code == 200

    login(client, "dispatcher")
    res = _act(client, public_id, "moderate_text", mode="hide", reason="Names a neighbour")
    assert res.status_code == 303
    res = _act(client, public_id, "hide_photo", photo_id=str(hide_id), reason="A face")
    assert res.status_code == 303
    page = client.get(res.headers["Location"]).get_data(as_text=True)
    assert "Photo hidden from the public" in page

    after = _public_texts(stranger, public_id)
    for where, text in after.items():
        assert "Quigglesby" not in text, where
        assert hide_key not in text and hide_thumb not in text, where
    assert "Text removed by the city" in after["status page"]
    assert "Text removed by the city" in after["duplicates"]
    one = stranger.get(f"{V2}/requests/{public_id}.json").get_json()[0]
    assert one["description"] == "Text removed by the city"
    assert "<description>Text removed by the city</description>" in after["open311 one xml"]
    # The photo still shown stays; the hidden one's files answer 404 to everyone public.
    assert keep_key in after["status page"]
    assert stranger.get(_media(keep_key)).status_code == 200
    assert stranger.get(_media(hide_key)).status_code == 404
    assert stranger.get(_media(hide_thumb)).status_code == 404

    # Staff keep the reporter's words and the photo, and the history says who and why.
    staff_page = client.get(f"/dispatch/requests/{public_id}").get_data(as_text=True)
    assert SECRET_TEXT in staff_page
    assert "The public sees: <em>Text removed by the city</em>" in staff_page
    assert "hidden from the public" in staff_page
    assert client.get("/staff/media/" + hide_key.removeprefix("public/")).status_code == 200
    with sessions() as s:
        events = s.scalars(
            sa.select(RequestEvent)
            .where(RequestEvent.request_id == rid, RequestEvent.kind.in_(moderation.EVENT_LABELS))
            .order_by(RequestEvent.id)
        ).all()
        assert [(e.kind, e.note, e.public, e.actor_id) for e in events] == [
            ("description_hidden", "Names a neighbour", False, city.users["dispatcher"]),
            ("photo_hidden", "A face", False, city.users["dispatcher"]),
        ]
        assert events[0].from_value == SECRET_TEXT
        assert s.get(ServiceRequest, rid).description == SECRET_TEXT


def test_redacted_text_replaces_the_original_everywhere_and_can_be_restored(
    app, client, sessions, settings, city
):
    _rid, public_id, _ = _report(sessions, settings, description=SECRET_TEXT)
    stranger = app.test_client()
    login(client, "dispatcher")
    res = _act(
        client,
        public_id,
        "moderate_text",
        mode="redact",
        text="Pothole outside a block of flats",
        reason="Names a resident",
    )
    assert res.status_code == 303
    texts = _public_texts(stranger, public_id)
    for where, text in texts.items():
        assert "Quigglesby" not in text, where
    assert "Pothole outside a block of flats" in texts["status page"]
    assert "Pothole outside a block of flats" in texts["open311 one xml"]
    assert "Pothole outside a block of flats" in texts["duplicates"]

    res = _act(client, public_id, "moderate_text", mode="restore", reason="Name checked: a shop")
    assert res.status_code == 303
    assert "Mortimer Quigglesby" in stranger.get(f"/requests/{public_id}").get_data(as_text=True)


def test_moderation_refuses_bad_input_and_other_roles_and_writes_nothing(
    app, client, sessions, settings, city
):
    rid, public_id, _ = _report(sessions, settings, photos=1, description=SECRET_TEXT)
    ((photo_id, key, _thumb),) = _photo_keys(sessions, rid)
    login(client, "dispatcher")
    cases = [
        ("moderate_text", {"mode": "hide", "reason": "  "}, "Give the reason"),
        ("moderate_text", {"mode": "redact", "reason": "x", "text": ""}, "Write the text"),
        ("moderate_text", {"mode": "redact", "reason": "x", "text": "<b>hi</b>"}, "without HTML"),
        ("moderate_text", {"mode": "shred", "reason": "x"}, "hide, redact or restore"),
        ("moderate_text", {"mode": "restore", "reason": "x"}, "reporter&#39;s text already"),
        ("hide_photo", {"photo_id": "999999", "reason": "x"}, "has no such photo"),
        ("hide_photo", {"photo_id": "99999999999999999999", "reason": "x"}, "has no such photo"),
        ("hide_photo", {"photo_id": "abc", "reason": "x"}, "Choose the photo"),
        ("publish", {}, "is not held"),
    ]
    for action, data, message in cases:
        res = _act(client, public_id, action, **data)
        assert res.status_code == 400, (action, data, res.status_code)
        assert message in res.get_data(as_text=True), (action, data)
    # JSON callers get the error in JSON.
    token = csrf_from(client, f"/dispatch/requests/{public_id}")
    res = client.post(
        f"/dispatch/requests/{public_id}/hide_photo",
        json={"photo_id": photo_id},
        headers={"X-CSRFToken": token},
    )
    assert res.status_code == 400 and "reason" in res.get_json()["error"].lower()
    res = client.post(
        f"/dispatch/requests/{public_id}/moderate_text",
        json={"mode": "redact", "text": ["a", "b"], "reason": {"x": 1}},
        headers={"X-CSRFToken": token},
    )
    assert res.status_code == 400 and res.get_json()["field"] == "reason"
    # No CSRF token: refused.
    res = client.post(
        f"/dispatch/requests/{public_id}/moderate_text", data={"mode": "hide", "reason": "x"}
    )
    assert res.status_code in (400, 403)
    # A crew member and a call-taker may not moderate.
    for role in ("crew", "agent"):
        other = app.test_client()
        login(other, role)
        res = other.post(
            f"/dispatch/requests/{public_id}/moderate_text",
            data={"mode": "hide", "reason": "x", "csrf_token": csrf_from(other, "/staff")},
        )
        assert res.status_code in (403, 404), role
    with sessions() as s:
        req = s.get(ServiceRequest, rid)
        assert req.description_moderation is None and req.public_description is None
        assert s.get(Photo, photo_id).hidden_at is None
        assert not s.scalar(
            sa.select(sa.func.count()).where(
                RequestEvent.request_id == rid, RequestEvent.kind.in_(moderation.EVENT_LABELS)
            )
        )
    assert app.test_client().get(_media(key)).status_code == 200


# ------------------------------------------------------------------------------ holding


def _set_hold(sessions, city_id: int, mode: str) -> None:
    with sessions.begin() as s:
        moderation.set_hold_mode(s, s.get(Jurisdiction, city_id), mode)


def test_a_held_report_is_on_no_public_surface_until_a_dispatcher_confirms_it(
    app, client, sessions, settings, city
):
    _set_hold(sessions, city.city_id, "email")
    shown_id, shown_pid, _ = _report(sessions, settings, description="A web report")
    held_id, held_pid, token = _report(
        sessions, settings, photos=1, channel="email", description="Held until reviewed"
    )
    ((_pid, held_key, held_thumb),) = _photo_keys(sessions, held_id)
    stranger = app.test_client()

    texts = _public_texts(stranger, held_pid)
    for where, text in texts.items():
        # (A page asked for the held request by its id names that id in its "not found".)
        if where in (
            "map",
            "duplicates",
            "open311 list json",
            "open311 list xml",
            "open311 updates",
        ):
            assert held_pid not in text, where
        assert "Held until reviewed" not in text, where
        assert held_key not in text and held_thumb not in text, where
    assert shown_pid in texts["map"] and shown_pid in texts["open311 list json"]
    assert shown_pid in texts["duplicates"]
    assert stranger.get(f"/requests/{held_pid}").status_code == 404
    assert stranger.get(f"/api/requests/{held_pid}").status_code == 404
    assert stranger.get(f"/requests/{held_pid}/follow").status_code == 404
    assert stranger.get(f"{V2}/requests/{held_pid}.json").status_code == 404
    assert stranger.get(f"{V2}/tokens/{token}.json").status_code == 404
    assert stranger.get(_media(held_key)).status_code == 404
    # The reporter, with their private link, sees it and is told why others do not.
    own = stranger.get(f"/requests/{held_pid}", query_string={"token": token})
    assert own.status_code == 200
    assert "The city reviews this report before it is published" in own.get_data(as_text=True)
    # Low zoom: the stored cell counts leave it out, and they still agree with a recount.
    with sessions() as s:
        c = s.get(Jurisdiction, city.city_id)
        clusters = map_data(s, c, BOUNDS, zoom=12, cluster_above=0)
        assert clusters["mode"] == "clusters" and clusters["total"] == 1
        assert city_overview(s, c).total_requests == 1
        assert map_cells.drift(s) == []

    # Staff see it, flagged; the dispatcher confirms it and it appears everywhere.
    login(client, "dispatcher")
    staff_page = client.get(f"/dispatch/requests/{held_pid}").get_data(as_text=True)
    assert "held: not public yet" in staff_page and "Held until reviewed" in staff_page
    queued = client.get("/dispatch/api/queue", query_string={"held": "1"}).get_json()["items"]
    assert [(i["public_id"], i["held"]) for i in queued] == [(held_pid, True)]
    listed = client.get("/dispatch", query_string={"held": "1"}).get_data(as_text=True)
    assert held_pid in listed and shown_pid not in listed
    res = _act(client, held_pid, "publish")
    assert res.status_code == 303
    texts = _public_texts(stranger, held_pid)
    for where in (
        "status page",
        "popup",
        "map",
        "duplicates",
        "open311 one json",
        "open311 updates",
    ):
        assert held_pid in texts[where] or "Held until reviewed" in texts[where], where
    assert held_key in texts["status page"]
    assert client.get("/dispatch/api/queue", query_string={"held": "1"}).get_json()["items"] == []
    assert stranger.get(_media(held_key)).status_code == 200
    with sessions() as s:
        c = s.get(Jurisdiction, city.city_id)
        assert map_data(s, c, BOUNDS, zoom=12, cluster_above=0)["total"] == 2
        assert map_cells.drift(s) == []
        event = s.scalar(
            sa.select(RequestEvent).where(
                RequestEvent.request_id == held_id, RequestEvent.kind == "published"
            )
        )
        assert event.actor_id == city.users["dispatcher"] and not event.public
    assert shown_id != held_id


def test_hold_modes_choose_the_channels(sessions, settings, city):
    def held(channel: str) -> bool:
        _rid, pid, _ = _report(sessions, settings, channel=channel)
        with sessions() as s:
            req = s.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == pid))
            return req.held_at is not None

    assert not held("email") and not held("web")
    _set_hold(sessions, city.city_id, "email")
    assert held("email") and not held("web") and not held("api")
    _set_hold(sessions, city.city_id, "all")
    assert held("email") and held("web") and held("phone") and not held("import")
    _set_hold(sessions, city.city_id, "none")
    assert not held("email")


def test_city_moderation_command(cli, sessions, city):
    res = cli("city", "moderation", city.slug)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"{city.slug}: hold none (0 held now)"
    res = cli("city", "moderation", city.slug, "--hold", "email")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"{city.slug}: hold email (0 held now)"
    with sessions() as s:
        assert s.get(Jurisdiction, city.city_id).moderation_hold == "email"
    for args, message in [
        (("city", "moderation", city.slug, "--hold", "some"), "'some' is not one of"),
        (("city", "moderation", "atlantis", "--hold", "all"), "no city with slug 'atlantis'"),
    ]:
        res = cli(*args)
        assert res.returncode != 0
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("civicpin: error: "), res.stderr
        assert message in lines[0]
    with sessions() as s:
        assert s.get(Jurisdiction, city.city_id).moderation_hold == "email"


def test_hold_setting_is_checked_by_the_database(sessions, city):
    with sessions() as s, pytest.raises(sa.exc.IntegrityError):
        s.execute(
            sa.update(Jurisdiction)
            .where(Jurisdiction.id == city.city_id)
            .values(moderation_hold="some")
        )
        s.flush()


def test_a_report_mailed_to_a_city_that_holds_mail_waits_and_its_sender_sees_it(
    app, sessions, settings
):
    """Real SMTP: the intake server takes the mail, the worker delivers the auto-reply to a
    sink; the link in it is the only way to the report until staff confirm it."""
    from intake.email_intake import MailIntake, start_smtp_server
    from notify.worker import run_once
    from tests.support.mail import RESIDENT, Sink, free_port, make_mail_city, mime, smtp_send

    with sessions.begin() as s:
        info = make_mail_city(s)
        moderation.set_hold_mode(s, info["city"], "email")
    intake = MailIntake(
        sessions,
        public_base_url=settings.public_base_url,
        media_dir=settings.media_dir,
        mail_from=settings.mail_from,
    )
    port = free_port()
    controller = start_smtp_server(intake, "127.0.0.1", port)
    sink = Sink().start()
    try:
        code, text = smtp_send(
            port, mime("Broken bench", "The bench by 100 North Main Street is broken.")
        )
        assert code == 250, text
        run_once(sessions, settings.with_overrides(smtp_url=sink.url))
        (ack,) = sink.to(RESIDENT)
    finally:
        sink.stop()
        controller.stop()
    with sessions() as s:
        req = s.scalar(sa.select(ServiceRequest))
        assert req.channel == "email" and req.held_at is not None
        public_id, token = req.public_id, req.token
    assert f"/requests/{public_id}?token={token}" in ack.text
    stranger = app.test_client()
    assert stranger.get(f"/requests/{public_id}").status_code == 404
    assert public_id not in stranger.get(f"{V2}/requests.json").get_data(as_text=True)
    own = stranger.get(f"/requests/{public_id}", query_string={"token": token})
    assert own.status_code == 200 and "The bench" in own.get_data(as_text=True)


@pytest.mark.e2e
def test_the_dispatcher_moderates_from_the_console_in_chromium(app, sessions, settings):
    """The console's own script posts the forms: the held report is confirmed, a photo
    hidden and the text redacted, and a resident's browser then shows the result."""
    from tests.support.browser import chromium, serve, watch_problems
    from tests.support.dispatch_city import PASSWORD

    with sessions.begin() as s:
        make_dispatch_city(s)
        moderation.set_hold_mode(s, s.scalar(sa.select(Jurisdiction)), "all")
        req = report(
            s,
            settings.media_dir,
            description=SECRET_TEXT,
            photos=[PhotoUpload("hole.jpg", jpeg_bytes())],
        )
        pid = req.public_id
    with sessions() as s:
        photo_key = s.scalar(sa.select(Photo.public_key))

    with serve(app) as base, chromium() as browser:
        desk = browser.new_page(viewport={"width": 1400, "height": 900})
        problems = watch_problems(desk)
        desk.goto(f"{base}/login?next=/dispatch")
        desk.fill('input[name="email"]', "dispatcher@city.example")
        desk.fill('input[name="password"]', PASSWORD)
        desk.click('button[type="submit"]')
        desk.wait_for_url("**/dispatch")
        item = desk.locator(f'.queue-item[data-public-id="{pid}"]')
        assert "held: not public yet" in item.inner_text()
        item.click()
        desk.wait_for_selector(f'#panel .request-panel[data-public-id="{pid}"]')

        def submit(action: str, expect: str) -> None:
            desk.click(f'#panel form[data-action="{action}"] button[type="submit"]')
            desk.locator("#panel .panel-message.form-ok").filter(has_text=expect).wait_for(
                timeout=10_000
            )

        submit("publish", "the public sees it now")
        assert desk.locator("#panel-held").count() == 0
        desk.fill('#panel form[data-action="hide_photo"] input[name="reason"]', "A face")
        submit("hide_photo", "Photo hidden from the public")
        form = '#panel form[data-action="moderate_text"]'
        desk.select_option(f"{form} select[name='mode']", "redact")
        desk.fill(f"{form} textarea[name='text']", "Pothole outside a block of flats")
        desk.fill(f"{form} input[name='reason']", "Names a resident")
        submit("moderate_text", "Description redacted for the public")
        assert "Pothole outside a block of flats" in desk.inner_text("#panel-moderated")
        assert problems == [], problems

        resident = browser.new_page()
        resident.goto(f"{base}/requests/{pid}")
        assert "Pothole outside a block of flats" in resident.inner_text("#description")
        html = resident.content()
        assert "Quigglesby" not in html and photo_key not in html


def test_an_open311_post_after_the_setting_changes_is_held(app, sessions, city):
    """The Open311 POST reads its city from a cache kept per process: a changed hold
    setting reaches it at once."""
    from spatial.apikeys import create_key

    with sessions.begin() as s:
        _, key = create_key(s, city.slug, "test client")
    api = app.test_client()

    def post() -> str:
        res = api.post(
            f"{V2}/requests.json",
            data={
                "api_key": key,
                "service_code": "pothole",
                "lat": WEST[0],
                "long": WEST[1],
                "attribute[depth]": "3",
                "description": "Posted by an app",
            },
        )
        assert res.status_code == 200, res.get_data(as_text=True)
        return res.get_json()[0]["service_request_id"]

    first = post()
    assert api.get(f"{V2}/requests/{first}.json").status_code == 200
    _set_hold(sessions, city.city_id, "all")
    second = post()
    assert api.get(f"{V2}/requests/{second}.json").status_code == 404
    listed = api.get(f"{V2}/requests.json").get_data(as_text=True)
    assert first in listed and second not in listed


def test_a_web_report_in_a_city_that_holds_all_says_so_to_its_reporter(app, sessions, city):
    _set_hold(sessions, city.city_id, "all")
    resident = app.test_client()
    res = resident.post(
        "/report",
        data={
            "csrf_token": csrf_from(resident, "/report"),
            "form": "map",
            "service_code": "pothole",
            "lat": str(WEST[0]),
            "lon": str(WEST[1]),
            "attribute[depth]": "12",
            "description": "Deep hole by the bus stop",
            "contact_email": "ana@example.org",
        },
    )
    assert res.status_code in (302, 303), res.get_data(as_text=True)[:500]
    done = resident.get(res.headers["Location"]).get_data(as_text=True)
    assert "The city reviews new reports before they are published" in done
    assert "Anyone can see the public part" not in done
    with sessions() as s:
        req = s.scalar(sa.select(ServiceRequest))
        assert req.channel == "web" and req.held_at is not None
    assert app.test_client().get(f"/requests/{req.public_id}").status_code == 404


def test_mail_to_followers_carries_the_text_the_public_sees(sessions, settings, city):
    """A city's own template may print $description: a follower's mail then shows what the
    public page shows, the reporter's their own words, staff alerts the original."""
    from notify import templates
    from notify.messages import on_status_change
    from spatial.models import Follower, OutboxMessage, User, now_utc

    rid, _public_id, _token = _report(sessions, settings, description=SECRET_TEXT)
    with sessions.begin() as s:
        town = s.get(Jurisdiction, city.city_id)
        templates.save_override(
            s,
            town,
            "status_change",
            "[$public_id] $status",
            "Now $status.\n$description\n$tracking_url\n$unsubscribe_url",
            by="test",
        )
        s.add(Follower(request_id=rid, email="neighbour@example.org", confirmed_at=now_utc()))
        req = s.get(ServiceRequest, rid)
        dispatcher = s.get(User, city.users["dispatcher"])
        moderation.moderate_description(s, dispatcher, req, mode="hide", reason="Names a person")
        on_status_change(s, req, "new", "in_progress", "http://127.0.0.1:5000")
    with sessions() as s:
        bodies = {
            m.to_addr: m.body_text
            for m in s.scalars(
                sa.select(OutboxMessage).where(
                    OutboxMessage.request_id == rid, OutboxMessage.kind == "status_change"
                )
            )
        }
    assert set(bodies) == {"resident@example.org", "neighbour@example.org"}
    assert "Quigglesby" not in bodies["neighbour@example.org"]
    assert moderation.TEXT_REMOVED in bodies["neighbour@example.org"]
    assert SECRET_TEXT in bodies["resident@example.org"]
