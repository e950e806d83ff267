# Sourced by scripts/test.sh: a throwaway MariaDB (Debian's mariadb-server) on a free loopback port, root
# without a password. Needs apt.sh and postgres.sh (for free_port); sets MYSQL_URL; mariadb_stop stops it.

# mariadb_install: apt-get cannot run twice at once, so this runs before the parallel starts.
mariadb_install() {
  [ -x /usr/sbin/mariadbd ] || { log "installing MariaDB"; apt_install --no-install-recommends mariadb-server; }
}

# mariadb_start DIR: initializes a data directory under DIR and starts the server.
mariadb_start() {
  local scratch=$1/mariadb port started=""
  mariadb_install
  mkdir -p "$scratch"
  # As root it runs as root (it must be told so): the scratch directory is not readable by other users.
  local run_as=(); [ "$(id -u)" = 0 ] && run_as=(--user=root)
  mariadb-install-db --no-defaults "${run_as[@]}" --datadir="$scratch/data" --auth-root-authentication-method=normal \
    --skip-test-db --skip-name-resolve >"$scratch/install.log" 2>&1 \
    || { log "mariadb-install-db failed:"; cat "$scratch/install.log" >&2; return 1; }
  for _ in 1 2 3 4 5; do
    port=$(free_port)
    # Durability is traded for speed: the data is thrown away after the run.
    /usr/sbin/mariadbd --no-defaults "${run_as[@]}" --datadir="$scratch/data" --socket="$scratch/mariadb.sock" \
      --pid-file="$scratch/mariadb.pid" --bind-address=127.0.0.1 --port="$port" --skip-name-resolve \
      --max-connections=300 --innodb-buffer-pool-size=64M --innodb-flush-log-at-trx-commit=0 \
      --innodb-doublewrite=0 --skip-log-bin --log-error="$scratch/error.log" &
    echo $! > "$scratch/launcher.pid"
    for _ in $(seq 1 60); do
      if mariadb-admin --no-defaults --socket="$scratch/mariadb.sock" -uroot ping >/dev/null 2>&1; then started=1; break; fi
      kill -0 "$(cat "$scratch/launcher.pid")" 2>/dev/null || break
      sleep 0.5
    done
    [ -n "$started" ] && break
  done
  [ -n "$started" ] || { log "MariaDB did not start:"; cat "$scratch/error.log" >&2; return 1; }
  MYSQL_URL="mysql://root@127.0.0.1:$port/mysql"
  log "MariaDB is up: $MYSQL_URL"
}

# mariadb_stop DIR
mariadb_stop() {
  local scratch=$1/mariadb
  if [ -f "$scratch/launcher.pid" ]; then
    kill "$(cat "$scratch/launcher.pid")" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$(cat "$scratch/launcher.pid")" 2>/dev/null || break; sleep 0.25; done
  fi
}
