"""Looking up jurisdictions by slug, and the one-city default."""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.orm import Session

from spatial.errors import InvalidInput, NotFound
from spatial.models import Jurisdiction

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")


def validate_slug(slug: str, what: str = "slug") -> str:
    if not SLUG_RE.match(slug or ""):
        raise InvalidInput(
            f"{what} {slug!r} must be lower-case letters, digits and dashes (1-64 chars)",
            field=what,
        )
    return slug


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
