# Sourced by scripts/test.sh: a throwaway single-member etcd (Debian's etcd-server) on free loopback ports.
# Needs apt.sh and postgres.sh (for free_port); sets ETCD_URL; etcd_stop stops it.

# etcd_install: apt-get cannot run twice at once, so this runs before the parallel starts.
etcd_install() {
  command -v etcd >/dev/null 2>&1 || { log "installing etcd"; apt_install --no-install-recommends etcd-server; }
}

# etcd_start DIR: starts etcd with its data under DIR.
etcd_start() {
  local scratch=$1/etcd client peer started="" data
  etcd_install
  mkdir -p "$scratch"
  # The data is thrown away after the run: in memory where there is /dev/shm, as every etcd write is
  # fsynced (this etcd has no --unsafe-no-fsync), which is slow on a disk.
  if [ -d /dev/shm ] && [ -w /dev/shm ]; then data=$(mktemp -d /dev/shm/tessera-etcd.XXXXXX); else data=$scratch/data; fi
  echo "$data" > "$scratch/data-dir"
  for _ in 1 2 3 4 5; do
    client=$(free_port); peer=$(free_port)
    etcd --name tessera-test --data-dir "$data" \
      --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
      --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
      --initial-cluster "tessera-test=http://127.0.0.1:$peer" \
      >"$scratch/etcd.log" 2>&1 &
    echo $! > "$scratch/etcd.pid"
    for _ in $(seq 1 40); do
      if python3 -c "import urllib.request as u; u.urlopen(u.Request('http://127.0.0.1:$client/v3/maintenance/status', b'{}'), timeout=2)" >/dev/null 2>&1; then
        started=1; break
      fi
      kill -0 "$(cat "$scratch/etcd.pid")" 2>/dev/null || break
      sleep 0.25
    done
    [ -n "$started" ] && break
    rm -rf "${data:?}"/*
  done
  [ -n "$started" ] || { log "etcd did not start:"; tail -20 "$scratch/etcd.log" >&2; return 1; }
  ETCD_URL="http://127.0.0.1:$client"
  log "etcd is up: $ETCD_URL"
}

# etcd_stop DIR
etcd_stop() {
  local scratch=$1/etcd
  if [ -f "$scratch/etcd.pid" ]; then kill "$(cat "$scratch/etcd.pid")" 2>/dev/null || true; fi
  if [ -f "$scratch/data-dir" ]; then rm -rf "$(cat "$scratch/data-dir")"; fi
}
