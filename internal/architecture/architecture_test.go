package architecture

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/iochub/iochub"

// graph maps a package of the module to every package it depends on,
// directly or not (what `go list -deps` reports for it).
type graph map[string][]string

// rule is one boundary: a package matched by from must not depend on a
// package matched by to.
type rule struct {
	name string
	// forbidden reports why pkg must not depend on dep, or "" if it may.
	forbidden func(pkg, dep string) string
}

var rules = []rule{
	{
		name: "libraries do not import services",
		forbidden: func(pkg, dep string) string {
			if under(pkg, "pkg") && under(dep, "services") {
				return "a library under pkg/ depends on a service"
			}
			return ""
		},
	},
	{
		name: "the edge does not reach ClickHouse",
		forbidden: func(pkg, dep string) string {
			if !under(pkg, "services/gateway") && !under(pkg, "services/connectors") {
				return ""
			}
			if under(dep, "pkg/chstore") || dep == "github.com/ClickHouse/clickhouse-go/v2" || dep == "github.com/ClickHouse/ch-go" {
				return "the gateway and the connectors publish to JetStream; only the aggregator, iocapi and the monitor read or write ClickHouse"
			}
			return ""
		},
	},
	{
		name: "the hub carries no simulator",
		forbidden: func(pkg, dep string) string {
			if (under(pkg, "services") || under(pkg, "pkg")) && (under(dep, "sim") || dep == "github.com/eclipse/paho.mqtt.golang") {
				return "the simulated systems and their MQTT client live in sim/ and bin/iochub-sim, never in bin/iochub"
			}
			return ""
		},
	},
	{
		name: "services do not import each other",
		forbidden: func(pkg, dep string) string {
			from, to := service(pkg), service(dep)
			if from == "" || to == "" || from == to || from == "iochub" {
				return ""
			}
			return fmt.Sprintf("service %s depends on service %s; only the composition root (services/iochub) wires services together", from, to)
		},
	},
}

// under reports whether pkg is dir of the module or below it.
func under(pkg, dir string) bool {
	p := module + "/" + dir
	return pkg == p || strings.HasPrefix(pkg, p+"/")
}

// service names the service a package belongs to (the folder below
// services/), or "" for a package outside services/.
func service(pkg string) string {
	rest, ok := strings.CutPrefix(pkg, module+"/services/")
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, "/")
	return name
}

// violations lists every dependency of g that breaks a rule, sorted.
func violations(g graph) []string {
	var out []string
	for pkg, deps := range g {
		for _, dep := range deps {
			for _, r := range rules {
				if why := r.forbidden(pkg, dep); why != "" {
					out = append(out, fmt.Sprintf("%s → %s: %s (%s)", trim(pkg), trim(dep), r.name, why))
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

func trim(pkg string) string { return strings.TrimPrefix(pkg, module+"/") }

// load runs `go list -deps` over the whole module: every package with the
// packages it depends on, tests excluded (they may wire services together
// as the composition root does).
func load(t *testing.T) graph {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, module+"/...")
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	g := graph{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		g[fields[0]] = fields[1:]
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return g
}

func TestModuleKeepsItsBoundaries(t *testing.T) {
	g := load(t)
	for _, must := range []string{"pkg/event", "services/gateway", "services/aggregator", "services/iochub"} {
		if _, ok := g[module+"/"+must]; !ok {
			t.Fatalf("go list did not report %s: the test reads the wrong tree", must)
		}
	}
	if v := violations(g); len(v) > 0 {
		t.Fatalf("%d forbidden dependencies:\n%s", len(v), strings.Join(v, "\n"))
	}
}

// The rules themselves: each forbidden edge is caught, each allowed one is not.
func TestRules(t *testing.T) {
	p := func(s string) string { return module + "/" + s }
	tests := []struct {
		name      string
		pkg, dep  string
		forbidden bool
	}{
		{"library imports a service", p("pkg/kpi"), p("services/iocapi"), true},
		{"library imports a library", p("pkg/admit"), p("pkg/schema"), false},
		{"gateway imports chstore", p("services/gateway"), p("pkg/chstore"), true},
		{"connector imports the driver", p("services/connectors/health"), "github.com/ClickHouse/clickhouse-go/v2", true},
		{"aggregator imports chstore", p("services/aggregator"), p("pkg/chstore"), false},
		{"service imports another service", p("services/monitor"), p("services/aggregator"), true},
		{"connector imports its shared csv source", p("services/connectors/health"), p("services/connectors/csvdir"), false},
		{"composition root imports services", p("services/iochub/internal/hub"), p("services/gateway"), false},
		{"bench imports the gateway", p("services/iochub/cmd/iochub-bench"), p("services/gateway"), false},
		{"the binary imports the simulator", p("services/iochub"), p("sim"), true},
		{"a connector imports the MQTT client", p("services/connectors/traffic"), "github.com/eclipse/paho.mqtt.golang", true},
		{"the simulator imports a connector", p("sim"), p("services/connectors/traffic"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := len(violations(graph{tt.pkg: {tt.dep}})) > 0
			if got != tt.forbidden {
				t.Fatalf("%s → %s forbidden = %v, want %v", tt.pkg, tt.dep, got, tt.forbidden)
			}
		})
	}
}

// TestEveryListenerIsMadeByHTTPEdge: no package builds its own http.Server
// (or serves without one), so every listener has the timeouts and limits of
// httpedge.NewServer.
func TestEveryListenerIsMadeByHTTPEdge(t *testing.T) {
	root := "../.."
	var found []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "tools" || d.Name() == "httpedge" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, bad := range []string{"http.Server{", "http.ListenAndServe(", "http.Serve("} {
			if bytes.Contains(b, []byte(bad)) {
				found = append(found, fmt.Sprintf("%s: %s", strings.TrimPrefix(path, root+"/"), bad))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) > 0 {
		t.Fatalf("listeners made without httpedge.NewServer (no timeouts):\n%s", strings.Join(found, "\n"))
	}
}
