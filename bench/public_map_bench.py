"""Benchmark of the public map's data request (``/api/map/requests``) at a million requests.

Usage (a scratch embedded database; nothing else is touched)::

    export VAR_DIR=/tmp/mapbench/var
    .venv/bin/civicpin db up
    .venv/bin/civicpin demo load
    .venv/bin/civicpin demo generate --requests 1000000 --city los-angeles
    .venv/bin/python bench/public_map_bench.py --city los-angeles

It times the real endpoint through the Flask app (routing, validation, queries, JSON;
no network) for the views a resident's browser asks for:

- city-wide: the whole city in a 1100x800 px window (the zoom Leaflet's fitBounds picks),
  any time (the map's default), and the same with "last 30 days";
- street level: zoom 17 around the busiest spot of the city, and around a typical one
  (the median of the 500 m cells that hold any request).

Beside each, in the same run, a raw PostGIS select of the same rows: every request in
the view (what sending pins would need), and for city-wide views also the plain
``ST_SnapToGrid`` count of those rows (what clustering them per request would cost).
Targets: city-wide p95 <= 150 ms, street level p95 <= 40 ms.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlencode

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from spatial.cities import get_city  # noqa: E402
from spatial.settings import load_settings  # noqa: E402
from webmap.app import create_app  # noqa: E402

WIDTH, HEIGHT = 1100, 800
TARGETS = {"city-wide": 150.0, "street": 40.0}

RAW_ROWS_SQL = sa.text(
    """
    SELECT r.public_id, s.name, r.status, r.requested_at, ST_X(r.location), ST_Y(r.location)
    FROM service_request r JOIN service s ON s.id = r.service_id
    WHERE r.jurisdiction_id = :j AND NOT s.private
      AND r.location && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)
      AND r.requested_at >= :since
    """
)
RAW_GRID_SQL = sa.text(
    """
    SELECT ST_SnapToGrid(r.location, :size) AS cell, r.status, count(*)
    FROM service_request r JOIN service s ON s.id = r.service_id
    WHERE r.jurisdiction_id = :j AND NOT s.private
      AND r.location && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)
      AND r.requested_at >= :since
    GROUP BY 1, 2
    """
)
# Centres of level-14 cells (about 500 m) ranked by how many requests they hold.
SPOTS_SQL = sa.text(
    """
    WITH cells AS (
        SELECT (gx + 0.5)::float8 * (90.0::float8 / 16384) AS lon,
               (gy + 0.5)::float8 * (90.0::float8 / 16384) AS lat,
               row_number() OVER (ORDER BY sum(n) DESC, gx, gy) AS rank,
               count(*) OVER () AS cells
        FROM map_cell_count WHERE jurisdiction_id = :j AND level = 14
        GROUP BY gx, gy
    )
    SELECT lon, lat, rank FROM cells WHERE rank = 1 OR rank = cells / 2 ORDER BY rank
    """
)


def fit_zoom(bounds: tuple[float, float, float, float]) -> int:
    """The zoom at which Leaflet's fitBounds shows ``bounds`` in a WIDTH x HEIGHT window."""
    x0, y0, x1, y1 = bounds

    def merc_y(lat: float) -> float:
        return math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))

    zoom_x = math.log2(WIDTH * 360 / (256 * (x1 - x0)))
    zoom_y = math.log2(HEIGHT * 2 * math.pi / (256 * (merc_y(y1) - merc_y(y0))))
    return math.floor(min(zoom_x, zoom_y))


def view_bbox(lon: float, lat: float, zoom: int) -> tuple[float, float, float, float]:
    """The bbox of a WIDTH x HEIGHT window centred on (lon, lat) at ``zoom``."""
    deg_per_px = 360 / (256 * 2**zoom)
    half_w = WIDTH / 2 * deg_per_px
    half_h = HEIGHT / 2 * deg_per_px * math.cos(math.radians(lat))
    return (lon - half_w, lat - half_h, lon + half_w, lat + half_h)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def timed(fn, runs: int, warmup: int = 2) -> tuple[list[float], object]:
    result = None
    for _ in range(warmup):
        result = fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1000)
    return times, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--city", default=None, help="city slug (default: the only one)")
    parser.add_argument("--runs", type=int, default=60, help="timed requests per view")
    parser.add_argument("--ref-runs", type=int, default=8, help="timed raw selects per view")
    args = parser.parse_args()

    settings = load_settings()
    app = create_app(settings)
    engine = app.extensions["civicpin"]["engine"]
    client = app.test_client()
    with engine.connect() as conn:
        from sqlalchemy.orm import Session

        with Session(conn) as s:
            city = get_city(s, args.city)
            slug, jid = city.slug, city.id
            bounds = s.execute(
                sa.select(
                    sa.func.ST_XMin(sa.text("boundary")),
                    sa.func.ST_YMin(sa.text("boundary")),
                    sa.func.ST_XMax(sa.text("boundary")),
                    sa.func.ST_YMax(sa.text("boundary")),
                )
                .select_from(sa.text("jurisdiction"))
                .where(sa.text("id = :j"))
                .params(j=jid)
            ).one()
        total = conn.execute(
            sa.text("SELECT count(*) FROM service_request WHERE jurisdiction_id = :j"), {"j": jid}
        ).scalar()
        busiest, typical = (tuple(r[:2]) for r in conn.execute(SPOTS_SQL, {"j": jid}).all())
    city_zoom = fit_zoom(tuple(bounds))
    centre = ((bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2)
    month_ago = date.today() - timedelta(days=30)
    views = [
        ("city-wide", "city-wide, any time", view_bbox(*centre, city_zoom), city_zoom, {}),
        (
            "city-wide",
            "city-wide, last 30 days",
            view_bbox(*centre, city_zoom),
            city_zoom,
            {"since": month_ago.isoformat()},
        ),
        ("street", "street, busiest spot", view_bbox(*busiest, 17), 17, {}),
        ("street", "street, typical spot", view_bbox(*typical, 17), 17, {}),
    ]
    print(
        f"city {slug}: {total:,} requests; city-wide zoom {city_zoom}; street views at "
        f"zoom 17: busiest {busiest[0]:.5f},{busiest[1]:.5f}, typical (median 500 m cell) "
        f"{typical[0]:.5f},{typical[1]:.5f}; window {WIDTH}x{HEIGHT}"
    )
    print(
        f"{'view':28} {'endpoint p50/p95 ms':>20} {'raw rows p50/p95 ms':>21} "
        f"{'ratio':>6} {'rows':>9} {'mode':>9} {'bytes':>8}"
    )
    failures = 0
    for kind, label, bbox, zoom, extra in views:
        query = urlencode(
            {"city": slug, "bbox": ",".join(f"{v:.6f}" for v in bbox), "zoom": zoom, **extra}
        )

        def request(q=query):
            res = client.get(f"/api/map/requests?{q}")
            assert res.status_code == 200, res.get_data(as_text=True)
            return res

        times, res = timed(request, args.runs)
        body = res.get_json()
        params = {
            "j": jid,
            "x0": bbox[0],
            "y0": bbox[1],
            "x1": bbox[2],
            "y1": bbox[3],
            "since": extra.get("since", "1900-01-01"),
            "size": 90 / 2**zoom,
        }

        def raw_rows(p=params):
            with engine.connect() as conn:
                return conn.execute(RAW_ROWS_SQL, p).all()

        ref_times, rows = timed(raw_rows, args.ref_runs, warmup=1)
        p50, p95 = statistics.median(times), percentile(times, 0.95)
        r50, r95 = statistics.median(ref_times), percentile(ref_times, 0.95)
        ok = p95 <= TARGETS[kind]
        failures += not ok
        print(
            f"{label:28} {p50:9.1f} /{p95:8.1f} {r50:10.1f} /{r95:8.1f} "
            f"{r50 / p50:6.1f} {len(rows):9,} {body['mode']:>9} {len(res.data):8,}"
            f"   target p95 <= {TARGETS[kind]:.0f} ms: {'ok' if ok else 'MISSED'}"
        )
        if kind == "city-wide":

            def raw_grid(p=params):
                with engine.connect() as conn:
                    return conn.execute(RAW_GRID_SQL, p).all()

            grid_times, cells = timed(raw_grid, args.ref_runs, warmup=1)
            g50, g95 = statistics.median(grid_times), percentile(grid_times, 0.95)
            print(
                f"{'  (raw ST_SnapToGrid count)':28} {'':20} {g50:10.1f} /{g95:8.1f} "
                f"{g50 / p50:6.1f} {len(cells):9,} {'cells':>9}"
            )
    print("ratio = raw select p50 / endpoint p50 (above 1: the endpoint is faster)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
