"""Administration: the catalogue: categories, their questions, and the city's business calendar.

Thin adapters over :mod:`routing.categories` (the CLI calls the same functions). Each
change writes one admin audit event in its own transaction; a bad field re-renders the
page with status 400 and the message beside that field, after a rollback.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, request, url_for

from routing import categories as catalog
from spatial.errors import InvalidInput
from spatial.models import (
    LOCATION_MODES,
    PRIORITIES,
    SLA_CLOCKS,
    Jurisdiction,
    Service,
    ServiceAttribute,
)
from webmap.admin import _audit, _city, _page
from webmap.app import db_session
from webmap.auth import roles_required
from webmap.staffkit import install_errors, install_headers

bp = Blueprint("admin_catalog", __name__, url_prefix="/admin")
install_headers(bp)
install_errors(bp)

CATEGORY_TEXT = (
    "code",
    "name",
    "group",
    "description",
    "keywords",
    "type",
    "location_mode",
    "notice",
    "default_department",
    "default_priority",
    "sla_hours",
    "sla_clock",
    "asset_layer",
)
CATEGORY_FLAGS = ("private", "internal", "contact_required", "active")
QUESTION_TEXT = (
    "code",
    "datatype",
    "description",
    "datatype_description",
    "order",
    "values",
    "default_value",
)


def _invalid(template: str, exc: InvalidInput, active_form: str, **ctx: Any):
    """Roll back and show the page again with the message next to its field."""
    db_session().rollback()
    ctx.pop("errors", None)
    return _page(
        template,
        400,
        errors={exc.field or "form": str(exc)},
        form=request.form,
        active_form=active_form,
        **ctx,
    )


def _form(text_fields: tuple[str, ...], flags: tuple[str, ...] = ()) -> dict[str, Any]:
    """The posted fields; an unticked checkbox is not posted, so it reads as no."""
    data: dict[str, Any] = {k: request.form.get(k, "") for k in text_fields if k in request.form}
    for flag in flags:
        data[flag] = request.form.get(flag) in ("on", "1", "true")
    return data


# --------------------------------------------------------------------------- categories


def _list_ctx(city: Jurisdiction) -> dict[str, Any]:
    session = db_session()
    return {
        "rows": catalog.categories(session, city),
        "departments": catalog.departments(session, city),
        "asset_layers": catalog.asset_layers(session, city),
        **_choices(),
    }


def _choices() -> dict[str, Any]:
    return {
        "types": catalog.SERVICE_TYPES,
        "location_modes": LOCATION_MODES,
        "priorities": PRIORITIES,
        "sla_clocks": SLA_CLOCKS,
        "datatypes": catalog.DATATYPES,
    }


@bp.get("/categories")
@roles_required("admin")
def categories():
    return _page("catalog_categories.html", **_list_ctx(_city()))


@bp.post("/categories")
@roles_required("admin")
def create_category():
    city = _city()
    session = db_session()
    try:
        data = _form(CATEGORY_TEXT, ("private", "internal", "contact_required"))
        service = catalog.create_category(session, city, data)
    except InvalidInput as exc:
        return _invalid("catalog_categories.html", exc, "category", **_list_ctx(city))
    _audit("category.create", "service", service.id, **catalog.category_record(session, service))
    session.commit()
    flash(f"Category {service.code} created. Add its questions below.")
    return redirect(url_for("admin_catalog.category", service_id=service.id))


def _category_ctx(city: Jurisdiction, service: Service) -> dict[str, Any]:
    session = db_session()
    return {
        "service": service,
        "record": catalog.category_record(session, service),
        "questions": sorted(service.attributes, key=lambda a: (a.order, a.id)),
        "departments": catalog.departments(session, city),
        "asset_layers": catalog.asset_layers(session, city),
        **_choices(),
    }


def _category_of(city: Jurisdiction, service_id: int) -> Service:
    return catalog.get_category(db_session(), city, service_id)


@bp.get("/categories/<int:service_id>")
@roles_required("admin")
def category(service_id: int):
    city = _city()
    return _page("catalog_category.html", **_category_ctx(city, _category_of(city, service_id)))


@bp.post("/categories/<int:service_id>")
@roles_required("admin")
def edit_category(service_id: int):
    city = _city()
    session = db_session()
    service = _category_of(city, service_id)
    try:
        changed = catalog.update_category(
            session, city, service, _form(CATEGORY_TEXT, CATEGORY_FLAGS)
        )
    except InvalidInput as exc:
        session.rollback()
        service = _category_of(city, service_id)
        return _invalid("catalog_category.html", exc, "category", **_category_ctx(city, service))
    if not changed:
        session.rollback()
        flash("Nothing changed.")
        return redirect(url_for("admin_catalog.category", service_id=service_id))
    _audit("category.edit", "service", service.id, code=service.code, **changed)
    session.commit()
    flash(f"Category {service.code} saved.")
    return redirect(url_for("admin_catalog.category", service_id=service_id))


@bp.post("/categories/<int:service_id>/delete")
@roles_required("admin")
def delete_category(service_id: int):
    city = _city()
    session = db_session()
    service = _category_of(city, service_id)
    code = service.code
    try:
        catalog.delete_category(session, service)
    except InvalidInput as exc:
        session.rollback()
        service = _category_of(city, service_id)
        return _invalid("catalog_category.html", exc, "delete", **_category_ctx(city, service))
    _audit("category.delete", "service", service_id, code=code)
    session.commit()
    flash(f"Category {code} deleted.")
    return redirect(url_for("admin_catalog.categories"))


# --------------------------------------------------------------------------- questions


def _question_of(service: Service, attribute_id: int) -> ServiceAttribute:
    return catalog.get_question(db_session(), service, attribute_id)


def _question_action(service_id: int, attribute_id: int | None, act, active_form: str):
    """Run ``act(session, service, attr)`` -> (audit action, object id, what); commit it,
    or show the category page again with the message."""
    city = _city()
    session = db_session()
    service = _category_of(city, service_id)
    attr = _question_of(service, attribute_id) if attribute_id is not None else None
    try:
        action, object_id, what = act(session, service, attr)
    except InvalidInput as exc:
        session.rollback()
        service = _category_of(city, service_id)
        return _invalid("catalog_category.html", exc, active_form, **_category_ctx(city, service))
    if action is None:
        session.rollback()
        flash("Nothing changed.")
    else:
        _audit(action, "service_attribute", object_id, category=service.code, **what)
        session.commit()
    return redirect(url_for("admin_catalog.category", service_id=service_id) + "#questions")


@bp.post("/categories/<int:service_id>/questions")
@roles_required("admin")
def add_question(service_id: int):
    def act(session, service, _attr):
        data = _form(QUESTION_TEXT, ("required",))
        attr = catalog.add_question(session, service, data)
        flash(f"Question {attr.code} added.")
        return "question.add", attr.id, catalog.question_record(attr)

    return _question_action(service_id, None, act, "question:new")


@bp.post("/categories/<int:service_id>/questions/<int:attribute_id>")
@roles_required("admin")
def edit_question(service_id: int, attribute_id: int):
    def act(session, service, attr):
        data = _form(QUESTION_TEXT, ("required",))
        changed = catalog.update_question(session, service, attr, data)
        if not changed:
            return None, None, {}
        flash(f"Question {attr.code} saved.")
        return "question.edit", attr.id, {"code": attr.code, **changed}

    return _question_action(service_id, attribute_id, act, f"question:{attribute_id}")


@bp.post("/categories/<int:service_id>/questions/<int:attribute_id>/delete")
@roles_required("admin")
def remove_question(service_id: int, attribute_id: int):
    def act(session, service, attr):
        what = catalog.question_record(attr)
        catalog.remove_question(session, service, attr)
        flash(f"Question {what['code']} removed.")
        return "question.remove", attribute_id, what

    return _question_action(service_id, attribute_id, act, f"question:{attribute_id}")


@bp.post("/categories/<int:service_id>/questions/<int:attribute_id>/move")
@roles_required("admin")
def move_question(service_id: int, attribute_id: int):
    def act(session, service, attr):
        direction = request.form.get("direction", "")
        if direction not in ("up", "down"):
            raise InvalidInput("move a question up or down", field="direction")
        old = attr.order
        new = catalog.move_question(
            session, service, attr, old - 1 if direction == "up" else old + 1
        )
        if new == old:
            return None, None, {}
        return "question.move", attr.id, {"code": attr.code, "order": [old, new]}

    return _question_action(service_id, attribute_id, act, f"question:{attribute_id}")


# --------------------------------------------------------------------------- calendar


def _calendar_ctx(city: Jurisdiction) -> dict[str, Any]:
    return {"calendar": catalog.calendar_view(city), "day_names": catalog.DAY_NAMES}


def _save_calendar(city: Jurisdiction, action: str, calendar: dict[str, Any] | None, **what):
    changed = catalog.save_calendar(city, calendar)
    if not changed:
        db_session().rollback()
        flash("Nothing changed.")
    else:
        _audit(action, "jurisdiction", city.id, **what, **changed)
        db_session().commit()
        flash("Business calendar saved.")
    return redirect(url_for("admin_catalog.calendar"))


@bp.get("/calendar")
@roles_required("admin")
def calendar():
    return _page("catalog_calendar.html", **_calendar_ctx(_city()))


@bp.post("/calendar")
@roles_required("admin")
def save_hours():
    city = _city()
    try:
        hours: dict[str, list[str] | None] = {}
        for day, label in catalog.DAY_NAMES.items():
            opens = (request.form.get(f"{day}_opens") or "").strip()
            closes = (request.form.get(f"{day}_closes") or "").strip()
            if not opens and not closes:
                hours[day] = None
            elif not (opens and closes):
                raise InvalidInput(
                    f"{label}: give both the opening and the closing time, or neither",
                    field="hours",
                )
            else:
                hours[day] = [opens, closes]
        new = catalog.change_calendar(city, hours=hours)
    except InvalidInput as exc:
        return _invalid("catalog_calendar.html", exc, "hours", **_calendar_ctx(city))
    return _save_calendar(city, "calendar.hours", new)


@bp.post("/calendar/holidays")
@roles_required("admin")
def add_holiday():
    city = _city()
    try:
        entry = catalog.parse_holiday(request.form.get("date", ""), request.form.get("name") or "")
        new = catalog.change_calendar(city, add_holidays=[entry])
    except InvalidInput as exc:
        # Shown beside the holiday form, whichever part of the calendar it is about.
        exc = InvalidInput(str(exc), field="holiday")
        return _invalid("catalog_calendar.html", exc, "holiday", **_calendar_ctx(city))
    return _save_calendar(city, "calendar.holiday_add", new)


@bp.post("/calendar/holidays/remove")
@roles_required("admin")
def remove_holiday():
    city = _city()
    try:
        new = catalog.change_calendar(city, remove_holidays=[request.form.get("date", "")])
    except InvalidInput as exc:
        return _invalid("catalog_calendar.html", exc, "holiday", **_calendar_ctx(city))
    return _save_calendar(city, "calendar.holiday_remove", new)
