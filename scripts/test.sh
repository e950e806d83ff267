#!/usr/bin/env bash
# Runs every test of tessera against real services: installs what is missing (PostgreSQL, Chromium
# and chromedriver, with apt-get as root), starts a throwaway PostgreSQL on a free loopback port,
# runs the suite, and stops what it started, on failure too.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

apt_updated=""
apt_install() {
  if [ "$(id -u)" != 0 ]; then
    log "missing $*: install it (as root: apt-get install -y $*) and run again"; exit 1
  fi
  if [ -z "$apt_updated" ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

find_pg_bin() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

command -v cargo >/dev/null || { log "cargo is missing: install the Rust toolchain first"; exit 1; }
PG_BIN=$(find_pg_bin) || { log "installing PostgreSQL"; apt_install postgresql; PG_BIN=$(find_pg_bin); }
# The browser test drives Debian's Chromium through chromedriver.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  log "installing Chromium and chromedriver"; apt_install chromium chromium-driver
fi

scratch=$(mktemp -d /tmp/tessera-test.XXXXXX)
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi; }
[ "$(id -u)" = 0 ] && chown postgres:postgres "$scratch"

cleanup() {
  local status=$?
  if [ -f "$scratch/pg/postmaster.pid" ]; then
    as_pg "'$PG_BIN/pg_ctl' -D '$scratch/pg' -m immediate stop" >/dev/null 2>&1 || true
  fi
  rm -rf "$scratch"
  exit "$status"
}
trap cleanup EXIT INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null \
    || echo $((20000 + RANDOM % 20000))
}

log "starting a throwaway PostgreSQL ($PG_BIN)"
as_pg "'$PG_BIN/initdb' -D '$scratch/pg' -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-instructions" >/dev/null
started=""
for _ in 1 2 3 4 5; do
  port=$(free_port)
  if as_pg "'$PG_BIN/pg_ctl' -D '$scratch/pg' -l '$scratch/pg.log' -w -t 30 \
      -o \"-c listen_addresses=127.0.0.1 -p $port -k '$scratch' -c fsync=off -c max_connections=300\" start" >/dev/null; then
    started=1; break
  fi
done
[ -n "$started" ] || { log "PostgreSQL did not start:"; cat "$scratch/pg.log" >&2; exit 1; }
export TESSERA_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
log "PostgreSQL is up: $TESSERA_TEST_POSTGRES_URL"

log "checking formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

log "running the test suite"
cargo test --workspace --locked
