package main

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/iochub/iochub/pkg/configfile"
	"github.com/iochub/iochub/services/iochub/internal/hub"
)

// probePaths are the hub's process endpoints (hub.go; documented in
// /openapi.json, TestDocumentsListWhatTheHubServes).
var probePaths = map[string]bool{"/healthz": true, "/readyz": true}

// rendered is an overlay's objects, decoded strictly into the Kubernetes
// API types.
type rendered struct {
	deployments []appsv1.Deployment
	services    []corev1.Service
	configMaps  []corev1.ConfigMap
	hpas        []autoscalingv2.HorizontalPodAutoscaler
	pdbs        []policyv1.PodDisruptionBudget
	policies    []networkingv1.NetworkPolicy
	pvcs        []corev1.PersistentVolumeClaim
	chis        []clickHouseInstallation
	chks        []clickHouseInstallation
}

// clickHouseInstallation is the part of the Altinity operator's
// ClickHouseInstallation and ClickHouseKeeperInstallation the hub depends
// on; decoded strictly, so a misspelled field of it is found.
type clickHouseInstallation struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		Configuration struct {
			Zookeeper *struct {
				Nodes []struct {
					Host string `json:"host"`
					Port int    `json:"port"`
				} `json:"nodes"`
			} `json:"zookeeper,omitempty"`
			Users    map[string]string `json:"users,omitempty"`
			Settings map[string]string `json:"settings,omitempty"`
			Clusters []struct {
				Name   string `json:"name"`
				Layout struct {
					ShardsCount   int `json:"shardsCount,omitempty"`
					ReplicasCount int `json:"replicasCount"`
				} `json:"layout"`
			} `json:"clusters"`
		} `json:"configuration"`
		Defaults struct {
			Templates struct {
				DataVolumeClaimTemplate string `json:"dataVolumeClaimTemplate"`
			} `json:"templates"`
		} `json:"defaults"`
		Templates struct {
			VolumeClaimTemplates []struct {
				Name string                           `json:"name"`
				Spec corev1.PersistentVolumeClaimSpec `json:"spec"`
			} `json:"volumeClaimTemplates"`
		} `json:"templates"`
	} `json:"spec"`
}

// render builds the kustomization at dir of fsys with kustomize's own API
// and decodes each object strictly: a field the API type has not is an
// error.
func render(fsys filesys.FileSystem, dir string) (*rendered, error) {
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fsys, dir)
	if err != nil {
		return nil, err
	}
	out := &rendered{}
	for _, r := range m.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			return nil, err
		}
		var into any
		switch r.GetKind() {
		case "Deployment":
			out.deployments = append(out.deployments, appsv1.Deployment{})
			into = &out.deployments[len(out.deployments)-1]
		case "Service":
			out.services = append(out.services, corev1.Service{})
			into = &out.services[len(out.services)-1]
		case "ConfigMap":
			out.configMaps = append(out.configMaps, corev1.ConfigMap{})
			into = &out.configMaps[len(out.configMaps)-1]
		case "HorizontalPodAutoscaler":
			out.hpas = append(out.hpas, autoscalingv2.HorizontalPodAutoscaler{})
			into = &out.hpas[len(out.hpas)-1]
		case "PodDisruptionBudget":
			out.pdbs = append(out.pdbs, policyv1.PodDisruptionBudget{})
			into = &out.pdbs[len(out.pdbs)-1]
		case "NetworkPolicy":
			out.policies = append(out.policies, networkingv1.NetworkPolicy{})
			into = &out.policies[len(out.policies)-1]
		case "PersistentVolumeClaim":
			out.pvcs = append(out.pvcs, corev1.PersistentVolumeClaim{})
			into = &out.pvcs[len(out.pvcs)-1]
		case "ClickHouseInstallation":
			out.chis = append(out.chis, clickHouseInstallation{})
			into = &out.chis[len(out.chis)-1]
		case "ClickHouseKeeperInstallation":
			out.chks = append(out.chks, clickHouseInstallation{})
			into = &out.chks[len(out.chks)-1]
		default:
			return nil, fmt.Errorf("%s %s: a kind this test does not decode", r.GetKind(), r.GetName())
		}
		if err := yaml.UnmarshalStrict(y, into); err != nil {
			return nil, fmt.Errorf("%s %s: %w", r.GetKind(), r.GetName(), err)
		}
	}
	return out, nil
}

// problems names what the rendered objects ask of iochub that it has not,
// and references that lead nowhere.
func (o *rendered) problems(t *testing.T) []string {
	var bad []string
	podLabels := map[string]labels.Set{}
	ports := map[string]bool{} // named container ports of any pod
	for _, d := range o.deployments {
		podLabels[d.Name] = d.Spec.Template.Labels
		sel, err := metaSelector(d.Spec.Selector.MatchLabels)
		if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			bad = append(bad, fmt.Sprintf("Deployment %s: its selector does not match its pods", d.Name))
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			for _, p := range c.Ports {
				ports[p.Name] = true
			}
			if c.Name != "iochub" {
				continue
			}
			where := "Deployment " + d.Name
			if len(c.Args) == 0 || c.Args[0] != "run" {
				bad = append(bad, where+": args must start with run")
				continue
			}
			env := map[string]string{}
			for _, e := range c.Env {
				for _, ref := range envRef.FindAllStringSubmatch(e.Value, -1) { // Kubernetes expands $(VAR) from the variables before
					if _, ok := env[ref[1]]; !ok {
						bad = append(bad, fmt.Sprintf("%s: %s uses $(%s), which no variable before it defines", where, e.Name, ref[1]))
					}
				}
				env[e.Name] = e.Value
			}
			bad = append(bad, checkRun(where, c.Args[1:], env)...)
			bad = append(bad, o.clickHouseProblems(where, env)...)
			_, port, err := net.SplitHostPort(env["IOCHUB_HTTP_ADDR"])
			if err != nil {
				bad = append(bad, where+": IOCHUB_HTTP_ADDR is not host:port")
			}
			var httpPort string
			for _, p := range c.Ports {
				if p.Name == "http" {
					httpPort = fmt.Sprint(p.ContainerPort)
				}
			}
			if httpPort != port {
				bad = append(bad, fmt.Sprintf("%s: container port http %s is not the hub's --http-addr port %s", where, httpPort, port))
			}
			for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
				switch {
				case p == nil || p.HTTPGet == nil:
					bad = append(bad, fmt.Sprintf("%s: no HTTP %s probe", where, name))
				case !probePaths[p.HTTPGet.Path]:
					bad = append(bad, fmt.Sprintf("%s: %s probe path %s is none of the hub's (%v)", where, name, p.HTTPGet.Path, probePaths))
				case p.HTTPGet.Port.String() != "http" && p.HTTPGet.Port.String() != port:
					bad = append(bad, fmt.Sprintf("%s: %s probe port %s is not the hub's", where, name, p.HTTPGet.Port.String()))
				}
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
				bad = append(bad, where+": resource requests and limits")
			}
		}
	}
	for _, cm := range o.configMaps {
		text, ok := cm.Data["iochub.yaml"]
		if !ok {
			continue
		}
		f := filepath.Join(t.TempDir(), "iochub.yaml")
		if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		file := hub.DefaultFile()
		if err := configfile.Decode(f, "", &file, true); err != nil {
			bad = append(bad, fmt.Sprintf("ConfigMap %s: %v", cm.Name, err))
		}
	}
	matchesPods := func(where string, sel labels.Selector) {
		for _, l := range podLabels {
			if sel.Matches(l) {
				return
			}
		}
		bad = append(bad, where+": selects no pod")
	}
	for _, s := range o.services {
		sel, err := metaSelector(s.Spec.Selector)
		if err != nil {
			bad = append(bad, fmt.Sprintf("Service %s: %v", s.Name, err))
			continue
		}
		matchesPods("Service "+s.Name, sel)
		for _, p := range s.Spec.Ports {
			if p.TargetPort.String() != "" && !ports[p.TargetPort.String()] {
				bad = append(bad, fmt.Sprintf("Service %s: target port %s is no container's", s.Name, p.TargetPort.String()))
			}
		}
	}
	for _, p := range o.pdbs {
		sel, err := metaSelector(p.Spec.Selector.MatchLabels)
		if err != nil {
			bad = append(bad, fmt.Sprintf("PodDisruptionBudget %s: %v", p.Name, err))
			continue
		}
		matchesPods("PodDisruptionBudget "+p.Name, sel)
	}
	for _, p := range o.policies {
		sel, err := labelSelector(p.Spec.PodSelector.MatchLabels, p.Spec.PodSelector.MatchExpressions)
		if err != nil {
			bad = append(bad, fmt.Sprintf("NetworkPolicy %s: %v", p.Name, err))
			continue
		}
		matchesPods("NetworkPolicy "+p.Name, sel)
	}
	for _, h := range o.hpas {
		if _, ok := podLabels[h.Spec.ScaleTargetRef.Name]; !ok || h.Spec.ScaleTargetRef.Kind != "Deployment" {
			bad = append(bad, fmt.Sprintf("HorizontalPodAutoscaler %s: scales %s %s, not a Deployment here", h.Name, h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name))
		}
	}
	return bad
}

func metaSelector(m map[string]string) (labels.Selector, error) {
	return labelSelector(m, nil)
}

func labelSelector(m map[string]string, exprs []metav1.LabelSelectorRequirement) (labels.Selector, error) {
	if len(m) == 0 && len(exprs) == 0 {
		return nil, fmt.Errorf("an empty selector")
	}
	return metav1.LabelSelectorAsSelector(&metav1.LabelSelector{MatchLabels: m, MatchExpressions: exprs})
}

// TestKustomizeOverlaysRenderAndNameOnlyWhatIochubTakes: every overlay of
// k8s/ renders with kustomize's Go API, every object decodes strictly into
// its Kubernetes API type, and every flag, variable, service, port and
// probe path of the iochub containers, and every key of the config file,
// is one iochub has.
func TestKustomizeOverlaysRenderAndNameOnlyWhatIochubTakes(t *testing.T) {
	overlays, err := os.ReadDir("../../k8s/overlays")
	if err != nil {
		t.Fatal(err)
	}
	for _, ov := range overlays {
		t.Run(ov.Name(), func(t *testing.T) {
			o, err := render(filesys.MakeFsOnDisk(), filepath.Join("../../k8s/overlays", ov.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if len(o.deployments) == 0 {
				t.Fatal("no Deployment rendered")
			}
			for _, b := range o.problems(t) {
				t.Error(b)
			}
		})
	}
}

var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// clickHouseProblems names what a hub container's ClickHouse settings ask
// of the overlay's ClickHouse installation that it has not: its service
// (clickhouse-<installation>), its cluster, and, for a cluster, replicas
// coordinated by the overlay's Keeper.
func (o *rendered) clickHouseProblems(where string, env map[string]string) []string {
	if len(o.chis) == 0 {
		return nil
	}
	var bad []string
	cluster := env["IOCHUB_CLICKHOUSE_CLUSTER"]
	u, err := url.Parse(env["IOCHUB_CLICKHOUSE_DSN"])
	if err != nil {
		return []string{fmt.Sprintf("%s: IOCHUB_CLICKHOUSE_DSN: %v", where, err)}
	}
	for _, chi := range o.chis {
		if u.Hostname() != "clickhouse-"+chi.Metadata.Name {
			continue
		}
		if u.User.Username() != "" {
			if _, ok := chi.Spec.Configuration.Users[u.User.Username()+"/k8s_secret_password"]; !ok {
				bad = append(bad, fmt.Sprintf("%s: ClickHouse user %s is not a user of ClickHouseInstallation %s", where, u.User.Username(), chi.Metadata.Name))
			}
		}
		if cluster == "" {
			return bad
		}
		for _, c := range chi.Spec.Configuration.Clusters {
			if c.Name != cluster {
				continue
			}
			if c.Layout.ReplicasCount < 2 {
				bad = append(bad, fmt.Sprintf("%s: cluster %s has %d replica, want 2 or more", where, cluster, c.Layout.ReplicasCount))
			}
			zk := chi.Spec.Configuration.Zookeeper
			keeper := false
			for _, k := range o.chks {
				for _, n := range zkNodes(zk) {
					if n == fmt.Sprintf("keeper-%s:%s", k.Metadata.Name, k.Spec.Configuration.Settings["keeper_server/tcp_port"]) {
						keeper = true
					}
				}
			}
			if !keeper {
				bad = append(bad, fmt.Sprintf("%s: ClickHouseInstallation %s's zookeeper nodes %v are no ClickHouseKeeperInstallation's service", where, chi.Metadata.Name, zkNodes(zk)))
			}
			return bad
		}
		return append(bad, fmt.Sprintf("%s: --clickhouse-cluster %s is not a cluster of ClickHouseInstallation %s", where, cluster, chi.Metadata.Name))
	}
	return append(bad, fmt.Sprintf("%s: IOCHUB_CLICKHOUSE_DSN host %s is no ClickHouseInstallation's service", where, u.Hostname()))
}

func zkNodes(zk *struct {
	Nodes []struct {
		Host string `json:"host"`
		Port int    `json:"port"`
	} `json:"nodes"`
}) []string {
	if zk == nil {
		return nil
	}
	var out []string
	for _, n := range zk.Nodes {
		out = append(out, fmt.Sprintf("%s:%d", n.Host, n.Port))
	}
	return out
}

// TestKustomizeCheckFindsAMisspelledFlag: the production overlay with one
// flag misspelled, one probe path, one config key, the ClickHouse cluster's
// name and its coordinator wrong (in memory) is refused, each named.
func TestKustomizeCheckFindsAMisspelledFlag(t *testing.T) {
	fsys := filesys.MakeFsInMemory()
	if err := copyDir(filesys.MakeFsOnDisk(), fsys, "../../k8s", "/k8s"); err != nil {
		t.Fatal(err)
	}
	edit := func(path, from, to string) {
		b, err := fsys.ReadFile(path)
		if err != nil || !strings.Contains(string(b), from) {
			t.Fatalf("%s has no %q", path, from)
		}
		if err := fsys.WriteFile(path, []byte(strings.Replace(string(b), from, to, 1))); err != nil {
			t.Fatal(err)
		}
	}
	edit("/k8s/overlays/production/connectors.yaml", `"--lease-ttl"`, `"--lease-tll"`)
	edit("/k8s/components/iochub/container.yaml", "path: /readyz", "path: /ready")
	edit("/k8s/base/iochub.yaml", "timezone:", "time_zone:")
	edit("/k8s/overlays/production/aggregator.yaml", "{name: IOCHUB_CLICKHOUSE_CLUSTER, value: iochub}", "{name: IOCHUB_CLICKHOUSE_CLUSTER, value: iochub-main}")
	edit("/k8s/overlays/production/clickhouse.yaml", "- {host: keeper-iochub, port: 2181}", "- {host: zookeeper, port: 2181}")
	o, err := render(fsys, "/k8s/overlays/production")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(o.problems(t), "\n")
	for _, want := range []string{"flag --lease-tll is not a flag of `iochub run`", "readiness probe path /ready is none of the hub's", "field time_zone not found",
		"--clickhouse-cluster iochub-main is not a cluster of ClickHouseInstallation iochub", "zookeeper nodes [zookeeper:2181] are no ClickHouseKeeperInstallation's service"} {
		if !strings.Contains(got, want) {
			t.Errorf("the check does not name %q; it found:\n%s", want, got)
		}
	}
	t.Logf("found:\n%s", got)
}

func copyDir(from, to filesys.FileSystem, src, dst string) error {
	return from.Walk(src, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return to.MkdirAll(target)
		}
		b, err := from.ReadFile(path)
		if err != nil {
			return err
		}
		return to.WriteFile(target, b)
	})
}
