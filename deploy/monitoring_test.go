package deploy_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/ocamba-rotator/rotator/internal/metrics"
)

const runbookBase = "https://github.com/ocamba-rotator/rotator/blob/main/docs/operations.md#"

// recorder is a registry that remembers the collectors registered on it.
type recorder struct {
	*prometheus.Registry
	collectors []prometheus.Collector
}

func (r *recorder) Register(c prometheus.Collector) error {
	if err := r.Registry.Register(c); err != nil {
		return err
	}
	r.collectors = append(r.collectors, c)
	return nil
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

var fqNameRE = regexp.MustCompile(`fqName: "([^"]+)"`)

// metricNames returns every metric name rotator registers, and which of them
// are histograms (whose series add _bucket, _sum and _count).
func metricNames(t *testing.T) (names, histograms map[string]bool) {
	t.Helper()
	rec := &recorder{Registry: prometheus.NewRegistry()}
	if _, err := metrics.New(rec, "test"); err != nil {
		t.Fatalf("metrics.New: %v", err)
	}
	names, histograms = map[string]bool{}, map[string]bool{}
	for _, c := range rec.collectors {
		ch := make(chan *prometheus.Desc, 8)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			m := fqNameRE.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("cannot read the name of %s", d)
			}
			names[m[1]] = true
			switch c.(type) {
			case prometheus.Histogram, *prometheus.HistogramVec:
				histograms[m[1]] = true
			}
		}
	}
	if len(names) < 10 {
		t.Fatalf("metrics.New registered %d metrics, want at least the 10 of docs/reference.md: %v", len(names), sortedKeys(names))
	}
	return names, histograms
}

var rotatorNameRE = regexp.MustCompile(`\brotator_[a-zA-Z0-9_]+`)

// checkNames checks every rotator_* name in each text against the
// registered metrics; it returns how many names it checked.
func checkNames(t *testing.T, where string, texts []string, names, histograms map[string]bool) int {
	t.Helper()
	n := 0
	for _, text := range texts {
		for _, name := range rotatorNameRE.FindAllString(text, -1) {
			n++
			if names[name] {
				continue
			}
			ok := false
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, cut := strings.CutSuffix(name, suffix); cut && histograms[base] {
					ok = true
				}
			}
			if !ok {
				t.Errorf("%s: %s is not a metric rotator registers (known: %s)", where, name, strings.Join(sortedKeys(names), ", "))
			}
		}
	}
	return n
}

type alertRule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func alertRules(t *testing.T) []alertRule {
	t.Helper()
	var f struct {
		Groups []struct {
			Name  string      `yaml:"name"`
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(readFile(t, "deploy/prometheus/alerts.yaml"))))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("deploy/prometheus/alerts.yaml: %v", err)
	}
	var rules []alertRule
	for _, g := range f.Groups {
		rules = append(rules, g.Rules...)
	}
	if len(rules) == 0 {
		t.Fatal("deploy/prometheus/alerts.yaml has no rules")
	}
	return rules
}

type grafanaDashboard struct {
	raw    map[string]any
	panels []map[string]any // rows included, nested panels flattened
}

func dashboard(t *testing.T) grafanaDashboard {
	t.Helper()
	var d grafanaDashboard
	if err := json.Unmarshal(readFile(t, "deploy/grafana/rotator.json"), &d.raw); err != nil {
		t.Fatalf("deploy/grafana/rotator.json: %v", err)
	}
	var walk func([]any)
	walk = func(ps []any) {
		for _, p := range ps {
			if m, ok := p.(map[string]any); ok {
				d.panels = append(d.panels, m)
				walk(list(m, "panels"))
			}
		}
	}
	walk(list(d.raw, "panels"))
	return d
}

// exprs returns the PromQL of every panel target and query variable.
func (d grafanaDashboard) exprs() []string {
	var out []string
	for _, p := range d.panels {
		for _, tg := range list(p, "targets") {
			if e := str(tg, "expr"); e != "" {
				out = append(out, e)
			}
		}
	}
	for _, v := range list(d.raw, "templating", "list") {
		if str(v, "type") == "query" {
			if q := str(v, "query", "query"); q != "" {
				out = append(out, q)
			} else if q := str(v, "query"); q != "" {
				out = append(out, q)
			}
		}
	}
	return out
}

func TestMetricNamesExist(t *testing.T) {
	names, histograms := metricNames(t)

	var ruleExprs []string
	for _, r := range alertRules(t) {
		ruleExprs = append(ruleExprs, r.Expr)
	}
	if n := checkNames(t, "deploy/prometheus/alerts.yaml", ruleExprs, names, histograms); n < 5 {
		t.Errorf("deploy/prometheus/alerts.yaml: only %d rotator_* names found", n)
	}

	var series []string
	for _, tc := range list(yamlDoc(t, "deploy/prometheus/alerts_test.yaml"), "tests") {
		for _, s := range list(tc, "input_series") {
			series = append(series, str(s, "series"))
		}
	}
	if n := checkNames(t, "deploy/prometheus/alerts_test.yaml", series, names, histograms); n < 5 {
		t.Errorf("deploy/prometheus/alerts_test.yaml: only %d rotator_* series found", n)
	}

	if n := checkNames(t, "deploy/grafana/rotator.json", dashboard(t).exprs(), names, histograms); n < 10 {
		t.Errorf("deploy/grafana/rotator.json: only %d rotator_* names found", n)
	}

	if n := checkNames(t, "docs/operations.md", []string{docsOperations(t)}, names, histograms); n < 12 {
		t.Errorf("docs/operations.md: only %d rotator_* names found", n)
	}

	// The docs' metric table lists every metric.
	docs := docsOperations(t)
	for _, n := range sortedKeys(names) {
		if !strings.Contains(docs, "| `"+n+"` |") {
			t.Errorf("docs/operations.md: the metrics table lacks %s", n)
		}
	}
}

func TestAlertRules(t *testing.T) {
	docs := docsOperations(t)
	seen := map[string]bool{}
	for _, r := range alertRules(t) {
		if r.Alert == "" {
			t.Errorf("rule %q: only alerting rules belong in alerts.yaml", r.Record)
			continue
		}
		if seen[r.Alert] {
			t.Errorf("%s: defined twice", r.Alert)
		}
		seen[r.Alert] = true
		if strings.TrimSpace(r.Expr) == "" {
			t.Errorf("%s: no expr", r.Alert)
		}
		if s := r.Labels["severity"]; s != "warning" && s != "critical" {
			t.Errorf("%s: severity %q, want warning or critical", r.Alert, s)
		}
		for _, k := range []string{"summary", "description", "runbook_url"} {
			if strings.TrimSpace(r.Annotations[k]) == "" {
				t.Errorf("%s: annotation %s is empty", r.Alert, k)
			}
		}
		if want := runbookBase + strings.ToLower(r.Alert); r.Annotations["runbook_url"] != want {
			t.Errorf("%s: runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
		}
		if !strings.Contains(docs, "\n### "+r.Alert+"\n") {
			t.Errorf("%s: docs/operations.md has no section \"### %s\" (the runbook)", r.Alert, r.Alert)
		}
	}

	// Every alert has a promtool test that fires it and one that must not.
	fires, quiet := map[string]bool{}, map[string]bool{}
	tests := yamlDoc(t, "deploy/prometheus/alerts_test.yaml")
	if files := list(tests, "rule_files"); len(files) != 1 || files[0] != "alerts.yaml" {
		t.Errorf("alerts_test.yaml: rule_files %v, want [alerts.yaml]", files)
	}
	for _, tc := range list(tests, "tests") {
		for _, at := range list(tc, "alert_rule_test") {
			name := str(at, "alertname")
			if !seen[name] {
				t.Errorf("alerts_test.yaml tests an unknown alert %q", name)
			}
			if len(list(at, "exp_alerts")) > 0 {
				fires[name] = true
			} else {
				quiet[name] = true
			}
		}
	}
	for _, name := range sortedKeys(seen) {
		if !fires[name] {
			t.Errorf("%s: no test in alerts_test.yaml expects it to fire", name)
		}
		if !quiet[name] {
			t.Errorf("%s: no test in alerts_test.yaml expects it to stay quiet", name)
		}
	}
}

var grafanaVarRE = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)

func TestGrafanaDashboard(t *testing.T) {
	d := dashboard(t)
	for _, k := range []string{"uid", "title"} {
		if str(d.raw, k) == "" {
			t.Errorf("dashboard: %s is empty", k)
		}
	}
	if v, _ := dig(d.raw, "schemaVersion").(float64); v < 36 {
		t.Errorf("dashboard: schemaVersion %v, want 36 or later", v)
	}

	vars := map[string]string{}
	for _, v := range list(d.raw, "templating", "list") {
		vars[str(v, "name")] = str(v, "type")
	}
	if vars["datasource"] != "datasource" {
		t.Errorf("dashboard: want a variable \"datasource\" of type datasource, got %q", vars["datasource"])
	}

	ids := map[float64]bool{}
	type rect struct {
		title      string
		x, y, w, h float64
	}
	var rects []rect
	for _, p := range d.panels {
		title, typ := str(p, "title"), str(p, "type")
		id, _ := dig(p, "id").(float64)
		if id == 0 || ids[id] {
			t.Errorf("panel %q: id %v missing or not unique", title, id)
		}
		ids[id] = true
		gp := mapping(p, "gridPos")
		x, _ := gp["x"].(float64)
		y, _ := gp["y"].(float64)
		w, _ := gp["w"].(float64)
		h, _ := gp["h"].(float64)
		if w <= 0 || h <= 0 || x < 0 || x+w > 24 {
			t.Errorf("panel %q: gridPos %v out of the 24-column grid", title, gp)
		}
		for _, r := range rects {
			if x < r.x+r.w && r.x < x+w && y < r.y+r.h && r.y < y+h {
				t.Errorf("panel %q overlaps panel %q", title, r.title)
			}
		}
		rects = append(rects, rect{title, x, y, w, h})
		if typ == "row" {
			continue
		}
		if title == "" {
			t.Errorf("panel %v: no title", id)
		}
		if str(p, "datasource", "uid") != "${datasource}" {
			t.Errorf("panel %q: datasource uid %q, want ${datasource}", title, str(p, "datasource", "uid"))
		}
		targets := list(p, "targets")
		if len(targets) == 0 {
			t.Errorf("panel %q: no targets", title)
		}
		refs := map[string]bool{}
		for _, tg := range targets {
			if str(tg, "expr") == "" {
				t.Errorf("panel %q: a target has no expr", title)
			}
			if ref := str(tg, "refId"); ref == "" || refs[ref] {
				t.Errorf("panel %q: refId %q missing or repeated", title, ref)
			} else {
				refs[ref] = true
			}
			if str(tg, "datasource", "uid") != "${datasource}" {
				t.Errorf("panel %q: target datasource uid %q, want ${datasource}", title, str(tg, "datasource", "uid"))
			}
		}
	}

	for _, e := range d.exprs() {
		for _, m := range grafanaVarRE.FindAllStringSubmatch(e, -1) {
			if name := m[1]; !strings.HasPrefix(name, "__") && vars[name] == "" {
				t.Errorf("expression %q uses $%s, which the dashboard does not define", e, name)
			}
		}
	}
}

// TestGrafanaExpressionsParse has promtool parse every dashboard expression
// (Grafana's variables replaced by values), as recording rules.
func TestGrafanaExpressionsParse(t *testing.T) {
	promtool := tool(t, "promtool")
	repl := strings.NewReplacer(
		"$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h",
		"$job", ".*", "$instance", ".*", "$integration", ".*")
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	for i, e := range dashboard(t).exprs() {
		if strings.HasPrefix(e, "label_values(") {
			continue // a Grafana function, not PromQL
		}
		rules = append(rules, rule{Record: fmt.Sprintf("dashboard:expr%d", i), Expr: repl.Replace(e)})
	}
	doc := map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}}
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "dashboard-rules.yaml")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", f).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules (the dashboard's expressions): %v\n%s", err, out)
	}
}
