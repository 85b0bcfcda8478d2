"""Category suggestion from a request's text, learnt from the city's own history.

A city's classifier is a scikit-learn pipeline: TF-IDF over words (and word pairs) and over
character n-grams (misspellings, "pot hole"/"pothole"), feeding a logistic regression (fitted
by stochastic gradient descent) whose probabilities are the suggestion's confidence. It is trained on the city's requests that
have a description, labelled by their category; only active, non-internal categories are
learnt and suggested, so a help-desk category never reaches a public channel.

The fitted pipeline is stored in ``category_model`` (one row per city) as written by
``skops.io``, and read back only if every type in it is one of scikit-learn's, numpy's or
scipy's: a row tampered with in the database cannot run code in the app. Each process keeps
the loaded pipeline per city until the row's ``trained_at`` changes.

``train`` scores the classifier before storing it: the newest fifth of the history is held
out (a time split, as the model is used on tomorrow's requests), and top-1 and top-3 on it
are stored beside the majority baseline (always guessing the most common category).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from spatial.db import database_key
from spatial.errors import InvalidInput
from spatial.models import Jurisdiction, RequestEvent, Service, ServiceRequest, now_utc
from spatial.models_work import CategoryModel

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

log = logging.getLogger(__name__)

# Below this much labelled history a classifier guesses more than it knows.
MIN_REQUESTS = 50
MIN_CATEGORIES = 2
# The most recent requests a model learns from: enough for any city's vocabulary, and
# training stays in seconds for a city with millions of requests.
MAX_REQUESTS = 50_000
HOLDOUT_SHARE = 0.2
RETRAIN_AFTER = timedelta(days=7)
# Text shorter than this says too little to suggest anything.
MIN_TEXT = 3
MAX_TEXT = 5000

# Module prefixes of the types a stored model may contain (see _load).
_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.")


class NotEnoughHistory(InvalidInput):
    """The city has too little labelled history to learn from."""


@dataclass(frozen=True)
class Suggestion:
    service: Service
    probability: float


@dataclass(frozen=True)
class Evaluation:
    """How a classifier did on the held-out, newest part of the history."""

    requests: int
    categories: int
    top1: float | None
    top3: float | None
    baseline: float | None
    train_seconds: float


# --------------------------------------------------------------------------- the pipeline


def make_pipeline() -> Pipeline:
    """An unfitted pipeline: word and character TF-IDF, then a logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import SGDClassifier
    from sklearn.pipeline import FeatureUnion, Pipeline

    features = FeatureUnion(
        [
            (
                "words",
                TfidfVectorizer(
                    ngram_range=(1, 2), sublinear_tf=True, min_df=1, strip_accents="unicode"
                ),
            ),
            (
                "chars",
                TfidfVectorizer(
                    analyzer="char_wb",
                    ngram_range=(3, 5),
                    sublinear_tf=True,
                    min_df=1,
                    strip_accents="unicode",
                ),
            ),
        ]
    )
    return Pipeline(
        [
            ("features", features),
            # Logistic regression fitted by stochastic gradient descent: probabilities
            # like lbfgs's, in a tenth of the time (lbfgs took 1-5 s on 100 texts on a
            # busy 2-core machine, SGD 0.1 s), and linear in the history's size.
            (
                "classifier",
                SGDClassifier(
                    loss="log_loss",
                    alpha=1e-4,
                    max_iter=50,
                    tol=None,
                    random_state=0,
                ),
            ),
        ]
    )


def _clean(text: str | None) -> str:
    return " ".join((text or "").split())[:MAX_TEXT]


def top_k_accuracy(pipeline: Pipeline, texts: list[str], labels: list[int], k: int) -> float:
    """Share of ``texts`` whose category is among the pipeline's ``k`` most probable."""
    if not texts:
        return 0.0
    probabilities = pipeline.predict_proba(texts)
    classes = pipeline.classes_
    best = np.argsort(-probabilities, axis=1)[:, :k]
    hits = sum(label in set(classes[row]) for label, row in zip(labels, best, strict=True))
    return hits / len(texts)


def evaluate(
    texts: list[str], labels: list[int], holdout_share: float = HOLDOUT_SHARE
) -> tuple[Evaluation, Pipeline]:
    """Fit on the older part of ``texts`` (oldest first), score on the newer part.

    Returns the scores and the pipeline fitted on the older part only.
    """
    if len(texts) < MIN_REQUESTS or len(set(labels)) < MIN_CATEGORIES:
        raise NotEnoughHistory(
            f"{len(texts)} requests with a description in {len(set(labels))} categories; "
            f"a suggestion needs at least {MIN_REQUESTS} in {MIN_CATEGORIES} categories",
            field="city",
        )
    cut = len(texts) - max(1, int(len(texts) * holdout_share))
    train_x, train_y = texts[:cut], labels[:cut]
    test_x, test_y = texts[cut:], labels[cut:]
    if len(set(train_y)) < MIN_CATEGORIES:
        raise NotEnoughHistory("the older part of the history has only one category", field="city")
    pipeline = make_pipeline()
    started = time.perf_counter()
    pipeline.fit(train_x, train_y)
    seconds = time.perf_counter() - started
    majority = Counter(train_y).most_common(1)[0][0]
    evaluation = Evaluation(
        requests=len(texts),
        categories=len(set(labels)),
        top1=top_k_accuracy(pipeline, test_x, test_y, 1),
        top3=top_k_accuracy(pipeline, test_x, test_y, 3),
        baseline=sum(y == majority for y in test_y) / len(test_y),
        train_seconds=seconds,
    )
    return evaluation, pipeline


# --------------------------------------------------------------------------- history


def suggestable_services(session: Session, city: Jurisdiction) -> dict[int, Service]:
    """The city's categories a suggestion may name: active and not internal."""
    rows = session.scalars(
        sa.select(Service).where(
            Service.jurisdiction_id == city.id,
            Service.active.is_(True),
            Service.internal.is_(False),
        )
    ).all()
    return {s.id: s for s in rows}


def labelled_history(
    session: Session, city: Jurisdiction, before: datetime | None = None
) -> tuple[list[str], list[int]]:
    """The city's described requests in suggestable categories, oldest first."""
    services = suggestable_services(session, city)
    if not services:
        return [], []
    query = (
        sa.select(ServiceRequest.description, ServiceRequest.service_id)
        .where(
            ServiceRequest.jurisdiction_id == city.id,
            ServiceRequest.service_id.in_(list(services)),
            ServiceRequest.description.is_not(None),
            sa.func.length(sa.func.btrim(ServiceRequest.description)) >= MIN_TEXT,
        )
        .order_by(ServiceRequest.requested_at.desc(), ServiceRequest.id.desc())
        .limit(MAX_REQUESTS)
    )
    if before is not None:
        query = query.where(ServiceRequest.requested_at < before)
    rows = session.execute(query).all()
    rows.reverse()
    return [_clean(r.description) for r in rows], [r.service_id for r in rows]


# --------------------------------------------------------------------------- train, store


def _dump(pipeline: Pipeline) -> bytes:
    import skops.io as sio

    return sio.dumps(pipeline)


def _load(blob: bytes) -> Pipeline:
    import skops.io as sio

    untrusted = sio.get_untrusted_types(data=blob)
    foreign = [t for t in untrusted if not t.startswith(_TRUSTED_PREFIXES)]
    if foreign:
        raise ValueError(f"a stored category model holds unexpected types: {foreign}")
    return sio.loads(blob, trusted=untrusted)


def train(session: Session, city: Jurisdiction, now: datetime | None = None) -> CategoryModel:
    """Learn the city's categories from its history and store the model (not committed).

    Raises :class:`NotEnoughHistory` (nothing written) when the city has fewer than
    ``MIN_REQUESTS`` described requests or fewer than ``MIN_CATEGORIES`` categories.
    """
    texts, labels = labelled_history(session, city)
    evaluation, _ = evaluate(texts, labels)
    pipeline = make_pipeline().fit(texts, labels)
    row = session.get(CategoryModel, city.id)
    if row is None:
        row = CategoryModel(jurisdiction_id=city.id)
        session.add(row)
    row.trained_at = now or now_utc()
    row.model = _dump(pipeline)
    row.requests = evaluation.requests
    row.categories = evaluation.categories
    row.top1 = evaluation.top1
    row.top3 = evaluation.top3
    row.baseline = evaluation.baseline
    session.flush()
    return row


def retrain_due(sessions: sessionmaker[Session], now: datetime | None = None) -> int:
    """Train every city whose model is missing or older than ``RETRAIN_AFTER`` and that
    has enough history; one transaction per city. Returns how many were trained."""
    now = now or now_utc()
    with sessions() as session:
        due = session.scalars(
            sa.select(Jurisdiction.id)
            .outerjoin(CategoryModel, CategoryModel.jurisdiction_id == Jurisdiction.id)
            .where(
                sa.or_(
                    CategoryModel.jurisdiction_id.is_(None),
                    CategoryModel.trained_at < now - RETRAIN_AFTER,
                )
            )
            .order_by(Jurisdiction.id)
        ).all()
    trained = 0
    for city_id in due:
        with sessions() as session:
            city = session.get(Jurisdiction, city_id)
            try:
                train(session, city, now=now)
            except NotEnoughHistory:
                continue
            session.commit()
            trained += 1
    return trained


# --------------------------------------------------------------------------- suggest

_cache: dict[tuple[str, int], tuple[datetime, Pipeline]] = {}
_cache_lock = threading.Lock()


def _pipeline(session: Session, city: Jurisdiction) -> Pipeline | None:
    trained_at = session.scalar(
        sa.select(CategoryModel.trained_at).where(CategoryModel.jurisdiction_id == city.id)
    )
    if trained_at is None:
        return None
    key = (database_key(session.get_bind()), city.id)
    with _cache_lock:
        held = _cache.get(key)
    if held is not None and held[0] == trained_at:
        return held[1]
    blob = session.scalar(
        sa.select(CategoryModel.model).where(CategoryModel.jurisdiction_id == city.id)
    )
    pipeline = _load(blob)
    with _cache_lock:
        _cache[key] = (trained_at, pipeline)
    return pipeline


def suggest(session: Session, city: Jurisdiction, text: str | None, k: int = 3) -> list[Suggestion]:
    """Up to ``k`` categories for ``text``, most probable first (empty: no model, or too
    little text). Only the city's active, non-internal categories are named."""
    text = _clean(text)
    if len(text) < MIN_TEXT:
        return []
    pipeline = _pipeline(session, city)
    if pipeline is None:
        return []
    services = suggestable_services(session, city)
    probabilities = pipeline.predict_proba([text])[0]
    ranked = sorted(
        zip(pipeline.classes_.tolist(), probabilities.tolist(), strict=True),
        key=lambda pair: -pair[1],
    )
    out = [Suggestion(services[sid], p) for sid, p in ranked if sid in services]
    return out[:k]


def record_suggestion(
    session: Session,
    city: Jurisdiction,
    request: ServiceRequest,
    *,
    actor_label: str,
    always: bool = False,
) -> Suggestion | None:
    """Suggest a category for a new request from its description and store it.

    The top suggestion goes on the request (``suggested_service_id``, confidence) with an
    internal 'suggestion' event, when it differs from the request's category, or always
    (``always``: the agent console, where the call-taker saw the suggestions; then the
    request's own category is stored if it was among them). A broken stored model never
    stops a request: it is logged and nothing is suggested.
    """
    try:
        found = suggest(session, city, request.description)
    except Exception:  # noqa: BLE001 - a suggestion is a help, never a reason to fail
        log.exception("category suggestion failed for %s", city.slug)
        return None
    if not found:
        return None
    top = found[0]
    if always:
        top = next((s for s in found if s.service.id == request.service_id), top)
    elif top.service.id == request.service_id:
        return None
    request.suggested_service_id = top.service.id
    request.suggestion_confidence = round(top.probability, 4)
    session.add(
        RequestEvent(
            request_id=request.id,
            kind="suggestion",
            to_value=top.service.name,
            note=f"{top.service.name} ({top.probability:.0%}), suggested from the text",
            public=False,
            actor_label=actor_label,
            department_id=request.department_id,
        )
    )
    return top
