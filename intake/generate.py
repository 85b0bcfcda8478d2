"""Synthetic request history for benchmarks (``civicpin demo generate``).

The generator learns three things from the city as it is, then writes N rows with
``COPY`` in fixed-size chunks so memory stays flat whatever N is:

- the category mix, and a log-normal time-to-close per category, from the city's real
  (not generated) requests; uniform mix and default durations when it has none;
- where requests happen: real request locations are cluster seeds; without any, points
  that PostGIS scatters uniformly inside the boundary take their place;
- the boundary, so that every generated point lies inside it.

Times span the last three years in the city's local time with weekday, hour-of-day and
annual seasonality and a mild growth trend. Rows are produced in time order, so
``service_request.id`` and the public ids grow with ``requested_at`` as they do in real
data. A run is reproducible from ``seed`` on the same database contents, except for the
tracking tokens (secrets are never derived from a seed) and the public-id numbers (they
continue the city's counters).
"""

from __future__ import annotations

import base64
import importlib.util
import math
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import shapely
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from spatial import public_ids
from spatial.cities import get_city
from spatial.errors import InvalidInput
from spatial.models import Jurisdiction

MAX_REQUESTS = 20_000_000
CHUNK_ROWS = 50_000
HISTORY_DAYS = 1095  # 3 x 365: always inside "the last 3 years", leap day or not
GENERATED_PREFIX = "GEN-"
MAX_SEED = 2**31 - 1

MAX_SEEDS = 50_000  # cluster seeds read from existing requests
RANDOM_SEEDS = 400  # seeds scattered in the boundary when the city has no requests
MIN_CATEGORY_SEEDS = 30  # below this a category clusters around all seeds, not its own

# Mixture of the spatial model: around seeds, around a few heavy hotspots, background.
P_SEED, P_HOTSPOT, P_BACKGROUND = 0.78, 0.14, 0.08
SEED_SIGMA_M = 250.0
HOTSPOT_SIGMA_M = 120.0
HOTSPOTS = 24
REDRAW_ROUNDS = 12
METRES_PER_DEGREE = 111_320.0

GROWTH = 0.30  # requests per day grow by this fraction over the three years
ANNUAL_AMPLITUDE = 0.08  # busier in summer
WEEKDAY_WEIGHTS = np.array([1.18, 1.12, 1.08, 1.04, 0.98, 0.66, 0.58])  # Monday first
HOUR_WEIGHTS = np.array(  # local hour of day, midnight first
    [0.15, 0.10, 0.08, 0.07, 0.08, 0.15, 0.35, 0.65, 0.95, 1.10, 1.15, 1.15,
     1.10, 1.10, 1.05, 1.00, 0.95, 0.85, 0.70, 0.60, 0.50, 0.40, 0.30, 0.20]
)  # fmt: skip

CHANNELS = np.array(["web", "mobile", "phone", "email", "api"])
CHANNEL_WEIGHTS = np.array([0.34, 0.31, 0.24, 0.07, 0.04])
PRIORITIES = np.array(["normal", "low", "high", "urgent"])
PRIORITY_WEIGHTS = np.array([0.80, 0.08, 0.10, 0.02])
CLOSED_STATUSES = np.array(["closed", "resolved", "duplicate", "cant_fix", "cancelled", "referred"])
CLOSED_WEIGHTS = np.array([0.62, 0.25, 0.05, 0.04, 0.03, 0.01])
OPEN_STATUSES = np.array(["new", "acknowledged", "in_progress"])
OPEN_WEIGHTS_FRESH = np.array([0.70, 0.20, 0.10])  # less than a day old
OPEN_WEIGHTS_OLDER = np.array([0.15, 0.35, 0.50])
BACKLOG = 0.02  # share of requests still open although their duration has passed
ANONYMOUS = 0.25

DEFAULT_MEDIAN_HOURS = 72.0
DEFAULT_SIGMA = 1.0
MIN_CLOSED_FOR_STATS = 20
MIN_DURATION_S = 300
MAX_DURATION_S = 2 * 365 * 86_400

COPY_COLUMNS = (
    "jurisdiction_id",
    "public_id",
    "token",
    "external_id",
    "service_id",
    "status",
    "priority",
    "location",
    "channel",
    "anonymous",
    "notify_updates",
    "needs_location",
    "requested_at",
    "updated_at",
    "first_response_at",
    "closed_at",
)
NULL = r"\N"
# EWKB of a 2D point with SRID: byte order, type with the SRID flag, SRID, x, y.
EWKB_POINT = np.dtype(
    [("order", "u1"), ("type", "<u4"), ("srid", "<u4"), ("x", "<f8"), ("y", "<f8")]
)
EWKB_POINT_SRID = 0x20000001


# ---------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class CityModel:
    """Everything the generator needs from the database, as plain arrays.

    Seeds are sorted by ``seed_service`` (an index into ``service_ids``) so that each
    category's own seeds form one slice.
    """

    jurisdiction_id: int
    slug: str
    timezone: str
    service_ids: np.ndarray  # int64, one per active category
    service_weights: np.ndarray  # float, sums to 1
    duration_mu: np.ndarray  # mean of ln(hours to close), per category
    duration_sigma: np.ndarray
    seed_lon: np.ndarray
    seed_lat: np.ndarray
    seed_service: np.ndarray  # int64 index into service_ids
    boundary: shapely.Geometry | None  # prepared; None means no containment check
    seeds_from_requests: bool  # False: seeds are random points in the boundary


@dataclass(frozen=True)
class GenerateResult:
    """What a run wrote: ``routed`` is None when routing was skipped or unavailable."""

    slug: str
    count: int
    seed: int
    seconds: float
    routed: int | None


def parse_count(value: object) -> int:
    """Validate ``--requests``: a whole number from 1 to :data:`MAX_REQUESTS`."""
    text = str(value).strip().replace("_", "")
    digits = text.removeprefix("+")
    if not (digits.isascii() and digits.isdigit()) or not 1 <= int(digits) <= MAX_REQUESTS:
        raise InvalidInput(
            f"--requests must be a whole number from 1 to {MAX_REQUESTS:,} (got {value!r})",
            field="requests",
        )
    return int(digits)


def parse_seed(value: int | None) -> int | None:
    if value is not None and not 0 <= value <= MAX_SEED:
        raise InvalidInput(f"--seed must be from 0 to {MAX_SEED} (got {value})", field="seed")
    return value


# Generated rows (external_id GEN-...) are left out of what the model learns, so that
# repeated runs do not drift away from the real mix.
SERVICE_STATS_SQL = sa.text(
    """
    WITH real AS (
        SELECT r.service_id,
               CASE WHEN r.closed_at > r.requested_at
                    THEN ln(extract(epoch FROM r.closed_at - r.requested_at) / 3600.0) END AS lh
        FROM service_request r
        WHERE r.jurisdiction_id = :jid
          AND (r.external_id IS NULL OR r.external_id NOT LIKE 'GEN-%')
    )
    SELECT s.id, s.sla_hours, count(real.service_id) AS n,
           count(real.lh) AS n_closed, avg(real.lh) AS mu, stddev_samp(real.lh) AS sigma
    FROM service s LEFT JOIN real ON real.service_id = s.id
    WHERE s.jurisdiction_id = :jid AND s.active
    GROUP BY s.id, s.sla_hours
    ORDER BY s.id
    """
)

SEEDS_SQL = sa.text(
    """
    SELECT r.service_id, ST_X(r.location) AS lon, ST_Y(r.location) AS lat
    FROM service_request r
    WHERE r.jurisdiction_id = :jid AND r.location IS NOT NULL
      AND (r.external_id IS NULL OR r.external_id NOT LIKE 'GEN-%')
    ORDER BY md5(r.id::text || :salt)
    LIMIT :cap
    """
)

RANDOM_SEEDS_SQL = sa.text(
    """
    SELECT ST_X(d.geom), ST_Y(d.geom)
    FROM jurisdiction j, ST_Dump(ST_GeneratePoints(j.boundary, :n, :pg_seed)) AS d
    WHERE j.id = :jid
    """
)


def _durations(rows: list, index: int) -> tuple[float, float]:
    """Log-normal parameters of hours-to-close for one category."""
    _, sla_hours, _, n_closed, mu, sigma = rows[index]
    if n_closed >= MIN_CLOSED_FOR_STATS and mu is not None:
        return float(mu), float(np.clip(sigma or DEFAULT_SIGMA, 0.3, 2.5))
    if sla_hours and sla_hours > 0:
        return math.log(0.5 * sla_hours), 0.9
    # Vary categories without data a little so they do not all look alike.
    return math.log(DEFAULT_MEDIAN_HOURS) + 0.35 * ((index % 5) - 2), DEFAULT_SIGMA


def load_city_model(session: Session, city: Jurisdiction, seed: int) -> CityModel:
    """Read the category mix, durations, cluster seeds and boundary of ``city``."""
    rows = session.execute(SERVICE_STATS_SQL, {"jid": city.id}).all()
    if not rows:
        raise InvalidInput(
            f"city {city.slug!r} has no active categories: run 'civicpin demo load' "
            "or create categories first",
            field="city",
        )
    service_ids = np.array([r[0] for r in rows], dtype=np.int64)
    counts = np.array([r[2] for r in rows], dtype=np.float64)
    weights = counts / counts.sum() if counts.sum() > 0 else np.full(len(rows), 1 / len(rows))
    params = [_durations(rows, i) for i in range(len(rows))]

    boundary = None
    wkb = session.execute(
        sa.text("SELECT ST_AsBinary(boundary) FROM jurisdiction WHERE id = :jid"),
        {"jid": city.id},
    ).scalar()
    if wkb is not None:
        boundary = shapely.from_wkb(bytes(wkb))
        if boundary.is_empty or boundary.area == 0:
            boundary = None
    if boundary is not None:
        shapely.prepare(boundary)

    index_of = {int(sid): i for i, sid in enumerate(service_ids)}
    seeds = session.execute(SEEDS_SQL, {"jid": city.id, "salt": str(seed), "cap": MAX_SEEDS})
    s_svc, s_lon, s_lat = [], [], []
    for service_id, lon, lat in seeds:
        s_svc.append(index_of.get(int(service_id), -1))
        s_lon.append(lon)
        s_lat.append(lat)
    seed_service = np.array(s_svc, dtype=np.int64)
    seed_lon = np.array(s_lon, dtype=np.float64)
    seed_lat = np.array(s_lat, dtype=np.float64)
    if boundary is not None and seed_lon.size:
        inside = shapely.contains_xy(boundary, seed_lon, seed_lat)
        seed_service, seed_lon, seed_lat = seed_service[inside], seed_lon[inside], seed_lat[inside]

    from_requests = bool(seed_lon.size)
    if not from_requests and boundary is not None:
        pool = session.execute(
            RANDOM_SEEDS_SQL, {"jid": city.id, "n": RANDOM_SEEDS, "pg_seed": seed % MAX_SEED + 1}
        ).all()
        seed_lon = np.array([p[0] for p in pool], dtype=np.float64)
        seed_lat = np.array([p[1] for p in pool], dtype=np.float64)
        seed_service = np.full(seed_lon.size, -1, dtype=np.int64)
    if not seed_lon.size:
        raise InvalidInput(
            f"city {city.slug!r} has neither a usable boundary nor located requests: "
            "give it a boundary first",
            field="city",
        )

    order = np.argsort(seed_service, kind="stable")
    return CityModel(
        jurisdiction_id=city.id,
        slug=city.slug,
        timezone=city.timezone,
        service_ids=service_ids,
        service_weights=weights,
        duration_mu=np.array([p[0] for p in params]),
        duration_sigma=np.array([p[1] for p in params]),
        seed_lon=seed_lon[order],
        seed_lat=seed_lat[order],
        seed_service=seed_service[order],
        boundary=boundary,
        seeds_from_requests=from_requests,
    )


# ------------------------------------------------------------------ pure generation


@dataclass(frozen=True)
class Chunk:
    """One chunk of generated rows as arrays (times are UTC epoch seconds)."""

    service: np.ndarray  # index into CityModel.service_ids
    lon: np.ndarray
    lat: np.ndarray
    requested: np.ndarray
    updated: np.ndarray
    first_response: np.ndarray  # -1 where none
    closed: np.ndarray  # -1 where open
    status: np.ndarray
    priority: np.ndarray
    channel: np.ndarray
    anonymous: np.ndarray
    year: np.ndarray  # local calendar year, for public ids

    def __len__(self) -> int:
        return int(self.service.size)


class Generator:
    """Chunks of synthetic requests for one model; deterministic for a given seed.

    The whole run's per-day counts are drawn up front (one small array), so the rows
    come out in time order however many chunks there are.
    """

    def __init__(self, model: CityModel, total: int, seed: int, now: datetime | None = None):
        self.model = model
        self.total = total
        self.rng = np.random.default_rng(seed)
        self.tz = ZoneInfo(model.timezone)
        self.now = int((now or datetime.now(UTC)).timestamp())
        self._plan_days()
        self._plan_space()

    def _plan_days(self) -> None:
        now_local = datetime.fromtimestamp(self.now, self.tz)
        first = (now_local - timedelta(days=HISTORY_DAYS)).date() + timedelta(days=1)
        n_days = (now_local.date() - first).days + 1
        days = np.arange(n_days)
        start = np.datetime64(first.isoformat(), "D")
        self.day_start = (start + days).astype("datetime64[s]").astype(np.int64)  # local
        dates = start + days
        weekday = (dates.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
        day_of_year = (dates - dates.astype("datetime64[Y]")).astype(np.int64)
        self.day_year = dates.astype("datetime64[Y]").astype(np.int64) + 1970
        weight = (
            (1 + GROWTH * days / max(n_days - 1, 1))
            * WEEKDAY_WEIGHTS[weekday]
            * (1 + ANNUAL_AMPLITUDE * np.cos(2 * np.pi * (day_of_year - 196) / 365.25))
        )
        midnight = now_local.replace(hour=0, minute=0, second=0, microsecond=0)
        self.today_seconds = max(int((now_local - midnight).total_seconds()) - 60, 1)
        weight[-1] *= self.today_seconds / 86_400
        self.day_end = np.cumsum(self.rng.multinomial(self.total, weight / weight.sum()))

    def _plan_space(self) -> None:
        m = self.model
        n_cat = m.service_ids.size
        self.cat_start = np.searchsorted(m.seed_service, np.arange(n_cat), side="left")
        self.cat_count = np.searchsorted(m.seed_service, np.arange(n_cat), side="right")
        self.cat_count = self.cat_count - self.cat_start
        n_hot = min(HOTSPOTS, m.seed_lon.size)
        self.hotspots = self.rng.choice(m.seed_lon.size, size=n_hot, replace=False)
        w = 1 / np.arange(1, n_hot + 1) ** 0.8
        self.hotspot_weights = w / w.sum()
        if m.boundary is not None:
            xmin, ymin, xmax, ymax = m.boundary.bounds
        else:
            pad = 0.01
            xmin, xmax = m.seed_lon.min() - pad, m.seed_lon.max() + pad
            ymin, ymax = m.seed_lat.min() - pad, m.seed_lat.max() + pad
        self.bbox = (xmin, ymin, xmax, ymax)

    def chunks(self, size: int = CHUNK_ROWS) -> Iterator[Chunk]:
        """Chunks of whole days, at most ``size`` rows unless one day alone has more."""
        start = 0
        while start < self.total:
            # Whole days only, so the time order also holds from one chunk to the next.
            last = np.searchsorted(self.day_end, start + size, side="right") - 1
            stop = int(self.day_end[last]) if last >= 0 else start
            if stop <= start:
                stop = int(self.day_end[np.searchsorted(self.day_end, start, side="right")])
            yield self.chunk(start, stop)
            start = stop

    def chunk(self, start: int, stop: int) -> Chunk:
        """Rows ``start`` to ``stop`` (whole days) of the run; call chunks in order."""
        rng = self.rng
        n = stop - start
        day = np.searchsorted(self.day_end, np.arange(start, stop), side="right")
        second = rng.choice(24, size=n, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum()) * 3600 + rng.integers(
            0, 3600, size=n
        )
        today = day == self.day_start.size - 1
        if today.any():
            # Today only up to a minute ago: keeps time order and the future empty.
            second[today] = rng.integers(0, self.today_seconds, size=int(today.sum()))
        order = np.lexsort((second, day))
        day, second = day[order], second[order]
        requested = self._to_utc(self.day_start[day] + second)
        future = requested > self.now - 60
        if future.any():
            requested[future] = self.now - rng.integers(60, 6 * 3600, size=int(future.sum()))

        m = self.model
        service = rng.choice(m.service_ids.size, size=n, p=m.service_weights)
        lon, lat = self._points(service)
        hours = np.exp(m.duration_mu[service] + m.duration_sigma[service] * rng.standard_normal(n))
        duration = np.clip((hours * 3600).astype(np.int64), MIN_DURATION_S, MAX_DURATION_S)
        age = self.now - requested
        is_closed = (duration <= age) & (rng.random(n) >= BACKLOG)
        closed = np.where(is_closed, requested + duration, -1)

        status = np.where(
            is_closed,
            rng.choice(CLOSED_STATUSES, size=n, p=CLOSED_WEIGHTS),
            np.where(
                age < 86_400,
                rng.choice(OPEN_STATUSES, size=n, p=OPEN_WEIGHTS_FRESH),
                rng.choice(OPEN_STATUSES, size=n, p=OPEN_WEIGHTS_OLDER),
            ),
        )
        touched = requested + (rng.random(n) * np.minimum(age, duration)).astype(np.int64)
        updated = np.where(is_closed, closed, np.where(status == "new", requested, touched))
        first_response = np.where(
            is_closed,
            requested + (duration * rng.uniform(0.05, 0.6, size=n)).astype(np.int64),
            np.where(status == "new", -1, touched),
        )
        return Chunk(
            service=service,
            lon=lon,
            lat=lat,
            requested=requested,
            updated=updated,
            first_response=first_response,
            closed=closed,
            status=status,
            priority=rng.choice(PRIORITIES, size=n, p=PRIORITY_WEIGHTS),
            channel=rng.choice(CHANNELS, size=n, p=CHANNEL_WEIGHTS),
            anonymous=rng.random(n) < ANONYMOUS,
            year=self.day_year[day],
        )

    def _to_utc(self, local_seconds: np.ndarray) -> np.ndarray:
        """Local wall-clock epoch seconds to true UTC epoch seconds (DST-aware)."""
        idx = pd.DatetimeIndex(local_seconds.astype("datetime64[s]"))
        # Wall times skipped by a DST change move forward; repeated ones take the first.
        aware = idx.tz_localize(
            self.model.timezone,
            ambiguous=np.ones(len(idx), dtype=bool),
            nonexistent="shift_forward",
        )
        utc = aware.tz_convert("UTC").tz_localize(None)
        return utc.to_numpy().astype("datetime64[s]").astype(np.int64)

    def _points(self, service: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m, rng = self.model, self.rng
        n = service.size
        lon, lat = np.empty(n), np.empty(n)
        todo = np.arange(n)
        component = rng.choice(3, size=n, p=[P_SEED, P_HOTSPOT, P_BACKGROUND])
        for _ in range(REDRAW_ROUNDS):
            x, y = self._draw(component[todo], service[todo])
            ok = (
                shapely.contains_xy(m.boundary, x, y)
                if m.boundary is not None
                else np.ones(x.size, dtype=bool)
            )
            lon[todo[ok]], lat[todo[ok]] = x[ok], y[ok]
            todo = todo[~ok]
            if not todo.size:
                return lon, lat
        # Around a seed on a sliver of the city most draws miss: take seeds themselves,
        # which lie inside.
        pick = rng.integers(0, m.seed_lon.size, size=todo.size)
        lon[todo], lat[todo] = m.seed_lon[pick], m.seed_lat[pick]
        return lon, lat

    def _draw(self, component: np.ndarray, service: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m, rng = self.model, self.rng
        n = component.size
        own = self.cat_count[service] >= MIN_CATEGORY_SEEDS
        u = rng.random(n)
        seed_idx = np.where(
            own,
            self.cat_start[service] + (u * self.cat_count[service]).astype(np.int64),
            (u * m.seed_lon.size).astype(np.int64),
        )
        hot_idx = self.hotspots[rng.choice(self.hotspots.size, size=n, p=self.hotspot_weights)]
        centre = np.where(component == 1, hot_idx, seed_idx)
        cx, cy = m.seed_lon[centre], m.seed_lat[centre]
        sigma = np.where(component == 1, HOTSPOT_SIGMA_M, SEED_SIGMA_M)
        sigma = sigma * rng.lognormal(0.0, 0.4, size=n)
        dy = rng.standard_normal(n) * sigma / METRES_PER_DEGREE
        # Metres to degrees of longitude shrink with latitude; fine at a few hundred metres.
        dx = rng.standard_normal(n) * sigma / (METRES_PER_DEGREE * np.cos(np.radians(cy)))
        xmin, ymin, xmax, ymax = self.bbox
        bx, by = rng.uniform(xmin, xmax, size=n), rng.uniform(ymin, ymax, size=n)
        background = component == 2
        return np.where(background, bx, cx + dx), np.where(background, by, cy + dy)


# ------------------------------------------------------------------------ writing


def _timestamps(epoch: np.ndarray) -> list[str]:
    text = np.datetime_as_string(epoch.astype("datetime64[s]"), unit="s", timezone="UTC")
    return np.where(epoch >= 0, text, NULL).tolist()


def _ewkb_hex(lon: np.ndarray, lat: np.ndarray) -> list[str]:
    rec = np.empty(lon.size, dtype=EWKB_POINT)
    rec["order"], rec["type"], rec["srid"] = 1, EWKB_POINT_SRID, 4326
    rec["x"], rec["y"] = lon, lat
    width = 2 * EWKB_POINT.itemsize
    return (
        np.frombuffer(rec.tobytes().hex().encode("ascii"), dtype=f"S{width}")
        .astype(f"U{width}")
        .tolist()
    )


def _tokens(n: int) -> list[str]:
    # 24 random bytes are exactly 32 URL-safe base64 characters, so one encode of all the
    # bytes of a chunk splits cleanly into tokens (same shape as secrets.token_urlsafe(24)).
    blob = base64.urlsafe_b64encode(os.urandom(24 * n))
    return np.frombuffer(blob, dtype="S32").astype("U32").tolist()


def copy_text(
    model: CityModel, chunk: Chunk, public: list[str], external: list[str], tokens: list[str]
) -> str:
    """The chunk as PostgreSQL COPY text, columns as in :data:`COPY_COLUMNS`."""
    n = len(chunk)
    const = [str(model.jurisdiction_id)] * n
    false = ["f"] * n
    columns = (
        const,
        public,
        tokens,
        external,
        model.service_ids[chunk.service].astype(str).tolist(),
        chunk.status.tolist(),
        chunk.priority.tolist(),
        _ewkb_hex(chunk.lon, chunk.lat),
        chunk.channel.tolist(),
        np.where(chunk.anonymous, "t", "f").tolist(),
        false,  # generated rows have no contact to notify
        false,
        _timestamps(chunk.requested),
        _timestamps(chunk.updated),
        _timestamps(chunk.first_response),
        _timestamps(chunk.closed),
    )
    return "\n".join(map("\t".join, zip(*columns, strict=True))) + "\n"


def _allocate_public_ids(
    sessions: sessionmaker[Session], city: Jurisdiction, years: np.ndarray
) -> list[str]:
    """Public ids for rows whose local years are ``years`` (sorted), one upsert per year.

    Each allocation commits at once in its own short transaction, so a long run never
    holds the counter's row lock against live submissions; a failed run leaves a gap.
    """
    out: list[str] = []
    values, counts = np.unique(years, return_counts=True)
    with sessions.begin() as session:
        for year, count in zip(values.tolist(), counts.tolist(), strict=True):
            out.extend(public_ids.allocate(session, city, int(year), int(count)))
    return out


def _seed_used(session: Session, city_id: int, seed: int) -> bool:
    return (
        session.execute(
            sa.text(
                "SELECT 1 FROM service_request WHERE jurisdiction_id = :jid AND external_id = :x"
            ),
            {"jid": city_id, "x": f"{GENERATED_PREFIX}{seed}-1"},
        ).first()
        is not None
    )


def _route(
    session: Session, city: Jurisdiction, log: Callable[[str], None], started: float
) -> int | None:
    """Route the unrouted requests with ``routing.engine.route_bulk``, if it exists yet."""
    if importlib.util.find_spec("routing.engine") is None:
        log("routing skipped: routing.engine is not available; run 'civicpin route' later")
        return None
    from routing import engine

    route_bulk = getattr(engine, "route_bulk", None)
    if route_bulk is None:
        log("routing skipped: routing.engine.route_bulk is not available; run 'civicpin route'")
        return None

    def progress(done: int, total: int) -> None:
        log(f"routed {done}/{total} ({time.perf_counter() - started:.1f} s)")

    return int(route_bulk(session, city, only_unrouted=True, progress=progress))


def generate_requests(
    sessions: sessionmaker[Session],
    slug: str | None,
    count: int,
    seed: int | None = None,
    route: bool = True,
    progress: Callable[[int, int, float], None] | None = None,
    log: Callable[[str], None] = lambda message: None,
    chunk_rows: int = CHUNK_ROWS,
) -> GenerateResult:
    """Write ``count`` synthetic historical requests for the city ``slug``.

    Everything is validated before the first write; the rows (and their routing) are
    written in one transaction, so a failure leaves no generated rows behind.
    """
    count = parse_count(count)
    seed = parse_seed(seed)
    started = time.perf_counter()
    with sessions() as session, session.begin():
        city = get_city(session, slug)
        if seed is None:
            seed = secrets.randbelow(MAX_SEED + 1)
            while _seed_used(session, city.id, seed):
                seed = secrets.randbelow(MAX_SEED + 1)
        elif _seed_used(session, city.id, seed):
            raise InvalidInput(
                f"seed {seed} was already used for city {city.slug!r}: pick another --seed",
                field="seed",
            )
        model = load_city_model(session, city, seed)
        log(f"seed: {seed} (repeat with --seed {seed})")
        where = "real requests" if model.seeds_from_requests else "random points in the city"
        log(
            f"model: {model.service_ids.size} categories, "
            f"{model.seed_lon.size} cluster seeds from {where}"
        )
        generator = Generator(model, count, seed)

        cursor = session.connection().connection.dbapi_connection.cursor()
        done = 0
        for chunk in generator.chunks(chunk_rows):
            n = len(chunk)
            public = _allocate_public_ids(sessions, city, chunk.year)
            external = [f"{GENERATED_PREFIX}{seed}-{i}" for i in range(done + 1, done + n + 1)]
            text = copy_text(model, chunk, public, external, _tokens(n))
            with cursor.copy(
                f"COPY service_request ({', '.join(COPY_COLUMNS)}) FROM STDIN"
            ) as copy:
                copy.write(text.encode("ascii"))
            del text
            done += n
            if progress:
                progress(done, count, time.perf_counter() - started)
        cursor.close()
        # Fresh statistics, so the set-based routing plans for the new size of the table.
        session.execute(sa.text("ANALYZE service_request"))
        routed = _route(session, city, log, started) if route else None
        slug = city.slug
    return GenerateResult(slug, count, seed, time.perf_counter() - started, routed)
