"""Staff sign-in, the current user, and role checks for every staff page.

Passwords are argon2 hashes (``spatial.accounts``); the session cookie is HttpOnly,
SameSite=Lax and Secure behind https. A forbidden action answers 403 and changes nothing:
the role check runs before the view.

Failed sign-ins are throttled per account and per client address in the database
(``spatial.signin``); a locked-out sign-in answers 429 with Retry-After, even with the
right password. An account with a two-factor secret is asked for its 6-digit code after
the password. The cookie carries the user's session generation: logout raises it, which
ends every copy of the cookie, and so does a change of password, role or active flag.
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

from spatial.accounts import ROLE_IMPLIES
from spatial.models import User, now_utc
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
from webmap.app import db_session, settings_of

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


def _safe_next(target: str | None) -> str:
    if not target:
        return url_for("public.index")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/"):
        return url_for("public.index")
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
    return redirect(_safe_next(request.args.get("next")))


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
