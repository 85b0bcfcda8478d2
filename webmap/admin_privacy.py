"""The retention settings page, ``/admin/privacy``: how long the city keeps residents'
personal data after a request is closed (:mod:`records.retention`).

On the admin blueprint (admin-only, like every admin page), for the administrator's city.
A bad period re-renders the form with the message next to its field and status 400, and
nothing is written; a change is logged in the admin audit log.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for

from records import retention
from spatial.errors import InvalidInput
from spatial.models import Jurisdiction
from webmap.admin import _audit, _city, _invalid, _page, bp
from webmap.app import db_session
from webmap.auth import current_user, roles_required

# The form's fields, with the words the page uses for each.
FIELDS = {
    "contact_days": "Contact data",
    "answers_days": "Private answers",
    "raw_mail_days": "Inbound e-mail",
    "originals_days": "Photo originals",
}


def _ctx(city: Jurisdiction) -> dict[str, Any]:
    return {"policy": retention.get_policy(db_session(), city), "fields": FIELDS}


@bp.get("/privacy")
@roles_required("admin")
def privacy():
    city = _city()
    ctx = _ctx(city)
    policy = ctx["policy"]
    form = {
        name: "" if getattr(policy, name, None) is None else str(getattr(policy, name))
        for name in FIELDS
    }
    return _page("privacy.html", form=form, **ctx)


@bp.post("/privacy")
@roles_required("admin")
def save_privacy():
    city = _city()
    session = db_session()
    try:
        periods = {
            name: retention.parse_days(request.form.get(name), label, field=name)
            for name, label in FIELDS.items()
        }
    except InvalidInput as exc:
        return _invalid("privacy.html", exc, **_ctx(city))
    before = retention.get_policy(session, city)
    old = {name: getattr(before, name, None) for name in FIELDS}
    user = current_user()
    retention.set_policy(session, city, periods, updated_by=user.email)
    changed = {name: [old[name], periods[name]] for name in FIELDS if old[name] != periods[name]}
    if changed:
        _audit("retention.set", "retention_policy", city.id, **changed)
    session.commit()
    flash("Retention periods saved. The worker applies them once a day.")
    return redirect(url_for("admin.privacy"))
