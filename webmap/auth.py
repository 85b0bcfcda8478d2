"""Staff sign-in, the current user, and role checks for every staff page.

Passwords are argon2 hashes (``spatial.accounts``); the session cookie is HttpOnly,
SameSite=Lax and Secure behind https. A forbidden action answers 403 and changes nothing:
the role check runs before the view.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import (
    Blueprint,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from spatial.accounts import ROLE_IMPLIES, verify_password
from spatial.models import User, now_utc
from webmap.app import db_session

bp = Blueprint("auth", __name__)


def current_user() -> User | None:
    """The signed-in staff user of this request, or None."""
    if "current_user" not in g:
        user = None
        uid = session.get("uid")
        if uid is not None:
            user = db_session().get(User, uid)
            if user is None or not user.active or session.get("pwh") != _pw_marker(user):
                session.clear()
                user = None
        g.current_user = user
    return g.current_user


def _pw_marker(user: User) -> str:
    # Changing the password (or deactivating) ends every existing session of that user.
    return (user.password_hash or "")[-16:]


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
                    return redirect(url_for("auth.login", next=request.full_path))
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


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    email = ""
    if request.method == "POST":
        email = (request.form.get("email") or "").strip().lower()
        password = request.form.get("password") or ""
        user = db_session().scalar(sa.select(User).where(sa.func.lower(User.email) == email))
        if user is None or not user.active or not verify_password(user.password_hash, password):
            error = "The e-mail address or the password is not right."
        else:
            session.clear()
            session["uid"] = user.id
            session["pwh"] = _pw_marker(user)
            session.permanent = True
            flash(f"Signed in as {user.email}.")
            return redirect(_safe_next(request.args.get("next")))
    status = 401 if error else 200
    return render_template("auth/login.html", error=error, email=email), status


@bp.post("/logout")
def logout():
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
