#!/usr/bin/env bash
# Instructions per call of each case of benches/peers.rs, counted by callgrind: one thread,
# repeatable, blind to contention and cache misses. A cross-check of the timed figures on a
# noisy machine, not a substitute for them.
#
#   bash benches/peers_callgrind.sh          # CALLS=200000 per case; about 2 minutes
#
# Needs valgrind (Debian: apt-get install valgrind).
set -euo pipefail
cd "$(dirname "$0")/.."

CALLS="${CALLS:-200000}"
cargo bench --bench peers --no-run 2>/dev/null
BIN=$(cargo bench --bench peers --no-run --message-format=json 2>/dev/null |
  sed -n 's/.*"executable":"\([^"]*peers-[^"]*\)".*/\1/p' | tail -1)
[ -x "$BIN" ] || { echo "peers bench binary not found" >&2; exit 1; }
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

# process:case, in the order of the table of benches/peers.rs.
CASES="baseline:bare baseline:two_instant_now profilis:profiled profilis:profiled_sampled_out
profilis:profiled_disabled autometrics:autometrics metrics:metrics_lookup metrics:metrics_cached
tracing:tracing_instrument fastrace:fastrace_trace"

echo "| case | instructions per call (callgrind, $CALLS calls) | vs \`profiled\` |"
echo "|---|---:|---:|"
reference=""
for pc in $CASES; do
  process=${pc%%:*}
  case=${pc#*:}
  PROFILIS_PEERS_PROCESS=$process PEERS_ONLY=$case PEERS_CALLS=$CALLS \
    valgrind --tool=callgrind --toggle-collect='peers::measured' \
    --callgrind-out-file="$OUT/$case.out" "$BIN" >/dev/null 2>"$OUT/$case.log"
  total=$(sed -n 's/^totals: \([0-9]*\).*/\1/p' "$OUT/$case.out")
  per_call=$(awk -v t="$total" -v n="$CALLS" 'BEGIN { printf "%.1f", t / n }')
  [ "$case" = profiled ] && reference=$per_call
  ratio=""
  [ -n "$reference" ] && ratio=$(awk -v a="$per_call" -v r="$reference" 'BEGIN { printf "%.2f×", a / r }')
  echo "| $case | $per_call | $ratio |"
done
