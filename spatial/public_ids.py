"""Public request ids such as ``LA-2026-000123``: per city, per year, gap-free enough."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from spatial.models import Jurisdiction, PublicIdCounter


def allocate(session: Session, city: Jurisdiction, year: int, count: int = 1) -> list[str]:
    """Reserve ``count`` consecutive public ids for ``year`` (row lock on the counter)."""
    stmt = (
        insert(PublicIdCounter)
        .values(jurisdiction_id=city.id, year=year, last_value=count)
        .on_conflict_do_update(
            index_elements=["jurisdiction_id", "year"],
            set_={"last_value": PublicIdCounter.last_value + count},
        )
        .returning(PublicIdCounter.last_value)
    )
    last = session.execute(stmt).scalar_one()
    return [
        format_public_id(city.public_id_prefix, year, n) for n in range(last - count + 1, last + 1)
    ]


def format_public_id(prefix: str, year: int, number: int) -> str:
    return f"{prefix}-{year}-{number:06d}"


def ensure_at_least(session: Session, city_id: int, year: int, value: int) -> None:
    """Raise a counter to ``value`` (after bulk loads that assigned ids themselves)."""
    stmt = (
        insert(PublicIdCounter)
        .values(jurisdiction_id=city_id, year=year, last_value=value)
        .on_conflict_do_update(
            index_elements=["jurisdiction_id", "year"],
            set_={"last_value": sa.func.greatest(PublicIdCounter.last_value, value)},
        )
    )
    session.execute(stmt)
