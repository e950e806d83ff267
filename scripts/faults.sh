#!/usr/bin/env bash
# Three tessera replicas on one PostgreSQL, with custom claims from a second PostgreSQL, driven by
# scripts/faults/driver.py (logins, code redemptions, refreshes, device polls) while this script breaks
# things on a schedule: SIGKILL a replica and restart it, restart the storage PostgreSQL, stop the claims
# PostgreSQL for a few seconds. Then CALM_SECONDS with every part back. Fails on any loss (the driver's
# checks) and unless the signing key rotated exactly once (it is due once during the run).
#
#   scripts/faults.sh                       # the short form scripts/test.sh runs: one round of faults
#   ROUNDS=8 CALM_SECONDS=60 scripts/faults.sh   # longer (bench/faults.sh)
#   TESSERA_BIN=target/production/tessera scripts/faults.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/apt.sh
source scripts/lib/postgres.sh

ROUNDS=${ROUNDS:-1}             # rounds of faults, ROUND_SECONDS each
ROUND_SECONDS=${ROUND_SECONDS:-40}
CALM_SECONDS=${CALM_SECONDS:-35} # then this long with every part back
WORKERS=${WORKERS:-6}
# Dex's default: long enough for a client to retry a refresh whose answer died with a replica, short
# enough that the driver's spaced refreshes rotate the token every time.
REUSE_INTERVAL=3
bin=${TESSERA_BIN:-${CARGO_TARGET_DIR:-target}/debug/tessera}
if [ ! -x "$bin" ]; then
  log "building tessera"
  cargo build --locked -p tessera
fi

scratch=$(mktemp -d /tmp/tessera-faults.XXXXXX)
chmod 755 "$scratch"   # the postgres user starts the clusters below it
pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  pg_stop "$scratch/storage"
  pg_stop "$scratch/claims"
  if [ "$status" != 0 ]; then
    for log_file in "$scratch"/replica-*.log; do
      [ -f "$log_file" ] && { echo "--- $log_file (last lines)"; tail -n 15 "$log_file"; }
    done
  fi
  rm -rf "$scratch"
  exit "$status"
}
trap cleanup EXIT INT TERM

# Two clusters: storage, and the custom-claims database that will be stopped.
mkdir -p "$scratch/storage" "$scratch/claims"
pg_start "$scratch/storage"; storage_url=$POSTGRES_URL
pg_start "$scratch/claims"; claims_url=$POSTGRES_URL
port_of() { echo "$1" | sed -E 's#.*:([0-9]+)/.*#\1#'; }
storage_port=$(port_of "$storage_url"); claims_port=$(port_of "$claims_url")
psql_at() { "$PG_BIN/psql" -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U postgres -d postgres "${@:2}"; }
psql_at "$claims_port" -c "CREATE TABLE users (email text PRIMARY KEY, team text NOT NULL);
  INSERT INTO users SELECT 'user' || i || '@example.com', 'team-' || i FROM generate_series(0, 63) i;"

# The key is due once: a replica checks every 30 s, so the rotation happens within 30 s of being due,
# before the run ends; the next one would be due after it.
total=$(( ROUNDS * ROUND_SECONDS + CALM_SECONDS ))
keys_period=$(( total / 2 + 5 ))
if [ $(( keys_period + 30 )) -ge "$total" ]; then
  log "the run ($total s) is too short for one key rotation: raise CALM_SECONDS"; exit 2
fi

hash='$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W'   # "password"
issuer="http://tessera.faults.invalid/dex"
passwords=""
for i in $(seq 0 $(( WORKERS - 1 ))); do
  passwords+="- email: user$i@example.com
  hash: \"$hash\"
  username: user$i
  userID: user-$i
"
done
ports=()
for i in 0 1 2; do
  ports+=("$(free_port)")
  cat > "$scratch/replica-$i.yaml" <<EOF
issuer: $issuer
storage:
  type: postgres
  config:
    host: 127.0.0.1
    port: $storage_port
    database: postgres
    user: postgres
    ssl:
      mode: disable
web:
  http: 127.0.0.1:${ports[$i]}
logger:
  level: warn
signer:
  type: local
  config:
    keysRotationPeriod: ${keys_period}s
expiry:
  refreshTokens:
    reuseInterval: ${REUSE_INTERVAL}s
oauth2:
  skipApprovalScreen: true
  grantTypes: [authorization_code, refresh_token, 'urn:ietf:params:oauth:grant-type:device_code']
enablePasswordDB: true
staticPasswords:
$passwords
staticClients:
- id: fault-app
  secret: fault-app-secret
  name: Fault App
  # A confidential client registers the device callback (the issuer's path + /device/callback), as in Dex.
  redirectURIs: ['http://127.0.0.1:5555/callback', '/dex/device/callback']
customClaims:
  enrichers:
  - name: team
    type: postgres
    uri: postgres://postgres@127.0.0.1:$claims_port/postgres?sslmode=disable
    query: SELECT team FROM users WHERE email = \$1
    args: ["{{.Email}}"]
    onEmpty: error
    timeout: 2s
    acquireTimeout: 2s
EOF
done

start_replica() {
  local i=$1
  "$bin" serve "$scratch/replica-$i.yaml" >>"$scratch/replica-$i.log" 2>&1 &
  pids[$i]=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:${ports[$i]}/dex/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  log "replica $i did not start"; tail -n 20 "$scratch/replica-$i.log"; return 1
}
kill_replica() { kill -9 "${pids[$1]}" 2>/dev/null || true; wait "${pids[$1]}" 2>/dev/null || true; }
pg_opts() { echo "-c listen_addresses=127.0.0.1 -p $2 -k '$1' -c fsync=off -c max_connections=300"; }
pg_ctl_at() { as_pg "'$PG_BIN/pg_ctl' -D '$1/pg' -l '$1/pg.log' -w -t 30 $2"; }

for i in 0 1 2; do start_replica "$i"; done
replicas="http://127.0.0.1:${ports[0]}/dex,http://127.0.0.1:${ports[1]}/dex,http://127.0.0.1:${ports[2]}/dex"

log "driving 3 replicas for ${total}s: $ROUNDS round(s) of faults, then ${CALM_SECONDS}s with every part back"
python3 scripts/faults/driver.py --replicas "$replicas" --issuer "$issuer" --workers "$WORKERS" \
  --seconds "$total" --calm-after $(( ROUNDS * ROUND_SECONDS )) --kids "$scratch/kids" \
  --reuse-interval "$REUSE_INTERVAL" &
driver=$!

faults=0
for round in $(seq 1 "$ROUNDS"); do
  victim=$(( (round - 1) % 3 ))
  sleep 5
  log "round $round: SIGKILL replica $victim"; kill_replica "$victim"; faults=$((faults + 1))
  sleep 3
  start_replica "$victim"
  sleep 5
  log "round $round: restarting the storage PostgreSQL"
  pg_ctl_at "$scratch/storage" "-m fast restart" >/dev/null; faults=$((faults + 1))
  sleep 7
  log "round $round: stopping the claims PostgreSQL for 4 s"
  pg_ctl_at "$scratch/claims" "-m fast stop" >/dev/null; faults=$((faults + 1))
  sleep 4
  pg_ctl_at "$scratch/claims" "-o \"$(pg_opts "$scratch/claims" "$claims_port")\" start" >/dev/null
  sleep $(( ROUND_SECONDS - 24 ))
done
log "every part is back"

status=0
wait "$driver" || status=$?

# Exactly one rotation: the stored keys keep one verification key (the one rotated out), and the ID
# tokens were signed with at most two keys.
verification_keys=$(psql_at "$storage_port" -At -c \
  "SELECT jsonb_array_length(data::jsonb -> 'verification_keys') FROM tessera_objects WHERE kind = 'keys'")
kids=$(grep -c . "$scratch/kids" || true)
echo "faults injected: $faults; signing-key rotations: $verification_keys (expected 1); kids in tokens: $kids"
if [ "$verification_keys" != 1 ]; then
  echo "PROBLEM: the signing key rotated $verification_keys times, not once" >&2; status=1
fi
if [ "$kids" -gt 2 ]; then
  echo "PROBLEM: ID tokens were signed with $kids keys" >&2; status=1
fi
[ "$status" = 0 ] && log "fault test passed" || log "fault test FAILED"
exit "$status"
