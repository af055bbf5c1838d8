#!/usr/bin/env bash
# Workload b at ONE offered rate, several `hearth serve` binaries alternated (issue 20).
# Not a test; see BENCHMARKS.md.
#
#   bench/fixed-rate.sh RATE SECS ROUNDS BIN...    e.g. bench/fixed-rate.sh 1800 15 2 /tmp/old /tmp/new
#
# Each run starts a fresh server (SQLite in a new data dir; STORE=memory for the memory
# store), opens 100 households x 10 members, offers RATE commands/s for SECS seconds and
# prints one line: ack and command-to-event latency and the server's CPU per acked
# command. Odd rounds run the binaries in the order given, even rounds reversed. Where
# bench/before-after.sh finds each binary's capacity, this compares what each costs and
# how its tail looks at the same rate (fewer steps, so less of the machine's swing).
set -euo pipefail
cd "$(dirname "$0")/.."
RATE="${1:?usage: bench/fixed-rate.sh RATE SECS ROUNDS BIN...}"
SECS="${2:?}"
ROUNDS="${3:?}"
shift 3
BINS=("$@")
[ "${#BINS[@]}" -ge 1 ] || { echo "name at least one binary" >&2; exit 2; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/hearth-target}"
cargo build --release -q -p hearth-bench
GEN="$CARGO_TARGET_DIR/release/hearth-bench"
SECRET="bench-secret-$(date +%s)-0123456789abcdef0123"
export HEARTH_MAX_CONNECTIONS=100000 HEARTH_MAX_CONNECTIONS_PER_ADDRESS=100000
export HEARTH_ADDRESS_BURST=1000000 HEARTH_ADDRESS_PER_SECOND=1000000
export HEARTH_SIGNUP_BURST=1000000 HEARTH_SIGNUP_PER_MINUTE=1000000
export HEARTH_MEMBER_BURST=1000000 HEARTH_MEMBER_PER_SECOND=1000000
export HEARTH_MAX_SOCKETS_PER_ROOM=100000 HEARTH_CATCHUP_PER_SECOND=1000000000
ulimit -n 20000 2>/dev/null || true
echo "== $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg); store ${STORE:-sqlite}, $RATE commands/s for $SECS s"

one() { # bin
  local bin="$1" dir pid addr line
  dir="$(mktemp -d /tmp/hearth-fixed-rate-XXXX)"
  if [ "${STORE:-sqlite}" = memory ]; then
    "$bin" serve --no-durable --memory --listen 127.0.0.1:0 --token-secret "$SECRET" >"$dir/out" 2>"$dir/log" &
  else
    "$bin" serve --no-durable --listen 127.0.0.1:0 --token-secret "$SECRET" --data-dir "$dir/data" >"$dir/out" 2>"$dir/log" &
  fi
  pid=$!
  for _ in $(seq 1 300); do
    addr="$(sed -nE 's#^listening on http://(.*)$#\1#p' "$dir/out" | head -1)"
    [ -n "$addr" ] && break
    sleep 0.1
  done
  "$GEN" --addr "$addr" --mode hearth --token-secret "$SECRET" --server-pid "$pid" --order-lines skus \
    --label fixed --out "$dir/b.json" --households 100 --members 10 --rates "$RATE" \
    --step-secs "$SECS" --drain-secs 1 --stop-p99-ms 100000 >"$dir/bench.log" 2>&1 || true
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  python3 - "$dir/b.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["steps"][0]
acks = s["acks"] or 1
print(f"acked {s['acks']}, ack p50 {s['ack_latency']['p50_ms']:.2f} p99 {s['ack_latency']['p99_ms']:.2f} ms, "
      f"event p50 {s['event_latency']['p50_ms']:.2f} p99 {s['event_latency']['p99_ms']:.2f} "
      f"max {s['event_latency']['max_ms']:.1f} ms, server CPU {s['server_cpu_ms'] / acks:.3f} ms per command")
PY
  rm -rf "$dir"
}

for round in $(seq 1 "$ROUNDS"); do
  order=("${BINS[@]}")
  if [ $((round % 2)) = 0 ]; then
    order=()
    for ((i = ${#BINS[@]} - 1; i >= 0; i--)); do order+=("${BINS[$i]}"); done
  fi
  for bin in "${order[@]}"; do
    echo "round $round, $bin: $(one "$bin")"
  done
done
