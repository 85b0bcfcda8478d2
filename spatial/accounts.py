"""Staff accounts: creation and argon2 password hashing."""

from __future__ import annotations

import re
import secrets

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session

from spatial.cities import get_city
from spatial.errors import InvalidInput
from spatial.models import ROLES, User

EMAIL_RE = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+$")
_hasher = PasswordHasher()

# Staff who may do everything a role below them may do (admins can act as any role).
ROLE_IMPLIES: dict[str, set[str]] = {
    "admin": {"admin", "planner", "dispatcher", "agent", "crew"},
    "dispatcher": {"dispatcher", "agent"},
    "planner": {"planner"},
    "agent": {"agent"},
    "crew": {"crew"},
}


def validate_email(value: str, field: str = "email") -> str:
    value = (value or "").strip()
    if len(value) > 254 or not EMAIL_RE.match(value):
        raise InvalidInput(f"{value!r} is not a valid e-mail address", field=field)
    return value


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    if not stored_hash:
        return False
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def create_user(
    session: Session,
    *,
    email: str,
    role: str,
    city_slug: str | None = None,
    name: str | None = None,
    password: str | None = None,
) -> tuple[User, str | None]:
    """Create a staff user. Returns the user and the generated password, if one was made."""
    email = validate_email(email).lower()
    if role not in ROLES:
        raise InvalidInput(f"role {role!r} is not one of {', '.join(ROLES)}", field="role")
    if password is not None and len(password) < 10:
        raise InvalidInput("password must be at least 10 characters", field="password")
    city = get_city(session, city_slug) if city_slug else None
    if session.scalar(sa.select(User.id).where(sa.func.lower(User.email) == email)):
        raise InvalidInput(f"a user with e-mail {email} already exists", field="email")
    generated = None
    if password is None:
        password = generated = secrets.token_urlsafe(12)
    user = User(
        email=email,
        role=role,
        name=name,
        jurisdiction_id=city.id if city else None,
        password_hash=hash_password(password),
    )
    session.add(user)
    session.flush()
    return user, generated
