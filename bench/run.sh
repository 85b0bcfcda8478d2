#!/usr/bin/env bash
# Runs every benchmark in bench/ against a scratch embedded cluster (never your data).
# Figures print beside a reference measured in the same run; see bench/README.md.
# Usage: make bench            (all, default sizes)
#        REQUESTS=100000 make bench   (smaller history for a quick look)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export VAR_DIR="${BENCH_VAR_DIR:-/tmp/civicpin-bench/var}"
unset DATABASE_URL
REQUESTS="${REQUESTS:-1000000}"
PY=.venv/bin/python
for script in bench/*_bench.py; do
  echo "== $script"
  "$PY" "$script" --requests "$REQUESTS"
done
