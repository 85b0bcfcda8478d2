"""The one typed settings object, read from the environment once and validated.

Nothing reads configuration at import time: call :func:`load_settings` where the
process starts (the CLI, the WSGI entry point, the tests) and pass the object on.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """A bad configuration value; the message is one line naming the variable."""


@dataclass(frozen=True)
class Settings:
    """Configuration of one civicpin process.

    ``database_url`` is ``None`` when the embedded PostGIS cluster under ``var_dir``
    is to be used.
    """

    database_url: str | None = None
    secret_key: str = ""
    var_dir: Path = PROJECT_ROOT / "var"
    media_dir: Path = PROJECT_ROOT / "var" / "media"
    smtp_url: str | None = None
    mail_from: str = "civicpin <noreply@localhost>"
    public_base_url: str = "http://127.0.0.1:5000"
    tile_url: str = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    tile_attribution: str = "&copy; OpenStreetMap contributors"
    host: str = "127.0.0.1"
    port: int = 5000
    default_city: str | None = None
    log_level: str = "INFO"
    open311_rate_limit: str = "10/60"
    report_rate_limit: str = "0.0083/5"
    duplicate_radius_m: float = 50.0
    # Failed sign-ins (failures, minutes): that many in that many minutes lock the account
    # or the client address out for as many minutes, doubling with each later lock-out.
    signin_account_limit: tuple[int, int] = (5, 15)
    signin_client_limit: tuple[int, int] = (20, 15)
    # The /demo/mail page (residents' spooled mail, with their private links): off unless
    # asked for, and then for admins only.
    demo_mail_page: bool = False
    secret_key_generated: bool = field(default=False, compare=False)

    @property
    def pgdata(self) -> Path:
        return self.var_dir / "pgdata"

    def with_overrides(self, **kw) -> Settings:
        return replace(self, **kw)


def _url(name: str, value: str, schemes: tuple[str, ...]) -> str:
    parts = urlsplit(value)
    if parts.scheme not in schemes or not (parts.netloc or parts.path):
        raise SettingsError(
            f"{name}: {value!r} is not a valid URL (expected {' or '.join(schemes)}://...)"
        )
    return value


def _port(name: str, value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise SettingsError(f"{name}: {value!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise SettingsError(f"{name}: {port} is outside 1-65535")
    return port


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the settings from ``env`` (default: ``os.environ``).

    Raises :class:`SettingsError` with a one-line message naming the bad variable.
    """
    env = os.environ if env is None else env

    def get(name: str) -> str | None:
        value = env.get(name)
        return value.strip() if value and value.strip() else None

    kw: dict = {}
    if (v := get("DATABASE_URL")) is not None:
        v = _url(
            "DATABASE_URL",
            v,
            ("postgresql", "postgresql+psycopg", "postgresql+psycopg2", "postgres"),
        )
        if v.startswith("postgres://"):
            v = "postgresql://" + v[len("postgres://") :]
        kw["database_url"] = v
    if (v := get("VAR_DIR")) is not None:
        kw["var_dir"] = Path(v).resolve()
    var_dir = kw.get("var_dir", Settings.var_dir)
    kw["media_dir"] = Path(get("MEDIA_DIR") or var_dir / "media").resolve()
    if (v := get("SECRET_KEY")) is not None:
        if len(v) < 16:
            raise SettingsError("SECRET_KEY: must be at least 16 characters long")
        kw["secret_key"] = v
    else:
        kw["secret_key"] = _local_secret(var_dir)
        kw["secret_key_generated"] = True
    if (v := get("SMTP_URL")) is not None:
        kw["smtp_url"] = _url("SMTP_URL", v, ("smtp", "smtps", "smtp+starttls"))
    if (v := get("MAIL_FROM")) is not None:
        if "@" not in v:
            raise SettingsError(f"MAIL_FROM: {v!r} has no e-mail address in it")
        kw["mail_from"] = v
    if (v := get("PUBLIC_BASE_URL")) is not None:
        kw["public_base_url"] = _url("PUBLIC_BASE_URL", v, ("http", "https")).rstrip("/")
    if (v := get("TILE_URL")) is not None:
        if v.lower() != "none":
            _url("TILE_URL", v, ("http", "https"))
            if "{z}" not in v or "{x}" not in v or "{y}" not in v:
                raise SettingsError("TILE_URL: must contain {z}, {x} and {y} placeholders")
        kw["tile_url"] = v
    if (v := get("TILE_ATTRIBUTION")) is not None:
        kw["tile_attribution"] = v
    if (v := get("HOST")) is not None:
        kw["host"] = v
    if (v := get("PORT")) is not None:
        kw["port"] = _port("PORT", v)
    if (v := get("CIVICPIN_CITY")) is not None:
        if not re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?", v):
            raise SettingsError(
                f"CIVICPIN_CITY: {v!r} is not a city slug (lower-case letters, digits and dashes)"
            )
        kw["default_city"] = v
    if (v := get("LOG_LEVEL")) is not None:
        if v.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise SettingsError(f"LOG_LEVEL: {v!r} is not one of DEBUG, INFO, WARNING, ERROR")
        kw["log_level"] = v.upper()
    for name in ("OPEN311_RATE_LIMIT", "REPORT_RATE_LIMIT"):
        if (v := get(name)) is not None:
            kw[name.lower()] = _rate(name, v)
    if (v := get("DUPLICATE_RADIUS_M")) is not None:
        try:
            radius = float(v)
            if not 1 <= radius <= 1000:
                raise ValueError
        except ValueError:
            raise SettingsError(
                f"DUPLICATE_RADIUS_M: {v!r} is not a distance of 1-1000 metres"
            ) from None
        kw["duplicate_radius_m"] = radius
    for name in ("SIGNIN_ACCOUNT_LIMIT", "SIGNIN_CLIENT_LIMIT"):
        if (v := get(name)) is not None:
            kw[name.lower()] = _signin_limit(name, v)
    if (v := get("DEMO_MAIL_PAGE")) is not None:
        if v.lower() not in {"0", "1", "true", "false", "yes", "no", "on", "off"}:
            raise SettingsError(f"DEMO_MAIL_PAGE: {v!r} is not 1 or 0")
        kw["demo_mail_page"] = v.lower() in {"1", "true", "yes", "on"}
    return Settings(**kw)


def _signin_limit(name: str, value: str) -> tuple[int, int]:
    failures, _, minutes = value.partition("/")
    try:
        limit = (int(failures), int(minutes))
        if not (2 <= limit[0] <= 1000 and 1 <= limit[1] <= 1440):
            raise ValueError
    except ValueError:
        raise SettingsError(
            f"{name}: {value!r} is not FAILURES/MINUTES (2-1000 failed sign-ins in 1-1440 "
            "minutes, e.g. 5/15)"
        ) from None
    return limit


def _rate(name: str, value: str) -> str:
    rate, _, burst = value.partition("/")
    try:
        if float(rate) <= 0 or int(burst or "1") <= 0:
            raise ValueError
    except ValueError:
        raise SettingsError(
            f"{name}: {value!r} is not RATE/BURST (requests per second / burst size, e.g. 10/60)"
        ) from None
    return value


def _local_secret(var_dir: Path) -> str:
    """A per-install random key kept in ``var/secret_key`` for the no-config default."""
    path = var_dir / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    key = secrets.token_urlsafe(32)
    try:
        var_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key)
    except FileExistsError:
        return path.read_text().strip()
    except OSError:
        pass
    return key
