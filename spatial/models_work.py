"""Models of the service loop: escalation policies and the departments' digests,
projects and their milestones, the intranet's emergency contacts, and the category
classifier; imported by spatial.models."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy.orm import Mapped, mapped_column, relationship

from spatial.models import TS, Base, now_utc

PROJECT_STATUSES = ("planned", "active", "on_hold", "done", "cancelled")
OPEN_PROJECT_STATUSES = frozenset({"planned", "active", "on_hold"})


class EscalationPolicy(Base):
    """When a city's open requests escalate (routing.escalation).

    The row with no ``service_id`` is the city's default; a category's own row replaces it
    for that category. Level 1 is reached when a request is untriaged for
    ``untriaged_minutes`` or, with ``when_overdue``, past its due time (the business clock
    set ``due_at``); level 2 comes ``level2_minutes`` after level 1. An empty number turns
    that trigger off.
    """

    __tablename__ = "escalation_policy"
    __table_args__ = (
        sa.UniqueConstraint("jurisdiction_id", "service_id", postgresql_nulls_not_distinct=True),
        sa.CheckConstraint("untriaged_minutes > 0", name="untriaged_minutes"),
        sa.CheckConstraint("level2_minutes > 0", name="level2_minutes"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    jurisdiction_id: Mapped[int] = mapped_column(
        sa.ForeignKey("jurisdiction.id", ondelete="CASCADE"), index=True
    )
    service_id: Mapped[int | None] = mapped_column(sa.ForeignKey("service.id", ondelete="CASCADE"))
    untriaged_minutes: Mapped[int | None] = mapped_column(sa.Integer)
    when_overdue: Mapped[bool] = mapped_column(sa.Boolean, default=True, server_default=sa.true())
    level2_minutes: Mapped[int | None] = mapped_column(sa.Integer)
    updated_at: Mapped[datetime] = mapped_column(TS, default=now_utc)


class DepartmentDigest(Base):
    """The local day a department's morning digest was last sent: claimed with one
    conditional UPDATE, so of several workers only one sends it."""

    __tablename__ = "department_digest"

    department_id: Mapped[int] = mapped_column(
        sa.ForeignKey("department.id", ondelete="CASCADE"), primary_key=True
    )
    sent_on: Mapped[date] = mapped_column(sa.Date)


class Project(Base):
    """Work that groups requests ("Repave Main St"): an owner, a status, a target date,
    milestones and, optionally, an area drawn on the map. Requests join it through
    ``service_request.project_id``."""

    __tablename__ = "project"
    __table_args__ = (
        sa.CheckConstraint(
            "status IN ('planned', 'active', 'on_hold', 'done', 'cancelled')", name="status"
        ),
        sa.Index("ix_project_jurisdiction_id_status", "jurisdiction_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    jurisdiction_id: Mapped[int] = mapped_column(
        sa.ForeignKey("jurisdiction.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str | None] = mapped_column(sa.Text)
    owner_id: Mapped[int | None] = mapped_column(sa.ForeignKey("app_user.id", ondelete="SET NULL"))
    department_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("department.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(sa.String(16), default="planned", server_default="planned")
    target_date: Mapped[date | None] = mapped_column(sa.Date)
    area = mapped_column(Geometry("GEOMETRY", srid=4326, spatial_index=True))
    created_at: Mapped[datetime] = mapped_column(TS, default=now_utc)
    updated_at: Mapped[datetime] = mapped_column(TS, default=now_utc)
    closed_at: Mapped[datetime | None] = mapped_column(TS)
    # The message the requests were resolved with when the project closed.
    close_message: Mapped[str | None] = mapped_column(sa.Text)

    milestones: Mapped[list[ProjectMilestone]] = relationship(
        back_populates="project",
        order_by="ProjectMilestone.position",
        cascade="all, delete-orphan",
    )


class ProjectMilestone(Base):
    __tablename__ = "project_milestone"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        sa.ForeignKey("project.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(sa.String(200))
    due_date: Mapped[date | None] = mapped_column(sa.Date)
    done_at: Mapped[datetime | None] = mapped_column(TS)
    position: Mapped[int] = mapped_column(sa.Integer, default=0)

    project: Mapped[Project] = relationship(back_populates="milestones")


class IntranetContact(Base):
    """An emergency or help contact on the intranet's self-service page ("IT on call")."""

    __tablename__ = "intranet_contact"

    id: Mapped[int] = mapped_column(primary_key=True)
    jurisdiction_id: Mapped[int] = mapped_column(
        sa.ForeignKey("jurisdiction.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str | None] = mapped_column(sa.String(500))
    phone: Mapped[str | None] = mapped_column(sa.String(50))
    email: Mapped[str | None] = mapped_column(sa.String(254))
    position: Mapped[int] = mapped_column(sa.Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(TS, default=now_utc)


class CategoryModel(Base):
    """A city's category classifier, trained on its own history (routing.classify).

    ``model`` is the fitted scikit-learn pipeline as written by ``skops`` or joblib;
    ``top1`` and ``top3`` are its accuracy on the held-out part of the history, beside
    ``baseline`` (always guessing the most common category).
    """

    __tablename__ = "category_model"

    jurisdiction_id: Mapped[int] = mapped_column(
        sa.ForeignKey("jurisdiction.id", ondelete="CASCADE"), primary_key=True
    )
    trained_at: Mapped[datetime] = mapped_column(TS, default=now_utc)
    model: Mapped[bytes] = mapped_column(sa.LargeBinary, deferred=True)
    requests: Mapped[int] = mapped_column(sa.Integer)
    categories: Mapped[int] = mapped_column(sa.Integer)
    top1: Mapped[float | None] = mapped_column(sa.Float)
    top3: Mapped[float | None] = mapped_column(sa.Float)
    baseline: Mapped[float | None] = mapped_column(sa.Float)
