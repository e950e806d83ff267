# Sourced by scripts/test.sh and bench/*.sh: logging and installing Debian packages as root.

log() { printf '==> %s\n' "$*" >&2; }

apt_updated=""
apt_install() {
  if [ "$(id -u)" != 0 ]; then
    log "missing $*: install it (as root: apt-get install -y $*) and run again"; exit 1
  fi
  if [ -z "$apt_updated" ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
