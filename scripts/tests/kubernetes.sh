#!/usr/bin/env bash
# Tests the Kubernetes manifests: renders the kustomize base (deploy/kubernetes/base) and the example
# overlay with `kubectl kustomize`, validates every core object strictly against the Kubernetes
# OpenAPI schemas (kubernetes-validate, oldest and newest schemas it ships), validates the
# ServiceMonitor against Prometheus Operator's CRD schema, and checks what no schema can
# (scripts/tests/kubernetes/check.py): Dex's command line, probes, security context, selectors.
# Installs kubernetes-validate into scripts/tests/kubernetes/.venv and the CRD schema with npm.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/apt.sh
here=scripts/tests/kubernetes

command -v kubectl >/dev/null || { log "kubectl is missing (kustomize renders through it): install it first"; exit 1; }
command -v python3 >/dev/null || { log "installing Python"; apt_install python3 python3-venv; }
command -v npm >/dev/null || { log "installing Node.js"; apt_install nodejs npm; }

venv="$here/.venv"
want=$(sed -n 's/^kubernetes-validate==//p' "$here/requirements.txt")
if [ "$("$venv/bin/kubernetes-validate" --version 2>/dev/null | awk '{print $NF}')" != "$want" ]; then
  log "installing kubernetes-validate $want into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
fi
if [ ! -d "$here/node_modules/@kubernetes-models/prometheus-operator" ]; then
  log "installing the ServiceMonitor schema (@kubernetes-models/prometheus-operator)"
  npm install --prefix "$here" --no-audit --no-fund --loglevel=error >/dev/null
fi

work=$(mktemp -d /tmp/tessera-k8s.XXXXXX)
trap 'rm -rf "$work"' EXIT
failed=0
fail() { log "FAIL: $*"; failed=1; }

# test_kustomization DIR NAME [check.py options...]
test_kustomization() {
  local dir=$1 name=$2 out="$work/$2"
  shift 2
  log "rendering $dir (kubectl kustomize)"
  kubectl kustomize "$dir" >"$out.yaml" || { fail "kubectl kustomize $dir failed"; return; }
  log "  $(grep -c '^kind:' "$out.yaml") objects: $(sed -n 's/^kind: //p' "$out.yaml" | sort | tr '\n' ' ')"

  # kubernetes-validate only warns (and exits 0) on a kind it has no schema for, so the CRD goes to its
  # own validator and any warning about the core objects is a failure.
  "$venv/bin/python" - "$out.yaml" "$out.core.yaml" "$out.json" <<'EOF'
import json, sys, yaml
objects = [o for o in yaml.safe_load_all(open(sys.argv[1])) if o]
core = [o for o in objects if "." not in o["apiVersion"].split("/")[0] or o["apiVersion"].split("/")[0].endswith(".k8s.io")]
yaml.safe_dump_all(core, open(sys.argv[2], "w"))
json.dump(objects, open(sys.argv[3], "w"))
EOF
  local version report
  for version in 1.25.0 1.37.0; do
    log "validating the core objects strictly against the Kubernetes $version schemas"
    if ! report=$("$venv/bin/kubernetes-validate" --strict -k "$version" "$out.core.yaml" 2>&1); then
      echo "$report" >&2; fail "$name: kubernetes-validate $version"
    elif grep -qv '^INFO ' <<<"$report"; then
      echo "$report" >&2; fail "$name: kubernetes-validate $version printed warnings (an object it could not check)"
    else
      sed 's/^INFO .* for resource /  valid: /' <<<"$report" >&2
    fi
  done

  log "validating the ServiceMonitor against Prometheus Operator's CRD schema"
  node "$here/servicemonitor.mjs" <"$out.json" || fail "$name: ServiceMonitor schema"

  log "checking Dex's command line, probes, security context and selectors"
  "$venv/bin/python" "$here/check.py" "$out.yaml" "$@" || fail "$name: manifest checks"
}

test_kustomization deploy/kubernetes/base base --image tessera:latest
test_kustomization deploy/kubernetes/examples/overlay overlay --namespace identity \
  --image registry.example.com/tessera:0.1.0

if [ "$failed" != 0 ]; then log "Kubernetes manifests: FAILED"; exit 1; fi
log "Kubernetes manifests: all checks passed"
