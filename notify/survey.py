"""The satisfaction survey behind the resolution e-mail: one-time, expiring, signed links.

A link carries a signed nonce; the nonce's ``survey_token`` row says which request it is
for, when it expires and whether it was used. Answering stores one ``survey_response`` per
request (so per department and crew through the request) and marks the nonce used, in one
transaction with the token row locked, so two tabs cannot both answer.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from notify.links import SURVEY_SALT, BadLink, ExpiredLink, sign, verify
from spatial.errors import CivicpinError, InvalidInput
from spatial.models import ServiceRequest, SurveyResponse, now_utc
from spatial.models_mail import SurveyToken

SURVEY_DAYS = 30
MAX_COMMENT = 2000
ASPECTS = (
    ("timeliness", "How quickly it was dealt with"),
    ("quality", "The quality of the work"),
    ("communication", "How we kept you informed"),
)


class AlreadyAnswered(CivicpinError):
    """The survey of this link (or of its request) was already answered."""


@dataclass
class SurveyContext:
    token: SurveyToken
    request: ServiceRequest


def create_link(
    session: Session,
    request: ServiceRequest,
    public_base_url: str,
    email: str | None,
    now: datetime | None = None,
) -> tuple[str, SurveyToken]:
    """A new one-time survey link for ``request`` (a token row in the caller's transaction)."""
    now = now or now_utc()
    token = SurveyToken(
        request_id=request.id,
        nonce=secrets.token_urlsafe(24),
        email=email,
        created_at=now,
        expires_at=now + timedelta(days=SURVEY_DAYS),
    )
    session.add(token)
    session.flush()
    signed = sign(session, request.jurisdiction_id, SURVEY_SALT, {"n": token.nonce})
    return f"{public_base_url}/survey/{signed}", token


def open_survey(
    session: Session, signed: str, now: datetime | None = None, lock: bool = False
) -> SurveyContext:
    """The token and request of a link; raises BadLink, ExpiredLink or AlreadyAnswered."""
    payload = verify(session, signed, SURVEY_SALT, max_age=SURVEY_DAYS * 86400 + 3600)
    stmt = sa.select(SurveyToken).where(SurveyToken.nonce == str(payload.get("n")))
    if lock:
        stmt = stmt.with_for_update()
    token = session.scalar(stmt)
    if token is None:
        raise BadLink("This survey link is not valid.")
    now = now or now_utc()
    if token.used_at is not None:
        raise AlreadyAnswered("Thank you: this survey has already been answered.")
    if token.expires_at <= now:
        raise ExpiredLink(
            f"This survey link expired on {token.expires_at:%d %B %Y}. Thank you all the same."
        )
    request = session.get(ServiceRequest, token.request_id)
    if request is None:
        raise BadLink("This survey link is not valid.")
    answered = session.scalar(
        sa.select(sa.literal(True)).where(SurveyResponse.request_id == request.id)
    )
    if answered:
        raise AlreadyAnswered("Thank you: this survey has already been answered.")
    return SurveyContext(token, request)


def _score(form: dict[str, Any], name: str, required: bool, errors: dict[str, str]) -> int | None:
    raw = (form.get(name) or "").strip()
    if not raw:
        if required:
            errors[name] = "Choose a rating from 1 to 5"
        return None
    if raw not in {"1", "2", "3", "4", "5"}:
        errors[name] = "Choose a number from 1 to 5"
        return None
    return int(raw)


def validate_answers(form: dict[str, Any]) -> dict[str, Any]:
    """Clean survey answers or ``InvalidInput`` carrying ``errors`` (field -> message)."""
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {"rating": _score(form, "rating", True, errors)}
    for name, _label in ASPECTS:
        clean[name] = _score(form, name, False, errors)
    comment = (form.get("comment") or "").replace("\r\n", "\n").strip()
    if len(comment) > MAX_COMMENT:
        errors["comment"] = f"Keep the comment to {MAX_COMMENT} characters"
    clean["comment"] = comment or None
    if errors:
        exc = InvalidInput(next(iter(errors.values())), field=next(iter(errors)))
        exc.errors = errors  # type: ignore[attr-defined]
        raise exc
    return clean


def answer(
    session: Session, signed: str, form: dict[str, Any], now: datetime | None = None
) -> SurveyResponse:
    """Validate and store the answers; the link is used up in the same transaction."""
    answers = validate_answers(form)
    ctx = open_survey(session, signed, now=now, lock=True)
    now = now or now_utc()
    response = SurveyResponse(request_id=ctx.request.id, submitted_at=now, **answers)
    session.add(response)
    ctx.token.used_at = now
    session.flush()
    return response
