"""The self-service FAQ: public search, the triage explainer, category articles, and
admin editing with role checks and validation."""

from __future__ import annotations

import html as html_lib
import re

import pytest
import sqlalchemy as sa

from intake import faq
from spatial.accounts import create_user
from spatial.models import Jurisdiction, Service
from spatial.models_mail import FaqArticle
from tests.support.city import make_small_city


@pytest.fixture
def city(sessions):
    with sessions.begin() as s:
        info = make_small_city(s)
        s.add_all(
            [
                FaqArticle(
                    jurisdiction_id=info["city"].id,
                    slug="potholes",
                    title="When are potholes fixed?",
                    topic="Streets",
                    service_id=info["pothole"].id,
                    body="Small potholes are filled within three days.\n\n- Mark the spot\n"
                    "- Add a photo",
                ),
                FaqArticle(
                    jurisdiction_id=info["city"].id,
                    slug="bulky-items",
                    title="Bulky item pick-up",
                    topic="Waste",
                    body="Sofas and mattresses are collected on request. Book a pick-up.",
                ),
                FaqArticle(
                    jurisdiction_id=info["city"].id,
                    slug="draft",
                    title="Unpublished draft about sofas",
                    topic="Waste",
                    body="Not yet.",
                    published=False,
                ),
            ]
        )
    return info


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def login(client, sessions, role: str, create: bool = True) -> None:
    email = f"{role}@city.example"
    if create:
        with sessions.begin() as s:
            create_user(s, email=email, role=role, password="long enough pw 1")
    token = _csrf(client.get("/login").get_data(as_text=True))
    res = client.post(
        "/login", data={"email": email, "password": "long enough pw 1", "csrf_token": token}
    )
    assert res.status_code == 302


def test_public_faq_lists_and_searches(client, city):
    page = client.get("/help").get_data(as_text=True)
    assert "When are potholes fixed?" in page and "Bulky item pick-up" in page
    assert "How we triage reports" in page  # the built-in explainer is an article too
    assert "Unpublished draft" not in page
    found = client.get("/help?q=mattress").get_data(as_text=True)
    assert "Bulky item pick-up" in found and "potholes" not in found
    assert "1 article found" in found
    none = client.get("/help?q=zzzqqq").get_data(as_text=True)
    assert "Nothing found" in none
    by_topic = client.get("/help?topic=Streets").get_data(as_text=True)
    assert "potholes" in by_topic and "Bulky" not in by_topic
    odd = client.get("/help?q=%25_%5C'").status_code
    assert odd == 200


def test_triage_explainer_is_served_and_escaped(client, city):
    res = client.get("/help/triage")
    assert res.status_code == 200
    html = res.get_data(as_text=True)
    assert "How we triage reports" in html and "<li>The location decides" in html
    assert "Content-Security-Policy" in res.headers
    assert "<script" not in html


def test_category_article_for_the_reporting_flow(client, sessions, city):
    with sessions() as s:
        art = faq.article_for_service(s, s.get(Service, city["pothole"].id))
        assert art.slug == "potholes"
        assert faq.article_for_service(s, s.get(Service, city["private"].id)) is None
    res = client.get("/help/category/pothole")
    assert res.status_code == 302 and res.headers["Location"].endswith(
        "/help/potholes?city=testville"
    )
    page = client.get("/help/potholes").get_data(as_text=True)
    assert "<li>Mark the spot</li>" in page
    assert client.get("/help/category/abuse").status_code == 404
    assert client.get("/help/no-such-article").status_code == 404


def test_only_admins_edit_articles(client, sessions, city):
    assert client.get("/admin/faq").status_code == 302  # to the sign-in page
    login(client, sessions, "dispatcher")
    assert client.get("/admin/faq").status_code == 403
    token = _csrf(client.get("/staff").get_data(as_text=True))
    res = client.post(
        "/admin/faq/new", data={"csrf_token": token, "title": "Hack", "body": "x", "slug": "hack"}
    )
    assert res.status_code == 403
    with sessions() as s:
        assert s.scalar(sa.select(FaqArticle).where(FaqArticle.slug == "hack")) is None


def test_admin_creates_edits_and_deletes_an_article(client, sessions, city):
    login(client, sessions, "admin")
    html = client.get("/admin/faq/new").get_data(as_text=True)
    token = _csrf(html)
    bad = client.post(
        "/admin/faq/new",
        data={
            "csrf_token": token,
            "title": "",
            "slug": "Bad Slug!",
            "body": "",
            "service_code": "nope",
        },
    )
    assert bad.status_code == 400
    text = html_lib.unescape(bad.get_data(as_text=True))
    assert "Give the article a title" in text and "no category 'nope'" in text
    ok = client.post(
        "/admin/faq/new",
        data={
            "csrf_token": token,
            "title": "Graffiti <script>alert(1)</script>",
            "topic": "Streets",
            "service_code": "pothole",
            "body": "We remove graffiti <b>fast</b>.",
            "published": "on",
        },
    )
    assert ok.status_code == 302
    with sessions() as s:
        art = s.scalar(sa.select(FaqArticle).where(FaqArticle.title.like("Graffiti%")))
        assert (
            art.slug == "graffiti-script-alert-1-script" and art.updated_by == "admin@city.example"
        )
    page = client.get(f"/help/{art.slug}").get_data(as_text=True)
    assert "<script>alert" not in page and "&lt;b&gt;fast&lt;/b&gt;" in page
    found = client.get("/help?q=graffiti").get_data(as_text=True)
    assert art.slug in found
    dup = client.post(
        f"/admin/faq/{art.id}/edit",
        data={"csrf_token": token, "title": "X", "slug": "bulky-items", "body": "y"},
    )
    assert dup.status_code == 400 and "already uses 'bulky-items'" in html_lib.unescape(
        dup.get_data(as_text=True)
    )
    edit = client.post(
        f"/admin/faq/{art.id}/edit",
        data={
            "csrf_token": token,
            "title": "Graffiti",
            "slug": "graffiti",
            "body": "Gone in 48 h.",
        },
    )
    assert edit.status_code == 302
    # unchecked "published": a draft, which the admin can read and the public cannot
    draft = client.get("/help/graffiti").get_data(as_text=True)
    assert "Gone in 48 h." in draft and "Draft: not shown to the public." in draft
    assert (
        "Graffiti" not in client.get("/help").get_data(as_text=True).split("Help and questions")[1]
    )
    client.post("/logout", data={"csrf_token": token})
    assert client.get("/help/graffiti").status_code == 404
    login(client, sessions, "admin", create=False)
    token = _csrf(client.get("/admin/faq").get_data(as_text=True))
    client.post(f"/admin/faq/{art.id}/delete", data={"csrf_token": token})
    with sessions() as s:
        assert s.get(FaqArticle, art.id) is None


def test_admin_edits_the_triage_explainer(client, sessions, city):
    login(client, sessions, "admin")
    html = client.get("/admin/faq/new?slug=triage").get_data(as_text=True)
    assert "How we triage reports" in html and 'value="triage"' in html
    res = client.post(
        "/admin/faq/new?slug=triage",
        data={
            "csrf_token": _csrf(html),
            "title": "How Testville triages",
            "slug": "triage",
            "topic": "About reporting",
            "body": "Our own words.",
            "published": "on",
        },
    )
    assert res.status_code == 302
    page = client.get("/help/triage").get_data(as_text=True)
    assert "How Testville triages" in page and "Our own words." in page
    listing = client.get("/help").get_data(as_text=True)
    assert listing.count("/help/triage") == 1


def test_articles_belong_to_their_city(client, sessions, city):
    with sessions.begin() as s:
        make_small_city(s, slug="otherville")
        other = s.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == "otherville"))
        s.add(
            FaqArticle(jurisdiction_id=other.id, slug="potholes", title="Other potholes", body="b")
        )
    assert "Other potholes" in client.get("/help/potholes?city=otherville").get_data(as_text=True)
    assert "When are potholes" in client.get("/help/potholes?city=testville").get_data(as_text=True)
    assert client.get("/help?city=Bad_Slug").status_code == 400
