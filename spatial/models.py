"""The data model (DESIGN.md section 3), with GeoAlchemy2 geometries in EPSG:4326.

Every geometry column is SRID 4326 (lon, lat) with a GiST index; distances and grids
are computed in the jurisdiction's metric SRID or as geography.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSONB, list[Any]: JSONB}


def now_utc() -> datetime:
    return datetime.now().astimezone()


TS = sa.DateTime(timezone=True)


class Status(enum.StrEnum):
    """Internal request statuses; Open311 sees only open/closed (see ``OPEN_STATUSES``)."""

    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "in_progress"
    REFERRED = "referred"
    RESOLVED = "resolved"
    CANT_FIX = "cant_fix"
    DUPLICATE = "duplicate"
    CANCELLED = "cancelled"
    CLOSED = "closed"


OPEN_STATUSES = frozenset({Status.NEW, Status.ACKNOWLEDGED, Status.IN_PROGRESS})
# The predicate of the partial GiST index of open requests' locations: a query uses that
# index only if it states the same condition, word for word (intake.duplicates does).
OPEN_LOCATION_PREDICATE = "status IN ('new', 'acknowledged', 'in_progress')"
CLOSED_STATUSES = frozenset(set(Status) - OPEN_STATUSES)

CHANNELS = ("web", "mobile", "api", "email", "phone", "in_person", "mail", "import")
# The internal event intake writes when a new request may repeat open ones nearby.
POSSIBLE_DUPLICATE = "possible_duplicate"
# An install_admin administers the installation (every city, and the city admins); every
# other role works in its one city (``User.jurisdiction_id``).
# A requester is an internal customer: a staff member of another department who files
# requests on the intranet (often with no place: a password reset) and sees their own.
ROLES = ("requester", "agent", "dispatcher", "crew", "planner", "admin", "install_admin")
PRIORITIES = ("low", "normal", "high", "urgent")
# Service.location_mode and Service.sla_clock values.
LOCATION_MODES = ("required", "optional", "none")
SLA_CLOCKS = ("business", "calendar")


class Jurisdiction(Base):
    __tablename__ = "jurisdiction"
    __table_args__ = (
        sa.CheckConstraint("moderation_hold IN ('none', 'email', 'all')", name="moderation_hold"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    timezone: Mapped[str] = mapped_column(sa.String(64))
    metric_srid: Mapped[int] = mapped_column(sa.Integer, default=3857)
    public_id_prefix: Mapped[str] = mapped_column(sa.String(8))
    # Deferred: a city outline is hundreds of kilobytes (LA's: 15,000 points), and the
    # hot paths (every Open311 POST looks its city up) only need it inside SQL.
    boundary = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=True), deferred=True)
    business_calendar: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # Open311 jurisdiction ids that name this city besides its slug ("lacity.org").
    open311_ids: Mapped[list[str]] = mapped_column(
        sa.ARRAY(sa.Text), default=list, server_default="{}"
    )
    # A host name of the city's own ("311.cambridge.example"): its pages' address, besides
    # PUBLIC_BASE_URL/c/<slug>/ (spatial.cities.city_base_url).
    host: Mapped[str | None] = mapped_column(sa.String(253), unique=True)
    created_at: Mapped[datetime] = mapped_column(TS, default=now_utc)
    # Which new reports wait for a dispatcher before the public sees them: none, those
    # from e-mail, or all (records.moderation.HOLD_MODES).
    moderation_hold: Mapped[str] = mapped_column(
        sa.String(8), default="none", server_default="none"
    )
    # How many days after resolution the reporter may say "not fixed" and reopen it.
    reopen_days: Mapped[int] = mapped_column(sa.Integer, default=14, server_default="14")
    # The local hour (0-23) of the departments' morning digest of overdue and escalated work.
    digest_hour: Mapped[int] = mapped_column(sa.SmallInteger, default=7, server_default="7")

    departments: Mapped[list[Department]] = relationship(back_populates="jurisdiction")


class Department(Base):
    __tablename__ = "department"
    __table_args__ = (sa.UniqueConstraint("jurisdiction_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    jurisdiction_id: Mapped[int] = mapped_column(
        sa.ForeignKey("jurisdiction.id", ondelete="CASCADE"), index=True
    )
    code: Mapped[str] = mapped_column(sa.String(64))
    name: Mapped[str] = mapped_column(sa.String(200))
    email: Mapped[str | None] = mapped_column(sa.String(254))
    # Who hears of the second level of an escalation (a director); the first level goes
    # to the department's supervisors (staff_department.supervisor).
    escalation_email: Mapped[str | None] = mapped_column(sa.String(254))

    jurisdiction: Mapped[Jurisdiction] = relationship(back_populates="departments")
    crews: Mapped[list[Crew]] = relationship(back_populates="department")


class Crew(Base):
    __tablename__ = "crew"
    __table_args__ = (sa.UniqueConstraint("department_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    department_id: Mapped[int] = mapped_column(
        sa.ForeignKey("department.id", ondelete="CASCADE"), index=True
    )
    code: Mapped[str] = mapped_column(sa.String(64))
    name: Mapped[str] = mapped_column(sa.String(200))

    department: Mapped[Department] = relationship(back_populates="crews")


class ZoneLayer(Base):
    """One version of a named layer; re-importing a layer adds a version."""

    __tablename__ = "zone_layer"
    __table_args__ = (sa.UniqueConstraint("jurisdiction_id", "name", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    jurisdiction_id: Mapped[int] = mapped_column(
        sa.ForeignKey("jurisdiction.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(100))
    title: Mapped[str | None] = mapped_column(sa.String(200))
    version: Mapped[int] = mapped_column(sa.Integer, default=1)
    is_current: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    source: Mapped[str | None] = mapped_column(sa.String(500))
    imported_at: Mapped[datetime] = mapped_column(TS, default=now_utc)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSONB)

    zones: Mapped[list[Zone]] = relationship(back_populates="layer")


class Zone(Base):
    __tablename__ = "zone"
    __table_args__ = (sa.UniqueConstraint("layer_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    layer_id: Mapped[int] = mapped_column(
        sa.ForeignKey("zone_layer.id", ondelete="CASCADE"), index=True
    )
    code: Mapped[str] = mapped_column(sa.String(100))
    name: Mapped[str] = mapped_column(sa.String(200))
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=True), nullable=False)
    department_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("department.id", ondelete="SET NULL")
    )
    crew_id: Mapped[int | None] = mapped_column(sa.ForeignKey("crew.id", ondelete="SET NULL"))
    population: Mapped[int | None] = mapped_column(sa.Integer)
    properties: Mapped[dict[str, Any] | None] = mapped_column(JSONB)

    layer: Mapped[ZoneLayer] = relationship(back_populates="zones")


class Service(Base):
    """A request category (Open311 service)."""

    __tablename__ = "service"
    __table_args__ = (
        sa.UniqueConstraint("jurisdiction_id", "code"),
        sa.CheckConstraint(
            "location_mode IN ('required', 'optional', 'none')", name="location_mode"
        ),
        sa.CheckConstraint(
            "default_priority IN ('low', 'normal', 'high', 'urgent')", name="default_priority"
        ),
        sa.CheckConstraint("sla_clock IN ('business', 'calendar')", name="sla_clock"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    jurisdiction_id: Mapped[int] = mapped_column(
        sa.ForeignKey("jurisdiction.id", ondelete="CASCADE"), index=True
    )
    code: Mapped[str] = mapped_column(sa.String(64))
    name: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str | None] = mapped_column(sa.Text)
    group: Mapped[str | None] = mapped_column("group_name", sa.String(100))
    keywords: Mapped[list[Any] | None] = mapped_column(JSONB)
    type: Mapped[str] = mapped_column(sa.String(16), default="realtime")
    private: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    contact_required: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    notice: Mapped[str | None] = mapped_column(sa.Text)
    default_department_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("department.id", ondelete="SET NULL")
    )
    sla_hours: Mapped[float | None] = mapped_column(sa.Float)
    # Where a report must be: 'required' (a pin inside the city), 'optional', or 'none'
    # (no place asked: an IT help-desk request). See LOCATION_MODES.
    location_mode: Mapped[str] = mapped_column(
        sa.String(8), default="required", server_default="required"
    )
    # A new request's priority when no routing rule sets one.
    default_priority: Mapped[str] = mapped_column(
        sa.String(16), default="normal", server_default="normal"
    )
    # 'business': sla_hours count the city's business hours (elapsed hours when the city
    # has no calendar); 'calendar': elapsed hours. See SLA_CLOCKS.
    sla_clock: Mapped[str] = mapped_column(
        sa.String(8), default="business", server_default="business"
    )
    # Reports of this category are about a thing of this asset layer (a street light):
    # the report map shows the layer's nearby assets (places.assets).
    asset_layer_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("asset_layer.id", ondelete="SET NULL")
    )
    # For staff only (the internal help desk: "password reset", "new laptop"): offered on
    # the intranet and to agents, never on a public page, map, feed or API answer; its
    # requests are seen by their requester and the department only.
    internal: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())

    attributes: Mapped[list[ServiceAttribute]] = relationship(
        back_populates="service", order_by="ServiceAttribute.order", cascade="all, delete-orphan"
    )


class ServiceAttribute(Base):
    """An Open311 attribute definition (a question asked for a category)."""

    __tablename__ = "service_attribute"
    __table_args__ = (
        sa.UniqueConstraint("service_id", "code"),
        sa.CheckConstraint(
            "datatype IN ('string','number','datetime','text','singlevaluelist','multivaluelist')",
            name="datatype",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(
        sa.ForeignKey("service.id", ondelete="CASCADE"), index=True
    )
    code: Mapped[str] = mapped_column(sa.String(64))
    datatype: Mapped[str] = mapped_column(sa.String(20))
    description: Mapped[str] = mapped_column(sa.Text)
    datatype_description: Mapped[str | None] = mapped_column(sa.Text)
    required: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    variable: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    order: Mapped[int] = mapped_column("position", sa.Integer, default=0)
    values: Mapped[list[Any] | None] = mapped_column(JSONB)
    # The answer taken when a channel that cannot ask (an intake e-mail address) files a
    # request: a string, or a list for a multivaluelist. Without one, a required question
    # left unanswered marks the request ``needs_answers``.
    default_value: Mapped[Any | None] = mapped_column(JSONB(none_as_null=True), nullable=True)

    service: Mapped[Service] = relationship(back_populates="attributes")


class RuleSet(Base):
    """A versioned, ordered set of routing rules; one is published per jurisdiction."""

    __tablename__ = "routing_ruleset"
    __table_args__ = (
        sa.UniqueConstraint("jurisdiction_id", "version"),
        sa.CheckConstraint("status IN ('draft','published','retired')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    jurisdiction_id: Mapped[int] = mapped_column(
        sa.ForeignKey("jurisdiction.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(sa.Integer)
    status: Mapped[str] = mapped_column(sa.String(16), default="draft")
    note: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(TS, default=now_utc)
    published_at: Mapped[datetime | None] = mapped_column(TS)

    rules: Mapped[list[RoutingRule]] = relationship(
        back_populates="ruleset", order_by="RoutingRule.position", cascade="all, delete-orphan"
    )


class RoutingRule(Base):
    """Match (category | group | any) x (layer zone | any zone of layer | anywhere)."""

    __tablename__ = "routing_rule"

    id: Mapped[int] = mapped_column(primary_key=True)
    ruleset_id: Mapped[int] = mapped_column(
        sa.ForeignKey("routing_ruleset.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(sa.Integer)
    name: Mapped[str] = mapped_column(sa.String(200))
    service_id: Mapped[int | None] = mapped_column(sa.ForeignKey("service.id", ondelete="CASCADE"))
    service_group: Mapped[str | None] = mapped_column(sa.String(100))
    layer_name: Mapped[str | None] = mapped_column(sa.String(100))
    zone_code: Mapped[str | None] = mapped_column(sa.String(100))
    department_id: Mapped[int] = mapped_column(sa.ForeignKey("department.id", ondelete="CASCADE"))
    crew_id: Mapped[int | None] = mapped_column(sa.ForeignKey("crew.id", ondelete="SET NULL"))
    crew_from_zone: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    # None: the category's default priority (Service.default_priority).
    priority: Mapped[str | None] = mapped_column(sa.String(16))
    sla_hours: Mapped[float | None] = mapped_column(sa.Float)
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    # The rule matches only a request about an asset whose attribute asset_attribute
    # equals asset_value, ignoring case ("Owner" = "State"). Both or neither are set.
    asset_attribute: Mapped[str | None] = mapped_column(sa.String(100))
    asset_value: Mapped[str | None] = mapped_column(sa.String(200))

    ruleset: Mapped[RuleSet] = relationship(back_populates="rules")


# What the public sees where staff hid a request's description (records.moderation).
TEXT_REMOVED = "Text removed by the city"


def shown_description(request: ServiceRequest) -> str | None:
    """The description as the public sees it: a notice where staff hid it, their
    redacted text where they replaced it, else the reporter's own."""
    if request.description_moderation == "hidden":
        return TEXT_REMOVED
    if request.description_moderation == "redacted":
        return request.public_description
    return request.description


class ServiceRequest(Base):
    __tablename__ = "service_request"
    __table_args__ = (
        sa.Index("ix_service_request_juris_requested", "jurisdiction_id", "requested_at"),
        sa.Index("ix_service_request_juris_status", "jurisdiction_id", "status"),
        sa.CheckConstraint(
            "description_moderation IN ('hidden', 'redacted')", name="description_moderation"
        ),
        sa.UniqueConstraint("jurisdiction_id", "external_id"),
        # The open requests only (migration 0430): the duplicate search looks among them,
        # and they are a small part of a city's history.
        sa.Index(
            "ix_service_request_open_location",
            "location",
            postgresql_using="gist",
            postgresql_where=sa.text(OPEN_LOCATION_PREDICATE),
        ),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    jurisdiction_id: Mapped[int] = mapped_column(
        sa.ForeignKey("jurisdiction.id", ondelete="CASCADE")
    )
    public_id: Mapped[str] = mapped_column(sa.String(32), unique=True)
    token: Mapped[str] = mapped_column(sa.String(64), unique=True)
    external_id: Mapped[str | None] = mapped_column(sa.String(100))
    service_id: Mapped[int] = mapped_column(sa.ForeignKey("service.id"), index=True)
    status: Mapped[str] = mapped_column(sa.String(20), default=Status.NEW.value)
    priority: Mapped[str] = mapped_column(sa.String(16), default="normal")
    location = mapped_column(Geometry("POINT", srid=4326, spatial_index=True))
    address: Mapped[str | None] = mapped_column(sa.String(500))
    description: Mapped[str | None] = mapped_column(sa.Text)
    channel: Mapped[str] = mapped_column(sa.String(16), default="web")
    contact_name: Mapped[str | None] = mapped_column(sa.String(200))
    contact_email: Mapped[str | None] = mapped_column(sa.String(254))
    contact_phone: Mapped[str | None] = mapped_column(sa.String(50))
    anonymous: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    notify_updates: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    department_id: Mapped[int | None] = mapped_column(sa.ForeignKey("department.id"), index=True)
    crew_id: Mapped[int | None] = mapped_column(sa.ForeignKey("crew.id"), index=True)
    zone_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("zone.id", ondelete="SET NULL"), index=True
    )
    rule_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("routing_rule.id", ondelete="SET NULL"), index=True
    )
    ruleset_version: Mapped[int | None] = mapped_column(sa.Integer)
    routing_explanation: Mapped[str | None] = mapped_column(sa.Text)
    routed_at: Mapped[datetime | None] = mapped_column(TS)
    # Set when a dispatcher reassigns by hand; bulk re-routing leaves such requests alone.
    reassigned_at: Mapped[datetime | None] = mapped_column(TS)
    due_at: Mapped[datetime | None] = mapped_column(TS)
    requested_at: Mapped[datetime] = mapped_column(TS, default=now_utc)
    updated_at: Mapped[datetime] = mapped_column(TS, default=now_utc)
    first_response_at: Mapped[datetime | None] = mapped_column(TS)
    closed_at: Mapped[datetime | None] = mapped_column(TS)
    close_reason: Mapped[str | None] = mapped_column(sa.Text)
    duplicate_of_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("service_request.id", ondelete="SET NULL"), index=True
    )
    needs_location: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    # The city's own id of the address point the request is at (Open311 address_id).
    address_id: Mapped[str | None] = mapped_column(sa.String(100))
    # The asset the request is about: its layer and the city's own id of it (pole
    # "4711"). Kept by id, not by row, so a re-import of the layer keeps the link.
    asset_layer_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("asset_layer.id", ondelete="SET NULL")
    )
    asset_ref: Mapped[str | None] = mapped_column(sa.String(100))
    # A required question is unanswered (a channel that could not ask, such as e-mail,
    # and the question has no default): the dispatcher asks the reporter.
    needs_answers: Mapped[bool] = mapped_column(
        sa.Boolean, default=False, server_default=sa.false()
    )
    # None is SQL NULL (no answers), not the JSON value null, however the row is written.
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    media_url: Mapped[str | None] = mapped_column(sa.String(2000))
    device_id: Mapped[str | None] = mapped_column(sa.String(200))
    account_id: Mapped[str | None] = mapped_column(sa.String(200))
    # Moderation (records.moderation): while held_at is set, no public view shows the
    # request. The public sees public_description instead of description when it is
    # 'redacted', and a notice that the text was removed when it is 'hidden'.
    held_at: Mapped[datetime | None] = mapped_column(TS)
    description_moderation: Mapped[str | None] = mapped_column(sa.String(16))
    public_description: Mapped[str | None] = mapped_column(sa.Text)
    # The staff member who asked (an internal customer): their "my requests" page lists it.
    requester_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("app_user.id", ondelete="SET NULL"), index=True
    )
    # The last time the reporter said "not fixed", and how often they did.
    reopened_at: Mapped[datetime | None] = mapped_column(TS)
    reopen_count: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    # The last message from the reporter (page or e-mail): dispatch shows it as unanswered
    # while it is later than the last staff reply.
    reporter_message_at: Mapped[datetime | None] = mapped_column(TS)
    # Escalation (routing.escalation): 0 none, 1 the supervisors told, 2 the director told;
    # escalated_at is when the current level was reached.
    escalation_level: Mapped[int] = mapped_column(sa.SmallInteger, default=0, server_default="0")
    escalated_at: Mapped[datetime | None] = mapped_column(TS)
    # When the current crew got the request, and when it acknowledged it: the crew page
    # shows it as new while crew_acknowledged_at is empty or earlier.
    crew_assigned_at: Mapped[datetime | None] = mapped_column(TS)
    crew_acknowledged_at: Mapped[datetime | None] = mapped_column(TS)
    project_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("project.id", ondelete="SET NULL"), index=True
    )
    # The category the classifier suggests from the text (routing.classify), with its
    # probability; a dispatcher confirms it (a re-categorisation) or leaves it.
    suggested_service_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("service.id", ondelete="SET NULL")
    )
    suggestion_confidence: Mapped[float | None] = mapped_column(sa.Float)

    service: Mapped[Service] = relationship(foreign_keys=[service_id])
    department: Mapped[Department | None] = relationship()
    crew: Mapped[Crew | None] = relationship()
    zone: Mapped[Zone | None] = relationship()
    events: Mapped[list[RequestEvent]] = relationship(
        back_populates="request", order_by="RequestEvent.at"
    )
    photos: Mapped[list[Photo]] = relationship(back_populates="request")


class RequestZone(Base):
    """The zone of every current layer that contains a request (one row per layer)."""

    __tablename__ = "request_zone"

    request_id: Mapped[int] = mapped_column(
        sa.ForeignKey("service_request.id", ondelete="CASCADE"), primary_key=True
    )
    layer_id: Mapped[int] = mapped_column(
        sa.ForeignKey("zone_layer.id", ondelete="CASCADE"), primary_key=True
    )
    zone_id: Mapped[int] = mapped_column(sa.ForeignKey("zone.id", ondelete="CASCADE"), index=True)


class Photo(Base):
    __tablename__ = "photo"
    __table_args__ = (
        sa.CheckConstraint("stage IN ('report','completion')", name="stage"),
        sa.UniqueConstraint("request_id", "content_hash"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        sa.ForeignKey("service_request.id", ondelete="CASCADE"), index=True
    )
    content_hash: Mapped[str] = mapped_column(sa.String(64))
    stage: Mapped[str] = mapped_column(sa.String(16), default="report")
    mime_type: Mapped[str] = mapped_column(sa.String(50))
    width: Mapped[int] = mapped_column(sa.Integer)
    height: Mapped[int] = mapped_column(sa.Integer)
    bytes: Mapped[int] = mapped_column(sa.Integer)
    original_key: Mapped[str] = mapped_column(sa.String(200))
    public_key: Mapped[str] = mapped_column(sa.String(200))
    thumb_key: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(TS, default=now_utc)
    # Hidden by staff (records.moderation): kept for staff, never served to the public.
    hidden_at: Mapped[datetime | None] = mapped_column(TS)
    # Set when the private original was removed (retention or erasure); the public copies stay.
    original_removed_at: Mapped[datetime | None] = mapped_column(TS)
    # False for a photo mailed by an unverified sender: staff see it, the public never.
    public: Mapped[bool] = mapped_column(sa.Boolean, default=True, server_default=sa.true())

    request: Mapped[ServiceRequest] = relationship(back_populates="photos")


class RequestEvent(Base):
    """The audit trail: who did what to a request, when, and whether it is public."""

    __tablename__ = "request_event"

    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    request_id: Mapped[int] = mapped_column(
        sa.ForeignKey("service_request.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(TS, default=now_utc)
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("app_user.id", ondelete="SET NULL"))
    actor_label: Mapped[str | None] = mapped_column(sa.String(200))
    kind: Mapped[str] = mapped_column(sa.String(32))
    from_value: Mapped[str | None] = mapped_column(sa.Text)
    to_value: Mapped[str | None] = mapped_column(sa.Text)
    note: Mapped[str | None] = mapped_column(sa.Text)
    public: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    department_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("department.id", ondelete="SET NULL")
    )

    request: Mapped[ServiceRequest] = relationship(back_populates="events")


class Follower(Base):
    __tablename__ = "follower"
    __table_args__ = (sa.UniqueConstraint("request_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        sa.ForeignKey("service_request.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str | None] = mapped_column(sa.String(254))
    created_at: Mapped[datetime] = mapped_column(TS, default=now_utc)
    # Only a confirmed follower (they opened the link mailed to the address) gets updates.
    confirmed_at: Mapped[datetime | None] = mapped_column(TS)
    # When the last confirmation link was mailed (following again resends it only later).
    confirm_sent_at: Mapped[datetime | None] = mapped_column(TS)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(TS)


class User(Base):
    __tablename__ = "app_user"
    __table_args__ = (
        sa.CheckConstraint(
            "role IN ('requester','agent','dispatcher','crew','planner','admin','install_admin')",
            name="role",
        ),
        sa.CheckConstraint(
            "role <> 'install_admin' OR jurisdiction_id IS NULL", name="install_admin_no_city"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    name: Mapped[str | None] = mapped_column(sa.String(200))
    password_hash: Mapped[str | None] = mapped_column(sa.String(300))
    role: Mapped[str] = mapped_column(sa.String(16))
    jurisdiction_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("jurisdiction.id", ondelete="CASCADE"), index=True
    )
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(TS, default=now_utc)
    # Copied into the session cookie at sign-in; logout raises it, and a trigger raises it
    # when the password, role, active flag or two-factor secret changes (migration 0480).
    session_generation: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    totp_secret: Mapped[str | None] = mapped_column(sa.String(64))
    totp_last_step: Mapped[int | None] = mapped_column(sa.BigInteger)

    # Membership (routing.organisation): the crews a user works in and the departments they
    # work for; a dispatcher or agent in departments works those departments' requests.
    crews: Mapped[list[Crew]] = relationship(secondary="staff_crew", order_by="Crew.id")
    departments: Mapped[list[Department]] = relationship(
        secondary="staff_department", order_by="Department.id"
    )


staff_crew = sa.Table(
    "staff_crew",
    Base.metadata,
    sa.Column("user_id", sa.ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True),
    sa.Column(
        "crew_id", sa.ForeignKey("crew.id", ondelete="CASCADE"), primary_key=True, index=True
    ),
)

staff_department = sa.Table(
    "staff_department",
    Base.metadata,
    sa.Column("user_id", sa.ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True),
    sa.Column(
        "department_id",
        sa.ForeignKey("department.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
    # A supervisor hears of the department's escalations and gets its morning digest.
    sa.Column("supervisor", sa.Boolean, nullable=False, default=False, server_default=sa.false()),
)


class SigninAttempt(Base):
    """Failed sign-ins of one account or one client address, and the lock-out they earned.

    ``key`` is a digest of the e-mail typed or of the client address (``spatial.signin``).
    """

    __tablename__ = "signin_attempt"
    __table_args__ = (sa.CheckConstraint("kind IN ('account','client')", name="kind"),)

    kind: Mapped[str] = mapped_column(sa.String(8), primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(sa.Integer)
    window_start: Mapped[datetime] = mapped_column(TS)
    lockouts: Mapped[int] = mapped_column(sa.Integer)
    locked_until: Mapped[datetime | None] = mapped_column(TS)


class ApiKey(Base):
    __tablename__ = "api_key"

    id: Mapped[int] = mapped_column(primary_key=True)
    jurisdiction_id: Mapped[int] = mapped_column(
        sa.ForeignKey("jurisdiction.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(200))
    prefix: Mapped[str] = mapped_column(sa.String(16), index=True)
    key_hash: Mapped[str] = mapped_column(sa.String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(TS, default=now_utc)
    revoked_at: Mapped[datetime | None] = mapped_column(TS)
    last_used_at: Mapped[datetime | None] = mapped_column(TS)


class OutboxMessage(Base):
    """A message to send, written in the same transaction as the change causing it."""

    __tablename__ = "outbox_message"
    __table_args__ = (
        sa.Index("ix_outbox_message_pending", "status", "next_attempt_at"),
        sa.CheckConstraint("status IN ('pending','sending','sent','failed')", name="status"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    jurisdiction_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("jurisdiction.id", ondelete="CASCADE")
    )
    request_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("service_request.id", ondelete="SET NULL"), index=True
    )
    kind: Mapped[str] = mapped_column(sa.String(32))
    to_addr: Mapped[str] = mapped_column(sa.String(254))
    subject: Mapped[str] = mapped_column(sa.String(500))
    body_text: Mapped[str] = mapped_column(sa.Text)
    body_html: Mapped[str | None] = mapped_column(sa.Text)
    headers: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    message_id: Mapped[str] = mapped_column(sa.String(300), unique=True)
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(TS, default=now_utc)
    locked_until: Mapped[datetime | None] = mapped_column(TS)
    sent_at: Mapped[datetime | None] = mapped_column(TS)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(TS, default=now_utc)


class InboundEmail(Base):
    """One received message; ``raw`` is kept for staff, ``sender_auth`` is the verdict of
    the city's mail gateway, ``sender_standing`` who the sender is to the request named."""

    __tablename__ = "inbound_email"
    __table_args__ = (
        sa.CheckConstraint("sender_auth IN ('pass','fail','none')", name="sender_auth"),
        sa.CheckConstraint(
            "sender_standing IN ('reporter','follower','staff','stranger')",
            name="sender_standing",
        ),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    message_id: Mapped[str] = mapped_column(sa.String(998), unique=True)
    jurisdiction_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("jurisdiction.id", ondelete="SET NULL")
    )
    received_at: Mapped[datetime] = mapped_column(TS, default=now_utc)
    mail_from: Mapped[str | None] = mapped_column(sa.String(998))
    rcpt_to: Mapped[str | None] = mapped_column(sa.String(998))
    subject: Mapped[str | None] = mapped_column(sa.Text)
    size: Mapped[int | None] = mapped_column(sa.Integer)
    outcome: Mapped[str] = mapped_column(sa.String(32))
    detail: Mapped[str | None] = mapped_column(sa.Text)
    request_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("service_request.id", ondelete="SET NULL"), index=True
    )
    sender_auth: Mapped[str | None] = mapped_column(sa.String(8))
    sender_standing: Mapped[str | None] = mapped_column(sa.String(16))
    raw: Mapped[bytes | None] = mapped_column(sa.LargeBinary, deferred=True)
    mail_address_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("mail_address.id", ondelete="SET NULL")
    )
    answered: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())


class SurveyResponse(Base):
    __tablename__ = "survey_response"
    __table_args__ = (sa.CheckConstraint("rating BETWEEN 1 AND 5", name="rating"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        sa.ForeignKey("service_request.id", ondelete="CASCADE"), unique=True
    )
    rating: Mapped[int] = mapped_column(sa.SmallInteger)
    timeliness: Mapped[int | None] = mapped_column(sa.SmallInteger)
    quality: Mapped[int | None] = mapped_column(sa.SmallInteger)
    communication: Mapped[int | None] = mapped_column(sa.SmallInteger)
    comment: Mapped[str | None] = mapped_column(sa.Text)
    submitted_at: Mapped[datetime] = mapped_column(TS, default=now_utc)


class ResponseTemplate(Base):
    __tablename__ = "response_template"
    __table_args__ = (sa.UniqueConstraint("jurisdiction_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    jurisdiction_id: Mapped[int] = mapped_column(
        sa.ForeignKey("jurisdiction.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(200))
    body: Mapped[str] = mapped_column(sa.Text)
    service_id: Mapped[int | None] = mapped_column(sa.ForeignKey("service.id", ondelete="SET NULL"))


class AddressPoint(Base):
    """A known address of a city (its address file, or the demo's history).

    ``address`` is the normalised full text ("1111 S FIGUEROA ST, 90015"); the parts
    beside it are what the geocoder matches on (places.geocoder). ``street_core`` is the
    street's name without directions and type ("FIGUEROA"), trigram-indexed.
    """

    __tablename__ = "address_point"
    __table_args__ = (
        sa.Index(
            "ix_address_point_address_trgm",
            "address",
            postgresql_using="gin",
            postgresql_ops={"address": "gin_trgm_ops"},
        ),
        sa.Index(
            "ix_address_point_street_core_trgm",
            "street_core",
            postgresql_using="gin",
            postgresql_ops={"street_core": "gin_trgm_ops"},
        ),
        sa.Index("ix_address_point_street_number", "jurisdiction_id", "street_core", "number"),
        sa.Index(
            "uq_address_point_source_id",
            "jurisdiction_id",
            "source_id",
            unique=True,
            postgresql_where=sa.text("source_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    jurisdiction_id: Mapped[int] = mapped_column(
        sa.ForeignKey("jurisdiction.id", ondelete="CASCADE"), index=True
    )
    dataset_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("place_dataset.id", ondelete="SET NULL")
    )
    # The city's own id of the address (Open311 address_id); None for derived points.
    source_id: Mapped[str | None] = mapped_column(sa.String(100))
    address: Mapped[str] = mapped_column(sa.String(500))
    number: Mapped[int | None] = mapped_column(sa.Integer)
    number_suffix: Mapped[str | None] = mapped_column(sa.String(16))
    street: Mapped[str | None] = mapped_column(sa.String(200))
    street_core: Mapped[str | None] = mapped_column(sa.String(200))
    unit: Mapped[str | None] = mapped_column(sa.String(50))
    zip: Mapped[str | None] = mapped_column(sa.String(10))
    location = mapped_column(Geometry("POINT", srid=4326, spatial_index=True), nullable=False)


class PublicIdCounter(Base):
    """Per-jurisdiction, per-year sequence behind public ids such as LA-2026-000123."""

    __tablename__ = "public_id_counter"

    jurisdiction_id: Mapped[int] = mapped_column(
        sa.ForeignKey("jurisdiction.id", ondelete="CASCADE"), primary_key=True
    )
    year: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    last_value: Mapped[int] = mapped_column(sa.Integer, default=0)


# The tables whose rows are kept in process memory between requests (the Open311
# catalog, the mail settings, and the departments and crews that routing keeps): any
# statement that writes to one of them raises settings_stamp.version first, in its own
# transaction (migrations 0420, 0440).
STAMPED_TABLES = (
    "jurisdiction",
    "service",
    "service_attribute",
    "mail_config",
    "mail_address",
    "message_template",
    "department",
    "crew",
)


class SettingsStamp(Base):
    """One row: the version of :data:`STAMPED_TABLES`, raised by a statement trigger on
    each of them (see ``webmap.open311.catalog``)."""

    __tablename__ = "settings_stamp"
    __table_args__ = (sa.CheckConstraint("id = 1", name="one_row"),)

    id: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(sa.BigInteger)


# Later tables live in their own modules; importing them here puts them on Base.metadata
# for Alembic and for every caller of spatial.models.
from spatial import (  # noqa: E402,F401,I001
    map_cells,
    models_analytics,
    models_mail,
    models_ops,
    models_places,
    models_work,
    pieces,
)
