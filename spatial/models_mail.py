"""Models of the mail work: intake addresses, per-city mail settings, editable message
templates, survey tokens, unsubscribes and the FAQ. Imported by :mod:`spatial.models`.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from spatial.models import TS, Base, InboundEmail, now_utc

# The per-sender hourly limit counts a sender's recent messages; keep that a range scan.
sa.Index(
    "ix_inbound_email_sender_received",
    InboundEmail.__table__.c.mail_from,
    InboundEmail.__table__.c.received_at,
)
# So does the per-intake-address limit on auto-replies.
sa.Index(
    "ix_inbound_email_address_received",
    InboundEmail.__table__.c.mail_address_id,
    InboundEmail.__table__.c.received_at,
)


class MailAddress(Base):
    """A public address of a city (``311@...``) whose mail becomes requests.

    ``service_id`` is the category new requests get; ``department_id`` (optional) sends
    them to that department whatever the routing rules say.
    """

    __tablename__ = "mail_address"

    id: Mapped[int] = mapped_column(primary_key=True)
    jurisdiction_id: Mapped[int] = mapped_column(
        sa.ForeignKey("jurisdiction.id", ondelete="CASCADE"), index=True
    )
    address: Mapped[str] = mapped_column(sa.String(254), unique=True)
    service_id: Mapped[int] = mapped_column(
        sa.ForeignKey("service.id", ondelete="CASCADE"), index=True
    )
    department_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("department.id", ondelete="SET NULL"), index=True
    )
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(TS, default=now_utc)


class MailConfig(Base):
    """Per-city mail settings: where dispatcher alerts go, the sender, loop limits.

    ``link_secret`` signs the survey and unsubscribe links. It lives in the database, not
    in ``SECRET_KEY``, so that whatever writes a message (web, CLI, worker) and the page
    that checks the link agree without sharing configuration; rotate it to void old links.
    """

    __tablename__ = "mail_config"

    jurisdiction_id: Mapped[int] = mapped_column(
        sa.ForeignKey("jurisdiction.id", ondelete="CASCADE"), primary_key=True
    )
    dispatch_email: Mapped[str | None] = mapped_column(sa.String(254))
    from_address: Mapped[str | None] = mapped_column(sa.String(254))
    reply_limit_per_hour: Mapped[int] = mapped_column(sa.Integer, default=5)
    accept_limit_per_hour: Mapped[int] = mapped_column(sa.Integer, default=30)
    # Auto-replies per hour from each intake address, whoever the senders (forged ones
    # included): a flood of mail still becomes requests, but stops being answered.
    address_reply_limit_per_hour: Mapped[int] = mapped_column(
        sa.Integer, default=200, server_default=sa.text("200")
    )
    # The authserv-id of the city's mail gateway: only its Authentication-Results count.
    trusted_authserv_id: Mapped[str | None] = mapped_column(sa.String(255))
    link_secret: Mapped[str | None] = mapped_column(sa.String(64))


class MessageTemplate(Base):
    """A city's override of one message kind's default text (``notify.templates``)."""

    __tablename__ = "message_template"
    __table_args__ = (sa.UniqueConstraint("jurisdiction_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    jurisdiction_id: Mapped[int] = mapped_column(
        sa.ForeignKey("jurisdiction.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(sa.String(32))
    subject: Mapped[str] = mapped_column(sa.String(500))
    body: Mapped[str] = mapped_column(sa.Text)
    updated_at: Mapped[datetime] = mapped_column(TS, default=now_utc)
    updated_by: Mapped[str | None] = mapped_column(sa.String(200))


class SurveyToken(Base):
    """The nonce behind one signed survey link; ``used_at`` makes the link one-time."""

    __tablename__ = "survey_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        sa.ForeignKey("service_request.id", ondelete="CASCADE"), index=True
    )
    nonce: Mapped[str] = mapped_column(sa.String(64), unique=True)
    email: Mapped[str | None] = mapped_column(sa.String(254))
    created_at: Mapped[datetime] = mapped_column(TS, default=now_utc)
    expires_at: Mapped[datetime] = mapped_column(TS)
    used_at: Mapped[datetime | None] = mapped_column(TS)


class Unsubscribe(Base):
    """An address that asked for no more mail: about one request, or (no request) any.

    ``kind`` (a message kind, such as ``dispatcher_alert``) narrows it to that kind, and
    ``jurisdiction_id`` to one city's mail; a row without them means every kind, every city.
    """

    __tablename__ = "mail_unsubscribe"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254), index=True)
    request_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("service_request.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str | None] = mapped_column(sa.String(32))
    jurisdiction_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("jurisdiction.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime] = mapped_column(TS, default=now_utc)


class FaqArticle(Base):
    """A self-service help article of a city, for one category or a general topic.

    ``audience`` 'public' is for residents (/help); 'staff' is an intranet article (FAQ or
    troubleshooting) that only signed-in staff read.
    """

    __tablename__ = "faq_article"
    __table_args__ = (
        sa.UniqueConstraint("jurisdiction_id", "slug"),
        sa.CheckConstraint("audience IN ('public', 'staff')", name="audience"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    jurisdiction_id: Mapped[int] = mapped_column(
        sa.ForeignKey("jurisdiction.id", ondelete="CASCADE"), index=True
    )
    slug: Mapped[str] = mapped_column(sa.String(100))
    title: Mapped[str] = mapped_column(sa.String(200))
    topic: Mapped[str | None] = mapped_column(sa.String(100))
    service_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("service.id", ondelete="SET NULL"), index=True
    )
    body: Mapped[str] = mapped_column(sa.Text)
    published: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    position: Mapped[int] = mapped_column(sa.Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(TS, default=now_utc)
    updated_by: Mapped[str | None] = mapped_column(sa.String(200))
    audience: Mapped[str] = mapped_column(sa.String(8), default="public", server_default="public")
