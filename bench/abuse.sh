#!/usr/bin/env bash
# Hearth's abuse suite at full size (issue 13), release build, on this machine. Not a test
# (scripts/test runs the reduced size); see BENCHMARKS.md, section "Abuse".
#
#   bench/abuse.sh [full|reduced] [scenario]     default: full, all
#
# Runs `hearth-abuse <scenario> --size full` (crates/bench/src/bin/hearth-abuse), which starts
# its own `hearth serve` processes (SQLite; PostgreSQL for burst and nul, in a database it
# creates and drops) and measures them from the outside. Results go to
# bench/results/abuse-<time>/ (abuse.json, summary.md, the servers' logs); the figures
# replace the block between the abuse markers of BENCHMARKS.md. Exits non-zero when a
# bound was violated (the figures are written all the same).
#
# Environment: HEARTH_ABUSE_PG_URL, a PostgreSQL superuser URL (default
# postgres://postgres@127.0.0.1:5432/postgres); ABUSE_NO_PG=1 leaves PostgreSQL out.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/hearth-target}"
SIZE="${1:-full}"
SCENARIO="${2:-all}"
case "$SIZE" in full|reduced) ;; *) echo "usage: bench/abuse.sh [full|reduced] [scenario]" >&2; exit 2 ;; esac

# 5,000 slowloris connections: the client and the server (which inherits this limit)
# each hold one descriptor per connection.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$ROOT/bench/results/abuse-$STAMP"
mkdir -p "$OUT"

# Built one at a time, as everyone builds them (one command would unify features
# differently and rebuild hearth).
cargo build --release -q -p hearth
cargo build --release -q -p hearth-bench --bin hearth-abuse
BIN="$CARGO_TARGET_DIR/release"

MACHINE="$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -m | awk '/Mem:/ {print $2 " MiB RAM"}'), Linux $(uname -r), open-file limit $(ulimit -n)"
COMMIT="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates || echo ' (with uncommitted changes)')"
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "== abuse $SIZE $SCENARIO at $COMMIT; $MACHINE; load $LOAD_BEFORE; results in $OUT" >&2

PG=()
[ "${ABUSE_NO_PG:-}" = 1 ] && PG=(--no-postgres)
STATUS=0
"$BIN/hearth-abuse" "$SCENARIO" --size "$SIZE" --hearth-bin "$BIN/hearth" --out "$OUT" "${PG[@]}" || STATUS=$?

{
  echo "Run of $(date -u '+%Y-%m-%d %H:%M') UTC: \`bench/abuse.sh $SIZE $SCENARIO\` at $COMMIT, release build;"
  echo "$MACHINE; load average before $LOAD_BEFORE. Exit status $STATUS."
  echo
  cat "$OUT/summary.md"
} >"$OUT/benchmarks-block.md"

python3 - "$ROOT/BENCHMARKS.md" "$OUT/benchmarks-block.md" <<'PY'
import sys
path, block = sys.argv[1], open(sys.argv[2]).read()
text = open(path).read()
begin, end = "<!-- abuse:begin (written by bench/abuse.sh) -->", "<!-- abuse:end -->"
if begin in text and end in text:
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    text = head + begin + "\n\n" + block.rstrip() + "\n\n" + end + tail
else:
    text = text.rstrip() + "\n\n## Abuse (`bench/abuse.sh`, issue 13)\n\n" + begin + "\n\n" + block.rstrip() + "\n\n" + end + "\n"
open(path, "w").write(text)
PY
echo "== figures written into BENCHMARKS.md (block from $OUT/benchmarks-block.md)" >&2
exit "$STATUS"
