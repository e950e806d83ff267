#!/usr/bin/env bash
# What custom claims add to a token request: the static and Postgres enrichers and the chain, measured
# in release against a throwaway PostgreSQL on loopback. Prints a table (see bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/apt.sh
source scripts/lib/postgres.sh

scratch=$(mktemp -d /tmp/tessera-bench.XXXXXX)
trap 'pg_stop "$scratch"; rm -rf "$scratch"' EXIT INT TERM
pg_start "$scratch"
log "building the benchmark (release)"
cargo build --release --locked -p tessera-claims --example enrich_latency
TESSERA_BENCH_POSTGRES_URL="$POSTGRES_URL" target/release/examples/enrich_latency
