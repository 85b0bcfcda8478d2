"""Benchmark of ``civicpin demo generate``: wall time and peak memory for N requests.

Usage (a scratch embedded database, nothing else touched)::

    VAR_DIR=/tmp/genbench/var .venv/bin/python bench/generate_bench.py --requests 1000000

It uses the city ``--city`` (default ``bench-la``); when that city is missing it builds
it from the demo data (Neighborhood Council boundary, the 11 categories, the 10,000
real 2020 records as cluster seeds). It then runs the real CLI under
``/usr/bin/time -v`` and prints the figures beside a reference measured in the same run:
PostgreSQL inserting the same number of rows with ``INSERT ... SELECT generate_series``
(same table, same indexes), rolled back afterwards.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import pandas as pd
import sqlalchemy as sa
from geoalchemy2.shape import from_shape
from shapely.geometry import MultiPolygon

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from spatial.models import (  # noqa: E402
    Jurisdiction,
    PublicIdCounter,
    Service,
    ServiceRequest,
    Zone,
    ZoneLayer,
)
from webmap.cli import Runtime  # noqa: E402

DATA = ROOT / "intake" / "demo" / "data" / "los_angeles"
STATUS = {
    "Closed": "closed",
    "Cancelled": "cancelled",
    "Open": "new",
    "Pending": "acknowledged",
    "Referred Out": "referred",
}
CHANNEL = {
    "Call": "phone",
    "Mobile App": "mobile",
    "Driver Self Report": "api",
    "Email": "email",
    "Self Service": "web",
}

REFERENCE_SQL = """
INSERT INTO service_request (jurisdiction_id, public_id, token, external_id, service_id,
    status, priority, location, channel, anonymous, notify_updates, needs_location,
    requested_at, updated_at, closed_at)
SELECT :jid, 'REF-' || g, md5(g::text || 'ref') || md5(g::text), 'REF-' || g, :sid,
    'closed', 'normal',
    ST_SetSRID(ST_MakePoint(-118.5 + random() * 0.3, 34.0 + random() * 0.2), 4326),
    'web', false, false, false,
    now() - random() * interval '1000 days', now(), now()
FROM generate_series(1, :n) AS g
"""


def build_city(sessions, slug: str) -> None:
    """The demo data as a city of its own (only what the generator needs, plus zones)."""
    ncs = gpd.read_file(DATA / "la_neighborhood_councils.geojson")
    union = ncs.geometry.union_all()
    boundary = union if union.geom_type == "MultiPolygon" else MultiPolygon([union])
    rec = pd.read_csv(DATA / "la_311_2020_sample_normalized.csv", dtype=str)
    with sessions.begin() as s:
        city = Jurisdiction(
            slug=slug,
            name="Los Angeles (benchmark)",
            timezone="America/Los_Angeles",
            metric_srid=32611,
            public_id_prefix="BLA",
            boundary=from_shape(boundary, 4326),
        )
        s.add(city)
        s.flush()
        layer = ZoneLayer(jurisdiction_id=city.id, name="neighborhood-councils", version=1)
        s.add(layer)
        s.flush()
        for _, nc in ncs.iterrows():
            g = (
                nc.geometry
                if nc.geometry.geom_type == "MultiPolygon"
                else MultiPolygon([nc.geometry])
            )
            s.add(
                Zone(
                    layer_id=layer.id,
                    code=str(nc["nc_id"]),
                    name=str(nc["name"]),
                    geom=from_shape(g, 4326),
                )
            )
        services = {}
        for name in sorted(rec["category"].dropna().unique()):
            code = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
            services[name] = Service(jurisdiction_id=city.id, code=code, name=name)
            s.add(services[name])
        s.flush()
        n = 0
        for row in rec.itertuples():
            if pd.isna(row.latitude) or pd.isna(row.category):
                continue
            n += 1
            created = pd.Timestamp(row.created_at).tz_localize("America/Los_Angeles")
            closed = (
                pd.Timestamp(row.closed_at).tz_localize("America/Los_Angeles")
                if isinstance(row.closed_at, str)
                else None
            )
            s.add(
                ServiceRequest(
                    jurisdiction_id=city.id,
                    public_id=f"BLA-2020-{n:06d}",
                    token=f"bench-{n}",
                    external_id=row.request_id,
                    service_id=services[row.category].id,
                    status=STATUS.get(row.status, "closed"),
                    priority="normal",
                    location=f"SRID=4326;POINT({row.longitude} {row.latitude})",
                    channel=CHANNEL.get(row.source, "web"),
                    anonymous=False,
                    notify_updates=False,
                    needs_location=False,
                    requested_at=created,
                    updated_at=closed or created,
                    closed_at=closed,
                )
            )
        s.add(PublicIdCounter(jurisdiction_id=city.id, year=2020, last_value=n))
    print(f"built city {slug}: {len(ncs)} zones, {len(services)} categories, {n} requests")


def reference(engine: sa.Engine, slug: str, n: int) -> float:
    with engine.connect() as conn:
        tx = conn.begin()
        jid, sid = conn.execute(
            sa.text(
                "SELECT j.id, min(s.id) FROM jurisdiction j JOIN service s ON s.jurisdiction_id = j.id "
                "WHERE j.slug = :slug GROUP BY j.id"
            ),
            {"slug": slug},
        ).one()
        t = time.perf_counter()
        conn.execute(sa.text(REFERENCE_SQL), {"jid": jid, "sid": sid, "n": n})
        elapsed = time.perf_counter() - t
        tx.rollback()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--city", default="bench-la")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--route", action="store_true", help="also route (default: --no-route)")
    ap.add_argument("--no-reference", action="store_true")
    args = ap.parse_args()

    rt = Runtime()
    sessions = rt.sessions()
    with sessions() as s:
        exists = s.scalar(sa.select(Jurisdiction.id).where(Jurisdiction.slug == args.city))
    if exists is None:
        build_city(sessions, args.city)

    with tempfile.NamedTemporaryFile("r", suffix=".time") as timing:
        cmd = [
            "/usr/bin/time",
            "-v",
            "-o",
            timing.name,
            sys.executable,
            "-m",
            "webmap.cli",
            "demo",
            "generate",
            "--requests",
            str(args.requests),
            "--city",
            args.city,
        ]
        cmd += ["--seed", str(args.seed)] if args.seed is not None else []
        cmd += [] if args.route else ["--no-route"]
        print("$ civicpin " + " ".join(cmd[7:]), flush=True)
        t = time.perf_counter()
        # Progress lines stream through on stderr.
        res = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        wall = time.perf_counter() - t
        print(res.stdout.strip())
        if res.returncode:
            sys.exit(res.returncode)
        rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", timing.read())
    what = "generate + route" if args.route else "generate"
    print(
        f"{what}: {args.requests:,} requests in {wall:.1f} s "
        f"({args.requests / wall:,.0f} rows/s), peak RSS {int(rss.group(1)) / 1024:.0f} MiB"
    )
    if not args.no_reference:
        ref = reference(rt.engine(), args.city, args.requests)
        print(
            f"reference: INSERT ... SELECT generate_series of {args.requests:,} rows "
            f"in {ref:.1f} s; generate / reference = {wall / ref:.2f}"
        )


if __name__ == "__main__":
    main()
