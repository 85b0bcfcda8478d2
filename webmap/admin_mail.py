"""Administration: the city's intake and dispatch mail addresses.

One page, ``/admin/mail``: the intake addresses (add, remove), the dispatch address and
the mail settings. The same domain functions as ``civicpin mail address ...`` and
``civicpin mail config`` (:mod:`intake.mail_addresses`).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, flash, redirect, request, url_for

from intake import mail_addresses as mail
from notify.links import mail_config
from spatial.errors import InvalidInput, NotFound
from spatial.models import Department, Jurisdiction, Service
from spatial.models_mail import MailAddress
from webmap.admin import _audit, _city, _page
from webmap.app import db_session, settings_of
from webmap.auth import roles_required
from webmap.staffkit import install_errors, install_headers

bp = Blueprint("admin_mail", __name__, url_prefix="/admin")
install_headers(bp)
install_errors(bp)

TEMPLATE = "mail_addresses.html"
# The form's field for each mail setting.
CONFIG_FIELDS = {
    "dispatch_email": "dispatch_email",
    "from_address": "from_address",
    "reply_limit_per_hour": "reply_limit",
    "accept_limit_per_hour": "accept_limit",
    "address_reply_limit_per_hour": "address_reply_limit",
    "trusted_authserv_id": "trusted_authserv_id",
}


def _ctx(city: Jurisdiction) -> dict[str, Any]:
    from flask import current_app

    session = db_session()
    return {
        "addresses": mail.list_addresses(session, city),
        "services": session.scalars(
            sa.select(Service)
            .where(Service.jurisdiction_id == city.id, Service.active.is_(True))
            .order_by(Service.name)
        ).all(),
        "departments": session.scalars(
            sa.select(Department)
            .where(Department.jurisdiction_id == city.id)
            .order_by(Department.name)
        ).all(),
        "config": mail_config(session, city.id),
        "default_from": settings_of(current_app).mail_from,
        "config_fields": CONFIG_FIELDS,
    }


def _invalid(city: Jurisdiction, exc: InvalidInput):
    """Roll back, then show the page again with the message beside its field (the page's
    reads come after the rollback: the settings row may be created by reading it)."""
    db_session().rollback()
    errors = {exc.field or "form": str(exc)}
    return _page(TEMPLATE, 400, errors=errors, form=request.form, **_ctx(city))


@bp.get("/mail")
@roles_required("admin")
def addresses():
    return _page(TEMPLATE, **_ctx(_city()))


@bp.post("/mail/addresses")
@roles_required("admin")
def add_address():
    city = _city()
    form = request.form
    try:
        row = mail.add_address(
            db_session(),
            city,
            form.get("address", ""),
            category=form.get("category"),
            department=form.get("department"),
        )
    except InvalidInput as exc:
        return _invalid(city, exc)
    service = db_session().get(Service, row.service_id)
    dept = db_session().get(Department, row.department_id) if row.department_id else None
    _audit(
        "mail.address_add",
        "mail_address",
        row.address,
        category=service.code,
        department=dept.code if dept else None,
    )
    db_session().commit()
    missing = mail.unanswered(service)
    flash(
        f"Mail to {row.address} now becomes {service.name} requests"
        + (f" for {dept.name}" if dept else "")
        + (
            f". Required questions without a default ({', '.join(missing)}) are left for "
            "the dispatcher: such requests are marked 'needs answers'."
            if missing
            else "."
        )
    )
    return redirect(url_for("admin_mail.addresses"))


@bp.post("/mail/addresses/<int:address_id>/remove")
@roles_required("admin")
def remove_address(address_id: int):
    city = _city()
    row = db_session().get(MailAddress, address_id)
    if row is None or row.jurisdiction_id != city.id:
        raise NotFound(f"no intake address {address_id}")
    address = row.address
    mail.remove_address(db_session(), address, city)
    _audit("mail.address_remove", "mail_address", address)
    db_session().commit()
    flash(f"{address} removed: mail to it is now refused.")
    return redirect(url_for("admin_mail.addresses"))


@bp.post("/mail/config")
@roles_required("admin")
def save_config():
    city = _city()
    values = {name: request.form.get(field, "") for name, field in CONFIG_FIELDS.items()}
    try:
        _cfg, changed = mail.update_config(db_session(), city, values, CONFIG_FIELDS)
    except InvalidInput as exc:
        return _invalid(city, exc)
    # One event per save, even when nothing changed: the admin did save the form.
    _audit("mail.config", "mail_config", city.slug, **changed)
    db_session().commit()
    flash("Mail settings saved." if changed else "Mail settings unchanged.")
    return redirect(url_for("admin_mail.addresses"))
