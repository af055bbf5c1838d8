# Sourced by bench/run.sh and bench/pg-append.sh: the PostgreSQL set-up both share.
# Needs psql_admin (psql as a superuser of the server) defined by the caller.

# The roles (created when missing, password = name) and a new, empty database $1
# owned by hearth_owner.
fresh_bench_db() {
  local db="$1" role extra
  for role in hearth_owner hearth_app hearth_relay; do
    extra=NOINHERIT; [ "$role" = hearth_owner ] && extra=CREATEROLE
    if [ -z "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$role'")" ]; then
      psql_admin -c "CREATE ROLE $role LOGIN PASSWORD '$role' NOSUPERUSER NOBYPASSRLS NOCREATEDB $extra"
    fi
  done
  psql_admin -c "DROP DATABASE IF EXISTS $db"
  psql_admin -c "CREATE DATABASE $db OWNER hearth_owner"
}

# pgbench's baseline table: a plain single-row INSERT target, no RLS, written by
# hearth_app. $1: the owner's URL of the benchmark database.
create_plain_insert() {
  psql "$1" -v ON_ERROR_STOP=1 -q <<'SQL'
CREATE TABLE plain_insert (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id uuid NOT NULL,
    payload   jsonb NOT NULL
);
GRANT INSERT ON plain_insert TO hearth_app;
SQL
}
