package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/iochub/iochub/internal/polltest"
	"github.com/iochub/iochub/pkg/chstore"
	"github.com/iochub/iochub/pkg/chstore/chstoretest"
	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/eventgen"
	"github.com/iochub/iochub/pkg/httpedge"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/natsjs/natsjstest"
	"github.com/iochub/iochub/pkg/pii"
	"github.com/iochub/iochub/schemas"
	"github.com/iochub/iochub/services/gateway"
	"github.com/iochub/iochub/services/iochub/internal/hub"
)

const (
	e2eToken  = "e2e-producer-token-0123456789"
	e2ePIIKey = "e2e-pii-key-0123456789abcdef01234567"
)

var tables = []string{"education_attendance_v1", "feedback_report_v1", "health_bed_occupancy_v1", "health_visit_v1",
	"publicservice_dossier_v1", "traffic_flow_v1", "traffic_incident_v1"}

// startHub runs the whole hub in this process, as `iochub run` would.
func startHub(t *testing.T, dsn string) string {
	t.Helper()
	return startHubWith(t, dsn, nil)
}

// startHubWith starts a hub in this process; change, when not nil, adjusts
// the config first.
func startHubWith(t testing.TB, dsn string, change func(*hub.Config)) string {
	t.Helper()
	_, base := startHubInProcess(t, dsn, change)
	return base
}

// startHubInProcess is startHubWith that also gives the hub.
func startHubInProcess(t testing.TB, dsn string, change func(*hub.Config)) (*hub.Hub, string) {
	t.Helper()
	cfg := hub.DefaultConfig()
	cfg.HTTPAddr, cfg.ClickHouseDSN, cfg.Services, cfg.PIIKey, cfg.CompactEvery = "127.0.0.1:0", dsn, "gateway,aggregator", e2ePIIKey, 0
	cfg.NATS.DataDir, cfg.NATS.Listen = t.TempDir(), ""
	cfg.Streams.DedupWindow, cfg.Streams.EventsMaxBytes, cfg.Streams.AckWait = time.Hour, 1<<30, 5*time.Second
	cfg.Aggregator.BatchMaxEvents, cfg.Aggregator.BatchMaxWait = 2000, 50*time.Millisecond
	cfg.NATS.Access.Users = []natsjs.User{{Name: "dev-ops", Role: natsjs.RoleOperator, PasswordBcrypt: devOpsHash}}
	cfg.Aggregator.Producers = anyDirectProducer
	cfg.File.Gateway.Producers = []gateway.Producer{{Name: "e2e", TokenSHA256: httpedge.HashToken(e2eToken), Scope: event.Scope{Sources: []string{"*"}, Types: []string{"vn.ioc.*"}}}}
	if change != nil {
		change(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	log := zaptest.NewLogger(t)
	if _, fuzz := t.(*testing.F); fuzz {
		log = zap.NewNop() // a fuzz target's F must not log while inputs run
	}
	h, err := hub.Start(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatalf("start hub: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("hub: %v", err)
		}
	})
	return h, "http://" + h.HTTPAddr()
}

func postBatch(t *testing.T, base string, evs any) gateway.Response {
	t.Helper()
	body, _ := json.Marshal(evs)
	status, raw := postRaw(t, base, e2eToken, body)
	var r gateway.Response
	if err := json.Unmarshal(raw, &r); err != nil || status != http.StatusAccepted {
		t.Fatalf("post: %d %s", status, raw)
	}
	return r
}

// postRaw posts body as a batch with token: the status and the answer.
func postRaw(t *testing.T, base, token string, body []byte) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/events", bytes.NewReader(body))
	req.Header.Set("Content-Type", gateway.MediaBatch)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

func counts(t *testing.T, s *chstore.Store) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for _, tb := range tables {
		n, err := s.Count(context.Background(), tb)
		if err != nil {
			t.Fatal(err)
		}
		out[tb] = n
	}
	return out
}

func total(m map[string]uint64) (n uint64) {
	for _, v := range m {
		n += v
	}
	return n
}

func sameCounts(a, b map[string]uint64) bool {
	for _, tb := range tables {
		if a[tb] != b[tb] {
			return false
		}
	}
	return true
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	polltest.True(t, what, timeout, cond)
}

// assertExact checks that every table holds exactly want rows, and no
// (source, id) or stream sequence twice.
func assertExact(t *testing.T, s *chstore.Store, want map[string]uint64) {
	t.Helper()
	got := counts(t, s)
	for _, tb := range tables {
		var n, ids, seqs uint64
		q := "SELECT count(), uniqExact(source, event_id), uniqExact(stream_seq) FROM " + s.Qualified(tb)
		if err := s.QueryRow(context.Background(), q).Scan(&n, &ids, &seqs); err != nil {
			t.Fatal(err)
		}
		if n != want[tb] || ids != n || seqs != n {
			t.Errorf("%s: %d rows, %d distinct events, %d distinct sequences; want %d of each", tb, n, ids, seqs, want[tb])
		}
	}
	if t.Failed() {
		t.Fatalf("counts %v, want %v", got, want)
	}
}

func TestEveryTypeFromGatewayToClickHouseExactlyOnce(t *testing.T) {
	dsn := chstoretest.NewDatabase(t)
	base := startHub(t, dsn)
	store, err := chstore.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()

	var examples []json.RawMessage
	files, _ := fs.Glob(schemas.Examples, "*/examples/*.valid.json")
	for _, f := range files {
		b, _ := fs.ReadFile(schemas.Examples, f)
		var evs []json.RawMessage
		_ = json.Unmarshal(b, &evs)
		examples = append(examples, evs...)
	}
	want := map[string]uint64{}
	for _, raw := range examples {
		e, _ := event.Parse(raw)
		tn, _ := event.ParseType(e.Type)
		want[tn.Table()]++
	}
	gen := eventgen.New(7, "e2e")
	var generated []event.Event
	for i := 0; i < 3000; i++ {
		e := gen.Next()
		tn, _ := event.ParseType(e.Type)
		want[tn.Table()]++
		generated = append(generated, e)
	}
	postBatch(t, base, examples)
	postBatch(t, base, generated)
	// The same events posted again are retries: stored once.
	r := postBatch(t, base, examples)
	for _, a := range r.Accepted {
		if !a.Duplicate {
			t.Fatalf("a resend was not recognised as a retry: %+v", a)
		}
	}
	waitFor(t, "every event in its raw table", 60*time.Second, func() bool { return total(counts(t, store)) >= total(want) })
	time.Sleep(300 * time.Millisecond) // let a wrong extra row show up
	assertExact(t, store, want)

	// Typed columns, envelope columns, and personal data protected.
	p, _ := pii.New([]byte(e2ePIIKey))
	ctx := context.Background()
	var eventTime, ingest time.Time
	var source, subject, kind string
	var wait *int64
	var insured uint8
	var patient *string
	q := "SELECT event_time, ingest_time, source, subject, kind, wait_minutes, insured, patient_id FROM " + store.Qualified("health_visit_v1") + " WHERE event_id = 'visit-valid-1'"
	if err := store.QueryRow(ctx, q).Scan(&eventTime, &ingest, &source, &subject, &kind, &wait, &insured, &patient); err != nil {
		t.Fatal(err)
	}
	if !eventTime.Equal(time.Date(2026, 11, 20, 1, 15, 0, 0, time.UTC)) || ingest.Before(eventTime) || source != "/health/his/27-bvdk" ||
		subject != "27256" || kind != "emergency" || wait == nil || *wait != 12 || insured != 1 || patient == nil || *patient != p.Hash("BN-00981234") {
		t.Fatalf("row: %v %v %q %q %q %v %d %v", eventTime, ingest, source, subject, kind, wait, insured, patient)
	}
	for _, c := range []struct{ table, col, clear string }{
		{"feedback_report_v1", "reporter_phone", "0912345678"},
		{"publicservice_dossier_v1", "applicant_id_number", "027190001234"},
		{"traffic_incident_v1", "reporter_phone", "+84987654321"},
	} {
		var clear, hashed uint64
		q := fmt.Sprintf("SELECT countIf(%s = '%s'), countIf(startsWith(%s, '%s')) FROM %s", c.col, c.clear, c.col, pii.Prefix, store.Qualified(c.table))
		if err := store.QueryRow(ctx, q).Scan(&clear, &hashed); err != nil {
			t.Fatal(err)
		}
		if clear != 0 || hashed == 0 {
			t.Errorf("%s.%s: %d in clear, %d pseudonymized", c.table, c.col, clear, hashed)
		}
	}
	var dropped uint64
	if err := store.QueryRow(ctx, "SELECT count() FROM system.columns WHERE database = ? AND name IN ('reporter_name', 'applicant_name')", store.Database()).Scan(&dropped); err != nil || dropped != 0 {
		t.Errorf("dropped personal fields have %d columns (%v)", dropped, err)
	}

	// Readiness reports both dependencies.
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	var ready map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&ready)
	resp.Body.Close()
	if resp.StatusCode != 200 || ready["jetstream"] != "ok" || ready["clickhouse"] != "ok" {
		t.Fatalf("/readyz: %d %v", resp.StatusCode, ready)
	}
}

// binary builds the iochub binary once for the tests that run it as a child process.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// iochubBinary builds bin/iochub and bin/iochub-sim once for the tests
// that run them as processes, and returns the first.
func iochubBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "iochub-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "iochub")
		for pkg, out := range map[string]string{".": binPath, "../../sim/cmd/iochub-sim": filepath.Join(dir, "iochub-sim")} {
			if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// simBinary is iochub-sim, built beside iochub.
func simBinary(t *testing.T) string {
	t.Helper()
	return filepath.Join(filepath.Dir(iochubBinary(t)), "iochub-sim")
}

// publisher publishes n generated events straight onto NATS in batches, at
// most rate events/s, and returns the expected row count per table.
func publishGenerated(t *testing.T, js jetstream.JetStream, n, rate int, seed uint64) (map[string]uint64, <-chan struct{}) {
	t.Helper()
	return publishGeneratedTo(t, []jetstream.JetStream{js}, n, rate, seed)
}

// publishGeneratedTo is publishGenerated onto each of jss: the same
// messages, each batch to every one in turn.
func publishGeneratedTo(t *testing.T, jss []jetstream.JetStream, n, rate int, seed uint64) (map[string]uint64, <-chan struct{}) {
	t.Helper()
	gen := eventgen.New(seed, fmt.Sprintf("pub%d", seed))
	want := map[string]uint64{}
	var batches [][]*nats.Msg
	var batch []*nats.Msg
	for i := 0; i < n; i++ {
		e := gen.Next()
		tn, _ := event.ParseType(e.Type)
		want[tn.Table()]++
		body, _ := json.Marshal(e)
		m, _ := natsjs.EventMsg(e, body)
		if i%2 == 0 { // half as if from the gateway (already pseudonymized), half straight from a producer
			m.Header.Set(natsjs.HeaderPseudonymized, "hmac-sha256")
		}
		batch = append(batch, m)
		if len(batch) == 500 {
			batches = append(batches, batch)
			batch = nil
		}
	}
	if len(batch) > 0 {
		batches = append(batches, batch)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.Duration(float64(time.Second) * 500 / float64(rate))
		for _, b := range batches {
			start := time.Now()
			for _, js := range jss {
				for i, o := range natsjs.PublishAll(context.Background(), js, b) {
					if o.Err != nil {
						t.Errorf("publish %d: %v", i, o.Err)
						return
					}
				}
			}
			time.Sleep(tick - time.Since(start))
		}
	}()
	return want, done
}

type child struct {
	cmd *exec.Cmd
	log *bytes.Buffer
}

// The NATS users of deploy/iochub.dev.yaml: the tests connect to a hub's
// embedded server as its operator, and the simulator's sensors publish as
// dev-sensors.
const (
	devOpsHash    = "$2a$06$jPEn9HHwOju9MHEiNv/gUuJ21SSpUOfJo5ZYo11uP.Ix9q7ppVNqq" // dev-nats-password-not-for-production
	devSensorHash = "$2a$06$vXPv/fv6t446RS2pyYYZD.tuv2I/iA7OLkudUaRNBWLH/U1dVnX4a" // dev-sensor-password-not-for-production
)

// opsURL is the URL of a hub's embedded server at addr, as its operator.
func opsURL(addr string) string {
	return "nats://dev-ops:dev-nats-password-not-for-production@" + addr
}

// anyDirectProducer is a direct NATS producer that may send anything: the
// tests publish half their events straight onto NATS.
var anyDirectProducer = []event.Scope{{Sources: []string{"*"}, Types: []string{"vn.ioc.*"}}}

// startAggregatorProcess runs `iochub run --services aggregator` against
// srv as its operator, with a direct producer of anything in its config.
func startAggregatorProcess(t *testing.T, srv *natsjstest.Server, dsn string) *child {
	t.Helper()
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	conf := filepath.Join(t.TempDir(), "iochub.yaml")
	if err := os.WriteFile(conf, []byte("nats:\n  users:\n    - {name: any, role: producer, nkey: "+pub+", sources: [\"*\"], types: [\"vn.ioc.*\"]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(iochubBinary(t), "run", "--services", "aggregator", "--nats-url", srv.ClientURL(), "--nats-nkey", srv.OperatorSeedFile(t),
		"--config", conf, "--clickhouse-dsn", dsn,
		"--http-addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--ack-wait", "2s", "--batch-max-events", "1000", "--batch-max-wait", "50ms")
	cmd.Env = append(os.Environ(), "IOCHUB_PII_KEY="+e2ePIIKey)
	var log bytes.Buffer
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, log: &log}
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			_ = c.cmd.Process.Kill()
			_ = c.cmd.Wait()
		}
	})
	return c
}

func (c *child) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = c.cmd.Wait()
}

func TestAggregatorKilledMidStreamLeavesCountsExact(t *testing.T) {
	burnCPU(t)
	srv := natsjstest.Run(t)
	_, js := srv.Declared(t, natsjs.StreamLimits{AckWait: 2 * time.Second})
	dsn := chstoretest.NewDatabase(t)
	store, err := chstore.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()

	const n = 40_000
	want, published := publishGenerated(t, js, n, 8000, 11)
	agg := startAggregatorProcess(t, srv, dsn)
	// Kill it three times, at different depths of the stream.
	for _, at := range []uint64{3000, 12000, 25000} {
		waitFor(t, fmt.Sprintf("%d rows before a kill", at), 60*time.Second, func() bool {
			c, err := storeCounts(store)
			return err == nil && total(c) >= at
		})
		agg.kill(t)
		t.Logf("SIGKILL at %d rows", total(counts(t, store)))
		agg = startAggregatorProcess(t, srv, dsn)
	}
	<-published
	waitFor(t, "every event stored after the kills", 120*time.Second, func() bool {
		c, err := storeCounts(store)
		return err == nil && total(c) >= n
	})
	waitFor(t, "the aggregator caught up", 30*time.Second, func() bool {
		ok, _ := natsjs.CaughtUp(context.Background(), js)
		return ok
	})
	assertExact(t, store, want)
	assertRollupsMatchRaw(t, store)
	agg.kill(t)
}

// assertRollupsMatchRaw checks the counter rollups hold each raw row once:
// the views saw every insert the kills interrupted and retried, and no row
// twice.
func assertRollupsMatchRaw(t *testing.T, s *chstore.Store) {
	t.Helper()
	for _, c := range []struct{ rollup, sum, raw string }{
		{"kpi_visit_hourly", "visits", "health_visit_v1"},
		{"kpi_flow_hourly", "windows", "traffic_flow_v1"},
	} {
		var inRollup, inRaw uint64
		if err := s.QueryRow(context.Background(), "SELECT sum("+c.sum+") FROM "+s.Qualified(c.rollup)).Scan(&inRollup); err != nil {
			t.Fatal(err)
		}
		if err := s.QueryRow(context.Background(), "SELECT count() FROM "+s.Qualified(c.raw)).Scan(&inRaw); err != nil {
			t.Fatal(err)
		}
		if inRollup != inRaw || inRaw == 0 {
			t.Errorf("%s counts %d rows of %s, which has %d", c.rollup, inRollup, c.raw, inRaw)
		}
	}
}

func storeCounts(s *chstore.Store) (map[string]uint64, error) {
	out := map[string]uint64{}
	for _, tb := range tables {
		n, err := s.Count(context.Background(), tb)
		if err != nil {
			return nil, err
		}
		out[tb] = n
	}
	return out, nil
}
