"""Benchmark of routing: ``route_bulk`` beside a raw PostGIS join, and ``route_request`` p95.

Usage (a scratch embedded cluster; nothing else is touched)::

    env -u DATABASE_URL VAR_DIR=/tmp/routebench/var \\
        .venv/bin/python bench/route_bench.py --requests 1000000

Set-up, through the real CLI: ``civicpin db up``, ``civicpin demo load`` and
``civicpin demo generate --requests N --no-route`` (only what is missing, so a second
run reuses the data). Then, in the same run:

1. ``route_bulk`` of all the city's requests (none routed yet: every decision is
   written), timed, then rolled back; beside it the reference: the raw PostGIS join of
   every request with the whole zones of the current layers (``CREATE TEMP TABLE AS ...
   JOIN zone ON ST_Intersects``) plus the first-matching-rule pick in one more statement,
   then storing that same assignment with plain SQL (the ``request_zone`` rows and one
   ``UPDATE`` of department, crew, zone and rule), also rolled back. Printed as a ratio
   (target <= 1.3x). The ratio to the join and pick alone, not stored, is printed too:
   on this machine writing 1M decisions costs several times the join itself, so that
   second ratio says how much of the time is the writing, not the routing.
2. ``route_request`` for 1,000 random single requests (each flushed), p50/p95 in ms
   (target p95 <= 5 ms), beside a bare single point-in-polygon query as the floor.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from routing.engine import reroute, route_bulk, route_request  # noqa: E402
from spatial.models import Jurisdiction, ServiceRequest  # noqa: E402
from webmap.cli import Runtime  # noqa: E402

CITY = "los-angeles"

REF_HITS_SQL = """
CREATE TEMP TABLE _ref_hits ON COMMIT DROP AS
SELECT r.id, z.layer_id, z.id AS zone_id, z.code
FROM service_request r
JOIN zone z ON ST_Intersects(z.geom, r.location)
WHERE r.jurisdiction_id = :jid
  AND z.layer_id IN (SELECT id FROM zone_layer WHERE jurisdiction_id = :jid AND is_current)
"""
REF_PICK_SQL = """
CREATE TEMP TABLE _ref_pick ON COMMIT DROP AS
SELECT r.id, m.rule_id, m.department_id, m.crew_id, m.zone_id
FROM service_request r
JOIN service s ON s.id = r.service_id
LEFT JOIN LATERAL (
    SELECT ru.id AS rule_id, ru.department_id, ru.crew_id, h.zone_id
    FROM _ref_rules ru
    LEFT JOIN _ref_hits h ON h.id = r.id AND h.layer_id = ru.layer_id
    WHERE (ru.service_id IS NULL OR ru.service_id = r.service_id)
      AND (ru.service_group IS NULL OR ru.service_group = s.group_name)
      AND (ru.layer_name IS NULL OR (h.zone_id IS NOT NULL
           AND (ru.zone_code IS NULL OR ru.zone_code = h.code)))
    ORDER BY ru.position LIMIT 1
) m ON true
WHERE r.jurisdiction_id = :jid
"""
REF_RULES_SQL = """
CREATE TEMP TABLE _ref_rules ON COMMIT DROP AS
SELECT ru.*, l.id AS layer_id FROM routing_rule ru
JOIN routing_ruleset rs ON rs.id = ru.ruleset_id AND rs.status = 'published'
LEFT JOIN zone_layer l ON l.jurisdiction_id = rs.jurisdiction_id AND l.is_current
     AND l.name = ru.layer_name
WHERE rs.jurisdiction_id = :jid AND ru.active
"""
# Storing the same assignment: the zone in every layer and the routing columns.
REF_STORE_SQL = (
    """
DELETE FROM request_zone rz USING service_request r
WHERE rz.request_id = r.id AND r.jurisdiction_id = :jid
""",
    """
INSERT INTO request_zone (request_id, layer_id, zone_id)
SELECT DISTINCT ON (id, layer_id) id, layer_id, zone_id FROM _ref_hits
ORDER BY id, layer_id, zone_id
""",
    """
UPDATE service_request r
SET department_id = p.department_id, crew_id = p.crew_id, zone_id = p.zone_id,
    rule_id = p.rule_id
FROM _ref_pick p WHERE p.id = r.id
""",
)
# The crew district with the most requests is handed to another crew of the same
# department (the owner crew of a zone beats the naming convention).
ONE_DISTRICT_CHANGES_SQL = """
UPDATE zone z SET crew_id = (
    SELECT c.id FROM crew c JOIN crew cz ON cz.id = r.crew_id
    WHERE c.department_id = cz.department_id AND c.id <> cz.id ORDER BY c.id LIMIT 1
)
FROM (
    SELECT zone_id, min(crew_id) AS crew_id FROM service_request
    WHERE jurisdiction_id = :jid AND crew_id IS NOT NULL AND zone_id IS NOT NULL
    GROUP BY zone_id ORDER BY count(*) DESC LIMIT 1
) r
WHERE z.id = r.zone_id
"""
FLOOR_SQL = sa.text(
    "SELECT z.id FROM zone z JOIN zone_layer l ON l.id = z.layer_id "
    "WHERE l.jurisdiction_id = :jid AND l.is_current "
    "AND ST_Intersects(z.geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))"
)


def civicpin(*args: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    subprocess.run([sys.executable, "-m", "webmap.cli", *args], check=True, env=env, cwd=ROOT)


def prepare(sessions, n: int) -> int:
    """The demo city with at least ``n`` requests; returns the city id."""
    with sessions() as s:
        city = s.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == CITY))
    if city is None:
        civicpin("demo", "load")
    with sessions() as s:
        city = s.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == CITY))
        have = s.scalar(sa.select(sa.func.count()).where(ServiceRequest.jurisdiction_id == city.id))
    if have < n:
        civicpin("demo", "generate", "--requests", str(n - have), "--city", CITY, "--no-route")
    with sessions() as s:
        s.execute(sa.text("ANALYZE"))
        s.commit()
    return city.id


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def _reference(sessions, jid: int) -> tuple[float, float]:
    """(compute, store): the raw join + rule pick into temp tables, then storing it."""
    with sessions() as s:
        t0 = time.perf_counter()
        s.execute(sa.text(REF_RULES_SQL), {"jid": jid})
        s.execute(sa.text(REF_HITS_SQL), {"jid": jid})
        s.execute(sa.text("CREATE INDEX ON _ref_hits (id, layer_id)"))
        s.execute(sa.text("ANALYZE _ref_hits"))
        s.execute(sa.text(REF_PICK_SQL), {"jid": jid})
        compute = time.perf_counter() - t0
        t0 = time.perf_counter()
        for statement in REF_STORE_SQL:
            s.execute(sa.text(statement), {"jid": jid})
        store = time.perf_counter() - t0
        s.rollback()
    return compute, store


def bench_bulk(sessions, engine, jid: int):
    """route_bulk between two reference runs (the faster reference counts: warm caches)."""
    ref = _reference(sessions, jid)
    spent: dict[str, float] = {}
    started: dict[int, float] = {}

    def before(conn, cursor, statement, params, context, executemany):
        started[id(cursor)] = time.perf_counter()

    def after(conn, cursor, statement, params, context, executemany):
        key = " ".join(statement.split()[:3])[:40]
        spent[key] = spent.get(key, 0.0) + time.perf_counter() - started.pop(id(cursor), 0.0)

    sa.event.listen(engine, "before_cursor_execute", before)
    sa.event.listen(engine, "after_cursor_execute", after)
    try:
        with sessions() as s:
            city = s.get(Jurisdiction, jid)
            t0 = time.perf_counter()
            # Every request, closed ones too: the reference joins them all.
            n = route_bulk(s, city, include_closed=True)
            bulk = time.perf_counter() - t0
            sa.event.remove(engine, "before_cursor_execute", before)
            sa.event.remove(engine, "after_cursor_execute", after)
            # A re-route after a small change: one crew district's zone gets another
            # owner crew; only the requests it moves are written.
            s.execute(sa.text(ONE_DISTRICT_CHANGES_SQL), {"jid": jid})
            # Closed requests too: the same work as a re-route of the whole history.
            t0 = time.perf_counter()
            moved = reroute(s, city, include_closed=True).moved
            rerouted = time.perf_counter() - t0
            s.rollback()
    finally:
        if sa.event.contains(engine, "before_cursor_execute", before):
            sa.event.remove(engine, "before_cursor_execute", before)
            sa.event.remove(engine, "after_cursor_execute", after)
    again = _reference(sessions, jid)
    if sum(again) < sum(ref):
        ref = again
    return bulk, ref, n, spent, (rerouted, moved)


def bench_single(sessions, jid: int, count: int) -> tuple[list[float], list[float]]:
    with sessions() as s:
        ids = list(
            s.scalars(
                sa.text(
                    "SELECT id FROM service_request WHERE jurisdiction_id = :jid "
                    "AND location IS NOT NULL ORDER BY random() LIMIT :n"
                ),
                {"jid": jid, "n": count},
            )
        )
    route_ms: list[float] = []
    floor_ms: list[float] = []
    with sessions() as s:
        for rid in ids:
            req = s.get(ServiceRequest, rid)
            t0 = time.perf_counter()
            route_request(s, req)
            s.flush()
            route_ms.append((time.perf_counter() - t0) * 1000)
            lon, lat = s.execute(
                sa.text("SELECT ST_X(location), ST_Y(location) FROM service_request WHERE id = :i"),
                {"i": rid},
            ).one()
            t0 = time.perf_counter()
            s.execute(FLOOR_SQL, {"jid": jid, "lon": lon, "lat": lat}).all()
            floor_ms.append((time.perf_counter() - t0) * 1000)
        s.rollback()
    return route_ms, floor_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--singles", type=int, default=1000)
    parser.add_argument(
        "--singles-only", action="store_true", help="only the route_request measurement"
    )
    args = parser.parse_args()
    if "DATABASE_URL" in os.environ:
        sys.exit("unset DATABASE_URL: this benchmark uses its own embedded cluster (VAR_DIR)")
    os.environ.setdefault("VAR_DIR", "/tmp/routebench/var")
    civicpin("db", "up")
    rt = Runtime()
    sessions = rt.sessions()
    jid = prepare(sessions, args.requests)

    if not args.singles_only:
        bulk, (compute, store), n, spent, (rerouted, moved) = bench_bulk(sessions, rt.engine(), jid)
        print(f"route_bulk: {n:,} requests in {bulk:.1f} s ({n / bulk:,.0f}/s)")
        for key, seconds in sorted(spent.items(), key=lambda kv: -kv[1])[:6]:
            print(f"  {seconds:7.1f} s  {key} ...")
        print(
            f"raw PostGIS join + rule pick, stored: {compute + store:.1f} s "
            f"(join + pick into temp tables {compute:.1f} s, storing them {store:.1f} s)"
        )
        print(
            f"ratio route_bulk / raw join stored: {bulk / (compute + store):.2f}x (target <= 1.3x)"
        )
        print(f"ratio route_bulk / raw join, not stored: {bulk / compute:.2f}x")
        print(
            f"re-route of all {n:,} after one district changed crews: {rerouted:.1f} s "
            f"({moved:,} requests moved crew, the others not rewritten)"
        )

    route_ms, floor_ms = bench_single(sessions, jid, args.singles)
    print(
        f"route_request x{len(route_ms)}: p50 {statistics.median(route_ms):.2f} ms, "
        f"p95 {pct(route_ms, 95):.2f} ms (target p95 <= 5 ms)"
    )
    print(
        f"bare point-in-polygon query: p50 {statistics.median(floor_ms):.2f} ms, "
        f"p95 {pct(floor_ms, 95):.2f} ms; ratio p95 {pct(route_ms, 95) / pct(floor_ms, 95):.1f}x"
    )


if __name__ == "__main__":
    main()
