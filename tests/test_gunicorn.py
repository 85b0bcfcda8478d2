"""The production server settings (gunicorn.conf.py, used by the Dockerfile, compose and
the Open311 benchmark) serve the app: worker processes, threads and keep-alive."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from spatial.settings import PROJECT_ROOT

CONF = PROJECT_ROOT / "gunicorn.conf.py"


def _settings(env: dict) -> dict:
    namespace: dict = {}
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        exec(CONF.read_text(), namespace)  # noqa: S102 - the project's own settings file
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return namespace


def test_two_workers_per_core_with_two_threads_unless_told_otherwise():
    default = _settings({})
    assert default["worker_class"] == "gthread"
    assert default["workers"] == 2 * (os.cpu_count() or 1)
    assert default["threads"] == 2 and default["keepalive"] >= 5
    told = _settings({"WEB_CONCURRENCY": "3", "GUNICORN_THREADS": "4"})
    assert (told["workers"], told["threads"]) == (3, 4)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> int:
    count = 0
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            count += int(stat[1]) == pid
    return count


def test_gunicorn_with_these_settings_serves_the_demo_city(demo_db_url, tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "VAR_DIR"}}
    env.update(
        DATABASE_URL=demo_db_url,
        VAR_DIR=str(tmp_path / "var"),
        SECRET_KEY="test-secret-key-0123456789",
        WEB_CONCURRENCY="2",
    )
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), "-c", str(CONF)]
        + ["-b", f"127.0.0.1:{port}", "webmap.wsgi:app"],
        cwd=PROJECT_ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        conn = None
        while conn is None:
            assert proc.poll() is None, proc.stderr.read()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.connect()
            except OSError:
                conn = None
                assert time.monotonic() < deadline, "gunicorn did not listen"
                time.sleep(0.2)
        # two requests on one keep-alive connection
        for _ in range(2):
            conn.request("GET", "/open311/v2/services.json")
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200, body[:300]
            assert resp.getheader("Connection", "").lower() != "close"
            assert any(s["service_code"] for s in json.loads(body))
        conn.close()
        assert _children(proc.pid) == 2  # the worker processes
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
