"""Staff sign-in against a stranger: guessing is throttled and locked out in the database
(shared by every worker), the answer takes as long for unknown addresses as for known
ones, weak passwords are refused, a copied cookie dies with logout, two-factor codes are
asked for and cannot be replayed, and tokens in links never reach the access logs."""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pyotp
import pytest
import sqlalchemy as sa

from spatial.accounts import create_user, generate_password, password_problem
from spatial.errors import InvalidInput
from spatial.models import SigninAttempt, User
from spatial.settings import PROJECT_ROOT, SettingsError, load_settings
from spatial.signin import record_failure
from tests.support.dispatch_city import PASSWORD, csrf_from, login, make_dispatch_city

WRONG = "not the password 0"
LOCKED = "Too many failed sign-ins. Try again in 15 minutes."
KEY = {"SECRET_KEY": "test-secret-key-0123456789"}  # no key file written


@pytest.fixture
def city(sessions):
    with sessions.begin() as s:
        return make_dispatch_city(s)


def _new_app(settings, engine, **overrides):
    from webmap.app import create_app

    app = create_app(settings.with_overrides(**overrides), engine=engine)
    app.config["TESTING"] = True
    return app


def _sign_in(client, email: str, password: str, addr: str = "127.0.0.1", next_: str = ""):
    token = csrf_from(client, "/login")
    return client.post(
        "/login" + (f"?next={next_}" if next_ else ""),
        data={"email": email, "password": password, "csrf_token": token},
        environ_base={"REMOTE_ADDR": addr},
    )


def _error(res) -> str:
    match = re.search(r'role="alert"[^>]*>([^<]*)<', res.get_data(as_text=True))
    return match.group(1) if match else ""


def _signed_in(client) -> bool:
    return client.get("/staff").status_code == 200


# --- throttling and lock-out ----------------------------------------------------------------


def test_five_wrong_passwords_lock_the_account_even_against_the_right_one(client, city):
    email = "dispatcher@city.example"
    for _ in range(4):
        res = _sign_in(client, email, WRONG)
        assert res.status_code == 401
        assert _error(res) == "The e-mail address or the password is not right."
    fifth = _sign_in(client, email, WRONG)
    assert fifth.status_code == 429
    assert _error(fifth) == LOCKED
    assert int(fifth.headers["Retry-After"]) == 900
    # The owner, from another address, with the right password: still refused.
    right = _sign_in(client, email, PASSWORD, addr="198.51.100.7")
    assert right.status_code == 429 and _error(right) == LOCKED
    assert 0 < int(right.headers["Retry-After"]) <= 900
    assert not _signed_in(client)
    # Other accounts are not locked by it.
    assert _sign_in(client, "planner@city.example", PASSWORD).status_code == 302


def test_a_lock_out_does_not_tell_whether_the_account_exists(client, city):
    answers = {}
    for email in ("admin@city.example", "nobody@city.example"):
        for _ in range(5):
            res = _sign_in(client, email, WRONG, addr="192.0.2.10")
        again = _sign_in(client, email, WRONG, addr="192.0.2.10")
        answers[email] = (res.status_code, _error(res), again.status_code, _error(again))
    assert answers["admin@city.example"] == answers["nobody@city.example"]
    assert answers["nobody@city.example"] == (429, LOCKED, 429, LOCKED)


def test_every_app_process_shares_the_count(settings, engine, city):
    # Two app instances stand for two gunicorn workers (or two machines).
    first = _new_app(settings, engine).test_client()
    second = _new_app(settings, engine).test_client()
    for client in (first, second, first, second):
        assert _sign_in(client, "crew@city.example", WRONG).status_code == 401
    assert _sign_in(first, "crew@city.example", WRONG).status_code == 429
    assert _sign_in(second, "crew@city.example", PASSWORD).status_code == 429


def test_one_client_address_guessing_many_accounts_is_locked_out(client, city):
    guesser = "203.0.113.50"
    for i in range(19):
        res = _sign_in(client, f"guess{i}@city.example", WRONG, addr=guesser)
        assert res.status_code == 401
    assert _sign_in(client, "guess19@city.example", WRONG, addr=guesser).status_code == 429
    # Even a right password does not get in from that address now...
    blocked = _sign_in(client, "agent@city.example", PASSWORD, addr=guesser)
    assert blocked.status_code == 429 and _error(blocked) == LOCKED
    # ...while the same account signs in from elsewhere.
    assert _sign_in(client, "agent@city.example", PASSWORD, addr="198.51.100.8").status_code == 302


def test_a_success_clears_the_account_count(client, city):
    email = "planner@city.example"
    for _ in range(4):
        assert _sign_in(client, email, WRONG).status_code == 401
    assert _sign_in(client, email, PASSWORD).status_code == 302
    client.post("/logout", data={"csrf_token": csrf_from(client, "/staff")})
    for _ in range(4):
        assert _sign_in(client, email, WRONG).status_code == 401
    assert _sign_in(client, email, PASSWORD).status_code == 302


def test_an_admin_can_end_a_lock_out_from_the_command_line(client, city, cli):
    for _ in range(5):
        _sign_in(client, "crew@city.example", WRONG, addr="192.0.2.60")
    assert _sign_in(client, "crew@city.example", PASSWORD).status_code == 429
    res = cli("users", "unlock", "--email", "CREW@city.example")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "sign-in lock-out ended for crew@city.example"
    assert _sign_in(client, "crew@city.example", PASSWORD).status_code == 302
    res = cli("users", "unlock", "--email", "ghost@city.example")
    assert res.returncode == 1
    assert res.stderr.strip() == "civicpin: error: no user with e-mail ghost@city.example"


def test_the_next_lock_out_lasts_twice_as_long(client, city, engine):
    email = "agent@city.example"
    for _ in range(5):
        res = _sign_in(client, email, WRONG, addr="192.0.2.20")
    assert int(res.headers["Retry-After"]) == 900
    # Time passes: the lock-out and its window are over.
    with engine.begin() as conn:
        conn.execute(
            sa.update(SigninAttempt).values(
                locked_until=sa.func.now() - sa.text("interval '1 second'"),
                window_start=sa.func.now() - sa.text("interval '16 minutes'"),
            )
        )
    assert _sign_in(client, email, WRONG, addr="192.0.2.21").status_code == 401
    for _ in range(4):
        res = _sign_in(client, email, WRONG, addr="192.0.2.21")
    assert res.status_code == 429 and int(res.headers["Retry-After"]) == 1800
    assert _error(res) == "Too many failed sign-ins. Try again in 30 minutes."


def test_failures_at_the_same_moment_are_all_counted(engine, sessions):
    threads, each = 8, 5
    barrier = threading.Barrier(threads)
    errors = []

    def guess():
        try:
            barrier.wait()
            for _ in range(each):
                with sessions.begin() as s:
                    record_failure(
                        s,
                        "target@city.example",
                        "192.0.2.30",
                        account_limit=(1000, 15),
                        client_limit=(1000, 15),
                    )
        except Exception as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=guess) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    with engine.connect() as conn:
        counts = conn.execute(sa.select(SigninAttempt.kind, SigninAttempt.failures)).all()
    assert sorted(counts) == [("account", threads * each), ("client", threads * each)]


def test_the_attempt_table_keeps_no_address(client, city, engine):
    _sign_in(client, "typo-of-a-secret@city.example", WRONG, addr="192.0.2.40")
    with engine.connect() as conn:
        stored = " ".join(
            str(v) for row in conn.execute(sa.select(SigninAttempt)).all() for v in row
        )
    assert "typo-of-a-secret" not in stored and "192.0.2.40" not in stored


def test_unknown_addresses_take_as_long_as_known_ones(settings, engine, city):
    # Limits out of the way: this measures the answer, not the lock-out.
    client = _new_app(
        settings, engine, signin_account_limit=(1000, 15), signin_client_limit=(1000, 15)
    ).test_client()
    _sign_in(client, "dispatcher@city.example", WRONG)  # warm up both paths
    _sign_in(client, "nobody@city.example", WRONG)
    known, unknown = [], []
    for i in range(15):
        for email, times in (
            ("dispatcher@city.example", known),
            (f"nobody{i}@city.example", unknown),
        ):
            token = csrf_from(client, "/login")
            started = time.perf_counter()
            res = client.post(
                "/login", data={"email": email, "password": WRONG, "csrf_token": token}
            )
            times.append(time.perf_counter() - started)
            assert res.status_code == 401
    ratio = statistics.median(known) / statistics.median(unknown)
    assert 0.5 < ratio < 2, (statistics.median(known), statistics.median(unknown))


def test_an_empty_form_is_answered_and_not_counted(client, city, engine):
    res = client.post(
        "/login",
        data={"email": "", "password": "", "csrf_token": csrf_from(client, "/login")},
    )
    assert res.status_code == 400
    assert _error(res) == "Enter your e-mail address and your password."
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(SigninAttempt)).scalar() == 0


def test_limits_are_settings_and_bad_values_are_refused(cli):
    assert load_settings({**KEY, "SIGNIN_ACCOUNT_LIMIT": "3/10"}).signin_account_limit == (3, 10)
    assert load_settings(KEY).signin_client_limit == (20, 15)
    for name, value in (
        ("SIGNIN_ACCOUNT_LIMIT", "5"),
        ("SIGNIN_ACCOUNT_LIMIT", "1/15"),
        ("SIGNIN_CLIENT_LIMIT", "20/0"),
        ("SIGNIN_CLIENT_LIMIT", "many/15"),
        ("DEMO_MAIL_PAGE", "maybe"),
    ):
        with pytest.raises(SettingsError, match=name):
            load_settings({**KEY, name: value})
    res = cli("db", "status", env={"SIGNIN_CLIENT_LIMIT": "20 per hour"})
    assert res.returncode != 0
    assert res.stderr.strip().splitlines() == [
        "civicpin: error: SIGNIN_CLIENT_LIMIT: '20 per hour' is not FAILURES/MINUTES "
        "(2-1000 failed sign-ins in 1-1440 minutes, e.g. 5/15)"
    ]


# --- passwords ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "password, why",
    [
        ("short pw 1", "at least 12 characters"),
        ("jane.doe@city.example", "must not be the e-mail address"),
        ("JANE.DOE@CITY.EXAMPLE", "must not be the e-mail address"),
        ("jane.doe.1", "at least 12 characters"),
        ("Password1234!", "too easy to guess"),
        ("qwertyuiop12", "too easy to guess"),
        ("123456789012", "too easy to guess"),
        ("aaaaaaaaaaaaaaaa", "too easy to guess"),
        ("abababababab", "too easy to guess"),
        ("correct horse battery", None),
    ],
)
def test_password_rule(password, why):
    problem = password_problem(password, "jane.doe@city.example")
    if why is None:
        assert problem is None
    else:
        assert why in problem


def test_the_name_part_of_the_address_is_not_a_password():
    assert "e-mail address" in password_problem("firstname.lastname", "firstname.lastname@x.org")


def test_generated_passwords_pass_the_rule(sessions):
    assert all(password_problem(generate_password(), "") is None for _ in range(200))
    with sessions.begin() as s:
        _, generated = create_user(s, email="new@city.example", role="agent")
    assert password_problem(generated, "new@city.example") is None


def test_weak_passwords_are_refused_everywhere_and_nothing_is_written(cli, client, city, sessions):
    with sessions.begin() as s, pytest.raises(InvalidInput, match="too easy"):
        create_user(s, email="w@city.example", role="agent", password="Password1234")
    res = cli(
        "users",
        "create",
        "--email",
        "x@city.example",
        "--role",
        "crew",
        "--password",
        "Password!2024",
    )
    assert res.returncode == 1
    assert res.stderr.strip() == (
        "civicpin: error: password is too easy to guess: use a longer phrase of unrelated words"
    )
    res = cli("users", "password", "--email", "agent@city.example", "--password", "agent")
    assert res.returncode == 1
    assert res.stderr.strip() == "civicpin: error: password must be at least 12 characters"
    res = cli("users", "password", "--email", "ghost@city.example")
    assert res.returncode == 1 and "no user with e-mail ghost@city.example" in res.stderr
    login(client, "admin")
    page = client.post(
        "/admin/users",
        data={
            "csrf_token": csrf_from(client, "/admin/users"),
            "email": "y@city.example",
            "role": "agent",
            "password": "Welcome2026!",
        },
    )
    assert page.status_code == 400
    assert "too easy to guess" in page.get_data(as_text=True)
    with sessions() as s:
        emails = set(s.scalars(sa.select(User.email)))
    assert not emails & {"w@city.example", "x@city.example", "y@city.example"}
    assert (
        _sign_in(client.application.test_client(), "agent@city.example", PASSWORD).status_code
        == 302
    )


# --- revocable sessions ---------------------------------------------------------------------


def _copy_of(client):
    stolen = client.application.test_client()
    stolen.set_cookie("civicpin_session", client.get_cookie("civicpin_session").value)
    return stolen


def _is_sign_in_page(res) -> bool:
    return res.status_code == 302 and urlsplit(res.headers["Location"]).path == "/login"


def test_logout_ends_every_copy_of_the_cookie(client, city):
    login(client, "admin")
    stolen = _copy_of(client)
    assert stolen.get("/admin/users").status_code == 200
    client.post("/logout", data={"csrf_token": csrf_from(client, "/staff")})
    res = stolen.get("/admin/users")
    assert _is_sign_in_page(res)
    assert "Staff sign-in" in stolen.get(res.headers["Location"]).get_data(as_text=True)


def test_a_password_change_ends_the_sessions_of_that_user(client, city, cli):
    login(client, "dispatcher")
    assert client.get("/dispatch").status_code == 200
    res = cli(
        "users",
        "password",
        "--email",
        "dispatcher@city.example",
        "--password",
        "a brand new phrase 7",
    )
    assert res.returncode == 0, res.stderr
    assert _is_sign_in_page(client.get("/dispatch"))
    assert _sign_in(client, "dispatcher@city.example", PASSWORD).status_code == 401
    assert _sign_in(client, "dispatcher@city.example", "a brand new phrase 7").status_code == 302


def test_deactivation_and_a_role_change_end_the_sessions_of_that_user(app, city):
    admin, disp, planner = app.test_client(), app.test_client(), app.test_client()
    login(admin, "admin")
    login(disp, "dispatcher")
    login(planner, "planner")
    token = csrf_from(admin, "/admin/users")
    assert (
        admin.post(
            f"/admin/users/{city.users['dispatcher']}/role",
            data={"csrf_token": token, "role": "crew"},
        ).status_code
        == 302
    )
    assert _is_sign_in_page(disp.get("/staff"))
    assert (
        admin.post(
            f"/admin/users/{city.users['planner']}/active",
            data={"csrf_token": token, "active": "0"},
        ).status_code
        == 302
    )
    assert _is_sign_in_page(planner.get("/staff"))
    assert _signed_in(admin)


# --- two-factor codes -----------------------------------------------------------------------


def _enable_totp(cli, email: str) -> pyotp.TOTP:
    res = cli("users", "totp", "enable", "--email", email)
    assert res.returncode == 0, res.stderr
    uri = res.stdout.strip().splitlines()[-1]
    assert uri.startswith("otpauth://totp/")
    return pyotp.parse_uri(uri)


def _code_step(client, code: str, addr: str = "127.0.0.1"):
    token = csrf_from(client, "/login/code")
    return client.post(
        "/login/code", data={"code": code, "csrf_token": token}, environ_base={"REMOTE_ADDR": addr}
    )


def test_an_admin_with_two_factor_needs_the_code(client, city, cli):
    totp = _enable_totp(cli, "admin@city.example")
    res = _sign_in(client, "admin@city.example", PASSWORD, next_="/admin/users")
    assert res.status_code == 302 and urlsplit(res.headers["Location"]).path == "/login/code"
    # The password alone opens nothing.
    assert _is_sign_in_page(client.get("/admin/users"))
    page = client.get(res.headers["Location"]).get_data(as_text=True)
    assert "6-digit code" in page
    wrong = _code_step(client, "000000" if totp.now() != "000000" else "111111")
    assert wrong.status_code == 401 and "not right" in _error(wrong)
    token = csrf_from(client, "/login/code")
    ok = client.post(res.headers["Location"], data={"code": totp.now(), "csrf_token": token})
    assert ok.status_code == 302 and ok.headers["Location"] == "/admin/users"
    assert client.get("/admin/users").status_code == 200


def test_a_used_code_cannot_be_used_again(client, city, cli):
    totp = _enable_totp(cli, "admin@city.example")
    _sign_in(client, "admin@city.example", PASSWORD)
    code = totp.now()
    assert _code_step(client, code).status_code == 302
    client.post("/logout", data={"csrf_token": csrf_from(client, "/staff")})
    # Someone who watched the code being typed, with the password too:
    _sign_in(client, "admin@city.example", PASSWORD)
    replay = _code_step(client, code)
    assert replay.status_code == 401
    assert not _signed_in(client)


def test_codes_are_throttled_like_passwords(client, city, cli):
    totp = _enable_totp(cli, "admin@city.example")
    _sign_in(client, "admin@city.example", PASSWORD)
    right = totp.now()
    wrong = f"{(int(right) + 500000) % 1000000:06d}"
    for _ in range(4):
        assert _code_step(client, wrong).status_code == 401
    assert _code_step(client, wrong).status_code == 429
    locked = _code_step(client, totp.now())
    assert locked.status_code == 429 and _error(locked) == LOCKED
    assert not _signed_in(client)


def test_the_code_page_needs_the_password_first(client, city, cli):
    _enable_totp(cli, "admin@city.example")
    res = client.get("/login/code")
    assert _is_sign_in_page(res)
    res = client.post("/login/code", data={"code": "123456"})
    assert res.status_code in (302, 400) and not _signed_in(client)


def test_totp_cli_disable_and_errors(cli, client, city):
    _enable_totp(cli, "admin@city.example")
    res = cli("users", "totp", "disable", "--email", "admin@city.example")
    assert res.returncode == 0 and "disabled" in res.stdout
    login(client, "admin")  # the password alone is enough again
    res = cli("users", "totp", "enable", "--email", "not an address")
    assert res.returncode == 1
    assert res.stderr.startswith("civicpin: error: 'not an address' is not a valid e-mail")


def _two_factor_form(client, action: str, code: str):
    token = csrf_from(client, "/staff/two-factor")
    return client.post(
        "/staff/two-factor", data={"csrf_token": token, "action": action, "code": code}
    )


def test_staff_turn_two_factor_on_and_off_themselves(app, city):
    me, other_device = app.test_client(), app.test_client()
    login(me, "dispatcher")
    login(other_device, "dispatcher")
    page = me.get("/staff/two-factor").get_data(as_text=True)
    assert "Off." in page
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1)
    # Reloading shows the same key (the app may already have it).
    assert secret in me.get("/staff/two-factor").get_data(as_text=True)
    totp = pyotp.TOTP(secret)
    # Each code below is of a later time step than the one before (a code of the step
    # before or after the current one is accepted), so none is refused as a replay.
    assert _two_factor_form(me, "on", _wrong_code(totp)).status_code == 400
    enabling = totp.at(time.time() - 30)
    assert _two_factor_form(me, "on", enabling).status_code == 302
    assert "Two-factor sign-in is on." in me.get("/staff/two-factor").get_data(as_text=True)
    assert _signed_in(me)
    assert _is_sign_in_page(other_device.get("/staff"))
    me.post("/logout", data={"csrf_token": csrf_from(me, "/staff")})
    res = _sign_in(me, "dispatcher@city.example", PASSWORD)
    assert urlsplit(res.headers["Location"]).path == "/login/code"
    assert _code_step(me, enabling).status_code == 401  # used already
    assert _code_step(me, totp.now()).status_code == 302
    # Off needs a current code, not just the session.
    assert _two_factor_form(me, "off", _wrong_code(totp)).status_code == 400
    assert "On." in me.get("/staff/two-factor").get_data(as_text=True)
    assert _two_factor_form(me, "off", totp.at(time.time() + 30)).status_code == 302
    assert "Off." in me.get("/staff/two-factor").get_data(as_text=True)
    me.post("/logout", data={"csrf_token": csrf_from(me, "/staff")})
    # Signed in without a "next", a dispatcher lands on their workspace.
    assert _sign_in(me, "dispatcher@city.example", PASSWORD).headers["Location"] == "/dispatch"


def _wrong_code(totp: pyotp.TOTP) -> str:
    right = {totp.at(time.time() + d) for d in (-30, 0, 30)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in right)


# --- tokens out of the access logs ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request_and_stop(proc, port: int, path: str) -> str:
    """GET ``path`` once the server listens; stop it; return what it logged."""
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", path)
            conn.getresponse().read()
            conn.close()
            break
        except OSError:
            assert time.monotonic() < deadline, "the server did not listen"
            time.sleep(0.2)
    time.sleep(0.5)  # the log line is written after the response
    proc.send_signal(signal.SIGTERM if "gunicorn" in proc.args[0] else signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return out + err


def _env(db_url, tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "VAR_DIR"}}
    env.update(
        DATABASE_URL=db_url,
        VAR_DIR=str(tmp_path / "var"),
        SECRET_KEY="test-secret-key-0123456789",
        WEB_CONCURRENCY="1",
    )
    return env


def test_gunicorn_access_log_has_no_query_string(db_url, tmp_path):
    port = _free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), "-c", "gunicorn.conf.py"]
        + ["-b", f"127.0.0.1:{port}", "--access-logfile", "-", "webmap.wsgi:app"],
        cwd=PROJECT_ROOT,
        env=_env(db_url, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = _request_and_stop(proc, port, "/requests/LA-0001?token=SECRET-TOKEN-123")
    assert '"GET /requests/LA-0001 HTTP/1.1"' in log
    assert "SECRET-TOKEN" not in log and "token=" not in log


def test_development_server_log_has_no_query_string(db_url, tmp_path):
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "webmap.cli", "serve", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=_env(db_url, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = _request_and_stop(proc, port, "/requests/LA-0001?token=SECRET-TOKEN-456")
    assert "GET /requests/LA-0001 HTTP/1.1" in log
    assert "SECRET-TOKEN" not in log and "token=" not in log
