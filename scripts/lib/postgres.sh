# Sourced by scripts/test.sh and bench/*.sh: a throwaway PostgreSQL on a free loopback port.
# Needs `log` and `apt_install`; sets PG_BIN and POSTGRES_URL; pg_stop stops it and removes its files.

find_pg_bin() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null \
    || echo $((20000 + RANDOM % 20000))
}

# pg_start DIR: initializes a cluster in DIR and starts it.
pg_start() {
  local scratch=$1 port started=""
  PG_BIN=$(find_pg_bin) || { log "installing PostgreSQL"; apt_install postgresql; PG_BIN=$(find_pg_bin); }
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$scratch"
  log "starting a throwaway PostgreSQL ($PG_BIN)"
  as_pg "'$PG_BIN/initdb' -D '$scratch/pg' -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-instructions" >/dev/null
  for _ in 1 2 3 4 5; do
    port=$(free_port)
    if as_pg "'$PG_BIN/pg_ctl' -D '$scratch/pg' -l '$scratch/pg.log' -w -t 30 \
        -o \"-c listen_addresses=127.0.0.1 -p $port -k '$scratch' -c fsync=off -c max_connections=300\" start" >/dev/null; then
      started=1; break
    fi
  done
  [ -n "$started" ] || { log "PostgreSQL did not start:"; cat "$scratch/pg.log" >&2; return 1; }
  POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
  log "PostgreSQL is up: $POSTGRES_URL"
}

# pg_stop DIR
pg_stop() {
  local scratch=$1
  if [ -n "${PG_BIN:-}" ] && [ -f "$scratch/pg/postmaster.pid" ]; then
    as_pg "'$PG_BIN/pg_ctl' -D '$scratch/pg' -m immediate stop" >/dev/null 2>&1 || true
  fi
}
