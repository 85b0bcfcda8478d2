"""Administration: when the city's open requests escalate, how long residents may reopen
a resolved request, and the hour of the departments' morning digest.

Thin pages over :mod:`routing.escalation`: admin-only, a bad field re-renders the page
with status 400 and the message beside it, and every change writes one admin audit event
in its own transaction.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, flash, redirect, request, url_for

from routing import escalation
from spatial.errors import InvalidInput
from spatial.models import Service
from webmap.admin import _audit, _city, _page
from webmap.app import db_session
from webmap.auth import roles_required
from webmap.staffkit import install_errors, install_headers

bp = Blueprint("admin_escalation", __name__, url_prefix="/admin")
install_headers(bp)
install_errors(bp)


def _form(name: str) -> str:
    return (request.form.get(name) or "").strip()


def _ctx() -> dict[str, Any]:
    session = db_session()
    city = _city()
    services = session.scalars(
        sa.select(Service).where(Service.jurisdiction_id == city.id).order_by(Service.name)
    ).all()
    rows = escalation.policies(session, city)
    names = {s.id: s.name for s in services}
    return {
        "default": rows.get(None),
        "implicit": escalation.IMPLICIT,
        "overrides": sorted(
            ((names.get(sid, str(sid)), p) for sid, p in rows.items() if sid is not None),
            key=lambda item: item[0],
        ),
        "services": services,
        "max_minutes": escalation.MAX_MINUTES,
    }


def _invalid(exc: InvalidInput):
    db_session().rollback()
    return _page(
        "escalation.html", 400, errors={exc.field or "form": str(exc)}, form=request.form, **_ctx()
    )


@bp.get("/escalation")
@roles_required("admin")
def page():
    """The city's escalation policies, reopening window and digest hour."""
    return _page("escalation.html", **_ctx())


@bp.post("/escalation")
@roles_required("admin")
def save():
    """Create or change the city's default (no ``service_id``) or a category's policy."""
    session = db_session()
    city = _city()
    try:
        raw = _form("service_id")
        try:
            service_id = int(raw) if raw else None
        except ValueError:
            raise InvalidInput("Choose one of the city's categories", field="service_id") from None
        row, before = escalation.save_policy(
            session,
            city,
            service_id,
            untriaged_minutes=_form("untriaged_minutes"),
            when_overdue=bool(_form("when_overdue")),
            level2_minutes=_form("level2_minutes"),
        )
    except InvalidInput as exc:
        return _invalid(exc)
    after = escalation.policy_values(row)
    if after != before:
        _audit(
            "escalation_policy.save",
            "escalation_policy",
            row.id,
            category=session.get(Service, service_id).code if service_id else None,
            before=before,
            after=after,
        )
        session.commit()
        flash("Escalation policy saved.")
    else:
        session.rollback()
        flash("Nothing changed.")
    return redirect(url_for("admin_escalation.page"))


@bp.post("/escalation/<int:service_id>/delete")
@roles_required("admin")
def delete(service_id: int):
    """Remove a category's own policy: the category follows the city's default again.
    (``0``: the city's default itself.)"""
    session = db_session()
    city = _city()
    sid = service_id or None
    before = escalation.remove_policy(session, city, sid)
    service = session.get(Service, sid) if sid else None
    _audit(
        "escalation_policy.delete",
        "escalation_policy",
        sid,
        category=service.code if service else None,
        before=before,
    )
    session.commit()
    flash("Escalation policy removed.")
    return redirect(url_for("admin_escalation.page"))


@bp.post("/escalation/settings")
@roles_required("admin")
def settings():
    """The reopening window (days) and the digest's local hour."""
    session = db_session()
    city = _city()
    try:
        changed = escalation.save_settings(
            session,
            city,
            reopen_days=_form("reopen_days"),
            digest_hour=_form("digest_hour"),
        )
    except InvalidInput as exc:
        return _invalid(exc)
    if changed:
        _audit("city.settings", "jurisdiction", city.id, **{k: list(v) for k, v in changed.items()})
        session.commit()
        flash("Settings saved.")
    else:
        flash("Nothing changed.")
    return redirect(url_for("admin_escalation.page"))
