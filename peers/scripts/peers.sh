#!/usr/bin/env bash
# The whole comparison with the peers in one command (BENCHMARKS.md, "Against the peers"):
# per-call overhead, memory, scrape, collector throughput, and Python profilis.
#
#   bash benches/peers.sh                 # about 3 minutes on 2 cores, once built
#   QUICK=1 bash benches/peers.sh         # shorter criterion runs, for a smoke test
#   NO_PYTHON=1 bash benches/peers.sh     # skip Python profilis (needs python3 and PyPI)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${QUICK:-}" ]; then
  TIMES=(--warm-up-time 0.2 --measurement-time 0.5)
else
  TIMES=(--warm-up-time 1 --measurement-time 2)
fi

cargo bench --bench peers --bench peers_memory --bench scrape --bench collector --no-run

echo "== per-call overhead (cargo bench --bench peers -- ${TIMES[*]})"
cargo bench --bench peers -- "${TIMES[@]}"
echo "== memory (cargo bench --bench peers_memory)"
cargo bench --bench peers_memory
echo "== scrape (cargo bench --bench scrape -- ${TIMES[*]})"
cargo bench --bench scrape -- "${TIMES[@]}"
echo "== collector (cargo bench --bench collector)"
cargo bench --bench collector
if [ -z "${NO_PYTHON:-}" ]; then
  echo "== Python profilis (bash benches/python_profilis.sh)"
  bash benches/python_profilis.sh
fi
