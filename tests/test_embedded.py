"""The embedded cluster launcher: finding binaries, running as root, clear failures."""

import os
import shutil
import stat
import subprocess

import psycopg
import pytest

from spatial.embedded import (
    EmbeddedCluster,
    EmbeddedDatabaseError,
    find_server_binaries,
)


def test_finds_the_installed_server():
    b = find_server_binaries()
    assert (b.bindir / "initdb").exists()
    assert b.major >= 13


def test_missing_postgresql_says_what_to_install(tmp_path):
    with pytest.raises(EmbeddedDatabaseError) as err:
        find_server_binaries(path=str(tmp_path), search_root=str(tmp_path))
    msg = str(err.value)
    assert "\n" not in msg and "apt-get install postgresql" in msg


def test_pg_config_is_preferred(tmp_path):
    real = find_server_binaries()
    fake = tmp_path / "bin"
    fake.mkdir()
    script = fake / "pg_config"
    script.write_text(f"#!/bin/sh\necho {real.bindir}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    found = find_server_binaries(path=str(fake), search_root=str(tmp_path / "none"))
    assert found.bindir == real.bindir


def test_cluster_in_a_folder_the_server_user_cannot_reach(tmp_path_factory):
    """A checkout under a private home (0700) still gets a working cluster when root."""
    base = tmp_path_factory.mktemp("private")
    os.chmod(base, 0o700)
    cluster = EmbeddedCluster(base / "var")
    try:
        cluster.start()
        # as root the server runs as 'postgres', which cannot enter a 0700 folder:
        # the data then lives under /var/lib/civicpin with var/pgdata linking to it
        assert (base / "var" / "pgdata").is_symlink() == (os.geteuid() == 0)
        st = cluster.state()
        assert oct((base / "var" / "embedded-db.json").stat().st_mode & 0o777) == "0o600"
        conn = psycopg.connect(
            host="127.0.0.1",
            port=st["port"],
            user="civicpin",
            password=st["password"],
            dbname="civicpin",
        )
        with conn.cursor() as cur:
            cur.execute("SELECT current_user")
            assert cur.fetchone()[0] == "civicpin"
        conn.close()
        # the server process is not root
        out = subprocess.run(
            ["ps", "-o", "user=", "-C", "postgres"], capture_output=True, text=True
        ).stdout.split()
        assert "root" not in out
        # a wrong password is refused: the cluster is not open to anyone on the machine
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(
                host="127.0.0.1",
                port=st["port"],
                user="civicpin",
                password="wrong",
                dbname="civicpin",
            )
        # stop and start again keep the data
        assert cluster.stop() is True
        assert cluster.is_running() is False
        cluster.start()
        assert cluster.is_running()
    finally:
        cluster.stop()
        target = cluster.pgdata
        shutil.rmtree(target.parent, ignore_errors=True)
