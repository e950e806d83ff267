"""Checks what the schemas cannot: that a rendered tessera manifest runs Dex's command line, probes the
telemetry listener, runs unprivileged, and that its objects point at each other (selectors, port names,
the config Secret). Usage: check.py RENDERED.yaml [--namespace NS] [--image IMAGE]; exits 1 on any failure.
"""

import argparse
import base64
import sys

import yaml

# Dex's Helm chart (charts/dex/templates/deployment.yaml, https and grpc disabled, as by default).
DEX_CHART_ARGS = ["dex", "serve", "--web-http-addr", "0.0.0.0:5556", "--telemetry-addr", "0.0.0.0:5558",
                  "/etc/dex/config.yaml"]
# Dex's chart's port names and numbers (charts/dex/values.yaml and templates/service.yaml).
DEX_PORTS = {"http": 5556, "https": 5554, "grpc": 5557, "telemetry": 5558}
IMAGE_USER = 1001  # deploy/image/Containerfile: USER 1001:1001
KINDS = ["ServiceAccount", "Secret", "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy",
         "ServiceMonitor"]

failures = []


def check(ok, message):
    print(("ok: " if ok else "FAIL: ") + message)
    if not ok:
        failures.append(message)
    return ok


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("rendered")
    parser.add_argument("--namespace")
    parser.add_argument("--image")
    args = parser.parse_args()
    with open(args.rendered) as f:
        objects = [o for o in yaml.safe_load_all(f) if o]
    by_kind = {}
    for o in objects:
        by_kind.setdefault(o["kind"], []).append(o)
    for kind in KINDS:
        if not check(len(by_kind.get(kind, [])) == 1, f"exactly one {kind}"):
            return
    deploy = by_kind["Deployment"][0]
    service = by_kind["Service"][0]
    secret = by_kind["Secret"][0]
    pod = deploy["spec"]["template"]
    spec = pod["spec"]
    pod_labels = pod["metadata"]["labels"]
    check(len(spec["containers"]) == 1, "one container")
    c = spec["containers"][0]

    # Dex's command line, unchanged; no `command`, so the image's CMD is replaced as with Dex's image.
    check(c.get("args") == DEX_CHART_ARGS, f"container args are Dex's chart's: {' '.join(c.get('args', []))}")
    check("command" not in c, "no `command` override (the image has no ENTRYPOINT)")
    if args.image:
        check(c["image"] == args.image, f"image is {args.image} (found {c['image']})")

    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    check(ports == DEX_PORTS, f"container ports are Dex's: {ports}")
    svc_ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
    check(svc_ports == {name: (number, name) for name, number in DEX_PORTS.items()},
          f"Service ports are Dex's chart's, each to the container port of its name: {svc_ports}")
    check(matches(service["spec"]["selector"], pod_labels), "Service selects the pods")
    check(matches(deploy["spec"]["selector"]["matchLabels"], pod_labels), "Deployment selects its pods")

    # Probes on the telemetry listener, as Dex's chart.
    for probe, path in [("livenessProbe", "/healthz/live"), ("readinessProbe", "/healthz/ready"),
                        ("startupProbe", "/healthz/live")]:
        get = c.get(probe, {}).get("httpGet", {})
        check(get.get("path") == path and get.get("port") == "telemetry",
              f"{probe} is GET {path} on the telemetry port (found {get})")
    check("--telemetry-addr" in c["args"], "the telemetry listener the probes use is switched on")

    # Unprivileged and read-only.
    psc, csc = spec.get("securityContext", {}), c.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True and csc.get("runAsNonRoot") is True, "runAsNonRoot")
    check(psc.get("runAsUser") == IMAGE_USER and csc.get("runAsUser") == IMAGE_USER,
          f"runs as the image's user {IMAGE_USER}")
    check(csc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem")
    check(csc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation: false")
    check(csc.get("capabilities", {}).get("drop") == ["ALL"], "every capability dropped")
    check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "seccomp RuntimeDefault")
    check(spec.get("automountServiceAccountToken") is False, "no service account token mounted")
    check(spec.get("serviceAccountName") == by_kind["ServiceAccount"][0]["metadata"]["name"],
          "runs under the ServiceAccount of the manifest")
    c.setdefault("resources", {})
    check(bool(c["resources"].get("requests")) and bool(c["resources"].get("limits", {}).get("memory")),
          "resource requests and a memory limit")

    # The config Secret is mounted where the command line reads it, and holds a config.yaml.
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    config_mount = mounts.get("/etc/dex", {})
    config_volume = volumes.get(config_mount.get("name"), {})
    check(config_mount.get("readOnly") is True, "the config is mounted read-only at /etc/dex")
    check(config_volume.get("secret", {}).get("secretName") == secret["metadata"]["name"],
          f"the /etc/dex volume is the Secret {secret['metadata']['name']}")
    config = secret.get("data", {}).get("config.yaml")
    if check(config is not None, "the Secret holds config.yaml"):
        parsed = yaml.safe_load(base64.b64decode(config))
        check(isinstance(parsed, dict) and "issuer" in parsed and "storage" in parsed,
              "config.yaml parses, with an issuer and a storage")
    for path in ["/tmp"]:
        check("emptyDir" in volumes.get(mounts.get(path, {}).get("name"), {}),
              f"{path} is writable (an emptyDir) under the read-only root")
    for env in c.get("env", []):
        ref = env.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            check(bool(ref.get("name")) and bool(ref.get("key")), f"env {env['name']} names a Secret and a key")

    # The other objects select the same pods, by the same port names.
    pdb = by_kind["PodDisruptionBudget"][0]["spec"]
    check(matches(pdb["selector"]["matchLabels"], pod_labels), "PodDisruptionBudget selects the pods")
    check(("maxUnavailable" in pdb) != ("minAvailable" in pdb), "PodDisruptionBudget sets one bound")
    check(deploy["spec"]["replicas"] > 1, f"{deploy['spec']['replicas']} replicas, so the budget can be met")
    netpol = by_kind["NetworkPolicy"][0]["spec"]
    check(matches(netpol["podSelector"]["matchLabels"], pod_labels), "NetworkPolicy selects the pods")
    allowed = {p["port"] for rule in netpol.get("ingress", []) for p in rule.get("ports", [])}
    check(allowed == set(DEX_PORTS), f"NetworkPolicy admits the four ports by name: {sorted(allowed)}")
    monitor = by_kind["ServiceMonitor"][0]["spec"]
    check(matches(monitor["selector"]["matchLabels"], service["metadata"].get("labels", {})),
          "ServiceMonitor selects the Service by its labels")
    endpoints = monitor.get("endpoints", [])
    check(len(endpoints) == 1 and endpoints[0].get("port") == "telemetry" and endpoints[0].get("path") == "/metrics",
          "ServiceMonitor scrapes /metrics on the Service's telemetry port")
    known = {"port", "path", "scheme", "interval", "scrapeTimeout"}
    check(set(endpoints[0]) <= known, f"ServiceMonitor endpoint fields are the CRD's: {sorted(endpoints[0])}")
    check("namespaceSelector" not in monitor, "ServiceMonitor looks in its own namespace (follows `namespace:`)")

    if args.namespace:
        # Every object of the base is namespaced.
        wrong = [f"{o['kind']}/{o['metadata']['name']}" for o in objects
                 if o["metadata"].get("namespace") != args.namespace]
        check(not wrong, f"every object in namespace {args.namespace}" + (f" (not: {wrong})" if wrong else ""))


if __name__ == "__main__":
    main()
    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        sys.exit(1)
