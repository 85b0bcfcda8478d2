"""Write a synthetic historical 311 export (CSV) for the import and hotspot benchmarks.

Rows are drawn from the 10,000 real LA demo records: each row copies a real record's
category, status, source and address, moves its position by a few hundred metres, and
places it at a random moment of the years 2019-2021 (local time, no offset) with the real
record's time to close. 0.3 % of the rows have no coordinates and 500 rows share one
geocoder default point, as real exports do.

    .venv/bin/python bench/make_history_csv.py --rows 1000000 --out /tmp/anbench/history.csv
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "intake" / "demo" / "data" / "los_angeles" / "la_311_2020_sample_normalized.csv"
COLUMNS = ["request_id", "created_at", "closed_at", "status", "category", "source", "address",
           "latitude", "longitude"]  # fmt: skip
START, END = np.datetime64("2019-01-01T00:00"), np.datetime64("2022-01-01T00:00")
JITTER_M = 250.0
PLACEHOLDER = (34.0522342, -118.2436849)


def make(rows: int, out: Path, seed: int = 2021, chunk: int = 250_000, prefix: str = "H") -> None:
    rng = np.random.default_rng(seed)
    src = pd.read_csv(SOURCE, dtype=str, keep_default_na=False)
    created = pd.to_datetime(src["created_at"])
    closed = pd.to_datetime(src["closed_at"].replace("", None))
    ttc = (closed - created).to_numpy()  # NaT where open
    lat = pd.to_numeric(src["latitude"], errors="coerce").to_numpy()
    lon = pd.to_numeric(src["longitude"], errors="coerce").to_numpy()
    pool = np.flatnonzero(np.isfinite(lat))
    span = (END - START).astype("timedelta64[m]").astype(np.int64)
    out.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with out.open("w", newline="", encoding="utf-8") as fh:
        fh.write(",".join(COLUMNS) + "\n")
        while written < rows:
            n = min(chunk, rows - written)
            pick = pool[rng.integers(0, pool.size, n)]
            minutes = np.sort(rng.integers(0, span, n))
            when = START + minutes.astype("timedelta64[m]")
            shut = when + ttc[pick]
            y = lat[pick] + rng.normal(0, JITTER_M / 111_320, n)
            x = lon[pick] + rng.normal(0, JITTER_M / (111_320 * np.cos(np.radians(34.05))), n)
            y, x = np.round(y, 7), np.round(x, 7)
            lat_s = y.astype(str).astype(object)
            lon_s = x.astype(str).astype(object)
            missing = rng.random(n) < 0.003
            lat_s[missing], lon_s[missing] = "", ""
            frame = pd.DataFrame(
                {
                    "request_id": [f"{prefix}{written + k + 1:08d}" for k in range(n)],
                    "created_at": np.datetime_as_string(when, unit="m"),
                    "closed_at": np.where(
                        np.isnat(shut), "", np.datetime_as_string(shut, unit="m")
                    ),
                    "status": src["status"].to_numpy()[pick],
                    "category": src["category"].to_numpy()[pick],
                    "source": src["source"].to_numpy()[pick],
                    "address": src["address"].to_numpy()[pick],
                    "latitude": lat_s,
                    "longitude": lon_s,
                }
            )
            if written == 0:
                # A geocoder's default point: many rows, many different addresses.
                k = min(500, n)
                frame.loc[: k - 1, "latitude"] = str(PLACEHOLDER[0])
                frame.loc[: k - 1, "longitude"] = str(PLACEHOLDER[1])
            frame.to_csv(fh, header=False, index=False)
            written += n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/anbench/history.csv"))
    args = parser.parse_args()
    started = time.perf_counter()
    make(args.rows, args.out)
    size = args.out.stat().st_size / 1e6
    print(
        f"wrote {args.rows:,} rows ({size:.0f} MB) to {args.out} in {time.perf_counter() - started:.1f} s"
    )


if __name__ == "__main__":
    main()
