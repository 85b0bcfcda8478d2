"""The Flask application factory; blueprints per audience register here.

Each city has its own addresses: ``/c/<slug>/...`` is the page ``/...`` of that city
(:class:`CityPrefix`), and so is every page at the city's own host name, if it has one
(:func:`path_city`). Pages without either serve the install's default city.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Flask, current_app, g, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect

from spatial.cities import CITY_PATH_PREFIX, SLUG_RE, city_by_host
from spatial.city_time import city_time
from spatial.db import autocommit_engine, make_engine, make_sessionmaker, resolve_database_url
from spatial.settings import Settings, load_settings

csrf = CSRFProtect()


class _CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the signing serializer built once per secret
    (Flask builds a new one for every request, API calls without a cookie included)."""

    def __init__(self) -> None:
        self._serializers: dict = {}

    def get_signing_serializer(self, app: Flask):
        key = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        serializer = self._serializers.get(key)
        if serializer is None:
            if len(self._serializers) > 4:
                self._serializers.clear()
            serializer = super().get_signing_serializer(app)
            self._serializers[key] = serializer
        return serializer


class CityPrefix:
    """WSGI middleware: ``/c/<slug>/rest`` is served as ``/rest`` for city ``slug``.

    The prefix moves into ``SCRIPT_NAME``, so every link ``url_for`` builds on a city's
    pages (and its static files) keeps the prefix; :func:`path_city` names the city.
    """

    def __init__(self, wsgi_app) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO") or ""
        if path.startswith(CITY_PATH_PREFIX):
            slug, _, rest = path[len(CITY_PATH_PREFIX) :].partition("/")
            if SLUG_RE.match(slug):
                environ["civicpin.city"] = slug
                script = (environ.get("SCRIPT_NAME") or "").rstrip("/")
                environ["SCRIPT_NAME"] = f"{script}{CITY_PATH_PREFIX}{slug}"
                environ["PATH_INFO"] = "/" + rest
        return self.wsgi_app(environ, start_response)


def path_city() -> str | None:
    """The slug of the city whose address this request came to: ``/c/<slug>/``, or the
    city's own host name (``jurisdiction.host``); None at the install's own address."""
    slug = request.environ.get("civicpin.city")
    if slug is not None:
        return slug
    if "host_city" not in g:
        g.host_city = None
        host = request.host.rsplit(":", 1)[0].lower()
        if host != urlsplit(settings_of(current_app).public_base_url).hostname:
            g.host_city = city_by_host(db_session(), host)
    return g.host_city


def create_app(settings: Settings | None = None, engine: sa.Engine | None = None) -> Flask:
    """Build the app. ``settings`` default to the environment; ``engine`` to the settings'."""
    settings = settings or load_settings()
    app = Flask(__name__)
    app.session_interface = _CookieSessions()
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="civicpin_session",
        PERMANENT_SESSION_LIFETIME=12 * 3600,
        WTF_CSRF_TIME_LIMIT=None,  # valid for the session's life; forms left open overnight
        SESSION_COOKIE_SECURE=settings.public_base_url.startswith("https://"),
        MAX_CONTENT_LENGTH=80 * 1024 * 1024,
        JSON_SORT_KEYS=False,
        OPEN311_RATE_LIMIT=settings.open311_rate_limit,
        REPORT_RATE_LIMIT=settings.report_rate_limit,
        DUPLICATE_RADIUS_M=settings.duplicate_radius_m,
    )
    logging.basicConfig(level=settings.log_level)
    if engine is None:
        engine = make_engine(resolve_database_url(settings))
    factory = make_sessionmaker(engine)
    app.extensions["civicpin"] = {
        "settings": settings,
        "engine": engine,
        "sessions": factory,
        # for requests whose only write is one statement (see db_session)
        "autocommit_sessions": make_sessionmaker(autocommit_engine(engine)),
    }

    @app.teardown_appcontext
    def _close_session(exc):
        session = g.pop("db_session", None)
        if session is not None:
            if exc is not None:
                session.rollback()
            session.close()

    from webmap import (  # noqa: F401 (admin_audit, admin_privacy: pages on the admin blueprint)
        admin,
        admin_audit,
        admin_catalog,
        admin_escalation,
        admin_mail,
        admin_org,
        admin_places,
        admin_privacy,
        admin_setup,
        agent,
        assets,
        auth,
        crew,
        dispatch,
        faq,
        intranet,
        open311,
        planner,
        projects,
        public,
        resident,
        survey,
    )

    csrf.init_app(app)
    # Staff pages show times on the city's clock: {{ t|city_time(city) }}.
    app.add_template_filter(city_time)
    csrf.exempt(open311.bp)  # API clients authenticate with api_key, not a session
    for module in (
        public,
        auth,
        open311,
        resident,
        dispatch,
        crew,
        agent,
        admin,
        admin_org,
        admin_catalog,
        admin_setup,
        admin_mail,
        admin_places,
        assets,
        survey,
        faq,
        planner,
        intranet,
        projects,
        admin_escalation,
    ):
        app.register_blueprint(module.bp)
    app.wsgi_app = CityPrefix(app.wsgi_app)
    return app


def settings_of(app: Flask) -> Settings:
    return app.extensions["civicpin"]["settings"]


def db_session(*, autocommit: bool = False):
    """The request's database session (closed at the end of the request).

    ``autocommit``: each statement commits on its own, with no BEGIN and COMMIT round
    trips around them, for a request whose reads need not share a snapshot and whose
    writes are each one statement (the Open311 POST without a photo: its request, zones,
    events and messages are one statement). Ignored if the request has a session
    already.
    """
    from flask import current_app

    if "db_session" not in g:
        kind = "autocommit_sessions" if autocommit else "sessions"
        g.db_session = current_app.extensions["civicpin"][kind]()
    return g.db_session
