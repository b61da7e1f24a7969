package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
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
				env[e.Name] = e.Value
			}
			bad = append(bad, checkRun(where, c.Args[1:], env)...)
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

// TestKustomizeCheckFindsAMisspelledFlag: the production overlay with one
// flag misspelled, one probe path and one config key wrong (in memory) is
// refused, each named.
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
	o, err := render(fsys, "/k8s/overlays/production")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(o.problems(t), "\n")
	for _, want := range []string{"flag --lease-tll is not a flag of `iochub run`", "readiness probe path /ready is none of the hub's", "field time_zone not found"} {
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
