#!/usr/bin/env bash
# Tests the container image. `podman build` works on this kind of machine but `podman run` does not
# (crun cannot set rlimits; cgroups are hybrid), so the image is built with scripts/image.sh, inspected,
# exported (`podman create` + `podman export`), and its binary run chrooted into the exported
# filesystem as the image's user, with only the image's environment:
#   - `dex version` through the `dex` alias on the image's PATH;
#   - Dex's Helm chart's command line on the image's default configuration (SQLite in /var/dex);
#   - host-name resolution inside the image: PostgreSQL reached by a name that only the image's
#     /etc/hosts knows (check-config, then serve until /healthz/ready says the storage is healthy),
#     and a name it does not know failing;
#   - TLS trust from the image's CA bundle: an upstream OIDC provider on https://idp.test, whose CA is
#     added to the exported /etc/ssl/certs/ca-certificates.crt, is discovered; without it, refused.
# Needs TESSERA_TEST_POSTGRES_URL (scripts/test.sh starts a throwaway PostgreSQL and sets it): without
# it the PostgreSQL part fails when CI is set and is skipped loudly otherwise. Needs root (chroot), likewise.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/apt.sh
source scripts/lib/postgres.sh

MAX_SIZE=25000000 # bytes: the issue's 25 MB
USER_ID=1001

if [ "$(id -u)" != 0 ]; then
  [ -z "${CI:-}" ] || { log "FAIL: the image test chroots into the image: run it as root"; exit 1; }
  log "SKIPPED: the image test chroots into the image and needs root"; exit 0
fi
for tool in curl openssl python3; do
  command -v "$tool" >/dev/null || { log "installing $tool"; apt_install "$tool"; }
done

tag="localhost/tessera-image-test:$$"
work=$(mktemp -d /tmp/tessera-image-test.XXXXXX)
root="$work/root"
container=""
database=""
pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  [ -z "$container" ] || podman rm --force "$container" >/dev/null 2>&1 || true
  podman image rm --force "$tag" >/dev/null 2>&1 || true
  [ -z "$database" ] || psql_admin "DROP DATABASE IF EXISTS $database" >/dev/null 2>&1 || true
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT INT TERM

fail() { log "FAIL: $*"; exit 1; }
ok() { log "ok: $*"; }

# in_image CMD...: runs CMD chrooted into the exported image as its user, with only its environment.
image_env=()
in_image() { env -i "${image_env[@]}" "$(command -v chroot)" --userspec="$USER_ID:$USER_ID" "$root" "$@"; }

# serve_until_ready NAME CONFIG: starts Dex's chart's command line on free ports in the background and
# waits for /healthz/ready; sets WEB and SERVE_PID. Fails (with the log) if it exits or is not ready.
serve_until_ready() {
  local name=$1 config=$2 telemetry status
  WEB="127.0.0.1:$(free_port)"
  telemetry="127.0.0.1:$(free_port)"
  log "starting: dex serve --web-http-addr $WEB --telemetry-addr $telemetry $config"
  # Not through in_image: $! must be the server's own process (env and chroot exec it).
  env -i "${image_env[@]}" "$(command -v chroot)" --userspec="$USER_ID:$USER_ID" "$root" \
    dex serve --web-http-addr "$WEB" --telemetry-addr "$telemetry" "$config" >"$work/$name.log" 2>&1 &
  SERVE_PID=$!
  pids+=("$SERVE_PID")
  for _ in $(seq 1 100); do
    if ! kill -0 "$SERVE_PID" 2>/dev/null; then
      cat "$work/$name.log" >&2; fail "$name: the server exited before it was ready"
    fi
    status=$(curl -s -o "$work/ready.json" -w '%{http_code}' "http://$telemetry/healthz/ready" || true)
    [ "$status" = 200 ] && break
    sleep 0.1
  done
  [ "$status" = 200 ] || { cat "$work/$name.log" >&2; fail "$name: /healthz/ready answered ${status:-nothing} after 10 s"; }
  python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["storage"]["healthy"] is True else 1)' \
    "$work/ready.json" || fail "$name: /healthz/ready: $(cat "$work/ready.json")"
  [ "$(ps -o uid= -p "$SERVE_PID" | tr -d ' ')" = "$USER_ID" ] || fail "$name: the server does not run as uid $USER_ID"
  ok "$name: ready on the telemetry listener ($(cat "$work/ready.json")), running as uid $USER_ID"
}

stop_server() { kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true; }

# --- Build and inspect -------------------------------------------------------------------------------
log "building the image: scripts/image.sh $tag"
scripts/image.sh "$tag"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)

log "inspecting the image"
podman image inspect "$tag" >"$work/inspect.json"
python3 - "$work/inspect.json" "$MAX_SIZE" "$USER_ID" "$version" <<'EOF' || fail "the image's configuration"
import json, sys
image = json.load(open(sys.argv[1]))[0]
max_size, user, version = int(sys.argv[2]), sys.argv[3], sys.argv[4]
config, failed = image["Config"], []
def check(ok, message):
    print(("==> ok: " if ok else "==> FAIL: ") + message, file=sys.stderr)
    if not ok: failed.append(message)
check(config.get("User") == f"{user}:{user}", f"runs as {user}:{user}, not root (User {config.get('User')!r})")
check(image["Size"] <= max_size, f"size {image['Size']} bytes ({image['Size'] / 1e6:.1f} MB) <= {max_size / 1e6:.0f} MB")
check(not config.get("Entrypoint"), f"no ENTRYPOINT, so Kubernetes `args` are the whole command (found {config.get('Entrypoint')})")
check(config.get("Cmd") == ["dex", "serve", "/etc/dex/config.docker.yaml"], f"CMD is Dex's image's: {config.get('Cmd')}")
check("PATH=/usr/local/bin" in config.get("Env", []), f"PATH=/usr/local/bin (Env {config.get('Env')})")
ports = set(config.get("ExposedPorts", {}))
check(ports == {"5556/tcp", "5554/tcp", "5557/tcp", "5558/tcp"}, f"exposes Dex's ports: {sorted(ports)}")
labels = config.get("Labels") or {}
check(labels.get("org.opencontainers.image.title") == "tessera", "OCI label title")
check(labels.get("org.opencontainers.image.version") == version, f"OCI label version {labels.get('org.opencontainers.image.version')}")
for key in ["revision", "created", "licenses", "description"]:
    check(bool(labels.get(f"org.opencontainers.image.{key}")), f"OCI label {key}: {labels.get(f'org.opencontainers.image.{key}')}")
check(image.get("Os") == "linux" and image.get("Architecture") == "amd64", f"{image.get('Os')}/{image.get('Architecture')}")
sys.exit(1 if failed else 0)
EOF
mapfile -t image_env < <(python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))[0]["Config"]["Env"]))' "$work/inspect.json")

# --- Export and check the layout ------------------------------------------------------------------
log "exporting the image's filesystem (podman create + podman export) into $root"
container=$(podman create "$tag")
mkdir "$root"
podman export "$container" | tar --extract --numeric-owner --same-permissions --directory "$root"
log "the image's files:"
(cd "$root" && find . -type f -printf '%10s  %p\n' -o -type l -printf '%10s  %p -> %l\n' | sort -k2) >&2

[ -x "$root/usr/local/bin/tessera" ] || fail "no /usr/local/bin/tessera"
[ "$(readlink "$root/usr/local/bin/dex")" = tessera ] || fail "/usr/local/bin/dex is not an alias of tessera"
[ -x "$root/lib64/ld-linux-x86-64.so.2" ] || fail "no dynamic loader at /lib64/ld-linux-x86-64.so.2"
for shell in sh bash dash ash busybox; do
  [ -z "$(find "$root" -name "$shell")" ] || fail "a shell in the image: $(find "$root" -name "$shell")"
done
ok "tessera and its dex alias in /usr/local/bin, the loader, no shell"
[ -z "$(find "$root" -perm /6000 -type f)" ] || fail "setuid/setgid files: $(find "$root" -perm /6000 -type f)"
owned=$(cd "$root" && find . \( ! -uid 0 -o ! -gid 0 \) -printf '%p %U:%G\n')
[ "$owned" = "./var/dex $USER_ID:$USER_ID" ] || fail "only /var/dex should belong to $USER_ID, found: ${owned:-nothing}"
ok "everything belongs to root but /var/dex ($USER_ID:$USER_ID); no setuid files"
grep -q "^[^:]*:x:$USER_ID:$USER_ID:" "$root/etc/passwd" || fail "no user $USER_ID in /etc/passwd"
grep -q "^[^:]*:x:$USER_ID:" "$root/etc/group" || fail "no group $USER_ID in /etc/group"
grep -qx 'hosts: *files dns' "$root/etc/nsswitch.conf" || fail "/etc/nsswitch.conf lacks 'hosts: files dns'"
certs=$(grep -c 'BEGIN CERTIFICATE' "$root/etc/ssl/certs/ca-certificates.crt" || true)
[ "$certs" -ge 100 ] || fail "the CA bundle holds $certs certificates"
[ "$(stat -c %a "$root/tmp")" = 1777 ] || fail "/tmp is not 1777"
diff -r web "$root/srv/dex/web" >/dev/null || fail "/srv/dex/web differs from web/"
ok "passwd and group with $USER_ID, nsswitch 'hosts: files dns', $certs CA certificates, /tmp 1777, the web templates at /srv/dex/web"

# --- Run the binary inside the image ------------------------------------------------------------------
log "running in the image (chroot --userspec=$USER_ID:$USER_ID, environment: ${image_env[*]})"
out=$(in_image /usr/local/bin/dex version) || fail "/usr/local/bin/dex version failed: $out"
grep -qx "tessera Version: $version" <<<"$out" || fail "dex version printed: $out"
out=$(in_image dex version) || fail "dex version (through PATH) failed: $out"
ok "dex version, by path and through the image's PATH: $(head -n 1 <<<"$out")"

out=$(in_image dex check-config /etc/dex/config.docker.yaml 2>&1) || fail "check-config on the default configuration: $out"
[ "$(stat -c %u "$root/var/dex/dex.db")" = "$USER_ID" ] || fail "the default SQLite file was not created by $USER_ID in /var/dex"
ok "the default configuration checks, its SQLite file created in /var/dex"
serve_until_ready default /etc/dex/config.docker.yaml
discovery=$(curl -fsS "http://$WEB/dex/.well-known/openid-configuration") || fail "no discovery document"
python3 -c 'import json,sys; sys.exit(json.loads(sys.argv[1])["issuer"] != "http://127.0.0.1:5556/dex")' "$discovery" \
  || fail "discovery: $discovery"
ok "Dex's chart's command line serves the default configuration's issuer"
stop_server

# --- Host-name resolution: PostgreSQL by a name only the image's /etc/hosts knows ------------------
if [ -z "${TESSERA_TEST_POSTGRES_URL:-}" ]; then
  [ -z "${CI:-}" ] || fail "TESSERA_TEST_POSTGRES_URL is not set (scripts/test.sh sets it)"
  log "SKIPPED: the PostgreSQL run by host name: TESSERA_TEST_POSTGRES_URL is not set (scripts/test.sh sets it)"
else
  mapfile -t pg < <(python3 - "$TESSERA_TEST_POSTGRES_URL" <<'EOF'
import sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
print(u.hostname, u.port or 5432, u.username or "postgres", u.path.lstrip("/") or "postgres",
      urllib.parse.unquote(u.password or ""), sep="\n")
EOF
  )
  pg_host=${pg[0]} pg_port=${pg[1]} pg_user=${pg[2]} pg_db=${pg[3]} pg_password=${pg[4]:-}
  psql_admin() { PGPASSWORD="$pg_password" "$PSQL" -X -q -v ON_ERROR_STOP=1 -h "$pg_host" -p "$pg_port" -U "$pg_user" -d "$pg_db" -c "$1"; }
  PSQL=$(command -v psql || echo "$(find_pg_bin)/psql")
  database="tessera_image_$$"
  psql_admin "CREATE DATABASE $database" >/dev/null || fail "cannot create database $database at $pg_host:$pg_port"

  name=tessera-db.test
  if getent hosts "$name" >/dev/null; then fail "the host resolves $name: the test could not tell where it was resolved"; fi
  printf '%s\t%s\n' "$pg_host" "$name" >>"$root/etc/hosts"
  log "$name is only in the image's /etc/hosts (-> $pg_host); the host cannot resolve it"
  write_pg_config() { # FILE HOST
    cat >"$root$1" <<EOF
issuer: http://127.0.0.1:5556/dex
storage:
  type: postgres
  config:
    host: $2
    port: $pg_port
    database: $database
    user: $pg_user
    password: "$pg_password"
    connectionTimeout: 5
    ssl:
      mode: disable
frontend:
  dir: /srv/dex/web
web:
  http: 127.0.0.1:5556
enablePasswordDB: true
EOF
  }
  write_pg_config /etc/dex/postgres.yaml "$name"
  write_pg_config /etc/dex/unknown-host.yaml tessera-nowhere.test

  out=$(in_image tessera check-config /etc/dex/postgres.yaml 2>&1) || fail "tessera check-config by host name: $out"
  grep -q "postgres ($name/$database): opened and migrated" <<<"$out" || fail "check-config printed: $out"
  ok "check-config reached PostgreSQL as $name, resolved inside the image"
  if out=$(in_image dex check-config /etc/dex/unknown-host.yaml 2>&1); then
    fail "check-config succeeded with a host name nothing resolves: $out"
  fi
  ok "a name absent from the image's /etc/hosts does not resolve: $(tail -n 1 <<<"$out")"
  serve_until_ready postgres /etc/dex/postgres.yaml
  curl -fsS "http://$WEB/dex/.well-known/openid-configuration" >/dev/null || fail "no discovery document on PostgreSQL"
  stop_server
  ok "served from PostgreSQL at $name (frontend.dir /srv/dex/web)"
fi

# --- TLS: an upstream provider on https, trusted through the image's CA bundle -------------------------
log "TLS: an OIDC upstream at https://idp.test with a test CA, trusted only through the image's CA bundle"
tls="$work/tls"
mkdir "$tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=tessera image test CA' \
  -keyout "$tls/ca.key" -out "$tls/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj '/CN=idp.test' -keyout "$tls/idp.key" -out "$tls/idp.csr" 2>/dev/null
printf 'subjectAltName=DNS:idp.test\n' >"$tls/ext"
openssl x509 -req -in "$tls/idp.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" -CAcreateserial -days 2 \
  -extfile "$tls/ext" -out "$tls/idp.crt" 2>/dev/null
idp_port=$(free_port)
python3 - "$idp_port" "$tls" <<'EOF' >"$work/idp.log" 2>&1 &
import http.server, json, ssl, sys
port, tls = int(sys.argv[1]), sys.argv[2]
issuer = f"https://idp.test:{port}"
doc = json.dumps({"issuer": issuer, "authorization_endpoint": issuer + "/auth", "token_endpoint": issuer + "/token",
                  "jwks_uri": issuer + "/jwks", "userinfo_endpoint": issuer + "/userinfo"}).encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = doc if self.path == "/.well-known/openid-configuration" else b"{}"
        self.send_response(200 if body is doc else 404)
        self.send_header("Content-Type", "application/json"); self.send_header("Content-Length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
server = http.server.HTTPServer(("127.0.0.1", port), H)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); context.load_cert_chain(f"{tls}/idp.crt", f"{tls}/idp.key")
server.socket = context.wrap_socket(server.socket, server_side=True)
print("listening", flush=True); server.serve_forever()
EOF
pids+=($!)
for _ in $(seq 1 50); do grep -q listening "$work/idp.log" && break; sleep 0.1; done
grep -q listening "$work/idp.log" || { cat "$work/idp.log" >&2; fail "the test OIDC provider did not start"; }
printf '127.0.0.1\tidp.test\n' >>"$root/etc/hosts"
cat >"$root/etc/dex/oidc.yaml" <<EOF
issuer: http://127.0.0.1:5556/dex
storage:
  type: memory
web:
  http: 127.0.0.1:5556
# The only connector: if its discovery fails, nothing opens and the server stops.
enablePasswordDB: false
connectors:
- type: oidc
  id: upstream
  name: Upstream
  config:
    issuer: https://idp.test:$idp_port
    clientID: tessera
    clientSecret: secret
    redirectURI: http://127.0.0.1:5556/dex/callback
EOF
status=0
out=$(timeout 30 env -i "${image_env[@]}" "$(command -v chroot)" --userspec="$USER_ID:$USER_ID" "$root" \
  dex serve --web-http-addr "127.0.0.1:$(free_port)" --telemetry-addr "127.0.0.1:$(free_port)" /etc/dex/oidc.yaml 2>&1) \
  || status=$?
[ "$status" = 2 ] || fail "without the upstream's CA in the image's bundle, serve should stop with status 2, not $status: $out"
grep -qi 'certificate\|UnknownIssuer' <<<"$out" || fail "without the CA, the failure is not a certificate error: $out"
ok "without the test CA in the image's bundle, the upstream is refused: $(grep -io '[^"]*UnknownIssuer[^"]*\|invalid peer certificate[^"]*' <<<"$out" | head -n 1)"
cat "$tls/ca.crt" >>"$root/etc/ssl/certs/ca-certificates.crt"
serve_until_ready oidc /etc/dex/oidc.yaml
grep -q 'skipping a connector\|error' "$work/oidc.log" && { cat "$work/oidc.log" >&2; fail "the OIDC connector logged an error"; }
ok "with the test CA in /etc/ssl/certs/ca-certificates.crt, https://idp.test:$idp_port is discovered"
stop_server

log "image: all checks passed"
