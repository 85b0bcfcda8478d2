"""Category suggestion from text: a classifier trained on the city's own history, used by
the e-mail intake, the agent console and the dispatch panel.

The history is real residents' text (``intake/demo/data/publicstuff``: public requests of
Hoboken and New York City), under five categories of the test city."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from intake.email_intake import MailIntake
from intake.submit import Draft, submit
from routing import classify
from spatial.models import Jurisdiction, RequestEvent, Service, ServiceRequest
from spatial.models_mail import MailAddress, MailConfig
from spatial.models_work import CategoryModel
from tests.conftest import module_database, run_cli
from tests.support.city import make_small_city
from tests.support.dispatch_city import BASE_URL, WEST, csrf_from, login, make_dispatch_city
from tests.support.mail import DISPATCH, INTAKE, mime

TEXTS = Path(__file__).resolve().parent.parent / "intake/demo/data/publicstuff/requests.csv"
# The source's categories -> the test city's (the rest of the file is left out).
CATEGORIES = {
    "Pothole": "pothole",
    "Pothole, Outcrop": "pothole",
    "Potholes on FDR 135th St Exit": "pothole",
    "Pothole in New York": "pothole",
    "Broken/ Open manhole": "pothole",
    "Noise Complaint": "noise",
    "Street Light or Lamp": "streetlight",
    "Broken Streetlight": "streetlight",
    "no proper street light,": "streetlight",
    "Illegal Parking": "parking",
    "Trees on Sidewalks": "trees",
    "Damaged Tree": "trees",
    "Landscaping and Trees in Parks": "trees",
}
NEW_CATEGORIES = {
    "noise": "Noise",
    "streetlight": "Street light out",
    "parking": "Illegal parking",
    "trees": "Trees",
    "general": "General enquiry",
}
LOUD = "Loud music and a party with huge speakers next door every night"


def real_texts() -> list[tuple[str, str]]:
    """(text, test-city category) of the real sample, oldest first."""
    with TEXTS.open(encoding="utf-8") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: int(r["created"]))
    return [
        (r["description"], CATEGORIES[r["category"]]) for r in rows if r["category"] in CATEGORIES
    ]


# One database for the module: the history is written and the model trained once.
db_url, engine, sessions, settings, app = module_database("classify")


@pytest.fixture(scope="module")
def city(sessions, settings):
    """The dispatch city with four more categories and their real history, a mail intake
    address for general enquiries, a second city, and the trained model."""
    with sessions.begin() as s:
        info = make_dispatch_city(s)
        ids = {"pothole": info.pothole_id}
        for code, name in NEW_CATEGORIES.items():
            service = Service(
                jurisdiction_id=info.city_id,
                code=code,
                name=name,
                default_department_id=info.streets_id,
            )
            s.add(service)
            s.flush()
            ids[code] = service.id
        s.add_all(
            [
                MailAddress(
                    jurisdiction_id=info.city_id, address=INTAKE, service_id=ids["general"]
                ),
                MailConfig(jurisdiction_id=info.city_id, dispatch_email=DISPATCH),
            ]
        )
        other = make_small_city(s, slug="otherville")["city"]
        info.ids = ids
        info.other_id = other.id
    for text, code in real_texts():
        with sessions.begin() as s:
            _file(s, settings, code, text)
    with sessions.begin() as s:
        row = classify.train(s, s.get(Jurisdiction, info.city_id))
        info.trained = (row.requests, row.categories, row.top1, row.baseline)
    return info


def _file(s, settings, code: str, text: str, **kw) -> ServiceRequest:
    draft = Draft(
        city="testville",
        service_code=code,
        lat=WEST[0],
        lon=WEST[1],
        attributes={"depth": "12"} if code == "pothole" else {},
        description=text,
        channel="web",
        **kw,
    )
    return submit(s, draft, media_dir=settings.media_dir, public_base_url=BASE_URL).request


def _city_of(s, city):
    from spatial.models import Jurisdiction

    return s.get(Jurisdiction, city.city_id)


# --------------------------------------------------------------------------- the classifier


def test_training_on_real_text_beats_the_majority_baseline():
    texts, labels = zip(*real_texts(), strict=True)
    evaluation, _ = classify.evaluate(list(texts), list(labels))
    assert evaluation.requests == len(texts) >= classify.MIN_REQUESTS
    assert evaluation.categories == 5
    assert evaluation.top1 > evaluation.baseline + 0.2
    assert evaluation.top3 >= evaluation.top1


def test_too_little_history_is_refused_with_a_reason():
    texts, labels = zip(*real_texts()[:30], strict=True)
    with pytest.raises(classify.NotEnoughHistory, match="at least 50"):
        classify.evaluate(list(texts), list(labels))
    with pytest.raises(classify.NotEnoughHistory, match="2 categories"):
        classify.evaluate(["a pothole here"] * 60, ["pothole"] * 60)


def test_the_stored_model_suggests_the_city_s_own_categories(sessions, city):
    requests, categories, top1, baseline = city.trained
    assert (requests, categories) == (len(real_texts()), 5)
    assert top1 > baseline
    with sessions() as s:
        found = classify.suggest(s, _city_of(s, city), LOUD)
        assert [x.service.code for x in found][:1] == ["noise"]
        assert len(found) == 3 and found[0].probability > found[1].probability
        assert {x.service.jurisdiction_id for x in found} == {city.city_id}
        lights = classify.suggest(s, _city_of(s, city), "the street lights are all out, dark")
        assert lights[0].service.code == "streetlight"
        assert classify.suggest(s, _city_of(s, city), "  ") == []


def test_inactive_and_internal_categories_are_never_suggested(sessions, city):
    with sessions() as s:
        noise = s.get(Service, city.ids["noise"])
        noise.internal = True
        s.flush()
        assert "noise" not in {x.service.code for x in classify.suggest(s, _city_of(s, city), LOUD)}
        noise.internal, noise.active = False, False
        s.flush()
        assert "noise" not in {x.service.code for x in classify.suggest(s, _city_of(s, city), LOUD)}
        s.rollback()


def test_another_city_never_gets_this_city_s_categories(sessions, city):
    with sessions() as s:
        other = s.get(Jurisdiction, city.other_id)
        assert classify.suggest(s, other, LOUD) == []  # no model of its own
        # Even with this city's model copied onto it, none of this city's categories.
        mine = s.get(CategoryModel, city.city_id)
        s.add(CategoryModel(jurisdiction_id=other.id, model=mine.model, requests=1, categories=1))
        s.flush()
        assert classify.suggest(s, other, LOUD) == []
        s.rollback()


def test_a_tampered_model_is_not_loaded(sessions, city):
    import pickle

    with pytest.raises(Exception):  # noqa: B017 - skops refuses a pickle outright
        classify._load(pickle.dumps({"x": 1}))


# --------------------------------------------------------------------------- e-mail


def test_an_e_mail_stores_the_suggestion_and_an_internal_event(sessions, settings, city):
    intake = MailIntake(
        sessions,
        public_base_url=settings.public_base_url,
        media_dir=settings.media_dir,
        mail_from=settings.mail_from,
    )
    raw = bytes(mime("Noise at night", LOUD, message_id="<loud@example.org>"))
    outcome = intake.process(raw, mail_from="ana@example.org", rcpt_tos=[INTAKE])
    assert outcome.outcome == "created", outcome
    with sessions() as s:
        req = s.scalar(
            sa.select(ServiceRequest).where(ServiceRequest.public_id == outcome.public_id)
        )
        assert req.service_id == city.ids["general"]  # filed under the address's category
        assert req.suggested_service_id == city.ids["noise"]
        assert 0 < req.suggestion_confidence <= 1
        (event,) = s.scalars(
            sa.select(RequestEvent).where(
                RequestEvent.request_id == req.id, RequestEvent.kind == "suggestion"
            )
        ).all()
        assert not event.public and event.to_value == "Noise"


# --------------------------------------------------------------------------- dispatch


@pytest.fixture
def client(app):
    return app.test_client()


def _suggested(sessions, settings, city, code="trees", text="Huge deep pothole in the road"):
    with sessions.begin() as s:
        req = _file(s, settings, code, text)
        found = classify.record_suggestion(s, _city_of(s, city), req, actor_label="test")
        assert found is not None and found.service.code == "pothole"
        return req.public_id


def _post(client, public_id, action):
    token = csrf_from(client, "/dispatch")
    return client.post(
        f"/dispatch/requests/{public_id}/{action}",
        data={"csrf_token": token},
        headers={"Accept": "application/json"},
    )


def test_dispatcher_sees_the_suggestion_and_confirms_it(client, sessions, settings, city):
    public_id = _suggested(sessions, settings, city)
    login(client, "dispatcher")
    html = client.get(f"/dispatch/requests/{public_id}").get_data(as_text=True)
    assert re.search(r"Suggested category: <strong>Pothole</strong> \(\d+ %\)", html)
    res = _post(client, public_id, "confirm_suggestion")
    assert res.status_code == 200, res.get_data(as_text=True)
    with sessions() as s:
        req = s.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == public_id))
        assert req.service_id == city.pothole_id
        assert req.crew_id == city.crew_w_id  # routed again: potholes go to the zone's crew
        assert req.suggested_service_id is None and req.suggestion_confidence is None
        kinds = s.scalars(
            sa.select(RequestEvent.kind).where(RequestEvent.request_id == req.id)
        ).all()
        assert "recategorised" in kinds
    html = client.get(f"/dispatch/requests/{public_id}").get_data(as_text=True)
    assert "Suggested category" not in html
    res = _post(client, public_id, "confirm_suggestion")
    assert res.status_code == 400 and "no suggested category" in res.get_json()["error"]


def test_dismiss_clears_the_suggestion_and_keeps_the_category(client, sessions, settings, city):
    public_id = _suggested(sessions, settings, city)
    login(client, "dispatcher")
    assert _post(client, public_id, "dismiss_suggestion").status_code == 200
    with sessions() as s:
        req = s.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == public_id))
        assert req.service_id == city.ids["trees"]
        assert req.suggested_service_id is None and req.suggestion_confidence is None


@pytest.mark.parametrize("who", ["crew", None])
def test_a_crew_member_or_a_stranger_cannot_confirm(client, sessions, settings, city, who):
    public_id = _suggested(sessions, settings, city)
    if who:
        login(client, who)
        token = csrf_from(client, "/crew")
    else:
        token = "none"
    res = client.post(
        f"/dispatch/requests/{public_id}/confirm_suggestion",
        data={"csrf_token": token},
    )
    assert res.status_code in ((403,) if who else (302, 400, 401))
    with sessions() as s:
        req = s.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == public_id))
        assert req.service_id == city.ids["trees"]
        assert req.suggested_service_id == city.pothole_id


# --------------------------------------------------------------------------- agent console


def test_the_agent_endpoint_suggests_for_staff_only(client, city):
    res = client.get("/agent/api/categories", query_string={"text": LOUD})
    assert res.status_code in (302, 401)
    login(client, "crew")
    assert client.get("/agent/api/categories", query_string={"text": LOUD}).status_code == 403
    client.get("/logout")
    login(client, "agent")
    body = client.get("/agent/api/categories", query_string={"text": LOUD}).get_json()
    assert body["suggestions"][0]["code"] == "noise"
    assert len(body["suggestions"]) == 3
    assert all(0 <= s["percent"] <= 100 for s in body["suggestions"])
    html = client.get("/agent").get_data(as_text=True)
    assert 'id="category-suggestions"' in html and "/agent/api/categories" in html


def test_the_agent_s_request_keeps_the_suggestion(client, sessions, city):
    login(client, "agent")
    token = csrf_from(client, "/agent")
    res = client.post(
        "/agent/requests",
        data={
            "csrf_token": token,
            "channel": "phone",
            "service_code": "noise",
            "lat": str(WEST[0]),
            "lon": str(WEST[1]),
            "description": LOUD,
        },
    )
    assert res.status_code == 201, res.get_data(as_text=True)
    with sessions() as s:
        req = s.scalar(sa.select(ServiceRequest).order_by(ServiceRequest.id.desc()).limit(1))
        assert req.service_id == city.ids["noise"]
        assert req.suggested_service_id == city.ids["noise"]  # the agent took the suggestion
        assert req.suggestion_confidence > 0.3


@pytest.mark.e2e
def test_in_chromium_the_agent_types_and_picks_a_suggested_category(app, city):
    from tests.support.browser import chromium, serve, watch_problems
    from tests.support.dispatch_city import PASSWORD

    with serve(app) as base, chromium() as browser:
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        problems = watch_problems(page)
        page.goto(f"{base}/login?next=/agent")
        page.fill('input[name="email"]', "agent@city.example")
        page.fill('input[name="password"]', PASSWORD)
        page.click('button[type="submit"]')
        page.wait_for_url("**/agent")
        assert page.locator("#category-suggestions").is_hidden()
        page.locator("#agent-description").press_sequentially("loud music all night", delay=10)
        first = page.locator("#category-suggestions button").first
        first.wait_for(timeout=10_000)
        assert re.fullmatch(r"Noise \(\d+ %\)", first.inner_text())
        assert page.locator("#category-suggestions button").count() == 3
        first.click()
        assert page.input_value("#service-select") == "noise"
        assert problems == []


def test_retrain_due_trains_only_stale_models_of_cities_with_history(sessions, city):
    from datetime import timedelta

    from spatial.models import now_utc

    assert classify.retrain_due(sessions) == 0  # testville's is fresh; otherville has no text
    later = now_utc() + classify.RETRAIN_AFTER + timedelta(hours=1)
    assert classify.retrain_due(sessions, now=later) == 1
    with sessions() as s:
        assert s.get(CategoryModel, city.city_id).trained_at == later
        assert s.get(CategoryModel, city.other_id) is None


# --------------------------------------------------------------------------- the command


def test_train_command(db_url, tmp_path, city):
    env = {"DATABASE_URL": db_url, "VAR_DIR": str(tmp_path / "var")}
    res = run_cli(["categories", "train", "--city", "nowhere"], env=env)
    assert res.returncode != 0 and res.stdout == ""
    assert res.stderr.startswith("civicpin: error:") and len(res.stderr.splitlines()) == 1
    res = run_cli(["categories", "train", "--city", "otherville"], env=env)
    assert res.returncode == 1
    assert "0 requests with a description" in res.stderr and "at least 50" in res.stderr
    res = run_cli(["categories", "train", "--city", "testville"], env=env)
    assert res.returncode == 0, res.stderr
    assert re.match(
        r"trained the category suggestion of testville: \d+ requests, \d+ categories; "
        r"held out: top-1 \d+%, top-3 \d+%, baseline \d+%",
        res.stdout,
    ), res.stdout
