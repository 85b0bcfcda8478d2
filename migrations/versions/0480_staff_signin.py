"""Staff sign-in: shared throttling, revocable sessions and optional two-factor codes

Revision ID: 0480
Revises: 0470

``signin_attempt`` counts failed sign-ins per account (the e-mail typed, known or not) and
per client address, with the lock-out each has earned. It lives in the database so every
worker and machine enforces the same limits; its keys are digests, so the table holds no
typed e-mail address or client address.

``app_user.session_generation`` is copied into the session cookie at sign-in; a session
whose number differs is over. Logout raises it, and so does this trigger whenever the
password, the role, the active flag or the two-factor secret changes, whatever wrote the
change (a page, the command line, a script).

``totp_secret`` turns on two-factor sign-in for the account; ``totp_last_step`` is the time
step of the last code accepted, so a code cannot be used twice.
"""

import sqlalchemy as sa
from alembic import op

revision = "0480"
down_revision = "0470"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "app_user",
        sa.Column("session_generation", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column("app_user", sa.Column("totp_secret", sa.String(length=64), nullable=True))
    op.add_column("app_user", sa.Column("totp_last_step", sa.BigInteger(), nullable=True))
    op.create_table(
        "signin_attempt",
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lockouts", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('account','client')", name=op.f("ck_signin_attempt_kind")),
        sa.PrimaryKeyConstraint("kind", "key", name=op.f("pk_signin_attempt")),
    )
    op.execute(
        "CREATE FUNCTION app_user_end_sessions() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        "BEGIN\n"
        "IF NEW.password_hash IS DISTINCT FROM OLD.password_hash\n"
        "   OR NEW.role IS DISTINCT FROM OLD.role\n"
        "   OR NEW.active IS DISTINCT FROM OLD.active\n"
        "   OR NEW.totp_secret IS DISTINCT FROM OLD.totp_secret THEN\n"
        "  NEW.session_generation := OLD.session_generation + 1;\n"
        "END IF;\n"
        "RETURN NEW;\n"
        "END\n$$"
    )
    op.execute(
        "CREATE TRIGGER app_user_end_sessions BEFORE UPDATE ON app_user "
        "FOR EACH ROW EXECUTE FUNCTION app_user_end_sessions()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS app_user_end_sessions ON app_user")
    op.execute("DROP FUNCTION IF EXISTS app_user_end_sessions()")
    op.drop_table("signin_attempt")
    op.drop_column("app_user", "totp_last_step")
    op.drop_column("app_user", "totp_secret")
    op.drop_column("app_user", "session_generation")
