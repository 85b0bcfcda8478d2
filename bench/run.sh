#!/usr/bin/env bash
# Runs the benchmarks against scratch embedded clusters under /tmp (never your data).
# Each prints its figures beside a reference measured in the same run; see bench/README.md.
#   make bench                      all of them with a 1,000,000-request history
#   REQUESTS=100000 make bench      a quicker look
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
unset DATABASE_URL
REQUESTS="${REQUESTS:-1000000}"
BASE="${BENCH_DIR:-/tmp/civicpin-bench}"
PY=.venv/bin/python
CLI=.venv/bin/civicpin

echo "== generate (demo generate)"
VAR_DIR="$BASE/gen/var" "$PY" bench/generate_bench.py --requests "$REQUESTS"

echo "== routing (route_bulk vs raw join; route_request p95)"
VAR_DIR="$BASE/route/var" "$PY" bench/route_bench.py --requests "$REQUESTS"

echo "== geocoder (accuracy on Cambridge and Los Angeles; look-up p95 with 500,000 address points vs bare pg_trgm)"
VAR_DIR="$BASE/geocode/var" "$PY" bench/geocode_bench.py --points "${POINTS:-500000}"

echo "== public map (bbox data request, city-wide and street level)"
export VAR_DIR="$BASE/map/var"
"$CLI" db up && "$CLI" demo load
if [ "$("$CLI" db status | sed -n 's/^requests: //p')" -lt "$REQUESTS" ]; then
  "$CLI" demo generate --requests "$REQUESTS" --city los-angeles
fi
"$PY" bench/public_map_bench.py --city los-angeles
echo "== hotspots (hex grid + Gi* over one year, beside pandas/esda)"
"$PY" bench/hotspot_bench.py --city los-angeles
unset VAR_DIR

echo "== historical import (import + route vs COPY + PostGIS join)"
export VAR_DIR="$BASE/import/var"
"$CLI" db up
"$PY" bench/make_history_csv.py --rows "$REQUESTS" --out "$BASE/history.csv"
"$PY" bench/import_bench.py --csv "$BASE/history.csv"

echo "== Open311 (POST rate and latency under load beside a trivial Flask app; GET of 1,000 rows)"
VAR_DIR="$BASE/open311/var" "$PY" bench/open311_bench.py --requests "$REQUESTS"
