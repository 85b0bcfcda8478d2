"""The intranet: the self-service area of a city's own staff (internal customers).

Signed-in staff of the city file requests of the internal categories (a category asking
for no place shows no map and no address field), follow them on "My requests", read the
staff FAQ and troubleshooting articles, and find the emergency contacts. Anyone signed
out is sent to sign in; an install administrator, or staff of another city, gets 403.
Admins edit the contacts at ``/admin/intranet/contacts`` (articles: ``/admin/faq``).

Thin pages over :mod:`routing.helpdesk` and :func:`intake.submit.submit`.
"""

from __future__ import annotations

from functools import wraps
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for

from intake import faq as faq_domain
from intake.submit import Draft, ValidationFailed, submit
from places.geocoder import geocode
from routing import helpdesk
from routing.actions import STATUS_LABELS
from spatial import admin_audit
from spatial.errors import InvalidInput
from spatial.models import Jurisdiction, Service
from spatial.models_work import IntranetContact
from webmap.app import db_session, settings_of
from webmap.auth import current_user, roles_required
from webmap.staffkit import install_errors, install_headers, staff_city

bp = Blueprint("intranet", __name__)
install_headers(bp)
install_errors(bp)

# Any role: every staff member of the city may use the intranet.
ANY_STAFF = ("requester", "agent", "dispatcher", "crew", "planner", "admin")


def _staff_only(view):
    """Sign-in for visitors; 403 for anyone but active staff of the page's city."""

    @roles_required(*ANY_STAFF)
    @wraps(view)
    def wrapped(*args, **kwargs):
        user = current_user()
        city = staff_city(user)
        if not helpdesk.is_city_staff(user, city):
            abort(403)
        return view(city, *args, **kwargs)

    return wrapped


# --------------------------------------------------------------------------- staff pages


@bp.get("/intranet")
@_staff_only
def index(city: Jurisdiction):
    """Forms, the staff articles (``q`` searches them), contacts and a link to "My requests"."""
    session = db_session()
    q = (request.args.get("q") or "").strip()[:200]
    return render_template(
        "intranet/index.html",
        city=city,
        user=current_user(),
        services=helpdesk.intranet_services(session, city),
        articles=faq_domain.search_articles(session, city, q=q, audience="staff"),
        q=q,
        contacts=helpdesk.contacts(session, city),
        mine=len(helpdesk.my_requests(session, current_user())),
    )


def _answers(service: Service) -> dict[str, Any]:
    """The posted answers to the category's questions (fields ``attribute[CODE]``)."""
    answers: dict[str, Any] = {}
    for attr in service.attributes:
        key = f"attribute[{attr.code}]"
        if attr.datatype == "multivaluelist":
            values = [v for v in request.form.getlist(key) if v.strip()]
            if values:
                answers[attr.code] = values
        elif (value := (request.form.get(key) or "").strip()) != "":
            answers[attr.code] = value
    return answers


def _place(city: Jurisdiction, service: Service, text: str) -> tuple[float, float, str, str | None]:
    """(lat, lon, address, address id) of a typed address; :class:`InvalidInput` on the
    field ``address`` unless the geocoder is sure of one place."""
    found = geocode(db_session(), city, text)
    best = found.confident
    if best is None:
        if found.candidates:
            names = "; ".join(c.address for c in found.candidates[:3])
            raise InvalidInput(f"Which one do you mean? {names}", field="address")
        raise InvalidInput(f"No address like {text[:100]!r} in {city.name}", field="address")
    return best.lat, best.lon, best.address, best.address_id


@bp.route("/intranet/new", methods=["GET", "POST"])
@_staff_only
def new_request(city: Jurisdiction):
    """The form of one internal category (``?service=CODE``); a request filed here is the
    signed-in staff member's own (their "My requests")."""
    session = db_session()
    user = current_user()
    code = (request.values.get("service") or "").strip()[:64]
    service = helpdesk.intranet_service(session, city, code)
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    if request.method == "POST":
        values = request.form.to_dict()
        lat = lon = address = address_id = None
        typed = (request.form.get("address") or "").strip()
        try:
            if service.location_mode != "none" and typed:
                lat, lon, address, address_id = _place(city, service, typed)
            draft = Draft(
                city=city.slug,
                service_code=service.code,
                lat=lat,
                lon=lon,
                address=address,
                address_id=address_id,
                description=request.form.get("description"),
                attributes=_answers(service),
                contact_name=user.name,
                contact_email=user.email,
                channel="web",
                account_id=f"staff:{user.id}",
                requester_id=user.id,
            )
            settings = settings_of(current_app)
            result = submit(
                session,
                draft,
                media_dir=settings.media_dir,
                public_base_url=settings.public_base_url,
                service=service,
            )
            session.commit()
        except ValidationFailed as exc:
            session.rollback()
            errors = dict(exc.errors)
        except InvalidInput as exc:
            session.rollback()
            errors = {exc.field or "form": str(exc)}
        else:
            flash(f"Sent: {service.name}, reference {result.public_id}.")
            return redirect(url_for("intranet.my_requests"), 303)
    return render_template(
        "intranet/form.html",
        city=city,
        user=user,
        service=service,
        values=values,
        errors=errors,
    ), (422 if errors else 200)


@bp.get("/intranet/requests")
@_staff_only
def my_requests(city: Jurisdiction):
    """The signed-in staff member's own requests, newest first, with what is meant for them."""
    return render_template(
        "intranet/my_requests.html",
        city=city,
        user=current_user(),
        items=helpdesk.my_requests(db_session(), current_user()),
        labels=STATUS_LABELS,
    )


@bp.get("/intranet/help/<slug>")
@_staff_only
def article(city: Jurisdiction, slug: str):
    """A staff FAQ or troubleshooting article."""
    art = faq_domain.get_article(db_session(), city, slug[:100], audience="staff")
    return render_template(
        "intranet/article.html",
        city=city,
        user=current_user(),
        article=art,
        blocks=faq_domain.body_blocks(art.body),
    )


# --------------------------------------------------------------- admin: emergency contacts


def _audit(city: Jurisdiction, action: str, object_id: object, **what: Any) -> None:
    """Log the change the view is about to commit (see :mod:`spatial.admin_audit`)."""
    admin_audit.record(
        db_session(),
        action,
        "intranet_contact",
        object_id,
        city=city,
        actor=current_user(),
        what=what,
    )


def _contacts_page(city: Jurisdiction, status: int = 200, **ctx: Any):
    ctx.setdefault("errors", {})
    ctx.setdefault("form", {})
    return render_template(
        "intranet/admin_contacts.html",
        user=current_user(),
        city=city,
        contacts=helpdesk.contacts(db_session(), city),
        **ctx,
    ), status


def _contact_form() -> dict[str, str]:
    return {k: request.form.get(k, "") for k in ("name", "description", "phone", "email")}


def _invalid(city: Jurisdiction, exc: InvalidInput, **ctx: Any):
    db_session().rollback()
    errors = getattr(exc, "errors", None) or {exc.field or "form": str(exc)}
    return _contacts_page(city, 400, errors=errors, form=request.form, **ctx)


@bp.get("/admin/intranet/contacts")
@roles_required("admin")
def contacts():
    """The intranet's emergency contacts, in their order, and the form to add one."""
    return _contacts_page(staff_city(current_user()))


@bp.post("/admin/intranet/contacts")
@roles_required("admin")
def add_contact():
    city = staff_city(current_user())
    session = db_session()
    try:
        contact = helpdesk.save_contact(session, city, _contact_form())
    except InvalidInput as exc:
        return _invalid(city, exc)
    _audit(city, "intranet.contact_add", contact.id, **helpdesk.contact_record(contact))
    session.commit()
    flash(f"Contact {contact.name} added.")
    return redirect(url_for("intranet.contacts"))


@bp.route("/admin/intranet/contacts/<int:contact_id>", methods=["GET", "POST"])
@roles_required("admin")
def edit_contact(contact_id: int):
    """One contact's form (GET) and its change (POST)."""
    city = staff_city(current_user())
    session = db_session()
    editing = next((c for c in helpdesk.contacts(session, city) if c.id == contact_id), None)
    if editing is None:
        abort(404)
    if request.method == "GET":
        return _contacts_page(city, editing=editing, form=helpdesk.contact_record(editing))
    before = helpdesk.contact_record(editing)
    try:
        contact = helpdesk.save_contact(session, city, _contact_form(), contact_id)
    except InvalidInput as exc:
        return _invalid(city, exc, editing=session.get(IntranetContact, contact_id))
    after = helpdesk.contact_record(contact)
    changed = {k: [before[k], v] for k, v in after.items() if before[k] != v}
    _audit(city, "intranet.contact_edit", contact.id, name=contact.name, changed=changed)
    session.commit()
    flash(f"Contact {contact.name} saved.")
    return redirect(url_for("intranet.contacts"))


@bp.post("/admin/intranet/contacts/<int:contact_id>/delete")
@roles_required("admin")
def delete_contact(contact_id: int):
    city = staff_city(current_user())
    session = db_session()
    name = helpdesk.delete_contact(session, city, contact_id)
    _audit(city, "intranet.contact_delete", contact_id, name=name)
    session.commit()
    flash(f"Contact {name} removed.")
    return redirect(url_for("intranet.contacts"))


@bp.post("/admin/intranet/contacts/<int:contact_id>/move")
@roles_required("admin")
def move_contact(contact_id: int):
    """Move a contact one place up or down (``direction``)."""
    city = staff_city(current_user())
    session = db_session()
    direction = (request.form.get("direction") or "").strip()
    try:
        contact = helpdesk.move_contact(session, city, contact_id, direction)
    except InvalidInput as exc:
        return _invalid(city, exc)
    _audit(
        city, "intranet.contact_move", contact_id, direction=direction, position=contact.position
    )
    session.commit()
    return redirect(url_for("intranet.contacts"))
