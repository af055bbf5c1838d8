#!/usr/bin/env bash
# Append throughput on this machine, in one run: pgbench plain single-row INSERT
# (autocommit) vs durable Hearth appends through PgEventStore, at the same number
# of clients, as the same non-owner role, with synchronous_commit on. Also
# measures an INSERT whose transaction NOTIFYs, to show what the doorbell design
# avoids. Not a test; see BENCHMARKS.md.
#
#   bench/pg-append.sh [clients=8] [seconds=15]
#   HEARTH_BENCH_PG_URL   superuser URL of the server (default postgres://postgres@127.0.0.1:5432/postgres)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/hearth-target}"

CLIENTS="${1:-8}"
SECONDS_PER_RUN="${2:-15}"
SERVER="${HEARTH_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
DB=hearth_bench
HOSTPORT="$(echo "$SERVER" | sed -E 's#^postgres(ql)?://[^@]*@([^/]*)/.*#\2#')"
OWNER_URL="postgres://hearth_owner:hearth_owner@${HOSTPORT}/${DB}"
APP_URL="postgres://hearth_app:hearth_app@${HOSTPORT}/${DB}"

psql_admin() { psql "$SERVER" -v ON_ERROR_STOP=1 -qAt "$@"; }
. bench/pg-setup.sh

echo "== setup: database $DB, roles hearth_owner/hearth_app/hearth_relay"
fresh_bench_db "$DB"

cargo build --release -q -p hearth-postgres --example pg_append_bench
BENCH="$CARGO_TARGET_DIR/release/examples/pg_append_bench"

# The Hearth schema (migrated by the bench binary, as the owner) plus a plain table.
"$BENCH" "$OWNER_URL" "$APP_URL" 1 1 >/dev/null
create_plain_insert "$OWNER_URL"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cat >"$WORK/plain.sql" <<'SQL'
INSERT INTO plain_insert (tenant_id, payload) VALUES (gen_random_uuid(), '{"type":"OrderPlaced"}');
SQL
cat >"$WORK/notify.sql" <<'SQL'
BEGIN;
INSERT INTO plain_insert (tenant_id, payload) VALUES (gen_random_uuid(), '{"type":"OrderPlaced"}');
SELECT pg_notify('bench', 'x');
COMMIT;
SQL

pgbench_tps() {
  pgbench "$APP_URL" -n -M prepared -c "$CLIENTS" -j 2 -T "$SECONDS_PER_RUN" -f "$1" 2>/dev/null \
    | sed -nE 's/^tps = ([0-9.]+).*/\1/p' | head -1
}

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(psql_admin -c 'SHOW server_version')"
echo "== synchronous_commit=$(psql_admin -c 'SHOW synchronous_commit') fsync=$(psql_admin -c 'SHOW fsync') clients=$CLIENTS seconds=$SECONDS_PER_RUN"

echo "== pgbench: plain single-row INSERT (autocommit)"
PLAIN="$(pgbench_tps "$WORK/plain.sql")"
echo "plain_insert_tps=$PLAIN"

echo "== Hearth: PgEventStore::append (1 event + outbox job, RLS, command id, seq row, group commit, doorbell after commit)"
HEARTH_OUT="$("$BENCH" "$OWNER_URL" "$APP_URL" "$CLIENTS" "$SECONDS_PER_RUN")"
HEARTH="$(echo "$HEARTH_OUT" | sed -nE 's/^appends_per_second=([0-9.]+)/\1/p')"
echo "$HEARTH_OUT" | grep '^batches=' || true
echo "hearth_appends_per_second=$HEARTH"

echo "== pgbench: INSERT + pg_notify in the transaction (what a notifying append would pay)"
NOTIFY="$(pgbench_tps "$WORK/notify.sql")"
echo "insert_notify_tps=$NOTIFY"

python3 - "$PLAIN" "$HEARTH" "$NOTIFY" <<'PY'
import sys
plain, hearth, notify = map(float, sys.argv[1:])
print(f"ratio hearth/plain = {hearth / plain:.2f}")
print(f"ratio notify-in-tx/plain = {notify / plain:.2f}")
PY

psql_admin -c "DROP DATABASE IF EXISTS $DB" || true
