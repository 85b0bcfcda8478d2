"""Satisfaction survey behind the resolution e-mail's one-time link, and unsubscribing.

``/survey/<token>``: rating 1-5, timeliness, quality, communication and a comment,
answerable once; an expired or used link says so. ``/unsubscribe/<token>``: a page with
a button, and the RFC 8058 one-click POST that mail clients send for ``List-Unsubscribe``
(no CSRF token there: the signed link itself is the proof).
"""

from __future__ import annotations

from flask import Blueprint, current_app, g, render_template, request

from notify import survey as survey_domain
from notify.links import UNSUBSCRIBE_SALT, BadLink, ExpiredLink, unsubscribe, verify
from spatial.errors import InvalidInput
from spatial.models import ServiceRequest
from webmap.app import csrf, db_session, settings_of
from webmap.public import content_security_policy

bp = Blueprint("survey", __name__)


@bp.after_request
def _security_headers(response):
    settings = settings_of(current_app)
    response.headers.setdefault(
        "Content-Security-Policy", content_security_policy(g.get("csp_nonce"), settings.tile_url)
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    # The token is in the URL: never send it to another site.
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def _message(heading: str, message: str, status: int):
    return render_template("message.html", heading=heading, message=message), status


@bp.route("/survey/<token>", methods=["GET", "POST"])
def survey(token: str):
    session = db_session()
    try:
        ctx = survey_domain.open_survey(session, token)
    except BadLink as exc:
        return _message("Survey link not valid", str(exc), 404)
    except ExpiredLink as exc:
        return _message("Survey link expired", str(exc), 410)
    except survey_domain.AlreadyAnswered as exc:
        return _message("Already answered", str(exc), 200)
    errors: dict[str, str] = {}
    values = {"rating": "", "timeliness": "", "quality": "", "communication": "", "comment": ""}
    if request.method == "POST":
        values.update({k: request.form.get(k, "") for k in values})
        try:
            survey_domain.answer(session, token, request.form)
            session.commit()
            return render_template("survey/thanks.html", request_=ctx.request)
        except InvalidInput as exc:
            session.rollback()
            errors = getattr(exc, "errors", None) or {exc.field or "rating": str(exc)}
        except survey_domain.AlreadyAnswered as exc:
            session.rollback()
            return _message("Already answered", str(exc), 200)
    return render_template(
        "survey/form.html",
        request_=ctx.request,
        service=ctx.request.service,
        aspects=survey_domain.ASPECTS,
        values=values,
        errors=errors,
        expires=ctx.token.expires_at,
    ), (400 if errors else 200)


@bp.route("/unsubscribe/<token>", methods=["GET", "POST"])
@csrf.exempt
def unsubscribe_page(token: str):
    session = db_session()
    try:
        payload = verify(session, token, UNSUBSCRIBE_SALT)
    except (BadLink, ExpiredLink) as exc:
        return _message("Link not valid", str(exc), 404)
    email = str(payload.get("e") or "")
    request_id = payload.get("r")
    req = session.get(ServiceRequest, int(request_id)) if request_id else None
    if request.method == "POST":
        scope_all = request.form.get("scope") == "all" or req is None
        new = unsubscribe(session, email, None if scope_all else req.id)
        session.commit()
        what = "any e-mail" if scope_all else f"e-mails about report {req.public_id}"
        return render_template("mail/unsubscribed.html", email=email, what=what, already=not new)
    return render_template("mail/unsubscribe.html", email=email, request_=req, token=token)
