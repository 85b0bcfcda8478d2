"""Administration: a new city from the browser, and the default response templates.

The new city page is the browser's ``civicpin city create``: install administrators
only (a city's own admin gets 403). It takes the boundary as an upload (GeoJSON, zipped
Shapefile or GeoPackage), makes the city with :func:`spatial.zones.create_city` and the
default response templates, and opens the new city's admin home at its own address,
whose set-up checklist says what the city still lacks. A bad field re-renders the page
with the message beside it and status 400; nothing is written and the upload is gone.
"""

from __future__ import annotations

import tempfile
import zoneinfo
from functools import cache
from pathlib import Path
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.utils import secure_filename

from routing.setup_checklist import add_default_templates
from spatial import admin_audit
from spatial.accounts import INSTALL_ADMIN
from spatial.cities import city_path
from spatial.errors import InvalidInput, NotFound
from spatial.models import Jurisdiction
from spatial.zones import create_city
from webmap.admin import index_page
from webmap.app import db_session
from webmap.auth import current_user, roles_required
from webmap.staffkit import install_errors, install_headers, staff_city

bp = Blueprint("admin_setup", __name__, url_prefix="/admin")
install_headers(bp)
install_errors(bp)

# Boundary files the page takes: one file each (a Shapefile comes zipped with its parts).
BOUNDARY_SUFFIXES = (".geojson", ".json", ".zip", ".gpkg")
# create_city names the file "file" and a GeoPackage's layer "layer"; the page's fields.
FORM_FIELD = {"file": "boundary", "layer": "boundary_layer"}


@cache
def time_zones() -> tuple[str, ...]:
    """The IANA time zone names a city may use, sorted (for the form's list)."""
    return tuple(sorted(zoneinfo.available_timezones() - {"localtime", "posixrules", "Factory"}))


def _current_city() -> Jurisdiction | None:
    """The city the install administrator is looking at; None before there is any."""
    try:
        return staff_city(current_user())
    except NotFound:
        return None


def _page(status: int = 200, **ctx: Any):
    ctx.setdefault("errors", {})
    ctx.setdefault("form", {})
    return render_template(
        "admin/setup_new_city.html",
        user=current_user(),
        city=_current_city(),
        time_zones=time_zones(),
        **ctx,
    ), status


def city_admin_home(slug: str) -> str:
    """The path of city ``slug``'s admin home at its own address (``/c/<slug>/admin/``),
    from whichever city's address this request came to."""
    root = request.script_root
    here = request.environ.get("civicpin.city")
    if here and root.endswith(city_path(here)):
        root = root[: -len(city_path(here))]
    return f"{root}{city_path(slug)}/admin/"


@bp.get("/cities/new")
@roles_required(INSTALL_ADMIN)
def new_city():
    return _page()


@bp.post("/cities/new")
@roles_required(INSTALL_ADMIN)
def create_city_view():
    session = db_session()
    form = request.form
    upload = request.files.get("boundary")
    try:
        if upload is None or not upload.filename:
            raise InvalidInput(
                "choose the city's boundary: a GeoJSON, zipped Shapefile or GeoPackage file",
                field="boundary",
            )
        filename = secure_filename(upload.filename) or "boundary"
        if Path(filename).suffix.lower() not in BOUNDARY_SUFFIXES:
            raise InvalidInput(
                f"{upload.filename}: use a .geojson, .json, .zip (Shapefile) or .gpkg file",
                field="boundary",
            )
        with tempfile.TemporaryDirectory(prefix="civicpin-city-") as tmp:
            path = Path(tmp) / filename
            upload.save(path)
            city = create_city(
                session,
                (form.get("slug") or "").strip(),
                form.get("name") or "",
                form.get("timezone") or "",
                path,
                prefix=(form.get("prefix") or "").strip().upper() or None,
                boundary_layer=(form.get("boundary_layer") or "").strip() or None,
            )
        templates = add_default_templates(session, city)
    except InvalidInput as exc:
        session.rollback()
        field = FORM_FIELD.get(exc.field or "", exc.field or "form")
        return _page(400, errors={field: str(exc)}, form=form)
    admin_audit.record(
        session,
        "city.create",
        "city",
        city.slug,
        city=None,
        actor=current_user(),
        what={
            "name": city.name,
            "timezone": city.timezone,
            "boundary": filename,
            "public_id_prefix": city.public_id_prefix,
            "templates": len(templates),
        },
    )
    session.commit()
    flash(
        f"City {city.name} created (public ids {city.public_id_prefix}-YYYY-NNNNNN), "
        "with the default response templates. The checklist below says what it still lacks."
    )
    return redirect(city_admin_home(city.slug))


@bp.post("/setup/default-templates")
@roles_required("admin")
def default_templates():
    """Give the city the default response templates it does not have yet."""
    city = staff_city(current_user())
    session = db_session()
    try:
        added = add_default_templates(session, city)
    except InvalidInput as exc:
        session.rollback()
        return index_page(400, errors={exc.field or "form": str(exc)})
    admin_audit.record(
        session,
        "template.defaults",
        "response_template",
        None,
        city=city,
        actor=current_user(),
        what={"names": [t.name for t in added]},
    )
    session.commit()
    flash(f"Added {len(added)} default response templates.")
    return redirect(url_for("admin.templates"))
