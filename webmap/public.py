"""Public pages: the city map (``/``) and the bbox API its pins come from."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, g, jsonify, render_template, request, url_for

from spatial.cities import default_city, get_city, validate_slug
from spatial.errors import CivicpinError, InvalidInput, NotFound
from spatial.models import Jurisdiction, Service, Status
from webmap.app import db_session, path_city, settings_of
from webmap.mapping import (
    build_city_map,
    city_overview,
    map_data,
    parse_bbox,
    parse_map_filter,
    parse_zoom,
)

bp = Blueprint("public", __name__)

LEGEND = (
    (Status.NEW.value, "New"),
    (Status.ACKNOWLEDGED.value, "Acknowledged"),
    (Status.IN_PROGRESS.value, "In progress"),
    (Status.REFERRED.value, "Referred"),
    (Status.RESOLVED.value, "Resolved"),
    (Status.CLOSED.value, "Closed"),
    ("other", "Other closed"),
)
STATUS_LABELS = {
    Status.NEW.value: "New",
    Status.ACKNOWLEDGED.value: "Acknowledged",
    Status.IN_PROGRESS.value: "In progress",
    Status.REFERRED.value: "Referred",
    Status.RESOLVED.value: "Resolved",
    Status.CANT_FIX.value: "Can't fix",
    Status.DUPLICATE.value: "Duplicate",
    Status.CANCELLED.value: "Cancelled",
    Status.CLOSED.value: "Closed",
}
STATUS_FILTERS = (
    ("", "Any status"),
    ("open", "Open"),
    ("closed", "Closed"),
    *STATUS_LABELS.items(),
)
PERIODS = (
    ("", "Any time"),
    ("7", "Last 7 days"),
    ("30", "Last 30 days"),
    ("90", "Last 90 days"),
    ("365", "Last 12 months"),
    ("custom", "Between dates…"),
)


def grouped_categories(
    session, city: Jurisdiction, *, include_private: bool = False, active_only: bool = False
) -> list[tuple[str, list[Service]]]:
    """Categories of ``city`` as (group, categories) pairs, both sorted by name.

    The map filters list public ones; the report form also lists private ones (a resident
    may report them; they are just never shown publicly) but only active ones. Internal
    (staff-only) categories are never listed here: the intranet offers them.
    """
    query = (
        sa.select(Service)
        .where(Service.jurisdiction_id == city.id, Service.internal.is_(False))
        .order_by(Service.name)
    )
    if not include_private:
        query = query.where(Service.private.is_(False))
    if active_only:
        query = query.where(Service.active.is_(True))
    services = session.scalars(query).all()
    groups: dict[str, list[Service]] = {}
    for service in services:
        groups.setdefault(service.group or "Other", []).append(service)
    return sorted(groups.items(), key=lambda kv: (kv[0] == "Other", kv[0]))


def csp_nonce() -> str:
    """A fresh nonce per response for the one inline script folium generates."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(18)
    return g.csp_nonce


def tile_source(tile_url: str) -> str | None:
    """The CSP source expression for the tile server, or None without tiles."""
    if not tile_url or tile_url.lower() == "none":
        return None
    parts = urlsplit(tile_url)
    host = parts.netloc
    if host.startswith("{s}."):
        host = "*." + host[4:]
    if "{" in host:
        return f"{parts.scheme}:"
    return f"{parts.scheme}://{host}"


def content_security_policy(nonce: str | None, tile_url: str) -> str:
    """Only this server (plus the tile host for images); inline script only by nonce.

    folium renders the map as one inline script; the nonce lets exactly that script run
    without 'unsafe-inline'. Its inline <style> blocks are dropped (our stylesheet does
    the sizing), so styles need no exception either.
    """
    scripts = "'self'" + (f" 'nonce-{nonce}'" if nonce else "")
    images = "'self' data:"
    if (tiles := tile_source(tile_url)) is not None:
        images += f" {tiles}"
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src {scripts}",
            "style-src 'self'",
            f"img-src {images}",
            "connect-src 'self'",
            "font-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


@bp.after_request
def _security_headers(response: Response) -> Response:
    settings = settings_of(current_app)
    response.headers.setdefault(
        "Content-Security-Policy",
        content_security_policy(g.get("csp_nonce"), settings.tile_url),
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


def current_city(session=None) -> Jurisdiction:
    """The city of a public page: its address's (``/c/<slug>/``), else ``?city=``, else the
    install's default (``CIVICPIN_CITY``, else the oldest city).

    Never "the only one": adding a city changes nothing for the pages of the first.
    """
    session = session or db_session()
    slug = path_city() or request.args.get("city")
    if slug:
        return get_city(session, validate_slug(slug, "city"))
    return default_city(session, settings_of(current_app).default_city)


def _message(heading: str, message: str, status: int) -> tuple[str, int]:
    return render_template("message.html", heading=heading, message=message), status


@bp.get("/")
def index():
    """The map of the city: boundary, zone outlines, and clustered request pins."""
    session = db_session()
    try:
        city = current_city(session)
    except NotFound as exc:
        if session.scalar(sa.select(Jurisdiction.id).limit(1)) is None:
            return render_template("no_city.html", heading="No city yet"), 200
        return _message("City not found", str(exc), 404)
    except InvalidInput as exc:
        return _message("Bad request", str(exc), 400)

    overview = city_overview(session, city)
    settings = settings_of(current_app)
    parts = build_city_map(
        overview,
        static_url=lambda path: url_for("static", filename=path),
        requests_url=url_for("public.map_requests"),
        tile_url=settings.tile_url,
        tile_attribution=settings.tile_attribution,
        extra_options={
            "filterForm": "map-filters",
            "listElement": "request-list",
            "detailsUrl": url_for("resident.request_json", public_id="ID"),
            "trackUrl": url_for("resident.track", public_id="ID"),
        },
    )
    return render_template(
        "map.html",
        city=overview,
        map=parts,
        legend=LEGEND,
        csp_nonce=csp_nonce(),
        categories=grouped_categories(session, city),
        status_filters=STATUS_FILTERS,
        periods=PERIODS,
        report_url=url_for("resident.report", city=city.slug),
    )


@bp.get("/api/map/requests")
def map_requests():
    """GeoJSON of the public requests in ``bbox``: single ones, or counts per grid cell.

    Filters: ``service`` (category code), ``status`` (open, closed or a comma list),
    ``since``/``until`` (local dates, inclusive). See :func:`webmap.mapping.map_data`.
    """
    session = db_session()
    try:
        bbox = parse_bbox(request.args.get("bbox"))
        zoom = parse_zoom(request.args.get("zoom"))
        filters = parse_map_filter(request.args)
        city = current_city(session)
    except CivicpinError as exc:
        status = 404 if isinstance(exc, NotFound) else 400
        body = {"error": str(exc)}
        if getattr(exc, "field", None):
            body["field"] = exc.field
        return jsonify(body), status
    try:
        data = map_data(session, city, bbox, zoom=zoom, filters=filters)
    except InvalidInput as exc:
        return jsonify({"error": str(exc), "field": exc.field}), 400
    return jsonify(data)


@bp.get("/healthz")
def healthz():
    """Liveness with a database round trip, for load balancers and compose."""
    db_session().execute(sa.text("SELECT 1"))
    return jsonify({"status": "ok"})
