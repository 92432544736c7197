// Validates every Kubernetes manifest of a directory against the OpenAPI
// schemas of the Kubernetes API (kubernetes-models, and
// @kubernetes-models/prometheus-operator for the Prometheus Operator's
// kinds): required fields, types, enumerations and formats. The schemas are
// part of the packages: nothing is downloaded at run time.
//
// Unknown fields are not reported by these schemas; deploy/tools/k8scheck
// (strict decoding into the Kubernetes Go types) covers them.
//
//   node k8s-schema.mjs ../../kubernetes
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";

// apiVersion -> module that exports the models of that group/version.
const modules = {
  "v1": "kubernetes-models/v1",
  "apps/v1": "kubernetes-models/apps/v1",
  "monitoring.coreos.com/v1": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1",
};

const dir = process.argv[2] ?? ".";
const files = readdirSync(dir).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml").sort();
let problems = 0;
let checked = 0;
if (files.length === 0) {
  console.error(`k8s-schema: no manifests in ${dir}`);
  process.exit(1);
}
for (const file of files) {
  // YAML 1.1, as Kubernetes reads manifests (0440 is octal there).
  const docs = parseAllDocuments(readFileSync(join(dir, file), "utf8"), { version: "1.1", uniqueKeys: true });
  for (const [i, doc] of docs.entries()) {
    const where = `${file}[${i}]`;
    if (doc.errors.length > 0) {
      for (const e of doc.errors) console.error(`${where}: ${e.message}`);
      problems += doc.errors.length;
      continue;
    }
    const obj = doc.toJS();
    if (obj === null || obj === undefined) continue;
    const mod = modules[obj.apiVersion];
    if (!mod) {
      console.error(`${where}: no schema module for apiVersion ${obj.apiVersion} (add it to k8s-schema.mjs)`);
      problems++;
      continue;
    }
    const models = await import(mod);
    const Model = models[obj.kind];
    if (!Model) {
      console.error(`${where}: ${mod} has no kind ${obj.kind}`);
      problems++;
      continue;
    }
    checked++;
    try {
      new Model(obj).validate();
    } catch (e) {
      const errors = e.errors ?? [{ instancePath: "", message: e.message }];
      for (const err of errors) {
        console.error(`${where}: ${obj.kind} ${obj.metadata?.name ?? ""}: ${err.instancePath || "/"} ${err.message}${err.params ? " " + JSON.stringify(err.params) : ""}`);
      }
      problems += errors.length;
    }
  }
}
if (problems > 0) {
  console.error(`k8s-schema: ${problems} problem(s)`);
  process.exit(1);
}
console.log(`k8s-schema: ${dir}: ${checked} document(s) valid against the Kubernetes OpenAPI schemas`);
