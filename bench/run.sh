#!/usr/bin/env bash
# tessera under load on this machine, next to the reference provider (oidc-provider) in the same run:
# builds tessera in release, starts each server pinned to core 0 with wrk pinned to core 1, and prints
# one table (requests/s, latency, CPU, RSS, errors). Installs what it needs, stops what it starts.
# First increment of the benchmarks issue: client_credentials (ES256, RS256), /keys and discovery,
# start-up time and idle RSS. See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/apt.sh

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-16}
command -v wrk >/dev/null || apt_install wrk
command -v npm >/dev/null || apt_install nodejs npm
[ -d scripts/oidc-provider/node_modules/oidc-provider ] || \
  npm install --prefix scripts/oidc-provider --no-audit --no-fund --loglevel=error >/dev/null
log "building tessera (release)"
cargo build --release --locked -p tessera >/dev/null 2>&1 || cargo build --release --locked -p tessera

scratch=$(mktemp -d /tmp/tessera-bench.XXXXXX)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$scratch"; }
trap cleanup EXIT INT TERM

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk "/^$2:/ {print \$2}" "/proc/$1/status"; }

cat > "$scratch/cc.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic YmVuY2g6YmVuY2gtc2VjcmV0"   -- bench:bench-secret
wrk.body = "grant_type=client_credentials"
done = function(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT %.0f %.2f %.2f %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, errors))
end
LUA
cp "$scratch/cc.lua" "$scratch/get.lua"
sed -i '/^wrk.method/d; /^wrk.headers/d; /^wrk.body/d' "$scratch/get.lua"

# wait_for URL PID LOG: until URL answers; fails (with the log) if PID dies or 30 s pass.
wait_for() {
  local deadline=$(( $(date +%s) + 30 ))
  until curl -sf "$1" >/dev/null; do
    if ! kill -0 "$2" 2>/dev/null || [ "$(date +%s)" -gt "$deadline" ]; then log "did not start:"; cat "$3" >&2; exit 1; fi
    sleep 0.005
  done
}

rows=()
# measure NAME PID URL SCRIPT: wrk on core 1 against a server on core 0; CPU and peak RSS of PID.
measure() {
  local name=$1 pid=$2 url=$3 script=$4 before after result
  taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d3s -s "$script" "$url" >/dev/null 2>&1 || true   # warm-up
  before=$(cpu_ticks "$pid")
  result=$(taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s "$script" "$url" | awk '/^RESULT/ {print $2, $3, $4, $5}')
  after=$(cpu_ticks "$pid")
  local cpu=$(( (after - before) * 100 / ($(getconf CLK_TCK) * DURATION) ))
  read -r rps p50 p99 errors <<<"$result"
  rows+=("| $name | $rps | $p50 | $p99 | ${cpu} % | $(( $(rss_kb "$pid" VmHWM) / 1024 )) MB | $errors |")
  eval "RPS_$(echo "$name" | tr -c 'A-Za-z0-9\n' '_')=$rps"
}

# start_tessera ALG: a tessera on core 0 with the bench client; sets TESSERA_PID and TESSERA_URL.
start_tessera() {
  local alg=$1 web
  web=$(port)
  mkdir -p "$scratch/$alg"
  cat > "$scratch/$alg/config.yaml" <<YAML
issuer: http://127.0.0.1:$web/dex
storage:
  type: sqlite3
  config:
    file: $scratch/$alg/tessera.db
web:
  http: 127.0.0.1:$web
logger:
  level: warn
signer:
  type: local
  config:
    keysRotationPeriod: 6h
    algorithm: $alg
oauth2:
  grantTypes: [client_credentials]
enablePasswordDB: true
staticClients:
- id: bench
  secret: bench-secret
  name: Bench
YAML
  local started=$(date +%s%N)
  taskset -c 0 target/release/tessera serve "$scratch/$alg/config.yaml" 2>"$scratch/$alg/log" &
  TESSERA_PID=$!
  pids+=("$TESSERA_PID")
  wait_for "http://127.0.0.1:$web/dex/healthz" "$TESSERA_PID" "$scratch/$alg/log"
  READY_MS=$(( ($(date +%s%N) - started) / 1000000 ))
  IDLE_RSS=$(( $(rss_kb "$TESSERA_PID" VmRSS) / 1024 ))
  TESSERA_URL="http://127.0.0.1:$web/dex"
}

log "tessera, ES256"
start_tessera ES256
es_ready=$READY_MS es_idle=$IDLE_RSS
measure "tessera client_credentials ES256" "$TESSERA_PID" "$TESSERA_URL/token" "$scratch/cc.lua"
measure "tessera /keys" "$TESSERA_PID" "$TESSERA_URL/keys" "$scratch/get.lua"
measure "tessera discovery" "$TESSERA_PID" "$TESSERA_URL/.well-known/openid-configuration" "$scratch/get.lua"
kill "$TESSERA_PID"; wait "$TESSERA_PID" 2>/dev/null || true

log "tessera, RS256"
start_tessera RS256
measure "tessera client_credentials RS256" "$TESSERA_PID" "$TESSERA_URL/token" "$scratch/cc.lua"
kill "$TESSERA_PID"; wait "$TESSERA_PID" 2>/dev/null || true

log "reference provider (oidc-provider), ES256 JWT access tokens"
op_port=$(port)
PORT=$op_port taskset -c 0 node scripts/oidc-provider/bench-op.mjs >"$scratch/op.log" 2>&1 &
op_pid=$!
pids+=("$op_pid")
wait_for "http://127.0.0.1:$op_port/.well-known/openid-configuration" "$op_pid" "$scratch/op.log"
measure "oidc-provider client_credentials ES256" "$op_pid" "http://127.0.0.1:$op_port/token" "$scratch/cc.lua"

echo
echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')), $(free -g | awk '/Mem:/ {print $2}') GiB; servers on core 0, wrk on core 1, ${CONNECTIONS} connections, ${DURATION} s after a 3 s warm-up."
echo
echo "| scenario | requests/s | p50 ms | p99 ms | server CPU | peak RSS | errors |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${rows[@]}"
echo
ratio=$(python3 -c "print(f'{${RPS_tessera_client_credentials_ES256:-0} / max(${RPS_oidc_provider_client_credentials_ES256:-1}, 1):.1f}')")
echo "tessera / reference (client_credentials ES256): ${ratio}×"
echo "tessera start-up on SQLite until /healthz answers: ${es_ready} ms; idle RSS after start: ${es_idle} MB"
