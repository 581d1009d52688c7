#!/usr/bin/env bash
# What ProfilisLayer costs an axum app under load, over loopback: examples/axum_app is started
# without a layer (--no-layer), with a layer that does nothing (--pass-through-layer: what any
# axum layer costs) and with ProfilisLayer, in turn in every round, and wrk drives GET
# /users/42 against each. Prints requests/sec per round, the medians and the overheads.
#
#   bash benches/http_load.sh            # 3 rounds of 5 s each
#   ROUNDS=5 DURATION=10 CONNECTIONS=64 bash benches/http_load.sh
#
# Installs wrk (Debian package) if missing. The app runs with the exporter installed in all
# three modes, so the differences are the layers alone. With PIN=1 (the default when taskset
# exists and there are at least 2 CPUs) the server runs one tokio worker on CPU 0 and wrk runs
# on CPU 1, so the server is CPU-bound and requests/sec measure its cost per request; otherwise
# they share the CPUs and the figures are noisier. Compare the figures of one run with each
# other.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-5}"
CONNECTIONS="${CONNECTIONS:-32}"
THREADS="${THREADS:-1}"
PORT="${PORT:-3917}"
PATH_UNDER_TEST="${PATH_UNDER_TEST:-/users/42}"
PIN_DEFAULT=0
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then PIN_DEFAULT=1; fi
PIN="${PIN:-$PIN_DEFAULT}"
SERVER_PIN=()
WRK_PIN=()
if [ "$PIN" = 1 ]; then
  SERVER_PIN=(taskset -c 0)
  WRK_PIN=(taskset -c 1)
  export TOKIO_WORKER_THREADS=1
fi

if ! command -v wrk >/dev/null; then
  echo "== installing wrk (Debian package)"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi

echo "== building examples/axum_app (release)"
cargo build --release --quiet --features axum --example axum_app
APP=target/release/examples/axum_app

SERVER=""
stop_server() {
  if [ -n "$SERVER" ]; then
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    SERVER=""
  fi
}
trap stop_server EXIT

# Starts the app ("$@": extra arguments), waits until it accepts connections.
start_server() {
  PROFILIS_LISTEN=127.0.0.1:0 "${SERVER_PIN[@]}" "$APP" --addr "127.0.0.1:$PORT" "$@" >/dev/null &
  SERVER=$!
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "the app did not start on port $PORT" >&2
  exit 1
}

# Requests/sec of one wrk run against the app started with "$@".
measure() {
  start_server "$@"
  # Warm up: connections, allocator, the profiler's first sites.
  "${WRK_PIN[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d1s "http://127.0.0.1:$PORT$PATH_UNDER_TEST" >/dev/null
  local out
  out=$("${WRK_PIN[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" "http://127.0.0.1:$PORT$PATH_UNDER_TEST")
  stop_server
  if grep -q "Non-2xx" <<<"$out"; then
    echo "unexpected non-2xx responses:" >&2
    echo "$out" >&2
    exit 1
  fi
  awk '/^Requests\/sec:/ { print $2 }' <<<"$out"
}

median() {
  sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo "== pinned: $PIN"
echo "== wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s http://127.0.0.1:$PORT$PATH_UNDER_TEST, $ROUNDS rounds"
without=()
pass=()
with=()
# Per round, how much slower than the no-layer run of the same round (in %): the machine's
# load drifts between rounds, less within one.
pass_pct=()
with_pct=()
for round in $(seq 1 "$ROUNDS"); do
  a=$(measure --no-layer)
  p=$(measure --pass-through-layer)
  b=$(measure)
  without+=("$a")
  pass+=("$p")
  with+=("$b")
  pass_pct+=("$(awk -v a="$a" -v b="$p" 'BEGIN { print (a - b) / a * 100 }')")
  with_pct+=("$(awk -v a="$a" -v b="$b" 'BEGIN { print (a - b) / a * 100 }')")
  printf 'round %d: no layer %10.0f req/s   pass-through layer %10.0f req/s   ProfilisLayer %10.0f req/s\n' \
    "$round" "$a" "$p" "$b"
done

a=$(printf '%s\n' "${without[@]}" | median)
p=$(printf '%s\n' "${pass[@]}" | median)
b=$(printf '%s\n' "${with[@]}" | median)
pp=$(printf '%s\n' "${pass_pct[@]}" | median)
wp=$(printf '%s\n' "${with_pct[@]}" | median)
awk -v a="$a" -v p="$p" -v b="$b" -v pp="$pp" -v wp="$wp" 'BEGIN {
  printf "median:  no layer %10.0f req/s   pass-through layer %10.0f req/s   ProfilisLayer %10.0f req/s\n", a, p, b
  printf "a layer that does nothing: %.2f%% fewer requests/sec (%.2f us -> %.2f us per request)\n",
    (a - p) / a * 100, 1e6 / a, 1e6 / p
  printf "ProfilisLayer: %.2f%% fewer requests/sec (%.2f us -> %.2f us per request)\n",
    (a - b) / a * 100, 1e6 / a, 1e6 / b
  printf "median of the rounds\047 own differences: pass-through layer %.2f%%, ProfilisLayer %.2f%%\n", pp, wp
}'
