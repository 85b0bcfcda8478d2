"""Password reset by a mailed one-time link, played as its user and as a stranger: real
HTTP with the real session and CSRF, real SMTP delivery to a loopback sink by the outbox
worker. Also where sign-in lands each role, and the staff bar's workspaces."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
import sqlalchemy as sa

from notify.worker import run_once
from spatial.accounts import create_user, set_password
from spatial.models import Jurisdiction, OutboxMessage, User, now_utc
from spatial.models_mail import Unsubscribe
from spatial.models_ops import AdminEvent, PasswordReset
from spatial.password_reset import ACCOUNT_LIMIT, CLIENT_LIMIT
from tests.support.city import make_small_city
from tests.support.dispatch_city import PASSWORD, csrf_from, login, make_dispatch_city

CREW = "crew@city.example"
NEW_PASSWORD = "lantern orbit quietly 42"
LINK = re.compile(r"https?://\S+/login/reset\?token=\S+")
IP = "198.51.100.7"


@pytest.fixture
def city(sessions):
    with sessions.begin() as s:
        return make_dispatch_city(s)


def forgot(client, email: str, ip: str = IP):
    token = csrf_from(client, "/login/forgot")
    return client.post(
        "/login/forgot",
        data={"csrf_token": token, "email": email},
        environ_base={"REMOTE_ADDR": ip},
    )


def deliver(sessions, settings, sink) -> None:
    run_once(sessions, settings.with_overrides(smtp_url=sink.url))


def link_in(mail) -> str:
    return LINK.search(mail.text).group(0)


def path_of(url: str) -> str:
    """The link's path with its query (where the secret is)."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def secret_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


def sign_in(client, email: str, password: str, path: str = "/login"):
    token = csrf_from(client, "/login")
    return client.post(path, data={"email": email, "password": password, "csrf_token": token})


def set_new(client, link_path: str, password: str = NEW_PASSWORD, confirm: str | None = None):
    token = csrf_from(client, "/login")
    return client.post(
        link_path,
        data={"csrf_token": token, "password": password, "confirm": confirm or password},
    )


def password_hash(sessions, email: str) -> str:
    with sessions() as s:
        return s.scalar(sa.select(User.password_hash).where(User.email == email))


def mailed_link(client, sessions, settings, sink, email: str = CREW) -> str:
    """Ask for a link on the public page; the path of the link the mail brought."""
    before = len(sink.to(email))
    assert forgot(client, email).status_code == 200
    deliver(sessions, settings, sink)
    mails = sink.to(email)
    assert len(mails) == before + 1
    return path_of(link_in(mails[-1]))


# --------------------------------------------------------------------------- the link


def test_a_mailed_link_sets_a_password_that_signs_in_and_works_once(
    app, client, sessions, settings, sink, city
):
    old_hash = password_hash(sessions, CREW)
    page = forgot(client, CREW)
    assert page.status_code == 200
    assert "is on its way" in page.get_data(as_text=True)
    deliver(sessions, settings, sink)
    (mail,) = sink.to(CREW)
    assert mail.message["Subject"] == "Set a new password for Testville"
    url = link_in(mail)
    # at the city's own address, like every link mailed for the city
    assert url.startswith(f"{settings.public_base_url}/c/{city.slug}/login/reset?token=")
    path = path_of(url)

    # Opening it (a mail scanner does too) changes nothing.
    for _ in range(2):
        form = client.get(path)
        assert form.status_code == 200
        assert CREW in form.get_data(as_text=True)
        assert form.headers["Referrer-Policy"] == "no-referrer"
    assert password_hash(sessions, CREW) == old_hash

    done = set_new(client, path)
    assert done.status_code == 302
    assert path_of(done.headers["Location"]) == f"/c/{city.slug}/login"
    # nobody is signed in by the link
    assert client.get("/crew").status_code == 302
    assert sign_in(client, CREW, PASSWORD).status_code == 401
    res = sign_in(client, CREW, NEW_PASSWORD)
    assert res.status_code == 302 and res.headers["Location"] == "/crew"

    # The link worked once.
    again = client.get(path)
    assert again.status_code == 404
    assert "does not work any more" in again.get_data(as_text=True)
    assert set_new(client, path, "another long phrase 77").status_code == 404
    other = app.test_client()
    assert sign_in(other, CREW, NEW_PASSWORD).status_code == 302


def test_an_expired_link_fails(client, sessions, settings, sink, city):
    path = mailed_link(client, sessions, settings, sink)
    old_hash = password_hash(sessions, CREW)
    with sessions.begin() as s:
        s.execute(sa.update(PasswordReset).values(expires_at=now_utc() - timedelta(seconds=1)))
    assert client.get(path).status_code == 404
    assert set_new(client, path).status_code == 404
    assert password_hash(sessions, CREW) == old_hash


def test_a_newer_link_or_a_new_password_ends_the_earlier_links(
    client, sessions, settings, sink, city
):
    first = mailed_link(client, sessions, settings, sink)
    second = mailed_link(client, sessions, settings, sink)
    assert client.get(first).status_code == 404
    assert client.get(second).status_code == 200
    with sessions.begin() as s:
        set_password(s.scalar(sa.select(User).where(User.email == CREW)), "a brand new phrase 9")
    assert client.get(second).status_code == 404


def test_a_weak_password_is_refused_beside_its_field_and_the_link_still_works(
    client, sessions, settings, sink, city
):
    path = mailed_link(client, sessions, settings, sink)
    old_hash = password_hash(sessions, CREW)
    short = set_new(client, path, "short")
    assert short.status_code == 400
    html = short.get_data(as_text=True)
    assert 'id="password-error"' in html and "at least 12 characters" in html
    differ = set_new(client, path, NEW_PASSWORD, confirm=NEW_PASSWORD + "x")
    assert differ.status_code == 400
    assert 'id="confirm-error"' in differ.get_data(as_text=True)
    assert password_hash(sessions, CREW) == old_hash
    assert set_new(client, path).status_code == 302


def test_the_answer_is_the_same_for_any_address_and_only_an_active_account_gets_mail(
    client, sessions, settings, sink, city
):
    with sessions.begin() as s:
        s.scalar(sa.select(User).where(User.email == "planner@city.example")).active = False
    answers = {
        email: forgot(client, email, ip=f"198.51.100.{i}")
        for i, email in enumerate(
            [CREW, "nobody@city.example", "planner@city.example", "NOBODY@elsewhere.example"]
        )
    }
    bodies = {res.get_data(as_text=True) for res in answers.values()}
    assert {res.status_code for res in answers.values()} == {200}
    assert len(bodies) == 1, "the answer tells which addresses have an account"
    deliver(sessions, settings, sink)
    assert [r.rcpt_tos for r in sink.received] == [[CREW]]
    with sessions() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(PasswordReset)) == 1


def test_an_empty_address_is_asked_for_again(client, city):
    res = forgot(client, "  ")
    assert res.status_code == 400
    assert 'id="forgot-error"' in res.get_data(as_text=True)


def test_links_per_account_and_requests_per_client_are_limited(
    client, sessions, settings, sink, city
):
    # Per account: a few links an hour, whichever clients ask; the page says the same.
    for i in range(ACCOUNT_LIMIT + 2):
        res = forgot(client, CREW, ip=f"203.0.113.{i}")
        assert res.status_code == 200 and "is on its way" in res.get_data(as_text=True)
    deliver(sessions, settings, sink)
    assert len(sink.to(CREW)) == ACCOUNT_LIMIT
    # Per client address: whatever addresses it types, then it is told to wait.
    limit, _ = CLIENT_LIMIT
    for i in range(limit):
        assert forgot(client, f"guess{i}@city.example", ip="192.0.2.9").status_code == 200
    refused = forgot(client, "agent@city.example", ip="192.0.2.9")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert "Too many requests" in refused.get_data(as_text=True)
    # ... and that client's refusal mailed nothing; another client is served.
    assert forgot(client, "agent@city.example", ip="192.0.2.10").status_code == 200
    deliver(sessions, settings, sink)
    assert len(sink.to("agent@city.example")) == 1


def test_setting_a_password_ends_the_accounts_sessions_and_its_lock_out(
    app, client, sessions, settings, sink, city
):
    elsewhere = app.test_client()
    assert sign_in(elsewhere, CREW, PASSWORD).status_code == 302
    assert elsewhere.get("/crew").status_code == 200
    # Someone guessed until the account was locked out.
    for _ in range(settings.signin_account_limit[0]):
        sign_in(client, CREW, "wrong guess here")
    assert sign_in(client, CREW, PASSWORD).status_code == 429
    path = mailed_link(client, sessions, settings, sink)
    assert set_new(client, path).status_code == 302
    res = elsewhere.get("/crew")
    assert res.status_code == 302 and "/login" in res.headers["Location"]
    assert sign_in(client, CREW, NEW_PASSWORD).status_code == 302


def test_two_factor_sign_in_stays_required_after_a_reset(client, sessions, settings, sink, city):
    secret = pyotp.random_base32()
    with sessions.begin() as s:
        s.scalar(sa.select(User).where(User.email == CREW)).totp_secret = secret
    path = mailed_link(client, sessions, settings, sink)
    assert set_new(client, path).status_code == 302
    res = sign_in(client, CREW, NEW_PASSWORD)
    assert path_of(res.headers["Location"]) == "/login/code"
    token = csrf_from(client, res.headers["Location"])
    done = client.post(
        res.headers["Location"], data={"code": pyotp.TOTP(secret).now(), "csrf_token": token}
    )
    assert done.headers["Location"] == "/crew"


def test_mail_of_a_resident_unsubscribe_still_brings_the_link(
    client, sessions, settings, sink, city
):
    with sessions.begin() as s:
        s.add(Unsubscribe(email=CREW))  # from every mail of every city, as a resident
    mailed_link(client, sessions, settings, sink)


def test_an_install_administrators_link_is_at_the_installs_address(
    client, sessions, settings, sink, city
):
    with sessions.begin() as s:
        create_user(s, email="root@install.example", role="install_admin", password=PASSWORD)
    forgot(client, "root@install.example")
    deliver(sessions, settings, sink)
    (mail,) = sink.to("root@install.example")
    assert link_in(mail).startswith(f"{settings.public_base_url}/login/reset?token=")
    assert "/c/" not in link_in(mail)


def test_the_secret_reaches_no_log_and_no_audit_event(
    client, sessions, settings, sink, city, engine, caplog
):
    caplog.set_level(logging.DEBUG)
    login(client, "admin")
    users = client.get("/admin/users").get_data(as_text=True)
    assert "Send reset link" in users
    token = csrf_from(client, "/admin/users")
    res = client.post(f"/admin/users/{city.users['crew']}/reset", data={"csrf_token": token})
    assert res.status_code == 302
    deliver(sessions, settings, sink)
    (mail,) = sink.to(CREW)
    secret = secret_of(link_in(mail))
    assert len(secret) >= 40
    with sessions() as s:
        (event,) = s.scalars(
            sa.select(AdminEvent).where(AdminEvent.action == "user.password_reset")
        ).all()
        assert event.actor_id == city.users["admin"] and event.object_id == str(city.users["crew"])
        digests = s.scalars(sa.select(PasswordReset.token_hash)).all()
    with engine.connect() as conn:
        events = conn.execute(
            sa.text("SELECT coalesce(string_agg(e::text, '|'), '') FROM admin_event e")
        ).scalar()
    assert CREW in events and secret not in events
    assert all(secret not in d for d in digests)
    # the link's own pages are opened and used; nothing logs it
    client.get(path_of(link_in(mail)))
    set_new(client, path_of(link_in(mail)))
    assert secret not in caplog.text
    audit_page = client.get("/admin/audit").get_data(as_text=True)
    assert "user.password_reset" in audit_page and secret not in audit_page


def test_an_admin_cannot_send_a_link_to_a_deactivated_or_foreign_account(
    client, sessions, settings, sink, city
):
    with sessions.begin() as s:
        other = make_small_city(s, "otherton")
        stranger, _ = create_user(
            s, email="crew@otherton.example", role="crew", city_slug=other["city"].slug
        )
        s.get(User, city.users["planner"]).active = False
        stranger_id = stranger.id
    login(client, "admin")
    token = csrf_from(client, "/admin/users")
    assert (
        client.post(f"/admin/users/{stranger_id}/reset", data={"csrf_token": token}).status_code
        == 404
    )
    res = client.post(f"/admin/users/{city.users['planner']}/reset", data={"csrf_token": token})
    assert res.status_code == 400 and "deactivated" in res.get_data(as_text=True)
    with sessions() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(PasswordReset)) == 0
        assert s.scalar(sa.select(sa.func.count()).select_from(AdminEvent)) == 0


def test_the_command_line_mails_a_link(cli, sessions, settings, sink, city):
    res = cli("users", "reset", "--email", CREW.upper())
    assert res.returncode == 0, res.stderr
    assert CREW in res.stdout
    with sessions() as s:
        (msg,) = s.scalars(sa.select(OutboxMessage)).all()
        assert msg.kind == "password_reset" and msg.to_addr == CREW
        (event,) = s.scalars(sa.select(AdminEvent)).all()
        assert event.action == "user.password_reset" and event.actor_label.startswith("cli:")
    secret = secret_of(LINK.search(msg.body_text).group(0))
    assert secret not in res.stdout + res.stderr
    bad = cli("users", "reset", "--email", "nobody@city.example")
    assert bad.returncode != 0
    assert bad.stderr.strip().splitlines() == [
        "civicpin: error: no user with e-mail nobody@city.example"
    ]
    with sessions() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(PasswordReset)) == 1


# --------------------------------------------------------------------------- landing


LANDING = {
    "agent": "/agent",
    "dispatcher": "/dispatch",
    "crew": "/crew",
    "planner": "/planner/",
    "admin": "/admin/",
}


@pytest.mark.parametrize("role", sorted(LANDING))
def test_sign_in_lands_each_role_on_its_workspace(client, city, role):
    res = sign_in(client, f"{role}@city.example", PASSWORD)
    assert res.status_code == 302 and res.headers["Location"] == LANDING[role]
    assert client.get(res.headers["Location"]).status_code == 200


def test_an_install_administrator_lands_on_admin_and_a_safe_next_wins(client, sessions, city):
    with sessions.begin() as s:
        create_user(s, email="root@install.example", role="install_admin", password=PASSWORD)
    assert sign_in(client, "root@install.example", PASSWORD).headers["Location"] == "/admin/"
    client.post("/logout", data={"csrf_token": csrf_from(client, "/staff")})
    token = csrf_from(client, "/login")
    res = client.post(
        "/login?next=/dispatch?status=new",
        data={"email": "crew@city.example", "password": PASSWORD, "csrf_token": token},
    )
    assert res.headers["Location"] == "/dispatch?status=new"


def test_with_several_cities_staff_land_at_their_citys_address(client, sessions, city):
    with sessions.begin() as s:
        other = make_small_city(s, "otherton")
        create_user(
            s, email="crew@otherton.example", role="crew", city_slug="otherton", password=PASSWORD
        )
        other_slug = other["city"].slug
    res = sign_in(client, "crew@otherton.example", PASSWORD)
    assert res.headers["Location"] == f"/c/{other_slug}/crew"
    # at another city's address too
    client.post("/logout", data={"csrf_token": csrf_from(client, "/staff")})
    res = sign_in(client, "dispatcher@city.example", PASSWORD, path=f"/c/{other_slug}/login")
    assert res.headers["Location"] == f"/c/{city.slug}/dispatch"
    page = client.get(res.headers["Location"])
    assert page.status_code == 200
    # already at their own city's address, it stays there
    client.post("/logout", data={"csrf_token": csrf_from(client, "/staff")})
    res = sign_in(client, "dispatcher@city.example", PASSWORD, path=f"/c/{city.slug}/login")
    assert res.headers["Location"] == f"/c/{city.slug}/dispatch"
    with sessions() as s:
        assert s.scalar(sa.select(sa.func.count(Jurisdiction.id))) == 2


# --------------------------------------------------------------------------- staff bar


class _Bar(HTMLParser):
    """The staff bar's workspace links: [(label, href, current)]."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str, bool]] = []
        self.account: list[str] = []
        self.logout = False
        self._in: str | None = None
        self._href: tuple[str, bool] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "nav" and a.get("aria-label") in ("Workspaces", "Your account"):
            self._in = a["aria-label"]
        elif tag == "a" and self._in:
            self._href = (a.get("href", ""), a.get("aria-current") == "page")
        elif tag == "form" and "logout" in (a.get("action") or ""):
            self.logout = True

    def handle_endtag(self, tag):
        if tag == "nav":
            self._in = None

    def handle_data(self, data):
        if self._href is not None and data.strip():
            if self._in == "Workspaces":
                self.links.append((data.strip(), *self._href))
            else:
                self.account.append(data.strip())
            self._href = None


def bar(html: str) -> _Bar:
    parser = _Bar()
    parser.feed(html)
    return parser


ALL = {
    "Dispatch": "/dispatch",
    "Agent": "/agent",
    "Crew": "/crew",
    "Planner": "/planner/",
    "Admin": "/admin/",
    "Intranet": "/intranet",
}
# Every staff member of a city may use the intranet (as an internal customer).
MAY_USE = {
    "agent": ["Agent", "Intranet"],
    "dispatcher": ["Dispatch", "Agent", "Intranet"],
    "crew": ["Crew", "Intranet"],
    "planner": ["Planner", "Intranet"],
    "admin": ["Dispatch", "Agent", "Crew", "Planner", "Admin", "Intranet"],
}


def expected_links(role: str) -> list[tuple[str, str]]:
    """The bar's links of ``role``: its workspaces, then the projects of dispatch and
    planners."""
    links = [(name, ALL[name]) for name in MAY_USE[role]]
    if {"Dispatch", "Planner"} & set(MAY_USE[role]):
        links.append(("Projects", "/staff/projects"))
    return links


@pytest.mark.parametrize("role", sorted(MAY_USE))
def test_the_staff_bar_links_exactly_the_workspaces_of_the_role(client, city, role):
    login(client, role)
    for label in MAY_USE[role]:
        found = bar(client.get(ALL[label]).get_data(as_text=True))
        assert [(text, href) for text, href, _ in found.links] == expected_links(role)
        assert [text for text, _, current in found.links if current] == [label]
        assert "Two-factor sign-in" in found.account and found.logout


def test_the_admins_other_pages_show_the_bar_with_admin_marked(client, city):
    login(client, "admin")
    for path in ("/admin/users", "/admin/faq", "/admin/mail-templates", "/staff"):
        found = bar(client.get(path).get_data(as_text=True))
        assert [text for text, _, _ in found.links] == [n for n, _ in expected_links("admin")], path
        expected = [] if path == "/staff" else ["Admin"]
        assert [text for text, _, current in found.links if current] == expected, path


def test_public_pages_show_no_staff_bar(client, city):
    login(client, "admin")
    for path in ("/help", "/login/forgot"):
        assert bar(client.get(path).get_data(as_text=True)).links == [], path
