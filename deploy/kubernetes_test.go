package deploy_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const k8sDir = "deploy/kubernetes/"

// notInKustomization are the manifests that kustomization.yaml leaves out
// on purpose (docs/operations.md says why).
var notInKustomization = map[string]string{
	"admin-token-secret.example.yaml": "created with kubectl create secret and a random token",
	"podmonitor.yaml":                 "needs the Prometheus Operator's CRDs",
}

type manifest struct {
	file string
	doc  map[string]any
}

func (m manifest) kind() string { return str(m.doc, "kind") }
func (m manifest) name() string { return str(m.doc, "metadata", "name") }

func k8sManifests(t *testing.T) []manifest {
	t.Helper()
	files, err := filepath.Glob(path(k8sDir + "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", k8sDir, err)
	}
	var out []manifest
	for _, f := range files {
		base := filepath.Base(f)
		for _, d := range yamlDocs(t, k8sDir+base) {
			out = append(out, manifest{file: base, doc: d})
		}
	}
	return out
}

func findManifest(t *testing.T, ms []manifest, kind string) manifest {
	t.Helper()
	var found []manifest
	for _, m := range ms {
		if m.kind() == kind {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s: want exactly one %s, got %d", k8sDir, kind, len(found))
	}
	return found[0]
}

func TestKubernetesManifestsWellFormed(t *testing.T) {
	ms := k8sManifests(t)
	seen := map[string]string{}
	for _, m := range ms {
		if m.kind() == "Kustomization" {
			continue
		}
		if str(m.doc, "apiVersion") == "" || m.kind() == "" || m.name() == "" {
			t.Errorf("%s: a document lacks apiVersion, kind or metadata.name", m.file)
			continue
		}
		if ns := str(m.doc, "metadata", "namespace"); ns != "" {
			t.Errorf("%s: %s/%s sets namespace %q; leave it to kubectl -n", m.file, m.kind(), m.name(), ns)
		}
		key := m.kind() + "/" + m.name()
		if f, dup := seen[key]; dup {
			t.Errorf("%s: %s is also defined in %s", m.file, key, f)
		}
		seen[key] = m.file
	}

	// kustomization.yaml lists every manifest but the documented exceptions.
	k := findManifest(t, ms, "Kustomization")
	var resources []string
	for _, r := range list(k.doc, "resources") {
		s, _ := r.(string)
		resources = append(resources, s)
		if _, err := os.Stat(path(k8sDir + s)); err != nil {
			t.Errorf("kustomization.yaml: resource %s: %v", s, err)
		}
		if why, ok := notInKustomization[s]; ok {
			t.Errorf("kustomization.yaml lists %s, which stays out of it: %s", s, why)
		}
	}
	for _, m := range ms {
		if m.file == "kustomization.yaml" {
			continue
		}
		if _, ok := notInKustomization[m.file]; !ok && !slices.Contains(resources, m.file) {
			t.Errorf("kustomization.yaml does not list %s", m.file)
		}
	}
	for _, img := range list(k.doc, "images") {
		if !strings.Contains(string(readFile(t, k8sDir+"deployment.yaml")), "image: "+str(img, "name")+":") {
			t.Errorf("kustomization.yaml: images[].name %s is not an image of deployment.yaml", str(img, "name"))
		}
	}
}

// podSpec bundles what TestKubernetesSidecar looks at.
type podSpec struct {
	spec       map[string]any
	volumes    map[string]map[string]any // by name
	containers map[string]map[string]any // by name
}

func (p podSpec) mountFor(t *testing.T, container, file string) (volume map[string]any, sub string) {
	t.Helper()
	var best string
	for _, vm := range list(p.containers[container], "volumeMounts") {
		mp := strings.TrimSuffix(str(vm, "mountPath"), "/")
		if strings.HasPrefix(file, mp+"/") && len(mp) > len(best) {
			best, volume = mp, p.volumes[str(vm, "name")]
			if volume == nil {
				t.Errorf("container %s mounts %s, which is not a volume of the Pod", container, str(vm, "name"))
			}
		}
	}
	if best == "" {
		t.Fatalf("container %s: %s is on no volume mount", container, file)
	}
	return volume, strings.TrimPrefix(file, best+"/")
}

func intOrString(v any) string {
	switch v := v.(type) {
	case int:
		return strconv.Itoa(v)
	case string:
		return v
	default:
		return fmt.Sprint(v)
	}
}

// TestKubernetesSidecar checks the Deployment against rotator's image and
// the configuration in the ConfigMap: the config, token, JWT and state paths
// are on the right volumes, the probes and scrape settings hit the admin
// port, the sandbox is tight, and the config passes rotator's validation.
func TestKubernetesSidecar(t *testing.T) {
	ms := k8sManifests(t)
	dep := findManifest(t, ms, "Deployment")
	sa := findManifest(t, ms, "ServiceAccount")
	cm := findManifest(t, ms, "ConfigMap")
	secret := findManifest(t, ms, "Secret")

	if str(dep.doc, "apiVersion") != "apps/v1" {
		t.Errorf("Deployment apiVersion %s, want apps/v1", str(dep.doc, "apiVersion"))
	}
	tmpl := mapping(dep.doc, "spec", "template")
	labels := mapping(tmpl, "metadata", "labels")
	for k, v := range mapping(dep.doc, "spec", "selector", "matchLabels") {
		if labels[k] != v {
			t.Errorf("Deployment: selector %s=%v does not match the Pod template's labels", k, v)
		}
	}
	p := podSpec{spec: mapping(tmpl, "spec"), volumes: map[string]map[string]any{}, containers: map[string]map[string]any{}}
	for _, v := range list(p.spec, "volumes") {
		p.volumes[str(v, "name")] = v.(map[string]any)
	}
	for _, c := range list(p.spec, "containers") {
		p.containers[str(c, "name")] = c.(map[string]any)
	}
	if len(p.containers) < 2 {
		t.Fatalf("Deployment: %d container(s), want the application and the rotator sidecar", len(p.containers))
	}
	if str(p.spec, "serviceAccountName") != sa.name() {
		t.Errorf("Deployment: serviceAccountName %q, want the ServiceAccount %q", str(p.spec, "serviceAccountName"), sa.name())
	}
	if dig(p.spec, "securityContext", "runAsNonRoot") != true {
		t.Error("Deployment: the Pod's securityContext.runAsNonRoot is not true")
	}
	if uid, _ := dig(p.spec, "securityContext", "runAsUser").(int); uid != dockerUser(t) {
		t.Errorf("Deployment: runAsUser %d, want the image's USER %d", uid, dockerUser(t))
	}

	// Every container: an image, resource requests, a locked-down sandbox.
	for name, c := range p.containers {
		if str(c, "image") == "" {
			t.Errorf("container %s: no image", name)
		}
		for _, r := range []string{"cpu", "memory"} {
			if dig(c, "resources", "requests", r) == nil {
				t.Errorf("container %s: no resources.requests.%s", name, r)
			}
		}
		if dig(c, "resources", "limits", "memory") == nil {
			t.Errorf("container %s: no resources.limits.memory", name)
		}
		if dig(c, "securityContext", "readOnlyRootFilesystem") != true {
			t.Errorf("container %s: readOnlyRootFilesystem is not true", name)
		}
		if dig(c, "securityContext", "allowPrivilegeEscalation") != false {
			t.Errorf("container %s: allowPrivilegeEscalation is not false", name)
		}
		if caps := list(c, "securityContext", "capabilities", "drop"); !slices.Contains(caps, any("ALL")) {
			t.Errorf("container %s: capabilities.drop %v lacks ALL", name, caps)
		}
	}

	rc := p.containers["rotator"]
	if rc == nil {
		t.Fatal("Deployment: no container named rotator")
	}
	if !strings.Contains(str(rc, "image"), "rotator") {
		t.Errorf("container rotator: image %s", str(rc, "image"))
	}
	var args []string
	for _, a := range list(rc, "args") {
		args = append(args, fmt.Sprint(a))
	}
	if len(args) == 0 || args[0] != "run" {
		t.Fatalf("container rotator: args %v, want run ...", args)
	}
	cfgPath := configPath // the image's $ROTATOR_CONFIG
	if i := slices.Index(args, "--config"); i >= 0 && i+1 < len(args) {
		cfgPath = args[i+1]
	}
	shutdown := 30 * time.Second
	if i := slices.Index(args, "--shutdown-timeout"); i >= 0 && i+1 < len(args) {
		d, err := time.ParseDuration(args[i+1])
		if err != nil {
			t.Fatalf("container rotator: --shutdown-timeout %q: %v", args[i+1], err)
		}
		shutdown = d
	}
	if grace, _ := dig(p.spec, "terminationGracePeriodSeconds").(int); time.Duration(grace)*time.Second <= shutdown {
		t.Errorf("Deployment: terminationGracePeriodSeconds %d, want more than --shutdown-timeout %s", grace, shutdown)
	}

	// The configuration: mounted from the ConfigMap, and valid.
	vol, key := p.mountFor(t, "rotator", cfgPath)
	if str(vol, "configMap", "name") != cm.name() {
		t.Fatalf("container rotator: %s is not on a volume of the ConfigMap %s", cfgPath, cm.name())
	}
	data := str(cm.doc, "data", key)
	if data == "" {
		t.Fatalf("ConfigMap %s has no key %q (the file %s)", cm.name(), key, cfgPath)
	}
	cfg := parseConfig(t, "ConfigMap "+cm.name()+" "+key, []byte(data), env(nil))

	// Vault: Kubernetes auth, with the projected token for the audience the
	// docs bind the Vault role to.
	if cfg.Vault.Auth.Method != "kubernetes" || cfg.Vault.Auth.Role == "" {
		t.Errorf("config: vault.auth method %q role %q, want kubernetes with a role", cfg.Vault.Auth.Method, cfg.Vault.Auth.Role)
	}
	vol, key = p.mountFor(t, "rotator", cfg.Vault.Auth.JWTFile)
	found := false
	for _, s := range list(vol, "projected", "sources") {
		if sat := mapping(s, "serviceAccountToken"); sat != nil && str(sat, "path") == key {
			found = true
			if aud := str(sat, "audience"); aud != vaultAudience {
				t.Errorf("projected service account token audience %q, want %q (the Vault role's audience)", aud, vaultAudience)
			}
		}
	}
	if !found {
		t.Errorf("vault.auth.jwt_file %s is not a projected service account token", cfg.Vault.Auth.JWTFile)
	}

	// The admin token: from the Secret.
	vol, key = p.mountFor(t, "rotator", cfg.Admin.TokenFile)
	if str(vol, "secret", "secretName") != secret.name() {
		t.Errorf("admin.token_file %s is not on a volume of the Secret %s", cfg.Admin.TokenFile, secret.name())
	}
	if _, ok := mapping(secret.doc, "stringData")[key]; !ok {
		t.Errorf("Secret %s has no key %q (admin.token_file)", secret.name(), key)
	}
	if !strings.Contains(docsOperations(t), "create secret generic "+secret.name()) {
		t.Errorf("docs/operations.md does not show how to create the Secret %s", secret.name())
	}

	// State and audit log: on an emptyDir (the root file system is read-only).
	for what, file := range map[string]string{"state.path": cfg.State.Path, "audit.path": cfg.Audit.Path} {
		if file == "" {
			continue
		}
		if vol, _ := p.mountFor(t, "rotator", file); vol == nil || mapping(vol, "emptyDir") == nil && dig(vol, "emptyDir") == nil {
			t.Errorf("%s %s is not on an emptyDir volume", what, file)
		}
	}

	// The admin port: listened on all interfaces, declared, probed, scraped.
	host, port, err := net.SplitHostPort(cfg.Admin.Listen)
	if err != nil {
		t.Fatalf("admin.listen %q: %v", cfg.Admin.Listen, err)
	}
	if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		t.Errorf("admin.listen %s is loopback: the kubelet's probes and Prometheus cannot reach it", cfg.Admin.Listen)
	}
	var portName string
	for _, pt := range list(rc, "ports") {
		if intOrString(dig(pt, "containerPort")) == port {
			portName = str(pt, "name")
		}
	}
	if portName == "" {
		t.Fatalf("container rotator declares no containerPort %s (admin.listen)", port)
	}
	for probe, wantPath := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		hg := mapping(rc, probe, "httpGet")
		if hg == nil {
			t.Errorf("container rotator: no %s.httpGet", probe)
			continue
		}
		if str(hg, "path") != wantPath {
			t.Errorf("container rotator: %s path %s, want %s", probe, str(hg, "path"), wantPath)
		}
		if pp := intOrString(hg["port"]); pp != port && pp != portName {
			t.Errorf("container rotator: %s port %s, want %s or %s", probe, pp, port, portName)
		}
	}
	ann := mapping(tmpl, "metadata", "annotations")
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != port || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("Pod annotations %v: want prometheus.io/scrape \"true\", port %q, path /metrics", ann, port)
	}
	for _, m := range ms {
		if m.kind() != "PodMonitor" {
			continue
		}
		for k, v := range mapping(m.doc, "spec", "selector", "matchLabels") {
			if labels[k] != v {
				t.Errorf("PodMonitor %s: selector %s=%v does not match the Pod's labels", m.name(), k, v)
			}
		}
		for _, ep := range list(m.doc, "spec", "podMetricsEndpoints") {
			if str(ep, "port") != portName || str(ep, "path") != "/metrics" {
				t.Errorf("PodMonitor %s: endpoint port %s path %s, want %s /metrics", m.name(), str(ep, "port"), str(ep, "path"), portName)
			}
		}
	}

	// The Vault role of the docs is bound to this service account.
	if docs := docsOperations(t); !strings.Contains(docs, "bound_service_account_names="+sa.name()) {
		t.Errorf("docs/operations.md: the Vault Kubernetes role is not bound to the service account %s", sa.name())
	}
}
