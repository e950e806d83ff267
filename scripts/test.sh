#!/usr/bin/env bash
# Runs every test of tessera against real services: installs what is missing (PostgreSQL, slapd, MariaDB, etcd, promtool,
# Chromium and chromedriver with apt-get as root, oidc-provider with npm, grpcio-tools with pip), starts a
# throwaway PostgreSQL, OpenLDAP, MariaDB and etcd on free loopback ports, runs the suite, and stops what it started, on
# failure too.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/apt.sh
source scripts/lib/postgres.sh
source scripts/lib/ldap.sh
source scripts/lib/mariadb.sh
source scripts/lib/etcd.sh

command -v cargo >/dev/null || { log "cargo is missing: install the Rust toolchain first"; exit 1; }
# The browser test drives Debian's Chromium through chromedriver.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  log "installing Chromium and chromedriver"; apt_install chromium chromium-driver
fi

# /metrics is checked with Prometheus' own linter.
command -v promtool >/dev/null 2>&1 || { log "installing promtool"; apt_install --no-install-recommends prometheus; }

# The OIDC connector is tested against the reference provider, oidc-provider from the npm registry.
command -v npm >/dev/null 2>&1 || { log "installing Node.js"; apt_install nodejs npm; }
if [ ! -d scripts/oidc-provider/node_modules/oidc-provider ]; then
  log "installing oidc-provider"
  npm install --prefix scripts/oidc-provider --no-audit --no-fund --loglevel=error >/dev/null
fi
export TESSERA_TEST_OIDC_PROVIDER="$PWD/scripts/oidc-provider/op.mjs"

# The gRPC API is called by a client of another toolchain: Python stubs that grpcio-tools (from PyPI)
# generates from our proto during the test, in a virtualenv of its own.
grpc_venv=scripts/grpc-client/.venv
if ! "$grpc_venv/bin/python" -c 'import grpc_tools, grpc_reflection' >/dev/null 2>&1; then
  log "installing grpcio-tools and grpcio-reflection"
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then apt_install python3 python3-venv; fi
  python3 -m venv "$grpc_venv"
  "$grpc_venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/grpc-client/requirements.txt
fi
export TESSERA_TEST_GRPC_PYTHON="$PWD/$grpc_venv/bin/python"

scratch=$(mktemp -d /tmp/tessera-test.XXXXXX)
cleanup() {
  local status=$?
  pg_stop "$scratch"
  ldap_stop "$scratch"
  mariadb_stop "$scratch"
  etcd_stop "$scratch"
  rm -rf "$scratch"
  exit "$status"
}
trap cleanup EXIT INT TERM

# MariaDB and etcd (the mysql and etcd storages' tests) start in the background while PostgreSQL and
# slapd start.
mariadb_install
etcd_install
(mariadb_start "$scratch" && echo "$MYSQL_URL" > "$scratch/mysql.url") &
mariadb_starting=$!
(etcd_start "$scratch" && echo "$ETCD_URL" > "$scratch/etcd.url") &
etcd_starting=$!
pg_start "$scratch"
export TESSERA_TEST_POSTGRES_URL="$POSTGRES_URL"
ldap_start "$scratch"
export TESSERA_TEST_LDAP_URL="$LDAP_URL" TESSERA_TEST_LDAP_CA="$LDAP_CA"
wait "$mariadb_starting" || { log "MariaDB did not start"; exit 1; }
wait "$etcd_starting" || { log "etcd did not start"; exit 1; }
TESSERA_TEST_MYSQL_URL=$(cat "$scratch/mysql.url")
TESSERA_TEST_ETCD_URL=$(cat "$scratch/etcd.url")
export TESSERA_TEST_MYSQL_URL TESSERA_TEST_ETCD_URL

log "checking formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

# The workspace's tests include the fuzz smoke run (crates/tessera-fuzz: every fuzz target over its
# committed corpus, then TESSERA_FUZZ_SECONDS of random mutations each); scripts/fuzz.sh fuzzes for longer.
log "running the test suite"
cargo test --workspace --locked

# Three real replicas on one PostgreSQL, with custom claims from another, driven while a replica is
# killed, the storage database restarted and the claims database stopped (the short form: ~90 s).
log "running the three-replica fault test"
scripts/faults.sh

# Tests never compare the test clock with the real one; a second pass with the test clock a year ahead
# of today proves it (a token minted at a fixed test date must not "expire" as the real days pass).
log "running the server and storage suites again with the test clock a year ahead"
TESSERA_TEST_CLOCK_START=$(date -u -d '+365 days' +%Y-%m-%dT%H:%M:%SZ) \
  cargo test --locked -p tessera-server -p tessera-storage --test it

# Deployment artifacts: the Kubernetes manifests (rendered and schema-checked), then the container image
# (a release build, inspected, and run chrooted into its exported filesystem against the PostgreSQL above).
log "testing the Kubernetes manifests"
scripts/tests/kubernetes.sh
log "testing the container image"
scripts/tests/image.sh
