"""The embedded PostgreSQL + PostGIS cluster used when ``DATABASE_URL`` is unset.

The cluster lives under ``<var>/pgdata`` and listens on loopback only, on a port chosen
when it is created, with a generated password (kept in ``<var>/embedded-db.json``, mode
0600). PostgreSQL refuses to run as root, so when we are root the server runs as the
``postgres`` OS user; if that user cannot reach ``<var>`` (a checkout under ``/root``),
the data lives in ``/var/lib/civicpin/<hash>`` and ``<var>/pgdata`` is a link to it.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

DB_NAME = "civicpin"
DB_USER = "civicpin"
DRIVER = "postgresql+psycopg"  # SQLAlchemy dialect + driver: psycopg 3
INSTALL_HINT_PG = (
    "PostgreSQL server binaries not found: install them "
    "(Debian/Ubuntu: apt-get install postgresql postgresql-15-postgis-3) or set DATABASE_URL"
)
INSTALL_HINT_POSTGIS = (
    "PostGIS is not installed for PostgreSQL {major}: "
    "apt-get install postgresql-{major}-postgis-3 (or set DATABASE_URL)"
)


class EmbeddedDatabaseError(RuntimeError):
    """The embedded cluster could not be created or started; one-line message."""


def shared_buffers_mb() -> int:
    """An eighth of the machine's memory, between 128 MB and 2 GB (PostgreSQL's own
    advice is a quarter on a dedicated server; this one shares the machine with the app)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 256
    return max(128, min(2048, total // 8 // 2**20))


@dataclass(frozen=True)
class ServerBinaries:
    bindir: Path
    major: int

    def __getitem__(self, name: str) -> str:
        return str(self.bindir / name)


def find_server_binaries(
    path: str | None = None, search_root: str = "/usr/lib/postgresql"
) -> ServerBinaries:
    """Locate ``initdb``/``pg_ctl`` via ``pg_config --bindir`` or ``/usr/lib/postgresql``.

    ``path`` (default ``$PATH``) and ``search_root`` say where to look.
    """
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config", path=path)
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
            candidates.append(Path(out))
        except (subprocess.SubprocessError, OSError):
            pass
    versioned = sorted(
        glob.glob(os.path.join(search_root, "*", "bin")),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates += [Path(p) for p in versioned]
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return ServerBinaries(bindir, _major_version(bindir))
    raise EmbeddedDatabaseError(INSTALL_HINT_PG)


def _major_version(bindir: Path) -> int:
    out = subprocess.run(
        [str(bindir / "pg_ctl"), "--version"], capture_output=True, text=True, timeout=10
    ).stdout
    # "pg_ctl (PostgreSQL) 15.18 (Debian ...)"
    for token in out.split():
        head = token.split(".")[0]
        if head.isdigit():
            return int(head)
    raise EmbeddedDatabaseError(f"cannot tell the PostgreSQL version from {out.strip()!r}")


def postgis_available(binaries: ServerBinaries) -> bool:
    """True if the PostGIS extension files are installed for this server."""
    sharedirs = glob.glob(f"/usr/share/postgresql/{binaries.major}/extension")
    try:
        out = subprocess.run(
            [str(binaries.bindir / "pg_config"), "--sharedir"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        if out:
            sharedirs.append(os.path.join(out, "extension"))
    except (OSError, subprocess.SubprocessError):
        pass
    return any(glob.glob(os.path.join(d, "postgis.control")) for d in sharedirs)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class EmbeddedCluster:
    """A private PostgreSQL cluster under ``var_dir``; create, start, stop, connect."""

    def __init__(self, var_dir: Path):
        self.var_dir = Path(var_dir).resolve()
        self.link = self.var_dir / "pgdata"
        self.state_file = self.var_dir / "embedded-db.json"
        self.as_root = os.geteuid() == 0
        self._binaries: ServerBinaries | None = None

    # -- facts -------------------------------------------------------------------------
    @property
    def binaries(self) -> ServerBinaries:
        if self._binaries is None:
            self._binaries = find_server_binaries()
        return self._binaries

    @property
    def pgdata(self) -> Path:
        return self.link.resolve() if self.link.is_symlink() else self.link

    @property
    def logfile(self) -> Path:
        return self.pgdata.parent / "postgres.log"

    def exists(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists() and self.state_file.exists()

    def state(self) -> dict:
        return json.loads(self.state_file.read_text())

    def url(self, dbname: str = DB_NAME) -> str:
        st = self.state()
        return f"{DRIVER}://{DB_USER}:{st['password']}@127.0.0.1:{st['port']}/{dbname}"

    # -- running commands as the server's OS user -------------------------------------
    def _run(self, args: list[str], check: bool = True, timeout: int = 120):
        program = os.path.basename(args[0])
        if self.as_root:
            args = ["runuser", "-u", "postgres", "--", *args]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            last = detail[-1] if detail else f"exit status {proc.returncode}"
            raise EmbeddedDatabaseError(f"{program} failed: {last} (log: {self.pgdata}/server.log)")
        return proc

    def _server_user_can_reach(self, path: Path) -> bool:
        if not self.as_root:
            return True
        proc = subprocess.run(
            ["runuser", "-u", "postgres", "--", "test", "-w", str(path)],
            capture_output=True,
        )
        return proc.returncode == 0

    # -- lifecycle ---------------------------------------------------------------------
    def create(self) -> None:
        """initdb a new cluster with a generated password; no-op if it exists."""
        if self.exists():
            return
        binaries = self.binaries
        if not postgis_available(binaries):
            raise EmbeddedDatabaseError(INSTALL_HINT_POSTGIS.format(major=binaries.major))
        if self.as_root:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise EmbeddedDatabaseError(
                    "running as root needs the 'postgres' OS user "
                    "(apt-get install postgresql creates it)"
                ) from None
        self.var_dir.mkdir(parents=True, exist_ok=True)
        target = self.link
        if self.as_root:
            pg = pwd.getpwnam("postgres")
            # postgres must be able to traverse to the data directory's parent.
            probe = self.var_dir / ".pgprobe"
            probe.mkdir(exist_ok=True)
            os.chown(probe, pg.pw_uid, pg.pw_gid)
            reachable = self._server_user_can_reach(probe)
            probe.rmdir()
            if not reachable:
                digest = hashlib.sha1(str(self.var_dir).encode()).hexdigest()[:12]
                base = Path("/var/lib/civicpin") / digest
                base.mkdir(parents=True, exist_ok=True)
                os.chown(base, pg.pw_uid, pg.pw_gid)
                target = base / "pgdata"
                if self.link.is_symlink() or self.link.exists():
                    if self.link.is_symlink():
                        self.link.unlink()
                    else:
                        shutil.rmtree(self.link)
                self.link.symlink_to(target)
        if target.exists():
            shutil.rmtree(target)  # a half-made cluster from an interrupted run
        target.mkdir(parents=True, mode=0o700)
        password = secrets.token_urlsafe(24)
        with tempfile.NamedTemporaryFile("w", delete=False, dir="/tmp", prefix="civicpin-pw") as f:
            f.write(password + "\n")
            pwfile = f.name
        try:
            if self.as_root:
                pg = pwd.getpwnam("postgres")
                os.chown(target, pg.pw_uid, pg.pw_gid)
                os.chown(pwfile, pg.pw_uid, pg.pw_gid)
            os.chmod(pwfile, 0o600)
            self._run(
                [
                    binaries["initdb"],
                    "-D",
                    str(target),
                    "-U",
                    DB_USER,
                    "--pwfile",
                    pwfile,
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ],
                timeout=300,
            )
        finally:
            os.unlink(pwfile)
        with open(target / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# civicpin embedded defaults\n"
                "listen_addresses = '127.0.0.1'\n"
                "unix_socket_directories = ''\n"
                "fsync = on\n"
                f"shared_buffers = '{shared_buffers_mb()}MB'\n"
                "work_mem = '32MB'\n"
                "maintenance_work_mem = '256MB'\n"
                "max_connections = 200\n"
                "jit = off\n"
                # Bulk routing and imports rewrite a million rows: with the 1 GB default a
                # checkpoint (and full-page images in the WAL) came every few seconds.
                "max_wal_size = '4GB'\n"
                "checkpoint_timeout = '15min'\n"
                "wal_compression = on\n"
            )
        state = {"port": _free_port(), "password": password, "major": binaries.major}
        fd = os.open(self.state_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(state, fh)

    def is_running(self) -> bool:
        if not self.exists():
            return False
        proc = self._run([self.binaries["pg_ctl"], "-D", str(self.pgdata), "status"], check=False)
        return proc.returncode == 0

    def start(self) -> None:
        """Start the server if it is not running and wait until it accepts connections."""
        self.create()
        if self.is_running():
            return
        st = self.state()
        if _port_in_use(st["port"]):
            st["port"] = _free_port()
            fd = os.open(self.state_file, os.O_WRONLY | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(st, fh)
        self._run(
            [
                self.binaries["pg_ctl"],
                "-D",
                str(self.pgdata),
                "-l",
                str(self.pgdata / "server.log"),
                "-w",
                "-t",
                "120",
                "-o",
                f"-p {int(st['port'])}",
                "start",
            ],
            timeout=180,
        )
        self._ensure_database()

    def stop(self) -> bool:
        """Stop the server; returns False if it was not running."""
        if not self.is_running():
            return False
        self._run([self.binaries["pg_ctl"], "-D", str(self.pgdata), "-m", "fast", "-w", "stop"])
        return True

    def _ensure_database(self) -> None:
        import psycopg

        st = self.state()
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = psycopg.connect(
                    host="127.0.0.1",
                    port=st["port"],
                    user=DB_USER,
                    password=st["password"],
                    dbname="postgres",
                )
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{DB_NAME}"')
        conn.close()
