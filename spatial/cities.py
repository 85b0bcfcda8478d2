"""Looking up jurisdictions: by slug, by Open311 id, the install's default, their addresses.

Each city's pages live under its own path prefix, ``/c/<slug>/``, and, when the city has
a host name of its own (``jurisdiction.host``), at that host too; ``city_base_url`` is
the address links are built from, so the links mailed for a city keep working however
many cities are added later. Pages without a prefix, at the install's own host, serve
the install's default city: ``CIVICPIN_CITY`` when set, else the city created first. A
city is never chosen by "the only one there is" on the web, so adding a second city
changes nothing for the first.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.orm import Session

from spatial.errors import InvalidInput, NotFound
from spatial.models import Jurisdiction
from spatial.settings import Settings

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
# An Open311 jurisdiction id is usually the city's domain name ("lacity.org").
OPEN311_ID_RE = re.compile(r"^[a-z0-9](?:[a-z0-9.-]{0,98}[a-z0-9])?$")
CITY_PATH_PREFIX = "/c/"
HOST_RE = re.compile(
    r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$"
)


def validate_slug(slug: str, what: str = "slug") -> str:
    if not SLUG_RE.match(slug or ""):
        raise InvalidInput(
            f"{what} {slug!r} must be lower-case letters, digits and dashes (1-64 chars)",
            field=what,
        )
    return slug


def validate_open311_id(value: str) -> str:
    """An alias jurisdiction id: lower-case letters, digits, dots and dashes (1-100 chars)."""
    value = (value or "").strip().lower()
    if not OPEN311_ID_RE.match(value):
        raise InvalidInput(
            f"Open311 id {value!r} must be lower-case letters, digits, dots and dashes "
            "(1-100 chars), such as lacity.org",
            field="open311_id",
        )
    return value


def get_city(session: Session, slug: str | None) -> Jurisdiction:
    """The jurisdiction with ``slug``; when ``slug`` is None, the only one there is."""
    if slug is None:
        cities = session.scalars(sa.select(Jurisdiction).limit(2)).all()
        if len(cities) == 1:
            return cities[0]
        if not cities:
            raise NotFound("no city exists yet: run 'civicpin demo load' or 'civicpin city create'")
        raise InvalidInput("several cities exist: name one with --city SLUG", field="city")
    city = session.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == slug))
    if city is None:
        raise NotFound(f"no city with slug {slug!r}")
    return city


def default_city(session: Session, configured: str | None) -> Jurisdiction:
    """The install's default city: ``configured`` (``CIVICPIN_CITY``), else the oldest.

    The oldest city stays the default when more are added, so the addresses without a
    city prefix keep serving it.
    """
    if configured:
        city = session.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == configured))
        if city is None:
            raise NotFound(f"CIVICPIN_CITY names no city: there is no city {configured!r}")
        return city
    city = session.scalar(
        sa.select(Jurisdiction).order_by(Jurisdiction.created_at, Jurisdiction.id).limit(1)
    )
    if city is None:
        raise NotFound("no city exists yet: run 'civicpin demo load' or 'civicpin city create'")
    return city


def city_for_cli(session: Session, slug: str | None, configured: str | None) -> Jurisdiction:
    """A command's city: ``--city``, else ``CIVICPIN_CITY``, else the only one there is."""
    if slug is not None:
        return get_city(session, validate_slug(slug, "city"))
    if configured:
        return default_city(session, configured)
    return get_city(session, None)


def city_by_open311_id(session: Session, value: str) -> Jurisdiction | None:
    """The city whose slug or one of whose alias ids is ``value`` (case-insensitive)."""
    value = value.strip().lower()
    if not OPEN311_ID_RE.match(value):
        return None
    return session.scalar(
        sa.select(Jurisdiction)
        .where(
            sa.or_(
                Jurisdiction.slug == value,
                sa.literal(value) == sa.any_(Jurisdiction.open311_ids),
            )
        )
        .order_by(Jurisdiction.id)
        .limit(1)
    )


def set_open311_ids(session: Session, city: Jurisdiction, ids: list[str]) -> list[str]:
    """Replace ``city``'s alias Open311 ids; none may be another city's slug or alias."""
    clean: list[str] = []
    for value in ids:
        value = validate_open311_id(value)
        if value != city.slug and value not in clean:
            clean.append(value)
    for value in clean:
        other = city_by_open311_id(session, value)
        if other is not None and other.id != city.id:
            raise InvalidInput(
                f"Open311 id {value!r} already names the city {other.slug!r}", field="open311_id"
            )
    city.open311_ids = clean
    session.flush()
    return clean


def validate_host(value: str) -> str:
    """A host name such as ``311.cambridge.example`` (lower-cased; no scheme, port or path)."""
    value = (value or "").strip().lower().rstrip(".")
    if not HOST_RE.match(value):
        raise InvalidInput(
            f"host {value!r} must be a host name such as 311.cambridge.example "
            "(no scheme, port or path)",
            field="host",
        )
    return value


def set_host(session: Session, city: Jurisdiction, host: str | None) -> str | None:
    """Give ``city`` a host name of its own (None: none); one host serves one city."""
    if host is not None:
        host = validate_host(host)
        other = session.scalar(
            sa.select(Jurisdiction.slug).where(
                Jurisdiction.host == host, Jurisdiction.id != city.id
            )
        )
        if other is not None:
            raise InvalidInput(f"host {host!r} already serves the city {other!r}", field="host")
    city.host = host
    session.flush()
    return host


def city_by_host(session: Session, host: str) -> str | None:
    """The slug of the city whose own host is ``host`` (a request's Host, port dropped)."""
    host = host.rsplit(":", 1)[0].strip().lower().rstrip(".")
    if not HOST_RE.match(host):
        return None
    return session.scalar(sa.select(Jurisdiction.slug).where(Jurisdiction.host == host))


def city_path(city_slug: str) -> str:
    """The path prefix of a city's pages: ``/c/<slug>``."""
    return CITY_PATH_PREFIX + validate_slug(city_slug, "city")


def city_base_url(settings: Settings | str, city: Jurisdiction | str) -> str:
    """The address of ``city``'s pages, for links that leave the app (mail, feeds, APIs).

    ``settings`` is the Settings (or their ``public_base_url``); ``city`` a jurisdiction
    (its own host when it has one, with the base URL's scheme) or its slug (always
    ``<base>/c/<slug>``). No trailing slash: append ``/requests/<id>``, ``/help/triage``.
    """
    base = settings if isinstance(settings, str) else settings.public_base_url
    if isinstance(city, str):
        return base.rstrip("/") + city_path(city)
    if city.host:
        return f"{urlsplit(base).scheme}://{city.host}"
    return base.rstrip("/") + city_path(city.slug)
