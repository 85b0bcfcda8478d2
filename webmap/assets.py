"""Assets on the web: the report map's nearby assets of a category's layer (public JSON),
and each asset's history page for staff.
"""

from __future__ import annotations

import math
from datetime import timedelta

from flask import Blueprint, abort, jsonify, render_template, request

from intake.submit import find_service
from places import assets
from routing.actions import STATUS_LABELS
from spatial.errors import CivicpinError, InvalidInput, NotFound
from spatial.models import Jurisdiction, Service, now_utc
from spatial.models_places import AssetLayer
from webmap.app import db_session
from webmap.auth import current_user, has_role, roles_required
from webmap.public import current_city
from webmap.staffkit import install_errors, install_headers, json_error, staff_city

bp = Blueprint("assets", __name__)
install_headers(bp)
install_errors(bp)

STAFF_ROLES = ("dispatcher", "crew", "agent", "planner", "admin")


# --- public JSON for the report map ---------------------------------------------------------


def _service_layer(city: Jurisdiction) -> tuple[Service, AssetLayer]:
    """The category ``?service=`` and its asset layer; 400 for a missing code, 404 JSON for
    an unknown category or one without a layer."""
    code = (request.args.get("service") or "").strip()
    if not code:
        raise InvalidInput("service (a category code) is required", field="service")
    if len(code) > 64:
        raise InvalidInput("service is at most 64 characters", field="service")
    session = db_session()
    service = find_service(session, city, code, public=True)
    if service is None:
        raise NotFound(f"no category {code!r} in {city.name}")
    layer = assets.layer_of_service(session, service)
    if layer is None:
        raise NotFound(f"{service.name} reports are not about a numbered asset")
    return service, layer


def _degrees(name: str, lo: float, hi: float) -> float:
    raw = (request.args.get(name) or "").strip()
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a number of degrees", field=name) from None
    if not math.isfinite(value) or not lo <= value <= hi:
        raise InvalidInput(f"{name} must be a number of degrees from {lo:g} to {hi:g}", field=name)
    return value


def _layer_json(layer: AssetLayer) -> dict[str, str]:
    return {"name": layer.name, "title": layer.title}


@bp.get("/api/assets/near")
def near():
    """``?service=CODE&lat=&lon=`` -> the category's layer and its assets within 150 m,
    nearest first (at most 200): ref, label and point only."""
    try:
        city = current_city()
        _service, layer = _service_layer(city)
        lat, lon = _degrees("lat", -90, 90), _degrees("lon", -180, 180)
    except CivicpinError as exc:
        return json_error(exc)
    found = assets.assets_near(db_session(), layer, lon, lat)
    return jsonify(
        {
            "layer": _layer_json(layer),
            "radius_m": assets.NEAR_RADIUS_M,
            "assets": [a.as_json() for a in found],
        }
    )


@bp.get("/api/assets/find")
def find():
    """``?service=CODE&ref=`` -> the layer and the asset with that number (404 JSON when
    there is none)."""
    try:
        city = current_city()
        _service, layer = _service_layer(city)
        ref = (request.args.get("ref") or "").strip()
        if not ref:
            raise InvalidInput("ref (the asset's number) is required", field="ref")
        if len(ref) > assets.MAX_REF or any(ord(c) < 32 for c in ref):
            raise InvalidInput(
                f"ref is one line of at most {assets.MAX_REF} characters", field="ref"
            )
        found = assets.find_asset(db_session(), layer, ref)
        if found is None:
            raise NotFound(f"No {assets.asset_noun(layer)} {ref} in {city.name}")
    except CivicpinError as exc:
        return json_error(exc)
    point = assets.AssetPoint(found.asset.ref, found.asset.label, found.lat, found.lon)
    return jsonify({"layer": _layer_json(layer), "asset": point.as_json()})


# --- the staff page of one asset ----------------------------------------------------------


def _request_endpoint(user) -> str | None:
    """The staff page of a request that this user may open: a dispatcher's, else a crew
    member's (agents and planners get the ids without links)."""
    if has_role(user, "dispatcher"):
        return "dispatch.request_page"
    if has_role(user, "crew"):
        return "crew.request_page"
    return None


@bp.get("/staff/assets/<layer_name>/<path:ref>")
@roles_required(*STAFF_ROLES)
def history(layer_name: str, ref: str):
    """One asset of the staff member's city: its label, attributes and point, and every
    request about it, newest first (another city's asset is not found)."""
    session = db_session()
    city = staff_city(current_user())
    layer = assets.layer_by_name(session, city, layer_name) if len(layer_name) <= 64 else None
    if layer is None:
        abort(404)
    found = assets.find_asset(session, layer, ref)
    shown_ref = found.asset.ref if found is not None else ref.strip()
    past = assets.asset_history(session, layer, shown_ref) if len(shown_ref) <= 100 else []
    if found is None and not past:
        abort(404)
    return render_template(
        "assets/history.html",
        city=city,
        request_endpoint=_request_endpoint(current_user()),
        layer=layer,
        noun=assets.asset_noun(layer),
        ref=shown_ref,
        asset=found.asset if found else None,
        point=found,
        attributes=assets.asset_attributes(found.asset) if found else [],
        past=past,
        recent=sum(1 for r in past if r.requested_at >= now_utc() - timedelta(days=365)),
        status_labels=STATUS_LABELS,
    )
