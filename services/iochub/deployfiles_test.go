package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/iochub/iochub/pkg/flagenv"
	"github.com/iochub/iochub/services/iochub/internal/hub"
)

// runFlags are the flags of `iochub run` and their variables.
func runFlags() (names map[string]bool, vars map[string]string) {
	cfg := hub.DefaultConfig()
	fs := flags(&cfg, io.Discard)
	names, vars = map[string]bool{}, map[string]string{}
	fs.VisitAll(func(f *flag.Flag) {
		names[f.Name] = true
		vars[flagenv.Name("IOCHUB", f.Name)] = f.Name
	})
	return names, vars
}

// checkRun names what in one `iochub run` command line and its
// environment `iochub run` does not know: a flag, a variable, a service.
func checkRun(where string, args []string, env map[string]string) []string {
	known, vars := runFlags()
	var bad []string
	services := func(v string) {
		for _, s := range strings.Split(v, ",") {
			if !slices.Contains(hub.Services, strings.TrimSpace(s)) {
				bad = append(bad, fmt.Sprintf("%s: --services names %q, not one of %v", where, s, hub.Services))
			}
		}
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !known[name] {
			bad = append(bad, fmt.Sprintf("%s: flag --%s is not a flag of `iochub run`", where, name))
			continue
		}
		if !hasValue && i+1 < len(args) {
			value = args[i+1]
		}
		if name == "services" {
			services(value)
		}
	}
	for k, v := range env {
		if !strings.HasPrefix(k, "IOCHUB_") {
			continue
		}
		if _, ok := vars[k]; !ok && k != "IOCHUB_PII_KEY" {
			bad = append(bad, fmt.Sprintf("%s: variable %s is not one of `iochub run`'s", where, k))
		}
		if k == "IOCHUB_SERVICES" {
			services(v)
		}
	}
	return bad
}

// TestDeployFilesNameOnlyWhatIochubRunTakes: the Dockerfile builds with
// `make build` (the command the tests run: docker build is not possible
// here), runs as a non-root user on a static base, and starts `iochub
// run` with flags it has; every iochub service of docker-compose.yaml
// runs `iochub run` with flags, variables and services it has.
func TestDeployFilesNameOnlyWhatIochubRunTakes(t *testing.T) {
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	d := string(df)
	for _, want := range []string{"RUN CGO_ENABLED=0 make build", "FROM gcr.io/distroless/static", "USER nonroot", `ENTRYPOINT ["/usr/local/bin/iochub"]`} {
		if !strings.Contains(d, want) {
			t.Errorf("Dockerfile lacks %s", want)
		}
	}
	cmd := regexp.MustCompile(`(?m)^CMD (\[.*\])$`).FindStringSubmatch(d)
	var args []string
	if cmd == nil || yaml.Unmarshal([]byte(cmd[1]), &args) != nil || len(args) == 0 || args[0] != "run" {
		t.Fatalf("Dockerfile: want CMD [\"run\", …], got %v", cmd)
	}
	for _, b := range checkRun("Dockerfile CMD", args[1:], nil) {
		t.Error(b)
	}

	raw, err := os.ReadFile("../../docker-compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Build       any               `yaml:"build"`
			Image       string            `yaml:"image"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatalf("docker-compose.yaml: %v", err)
	}
	hubs := 0
	for name, s := range compose.Services {
		for _, v := range s.Volumes { // a file of the repository mounted into a container is there
			if src, _, _ := strings.Cut(v, ":"); strings.HasPrefix(src, "./") {
				if _, err := os.Stat(filepath.Join("../..", src)); err != nil {
					t.Errorf("compose service %s mounts %s: %v", name, src, err)
				}
			}
		}
		if s.Image != "iochub:local" {
			continue
		}
		hubs++
		if len(s.Command) == 0 || s.Command[0] != "run" {
			t.Errorf("compose service %s: command %v, want run …", name, s.Command)
			continue
		}
		for _, b := range checkRun("compose service "+name, s.Command[1:], s.Environment) {
			t.Error(b)
		}
	}
	if hubs < 7 {
		t.Errorf("docker-compose.yaml runs %d iochub containers, want each service separately", hubs)
	}
}

// TestTheDeployCheckFindsAMisspelledFlag: the check above is not blind.
func TestTheDeployCheckFindsAMisspelledFlag(t *testing.T) {
	bad := checkRun("example", []string{"--services", "gateway", "--stream-replica", "3"}, map[string]string{"IOCHUB_NATS_UR": "x"})
	if len(bad) != 2 || !strings.Contains(bad[0], "--stream-replica") || !strings.Contains(bad[1], "IOCHUB_NATS_UR") {
		t.Fatalf("found %q", bad)
	}
	t.Log(strings.Join(bad, "\n"))
}
