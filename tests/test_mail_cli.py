"""The mail commands as a person runs them: ``civicpin mail address|config|template``,
``civicpin mail-intake`` as a real server process, and ``civicpin mail-poll`` against a
real dovecot IMAP server on loopback, configured and started by the test."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa
from imapclient import IMAPClient

from notify.worker import wait_for_port
from spatial.models import InboundEmail, OutboxMessage, RequestEvent, ServiceRequest
from spatial.models_mail import MailAddress, MailConfig
from spatial.settings import PROJECT_ROOT
from tests.support.mail import INTAKE, RESIDENT, free_port, make_mail_city, mime, smtp_send

DOVECOT = "/usr/sbin/dovecot"


@pytest.fixture
def city(sessions):
    with sessions.begin() as s:
        return make_mail_city(s)


def test_address_add_validates_before_writing(cli, sessions, city):
    res = cli(
        "mail",
        "address",
        "add",
        "--city",
        "testville",
        "potholes@testville.example",
        "--category",
        "pothole",
    )
    # A required question does not refuse the address: without a default, such requests
    # wait for the dispatcher's answers.
    assert res.returncode == 0, res.stderr
    assert "required questions without a default (depth)" in res.stdout
    assert cli("mail", "address", "remove", "potholes@testville.example").returncode == 0
    res = cli(
        "mail",
        "address",
        "add",
        "--city",
        "nowhere",
        "x@testville.example",
        "--category",
        "general",
    )
    assert res.returncode == 1 and "no city with slug 'nowhere'" in res.stderr
    res = cli(
        "mail", "address", "add", "--city", "testville", "not-an-address", "--category", "general"
    )
    assert res.returncode == 1 and "is not an e-mail address" in res.stderr
    res = cli("mail", "address", "add", "--city", "testville", INTAKE, "--category", "general")
    assert res.returncode == 1 and "already an intake address of testville" in res.stderr
    res = cli("mail", "address", "add", "--city", "testville", "x@testville.example")
    assert res.returncode != 0 and "--category" in res.stderr
    with sessions() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(MailAddress)) == 2

    res = cli(
        "mail",
        "address",
        "add",
        "--city",
        "testville",
        "Streets@Testville.example",
        "--department",
        "streets",
    )
    assert res.returncode == 0, res.stderr
    assert "'general' requests of testville, department streets" in res.stdout
    listing = cli("mail", "address", "list", "--city", "testville").stdout
    assert "streets@testville.example\tcategory=general\tdepartment=streets" in listing
    assert cli("mail", "address", "remove", "streets@testville.example").returncode == 0
    assert "streets@testville.example" not in cli("mail", "address", "list").stdout


def test_mail_config_and_templates(cli, sessions, city, tmp_path):
    res = cli(
        "mail",
        "config",
        "--city",
        "testville",
        "--dispatch-email",
        "desk@testville.example",
        "--reply-limit",
        "3",
    )
    assert res.returncode == 0, res.stderr
    assert "dispatch alerts to desk@testville.example" in res.stdout
    with sessions() as s:
        cfg = s.get(MailConfig, city["city"].id)
        assert (cfg.dispatch_email, cfg.reply_limit_per_hour) == ("desk@testville.example", 3)
    assert cli("mail", "config", "--city", "testville", "--dispatch-email", "nope").returncode == 1

    assert (
        "status_change        default"
        in cli("mail", "template", "list", "--city", "testville").stdout
    )
    good = tmp_path / "t.txt"
    good.write_text("Update: $public_id\n\nNow $status.\n$unsubscribe_url\n")
    assert (
        cli("mail", "template", "set", "--city", "testville", "status_change", str(good)).returncode
        == 0
    )
    shown = cli("mail", "template", "show", "--city", "testville", "status_change")
    assert shown.stdout.startswith("Update: $public_id\n\nNow $status.")
    bad = tmp_path / "bad.txt"
    bad.write_text("Update: $publc_id\n\nbody $unsubscribe_url\n")
    res = cli("mail", "template", "set", "--city", "testville", "status_change", str(bad))
    assert res.returncode == 1 and "$publc_id" in res.stderr
    assert (
        "Update: $public_id"
        in cli("mail", "template", "show", "--city", "testville", "status_change").stdout
    )
    assert cli("mail", "template", "reset", "--city", "testville", "status_change").returncode == 0
    assert (
        "status_change        default"
        in cli("mail", "template", "list", "--city", "testville").stdout
    )


def test_mail_config_sets_the_trusted_gateway_and_the_cap_per_address(cli, sessions, city):
    res = cli(
        "mail",
        "config",
        "--city",
        "testville",
        "--trusted-authserv-id",
        "MX.Testville.example",
        "--address-reply-limit",
        "50",
    )
    assert res.returncode == 0, res.stderr
    assert "50/h per intake address" in res.stdout
    assert "Authentication-Results trusted from mx.testville.example" in res.stdout
    with sessions() as s:
        cfg = s.get(MailConfig, city["city"].id)
        assert (cfg.trusted_authserv_id, cfg.address_reply_limit_per_hour) == (
            "mx.testville.example",
            50,
        )
    for bad in (
        ("--trusted-authserv-id", "mx.example.org; dmarc=pass"),
        ("--address-reply-limit", "-1"),
    ):
        res = cli("mail", "config", "--city", "testville", *bad)
        assert res.returncode != 0
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert (
        "is not an authserv-id"
        in cli("mail", "config", "--city", "testville", "--trusted-authserv-id", "a b").stderr
    )
    with sessions() as s:
        assert s.get(MailConfig, city["city"].id).trusted_authserv_id == "mx.testville.example"
    res = cli("mail", "config", "--city", "testville", "--trusted-authserv-id", "")
    assert "no trusted mail gateway" in res.stdout
    with sessions() as s:
        assert s.get(MailConfig, city["city"].id).trusted_authserv_id is None


def _env(db_url, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "VAR_DIR", "SMTP_URL"}}
    env.update(DATABASE_URL=db_url, VAR_DIR=str(tmp_path / "var"))
    return env


def test_mail_intake_command_serves_smtp_until_stopped(sessions, city, db_url, tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "webmap.cli",
            "mail-intake",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=_env(db_url, tmp_path),
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_for_port("127.0.0.1", port, timeout=30), (
            proc.stderr.read() if proc.poll() else ""
        )
        code, text = smtp_send(port, mime("Pothole", "Hole at 100 N Main St"))
        assert code == 250 and "Received as TV-" in text
        code, text = smtp_send(port, mime(to="x@nowhere.example"), rcpt="x@nowhere.example")
        assert code == 550
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert f"listening on 127.0.0.1:{port}" in err
    finally:
        if proc.poll() is None:
            proc.kill()
    with sessions() as s:
        (req,) = s.scalars(sa.select(ServiceRequest)).all()
        assert req.channel == "email" and req.address == "100 N MAIN ST, 90012"


def test_mail_intake_command_reports_a_busy_port(cli, city):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = cli("mail-intake", "--port", str(port))
    assert res.returncode != 0 and f"127.0.0.1:{port}" in res.stderr
    assert "Traceback" not in res.stderr


# --- IMAP against a real dovecot ------------------------------------------------------


@pytest.fixture
def dovecot():
    """A dovecot IMAP server on loopback with one mailbox (plaintext login, no TLS)."""
    assert Path(DOVECOT).exists(), "dovecot is not installed: apt-get install dovecot-imapd"
    base = Path(tempfile.mkdtemp(prefix="civicpin-dovecot-"))
    os.chmod(base, 0o755)
    for sub in ("mail", "home", "run", "state"):
        (base / sub).mkdir()
    # Mail processes run as "nobody" (dovecot refuses root): they must reach these folders.
    os.chmod(base / "mail", 0o777)
    os.chmod(base / "home", 0o777)
    port = free_port()
    (base / "passwd").write_text("city311:{PLAIN}imap-secret-1\n")
    conf = base / "dovecot.conf"
    conf.write_text(
        f"""
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{base}/mail/%u
default_login_user = dovenull
default_internal_user = dovecot
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/passwd
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={base}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""
    )
    proc = subprocess.Popen([DOVECOT, "-F", "-c", str(conf)], stderr=subprocess.PIPE)
    try:
        assert wait_for_port("127.0.0.1", port, timeout=20), (base / "dovecot.log").read_text()
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(base, ignore_errors=True)


def _append(port: int, *messages) -> None:
    with IMAPClient("127.0.0.1", port=port, ssl=False) as client:
        client.login("city311", "imap-secret-1")
        for msg in messages:
            raw = msg if isinstance(msg, bytes) else msg.as_bytes()
            client.append("INBOX", raw)


def _flags(port: int) -> list[bool]:
    with IMAPClient("127.0.0.1", port=port, ssl=False) as client:
        client.login("city311", "imap-secret-1")
        client.select_folder("INBOX", readonly=True)
        data = client.fetch(client.search(["ALL"]), ["FLAGS"])
        return [b"\\Seen" in data[uid][b"FLAGS"] for uid in sorted(data)]


def test_mail_poll_processes_unseen_mail_and_marks_it_seen(cli, sessions, city, dovecot):
    url = f"imap://city311:imap-secret-1@127.0.0.1:{dovecot}"
    # Mailbox mail names the intake address only in its headers (no SMTP envelope).
    _append(
        dovecot,
        mime("Pothole", "A hole at 250 W 1st St", message_id="<i1@example.org>"),
        mime(
            "Out of office",
            "Away",
            message_id="<i2@example.org>",
            headers={"Auto-Submitted": "auto-replied"},
        ),
    )
    res = cli("mail-poll", "--url", url)
    assert res.returncode == 0, res.stderr
    assert "1 created, 1 ignored_auto_reply" in res.stdout
    assert _flags(dovecot) == [True, True]
    with sessions() as s:
        (req,) = s.scalars(sa.select(ServiceRequest)).all()
        assert req.channel == "email" and req.contact_email == RESIDENT
        assert (
            s.scalar(sa.select(sa.func.count()).where(OutboxMessage.kind == "acknowledgement")) == 1
        )
    # a follow-up mentioning the reference, to a mailbox whose headers name no intake address
    _append(
        dovecot,
        mime(
            f"Re: [{req.public_id}] pothole",
            "It is deeper now.",
            to="someone@else.example",
            message_id="<i3@example.org>",
        ),
    )
    res = cli("mail-poll", "--url", url)
    assert "1 unknown_recipient" in res.stdout
    res = cli("mail-poll", "--url", url, "--address", INTAKE)
    assert "no new mail" in res.stdout  # already seen: the unknown one is not retried
    _append(
        dovecot,
        mime(
            f"Re: [{req.public_id}] pothole",
            "It is deeper now.",
            to="someone@else.example",
            message_id="<i4@example.org>",
        ),
    )
    res = cli("mail-poll", "--url", url, "--address", INTAKE)
    # No mail gateway vouches for the sender here: a note, marked unverified.
    assert "1 note_unverified" in res.stdout, res.stdout + res.stderr
    with sessions() as s:
        notes = s.scalars(sa.select(RequestEvent.note).where(RequestEvent.kind == "note")).all()
        assert any("It is deeper now." in n and "unverified sender" in n for n in notes)
        outcomes = s.scalars(sa.select(InboundEmail.outcome).order_by(InboundEmail.id)).all()
        assert outcomes == ["created", "ignored_auto_reply", "unknown_recipient", "note_unverified"]


def test_mail_poll_refuses_oversized_mail_by_reply(cli, sessions, city, dovecot):
    _append(
        dovecot,
        mime(
            "Photos",
            "See attached",
            message_id="<big@example.org>",
            attachments=[("a.jpg", "image/jpeg", os.urandom(2 * 1024 * 1024))],
        ),
    )
    url = f"imap://city311:imap-secret-1@127.0.0.1:{dovecot}"
    res = cli("mail-poll", "--url", url, "--max-message-mb", "1")
    assert "1 too_large" in res.stdout, res.stderr
    with sessions() as s:
        (reply,) = s.scalars(sa.select(OutboxMessage)).all()
        assert reply.kind == "intake_refused" and reply.to_addr == RESIDENT
        assert "over the 1 MB limit" in reply.body_text
        assert reply.headers["In-Reply-To"] == "<big@example.org>"
        assert s.scalar(sa.select(sa.func.count()).select_from(ServiceRequest)) == 0


def test_mail_poll_reports_bad_login_in_one_line(cli, city, dovecot):
    res = cli("mail-poll", "--url", f"imap://city311:wrong@127.0.0.1:{dovecot}")
    assert res.returncode == 1
    assert "IMAP login as 'city311' refused" in res.stderr and "Traceback" not in res.stderr
    closed = free_port()
    res = cli("mail-poll", "--url", f"imap://u:p@127.0.0.1:{closed}")
    assert res.returncode == 1 and "cannot connect to IMAP server" in res.stderr
