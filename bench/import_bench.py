"""Benchmark of ``civicpin requests import``: a history CSV imported and routed, beside raw
COPY plus one PostGIS join doing the same assignment, measured in the same run.

Usage (a scratch embedded database; builds the CSV and the demo city when missing)::

    VAR_DIR=/tmp/anbench/var .venv/bin/python bench/import_bench.py \\
        --csv /tmp/anbench/history.csv --rows 1000000

The city is the LA demo (``civicpin demo load``): two zone layers, 7 departments, 49 crews,
11 categories routed by crew district. The import runs as the real command under
``/usr/bin/time -v`` (wall time and peak memory of the process). The reference, in one
transaction that is rolled back afterwards, is what the database must do at the least to
reach the same end state:

1. ``COPY`` the raw CSV into a temporary table of text columns;
2. one ``INSERT ... SELECT`` into ``service_request`` that types the values and assigns
   each row its crew-district zone, department, crew and due time with a spatial join,
   plus the ``request_zone`` rows of both layers from the same join.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from intake.demo import catalog, load_demo  # noqa: E402
from webmap.cli import Runtime  # noqa: E402

MAP = "id=request_id,lat=latitude,lon=longitude,category=category,created=created_at,"
MAP += "closed=closed_at,status=status,address=address,channel=source"
RAW_COLUMNS = ("request_id", "created_at", "closed_at", "status", "category", "source",
               "address", "latitude", "longitude")  # fmt: skip

REFERENCE_SQL = """
WITH typed AS MATERIALIZED (
    SELECT row_number() OVER () AS n, raw.request_id, s.id AS service_id, s.sla_hours,
           s.default_department_id, coalesce(st.ours, 'new') AS status,
           CASE WHEN raw.latitude <> '' THEN
               ST_SetSRID(ST_MakePoint(raw.longitude::float8, raw.latitude::float8), 4326)
           END AS location,
           nullif(raw.address, '') AS address,
           raw.created_at::timestamp AT TIME ZONE :tz AS requested_at,
           nullif(raw.closed_at, '')::timestamp AT TIME ZONE :tz AS closed_at
    FROM _raw raw
    JOIN jsonb_each_text(CAST(:categories AS jsonb)) AS c(theirs, code) ON c.theirs = raw.category
    JOIN service s ON s.jurisdiction_id = :jid AND s.code = c.code
    LEFT JOIN jsonb_each_text(CAST(:statuses AS jsonb)) AS st(theirs, ours)
           ON st.theirs = raw.status
), hits AS MATERIALIZED (
    -- The one spatial join: every point against the zones of every current layer.
    SELECT DISTINCT ON (t.n, z.layer_id) t.n, z.layer_id, z.id AS zone_id, z.code
    FROM typed t JOIN zone z ON z.layer_id = ANY(:layers) AND ST_Intersects(z.geom, t.location)
    ORDER BY t.n, z.layer_id, z.code
), ins AS (
    INSERT INTO service_request (jurisdiction_id, public_id, token, external_id, service_id,
        status, priority, location, address, channel, anonymous, notify_updates,
        needs_location, requested_at, updated_at, closed_at, department_id, crew_id, zone_id,
        rule_id, ruleset_version, due_at, routed_at, routing_explanation)
    SELECT :jid, 'REF-' || t.n, md5(t.n::text || 'ref') || md5(t.n::text), 'REF-' || t.request_id,
           t.service_id, t.status, 'normal', t.location, t.address, 'import', false, false,
           t.location IS NULL, t.requested_at, coalesce(t.closed_at, t.requested_at), t.closed_at,
           coalesce(ru.department_id, t.default_department_id), c.id, h.zone_id, ru.id, :version,
           t.requested_at + t.sla_hours * interval '1 hour', now(), 'reference'
    FROM typed t
    LEFT JOIN hits h ON h.n = t.n AND h.layer_id = :district_layer
    LEFT JOIN routing_rule ru ON ru.ruleset_id = :ruleset AND ru.service_id = t.service_id
                             AND h.zone_id IS NOT NULL
    LEFT JOIN department d ON d.id = ru.department_id
    LEFT JOIN crew c ON c.department_id = ru.department_id AND c.code = d.code || '-' || h.code
    RETURNING id, public_id
)
INSERT INTO request_zone (request_id, layer_id, zone_id)
SELECT ins.id, h.layer_id, h.zone_id
FROM ins JOIN hits h ON 'REF-' || h.n = ins.public_id
"""


def reference(engine: sa.Engine, csv_path: Path, slug: str) -> tuple[float, float, int]:
    """(COPY seconds, join seconds, rows) of the reference; everything rolled back."""
    categories = {s["source"]: s["code"] for s in catalog.SERVICES}
    statuses = dict(catalog.STATUSES)
    with engine.connect() as conn:
        tx = conn.begin()
        city = conn.execute(
            sa.text("SELECT id, timezone FROM jurisdiction WHERE slug = :s"), {"s": slug}
        ).one()
        layers = conn.execute(
            sa.text("SELECT id, name FROM zone_layer WHERE jurisdiction_id = :j AND is_current"),
            {"j": city.id},
        ).all()
        ruleset = conn.execute(
            sa.text(
                "SELECT id, version FROM routing_ruleset WHERE jurisdiction_id = :j "
                "AND status = 'published' ORDER BY version DESC LIMIT 1"
            ),
            {"j": city.id},
        ).one()
        cols = ", ".join(f"{c} text" for c in RAW_COLUMNS)
        conn.execute(sa.text(f"CREATE TEMP TABLE _raw ({cols}) ON COMMIT DROP"))
        cursor = conn.connection.dbapi_connection.cursor()
        t0 = time.perf_counter()
        with csv_path.open("rb") as fh:
            with cursor.copy("COPY _raw FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
                while block := fh.read(1 << 20):
                    copy.write(block)
        t1 = time.perf_counter()
        conn.execute(sa.text("ANALYZE _raw"))
        conn.execute(
            sa.text(REFERENCE_SQL),
            {
                "jid": city.id,
                "tz": city.timezone,
                "categories": json.dumps(categories),
                "statuses": json.dumps(statuses),
                "district_layer": next(lid for lid, name in layers if name == "crew-districts"),
                "layers": [lid for lid, _ in layers],
                "ruleset": ruleset.id,
                "version": ruleset.version,
            },
        )
        t2 = time.perf_counter()
        rows = conn.execute(
            sa.text("SELECT count(*) FROM service_request WHERE public_id LIKE 'REF-%'")
        ).scalar()
        tx.rollback()
    return t1 - t0, t2 - t1, int(rows)


def run_import(csv_path: Path, slug: str, category_map: Path) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MB, stdout) of the real command."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as timing:
        cmd = ["/usr/bin/time", "-v", "-o", timing.name, sys.executable, "-m", "webmap.cli",
               "requests", "import", str(csv_path), "--city", slug, "--map", MAP,
               "--category-map", str(category_map)]  # fmt: skip
        print("$ civicpin " + " ".join(cmd[7:]), flush=True)
        t = time.perf_counter()
        res = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        wall = time.perf_counter() - t
        if res.returncode != 0:
            raise SystemExit(f"the import failed (exit {res.returncode})")
        rss_kb = int(
            re.search(r"Maximum resident set size \(kbytes\): (\d+)", timing.read()).group(1)
        )
    return wall, rss_kb / 1024, res.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", type=Path, default=Path("/tmp/anbench/history.csv"))
    ap.add_argument(
        "--rows", type=int, default=1_000_000, help="rows to generate if --csv is missing"
    )
    args = ap.parse_args()

    if not args.csv.exists():
        sys.path.insert(0, str(ROOT / "bench"))
        from make_history_csv import make

        print(f"writing {args.rows:,} rows to {args.csv}", flush=True)
        make(args.rows, args.csv)
    # A fresh VAR_DIR has no cluster yet: create, start and migrate it as users do.
    subprocess.run([sys.executable, "-m", "webmap.cli", "db", "up"], cwd=ROOT, check=True)
    rt = Runtime()
    sessions = rt.sessions()
    t = time.perf_counter()
    counts = load_demo(sessions, progress=lambda m: print(f"demo: {m}", flush=True))
    print(f"demo city ready ({counts['requests']:,} requests, {time.perf_counter() - t:.0f} s)")
    slug = counts["city"]
    with sessions() as s:
        before = s.execute(sa.text("SELECT count(*) FROM service_request")).scalar()
    if before > counts["requests"] and counts["created"] is False:
        print(f"note: the city already holds {before:,} requests (an earlier import)")

    copy_s, join_s, ref_rows = reference(rt.engine(), args.csv, slug)
    print(f"reference: COPY {copy_s:.1f} s + join/insert {join_s:.1f} s = {copy_s + join_s:.1f} s "
          f"for {ref_rows:,} rows (rolled back)", flush=True)  # fmt: skip

    with tempfile.NamedTemporaryFile("w", suffix=".json") as cmap:
        json.dump({s["source"]: s["code"] for s in catalog.SERVICES}, cmap)
        cmap.flush()
        wall, rss, out = run_import(args.csv, slug, Path(cmap.name))
    print(out.strip().splitlines()[-1])
    ratio = wall / (copy_s + join_s)
    print(f"civicpin requests import: {wall:.1f} s, peak memory {rss:.0f} MB")
    print(f"ratio to the reference: {ratio:.2f} x (target <= 1.5 x); memory target < 500 MB")


if __name__ == "__main__":
    main()
