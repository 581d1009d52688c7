#!/usr/bin/env bash
# Instructions per call of each case of peers/benches/peers.rs, counted by callgrind: one thread,
# repeatable, blind to contention and cache misses. A cross-check of the timed figures on a
# noisy machine, not a substitute for them.
#
#   bash peers/scripts/peers_callgrind.sh    # CALLS=200000 per case; about 2 minutes
#
# Needs valgrind (Debian: apt-get install valgrind).
set -euo pipefail
cd "$(dirname "$0")/../.."

CALLS="${CALLS:-200000}"
if ! command -v valgrind >/dev/null; then
  echo "valgrind not found: this script counts instructions with callgrind (Debian: apt-get install valgrind)" >&2
  exit 1
fi
# One build: compiler messages go to stderr as usual, the JSON on stdout names the executable.
BIN=$(cargo bench -p profilis-peers --bench peers --no-run \
  --message-format=json-render-diagnostics |
  sed -n 's/.*"executable":"\([^"]*peers-[^"]*\)".*/\1/p' | tail -1)
[ -x "$BIN" ] || { echo "peers bench binary not found" >&2; exit 1; }
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

# process:case, in the order of the table of peers/benches/peers.rs. The bench does not print which
# process runs a case, so the list is written here; its cases are checked against the bench's
# own (`--list`) below.
CASES="baseline:bare baseline:two_instant_now profilis:profiled profilis:profiled_sampled_out
profilis:profiled_disabled autometrics:autometrics metrics:metrics_lookup metrics:metrics_cached
tracing:tracing_instrument fastrace:fastrace_trace"

if ! listed=$("$BIN" --bench --list 2>"$OUT/list.log"); then
  echo "listing the cases of peers/benches/peers.rs failed:" >&2
  cat "$OUT/list.log" >&2
  exit 1
fi
listed=$(sed -n 's|^peers_\(.*\)/1_thread: benchmark$|\1|p' <<<"$listed" | tr '\n' ' ')
expected=$(for pc in $CASES; do printf '%s ' "${pc#*:}"; done)
if [ "$listed" != "$expected" ]; then
  echo "CASES in $0 is out of date with peers/benches/peers.rs:" >&2
  echo "  in this script:         $expected" >&2
  echo "  peers/benches/peers.rs: $listed" >&2
  exit 1
fi

echo "| case | instructions per call (callgrind, $CALLS calls) | vs \`profiled\` |"
echo "|---|---:|---:|"
reference=""
for pc in $CASES; do
  process=${pc%%:*}
  case=${pc#*:}
  if ! PROFILIS_PEERS_PROCESS=$process PEERS_ONLY=$case PEERS_CALLS=$CALLS \
    valgrind --tool=callgrind --toggle-collect='peers::measured' \
    --callgrind-out-file="$OUT/$case.out" "$BIN" >/dev/null 2>"$OUT/$case.log"; then
    echo "callgrind run of $process:$case failed; its log:" >&2
    cat "$OUT/$case.log" >&2
    exit 1
  fi
  total=$(sed -n 's/^totals: \([0-9]*\).*/\1/p' "$OUT/$case.out")
  if [ -z "$total" ]; then
    echo "no instruction total in the callgrind output of $process:$case; its log:" >&2
    cat "$OUT/$case.log" >&2
    exit 1
  fi
  per_call=$(awk -v t="$total" -v n="$CALLS" 'BEGIN { printf "%.1f", t / n }')
  [ "$case" = profiled ] && reference=$per_call
  ratio=""
  [ -n "$reference" ] && ratio=$(awk -v a="$per_call" -v r="$reference" 'BEGIN { printf "%.2f×", a / r }')
  echo "| $case | $per_call | $ratio |"
done
