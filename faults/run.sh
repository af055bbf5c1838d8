#!/usr/bin/env bash
# The full fault-injection run (faults/README.md): every scenario, 15 faults each
# (120 faults), 20% of accepted orders cancelled at random points, the table printed
# at the end (docs/reliability.md holds the last one). Needs root (tmpfs, chattr),
# PostgreSQL 15's binaries, and the temporal CLI. Arguments go to hearth-faults
# (e.g. --faults 3, --scenarios sqlite-kill,pg-stop).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/hearth-target}"
PROFILE="${FAULTS_PROFILE:-release}"
if [ "$PROFILE" = release ]; then
  cargo build --release -p hearth -p hearth-faults
else
  cargo build -p hearth -p hearth-faults
fi
mkdir -p faults/results
exec "$CARGO_TARGET_DIR/$PROFILE/hearth-faults" --faults 15 \
  --json "faults/results/$(date -u +%Y%m%dT%H%M%SZ).jsonl" "$@"
