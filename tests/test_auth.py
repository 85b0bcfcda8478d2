"""Staff sign-in with argon2 hashes, CSRF on forms, and role checks; the cookie keeps
nothing of the password."""

import base64
import re
import zlib

import pytest
import sqlalchemy as sa

from spatial.accounts import create_user
from spatial.models import User


@pytest.fixture
def staff(sessions):
    with sessions.begin() as s:
        create_user(s, email="disp@city.example", role="dispatcher", password="correct horse 1")
        create_user(s, email="crew@city.example", role="crew", password="correct horse 2")


def _csrf(client, path="/login"):
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_sign_in_and_out(client, staff):
    assert client.get("/staff").status_code == 302
    token = _csrf(client)
    bad = client.post(
        "/login", data={"email": "disp@city.example", "password": "nope", "csrf_token": token}
    )
    assert bad.status_code == 401
    assert "not right" in bad.get_data(as_text=True)
    ok = client.post(
        "/login?next=/staff",
        data={"email": "DISP@city.example", "password": "correct horse 1", "csrf_token": token},
    )
    assert ok.status_code == 302 and ok.headers["Location"].endswith("/staff")
    cookie = ok.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = client.get("/staff").get_data(as_text=True)
    assert "dispatcher" in page
    client.post("/logout", data={"csrf_token": _csrf(client, "/staff")})
    assert client.get("/staff").status_code == 302


def test_form_without_csrf_token_is_refused(client, staff):
    res = client.post("/login", data={"email": "disp@city.example", "password": "correct horse 1"})
    assert res.status_code == 400
    assert client.get("/staff").status_code == 302


def test_open_redirect_is_not_followed(client, staff):
    token = _csrf(client)
    res = client.post(
        "/login?next=https://evil.example/",
        data={"email": "crew@city.example", "password": "correct horse 2", "csrf_token": token},
    )
    # the unsafe "next" is ignored: the crew member lands on their own workspace
    assert res.headers["Location"] == "/crew"


def _cookie_payload(client) -> str:
    """What anyone holding the session cookie can read (it is signed, not encrypted)."""
    value = client.get_cookie("civicpin_session").value
    compressed = value.startswith(".")
    data = value.lstrip(".").split(".")[0]
    raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    return (zlib.decompress(raw) if compressed else raw).decode()


def test_the_session_cookie_carries_nothing_of_the_password(client, staff, sessions):
    token = _csrf(client)
    client.post(
        "/login",
        data={"email": "disp@city.example", "password": "correct horse 1", "csrf_token": token},
    )
    payload = _cookie_payload(client)
    assert '"uid"' in payload
    with sessions() as s:
        stored = s.scalar(sa.select(User.password_hash).where(User.email == "disp@city.example"))
    assert not any(stored[i : i + 8] in payload for i in range(len(stored) - 8))
