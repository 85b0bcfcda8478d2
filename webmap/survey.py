"""Satisfaction survey behind the resolution e-mail's one-time link, and unsubscribing.

``/survey/<token>``: rating 1-5, timeliness, quality, communication and a comment,
answerable once; an expired or used link says so. ``/unsubscribe/<token>``: a page that
stops the mail of the link's recipient (about its request, of its kind, or all of the
city's) and undoes that with the same link, and the RFC 8058 one-click POST that mail
clients send for ``List-Unsubscribe`` (no CSRF token there: the signed link itself is the
proof, and it speaks for its own address only).
"""

from __future__ import annotations

from flask import Blueprint, current_app, g, render_template, request

from notify import survey as survey_domain
from notify.links import (
    UNSUBSCRIBE_SALT,
    BadLink,
    ExpiredLink,
    has_unsubscribed,
    resubscribe,
    unsubscribe,
    verify,
)
from spatial.errors import InvalidInput
from spatial.models import Jurisdiction, ServiceRequest
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


# What a staff member reads on their unsubscribe page for the kinds sent to staff.
KIND_LABELS = {
    "dispatcher_alert": "alerts of new requests (dispatcher alerts)",
    "crew_assignment": "e-mails about work assigned to your crew",
    "reporter_message": "messages and reopenings from reporters",
    "escalation": "escalations of waiting or overdue work",
    "department_digest": "the morning digest of your department's overdue work",
    "intake_refused": "replies to e-mails that could not become reports",
}


def _what(scope: str, req: ServiceRequest | None, kind: str | None, city_name: str) -> str:
    if scope == "request" and req is not None:
        return f"e-mails about report {req.public_id}"
    if scope == "kind" and kind:
        return KIND_LABELS.get(kind, f"e-mails of this kind ({kind.replace('_', ' ')})")
    return f"any e-mail from {city_name}"


@bp.route("/unsubscribe/<token>", methods=["GET", "POST"])
@csrf.exempt
def unsubscribe_page(token: str):
    """Stop (or, the undo, restart) the mail the link's recipient gets: about its request,
    of its kind, or all of the city's. Only the address the link was sent to."""
    session = db_session()
    try:
        payload = verify(session, token, UNSUBSCRIBE_SALT)
    except (BadLink, ExpiredLink) as exc:
        return _message("Link not valid", str(exc), 404)
    email = str(payload.get("e") or "")
    city = session.get(Jurisdiction, int(payload["c"]))
    request_id = payload.get("r")
    req = session.get(ServiceRequest, int(request_id)) if request_id else None
    kind = payload.get("k") if isinstance(payload.get("k"), str) else None
    if city is None or not email:
        return _message("Link not valid", "This link is not valid.", 404)
    scopes = [s for s, ok in (("request", req), ("kind", kind), ("all", True)) if ok]
    wishes = {
        "request": (req.id if req else None, None),
        "kind": (None, kind),
        "all": (None, None),
    }
    if request.method == "POST":
        # RFC 8058 One-Click sends only List-Unsubscribe=One-Click: the link's own scope.
        scope = request.form.get("scope") or scopes[0]
        action = request.form.get("action") or "stop"
        if scope not in scopes or action not in {"stop", "undo"}:
            return _message("Nothing changed", "This link cannot do that.", 400)
        request_id, kind_of = wishes[scope]
        if action == "stop":
            changed = unsubscribe(session, email, request_id, kind_of, city.id)
        else:
            changed = resubscribe(session, email, request_id, kind_of, city.id)
        session.commit()
        return render_template(
            "mail/unsubscribed.html",
            email=email,
            what=_what(scope, req, kind, city.name),
            scope=scope,
            stopped=action == "stop",
            already=not changed,
        )
    stopped = {scope: has_unsubscribed(session, email, *wishes[scope], city.id) for scope in scopes}
    return render_template(
        "mail/unsubscribe.html",
        email=email,
        choices=[(scope, _what(scope, req, kind, city.name), stopped[scope]) for scope in scopes],
        staff_alert=kind in KIND_LABELS,
    )
