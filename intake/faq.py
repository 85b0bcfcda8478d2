"""The self-service FAQ: help articles per city, per category or general topic.

The reporting flow shows a category's article (:func:`article_for_service`) before its
form; the triage explainer (slug ``triage``, linked from every acknowledgement) is one
article, with a default text here until an admin edits it. Bodies are plain text: blank
lines separate paragraphs, lines starting with ``- `` are list items and ``## `` starts a
heading (:func:`body_blocks`); nothing in an article is ever rendered as HTML.

An article's ``audience`` is 'public' (the /help pages) or 'staff' (the intranet's FAQ
and troubleshooting articles): a staff article never shows to anyone signed out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from spatial.errors import InvalidInput, NotFound
from spatial.models import Jurisdiction, Service, now_utc
from spatial.models_mail import FaqArticle

TRIAGE_SLUG = "triage"
SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?$")
MAX_BODY = 20_000
AUDIENCES = ("public", "staff")

TRIAGE_TITLE = "How we triage reports"
TRIAGE_BODY = """\
Every report you send, on the map, by e-mail, by phone or from an app, lands in the same \
queue and is handled the same way.

## What happens after you report
- The location decides who is responsible: the pin is matched against the city's zones \
(districts, crew areas) and routing rules, and the report goes to that department and crew.
- A dispatcher checks new reports as they arrive, corrects the category or the routing \
when needed, merges duplicates and sets the priority.
- Each category has a target time. Hazards to people and traffic come first.
- The crew updates the status as the work goes on. If you left an e-mail address you get \
a message when it changes, and one when it is resolved.

## When we need more from you
A report without a location cannot be routed. If your e-mail did not say where, we sent \
you a link to drop the pin on the map.

## Following instead of reporting again
If someone already reported the same problem, follow their report: it counts as support \
and you get the same updates.
"""


@dataclass
class Block:
    kind: str  # "p", "h" or "ul"
    text: str = ""
    items: list[str] | None = None


def body_blocks(text: str) -> list[Block]:
    """Paragraphs, headings and lists of a plain-text article body."""
    blocks: list[Block] = []
    para: list[str] = []
    items: list[str] = []

    def flush(blocks: list[Block], para: list[str], items: list[str]) -> None:
        if para:
            blocks.append(Block("p", " ".join(para)))
            para.clear()
        if items:
            blocks.append(Block("ul", items=list(items)))
            items.clear()

    for chunk in re.split(r"\n\s*\n", (text or "").replace("\r\n", "\n").strip()):
        for line in (raw.strip() for raw in chunk.split("\n")):
            if not line:
                continue
            if line.startswith("## "):
                flush(blocks, para, items)
                blocks.append(Block("h", line[3:].strip()))
            elif line.startswith(("- ", "* ")):
                if para:
                    flush(blocks, para, [])
                items.append(line[2:].strip())
            elif items and not para:
                items[-1] += " " + line  # a wrapped list item
            else:
                if items:
                    flush(blocks, [], items)
                para.append(line)
        flush(blocks, para, items)
    return blocks


def default_triage(city: Jurisdiction) -> FaqArticle:
    """The built-in triage explainer (not stored until an admin edits it)."""
    return FaqArticle(
        jurisdiction_id=city.id,
        slug=TRIAGE_SLUG,
        title=TRIAGE_TITLE,
        topic="About reporting",
        body=TRIAGE_BODY,
        published=True,
        position=0,
    )


def get_article(
    session: Session,
    city: Jurisdiction,
    slug: str,
    include_unpublished: bool = False,
    audience: str | None = "public",
) -> FaqArticle:
    """The article ``slug`` of ``city`` for ``audience`` (None: any), or :class:`NotFound`."""
    stmt = sa.select(FaqArticle).where(
        FaqArticle.jurisdiction_id == city.id, FaqArticle.slug == slug
    )
    if not include_unpublished:
        stmt = stmt.where(FaqArticle.published.is_(True))
    if audience is not None:
        stmt = stmt.where(FaqArticle.audience == audience)
    article = session.scalar(stmt)
    if article is None and slug == TRIAGE_SLUG and audience != "staff":
        return default_triage(city)
    if article is None:
        raise NotFound(f"no help article {slug!r}")
    return article


def article_for_service(session: Session, service: Service) -> FaqArticle | None:
    """The published article about a category, shown before its report form."""
    return session.scalar(
        sa.select(FaqArticle)
        .where(
            FaqArticle.service_id == service.id,
            FaqArticle.published.is_(True),
            FaqArticle.audience == "public",
        )
        .order_by(FaqArticle.position, FaqArticle.id)
        .limit(1)
    )


def articles_for_services(session: Session, service_ids: list[int]) -> dict[int, FaqArticle]:
    """service id -> its published article (as :func:`article_for_service`), in one query."""
    if not service_ids:
        return {}
    rows = session.scalars(
        sa.select(FaqArticle)
        .where(
            FaqArticle.service_id.in_(service_ids),
            FaqArticle.published.is_(True),
            FaqArticle.audience == "public",
        )
        .order_by(FaqArticle.position, FaqArticle.id)
    )
    first: dict[int, FaqArticle] = {}
    for article in rows:
        first.setdefault(article.service_id, article)
    return first


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_articles(
    session: Session,
    city: Jurisdiction,
    q: str | None = None,
    topic: str | None = None,
    service_code: str | None = None,
    include_unpublished: bool = False,
    audience: str | None = "public",
) -> list[FaqArticle]:
    """Articles of a city for ``audience`` (None: every article, for the editor); ``q``
    searches title, topic and body (full text, then words)."""
    stmt = sa.select(FaqArticle).where(FaqArticle.jurisdiction_id == city.id)
    if audience is not None:
        stmt = stmt.where(FaqArticle.audience == audience)
    if not include_unpublished:
        stmt = stmt.where(FaqArticle.published.is_(True))
    if topic:
        stmt = stmt.where(FaqArticle.topic == topic)
    if service_code:
        stmt = stmt.join(Service, Service.id == FaqArticle.service_id).where(
            Service.code == service_code
        )
    q = " ".join((q or "").split())[:200]
    if q:
        doc = sa.func.to_tsvector(
            "english",
            FaqArticle.title + " " + sa.func.coalesce(FaqArticle.topic, "") + " " + FaqArticle.body,
        )
        query = sa.func.websearch_to_tsquery("english", q)
        pattern = f"%{_like_escape(q)}%"
        stmt = stmt.where(
            sa.or_(
                doc.op("@@")(query),
                FaqArticle.title.ilike(pattern, escape="\\"),
                FaqArticle.body.ilike(pattern, escape="\\"),
            )
        ).order_by(sa.func.ts_rank(doc, query).desc(), FaqArticle.position, FaqArticle.title)
    else:
        stmt = stmt.order_by(
            sa.func.coalesce(FaqArticle.topic, "~"), FaqArticle.position, FaqArticle.title
        )
    articles = list(session.scalars(stmt))
    stored_triage = any(a.slug == TRIAGE_SLUG for a in articles)
    has_override = stored_triage or session.scalar(
        sa.select(sa.literal(True)).where(
            FaqArticle.jurisdiction_id == city.id, FaqArticle.slug == TRIAGE_SLUG
        )
    )
    if not has_override and not service_code and audience != "staff":
        triage = default_triage(city)
        text = f"{triage.title} {triage.topic} {triage.body}".lower()
        if (not topic or topic == triage.topic) and (
            not q or all(word in text for word in q.lower().split())
        ):
            articles.append(triage)
    return articles


def topics(session: Session, city: Jurisdiction, audience: str = "public") -> list[str]:
    found = set(
        session.scalars(
            sa.select(FaqArticle.topic).where(
                FaqArticle.jurisdiction_id == city.id,
                FaqArticle.published.is_(True),
                FaqArticle.topic.is_not(None),
                FaqArticle.audience == audience,
            )
        )
    )
    if audience == "public":
        found.add(default_triage(city).topic)
    return sorted(found)


def validate_article(session: Session, city: Jurisdiction, form: dict[str, Any]) -> dict:
    """Clean article fields, or ``InvalidInput`` with ``.errors`` (field -> message)."""
    errors: dict[str, str] = {}
    title = " ".join((form.get("title") or "").split())
    slug = (form.get("slug") or "").strip().lower()
    if not slug and title:
        slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:100].strip("-")
    topic = " ".join((form.get("topic") or "").split()) or None
    body = (form.get("body") or "").replace("\r\n", "\n").strip()
    code = (form.get("service_code") or "").strip()
    audience = (form.get("audience") or "public").strip()
    if audience not in AUDIENCES:
        errors["audience"] = "Choose who reads the article: the public or staff"
    if not title:
        errors["title"] = "Give the article a title"
    elif len(title) > 200:
        errors["title"] = "Keep the title to 200 characters"
    if not SLUG_RE.match(slug):
        errors["slug"] = "The address name must be lower-case letters, digits and dashes"
    if topic and len(topic) > 100:
        errors["topic"] = "Keep the topic to 100 characters"
    if not body:
        errors["body"] = "Write the article"
    elif len(body) > MAX_BODY:
        errors["body"] = f"Keep the article to {MAX_BODY} characters"
    service_id = None
    if code:
        found = session.execute(
            sa.select(Service.id, Service.internal).where(
                Service.jurisdiction_id == city.id, Service.code == code
            )
        ).first()
        if found is None:
            errors["service_code"] = f"{city.name} has no category {code!r}"
        else:
            service_id = found.id
            if found.internal and audience == "public":
                errors["audience"] = (
                    "An article about an internal (staff-only) category is for staff"
                )
    try:
        position = int(form.get("position") or 0)
    except (TypeError, ValueError):
        errors["position"] = "The order must be a whole number"
        position = 0
    if errors:
        exc = InvalidInput(next(iter(errors.values())), field=next(iter(errors)))
        exc.errors = errors  # type: ignore[attr-defined]
        raise exc
    return {
        "title": title,
        "slug": slug,
        "topic": topic,
        "body": body + "\n",
        "service_id": service_id,
        "audience": audience,
        "position": position,
        "published": str(form.get("published") or "").lower() in ("1", "on", "true", "yes"),
    }


def save_article(
    session: Session,
    city: Jurisdiction,
    form: dict[str, Any],
    *,
    article_id: int | None = None,
    by: str | None = None,
) -> FaqArticle:
    """Create or update an article (validated first; nothing is written if bad)."""
    clean = validate_article(session, city, form)
    article = None
    if article_id is not None:
        article = session.get(FaqArticle, article_id)
        if article is None or article.jurisdiction_id != city.id:
            raise NotFound(f"no help article #{article_id}")
    clash = session.scalar(
        sa.select(FaqArticle.id).where(
            FaqArticle.jurisdiction_id == city.id,
            FaqArticle.slug == clean["slug"],
            FaqArticle.id != (article.id if article else -1),
        )
    )
    if clash is not None:
        exc = InvalidInput(f"Another article already uses {clean['slug']!r}", field="slug")
        exc.errors = {"slug": str(exc)}  # type: ignore[attr-defined]
        raise exc
    if article is None:
        article = FaqArticle(jurisdiction_id=city.id)
        session.add(article)
    for key, value in clean.items():
        setattr(article, key, value)
    article.updated_at = now_utc()
    article.updated_by = by
    session.flush()
    return article


def delete_article(session: Session, city: Jurisdiction, article_id: int) -> str:
    article = session.get(FaqArticle, article_id)
    if article is None or article.jurisdiction_id != city.id:
        raise NotFound(f"no help article #{article_id}")
    title = article.title
    session.delete(article)
    session.flush()
    return title
