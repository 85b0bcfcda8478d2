"""Staff accounts: creation, roles, who may manage whom, and argon2 password hashing.

An ``install_admin`` belongs to no city and administers every city and its
administrators. Every other account belongs to one city (``jurisdiction_id``); an
account made before any city existed has none yet and works in the install's default
city. A city's ``admin`` manages the accounts of that city only.
"""

from __future__ import annotations

import re
import secrets

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session, object_session

from spatial.cities import get_city
from spatial.errors import InvalidInput
from spatial.models import ROLES, Jurisdiction, User

EMAIL_RE = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+$")
_hasher = PasswordHasher()
INSTALL_ADMIN = "install_admin"

# Staff who may do everything a role below them may do (admins can act as any role).
ROLE_IMPLIES: dict[str, set[str]] = {
    "install_admin": {"install_admin", "admin", "planner", "dispatcher", "agent", "crew"},
    "admin": {"admin", "planner", "dispatcher", "agent", "crew"},
    "dispatcher": {"dispatcher", "agent"},
    "planner": {"planner"},
    "agent": {"agent"},
    "crew": {"crew"},
    "requester": {"requester"},
}


def validate_email(value: str, field: str = "email") -> str:
    value = (value or "").strip()
    if len(value) > 254 or not EMAIL_RE.match(value):
        raise InvalidInput(f"{value!r} is not a valid e-mail address", field=field)
    return value


MIN_PASSWORD_LENGTH = 12
# Words that every guessing list tries first, with digits and symbols around them.
COMMON_PASSWORD_WORDS = frozenset(
    """
    password passw0rd passwort motdepasse contrasena qwerty qwertyuiop asdfgh asdfghjkl
    azerty zxcvbn zxcvbnm iloveyou letmein welcome welcomeback admin administrator root
    login changeme secret trustno monkey dragon football baseball soccer master sunshine
    princess shadow superman batman starwars whatever abc abcdef abcdefgh abcdefghijkl
    qazwsx qwaszx test testing default guest civicpin city cityhall staff dispatch
    """.split()
)
_RUNS = (
    "0123456789012345678901234567890",
    "abcdefghijklmnopqrstuvwxyz",
    "qwertyuiopasdfghjklzxcvbnm",
)


def password_problem(password: str, email: str) -> str | None:
    """Why ``password`` is too weak for the account ``email``, or None if it is good enough.

    At least 12 characters, not the e-mail address or its name part, not a common
    password with digits or symbols around it, not a run of keys or one short pattern.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"password must be at least {MIN_PASSWORD_LENGTH} characters"
    lowered = password.lower().strip()
    email = (email or "").strip().lower()
    if lowered in {email, email.partition("@")[0]}:
        return "password must not be the e-mail address"
    letters = re.sub(r"[^a-z]", "", lowered)
    if (
        letters in COMMON_PASSWORD_WORDS
        or len(set(lowered)) < 5
        or any(lowered in run or lowered in run[::-1] for run in _RUNS)
    ):
        return "password is too easy to guess: use a longer phrase of unrelated words"
    return None


def check_password(password: str, email: str) -> None:
    """Raise InvalidInput (field ``password``) if ``password`` is too weak for ``email``."""
    problem = password_problem(password, email)
    if problem:
        raise InvalidInput(problem, field="password")


def generate_password() -> str:
    """A random password that passes :func:`password_problem` (16 characters)."""
    while True:
        password = secrets.token_urlsafe(12)
        if password_problem(password, "") is None:
            return password


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
    """Create a staff user. Returns the user and the generated password, if one was made.

    ``role="admin"`` without a city makes an install administrator (the first account of
    a new install). Other roles without a city join the only city there is; with several
    cities, ``city_slug`` must name one.
    """
    email = validate_email(email).lower()
    if role not in ROLES:
        raise InvalidInput(f"role {role!r} is not one of {', '.join(ROLES)}", field="role")
    if role == "admin" and not city_slug:
        role = INSTALL_ADMIN
    if role == INSTALL_ADMIN and city_slug:
        raise InvalidInput(
            "an install administrator belongs to no one city: leave the city out", field="role"
        )
    if password is not None:
        check_password(password, email)
    city = None
    if city_slug:
        city = get_city(session, city_slug)
    elif role != INSTALL_ADMIN and session.scalar(sa.select(Jurisdiction.id).limit(1)):
        city = get_city(session, None)
    if session.scalar(sa.select(User.id).where(sa.func.lower(User.email) == email)):
        raise InvalidInput(f"a user with e-mail {email} already exists", field="email")
    generated = None
    if password is None:
        password = generated = generate_password()
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


def set_password(user: User, password: str | None = None) -> str | None:
    """Give ``user`` a new password (checked), or a generated one, which is returned.

    The change ends every session of the user (a trigger raises their session generation)
    and every reset link mailed to them before.
    """
    generated = None
    if password is None:
        password = generated = generate_password()
    check_password(password, user.email)
    user.password_hash = hash_password(password)
    session = object_session(user)
    if session is not None and user.id is not None:
        # Reset links mailed before were for the old password: they stop working.
        from spatial.password_reset import end_links

        end_links(session, user.id)
    return generated


def is_install_admin(user: User | None) -> bool:
    return user is not None and user.active and user.role == INSTALL_ADMIN


def may_manage_user(actor: User | None, target: User) -> bool:
    """Whether ``actor`` may see and change ``target``'s account.

    Install administrators manage everyone; a city admin the accounts of their own city
    (never an install administrator, never one of another city).
    """
    if actor is None or not actor.active:
        return False
    if actor.role == INSTALL_ADMIN:
        return True
    return (
        actor.role == "admin"
        and target.role != INSTALL_ADMIN
        and actor.jurisdiction_id is not None
        and target.jurisdiction_id == actor.jurisdiction_id
    )


def roles_granted_by(actor: User | None) -> tuple[str, ...]:
    """The roles ``actor`` may give: all for an install administrator, else all but that."""
    if is_install_admin(actor):
        return ROLES
    if actor is not None and actor.active and actor.role == "admin":
        return tuple(r for r in ROLES if r != INSTALL_ADMIN)
    return ()
