"""What the staff blueprints (dispatch, crew, agent, admin, planner) share: headers, the
city, errors.

Tenancy: every staff page works in one city (:func:`staff_city`), and a request, crew or
account of another city is not found (:func:`works_in`), for every role but the install
administrator.

Staff pages run no inline script at all: data reaches the page's JS through ``data-``
attributes and JSON endpoints, so the CSP needs no nonce. Pages with residents'
details are never cached.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from routing.actions import Forbidden
from spatial.accounts import is_install_admin
from spatial.cities import default_city, get_city, validate_slug
from spatial.errors import CivicpinError, NotFound
from spatial.models import Jurisdiction, ServiceRequest, User
from webmap.app import db_session, path_city, settings_of
from webmap.public import content_security_policy


def install_headers(bp: Blueprint) -> None:
    """Strict CSP (no inline script), no caching, no sniffing on every response of ``bp``."""

    @bp.after_request
    def _headers(response: Response) -> Response:
        settings = settings_of(current_app)
        response.headers["Content-Security-Policy"] = content_security_policy(
            None, settings.tile_url
        )
        response.headers["Cache-Control"] = "no-store"
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response


def wants_json() -> bool:
    """JSON for the pages' scripts (and API callers); HTML for plain form posts."""
    if request.is_json:
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "application/json" and "text/html" not in (request.headers.get("Accept") or "")


def form_data() -> dict[str, Any]:
    """The posted fields, from a JSON body or a form."""
    if request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            abort(400, "the body must be a JSON object")
        return body
    # The last value wins, so a hidden "0" before a checkbox of the same name is its default.
    return {key: request.form.getlist(key)[-1] for key in request.form}


def home_city_id(user: User) -> int | None:
    """The id of the one city ``user`` works in; None for an install administrator.

    An account made before any city existed has no city of its own: it works in the
    install's default city.
    """
    if is_install_admin(user):
        return None
    if user.jurisdiction_id is not None:
        return user.jurisdiction_id
    return default_city(db_session(), settings_of(current_app).default_city).id


def works_in(user: User, city_id: int) -> bool:
    """Whether ``user`` may see and act on anything of the city ``city_id``."""
    return is_install_admin(user) or home_city_id(user) == city_id


def staff_city(user: User) -> Jurisdiction:
    """The city a staff page works in.

    City staff work in their own city only: an address naming any other city
    (``/c/<slug>/``, its host name, or ``?city=``) answers 403, whether that city exists
    or not.
    Install administrators pick a city that way; without one, the install's default.
    """
    session = db_session()
    slug = path_city() or request.args.get("city")
    home = home_city_id(user)
    if home is not None:
        city = session.get(Jurisdiction, home)
        if slug and slug != city.slug:
            abort(403)
        return city
    if slug:
        return get_city(session, validate_slug(slug, "city"))
    return default_city(session, settings_of(current_app).default_city)


def find_request(user: User, public_id: str) -> ServiceRequest:
    """The request with ``public_id`` in a city the user works in (404 otherwise)."""
    req = db_session().scalar(
        sa.select(ServiceRequest).where(ServiceRequest.public_id == public_id)
    )
    if req is None or not works_in(user, req.jurisdiction_id):
        abort(404)
    return req


def error_status(exc: CivicpinError) -> int:
    if isinstance(exc, Forbidden):
        return 403
    if isinstance(exc, NotFound):
        return 404
    return 400


def json_error(exc: CivicpinError):
    body: dict[str, Any] = {"error": str(exc)}
    if getattr(exc, "field", None):
        body["field"] = exc.field
    return jsonify(body), error_status(exc)


def install_errors(bp: Blueprint) -> None:
    """Domain errors raised in ``bp``'s views become 403/404/400 pages or JSON."""

    @bp.errorhandler(CivicpinError)
    def _domain_error(exc: CivicpinError):
        db_session().rollback()
        if wants_json() or request.path.endswith((".json", ".geojson")) or "/api/" in request.path:
            return json_error(exc)
        status = error_status(exc)
        heading = {403: "Not allowed", 404: "Not found"}.get(status, "Cannot do that")
        return render_template("message.html", heading=heading, message=str(exc)), status

    @bp.errorhandler(403)
    def _forbidden(exc: HTTPException):
        db_session().rollback()
        if wants_json() or "/api/" in request.path:
            return jsonify({"error": "forbidden"}), 403
        return render_template(
            "message.html",
            heading="Not allowed",
            message="Your role may not do this, and nothing was changed.",
        ), 403
