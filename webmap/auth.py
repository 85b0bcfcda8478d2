"""Staff sign-in, the current user, and role checks for every staff page.

Passwords are argon2 hashes (``spatial.accounts``); the session cookie is HttpOnly,
SameSite=Lax and Secure behind https. A forbidden action answers 403 and changes nothing:
the role check runs before the view.

Failed sign-ins are throttled per account and per client address in the database
(``spatial.signin``); a locked-out sign-in answers 429 with Retry-After, even with the
right password. An account with a two-factor secret is asked for its 6-digit code after
the password. The cookie carries the user's session generation: logout raises it, which
ends every copy of the cookie, and so does a change of password, role or active flag.

Sign-in lands each role on its own workspace (:data:`HOME`), at the user's city address,
unless the sign-in page was given a safe ``next``; the staff bar of every staff page
links each workspace the user's role may use (:func:`staff_workspaces`). A forgotten
password is reset by a one-time link mailed to the account's address
(``spatial.password_reset``); the pages answer the same for every address typed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from functools import wraps
from urllib.parse import urlsplit

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
    session,
    url_for,
)

from notify.account_mail import send_password_reset
from spatial.accounts import ROLE_IMPLIES
from spatial.cities import CITY_PATH_PREFIX, city_path
from spatial.errors import InvalidInput
from spatial.models import Jurisdiction, User, now_utc
from spatial.password_reset import (
    TooManyResets,
    account_for_reset,
    redeem_reset,
    reset_link_user,
)
from spatial.signin import (
    accept_totp_code,
    code_step,
    locked_seconds,
    new_totp_secret,
    password_matches,
    provisioning_uri,
    record_failure,
    record_success,
)
from webmap.app import db_session, path_city, settings_of

bp = Blueprint("auth", __name__)


def current_user() -> User | None:
    """The signed-in staff user of this request, or None."""
    if "current_user" not in g:
        user = None
        uid = session.get("uid")
        if uid is not None:
            user = db_session().get(User, uid)
            if user is None or not user.active or session.get("gen") != user.session_generation:
                session.clear()
                user = None
        g.current_user = user
    return g.current_user


def has_role(user: User | None, *roles: str) -> bool:
    return user is not None and bool(ROLE_IMPLIES.get(user.role, set()) & set(roles))


def roles_required(*roles: str) -> Callable:
    """View decorator: sign-in page for anonymous visitors, 403 for the wrong role."""

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            user = current_user()
            if user is None:
                if request.method == "GET":
                    return redirect(
                        url_for("auth.login", next=request.script_root + request.full_path)
                    )
                abort(401)
            if not has_role(user, *roles):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


# Each role's own workspace, where sign-in lands it.
HOME = {
    "agent": "agent.index",
    "dispatcher": "dispatch.console",
    "crew": "crew.index",
    "planner": "planner.overview",
    "admin": "admin.index",
    "install_admin": "admin.index",
    "requester": "intranet.index",
}
# The staff bar's workspaces, in its order: (role that may use it, endpoint, label).
WORKSPACES = (
    ("dispatcher", "dispatch.console", "Dispatch"),
    ("agent", "agent.index", "Agent"),
    ("crew", "crew.index", "Crew"),
    ("planner", "planner.overview", "Planner"),
    ("admin", "admin.index", "Admin"),
    # Every city's staff member may file and follow their own requests there.
    ("requester", "intranet.index", "Intranet"),
)


def _current_workspace() -> str | None:
    """The workspace (its role) the page being served belongs to."""
    blueprint = request.blueprint or ""
    if blueprint in ("dispatch", "agent", "crew", "planner", "intranet"):
        return {"dispatch": "dispatcher", "intranet": "requester"}.get(blueprint, blueprint)
    if blueprint.startswith("admin") or request.path.startswith("/admin/"):
        return "admin"
    return None


def staff_workspaces() -> list[dict]:
    """The staff bar's links for the signed-in user: each workspace their role may use,
    with ``current`` set on the one this page belongs to. Empty when nobody is signed in."""
    user = current_user()
    if user is None:
        return []
    here = _current_workspace()
    return [
        {"label": label, "url": url_for(endpoint), "current": role == here}
        for role, endpoint, label in WORKSPACES
        if has_role(user, role) or (role == "requester" and user.jurisdiction_id is not None)
    ]


@bp.app_context_processor
def _staff_bar_context() -> dict:
    # A function, so pages without the bar never look the user up.
    return {"staff_workspaces": staff_workspaces, "current_staff": current_user}


def landing_url(user: User) -> str:
    """Where sign-in takes ``user``: their role's workspace, at their city's address.

    City staff signing in at another city's address, or at the install's address of an
    install serving several cities, go to ``/c/<their city>/...``; with one city, or
    already at their city's address, the link stays where it is.
    """
    target = url_for(HOME.get(user.role, "auth.staff_home"))
    if user.jurisdiction_id is None:
        return target
    city = db_session().get(Jurisdiction, user.jurisdiction_id)
    here = path_city()
    if city is None or here == city.slug:
        return target
    if here is None and db_session().scalar(sa.select(sa.func.count(Jurisdiction.id))) < 2:
        return target
    root = request.script_root
    prefix = request.environ.get("civicpin.city")
    if prefix is not None:
        # Strip the city prefix the address came with: the install's own root is left.
        root = root.removesuffix(f"{CITY_PATH_PREFIX}{prefix}")
    return root + city_path(city.slug) + target.removeprefix(request.script_root)


def _safe_next(target: str | None, user: User | None = None) -> str:
    fallback = landing_url(user) if user is not None else url_for("public.index")
    if not target:
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return fallback
    return target


# How long the code step waits after the password before it asks for the password again.
CODE_STEP_SECONDS = 300


def _client() -> str:
    return request.remote_addr or "unknown"


def _failed(email: str) -> int:
    """Count a failed sign-in for ``email`` and this client; the lock-out it started, if any."""
    settings = settings_of(current_app)
    wait = record_failure(
        db_session(),
        email,
        _client(),
        account_limit=settings.signin_account_limit,
        client_limit=settings.signin_client_limit,
    )
    db_session().commit()
    return wait


def _locked_out(seconds: int, template: str, **context):
    # The same words for every address typed: they must not tell which accounts exist.
    minutes = max(1, math.ceil(seconds / 60))
    error = f"Too many failed sign-ins. Try again in {minutes} minute{'' if minutes == 1 else 's'}."
    body = render_template(template, error=error, **context)
    return body, 429, {"Retry-After": str(max(1, seconds))}


def _start_session(user: User):
    session.clear()
    session["uid"] = user.id
    session["gen"] = user.session_generation
    session.permanent = True
    flash(f"Signed in as {user.email}.")
    return redirect(_safe_next(request.args.get("next"), user))


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    email = ""
    if request.method == "POST":
        email = (request.form.get("email") or "").strip().lower()
        password = request.form.get("password") or ""
        if not email or not password:
            error = "Enter your e-mail address and your password."
            return render_template("auth/login.html", error=error, email=email), 400
        wait = locked_seconds(db_session(), email, _client())
        if wait:
            return _locked_out(wait, "auth/login.html", email=email)
        user = db_session().scalar(sa.select(User).where(sa.func.lower(User.email) == email))
        # Checked at the same cost whether the account exists or not (timing).
        if not password_matches(user, password) or not user.active:
            wait = _failed(email)
            if wait:
                return _locked_out(wait, "auth/login.html", email=email)
            error = "The e-mail address or the password is not right."
        elif user.totp_secret:
            # The account's failures are cleared by the code, not by the password alone.
            session.clear()
            session["pending_uid"] = user.id
            session["pending_gen"] = user.session_generation
            session["pending_at"] = int(time.time())
            return redirect(url_for("auth.login_code", next=request.args.get("next")))
        else:
            record_success(db_session(), email)
            db_session().commit()
            return _start_session(user)
    status = 401 if error else 200
    return render_template("auth/login.html", error=error, email=email), status


def _pending_user() -> User | None:
    """The account whose password was right a moment ago and whose code is awaited."""
    uid = session.get("pending_uid")
    if uid is None or time.time() - session.get("pending_at", 0) > CODE_STEP_SECONDS:
        return None
    user = db_session().get(User, uid)
    if (
        user is None
        or not user.active
        or not user.totp_secret
        or session.get("pending_gen") != user.session_generation
    ):
        return None
    return user


@bp.route("/login/code", methods=["GET", "POST"])
def login_code():
    """The second step for an account with two-factor sign-in: the authenticator's code."""
    user = _pending_user()
    if user is None:
        session.clear()
        return redirect(url_for("auth.login", next=request.args.get("next")))
    error = None
    if request.method == "POST":
        wait = locked_seconds(db_session(), user.email, _client())
        if wait:
            return _locked_out(wait, "auth/login_code.html")
        if accept_totp_code(db_session(), user, request.form.get("code") or ""):
            record_success(db_session(), user.email)
            db_session().commit()
            return _start_session(user)
        db_session().rollback()
        wait = _failed(user.email)
        if wait:
            return _locked_out(wait, "auth/login_code.html")
        error = "That code is not right. Enter the 6-digit code your authenticator app shows now."
    status = 401 if error else 200
    return render_template("auth/login_code.html", error=error), status


def _no_trace(response):
    """Headers of the password reset pages: never cached, and their address (which
    holds the link's secret) never sent on as a Referer."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.route("/login/forgot", methods=["GET", "POST"])
def forgot():
    """Ask for a link to set a new password. The answer is the same whatever the address
    (an account or not, active or not, over its limit or not): it tells no one which
    addresses have an account. Only a client over its own limit is told to wait."""
    if request.method == "GET":
        return _no_trace(current_app.make_response(render_template("auth/forgot.html")))
    email = (request.form.get("email") or "").strip()
    if not email:
        body = render_template(
            "auth/forgot.html", error="Enter the e-mail address of your staff account."
        )
        return _no_trace(current_app.make_response((body, 400)))
    try:
        user = account_for_reset(db_session(), email, _client())
    except TooManyResets as exc:
        db_session().rollback()
        body = render_template("auth/forgot.html", error=str(exc), email=email)
        return _no_trace(
            current_app.make_response((body, 429, {"Retry-After": str(max(1, exc.seconds))}))
        )
    if user is not None:
        send_password_reset(db_session(), user, settings_of(current_app).public_base_url)
    db_session().commit()
    return _no_trace(current_app.make_response(render_template("auth/forgot.html", sent=True)))


@bp.route("/login/reset", methods=["GET", "POST"])
def reset():
    """The mailed link, ``/login/reset?token=SECRET``: GET shows the new-password form and
    changes nothing (mail scanners open links); POST (to the same address) sets the
    password, uses the link up and signs nobody in. The secret is in the query string,
    which the access logs leave out, as they do for residents' private links."""
    secret = request.args.get("token") or ""
    session_ = db_session()
    user = reset_link_user(session_, secret)
    if user is None:
        body = render_template("auth/reset.html", invalid=True)
        return _no_trace(current_app.make_response((body, 404)))
    if request.method == "GET":
        body = render_template("auth/reset.html", email=user.email, errors={})
        return _no_trace(current_app.make_response(body))
    password = request.form.get("password") or ""
    try:
        if password != (request.form.get("confirm") or ""):
            raise InvalidInput("The two passwords are not the same.", field="confirm")
        redeem_reset(session_, secret, password)
    except InvalidInput as exc:
        session_.rollback()
        if exc.field == "link":
            body = render_template("auth/reset.html", invalid=True)
            return _no_trace(current_app.make_response((body, 404)))
        message = str(exc)
        message = message[:1].upper() + message[1:]
        body = render_template(
            "auth/reset.html", email=user.email, errors={exc.field or "password": message}
        )
        return _no_trace(current_app.make_response((body, 400)))
    session_.commit()
    flash("Your new password is set. Sign in with it.")
    return _no_trace(redirect(url_for("auth.login")))


@bp.post("/logout")
def logout():
    """Sign out everywhere: the user's session generation goes up, so every copy of the
    cookie (another browser, a copied one) is signed out too."""
    user = current_user()
    if user is not None:
        db_session().execute(
            sa.update(User)
            .where(User.id == user.id)
            .values(session_generation=User.session_generation + 1)
        )
        db_session().commit()
    session.clear()
    return redirect(url_for("public.index"))


def audit_actor() -> dict:
    """Fields for a RequestEvent written by the signed-in user."""
    user = current_user()
    return {
        "actor_id": user.id if user else None,
        "actor_label": (user.name or user.email) if user else None,
        "at": now_utc(),
    }


@bp.get("/staff")
@roles_required(*ROLE_IMPLIES)
def staff_home():
    """The signed-in staff member's start page."""
    return render_template("auth/staff_home.html", user=current_user())


@bp.route("/staff/two-factor", methods=["GET", "POST"])
@roles_required(*ROLE_IMPLIES)
def two_factor():
    """Turn two-factor sign-in on (a new secret, confirmed with a first code) or off
    (with a current code). Either change signs the user's other sessions out; this
    browser stays signed in."""
    user = current_user()
    error = None
    if request.method == "POST":
        action = request.form.get("action")
        code = request.form.get("code") or ""
        wait = locked_seconds(db_session(), user.email, _client())
        if wait:
            return _locked_out(wait, "auth/two_factor.html", user=user, **_enrolment(user))
        if action == "on" and not user.totp_secret:
            secret = session.get("totp_new_secret")
            step = code_step(secret, code)
            if step is not None:
                user.totp_secret = secret
                user.totp_last_step = step
                return _two_factor_changed(user, "Two-factor sign-in is on.")
        elif action == "off" and user.totp_secret:
            if accept_totp_code(db_session(), user, code):
                user.totp_secret = None
                user.totp_last_step = None
                return _two_factor_changed(user, "Two-factor sign-in is off.")
        else:
            abort(400)
        db_session().rollback()
        wait = _failed(user.email)
        if wait:
            return _locked_out(wait, "auth/two_factor.html", user=user, **_enrolment(user))
        error = "That code is not right. Enter the 6-digit code your authenticator app shows now."
    status = 400 if error else 200
    return render_template(
        "auth/two_factor.html", user=user, error=error, **_enrolment(user)
    ), status


def _enrolment(user: User) -> dict:
    """The new secret to show while two-factor sign-in is off (kept in the session until
    confirmed, so reloading the page shows the same one)."""
    if user.totp_secret:
        session.pop("totp_new_secret", None)
        return {"secret": None, "uri": None}
    secret = session.get("totp_new_secret") or new_totp_secret()
    session["totp_new_secret"] = secret
    return {"secret": secret, "uri": provisioning_uri(secret, user.email)}


def _two_factor_changed(user: User, message: str):
    # The change raised the session generation (a trigger): every other session of the
    # user ends; this one carries on with the new number.
    db_session().commit()
    db_session().refresh(user)
    session.pop("totp_new_secret", None)
    session["gen"] = user.session_generation
    flash(message)
    return redirect(url_for("auth.two_factor"))
