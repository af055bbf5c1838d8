#!/usr/bin/env bash
# Hearth's whole command path on PostgreSQL against peer Rust event stores, side by
# side on the same server (issue 20, goal 3). Not a test; see BENCHMARKS.md.
#
#   bench/peers.sh [clients=8] [seconds=15] [rounds=2]
#
# Systems (bench/peers, a cargo workspace of its own; binary peer-bench):
#   hearth        hearth_core::Service over hearth_postgres::PgEventStore as hearth_app
#                 (RLS, command record, gap-free seq, outbox job, group commit, doorbell)
#   postgres-es   cqrs-es + postgres-es (postgres_cqrs, the crate's events table)
#   disintegrate  disintegrate + disintegrate-postgres (DecisionMaker, NoSnapshot, JSON)
#   esrs          prima's esrs, feature postgres (PgStore + AggregateManager)
# Each runs `clients` tasks, each placing an order (three lines) then cancelling it, one
# command at a time, on a pool of `clients` connections, for `seconds`; the systems
# alternate within each round (hearth, postgres-es, disintegrate, esrs, hearth, ...),
# each on its own fresh database made here. Server CPU per command: utime+stime of every
# `postgres:` process (server_us) and of this run's database's backends (db_us), read
# from /proc before and after each measurement; client_us: the bench process's own.
#
# Environment: HEARTH_BENCH_PG_URL superuser URL (default
# postgres://postgres@127.0.0.1:5432/postgres); PEERS="hearth postgres-es" runs only those;
# PEER_BENCH_BIN=path runs that peer-bench binary instead of building one.
# Experiments on Hearth's side only (not what `serve` runs): PEER_HEARTH_BATCHERS=N
# batchers; PEER_HEARTH_DOORBELL_MS=N the doorbell's pace; PEER_HEARTH_SQL=file SQL run
# as the owner after migrating (e.g. another hearth_append or policy, to price it).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/hearth-target}"

CLIENTS="${1:-8}"
SECONDS_PER_RUN="${2:-15}"
ROUNDS="${3:-2}"
SYSTEMS="${PEERS:-hearth postgres-es disintegrate esrs}"
SERVER="${HEARTH_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
HOSTPORT="$(echo "$SERVER" | sed -E 's#^postgres(ql)?://[^@]*@([^/]*)/.*#\2#')"
PEER_ROLE=peers_bench

psql_admin() { psql "$SERVER" -v ON_ERROR_STOP=1 -qAt "$@"; }
. bench/pg-setup.sh

db_of() { echo "peers_${1//-/_}"; }
app_url() {
  case "$1" in
    hearth) echo "postgres://hearth_app:hearth_app@${HOSTPORT}/$(db_of "$1")" ;;
    *) echo "postgres://${PEER_ROLE}:${PEER_ROLE}@${HOSTPORT}/$(db_of "$1")" ;;
  esac
}
owner_url() { echo "postgres://hearth_owner:hearth_owner@${HOSTPORT}/$(db_of hearth)"; }

cleanup() {
  for system in $SYSTEMS; do
    psql_admin -c "DROP DATABASE IF EXISTS $(db_of "$system")" || true
  done
  psql_admin -c "DROP ROLE IF EXISTS $PEER_ROLE" || true
}
trap cleanup EXIT

if [ -n "${PEER_BENCH_BIN:-}" ]; then
  # A binary built before (e.g. of another revision, to compare two in one run).
  BENCH="$PEER_BENCH_BIN"
else
  echo "== build (release): bench/peers"
  cargo build --release -q --manifest-path bench/peers/Cargo.toml
  BENCH="$CARGO_TARGET_DIR/release/peer-bench"
fi

echo "== setup: one fresh database per system"
if [ -z "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$PEER_ROLE'")" ]; then
  psql_admin -c "CREATE ROLE $PEER_ROLE LOGIN PASSWORD '$PEER_ROLE' NOSUPERUSER NOCREATEDB NOCREATEROLE"
fi
for system in $SYSTEMS; do
  db="$(db_of "$system")"
  if [ "$system" = hearth ]; then
    fresh_bench_db "$db" # roles hearth_owner/hearth_app/hearth_relay; peer-bench migrates
  else
    psql_admin -c "DROP DATABASE IF EXISTS $db"
    psql_admin -c "CREATE DATABASE $db OWNER $PEER_ROLE"
  fi
done
if [[ " $SYSTEMS " == *" postgres-es "* ]]; then
  # postgres-es's schema, as its db/init.sql (0.5.0) makes it: the events table and the
  # snapshots table (not used without snapshots).
  psql "$(app_url postgres-es)" -v ON_ERROR_STOP=1 -q <<'SQL'
CREATE TABLE events
(
    aggregate_type text                         NOT NULL,
    aggregate_id   text                         NOT NULL,
    sequence       bigint CHECK (sequence >= 0) NOT NULL,
    event_type     text                         NOT NULL,
    event_version  text                         NOT NULL,
    payload        json                         NOT NULL,
    metadata       json                         NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);
CREATE TABLE snapshots
(
    aggregate_type   text                                 NOT NULL,
    aggregate_id     text                                 NOT NULL,
    last_sequence    bigint CHECK (last_sequence >= 0)    NOT NULL,
    current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
    payload          json                                 NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);
SQL
fi

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(psql_admin -c 'SHOW server_version')"
echo "== synchronous_commit=$(psql_admin -c 'SHOW synchronous_commit') fsync=$(psql_admin -c 'SHOW fsync') clients=$CLIENTS pool=$CLIENTS seconds=$SECONDS_PER_RUN rounds=$ROUNDS"
echo "== load before: $(uptime)"

RESULTS="$(mktemp)"
trap 'rm -f "$RESULTS"; cleanup' EXIT
for round in $(seq 1 "$ROUNDS"); do
  for system in $SYSTEMS; do
    args=("$system" "$(app_url "$system")")
    [ "$system" = hearth ] && args+=("$(owner_url)")
    line="$("$BENCH" "${args[@]}" --clients "$CLIENTS" --seconds "$SECONDS_PER_RUN" --pool "$CLIENTS" | grep '^result ')"
    echo "round=$round $line" | tee -a "$RESULTS"
  done
done
echo "== load after: $(uptime)"

echo "== stored events (each command writes one; warm-up: 2 per client per run)"
for system in $SYSTEMS; do
  case "$system" in
    hearth) table=events ;;
    postgres-es) table=events ;;
    disintegrate) table=event ;;
    esrs) table=order_events ;;
  esac
  echo "$system: $(psql "postgres://postgres@${HOSTPORT}/$(db_of "$system")" -qAt -c "SELECT count(*) FROM $table") rows in $table"
done

python3 - "$RESULTS" "$ROUNDS" "$CLIENTS" <<'PY'
import statistics, sys
path, rounds, clients = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
runs = {}
for line in open(path):
    f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
    runs.setdefault(f["system"], []).append(f)
med = lambda rs, k: statistics.median(float(r[k]) for r in rs)
print()
rc = " ".join(f"{'round ' + str(i + 1):>9}" for i in range(rounds))
print(f"{'system':<13} {rc} {'median':>8} {'commands':>9} {'server us':>9} {'db us':>6} {'client us':>9}")
for system, rs in runs.items():
    cells = " ".join(f"{float(r['per_second']):>9.0f}" for r in rs)
    total = sum(int(r["commands"]) for r in rs)
    print(f"{system:<13} {cells} {med(rs, 'per_second'):>8.0f} {total:>9} "
          f"{med(rs, 'server_us'):>9.0f} {med(rs, 'db_us'):>6.0f} {med(rs, 'client_us'):>9.0f}")
print("(commands/s; CPU in microseconds per command, medians over the rounds)")
for system, rs in runs.items():
    total = lambda k: sum(int(r.get(k, 0)) for r in rs)
    if total("batches"):
        print(f"{system}: {total('batched') / total('batches'):.2f} appends per group commit, "
              f"{total('reruns')} batches run again one by one")
    if "conflicts" in rs[0]:
        n = total("commands")
        print(f"{system}: decided again {total('conflicts')} times after a conflict and "
              f"{total('stale')} times after a stale read ({(total('conflicts') + total('stale')) / n:.2f} per command)")
if "hearth" in runs and len(runs) > 1:
    peers = {s: med(rs, "per_second") for s, rs in runs.items() if s != "hearth"}
    best = max(peers, key=peers.get)
    hearth = med(runs["hearth"], "per_second")
    print(f"ratio hearth / best peer ({best}) = {hearth / peers[best]:.2f} (medians)")
    for i in range(rounds):
        h = float(runs["hearth"][i]["per_second"])
        b = max(float(rs[i]["per_second"]) for s, rs in runs.items() if s != "hearth")
        print(f"  round {i + 1}: {h / b:.2f}")
    for s, v in peers.items():
        print(f"ratio hearth / {s} = {hearth / v:.2f}")
PY
