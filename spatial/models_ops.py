"""Models of the ops work (tables added after the first schema); imported by spatial.models."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from spatial.models import TS, Base, now_utc


class AdminEvent(Base):
    """One change to a city's set-up (rules, layers, users, keys, templates, catalogue,
    settings), written in the same transaction as the change: who, when, what.

    ``actor_label`` is the user's e-mail, or ``cli:<OS user>`` from the command line;
    it stays when the user is deleted. ``what`` holds the changed fields, never a secret
    (see :mod:`spatial.admin_audit`). ``jurisdiction_id`` is empty for install-wide
    changes (a new city, an install administrator).
    """

    __tablename__ = "admin_event"
    __table_args__ = (sa.Index("ix_admin_event_jurisdiction_id_id", "jurisdiction_id", "id"),)

    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(TS, default=now_utc)
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("app_user.id", ondelete="SET NULL"))
    actor_label: Mapped[str] = mapped_column(sa.String(200))
    jurisdiction_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("jurisdiction.id", ondelete="CASCADE")
    )
    action: Mapped[str] = mapped_column(sa.String(64))
    object_type: Mapped[str] = mapped_column(sa.String(64))
    object_id: Mapped[str | None] = mapped_column(sa.String(200))
    what: Mapped[dict[str, Any]] = mapped_column(default=dict)


class RetentionPolicy(Base):
    """How many days after a request is closed a city keeps each kind of personal data
    (``None``: kept); enforced daily by the worker (:mod:`records.retention`).

    ``last_enforced_at`` is claimed with one conditional UPDATE, so of several workers
    only one runs a city's daily enforcement.
    """

    __tablename__ = "retention_policy"
    __table_args__ = (
        sa.CheckConstraint("contact_days > 0", name="contact_days"),
        sa.CheckConstraint("answers_days > 0", name="answers_days"),
        sa.CheckConstraint("raw_mail_days > 0", name="raw_mail_days"),
        sa.CheckConstraint("originals_days > 0", name="originals_days"),
    )

    jurisdiction_id: Mapped[int] = mapped_column(
        sa.ForeignKey("jurisdiction.id", ondelete="CASCADE"), primary_key=True
    )
    contact_days: Mapped[int | None] = mapped_column(sa.Integer)
    answers_days: Mapped[int | None] = mapped_column(sa.Integer)
    raw_mail_days: Mapped[int | None] = mapped_column(sa.Integer)
    originals_days: Mapped[int | None] = mapped_column(sa.Integer)
    last_enforced_at: Mapped[datetime | None] = mapped_column(TS)
    updated_at: Mapped[datetime] = mapped_column(TS, default=now_utc)
    updated_by: Mapped[str | None] = mapped_column(sa.String(200))


class PasswordReset(Base):
    """A one-time link to set a new password, mailed to the account's address.

    Only a SHA-256 digest of the link's secret is kept, so the table does not hold a
    usable link. ``used_at`` is set when the link sets a password; a used or expired
    link does nothing.
    """

    __tablename__ = "password_reset"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("app_user.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(TS, default=now_utc)
    expires_at: Mapped[datetime] = mapped_column(TS)
    used_at: Mapped[datetime | None] = mapped_column(TS)


class RerouteJob(Base):
    """Re-routing a city's open requests after a rule set ('rules') or a zone layer
    version ('layer', ``subject_id`` the layer version) is published; the worker runs
    it and writes its progress here, which the admin page shows."""

    __tablename__ = "reroute_job"
    __table_args__ = (
        sa.CheckConstraint("kind IN ('rules', 'layer')", name="kind"),
        sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="status"),
        sa.Index("ix_reroute_job_jurisdiction_id_id", "jurisdiction_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    jurisdiction_id: Mapped[int] = mapped_column(
        sa.ForeignKey("jurisdiction.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(sa.String(8))
    subject_id: Mapped[int | None] = mapped_column(sa.Integer)
    status: Mapped[str] = mapped_column(sa.String(8), default="queued", server_default="queued")
    total: Mapped[int | None] = mapped_column(sa.Integer)
    done: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    moved: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_by: Mapped[str | None] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(TS, default=now_utc)
    started_at: Mapped[datetime | None] = mapped_column(TS)
    finished_at: Mapped[datetime | None] = mapped_column(TS)
