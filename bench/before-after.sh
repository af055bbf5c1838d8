#!/usr/bin/env bash
# The order path before and after a change, alternated in one run (issue 15: "the order
# path's performance is unchanged within noise"). Not a test; see BENCHMARKS.md.
#
#   bench/before-after.sh BASE_REV [ROUNDS]     e.g. bench/before-after.sh 8742e0c 2
#
# Builds `hearth serve` (release) at BASE_REV (a worktree of its own) and at the working
# tree, then runs workload b of
# bench/run.sh (100 households x 10 members, rising rates until p99 command-to-event
# passes 50 ms; 3 s steps, STEP=10 for 10 s) against each store (SQLite, PostgreSQL,
# memory) with the two
# binaries alternately: round 1 base then new, round 2 new then base, and so on, each on
# a fresh server (and, for PostgreSQL, a database of each binary's own schema). Writes
# bench/results/<stamp>-before-after/ with one JSON per sweep and summary.md. STORES="pg"
# limits the stores; BASE_BIN reuses a base binary built before.
#
# What each command costs, rather than how many fit (less sensitive to a busy machine):
#   B_RATES=0,300,600 STEP=10 STOP_P99_MS=100000 STORES=pg bench/before-after.sh REV 2
# Every step reports the server's CPU and (PostgreSQL) its backends' CPU; the summary
# divides them by the commands acked (a rate-0 step is the idle cost: pings, membership
# rechecks). With pg_stat_statements loaded, statements-<who>-pg-r<round>.txt lists the
# statements each binary ran over its sweep.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
BASE_REV="${1:?usage: bench/before-after.sh BASE_REV [ROUNDS]}"
ROUNDS="${2:-2}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/hearth-target}"
B_RATES="${B_RATES:-200,500,800,1200,1800,2700,4000,6000,9000}"
STEP="${STEP:-3}"
SECRET="bench-secret-$(date +%s)-0123456789abcdef0123"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

OUT="$ROOT/bench/results/$(date -u +%Y%m%dT%H%M%SZ)-before-after"
mkdir -p "$OUT"
log() { echo "== $*" | tee -a "$OUT/run.log" >&2; }
log "base $BASE_REV ($(git rev-parse --short "$BASE_REV")) vs new $(git rev-parse --short HEAD)$(git diff --quiet || echo ' + working tree'), $ROUNDS rounds"
log "machine: $(nproc) cores, $(free -m | awk '/Mem:/ {print $2 " MiB RAM"}'), load: $(uptime)"

# ---------------------------------------------------------------- binaries
# The base in a target dir of its own: cargo names a workspace's crates by their path
# within the workspace, so two checkouts sharing a target dir can each take the other's
# build as fresh (by mtime) and link the wrong sources. BASE_BIN reuses a base binary
# built before.
if [ -n "${BASE_BIN:-}" ]; then
  cp "$BASE_BIN" "$OUT/hearth-base"
else
  BASE_TREE="/tmp/hearth-base-$(git rev-parse --short "$BASE_REV")"
  [ -d "$BASE_TREE" ] || git worktree add -q --detach "$BASE_TREE" "$BASE_REV"
  (cd "$BASE_TREE" && CARGO_TARGET_DIR="${BASE_TARGET:-/var/tmp/hearth-target-base}" cargo build --release -q -p hearth)
  cp "${BASE_TARGET:-/var/tmp/hearth-target-base}/release/hearth" "$OUT/hearth-base"
fi
cargo build --release -q -p hearth
cp "$CARGO_TARGET_DIR/release/hearth" "$OUT/hearth-new"
cargo build --release -q -p hearth-bench
BASE_BIN="$OUT/hearth-base"
NEW_BIN="$OUT/hearth-new"
GEN="$CARGO_TARGET_DIR/release/hearth-bench"
bin_of() { [ "$1" = base ] && echo "$BASE_BIN" || echo "$NEW_BIN"; }

# ---------------------------------------------------------------- PostgreSQL
SERVER="${HEARTH_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
HOSTPORT="$(echo "$SERVER" | sed -E 's#^postgres(ql)?://[^@]*@([^/]*)/.*#\2#')"
psql_admin() { psql "$SERVER" -v ON_ERROR_STOP=1 -qAt "$@"; }
. bench/pg-setup.sh
url() { echo "postgres://$1:$1@${HOSTPORT}/hearth_bench_$2"; } # role who

# ---------------------------------------------------------------- servers
export HEARTH_MAX_CONNECTIONS=100000 HEARTH_MAX_CONNECTIONS_PER_ADDRESS=100000
export HEARTH_ADDRESS_BURST=1000000 HEARTH_ADDRESS_PER_SECOND=1000000
export HEARTH_SIGNUP_BURST=1000000 HEARTH_SIGNUP_PER_MINUTE=1000000
export HEARTH_MEMBER_BURST=1000000 HEARTH_MEMBER_PER_SECOND=1000000
export HEARTH_MAX_SOCKETS_PER_ROOM=100000 HEARTH_CATCHUP_PER_SECOND=1000000000
PID=""
ADDR=""
start() { # who store
  local who="$1" store="$2" bin logf="$OUT/server-$1-$2-$RANDOM"
  bin="$(bin_of "$who")"
  case "$store" in
    sqlite)
      rm -rf "$OUT/data"
      "$bin" serve --no-durable --listen 127.0.0.1:0 --token-secret "$SECRET" --data-dir "$OUT/data" >"$logf.out" 2>"$logf.log" & ;;
    memory)
      "$bin" serve --no-durable --memory --listen 127.0.0.1:0 --token-secret "$SECRET" >"$logf.out" 2>"$logf.log" & ;;
    pg)
      fresh_bench_db "hearth_bench_$who" >/dev/null
      "$bin" migrate --database-url "$(url hearth_owner "$who")" >>"$OUT/run.log" 2>&1
      "$bin" serve --no-durable --listen 127.0.0.1:0 --token-secret "$SECRET" \
        --database-url "$(url hearth_app "$who")" --relay-database-url "$(url hearth_relay "$who")" >"$logf.out" 2>"$logf.log" & ;;
  esac
  PID=$!
  for _ in $(seq 1 300); do
    ADDR="$(sed -nE 's#^listening on http://(.*)$#\1#p' "$logf.out" | head -1)"
    [ -n "$ADDR" ] && return 0
    kill -0 "$PID" 2>/dev/null || { log "$who $store did not start: $(tail -3 "$logf.log")"; return 1; }
    sleep 0.1
  done
  return 1
}
stop() { if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=""; sleep 0.5; fi; }
trap stop EXIT

psql_admin -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null 2>&1 || true
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then ORDER="base new"; else ORDER="new base"; fi
  for store in ${STORES:-sqlite pg memory}; do
    for who in $ORDER; do
      log "round $round: b on $store, $who"
      start "$who" "$store" || continue
      # A base from before the server's catalog (issue 16) takes order lines with names and
      # prices and refuses the new shape; set BASE_ORDER_LINES=skus for a later base.
      if [ "$who" = base ]; then lines="${BASE_ORDER_LINES:-legacy}"; else lines=skus; fi
      PGDB=()
      if [ "$store" = pg ]; then
        PGDB=(--pg-database "hearth_bench_$who")
        psql_admin -c "SELECT pg_stat_statements_reset()" >/dev/null 2>&1 || true
      fi
      "$GEN" --addr "$ADDR" --mode hearth --token-secret "$SECRET" --server-pid "$PID" --order-lines "$lines" "${PGDB[@]}" \
        --label "b-$who-$store-r$round" --out "$OUT/b-$who-$store-r$round.json" \
        --households 100 --members 10 --rates "$B_RATES" --step-secs "$STEP" --drain-secs 1 \
        --stop-p99-ms "${STOP_P99_MS:-50}" >>"$OUT/run.log" 2>&1
      if [ "$store" = pg ]; then
        # What the server asked of PostgreSQL over the sweep (sign-up included), when
        # pg_stat_statements is loaded (shared_preload_libraries); skipped otherwise.
        psql_admin -F ' | ' -c "SELECT calls, round(total_exec_time::numeric, 1) AS ms, rows,
              left(regexp_replace(query, '\s+', ' ', 'g'), 110)
            FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
            WHERE d.datname = 'hearth_bench_$who' ORDER BY total_exec_time DESC LIMIT 25" \
            >"$OUT/statements-$who-pg-r$round.txt" 2>&1 || true
      fi
      stop
    done
  done
done
psql_admin -c "DROP DATABASE IF EXISTS hearth_bench_base" -c "DROP DATABASE IF EXISTS hearth_bench_new" || true
log "load at the end: $(uptime)"

python3 - "$OUT" "$ROUNDS" "$STEP" <<'PY' | tee "$OUT/summary.md"
import json, pathlib, statistics, sys
out, rounds, step = pathlib.Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def load(who, store, r):
    p = out / f"b-{who}-{store}-r{r}.json"
    return json.loads(p.read_text()) if p.exists() else None
print(f"# Before/after, {out.name}\n")
print(f"Workload b (100 households x 10 members, {step} s steps, bound p99 command-to-event <= 50 ms).\n")
print("| store | round | capacity base / new (commands/s) | p99 ms at each rate both reached, base / new |")
print("|---|---|---|---|")
ratios = {}
for store in ["sqlite", "pg", "memory"]:
    for r in range(1, rounds + 1):
        b, n = load("base", store, r), load("new", store, r)
        if not b or not n:
            print(f"| {store} | {r} | missing | |"); continue
        cap = lambda x: x["capacity"]["rate"] if x["capacity"] else 0
        steps_b = {s["rate"]: s["event_latency"]["p99_ms"] for s in b["steps"]}
        steps_n = {s["rate"]: s["event_latency"]["p99_ms"] for s in n["steps"]}
        both = sorted(set(steps_b) & set(steps_n))
        cells = ", ".join(f"{rate:.0f}/s: {steps_b[rate]:.1f} / {steps_n[rate]:.1f}" for rate in both)
        print(f"| {store} | {r} | {cap(b):,.0f} / {cap(n):,.0f} | {cells} |")
        if cap(b):
            ratios.setdefault(store, []).append(cap(n) / cap(b))
print()
print("CPU per acked command, ms (server / PostgreSQL backends), base vs new; rate 0: ms per second idle.\n")
print("| store | round | rate | base | new |")
print("|---|---|---|---|---|")
def cost(step):
    n = step["acks"] or None
    per = (lambda c: c / n) if n else (lambda c: c / step["secs"])
    f = lambda c: "-" if c is None else f"{per(c):.2f}"
    return f"{f(step.get('server_cpu_ms'))} / {f(step.get('pg_cpu_ms'))}"
for store in ["sqlite", "pg", "memory"]:
    for r in range(1, rounds + 1):
        b, n = load("base", store, r), load("new", store, r)
        if not b or not n:
            continue
        sb = {s["rate"]: s for s in b["steps"]}
        sn = {s["rate"]: s for s in n["steps"]}
        for rate in sorted(set(sb) & set(sn)):
            print(f"| {store} | {r} | {rate:.0f} | {cost(sb[rate])} | {cost(sn[rate])} |")
print()
for store, rs in ratios.items():
    print(f"- {store}: capacity new/base per round {', '.join(f'{x:.2f}' for x in rs)} (median {statistics.median(rs):.2f})")
PY
log "results: $OUT"
