#!/usr/bin/env bash
# The fault test's long form: scripts/faults.sh with ROUNDS rounds of faults (default 10: each kills a
# replica, restarts the storage PostgreSQL and stops the claims PostgreSQL), then CALM_SECONDS with
# every part back, against the production build. Prints the driver's counts; fails on any loss.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${PROFILE:-production}
cargo build --locked --profile "$profile" -p tessera
target=${CARGO_TARGET_DIR:-target}
ROUNDS=${ROUNDS:-10} CALM_SECONDS=${CALM_SECONDS:-60} WORKERS=${WORKERS:-8} \
  TESSERA_BIN="$target/$profile/tessera" scripts/faults.sh
