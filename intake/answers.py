"""Answers a request still lacks: a channel that cannot ask (an intake e-mail address)
files a request whose required questions have no default as "needs answers"; the
dispatcher asks the reporter and fills them in here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from intake.submit import unanswered_required, validate_answers
from routing import actions
from spatial.errors import InvalidInput
from spatial.models import RequestEvent, Service, ServiceRequest, User, now_utc

ANSWERED = "answered"  # the internal event of answers filled in by staff


def answer_questions(
    session: Session,
    user: User,
    request: ServiceRequest,
    answers: dict[str, Any],
    now: datetime | None = None,
) -> list[str]:
    """Store staff's answers to the request's questions; returns the codes answered.

    ``answers`` maps question code to a value (a list for a multivaluelist); empty ones
    are ignored. Each answer is checked as at intake (``attribute[CODE]`` names the field
    of a bad one). When no required question is left unanswered the request no longer
    needs answers. One internal event records what was answered.
    """
    actions.require(user, "triage", request)
    service = session.get(Service, request.service_id)
    given = {
        code: value
        for code, value in answers.items()
        if value not in (None, "", []) and not (isinstance(value, str) and not value.strip())
    }
    if not given:
        raise InvalidInput("Answer at least one question", field="answers")
    merged = {**(request.attributes or {}), **given}
    clean, errors = validate_answers(service, merged)
    # Unanswered required questions are not errors here (the flag stays); wrong answers are.
    still_missing = {a.code for a in unanswered_required(service, merged)}
    errors = {
        key: msg
        for key, msg in errors.items()
        if key.removeprefix("attribute[").removesuffix("]") not in still_missing
    }
    if errors:
        field, message = next(iter(errors.items()))
        raise InvalidInput(message, field=field)
    answered = [code for code in given if code in clean]
    was_needed = bool(request.needs_answers)
    request.attributes = clean or None
    request.needs_answers = bool(still_missing)
    now = now or now_utc()
    note = "Answered: " + ", ".join(answered)
    if was_needed and not still_missing:
        note += "; every required question is answered now"
    elif still_missing:
        note += "; still unanswered: " + ", ".join(sorted(still_missing))
    session.add(
        RequestEvent(
            request_id=request.id,
            at=now,
            actor_id=user.id,
            actor_label=user.name or user.email,
            kind=ANSWERED,
            to_value=", ".join(answered),
            note=note,
            public=False,
            department_id=request.department_id,
        )
    )
    request.updated_at = now
    return answered
