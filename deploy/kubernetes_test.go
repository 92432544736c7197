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

	"go.yaml.in/yaml/v3"

	"github.com/ocamba-rotator/rotator/internal/config"
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

// samplePodName is a name that the Deployment's ReplicaSet could give one of
// its Pods: <deployment>-<pod-template-hash>-<5 random characters>.
func samplePodName(dep manifest, random string) string {
	return dep.name() + "-5d8f9c7b4-" + random
}

// rotatorEnv is the environment of the rotator container of the Deployment
// in a Pod named podName: its env entries, with the downward API's
// metadata.name and metadata.namespace resolved. Any other source of a
// variable fails the test: the checks would not know its value.
func rotatorEnv(t *testing.T, container map[string]any, podName string) func(string) string {
	t.Helper()
	vars := map[string]string{}
	for _, e := range list(container, "env") {
		name := str(e, "name")
		switch field := str(e, "valueFrom", "fieldRef", "fieldPath"); {
		case dig(e, "value") != nil:
			vars[name] = fmt.Sprint(dig(e, "value"))
		case field == "metadata.name":
			vars[name] = podName
		case field == "metadata.namespace":
			vars[name] = "default"
		default:
			t.Fatalf("container rotator: env %s: a source these checks cannot resolve: %v", name, e)
		}
	}
	return env(vars)
}

// rotatorContainer is the rotator container of the Deployment.
func rotatorContainer(t *testing.T, dep manifest) map[string]any {
	t.Helper()
	for _, c := range list(dep.doc, "spec", "template", "spec", "containers") {
		if str(c, "name") == "rotator" {
			return c.(map[string]any)
		}
	}
	t.Fatal("Deployment: no container named rotator")
	return nil
}

// k8sConfigIn is the configuration of the ConfigMap as the rotator sidecar
// of a Pod named podName loads it (${VAR} expanded from the container's
// environment), validated.
func k8sConfigIn(t *testing.T, podName string) *config.Config {
	t.Helper()
	ms := k8sManifests(t)
	dep := findManifest(t, ms, "Deployment")
	cm := findManifest(t, ms, "ConfigMap")
	return parseConfig(t, "ConfigMap "+cm.name()+" in Pod "+podName, []byte(str(cm.doc, "data", "config.yaml")),
		rotatorEnv(t, rotatorContainer(t, dep), podName))
}

// k8sConfig is k8sConfigIn of a typical Pod name.
func k8sConfig(t *testing.T) *config.Config {
	t.Helper()
	return k8sConfigIn(t, samplePodName(findManifest(t, k8sManifests(t), "Deployment"), "x2x9z"))
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
	cfg := parseConfig(t, "ConfigMap "+cm.name()+" "+key, []byte(data), rotatorEnv(t, rc, samplePodName(dep, "x2x9z")))

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
	// With ha.mode vault the state is in Vault, and state.path is not used.
	files := map[string]string{"state.path": cfg.State.Path, "audit.path": cfg.Audit.Path}
	if cfg.HA.Enabled() {
		delete(files, "state.path")
	}
	for what, file := range files {
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

// TestKubernetesHA: the sidecars of the Deployment's replicas share their
// state and a lease per integration through Vault (ha.mode vault,
// docs/ha.md): more than one replica, an identity per Pod from the downward
// API, no state.path (not used in this mode) and no volume left that nothing
// writes to.
func TestKubernetesHA(t *testing.T) {
	ms := k8sManifests(t)
	dep := findManifest(t, ms, "Deployment")
	cm := findManifest(t, ms, "ConfigMap")
	rc := rotatorContainer(t, dep)
	cfg := k8sConfig(t)
	if !cfg.HA.Enabled() {
		t.Fatalf("ConfigMap: ha.mode %q, want vault: every replica runs a sidecar, and they must share their state", cfg.HA.Mode)
	}
	replicas, ok := dig(dep.doc, "spec", "replicas").(int)
	if !ok {
		replicas = 1 // the API's default
	}
	if replicas < 2 {
		t.Errorf("Deployment: replicas %d: with ha.mode vault the example should show several sidecars (docs/ha.md: 3)", replicas)
	}

	// One identity per Pod, from its name: the holder that the other
	// sidecars report. Any name a ReplicaSet gives a Pod (at most 63
	// characters: generateName keeps 58 of the base, plus 5 random ones)
	// is a valid ha.identity.
	a, b := samplePodName(dep, "x2x9z"), samplePodName(dep, "7kq4m")
	ida, idb := k8sConfigIn(t, a).HA.Identity, k8sConfigIn(t, b).HA.Identity
	if ida != a || idb != b {
		t.Errorf("ha.identity in Pods %s and %s: %q and %q, want the Pod names (${POD_NAME} from metadata.name)", a, b, ida, idb)
	}
	longest := strings.Repeat("a-1", 21)
	if id := k8sConfigIn(t, longest).HA.Identity; id != longest {
		t.Errorf("ha.identity in a Pod named %s: %q", longest, id)
	}

	// state.path is ignored with ha.mode vault: the example does not set it.
	var raw map[string]any
	if err := yaml.Unmarshal([]byte(str(cm.doc, "data", "config.yaml")), &raw); err != nil {
		t.Fatal(err)
	}
	if _, ok := raw["state"]; ok {
		t.Error("ConfigMap: sets state, which ha.mode vault does not use; leave it out")
	}

	// Every emptyDir of the sidecar holds a file the configuration writes.
	volumes := map[string]map[string]any{}
	for _, v := range list(dep.doc, "spec", "template", "spec", "volumes") {
		volumes[str(v, "name")] = v.(map[string]any)
	}
	files := []string{cfg.Audit.Path}
	if !cfg.HA.Enabled() {
		files = append(files, cfg.State.Path)
	}
	for _, vm := range list(rc, "volumeMounts") {
		if _, ok := volumes[str(vm, "name")]["emptyDir"]; !ok {
			continue
		}
		mp := strings.TrimSuffix(str(vm, "mountPath"), "/") + "/"
		used := false
		for _, f := range files {
			used = used || f != "" && strings.HasPrefix(f, mp)
		}
		if !used {
			t.Errorf("container rotator: the emptyDir %s at %s holds no file of the configuration", str(vm, "name"), mp)
		}
	}
}
