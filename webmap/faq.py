"""The self-service FAQ (public, searchable; admins edit it), the editor of the message
templates, and the demo page of the local mail spool (``/demo/mail``).

Pages here run no script at all; they share the app's strict CSP.
"""

from __future__ import annotations

import re
from email import policy
from email.parser import BytesParser
from functools import wraps
from pathlib import Path

import sqlalchemy as sa
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)

from intake import faq as faq_domain
from notify import templates as mail_templates
from spatial import admin_audit
from spatial.errors import CivicpinError, InvalidInput, NotFound
from spatial.models import Jurisdiction, Service
from spatial.models_mail import FaqArticle
from webmap.app import db_session, settings_of
from webmap.auth import current_user, has_role, roles_required
from webmap.public import content_security_policy, current_city
from webmap.staffkit import staff_city, works_in

bp = Blueprint("faq", __name__)

SPOOL_PAGE_SIZE = 200
LINK_RE = re.compile(r"https?://[^\s<>\"]+")


@bp.after_request
def _security_headers(response):
    settings = settings_of(current_app)
    response.headers.setdefault(
        "Content-Security-Policy", content_security_policy(g.get("csp_nonce"), settings.tile_url)
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


def _message(heading: str, message: str, status: int):
    return render_template("message.html", heading=heading, message=message), status


@bp.errorhandler(CivicpinError)
def _domain_error(exc: CivicpinError):
    status = 404 if isinstance(exc, NotFound) else 400
    return _message("Not found" if status == 404 else "Bad request", str(exc), status)


def _city() -> Jurisdiction:
    """The help pages' city: the address's, else ``?city=``, else the install's default."""
    return current_city()


def _audit(city: Jurisdiction, action: str, object_type: str, object_id: object, **what) -> None:
    """Log an admin change before its commit (see :mod:`spatial.admin_audit`)."""
    admin_audit.record(
        db_session(), action, object_type, object_id, city=city, actor=current_user(), what=what
    )


def _admin_city() -> Jurisdiction:
    """The city whose articles and messages an admin edits: their own (staff_city)."""
    return staff_city(current_user())


def _edits(city: Jurisdiction) -> bool:
    """Whether the signed-in user administers ``city`` (sees drafts, may edit)."""
    user = current_user()
    return has_role(user, "admin") and works_in(user, city.id)


def _services(city: Jurisdiction, *, internal: bool = False) -> list[Service]:
    """The city's active categories; internal (staff-only) ones only when ``internal``."""
    query = sa.select(Service).where(Service.jurisdiction_id == city.id, Service.active.is_(True))
    if not internal:
        query = query.where(Service.internal.is_(False))
    return list(db_session().scalars(query.order_by(Service.name)))


# --- public FAQ ------------------------------------------------------------------------


@bp.get("/help")
def index():
    """All articles of the city, grouped by topic; ``q`` searches, ``topic`` filters."""
    session = db_session()
    city = _city()
    q = (request.args.get("q") or "").strip()[:200]
    topic = (request.args.get("topic") or "").strip()[:100] or None
    category = (request.args.get("category") or "").strip()[:64] or None
    articles = faq_domain.search_articles(session, city, q=q, topic=topic, service_code=category)
    names = {s.id: s.name for s in _services(city)}
    return render_template(
        "faq/index.html",
        city=city,
        articles=articles,
        q=q,
        topic=topic,
        category=category,
        topics=faq_domain.topics(session, city),
        services=_services(city),
        service_names=names,
    )


@bp.get("/help/category/<code>")
def for_category(code: str):
    """The article about a category (the reporting flow links here before the form)."""
    session = db_session()
    city = _city()
    service = session.scalar(
        sa.select(Service).where(
            Service.jurisdiction_id == city.id,
            Service.code == code,
            Service.internal.is_(False),
        )
    )
    if service is None:
        raise NotFound(f"{city.name} has no category {code!r}")
    article = faq_domain.article_for_service(session, service)
    if article is None:
        raise NotFound(f"there is no help article about {service.name} yet")
    return redirect(url_for("faq.article", slug=article.slug, city=city.slug))


@bp.get("/help/<slug>")
def article(slug: str):
    session = db_session()
    city = _city()
    is_admin = _edits(city)
    # Admins see drafts, so that they can read an article before publishing it.
    art = faq_domain.get_article(session, city, slug, include_unpublished=is_admin)
    service = session.get(Service, art.service_id) if art.service_id else None
    return render_template(
        "faq/article.html",
        city=city,
        article=art,
        blocks=faq_domain.body_blocks(art.body),
        service=service,
        can_edit=is_admin,
    )


# --- admin: articles -------------------------------------------------------------------


@bp.get("/admin/faq")
@roles_required("admin")
def admin_index():
    session = db_session()
    city = _admin_city()
    articles = faq_domain.search_articles(session, city, include_unpublished=True, audience=None)
    names = {s.id: s.name for s in _services(city, internal=True)}
    return render_template(
        "faq/admin_index.html", city=city, articles=articles, service_names=names
    )


def _form_values(art) -> dict:
    service = db_session().get(Service, art.service_id) if art and art.service_id else None
    return {
        "title": art.title if art else "",
        "slug": art.slug if art else "",
        "topic": (art.topic or "") if art else "",
        "service_code": service.code if service else "",
        "body": art.body if art else "",
        "audience": (art.audience or "public") if art else "public",
        "position": art.position if art else 0,
        "published": art.published if art else True,
    }


def _edit(city: Jurisdiction, article_id: int | None, initial: dict):
    session = db_session()
    errors: dict[str, str] = {}
    values = initial
    if request.method == "POST":
        values = {k: request.form.get(k, "") for k in initial}
        values["published"] = request.form.get("published") == "on"
        try:
            user = current_user()
            saved = faq_domain.save_article(
                session,
                city,
                {**values, "published": "on" if values["published"] else ""},
                article_id=article_id,
                by=user.email if user else None,
            )
            action = "faq.create" if article_id is None else "faq.edit"
            what = {
                "slug": saved.slug,
                "title": saved.title,
                "published": saved.published,
                "audience": saved.audience,
            }
            _audit(city, action, "faq_article", saved.id, **what)
            session.commit()
            flash(f"Saved: {saved.title}")
            return redirect(url_for("faq.admin_index", city=city.slug))
        except InvalidInput as exc:
            session.rollback()
            errors = getattr(exc, "errors", None) or {exc.field or "body": str(exc)}
    return render_template(
        "faq/edit.html",
        city=city,
        values=values,
        errors=errors,
        article_id=article_id,
        services=_services(city, internal=True),
        audiences=faq_domain.AUDIENCES,
    ), (400 if errors else 200)


@bp.route("/admin/faq/new", methods=["GET", "POST"])
@roles_required("admin")
def admin_new():
    city = _admin_city()
    initial = _form_values(None)
    if request.args.get("slug") == faq_domain.TRIAGE_SLUG:
        initial = _form_values(faq_domain.default_triage(city))
    return _edit(city, None, initial)


@bp.route("/admin/faq/<int:article_id>/edit", methods=["GET", "POST"])
@roles_required("admin")
def admin_edit(article_id: int):
    city = _admin_city()
    art = db_session().get(FaqArticle, article_id)
    if art is None or art.jurisdiction_id != city.id:
        raise NotFound(f"no help article #{article_id}")
    return _edit(city, article_id, _form_values(art))


@bp.post("/admin/faq/<int:article_id>/delete")
@roles_required("admin")
def admin_delete(article_id: int):
    session = db_session()
    city = _admin_city()
    title = faq_domain.delete_article(session, city, article_id)
    _audit(city, "faq.delete", "faq_article", article_id, title=title)
    session.commit()
    flash(f"Deleted: {title}")
    return redirect(url_for("faq.admin_index", city=city.slug))


# --- admin: message templates ----------------------------------------------------------


@bp.get("/admin/mail-templates")
@roles_required("admin")
def templates_index():
    session = db_session()
    city = _admin_city()
    rows = []
    for kind, default in mail_templates.DEFAULTS.items():
        _s, _b, custom = mail_templates.current(session, city.id, kind)
        rows.append((kind, default.title, custom))
    return render_template("mail/templates_index.html", city=city, rows=rows)


@bp.route("/admin/mail-templates/<kind>", methods=["GET", "POST"])
@roles_required("admin")
def template_edit(kind: str):
    session = db_session()
    city = _admin_city()
    if kind not in mail_templates.DEFAULTS:
        raise NotFound(f"no message kind {kind!r}")
    subject, body, custom = mail_templates.current(session, city.id, kind)
    errors: dict[str, str] = {}
    if request.method == "POST":
        subject = request.form.get("subject", "")
        body = request.form.get("body", "")
        try:
            user = current_user()
            mail_templates.save_override(
                session, city, kind, subject, body, user.email if user else None
            )
            _audit(city, "mail.template_set", "message_template", kind, subject=subject)
            session.commit()
            flash(f"Saved the {kind} message of {city.name}.")
            return redirect(url_for("faq.templates_index", city=city.slug))
        except InvalidInput as exc:
            session.rollback()
            errors = {exc.field or "body": str(exc)}
    return render_template(
        "mail/template_edit.html",
        city=city,
        kind=kind,
        default=mail_templates.DEFAULTS[kind],
        subject=subject,
        body=body,
        custom=custom,
        errors=errors,
    ), (400 if errors else 200)


@bp.post("/admin/mail-templates/<kind>/reset")
@roles_required("admin")
def template_reset(kind: str):
    session = db_session()
    city = _admin_city()
    if mail_templates.reset_override(session, city, kind):
        _audit(city, "mail.template_reset", "message_template", kind)
    session.commit()
    flash(f"The {kind} message is back to the default text.")
    return redirect(url_for("faq.templates_index", city=city.slug))


# --- demo: the local mail spool ---------------------------------------------------------


def _spool_page_on(view):
    """404 unless the demo mail page was asked for (DEMO_MAIL_PAGE) and mail is spooled.

    The spool holds residents' mail with their private links: the page is off by default,
    and when on it is for install administrators only (the spool holds every city's
    mail: ``roles_required("install_admin")`` under this), whatever the client's address.
    """

    @wraps(view)
    def wrapped(*args, **kwargs):
        settings = settings_of(current_app)
        if not settings.demo_mail_page or settings.smtp_url:
            abort(404)
        return view(*args, **kwargs)

    return wrapped


def _spool_folder() -> Path:
    from notify.worker import spool_dir

    return spool_dir(settings_of(current_app))


def _deliver_to_spool() -> None:
    from notify.worker import run_once

    sessions = current_app.extensions["civicpin"]["sessions"]
    try:
        run_once(sessions, settings_of(current_app), limit=SPOOL_PAGE_SIZE)
    except sa.exc.SQLAlchemyError:
        current_app.logger.exception("demo mail: could not deliver the outbox to the spool")


def _read(path: Path):
    with path.open("rb") as fh:
        return BytesParser(policy=policy.default).parse(fh)


@bp.get("/demo/mail")
@_spool_page_on
@roles_required("install_admin")
def demo_mail():
    """The messages the worker wrote to the spool, newest first (delivers what is due)."""
    folder = _spool_folder()
    _deliver_to_spool()
    files = sorted(folder.glob("*.eml"), reverse=True)[:SPOOL_PAGE_SIZE] if folder.exists() else []
    items = []
    for path in files:
        try:
            msg = _read(path)
            items.append(
                {
                    "name": path.name,
                    "to": str(msg.get("To", "")),
                    "subject": str(msg.get("Subject", "")),
                    "date": str(msg.get("Date", "")),
                    "kind": str(msg.get("X-Civicpin-Kind", "")),
                }
            )
        except (OSError, ValueError):
            continue
    return render_template("mail/spool.html", items=items, folder=folder)


@bp.get("/demo/mail/<name>")
@_spool_page_on
@roles_required("install_admin")
def demo_mail_message(name: str):
    folder = _spool_folder()
    if not re.fullmatch(r"[0-9]{8}-[0-9]{6}-[0-9]{8}\.eml", name):
        abort(404)
    path = folder / name
    if not path.is_file():
        abort(404)
    msg = _read(path)
    body = msg.get_body(preferencelist=("plain",))
    text = body.get_content() if body is not None else ""
    segments = []
    pos = 0
    for m in LINK_RE.finditer(text):
        segments.append((text[pos : m.start()], False))
        segments.append((m.group(0), True))
        pos = m.end()
    segments.append((text[pos:], False))
    headers = [
        (h, str(msg.get(h)))
        for h in (
            "From",
            "To",
            "Reply-To",
            "Subject",
            "Date",
            "Message-ID",
            "In-Reply-To",
            "References",
            "List-Unsubscribe",
            "Auto-Submitted",
        )
        if msg.get(h)
    ]
    return render_template("mail/spool_message.html", name=name, headers=headers, segments=segments)
