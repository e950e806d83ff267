#!/usr/bin/env bash
# tessera under load on this machine, with the reference provider (oidc-provider) and the limit (a
# minimal token server on the same HTTP stack) in the same run. Builds in release, starts each server
# on loopback, drives it with wrk (or, for flows where each request needs the previous answer, with
# tessera-load), and prints one table: requests/s, p50/p99, server CPU, peak RSS, errors.
# Installs what it needs (wrk, Node.js, oidc-provider, PostgreSQL), stops what it starts.
#
#   bench/run.sh                 # everything: ~4 minutes once built (a clean build adds ~7.5)
#   ONLY=cc bench/run.sh         # some groups: cc (with the limit and the reference), refresh, authcode, micro
#   DURATION=10 ROUNDS=7 bench/run.sh   # longer runs (default 5 s after a 2 s warm-up, 5 rounds)
#   PROFILE=release bench/run.sh # the README's build instead of the production profile
#
# Pinned scenarios (the single-core comparison the targets ask for): server on core 0, load on core 1.
# Unpinned ones (refresh, authcode) share both cores with the load driver and PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/apt.sh
source scripts/lib/postgres.sh

PROFILE=${PROFILE:-production}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-16}
ROUNDS=${ROUNDS:-5}
ONLY=${ONLY:-cc refresh authcode micro}
wants() { [[ " $ONLY " == *" $1 "* ]]; }

command -v wrk >/dev/null || apt_install wrk
if wants cc; then
  command -v npm >/dev/null || apt_install nodejs npm
  [ -d scripts/oidc-provider/node_modules/oidc-provider ] ||
    npm install --prefix scripts/oidc-provider --no-audit --no-fund --loglevel=error >/dev/null
  # The reference runs on the newest Node.js LTS oidc-provider supports, the npm registry's prebuilt binary
  # pinned in scripts/oidc-provider/runtime/package.json (the system's Node is left alone): see bench-op.mjs.
  reference_node=scripts/oidc-provider/runtime/node_modules/.bin/node
  reference_version=v$(node -p "require('./scripts/oidc-provider/runtime/package.json').dependencies.node")
  if [ "$("$reference_node" --version 2>/dev/null)" != "$reference_version" ]; then
    log "installing Node.js $reference_version for the reference provider (npm package node)"
    npm install --prefix scripts/oidc-provider/runtime --no-audit --no-fund --loglevel=error >/dev/null || true
  fi
  if [ "$("$reference_node" --version 2>/dev/null)" != "$reference_version" ]; then
    reference_node=$(command -v node)
    log "WARNING: Node.js $reference_version could not be installed: the reference provider runs on the system's"
    log "WARNING: $("$reference_node" --version), slower (~20 % more CPU per token on Node 20 than on Node 24): its row flatters tessera"
  fi
fi
log "building tessera and the benchmark tools (profile $PROFILE)"
# One build for the binaries and the criterion bench, so both use the same features (no second build).
cargo build --profile "$PROFILE" --locked -p tessera -p tessera-bench --bins --benches >&2
bin=target/$PROFILE

scratch=$(mktemp -d /tmp/tessera-bench.XXXXXX)
chmod 755 "$scratch"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  pg_stop "$scratch"
  rm -rf "$scratch"
}
trap cleanup EXIT INT TERM

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_mb() { awk "/^$2:/ {printf \"%d\", \$2 / 1024}" "/proc/$1/status"; }

# wrk scripts: each prints "RESULT rps p50_ms p99_ms errors" (tessera-load prints the same line).
wrk_script() {
  local name=$1 method=$2 body=$3 auth=$4
  {
    [ "$method" = GET ] || printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\nwrk.body = "%s"\n' "$body"
    [ -z "$auth" ] || printf 'wrk.headers["Authorization"] = "%s"\n' "$auth"
    cat <<'LUA'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %.0f %.2f %.2f %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, e.status + e.connect + e.read + e.write + e.timeout))
end
LUA
  } >"$scratch/$name.lua"
}
BENCH_BASIC="Basic $(printf 'bench:bench-secret' | base64)"
wrk_script cc POST "grant_type=client_credentials" "$BENCH_BASIC"
wrk_script get GET "" ""

# wait_for URL PID LOG: until URL answers; fails (with the log) if PID dies or 30 s pass.
wait_for() {
  local deadline=$(($(date +%s) + 30))
  until curl -sf -o /dev/null "$1"; do
    if ! kill -0 "$2" 2>/dev/null || [ "$(date +%s)" -gt "$deadline" ]; then
      log "did not start:"; cat "$3" >&2; exit 1
    fi
    sleep 0.005
  done
}

rows=()
declare -A RPS P50 SAMPLES
# row NAME PID "rps p50 p99 errors cpu": one table row.
row() {
  local rps p50 p99 errors cpu
  read -r rps p50 p99 errors cpu <<<"$3"
  rows+=("| $1 | $rps | $p50 | $p99 | ${cpu} % | $(rss_mb "$2" VmHWM) MB | $errors |")
  RPS[$1]=$rps P50[$1]=$p50
  log "$1: $rps/s, p50 $p50 ms, p99 $p99 ms, $errors errors, ${cpu} % CPU"
}

# cpu_since PID TICKS SECONDS: the process's CPU use since TICKS, in percent of one core.
cpu_since() { echo $((($(cpu_ticks "$1") - $2) * 100 / ($(getconf CLK_TCK) * $3))); }

# wrk_run PID URL SCRIPT [PIN]: "rps p50 p99 errors cpu" of one wrk run (on core 1 when PIN) after a warm-up.
wrk_run() {
  local pid=$1 url=$2 script=$3 pin=${4:-} before result
  local run=(wrk -t1 -c"${CONNS:-$CONNECTIONS}" -s "$scratch/$script.lua")
  [ -z "$pin" ] || run=(taskset -c 1 "${run[@]}")
  "${run[@]}" -d"${WARMUP}s" "$url" >/dev/null 2>&1 || true
  before=$(cpu_ticks "$pid")
  result=$("${run[@]}" -d"${DURATION}s" "$url" | awk '/^RESULT/ {print $2, $3, $4, $5}')
  echo "$result $(cpu_since "$pid" "$before" "$DURATION")"
}

# load_wrk NAME PID URL SCRIPT [PIN]: one wrk run, one row.
load_wrk() { row "$1" "$2" "$(wrk_run "$2" "$3" "$4" "${5:-}")"; }

# sample NAME PID URL SCRIPT: one pinned wrk run kept for settle (servers compared with each other
# are measured in alternating rounds: this VM drifts by ±25 % over minutes, back-to-back runs agree).
sample() {
  local result
  result=$(wrk_run "$2" "$3" "$4" pin)
  SAMPLES[$1]+="$result"$'\n'
  log "  round sample, $1: $result"
}

# settle NAME PID: the row of the median sample by requests/s (errors summed over all samples).
settle() {
  local median errors
  median=$(printf '%s' "${SAMPLES[$1]}" | sort -n -k1,1 | awk '{a[NR]=$0} END {print a[int((NR + 1) / 2)]}')
  errors=$(printf '%s' "${SAMPLES[$1]}" | awk '{s += $4} END {print s + 0}')
  row "$1" "$2" "$(awk -v e="$errors" '{print $1, $2, $3, e, $5}' <<<"$median")"
}

# load_flow NAME PID SCENARIO ISSUER CONNECTIONS: tessera-load (its warm-up included in the CPU figure).
load_flow() {
  local name=$1 pid=$2 scenario=$3 issuer=$4 connections=$5 before result
  before=$(cpu_ticks "$pid")
  result=$($bin/tessera-load "$scenario" --issuer "$issuer" --connections "$connections" \
    --users "$connections" --warmup "$WARMUP" --duration "$DURATION" | awk '/^RESULT/ {print $2, $3, $4, $5}')
  row "$name" "$pid" "$result $(cpu_since "$pid" "$before" $((WARMUP + DURATION)))"
}

# A cost-10 bcrypt hash of "password" (Dex's example users use the same one).
PASSWORD_HASH='$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W'

# start_tessera NAME ALG STORAGE_YAML [EXTRA_YAML] [PIN]: sets PID, URL, READY_MS, IDLE_MB.
start_tessera() {
  local name=$1 alg=$2 storage=$3 extra=${4:-} pin=${5:-} web dir="$scratch/$1" started
  web=$(free_port)
  mkdir -p "$dir"
  {
    cat <<YAML
issuer: http://127.0.0.1:$web/dex
$storage
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
  grantTypes: [client_credentials, authorization_code, refresh_token]
  skipApprovalScreen: true
enablePasswordDB: true
staticClients:
- id: bench
  secret: bench-secret
  name: Bench
- id: web
  secret: web-secret
  name: Web
  redirectURIs: [http://127.0.0.1:1/callback]
staticPasswords:
YAML
    for i in $(seq 0 $((CONNECTIONS - 1))); do
      printf -- '- email: user%d@example.com\n  hash: "%s"\n  username: user%d\n  userID: user-%d\n' \
        "$i" "$PASSWORD_HASH" "$i" "$i"
    done
    printf '%s\n' "$extra"
  } >"$dir/config.yaml"
  local run=($bin/tessera serve "$dir/config.yaml")
  [ -z "$pin" ] || run=(taskset -c 0 "${run[@]}")
  started=$(date +%s%N)
  "${run[@]}" 2>"$dir/log" &
  PID=$!
  pids+=("$PID")
  URL="http://127.0.0.1:$web/dex"
  wait_for "$URL/healthz" "$PID" "$dir/log"
  READY_MS=$((($(date +%s%N) - started) / 1000000))
  IDLE_MB=$(rss_mb "$PID" VmRSS)
}

stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

sqlite_storage() { printf 'storage:\n  type: sqlite3\n  config:\n    file: %s\n' "$scratch/$1.db"; }

notes=()

# start_pinned NAME URL LOG COMMAND...: a server on core 0; sets PID.
start_pinned() {
  local name=$1 url=$2 log=$3
  shift 3
  taskset -c 0 "$@" >"$log" 2>&1 &
  PID=$!
  pids+=("$PID")
  wait_for "$url" "$PID" "$log"
}

if wants cc; then
  # Every server of the comparison runs at once on core 0 (idle unless loaded), so rounds alternate.
  log "the limit: minimal token servers (ES256, RS256)"
  port=$(free_port)
  start_pinned minimal-es "http://127.0.0.1:$port/healthz" "$scratch/minimal-es.log" \
    $bin/minimal-token-server "127.0.0.1:$port" ES256
  minimal_es=("$PID" "http://127.0.0.1:$port/token")
  port=$(free_port)
  start_pinned minimal-rs "http://127.0.0.1:$port/healthz" "$scratch/minimal-rs.log" \
    $bin/minimal-token-server "127.0.0.1:$port" RS256
  minimal_rs=("$PID" "http://127.0.0.1:$port/token")
  log "tessera on SQLite, ES256 and RS256"
  start_tessera cc-es ES256 "$(sqlite_storage cc-es)" "" pin
  notes+=("tessera start-up on SQLite until /healthz answers: ${READY_MS} ms; RSS when ready: ${IDLE_MB} MB")
  tessera_es=("$PID" "$URL")
  start_tessera cc-rs RS256 "$(sqlite_storage cc-rs)" "" pin
  tessera_rs=("$PID" "$URL")
  log "the reference provider (oidc-provider), ES256 JWT access tokens"
  port=$(free_port)
  # At its best (bench-op.mjs): production mode, one libuv worker thread on its one core.
  PORT=$port NODE_ENV=production UV_THREADPOOL_SIZE=1 start_pinned reference \
    "http://127.0.0.1:$port/.well-known/openid-configuration" "$scratch/op.log" "$reference_node" scripts/oidc-provider/bench-op.mjs
  reference=("$PID" "http://127.0.0.1:$port/token")
  if grep 'bench-op WARNING' "$scratch/op.log" >&2; then log "WARNING: the reference provider is not at its best (above)"; fi
  # Its JIT compiler warms up over ~10 s of load, once; tessera and the minimal server are compiled ahead of time.
  taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d$((5 * WARMUP))s -s "$scratch/cc.lua" "${reference[1]}" >/dev/null 2>&1 || true
  notes+=("the reference: oidc-provider $(node -p "require('./scripts/oidc-provider/node_modules/oidc-provider/package.json').version") on Node.js $("$reference_node" --version), NODE_ENV=production, UV_THREADPOOL_SIZE=1, warmed up $((5 * WARMUP)) s once")

  for round in $(seq "$ROUNDS"); do
    log "client_credentials, round $round of $ROUNDS"
    sample "minimal server, client_credentials ES256 (1 core)" "${minimal_es[0]}" "${minimal_es[1]}" cc
    sample "tessera client_credentials ES256 (1 core)" "${tessera_es[0]}" "${tessera_es[1]}/token" cc
    sample "oidc-provider client_credentials ES256 (1 core)" "${reference[0]}" "${reference[1]}" cc
    sample "minimal server, client_credentials RS256 (1 core)" "${minimal_rs[0]}" "${minimal_rs[1]}" cc
    sample "tessera client_credentials RS256 (1 core)" "${tessera_rs[0]}" "${tessera_rs[1]}/token" cc
  done
  settle "minimal server, client_credentials ES256 (1 core)" "${minimal_es[0]}"
  settle "tessera client_credentials ES256 (1 core)" "${tessera_es[0]}"
  settle "oidc-provider client_credentials ES256 (1 core)" "${reference[0]}"
  settle "minimal server, client_credentials RS256 (1 core)" "${minimal_rs[0]}"
  settle "tessera client_credentials RS256 (1 core)" "${tessera_rs[0]}"
  # RSA signing is slow (~0.75 ms): it must not hold up the requests that do not sign.
  log "tessera /keys, one connection, while RS256 tokens are minted at full load"
  taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d$((WARMUP + DURATION + 1))s -s "$scratch/cc.lua" "${tessera_rs[1]}/token" \
    >/dev/null 2>&1 &
  background=$!
  CONNS=1 load_wrk "tessera /keys, 1 connection, during RS256 load (1 core)" "${tessera_rs[0]}" "${tessera_rs[1]}/keys" get pin
  wait "$background" || true
  for pid in "${minimal_es[0]}" "${minimal_rs[0]}" "${tessera_rs[0]}" "${reference[0]}"; do stop "$pid"; done

  log "tessera's other endpoints (ES256)"
  PID=${tessera_es[0]} URL=${tessera_es[1]}
  access=$(curl -sf -u bench:bench-secret -d grant_type=client_credentials -d scope=openid "$URL/token" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  wrk_script userinfo GET "" "Bearer $access"
  wrk_script introspect POST "token=$access" ""
  load_wrk "tessera /keys (1 core)" "$PID" "$URL/keys" get pin
  load_wrk "tessera discovery (1 core)" "$PID" "$URL/.well-known/openid-configuration" get pin
  load_wrk "tessera /userinfo (1 core)" "$PID" "$URL/userinfo" userinfo pin
  load_wrk "tessera introspection (1 core)" "$PID" "$URL/token/introspect" introspect pin
  stop "$PID"
fi

if wants refresh; then
  pg_start "$scratch"
  # The custom-claims table of docs/custom-claims.md, one row per benchmark user among 10,000.
  as_pg "'$PG_BIN/psql' -q -d '$POSTGRES_URL' -c \"CREATE TABLE users (user_id text PRIMARY KEY, email text NOT NULL, role text, org text, plan text);
    INSERT INTO users SELECT 'user-' || i, 'user' || i || '@example.com', 'member', 'org-' || (i % 100), 'pro' FROM generate_series(0, 9999) i;\""
  pg_port=${POSTGRES_URL##*:}
  pg_storage=$(printf 'storage:\n  type: postgres\n  config:\n    host: 127.0.0.1\n    port: %s\n    user: postgres\n    database: postgres\n    ssl:\n      mode: disable\n' \
    "${pg_port%%/*}")
  enricher=$(printf 'customClaims:\n  enrichers:\n  - name: tenant\n    type: postgres\n    uri: %s\n    query: SELECT role, org, plan FROM users WHERE user_id = $1\n    args: ["{{.UserID}}"]\n' \
    "$POSTGRES_URL")
  for storage in sqlite postgres; do
    for claims in without with; do
      [ "$storage" = sqlite ] && yaml=$(sqlite_storage "refresh-$claims") || yaml=$pg_storage
      [ "$storage" = postgres ] && as_pg "'$PG_BIN/psql' -q -d '$POSTGRES_URL' -c 'DROP TABLE IF EXISTS tessera_objects, tessera_migrations'"
      extra=""; [ "$claims" = with ] && extra=$enricher
      log "tessera refresh_token, $storage, $claims the Postgres enricher"
      start_tessera "refresh-$storage-$claims" ES256 "$yaml" "$extra"
      load_flow "tessera refresh_token ES256, $storage, $claims Postgres claims (2 cores)" "$PID" refresh "$URL" "$CONNECTIONS"
      [ "$storage" = postgres ] &&
        load_flow "tessera refresh_token ES256, $storage, $claims Postgres claims, 1 connection" "$PID" refresh "$URL" 1
      stop "$PID"
    done
  done
fi

if wants authcode; then
  log "tessera, the browser authorization-code flow (bcrypt cost 10), SQLite"
  start_tessera authcode ES256 "$(sqlite_storage authcode)"
  load_flow "tessera authorization-code flow, 4 browsers (2 cores)" "$PID" authcode "$URL" 4
  stop "$PID"
fi

echo
echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')), $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r)."
echo "Each row: ${DURATION} s measured after ${WARMUP} s of warm-up, ${CONNECTIONS} connections unless it says otherwise."
echo
echo "| scenario | requests/s | p50 ms | p99 ms | server CPU | server peak RSS | errors |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${rows[@]}"
echo
ratio() { python3 -c "a, b = '${RPS[$1]:-}', '${RPS[$2]:-}'; print(f'{int(a) / int(b):.2f}' if a and b else 'n/a')"; }
if wants cc; then
  echo "tessera / oidc-provider, client_credentials ES256: $(ratio 'tessera client_credentials ES256 (1 core)' 'oidc-provider client_credentials ES256 (1 core)')× (target ≥ 6)"
  echo "tessera / minimal server, client_credentials ES256: $(ratio 'tessera client_credentials ES256 (1 core)' 'minimal server, client_credentials ES256 (1 core)') (target ≥ 0.80)"
  echo "tessera / minimal server, client_credentials RS256: $(ratio 'tessera client_credentials RS256 (1 core)' 'minimal server, client_credentials RS256 (1 core)') (target ≥ 0.90)"
fi
if wants refresh; then
  with=${P50["tessera refresh_token ES256, postgres, with Postgres claims, 1 connection"]}
  without=${P50["tessera refresh_token ES256, postgres, without Postgres claims, 1 connection"]}
  echo "The Postgres enricher at p50, one connection: +$(python3 -c "print(f'{$with - $without:.2f}')") ms (target ≤ 1 ms)"
fi
printf '%s\n' "${notes[@]}"

if wants micro; then
  echo
  log "criterion micro-benchmarks (signatures, claim-set assembly)"
  cargo bench --profile "$PROFILE" --locked -p tessera-bench --bench hot_paths -- --warm-up-time 1 --measurement-time 3 2>/dev/null |
    awk '/time:/ { line = $0; sub(/^ +/, "", line); print "- " ($0 ~ /^ / ? name " " : "") line; next } /^[^ ]/ { name = $0 }' |
      sed 's/  */ /g'
fi
