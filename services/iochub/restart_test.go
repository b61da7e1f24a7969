package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/iochub/iochub/pkg/chstore"
	"github.com/iochub/iochub/pkg/chstore/chstoretest"
	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/eventgen"
	"github.com/iochub/iochub/pkg/httpedge"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/services/gateway"
)

const restartReader = "restart-reader-token-0123456789"

// hubProcess is `iochub run` (embedded JetStream included) as a child process
// on a data dir that outlives it.
type hubProcess struct {
	cmd     *exec.Cmd
	base    string
	natsURL string
}

func startHubProcess(t *testing.T, dataDir, dsn, confFile string) *hubProcess {
	t.Helper()
	addr, natsAddr := "127.0.0.1:"+freePort(t), "127.0.0.1:"+freePort(t)
	cmd := exec.Command(iochubBinary(t), "run", "--config", confFile, "--data-dir", dataDir, "--clickhouse-dsn", dsn,
		"--http-addr", addr, "--nats-listen", natsAddr, "--services", "gateway,aggregator,iocapi", "--areas", "../../deploy/areas/bac-ninh.csv",
		"--batch-max-wait", "50ms", "--ack-wait", "5s")
	cmd.Stderr = io.Discard
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &hubProcess{cmd: cmd, base: "http://" + addr, natsURL: opsURL(natsAddr)}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	})
	waitFor(t, "the hub ready", 60*time.Second, func() bool {
		res, err := http.Get(p.base + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
	return p
}

// caughtUp reports whether the hub's aggregator has settled every event.
func (p *hubProcess) caughtUp(t *testing.T) bool {
	t.Helper()
	nc, err := nats.Connect(p.natsURL)
	if err != nil {
		return false
	}
	defer nc.Close()
	js, err := natsjs.NewJetStream(nc)
	if err != nil {
		return false
	}
	ok, err := natsjs.CaughtUp(context.Background(), js)
	return err == nil && ok
}

func (p *hubProcess) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
}

// kpiTotal reads one KPI's total for the generated events' period.
func kpiTotal(t *testing.T, base, name string) float64 {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/kpis/"+name+"?from=2026-10-01&to=2026-12-31&granularity=month", nil)
	req.Header.Set("Authorization", "Bearer "+restartReader)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct {
		Total *float64 `json:"total"`
	}
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || json.Unmarshal(b, &out) != nil || out.Total == nil {
		t.Fatalf("%s: %d %s", name, res.StatusCode, b)
	}
	return *out.Total
}

// The whole iochub process, its embedded JetStream included, stopped with
// SIGTERM and then killed with SIGKILL mid-stream, restarted on the same
// data dir each time: every event sent again inside the dedup window is
// answered "duplicate": true, every raw-table count is exact, the KPIs are
// the same as before.
func TestWholeHubRestartRemembersEveryIdentity(t *testing.T) {
	burnCPU(t)
	dsn := chstoretest.NewDatabase(t)
	dir := t.TempDir()
	conf := fmt.Sprintf(`
pii_key: %q
gateway:
  producers: [{name: restart, token_sha256: %q, sources: ["*"], types: ["vn.ioc.*"]}]
iocapi:
  readers: [{name: leader, token_sha256: %q, role: leader}]
nats:
  users: [{name: dev-ops, role: operator, password_bcrypt: %q}]
`, e2ePIIKey, httpedge.HashToken(e2eToken), httpedge.HashToken(restartReader), devOpsHash)
	confFile := filepath.Join(dir, "iochub.yaml")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := chstore.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()

	gen := eventgen.New(41, "restart")
	var batches [][]event.Event
	for range 12 {
		var b []event.Event
		for range 250 {
			b = append(b, gen.Next())
		}
		batches = append(batches, b)
	}
	want := counted(batches)
	post := func(base string, b []event.Event) gateway.Response {
		return postBatch(t, base, b)
	}
	kpis := []string{"health.visits", "traffic.vehicles_per_hour", "publicservice.dossiers_received", "feedback.reports_submitted"}

	dataDir := filepath.Join(dir, "hub")
	hub := startHubProcess(t, dataDir, dsn, confFile)
	for _, b := range batches[:6] {
		post(hub.base, b)
	}
	waitFor(t, "the first half stored", 60*time.Second, func() bool { return hub.caughtUp(t) })
	assertExact(t, store, counted(batches[:6]))
	before := map[string]float64{}
	for _, k := range kpis {
		before[k] = kpiTotal(t, hub.base, k)
	}

	// SIGTERM, restart, send the first half again.
	hub.stop(t, syscall.SIGTERM)
	hub = startHubProcess(t, dataDir, dsn, confFile)
	for i, b := range batches[:6] {
		for _, a := range post(hub.base, b).Accepted {
			if !a.Duplicate {
				t.Fatalf("after SIGTERM and a restart, batch %d: %s/%s not answered duplicate", i, a.Source, a.ID)
			}
		}
	}
	for _, k := range kpis {
		if got := kpiTotal(t, hub.base, k); got != before[k] {
			t.Errorf("after SIGTERM: %s = %v, was %v", k, got, before[k])
		}
	}

	// The second half, SIGKILL while the aggregator works, restart, send everything again.
	for _, b := range batches[6:] {
		post(hub.base, b)
	}
	hub.stop(t, syscall.SIGKILL)
	hub = startHubProcess(t, dataDir, dsn, confFile)
	for i, b := range batches {
		for _, a := range post(hub.base, b).Accepted {
			if !a.Duplicate {
				t.Fatalf("after SIGKILL and a restart, batch %d: %s/%s not answered duplicate", i, a.Source, a.ID)
			}
		}
	}
	waitFor(t, "the aggregator caught up", 60*time.Second, func() bool { return hub.caughtUp(t) })
	assertExact(t, store, want)
	assertRollupsMatchRaw(t, store)
	if got, want := kpiTotal(t, hub.base, "health.visits"), float64(want["health_visit_v1"]); got != want {
		t.Errorf("after SIGKILL: health.visits = %v, want the %v visits sent", got, want)
	}
	after := map[string]float64{}
	for _, k := range kpis {
		after[k] = kpiTotal(t, hub.base, k)
	}
	// SIGTERM once more and resend everything: nothing moves.
	hub.stop(t, syscall.SIGTERM)
	hub = startHubProcess(t, dataDir, dsn, confFile)
	for _, b := range batches {
		post(hub.base, b)
	}
	waitFor(t, "the aggregator caught up", 60*time.Second, func() bool { return hub.caughtUp(t) })
	assertExact(t, store, want)
	for _, k := range kpis {
		if got := kpiTotal(t, hub.base, k); got != after[k] {
			t.Errorf("after a last restart and resend: %s = %v, was %v", k, got, after[k])
		}
	}
	hub.stop(t, syscall.SIGTERM)
}

// counted is the rows per table the batches make.
func counted(batches [][]event.Event) map[string]uint64 {
	want := map[string]uint64{}
	for _, b := range batches {
		for _, e := range b {
			tn, _ := event.ParseType(e.Type)
			want[tn.Table()]++
		}
	}
	return want
}
