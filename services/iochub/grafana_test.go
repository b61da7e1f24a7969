package main

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

// promWords are the PromQL functions, aggregations and keywords the
// deploy files use: everything else that looks like a name outside label
// matchers is a metric.
var promWords = map[string]bool{"sum": true, "rate": true, "irate": true, "increase": true, "deriv": true, "histogram_quantile": true,
	"time": true, "by": true, "without": true, "and": true, "or": true, "unless": true, "max": true, "min": true, "avg": true,
	"count": true, "topk": true, "bottomk": true, "on": true, "ignoring": true, "group_left": true, "group_right": true, "abs": true,
	"clamp_min": true, "clamp_max": true, "delta": true, "absent": true, "offset": true}

var (
	promDropped = regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]|"[^"]*"|\b(by|without|on|ignoring)\s*\([^)]*\)`)
	promName    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
)

// metricsOf names the metrics a PromQL expression reads.
func metricsOf(expr string) []string {
	var out []string
	for _, w := range promName.FindAllString(promDropped.ReplaceAllString(expr, " "), -1) {
		if !promWords[w] {
			out = append(out, w)
		}
	}
	return out
}

// served reports whether name is a metric of fams: a family, or a
// histogram's _bucket, _sum or _count.
func served(fams map[string]*dto.MetricFamily, name string) bool {
	if _, ok := fams[name]; ok {
		return true
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if f, ok := fams[strings.TrimSuffix(name, suf)]; ok && strings.HasSuffix(name, suf) && f.GetType() == dto.MetricType_HISTOGRAM {
			return true
		}
	}
	return false
}

// checkDeployQueries validates deploy/grafana/iochub.json against
// deploy/grafana/dashboard.schema.json and checks that every metric its
// panels and deploy/prometheus' rules ask for is in fams, what a hub
// serves.
func checkDeployQueries(t *testing.T, fams map[string]*dto.MetricFamily) {
	t.Helper()
	c := jsonschema.NewCompiler()
	sch, err := c.Compile("../../deploy/grafana/dashboard.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("../../deploy/grafana/iochub.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("deploy/grafana/iochub.json: %v", err)
	}
	if err := sch.Validate(doc); err != nil {
		t.Fatalf("deploy/grafana/iochub.json: %v", err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	asked := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			names := metricsOf(tg.Expr)
			if len(names) == 0 {
				t.Errorf("grafana panel %q: no metric in %q", p.Title, tg.Expr)
			}
			for _, n := range names {
				asked++
				if !served(fams, n) {
					t.Errorf("grafana panel %q asks for %s, which the hub does not serve (%q)", p.Title, n, tg.Expr)
				}
			}
		}
	}
	rules, err := os.ReadFile("../../deploy/prometheus/iochub-alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rf struct {
		Groups []struct {
			Rules []struct{ Alert, Expr string }
		}
	}
	if err := yaml.Unmarshal(rules, &rf); err != nil {
		t.Fatal(err)
	}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			for _, n := range metricsOf(r.Expr) {
				asked++
				if !served(fams, n) {
					t.Errorf("prometheus rule %s asks for %s, which the hub does not serve", r.Alert, n)
				}
			}
		}
	}
	if asked < 20 {
		t.Errorf("only %d metric names found in the deploy files' queries", asked)
	}
}

func TestMetricNamesAreFoundInQueries(t *testing.T) {
	for expr, want := range map[string]string{
		`histogram_quantile(0.95, sum by (le, route) (rate(iochub_http_request_duration_seconds_bucket[5m])))`: "iochub_http_request_duration_seconds_bucket",
		`time() - iochub_source_last_event_timestamp_seconds > 900`:                                            "iochub_source_last_event_timestamp_seconds",
		`sum by (producer, reason) (rate(iochub_gateway_events_total{outcome="rejected"}[5m]))`:                "iochub_gateway_events_total",
	} {
		if got := strings.Join(metricsOf(expr), ","); got != want {
			t.Errorf("%s: %s, want %s", expr, got, want)
		}
	}
}
