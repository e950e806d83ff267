// Validates every ServiceMonitor in a rendered manifest (stdin, JSON list of objects) against the schema
// that @kubernetes-models/prometheus-operator compiled from Prometheus Operator's CRD: required fields,
// types and enumerations (the CRD's schema, like most CRDs', does not reject unknown fields; check.py
// checks the fields tessera's ServiceMonitor relies on).
import { readFileSync } from "node:fs";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";

const objects = JSON.parse(readFileSync(0, "utf8"));
const monitors = objects.filter((o) => o.kind === "ServiceMonitor");
if (monitors.length === 0) {
  console.error("FAIL: no ServiceMonitor in the rendered manifest");
  process.exit(1);
}
let failed = 0;
for (const monitor of monitors) {
  if (monitor.apiVersion !== ServiceMonitor.apiVersion) {
    console.error(`FAIL: ServiceMonitor ${monitor.metadata?.name}: apiVersion ${monitor.apiVersion}, expected ${ServiceMonitor.apiVersion}`);
    failed++;
    continue;
  }
  try {
    new ServiceMonitor(monitor).validate();
    console.log(`ok: servicemonitor/${monitor.metadata.name} matches the monitoring.coreos.com/v1 CRD schema`);
  } catch (err) {
    console.error(`FAIL: servicemonitor/${monitor.metadata?.name}: ${err.message}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
