#!/usr/bin/env bash
# The whole comparison with the peers in one command (BENCHMARKS.md, "Against the peers"):
# per-call overhead, memory, scrape, collector throughput, and Python profilis.
#
#   bash peers/scripts/peers.sh                 # about 3 minutes on 2 cores, once built
#   QUICK=1 bash peers/scripts/peers.sh         # shorter criterion runs, for a smoke test
#   NO_PYTHON=1 bash peers/scripts/peers.sh     # skip Python profilis (needs python3 and PyPI)
#
# The peers' benches are in this package (profilis-peers), scrape and collector in the root one
# (built with `--features jsonl`, which collector needs, so that one build serves both).
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ -n "${QUICK:-}" ]; then
  TIMES=(--warm-up-time 0.2 --measurement-time 0.5)
else
  TIMES=(--warm-up-time 1 --measurement-time 2)
fi

cargo bench -p profilis-peers --bench peers --bench peers_memory --no-run
cargo bench -p profilis --features jsonl --bench scrape --bench collector --no-run

echo "== per-call overhead (cargo bench -p profilis-peers --bench peers -- ${TIMES[*]})"
cargo bench -p profilis-peers --bench peers -- "${TIMES[@]}"
echo "== memory (cargo bench -p profilis-peers --bench peers_memory)"
cargo bench -p profilis-peers --bench peers_memory
echo "== scrape (cargo bench -p profilis --features jsonl --bench scrape -- ${TIMES[*]})"
cargo bench -p profilis --features jsonl --bench scrape -- "${TIMES[@]}"
echo "== collector (cargo bench -p profilis --features jsonl --bench collector)"
cargo bench -p profilis --features jsonl --bench collector
if [ -z "${NO_PYTHON:-}" ]; then
  echo "== Python profilis (bash peers/scripts/python_profilis.sh)"
  bash peers/scripts/python_profilis.sh
fi
