#!/usr/bin/env bash
# Idle sockets on one node (issue 20, goal 5), release build, on this machine. Not a test.
#
#   bench/idle.sh [count=100000] [hearth-idle flags...]
#
# Builds `hearth` and `hearth-idle` (crates/bench/src/bin/hearth-idle.rs) in release,
# raises the open-file limit (the client and the server, which inherits it, each hold one
# descriptor per socket), and runs `hearth-idle --count COUNT`: it starts its own
# `hearth serve --no-durable` on SQLite in a temporary directory with the edge's
# connection and rate limits raised by flags, signs up households and members over HTTP,
# opens COUNT sockets to their rooms from 127.0.0.2, 127.0.0.3, ... (one source address
# per 20,000 sockets: each has ~28,000 ephemeral ports), and reads the server's RSS at
# each quarter and its CPU over an idle window at the full count. See BENCHMARKS.md,
# section "Idle sockets". The table and the JSON line go to bench/results/idle-<time>/.
#
# IDLE_BEFORE_BIN=/path/to/another/hearth runs that binary first, with the same flags
# (label "before"), then the one just built (label "after"): a before/after in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/hearth-target}"
COUNT="${1:-100000}"
shift || true

# One descriptor per socket on each side, plus room to spare. Raising the hard limit
# needs CAP_SYS_RESOURCE; without it the hard limit is as far as it goes, and
# hearth-idle refuses a count above it (saying so) before starting anything.
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((COUNT + 100)) ]; then
  echo "== open-file limit $(ulimit -n) (hard $(ulimit -Hn)): below $COUNT sockets + 100; the largest count here is $(( $(ulimit -n) - 100 ))" >&2
fi

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$ROOT/bench/results/idle-$STAMP"
mkdir -p "$OUT"

# Built one at a time, as everyone builds them (one command would unify features
# differently and rebuild hearth).
cargo build --release -q -p hearth
cargo build --release -q -p hearth-bench --bin hearth-idle
BIN="$CARGO_TARGET_DIR/release"

MACHINE="$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -m | awk '/Mem:/ {print $2 " MiB RAM"}'), Linux $(uname -r), open-file limit $(ulimit -n), ephemeral ports $(tr '\t' - </proc/sys/net/ipv4/ip_local_port_range)"
COMMIT="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates || echo ' (with uncommitted changes)')"
echo "== idle $COUNT at $COMMIT; $MACHINE; load $(cut -d' ' -f1-3 /proc/loadavg); results in $OUT" >&2

STATUS=0
: >"$OUT/idle.out"
if [ -n "${IDLE_BEFORE_BIN:-}" ]; then
  "$BIN/hearth-idle" --count "$COUNT" --hearth-bin "$IDLE_BEFORE_BIN" --label before \
    --log "$OUT/server-before.log" "$@" >>"$OUT/idle.out" || STATUS=$?
  echo "== before: exit status $STATUS; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  LABEL=after
else
  LABEL=run
fi
"$BIN/hearth-idle" --count "$COUNT" --hearth-bin "$BIN/hearth" --label "$LABEL" \
  --log "$OUT/server.log" "$@" >>"$OUT/idle.out" || STATUS=$?
{
  echo "Run of $(date -u '+%Y-%m-%d %H:%M') UTC: \`bench/idle.sh $COUNT $*\` at $COMMIT, release build;"
  echo "$MACHINE. Exit status $STATUS."
  cat "$OUT/idle.out"
} | tee "$OUT/summary.md"
exit "$STATUS"
