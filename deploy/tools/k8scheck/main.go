// Command k8scheck checks rotator's Kubernetes manifests offline, against
// the Kubernetes API's own Go types (k8s.io/api, and the Prometheus
// Operator's for PodMonitor):
//
//   - every document decodes strictly into the type of its apiVersion and
//     kind: an unknown or misspelt field, a duplicate field, a wrong type or
//     an unparsable quantity is an error (as kubectl --validate=strict);
//   - names, labels, ports, ConfigMap and Secret keys follow the API
//     server's rules (k8s.io/apimachinery/pkg/util/validation), volume
//     mounts and named probe ports refer to what exists, requests do not
//     exceed limits;
//   - kustomization.yaml decodes strictly, and `kustomize build` of the
//     directory (sigs.k8s.io/kustomize/api) succeeds and yields documents
//     that pass the same checks.
//
// It is a separate module so that rotator's own module stays small; run it
// as scripts/check-deploy.sh does:
//
//	cd deploy/tools/k8scheck && go run . ../../kubernetes
package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	kustypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// newObject returns the Go type of an apiVersion and kind.
func newObject(apiVersion, kind string) (any, error) {
	switch apiVersion + " " + kind {
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, nil
	case "v1 Secret":
		return &corev1.Secret{}, nil
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}, nil
	case "v1 Service":
		return &corev1.Service{}, nil
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, nil
	case "monitoring.coreos.com/v1 PodMonitor":
		return &monitoringv1.PodMonitor{}, nil
	case "monitoring.coreos.com/v1 ServiceMonitor":
		return &monitoringv1.ServiceMonitor{}, nil
	}
	return nil, fmt.Errorf("apiVersion %q kind %q: k8scheck has no type for it (add one to newObject)", apiVersion, kind)
}

type checker struct {
	problems []string
	docs     int
}

func (c *checker) errorf(where, format string, args ...any) {
	c.problems = append(c.problems, where+": "+fmt.Sprintf(format, args...))
}

// documents splits a YAML stream into its non-empty documents.
func documents(data []byte) ([][]byte, error) {
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		var probe map[string]any
		if err := yaml.Unmarshal(doc, &probe); err != nil {
			return nil, err
		}
		if len(probe) > 0 {
			out = append(out, doc)
		}
	}
}

func (c *checker) document(where string, doc []byte) {
	c.docs++
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		c.errorf(where, "%v", err)
		return
	}
	obj, err := newObject(tm.APIVersion, tm.Kind)
	if err != nil {
		c.errorf(where, "%v", err)
		return
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		c.errorf(where, "%s: %v", tm.Kind, err)
		return
	}
	if m, ok := obj.(metav1.Object); ok {
		where = fmt.Sprintf("%s: %s %s", where, tm.Kind, m.GetName())
		c.meta(where, m)
	}
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		for k := range o.Data {
			c.msgs(where, "data key "+k, validation.IsConfigMapKey(k))
		}
	case *corev1.Secret:
		for k := range o.Data {
			c.msgs(where, "data key "+k, validation.IsConfigMapKey(k))
		}
		for k := range o.StringData {
			c.msgs(where, "stringData key "+k, validation.IsConfigMapKey(k))
		}
	case *appsv1.Deployment:
		c.deployment(where, o)
	case *monitoringv1.PodMonitor:
		if len(o.Spec.PodMetricsEndpoints) == 0 {
			c.errorf(where, "no podMetricsEndpoints")
		}
	}
}

func (c *checker) msgs(where, what string, msgs []string) {
	for _, m := range msgs {
		c.errorf(where, "%s: %s", what, m)
	}
}

func (c *checker) meta(where string, m metav1.Object) {
	if m.GetName() == "" {
		c.errorf(where, "metadata.name is empty")
	}
	c.msgs(where, "metadata.name", validation.IsDNS1123Subdomain(m.GetName()))
	c.labels(where, "label", m.GetLabels())
	for k := range m.GetAnnotations() {
		c.msgs(where, "annotation "+k, validation.IsQualifiedName(k))
	}
}

func (c *checker) labels(where, what string, labels map[string]string) {
	for k, v := range labels {
		c.msgs(where, what+" "+k, validation.IsQualifiedName(k))
		c.msgs(where, what+" "+k+" value", validation.IsValidLabelValue(v))
	}
}

func (c *checker) deployment(where string, d *appsv1.Deployment) {
	if d.Spec.Selector == nil || len(d.Spec.Selector.MatchLabels) == 0 {
		c.errorf(where, "spec.selector.matchLabels is empty")
	}
	if d.Spec.Selector != nil {
		for k, v := range d.Spec.Selector.MatchLabels {
			if d.Spec.Template.Labels[k] != v {
				c.errorf(where, "selector %s=%s does not match the template's labels", k, v)
			}
		}
	}
	c.labels(where, "template label", d.Spec.Template.Labels)
	spec := d.Spec.Template.Spec
	volumes := map[string]bool{}
	for _, v := range spec.Volumes {
		c.msgs(where, "volume "+v.Name, validation.IsDNS1123Label(v.Name))
		if volumes[v.Name] {
			c.errorf(where, "volume %s is defined twice", v.Name)
		}
		volumes[v.Name] = true
	}
	used := map[string]bool{}
	if len(spec.Containers) == 0 {
		c.errorf(where, "no containers")
	}
	names := map[string]bool{}
	for _, ct := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
		cw := where + ": container " + ct.Name
		c.msgs(cw, "name", validation.IsDNS1123Label(ct.Name))
		if names[ct.Name] {
			c.errorf(cw, "name used twice")
		}
		names[ct.Name] = true
		if ct.Image == "" {
			c.errorf(cw, "no image")
		}
		ports := map[string]int32{}
		for _, p := range ct.Ports {
			c.msgs(cw, "containerPort", validation.IsValidPortNum(int(p.ContainerPort)))
			if p.Name != "" {
				c.msgs(cw, "port name "+p.Name, validation.IsValidPortName(p.Name))
				ports[p.Name] = p.ContainerPort
			}
		}
		for kind, pr := range map[string]*corev1.Probe{"livenessProbe": ct.LivenessProbe, "readinessProbe": ct.ReadinessProbe, "startupProbe": ct.StartupProbe} {
			if pr == nil || pr.HTTPGet == nil {
				continue
			}
			c.port(cw+": "+kind, pr.HTTPGet.Port, ports)
			if !strings.HasPrefix(pr.HTTPGet.Path, "/") {
				c.errorf(cw, "%s path %q does not start with /", kind, pr.HTTPGet.Path)
			}
		}
		mounts := map[string]bool{}
		for _, m := range ct.VolumeMounts {
			if !volumes[m.Name] {
				c.errorf(cw, "mounts volume %s, which the Pod does not define", m.Name)
			}
			if !strings.HasPrefix(m.MountPath, "/") || mounts[m.MountPath] {
				c.errorf(cw, "mountPath %q is not absolute or is used twice", m.MountPath)
			}
			mounts[m.MountPath] = true
			used[m.Name] = true
		}
		for res, lim := range ct.Resources.Limits {
			if req, ok := ct.Resources.Requests[res]; ok && req.Cmp(lim) > 0 {
				c.errorf(cw, "requests.%s %s exceeds limits.%s %s", res, req.String(), res, lim.String())
			}
		}
	}
	for _, v := range spec.Volumes {
		if !used[v.Name] {
			c.errorf(where, "volume %s is mounted by no container", v.Name)
		}
	}
}

func (c *checker) port(where string, p intstr.IntOrString, named map[string]int32) {
	if p.Type == intstr.String {
		if _, ok := named[p.StrVal]; !ok {
			c.errorf(where, "port %q is not a named port of the container", p.StrVal)
		}
		return
	}
	c.msgs(where, "port", validation.IsValidPortNum(p.IntValue()))
}

func run(dir string) error {
	c := &checker{}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no manifests in %s: %v", dir, err)
	}
	sort.Strings(files)
	kustomization := false
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if filepath.Base(f) == "kustomization.yaml" {
			kustomization = true
			var k kustypes.Kustomization
			if err := yaml.UnmarshalStrict(data, &k); err != nil {
				c.errorf(f, "Kustomization: %v", err)
			}
			continue
		}
		docs, err := documents(data)
		if err != nil {
			c.errorf(f, "%v", err)
			continue
		}
		if len(docs) == 0 {
			c.errorf(f, "no document")
		}
		for i, d := range docs {
			c.document(fmt.Sprintf("%s[%d]", f, i), d)
		}
	}
	built := 0
	if kustomization {
		k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
		rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
		if err != nil {
			c.errorf(dir, "kustomize build: %v", err)
		} else {
			out, err := rm.AsYaml()
			if err != nil {
				c.errorf(dir, "kustomize build: %v", err)
			}
			docs, err := documents(out)
			if err != nil {
				c.errorf(dir, "kustomize build output: %v", err)
			}
			for i, d := range docs {
				c.document(fmt.Sprintf("kustomize build %s [%d]", dir, i), d)
			}
			built = len(docs)
		}
	}
	for _, p := range c.problems {
		fmt.Fprintln(os.Stderr, p)
	}
	if len(c.problems) > 0 {
		return fmt.Errorf("%d problem(s) in %d document(s)", len(c.problems), c.docs)
	}
	fmt.Printf("k8scheck: %s: %d document(s) valid (%d of them from kustomize build)\n", dir, c.docs, built)
	return nil
}

func main() {
	dir := "."
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	if err := run(dir); err != nil {
		fmt.Fprintln(os.Stderr, "k8scheck:", err)
		os.Exit(1)
	}
}
