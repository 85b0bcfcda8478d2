"""Re-routing after a publish: jobs the worker runs chunk by chunk, with their progress.

Publishing a rule set or making a zone layer version current enqueues one
:class:`~spatial.models_ops.RerouteJob` in the publishing transaction (:func:`enqueue`),
so a publish that rolls back leaves no job. A later job of the same city supersedes a
queued older one that it covers: a rule-set job covers earlier rule-set jobs, a layer job
earlier rule-set jobs and earlier jobs of the same layer.

A worker claims the oldest job with ``FOR UPDATE SKIP LOCKED`` and then holds a
session-level advisory lock on its own connection while the job runs: other workers skip
a job whose lock is held, and take over a ``running`` job whose worker died (its lock
went with its connection). The job works through the city's requests in id order,
:data:`CHUNK_SIZE` at a time; each chunk is one transaction together with the job's
progress (``done``, ``moved``), so the admin page reads how far it got, and a failure
leaves every request either re-routed or as it was. A chunk run twice writes nothing
new (only changed decisions are written), so a job taken over simply starts again.

- ``rules``: the city's open requests (and any never routed) are re-routed with the
  published rules by :func:`routing.engine.reroute`: hand reassignments are kept, closed
  requests keep their historical decision, each request moved gets a "rerouted" event.
- ``layer``: every request of the city, open and closed, gets its zone in the layer's
  current version (rows of the layer's other versions are replaced), then the open ones
  are re-routed as above, since rules may use the layer.

Requests moved to another crew are that crew's new work (they show as new on its page).
When the job ends, each such crew's members get one summary e-mail ("12 requests moved
to your crew", with the link to the crew's page), not one per request; in the job's last
transaction, so a job that fails sends none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from notify import messages
from routing.engine import OPEN_OR_UNROUTED, reroute
from spatial.errors import NotFound
from spatial.models import Jurisdiction, RuleSet, ZoneLayer, now_utc
from spatial.models_ops import RerouteJob

CHUNK_SIZE = 20_000
KINDS = ("rules", "layer")
ACTIVE = ("queued", "running")
# The advisory-lock class of re-route jobs (the job id is the other half of the key).
LOCK_CLASS = 0x7265_726F  # "rero"
SUPERSEDED = "superseded by job {id}"
MAX_ERROR = 300

# The zone of each request of the chunk in one layer version: where zones overlap the
# smallest wins, then the lowest code in byte order (as routing.engine picks). Rows of
# the layer's other versions, and rows that no longer hold, go; one statement.
LAYER_ZONES_SQL = sa.text(
    """
WITH za AS MATERIALIZED (
    SELECT id, code, ST_Area(geom::geography) AS area FROM zone WHERE layer_id = :current
), pick AS MATERIALIZED (
    SELECT DISTINCT ON (r.id) r.id AS request_id, za.id AS zone_id
    FROM service_request r
    JOIN zone_piece p ON ST_Intersects(p.geom, r.location)
    JOIN za ON za.id = p.zone_id
    WHERE r.jurisdiction_id = :jid AND r.id BETWEEN :lo AND :hi AND r.location IS NOT NULL
    ORDER BY r.id, za.area, za.code COLLATE "C"
), gone AS (
    DELETE FROM request_zone rz USING zone_layer l
    WHERE l.id = rz.layer_id AND l.jurisdiction_id = :jid AND l.name = :name
      AND rz.request_id BETWEEN :lo AND :hi
      AND (rz.layer_id <> :current
           OR NOT EXISTS (SELECT 1 FROM pick WHERE pick.request_id = rz.request_id))
    RETURNING 1
)
INSERT INTO request_zone (request_id, layer_id, zone_id)
SELECT request_id, :current, zone_id FROM pick
ON CONFLICT (request_id, layer_id) DO UPDATE SET zone_id = EXCLUDED.zone_id
WHERE request_zone.zone_id <> EXCLUDED.zone_id
"""
)

# The next chunk of the job's requests after ``:after``: its last id and its size.
NEXT_CHUNK_SQL = """
SELECT max(id) AS hi, count(*) AS n FROM (
    SELECT r.id FROM service_request r
    WHERE r.jurisdiction_id = :jid AND {scope} AND r.id > :after
    ORDER BY r.id LIMIT :n
) c
"""
COUNT_SQL = "SELECT count(*) FROM service_request r WHERE r.jurisdiction_id = :jid AND {scope}"


class JobFailed(Exception):
    """A job cannot go on; its message is the one line the admin page shows."""


# --------------------------------------------------------------------------- enqueue


def enqueue(
    session: Session, city: Jurisdiction, kind: str, subject_id: int, by: str | None = None
) -> RerouteJob:
    """Queue a re-route after publishing (``kind`` 'rules': a rule set; 'layer': a layer
    version), in the caller's transaction; queued older jobs it covers are superseded."""
    if kind not in KINDS:
        raise ValueError(f"unknown re-route kind {kind!r}")
    job = RerouteJob(
        jurisdiction_id=city.id, kind=kind, subject_id=subject_id, created_by=by, status="queued"
    )
    session.add(job)
    session.flush()
    covered = sa.and_(RerouteJob.kind == "rules")
    if kind == "layer":
        name = session.scalar(sa.select(ZoneLayer.name).where(ZoneLayer.id == subject_id))
        same_layer = sa.select(ZoneLayer.id).where(
            ZoneLayer.jurisdiction_id == city.id, ZoneLayer.name == name
        )
        covered = sa.or_(
            RerouteJob.kind == "rules",
            sa.and_(RerouteJob.kind == "layer", RerouteJob.subject_id.in_(same_layer)),
        )
    session.execute(
        sa.update(RerouteJob)
        .where(
            RerouteJob.jurisdiction_id == city.id,
            RerouteJob.status == "queued",
            RerouteJob.id < job.id,
            covered,
        )
        .values(status="done", error=SUPERSEDED.format(id=job.id), finished_at=now_utc())
        .execution_options(synchronize_session=False)
    )
    return job


# --------------------------------------------------------------------------- reading


def get_job(session: Session, city: Jurisdiction, job_id: int) -> RerouteJob:
    """One of the city's jobs; another city's is not found."""
    job = session.get(RerouteJob, job_id)
    if job is None or job.jurisdiction_id != city.id:
        raise NotFound(f"no re-route job {job_id} in this city")
    return job


def latest(
    session: Session, city: Jurisdiction, kind: str | None = None, subject_id: int | None = None
) -> RerouteJob | None:
    """The city's newest job (of ``kind``, about ``subject_id``), if any."""
    query = sa.select(RerouteJob).where(RerouteJob.jurisdiction_id == city.id)
    if kind is not None:
        query = query.where(RerouteJob.kind == kind)
    if subject_id is not None:
        query = query.where(RerouteJob.subject_id == subject_id)
    return session.scalar(query.order_by(RerouteJob.id.desc()).limit(1))


def subject_label(session: Session, job: RerouteJob) -> str:
    """What was published: 'rule set version 3', 'layer wards version 2'."""
    if job.kind == "rules":
        version = session.scalar(sa.select(RuleSet.version).where(RuleSet.id == job.subject_id))
        return f"rule set version {version}" if version else "a rule set since deleted"
    row = session.execute(
        sa.select(ZoneLayer.name, ZoneLayer.version).where(ZoneLayer.id == job.subject_id)
    ).one_or_none()
    return f"layer {row.name} version {row.version}" if row else "a layer version since deleted"


def describe(job: RerouteJob, subject: str) -> str:
    """One sentence on the job for the admin page."""
    total = job.total or 0
    if job.status == "queued":
        return (
            f"Queued: the worker will re-route the open requests after publishing {subject}"
            " (if it stays queued, check that 'civicpin worker' runs)."
        )
    if job.status == "running":
        return f"Running: {job.done:,} of {total:,} requests, {job.moved:,} moved."
    if job.status == "failed":
        return f"Failed after {job.done:,} of {total:,} requests ({job.moved:,} moved): {job.error}"
    if job.error and job.error.startswith("superseded"):
        return f"Replaced by a later publication ({job.error})."
    zones = " every request has its zone in the new version, and" if job.kind == "layer" else ""
    return (
        f"Done after publishing {subject}:{zones} {job.done:,} requests checked, "
        f"{job.moved:,} moved to another department, crew or zone."
    )


def job_view(session: Session, job: RerouteJob) -> dict[str, Any]:
    """The job as plain values (the JSON the admin page polls)."""
    subject = subject_label(session, job)
    return {
        "id": job.id,
        "kind": job.kind,
        "subject": subject,
        "status": job.status,
        "total": job.total,
        "done": job.done,
        "moved": job.moved,
        "error": job.error,
        "text": describe(job, subject),
        "finished": job.status in ("done", "failed"),
    }


# --------------------------------------------------------------------------- running


@dataclass
class _Current:
    job_id: int
    city_id: int
    kind: str
    subject_id: int
    by: str | None
    after: int = 0
    # Requests moved to each crew so far (crew id -> count), for the crews' summaries.
    crews: dict[int, int] = field(default_factory=dict)


class JobRunner:
    """Runs queued jobs one chunk per :meth:`step`, so that a worker can deliver mail
    between chunks. Holds one connection (and the running job's advisory lock) until
    :meth:`close`."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        chunk_size: int = CHUNK_SIZE,
        public_base_url: str | None = None,
    ):
        """``public_base_url``: the install's address, for the crews' summaries (None:
        crews are not told)."""
        self.sessions = sessions
        self.public_base_url = public_base_url
        self.engine: sa.Engine = sessions.kw["bind"]
        self.chunk_size = chunk_size
        self._conn: sa.Connection | None = None
        self._job: _Current | None = None
        self.claimed = 0

    def _connection(self) -> sa.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = self.engine.connect()
        return self._conn

    def close(self) -> None:
        """Release the job's lock and the connection (a job left running is taken over)."""
        if self._conn is not None:
            try:
                if self._job is not None:
                    # A pooled connection outlives close(): the lock must go explicitly.
                    self._unlock(self._job.job_id)
            except sa.exc.DBAPIError:
                self._conn.invalidate()  # the lock ends with the server connection
            finally:
                self._conn.close()
                self._conn = None
                self._job = None

    def __enter__(self) -> JobRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _claim(self) -> _Current | None:
        """The oldest job no live worker runs, marked running and locked by us."""
        conn = self._connection()
        with Session(bind=conn) as session:
            rows = (
                session.execute(
                    sa.select(RerouteJob)
                    .where(RerouteJob.status.in_(ACTIVE))
                    .order_by(RerouteJob.id)
                    .limit(20)
                    .with_for_update(skip_locked=True)
                )
                .scalars()
                .all()
            )
            for job in rows:
                locked = session.scalar(sa.select(sa.func.pg_try_advisory_lock(LOCK_CLASS, job.id)))
                if not locked:
                    continue  # a live worker runs it
                total = session.scalar(
                    sa.text(COUNT_SQL.format(scope=_scope(job.kind))), {"jid": job.jurisdiction_id}
                )
                job.status = "running"
                job.started_at = now_utc()
                job.total = int(total or 0)
                job.done = 0  # a job taken over starts again; moved keeps what it counted
                job.error = None
                current = _Current(
                    job.id, job.jurisdiction_id, job.kind, int(job.subject_id or 0), job.created_by
                )
                session.commit()
                self.claimed += 1
                return current
            session.commit()
        return None

    def _unlock(self, job_id: int) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.execute(sa.select(sa.func.pg_advisory_unlock(LOCK_CLASS, job_id)))
            self._conn.commit()

    def step(self) -> bool:
        """Claim a job if none is running here, then run its next chunk. False when there
        was nothing to do."""
        if self._job is None:
            self._job = self._claim()
            if self._job is None:
                return False
        job = self._job
        try:
            finished = self._chunk(job)
        except Exception as exc:  # noqa: BLE001 - any failure ends the job, never the worker
            self._fail(job, exc)
            return True
        if finished:
            self._unlock(job.job_id)
            self._job = None
        return True

    def run_all(self) -> int:
        """Run every queued job to its end; returns how many were taken up."""
        before = self.claimed
        while self.step():
            pass
        return self.claimed - before

    def _chunk(self, cur: _Current) -> bool:
        """One chunk in one transaction with the job's progress; True when the job ended."""
        conn = self._connection()
        with self.sessions(bind=conn) as session:
            job = session.get(RerouteJob, cur.job_id, with_for_update=True)
            if job is None or job.status != "running":
                session.commit()
                return True  # removed with its city, or finished elsewhere
            city = session.get(Jurisdiction, cur.city_id)
            layer = _check_subject(session, cur)
            scope = _scope(cur.kind)
            nxt = session.execute(
                sa.text(NEXT_CHUNK_SQL.format(scope=scope)),
                {"jid": cur.city_id, "after": cur.after, "n": self.chunk_size},
            ).one()
            if not nxt.n:
                job.status = "done"
                job.finished_at = now_utc()
                job.total = max(job.total or 0, job.done)
                self._tell_crews(session, cur)
                session.commit()
                return True
            lo, hi = cur.after + 1, int(nxt.hi)
            if layer is not None:
                session.execute(
                    LAYER_ZONES_SQL,
                    {"jid": city.id, "lo": lo, "hi": hi, "name": layer[0], "current": layer[1]},
                )
            result = reroute(session, city, by=cur.by, ids=(lo, hi))
            job = session.get(RerouteJob, cur.job_id)  # reroute expired the session
            job.done = (job.done or 0) + int(nxt.n)
            job.moved = (job.moved or 0) + result.moved
            session.commit()
        cur.after = hi
        for crew_id, n in result.crews.items():
            cur.crews[crew_id] = cur.crews.get(crew_id, 0) + n
        return False

    def _tell_crews(self, session: Session, cur: _Current) -> None:
        """One summary per crew that got requests from the job."""
        if not self.public_base_url:
            return
        for crew_id, count in sorted(cur.crews.items()):
            messages.on_crew_rerouted(session, cur.city_id, crew_id, count, self.public_base_url)

    def _fail(self, cur: _Current, exc: Exception) -> None:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not isinstance(exc, JobFailed):
            text = f"{type(exc).__name__}: {text}"
        try:
            if self._conn is not None:
                self._conn.rollback()
            with self.sessions(bind=self._connection()) as session:
                session.execute(
                    sa.update(RerouteJob)
                    .where(RerouteJob.id == cur.job_id)
                    .values(status="failed", error=text[:MAX_ERROR], finished_at=now_utc())
                )
                session.commit()
            self._unlock(cur.job_id)
        finally:
            self._job = None
            if self._conn is not None and self._conn.invalidated:
                self.close()


def _scope(kind: str) -> str:
    # A layer gives every request its zone; rules touch open (or never routed) ones.
    return "true" if kind == "layer" else OPEN_OR_UNROUTED


def _check_subject(session: Session, cur: _Current) -> tuple[str, int] | None:
    """Fails the job if what was published is gone; for a layer job: (layer name, id of
    its current version, 0 without one)."""
    if cur.kind == "rules":
        if session.get(RuleSet, cur.subject_id) is None:
            raise JobFailed(f"the rule set it re-routes with (id {cur.subject_id}) was deleted")
        return None
    layer = session.get(ZoneLayer, cur.subject_id)
    if layer is None:
        raise JobFailed(f"the layer version it re-routes with (id {cur.subject_id}) was deleted")
    current = session.scalar(
        sa.select(ZoneLayer.id).where(
            ZoneLayer.jurisdiction_id == layer.jurisdiction_id,
            ZoneLayer.name == layer.name,
            ZoneLayer.is_current,
        )
    )
    return layer.name, int(current or 0)


def run_queued(
    sessions: sessionmaker[Session],
    chunk_size: int = CHUNK_SIZE,
    public_base_url: str | None = None,
) -> int:
    """Run every queued job to its end (``civicpin worker --once``); returns how many."""
    with JobRunner(sessions, chunk_size, public_base_url) as runner:
        return runner.run_all()
