"""The admin audit page, ``/admin/audit``: who changed the city's set-up, when, and what.

On the admin blueprint (admin-only, like every admin page). A city's administrator sees
their city's events only; an install administrator sees every city's and the
install-wide ones (a new city, an install administrator), and may narrow them to one
city with ``?city=SLUG``. Newest first, filtered by
``?action=``, one page of :data:`spatial.admin_audit.PAGE_SIZE` at a time (``?page=``).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import request

from spatial import admin_audit
from spatial.accounts import is_install_admin
from spatial.cities import validate_slug
from spatial.errors import InvalidInput, NotFound
from spatial.models import Jurisdiction, User
from webmap.admin import _page, bp
from webmap.app import db_session
from webmap.auth import current_user, roles_required
from webmap.staffkit import home_city_id

ACTION_MAX = 64


def _scope(user: User) -> tuple[list[int] | None, Jurisdiction | None]:
    """The cities whose events ``user`` may read (None: all), and the one asked for."""
    if not is_install_admin(user):
        return [home_city_id(user)], None
    slug = (request.args.get("city") or "").strip()
    if not slug:
        return None, None
    validate_slug(slug, "city")
    city = db_session().scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == slug))
    if city is None:
        raise NotFound(f"no city with slug {slug!r}")
    return [city.id], city


@bp.get("/audit")
@roles_required("admin")
def audit():
    user = current_user()
    session = db_session()
    args = request.args
    ctx: dict[str, Any] = {"action": (args.get("action") or "").strip()}
    try:
        if len(ctx["action"]) > ACTION_MAX:
            raise InvalidInput("that is not an action of the audit log", field="action")
        page = admin_audit.parse_page(args.get("page"))
        city_ids, chosen = _scope(user)
        result = admin_audit.events(session, city_ids, action=ctx["action"] or None, page=page)
    except InvalidInput as exc:
        session.rollback()
        return _page("audit.html", 400, errors={exc.field or "form": str(exc)}, result=None, **ctx)
    session.rollback()
    cities = (
        session.scalars(sa.select(Jurisdiction).order_by(Jurisdiction.name)).all()
        if is_install_admin(user)
        else []
    )
    return _page("audit.html", result=result, chosen=chosen, cities=cities, **ctx)
