#!/usr/bin/env bash
# Builds tessera's container image: scripts/image.sh [TAG]   (TAG defaults to tessera:latest)
#
# No base image can be pulled, so the image is assembled FROM scratch around a release build: the
# (stripped) dynamic binary with its loader and the shared libraries `ldd` lists, what glibc reads at
# run time (nsswitch.conf, hosts, passwd, group), the CA certificates, the web templates and a default
# configuration. deploy/image/Containerfile says what goes where.
#
#   PROFILE=image        the cargo profile to build. `image` is `production` (thin LTO, one codegen
#                        unit) optimised for size (`opt-level = "s"`), which keeps the image under the
#                        25 MB issue 15 set: with MySQL, etcd and CEL the speed-optimised `production`
#                        binary alone is 25.8 MB (image 29.2 MB). PROFILE=production builds the faster one.
#
# Needs podman; as root, installs it (and ca-certificates) with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/apt.sh

tag=${1:-tessera:latest}
profile=${PROFILE:-image}
command -v cargo >/dev/null || { log "cargo is missing: install the Rust toolchain first"; exit 1; }
command -v podman >/dev/null || { log "installing podman"; apt_install podman; }
certs=/etc/ssl/certs/ca-certificates.crt
[ -s "$certs" ] || { log "installing ca-certificates"; apt_install ca-certificates; }

log "building tessera with cargo profile '$profile'"
cargo build --locked --profile "$profile" -p tessera
case "$profile" in dev | test) out=debug ;; bench) out=release ;; *) out=$profile ;; esac
bin="${CARGO_TARGET_DIR:-$PWD/target}/$out/tessera"
[ -x "$bin" ] || { log "no binary at $bin after the build"; exit 1; }

ctx=$(mktemp -d /tmp/tessera-image.XXXXXX)
trap 'rm -rf "$ctx"' EXIT
root="$ctx/rootfs"
log "assembling the image's filesystem in $ctx"

install -d -m 0755 "$root/usr/local/bin" "$root/etc/dex" "$root/etc/ssl/certs" "$root/srv/dex" "$root/var"
install -d -m 1777 "$root/tmp"
# Symbols are a third of the binary; the image keeps none (a crash still logs its message).
strip --strip-all -o "$root/usr/local/bin/tessera" "$bin"
chmod 0755 "$root/usr/local/bin/tessera"
# Dex's command lines (`dex serve ...`) run unchanged; clap's command name is fixed, so the binary
# behaves the same under either name.
ln -s tessera "$root/usr/local/bin/dex"

# The dynamic loader and every library, at the paths ldd resolves them to (the loader at the binary's
# PT_INTERP path, /lib64/ld-linux-x86-64.so.2). glibc 2.34+ holds the `files` and `dns` name services
# and libresolv inside libc, so host-name resolution needs no libnss_*.so, only /etc/nsswitch.conf.
libs=$(ldd "$bin") || { log "ldd failed on $bin"; exit 1; }
if grep -q 'not found' <<<"$libs"; then log "unresolved libraries:"; echo "$libs" >&2; exit 1; fi
while read -r path; do
  install -D -m 0755 "$(readlink -f "$path")" "$root$path"
  log "  + $path"
done < <(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$libs" | sort -u)
[ -e "$root/lib64/ld-linux-x86-64.so.2" ] || { log "ldd listed no dynamic loader"; exit 1; }

install -m 0644 deploy/image/etc/passwd deploy/image/etc/group deploy/image/etc/nsswitch.conf \
  deploy/image/etc/hosts "$root/etc/"
install -m 0644 "$certs" "$root/etc/ssl/certs/ca-certificates.crt"
install -m 0644 deploy/image/config.docker.yaml "$root/etc/dex/config.docker.yaml"
# The templates, static assets and themes are also embedded in the binary; this copy, where Dex's image
# keeps its own, serves configurations with `frontend.dir: /srv/dex/web` and is a starting point for
# custom templates.
cp -R web "$root/srv/dex/web"
find "$root/srv/dex/web" -type d -exec chmod 0755 {} + -o -type f -exec chmod 0644 {} +

# /var/dex, the default SQLite directory, is the one place the unprivileged user writes.
install -d -m 0750 "$ctx/var-dex"

version=$("$bin" version | sed -n 's/^tessera Version: //p')
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
log "building image $tag (tessera $version, $revision)"
podman build --quiet --layers=false --file deploy/image/Containerfile --tag "$tag" \
  --build-arg VERSION="$version" --build-arg REVISION="$revision" \
  --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$ctx" >/dev/null

size=$(podman image inspect --format '{{.Size}}' "$tag")
log "built $tag: $size bytes ($((size / 1000000)) MB); binary $(stat -c %s "$root/usr/local/bin/tessera") bytes stripped"
