"""Benchmark of the planner's hexagon heatmap + Gi* hotspots over one year of a large
history, beside the same aggregation done in memory with pandas and esda.

Run it after ``bench/import_bench.py``, which leaves a 1,000,000-row 2019-2021 history in
the demo city of the scratch database::

    VAR_DIR=/tmp/anbench/var .venv/bin/python bench/hotspot_bench.py --year 2021

Timed (each three times; the first run also fills the per-process cache of the city's
boundary cells):

- ``spatial.hotspots.hotspots``: flagged points, requests per 500 m hexagon in PostGIS,
  Gi* with esda (what the hotspot page needs);
- ``spatial.analytics.grid_metrics``: every metric per hexagon (the grid page);
- the reference: the same requests already loaded into memory (their coordinates and
  addresses), projected with pyproj, flagged points dropped, binned into the same
  hexagons with numpy and pandas, and the same Gi* with esda. Loading those rows from the
  database is timed separately.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

import esda
import libpysal
import numpy as np
import pandas as pd
import sqlalchemy as sa
from pyproj import Transformer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from spatial import analytics as an  # noqa: E402
from spatial import hotspots as hs  # noqa: E402
from spatial.cities import get_city  # noqa: E402
from webmap.cli import Runtime  # noqa: E402

SQRT3 = 3**0.5


def in_memory(
    lon: np.ndarray, lat: np.ndarray, address: np.ndarray, srid: int, size: int, grid: np.ndarray
) -> dict:
    """Flag, bin and Gi* in pandas / numpy / esda; returns z per (i, j)."""
    frame = pd.DataFrame({"lon": lon, "lat": lat, "address": address})
    per_point = frame.groupby(["lon", "lat"]).agg(n=("address", "size"), a=("address", "nunique"),
                                                   w=("address", "count"))  # fmt: skip
    bad = per_point[(per_point["n"] >= an.FLAG_MIN_REQUESTS)
                    & ((per_point["a"] >= an.FLAG_MIN_ADDRESSES) | (per_point["w"] == 0))]  # fmt: skip
    if len(bad):
        keep = ~frame.set_index(["lon", "lat"]).index.isin(bad.index)
        frame = frame[keep]
    x, y = Transformer.from_crs(4326, srid, always_xy=True).transform(
        frame["lon"].to_numpy(), frame["lat"].to_numpy()
    )
    h = size * SQRT3
    c0 = np.floor(x / (1.5 * size)).astype(np.int64)
    c1 = c0 + 1
    r0 = np.round(y / h - 0.5 * (c0 & 1)).astype(np.int64)
    r1 = np.round(y / h - 0.5 * (c1 & 1)).astype(np.int64)
    d0 = (x - 1.5 * size * c0) ** 2 + (y - h * (r0 + 0.5 * (c0 & 1))) ** 2
    d1 = (x - 1.5 * size * c1) ** 2 + (y - h * (r1 + 0.5 * (c1 & 1))) ** 2
    first = d0 <= d1
    cells = pd.DataFrame({"i": np.where(first, c0, c1), "j": np.where(first, r0, r1)})
    counts = cells.value_counts()
    keys = set(map(tuple, grid.tolist())) | set(counts.index)
    ordered = np.array(sorted(keys), dtype=np.int64)
    yv = counts.reindex(pd.MultiIndex.from_arrays([ordered[:, 0], ordered[:, 1]])).fillna(0)
    w = libpysal.weights.W(hs.hex_neighbours(ordered), silence_warnings=True)
    g = esda.G_Local(yv.to_numpy(dtype=float), w, transform="B", star=True, permutations=0)
    return {(int(i), int(j)): z for (i, j), z in zip(ordered.tolist(), g.Zs, strict=True)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--city", default="los-angeles")
    ap.add_argument("--year", type=int, default=2021)
    ap.add_argument("--size", type=int, default=an.DEFAULT_HEX)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    rt = Runtime()
    sessions = rt.sessions()
    f = an.Filters(start=date(args.year, 1, 1), end=date(args.year, 12, 31))
    with sessions() as s:
        city = get_city(s, args.city)
        total = s.execute(sa.text("SELECT count(*) FROM service_request WHERE jurisdiction_id = :j"),
                          {"j": city.id}).scalar()  # fmt: skip
        sc = an.scope(city, f)
        in_year = s.execute(
            sa.text(f"SELECT count(*) FROM service_request r WHERE {sc.where}"),  # noqa: S608
            sc.params,
        ).scalar()
        print(f"history: {total:,} requests; {args.year}: {in_year:,}; hexagons of {args.size} m")

        ours, grids = [], []
        for _ in range(args.runs):
            t = time.perf_counter()
            result = hs.hotspots(s, city, f, args.size)
            ours.append(time.perf_counter() - t)
        for _ in range(args.runs):
            t = time.perf_counter()
            an.grid_metrics(s, city, f, args.size)
            grids.append(time.perf_counter() - t)

        t = time.perf_counter()
        rows = s.execute(
            sa.text(
                "SELECT ST_X(r.location) AS lon, ST_Y(r.location) AS lat, r.address "  # noqa: S608
                f"FROM service_request r WHERE {sc.where} AND r.location IS NOT NULL"
            ),
            sc.params,
        ).all()
        lon = np.array([r.lon for r in rows])
        lat = np.array([r.lat for r in rows])
        address = np.array([r.address for r in rows], dtype=object)
        load = time.perf_counter() - t
        grid = an.boundary_cells(s, city, args.size)
    del rows
    refs = []
    for _ in range(args.runs):
        t = time.perf_counter()
        expected = in_memory(lon, lat, address, city.metric_srid, args.size, grid)
        refs.append(time.perf_counter() - t)

    got = {(int(i), int(j)): z for i, j, z in zip(result.cells["i"], result.cells["j"],
                                                  result.cells["z"], strict=True)}  # fmt: skip
    assert set(got) == set(expected), "the two computations disagree on the cells"
    diff = max(abs(got[k] - expected[k]) for k in got)
    hot = int((result.cells["spot"] != "none").sum())
    print(f"cells: {len(got):,} ({hot:,} significant); flagged points: {len(result.flagged)}; "
          f"max |z difference| = {diff:.2e}")  # fmt: skip
    print(f"hotspots (PostGIS counts + esda Gi*): first {ours[0]:.2f} s, best {min(ours):.2f} s")
    print(f"grid metrics (every metric per hexagon): best {min(grids):.2f} s")
    print(f"reference in memory (pandas + esda): best {min(refs):.2f} s "
          f"(+ {load:.2f} s to load the rows from the database)")  # fmt: skip
    print(f"ratio hotspots / in-memory reference: {min(ours) / min(refs):.2f} x; "
          f"target: hotspots <= 2 s (best {min(ours):.2f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
