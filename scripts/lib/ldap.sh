# Sourced by scripts/test.sh: a throwaway OpenLDAP (slapd) on a free loopback port, seeded from
# scripts/ldap/seed.ldif, with StartTLS from a test CA made on the spot. Needs apt.sh and postgres.sh
# (for free_port); sets LDAP_URL and LDAP_CA; ldap_stop stops it.

ldap_start() {
  local scratch=$1/ldap port
  if ! command -v slapd >/dev/null 2>&1 && [ ! -x /usr/sbin/slapd ]; then
    log "installing slapd"
    if [ "$(id -u)" = 0 ]; then echo 'slapd slapd/no_configuration boolean true' | debconf-set-selections; fi
    apt_install slapd ldap-utils
  fi
  command -v openssl >/dev/null 2>&1 || apt_install openssl
  mkdir -p "$scratch/data"
  # A CA and a server certificate for 127.0.0.1, valid for a day.
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=tessera test CA" \
    -keyout "$scratch/ca.key" -out "$scratch/ca.crt" >/dev/null 2>&1
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$scratch/server.key" -out "$scratch/server.csr" >/dev/null 2>&1
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$scratch/san.ext"
  openssl x509 -req -in "$scratch/server.csr" -CA "$scratch/ca.crt" -CAkey "$scratch/ca.key" -CAcreateserial \
    -days 1 -extfile "$scratch/san.ext" -out "$scratch/server.crt" >/dev/null 2>&1
  cat > "$scratch/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
pidfile $scratch/slapd.pid
argsfile $scratch/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
TLSCACertificateFile $scratch/ca.crt
TLSCertificateFile $scratch/server.crt
TLSCertificateKeyFile $scratch/server.key
database mdb
maxsize 104857600
suffix "dc=example,dc=org"
rootdn "cn=admin,dc=example,dc=org"
rootpw admin
directory $scratch/data
index objectClass eq
index uid,cn,mail,member eq
access to attrs=userPassword by self write by anonymous auth by * none
access to * by * read
CONF
  local slapadd slapd_bin
  slapadd=$(command -v slapadd || echo /usr/sbin/slapadd)
  slapd_bin=$(command -v slapd || echo /usr/sbin/slapd)
  "$slapadd" -q -f "$scratch/slapd.conf" -l scripts/ldap/seed.ldif
  port=$(free_port)
  "$slapd_bin" -f "$scratch/slapd.conf" -h "ldap://127.0.0.1:$port/"
  for _ in $(seq 100); do
    ldapsearch -x -H "ldap://127.0.0.1:$port" -b dc=example,dc=org -s base dn >/dev/null 2>&1 && break
    sleep 0.1
  done
  LDAP_URL="ldap://127.0.0.1:$port"
  LDAP_CA="$scratch/ca.crt"
  log "slapd is up: $LDAP_URL"
}

ldap_stop() {
  local pidfile=$1/ldap/slapd.pid
  if [ -f "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; fi
}
