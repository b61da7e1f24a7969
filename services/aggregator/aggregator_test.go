package aggregator_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/iochub/iochub/internal/polltest"
	"github.com/iochub/iochub/pkg/chstore"
	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/natsjs/natsjstest"
	"github.com/iochub/iochub/pkg/pii"
	"github.com/iochub/iochub/pkg/schema"
	"github.com/iochub/iochub/schemas"
	"github.com/iochub/iochub/services/aggregator"
)

const piiKey = "test-pii-key-0123456789abcdef0123"

type env struct {
	js    jetstream.JetStream
	store *chstore.Store
	reg   *schema.Registry
	p     *pii.Pseudonymizer
}

func newEnv(t *testing.T) env {
	t.Helper()
	return newEnvWith(t, natsjs.StreamLimits{})
}

// run starts an aggregator over store until the test ends.
func (e env) run(t *testing.T, store aggregator.Store, cfg aggregator.Config) *aggregator.Aggregator {
	t.Helper()
	if cfg.BatchMaxWait == 0 {
		cfg.BatchMaxWait = 20 * time.Millisecond
	}
	cfg.BackoffMin, cfg.BackoffMax = 10*time.Millisecond, 100*time.Millisecond
	cfg.AckWait = 2 * time.Second
	if cfg.Producers == nil { // the tests publish straight onto NATS, as a producer of anything would
		cfg.Producers = anyProducer
	}
	a := aggregator.New(cfg, e.js, store, e.reg, e.p, zaptest.NewLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return a
}

// anyProducer is a direct NATS producer that may send anything.
var anyProducer = []event.Scope{{Sources: []string{"*"}, Types: []string{"vn.ioc.*"}}}

type example struct {
	Type string
	Raw  json.RawMessage
	Ev   event.Event
}

func examples(t *testing.T, glob string) []example {
	t.Helper()
	files, _ := fs.Glob(schemas.Examples, glob)
	var out []example
	for _, f := range files {
		b, _ := fs.ReadFile(schemas.Examples, f)
		var raws []json.RawMessage
		if err := json.Unmarshal(b, &raws); err != nil {
			t.Fatal(err)
		}
		for _, r := range raws {
			ev, err := event.Parse(r)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, example{Type: ev.Type, Raw: r, Ev: ev})
		}
	}
	return out
}

// publishDirect publishes events straight onto NATS, as a producer inside the
// data centre would (no gateway, so no pseudonymized header).
func publishDirect(t *testing.T, js jetstream.JetStream, evs []example, idSuffix string) {
	t.Helper()
	var msgs []*nats.Msg
	for _, ex := range evs {
		ev := ex.Ev
		ev.ID += idSuffix
		body, _ := json.Marshal(ev)
		m, err := natsjs.EventMsg(ev, body)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	for i, o := range natsjs.PublishAll(context.Background(), js, msgs) {
		if o.Err != nil {
			t.Fatalf("publish %d: %v", i, o.Err)
		}
	}
}

func countAll(t *testing.T, s *chstore.Store, reg *schema.Registry) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for _, ty := range reg.Types() {
		n, err := s.Count(context.Background(), ty.Name.Table())
		if err != nil {
			t.Fatal(err)
		}
		out[ty.Name.Table()] = n
	}
	return out
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	polltest.True(t, what, timeout, cond)
}

func expected(evs []example, times int) map[string]uint64 {
	out := map[string]uint64{}
	for _, ex := range evs {
		tn, _ := event.ParseType(ex.Type)
		out[tn.Table()] += uint64(times)
	}
	return out
}

func equal(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func streamMsgs(t *testing.T, js jetstream.JetStream, name string) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.Msgs
}

func TestMaterializesEveryTypeWithPersonalDataProtected(t *testing.T) {
	e := newEnv(t)
	evs := examples(t, "*/examples/*.valid.json")
	publishDirect(t, e.js, evs, "")
	a := e.run(t, e.store, aggregator.Config{})
	want := expected(evs, 1)
	if len(want) != 7 {
		t.Fatalf("examples cover %d types", len(want))
	}
	waitFor(t, "every example in its raw table", 20*time.Second, func() bool { return equal(countAll(t, e.store, e.reg), want) })
	waitFor(t, "IOC_EVENTS drained", 10*time.Second, func() bool { ok, _ := natsjs.CaughtUp(context.Background(), e.js); return ok })
	if a.Stats.DeadLettered.Load() != 0 {
		t.Fatalf("dead-lettered %d valid events", a.Stats.DeadLettered.Load())
	}
	ctx := context.Background()
	var phone *string
	var lat *float64
	var source string
	var seq uint64
	err := e.store.QueryRow(ctx, "SELECT reporter_phone, location_lat, source, stream_seq FROM "+e.store.Qualified("feedback_report_v1")+" WHERE event_id = 'report-valid-1'").Scan(&phone, &lat, &source, &seq)
	if err != nil {
		t.Fatal(err)
	}
	if phone == nil || *phone != e.p.Hash("0912345678") || lat == nil || *lat != 21.1861 || source != "/feedback/tong-dai-1022" || seq == 0 {
		t.Fatalf("row: phone %v lat %v source %q seq %d", phone, lat, source, seq)
	}
	// No clear personal data anywhere in ClickHouse.
	for _, q := range []string{
		"SELECT count() FROM " + e.store.Qualified("feedback_report_v1") + " WHERE reporter_phone = '0912345678'",
		"SELECT count() FROM " + e.store.Qualified("publicservice_dossier_v1") + " WHERE applicant_id_number = '027190001234'",
		"SELECT count() FROM system.columns WHERE database = '" + e.store.Database() + "' AND name IN ('reporter_name', 'applicant_name')",
	} {
		var n uint64
		if err := e.store.QueryRow(ctx, q).Scan(&n); err != nil || n != 0 {
			t.Fatalf("%s = %d, %v", q, n, err)
		}
	}
}

func TestInvalidEventsLandInTheDeadLetterStreamWithReason(t *testing.T) {
	e := newEnv(t)
	bad := examples(t, "*/examples/*.invalid.json")
	good := examples(t, "*/examples/*.valid.json")
	publishDirect(t, e.js, bad, "")
	publishDirect(t, e.js, good, "")
	// An event whose type does not match its subject.
	m := nats.NewMsg("ioc.health.visit.v1")
	m.Data = good[0].Raw
	if _, err := e.js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	// An event that is not JSON.
	m = nats.NewMsg("ioc.traffic.flow.v1")
	m.Data = []byte("not json")
	if _, err := e.js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	e.run(t, e.store, aggregator.Config{})
	wantDLQ := uint64(len(bad) + 2)
	waitFor(t, "dead letters", 20*time.Second, func() bool { return streamMsgs(t, e.js, natsjs.DLQStream) == wantDLQ })
	waitFor(t, "good events stored", 20*time.Second, func() bool { return equal(countAll(t, e.store, e.reg), expected(good, 1)) })
	waitFor(t, "IOC_EVENTS drained", 10*time.Second, func() bool { ok, _ := natsjs.CaughtUp(context.Background(), e.js); return ok })

	s, _ := e.js.Stream(context.Background(), natsjs.DLQStream)
	reasons := map[string]string{}
	for seq := uint64(1); seq <= wantDLQ; seq++ {
		rm, err := s.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		if rm.Header.Get(natsjs.HeaderDLQSequence) == "" || rm.Header.Get(natsjs.HeaderDLQSubject) == "" || !strings.HasPrefix(rm.Subject, "dlq.") {
			t.Fatalf("dead letter %d lacks its origin: %s %v", seq, rm.Subject, rm.Header)
		}
		reasons[rm.Header.Get(natsjs.HeaderDLQSubject)+" "+string(rm.Data)[:min(60, len(rm.Data))]] = rm.Header.Get(natsjs.HeaderDLQReason)
	}
	joined := fmt.Sprint(reasons)
	for _, want := range []string{"schema: vn.ioc.health.visit.v1 data: /kind", "(enum)", "does not match subject", "envelope:"} {
		if !strings.Contains(joined, want) {
			t.Errorf("no dead-letter reason mentions %q: %v", want, reasons)
		}
	}
}

// flakyStore fails some inserts: the failure happens after the rows are
// written (the worst case: ClickHouse stored them but the answer was lost), or
// before, for a while.
type flakyStore struct {
	*chstore.Store
	mu          sync.Mutex
	afterWrite  int       // fail this many inserts after writing them
	downUntil   time.Time // fail every insert before this time without writing
	rejectEvent string    // reject every insert holding a row with this event id
	calls       atomic.Int64
}

func (f *flakyStore) Insert(ctx context.Context, table string, cols []string, rows [][]any) error {
	f.calls.Add(1)
	f.mu.Lock()
	down := time.Now().Before(f.downUntil)
	after := f.afterWrite > 0
	if after {
		f.afterWrite--
	}
	f.mu.Unlock()
	if down {
		return fmt.Errorf("insert into %s: %w: connection refused", table, chstore.ErrUnavailable)
	}
	if f.rejectEvent != "" {
		for _, r := range rows {
			if r[0] == f.rejectEvent {
				return errors.New("code: 53, message: Type mismatch (a poison row)")
			}
		}
	}
	if err := f.Store.Insert(ctx, table, cols, rows); err != nil {
		return err
	}
	if after {
		return fmt.Errorf("insert into %s: %w: connection reset after send", table, chstore.ErrUnavailable)
	}
	return nil
}

func TestLostInsertAnswerDoesNotDuplicate(t *testing.T) {
	e := newEnv(t)
	evs := examples(t, "*/examples/*.valid.json")
	fs := &flakyStore{Store: e.store, afterWrite: 3}
	publishDirect(t, e.js, evs, "")
	a := e.run(t, fs, aggregator.Config{})
	want := expected(evs, 1)
	waitFor(t, "every example stored", 20*time.Second, func() bool { return equal(countAll(t, e.store, e.reg), want) })
	waitFor(t, "IOC_EVENTS drained", 10*time.Second, func() bool { ok, _ := natsjs.CaughtUp(context.Background(), e.js); return ok })
	if got := countAll(t, e.store, e.reg); !equal(got, want) {
		t.Fatalf("counts = %v, want %v", got, want)
	}
	if a.Stats.Skipped.Load() == 0 || a.Stats.Retries.Load() < 3 {
		t.Fatalf("stats: skipped %d retries %d: the retry did not find the written rows", a.Stats.Skipped.Load(), a.Stats.Retries.Load())
	}
}

// repairs records the rollup repairs the aggregator asks for.
type repairs struct {
	mu    sync.Mutex
	calls []string // table from–to
}

func (r *repairs) Repair(_ context.Context, table string, from, to time.Time, fresh func() error) error {
	if err := fresh(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, fmt.Sprintf("%s %d-%d", table, from.Unix(), to.Unix()))
	return nil
}

// An insert whose answer is lost after its rows were written: the retry
// finds the rows, and asks for the rollups of exactly those tables to be
// rebuilt over the rows' event times (their views' rows may be missing);
// a run without a lost answer asks for none.
func TestLostInsertAnswerRepairsTheRollups(t *testing.T) {
	e := newEnv(t)
	evs := examples(t, "health/examples/visit.v1.valid.json")
	rep := &repairs{}
	publishDirect(t, e.js, evs, "")
	a := e.run(t, &flakyStore{Store: e.store, afterWrite: 1}, aggregator.Config{Rollups: rep})
	want := expected(evs, 1)
	waitFor(t, "every example stored", 20*time.Second, func() bool { return countAll(t, e.store, e.reg)["health_visit_v1"] == want["health_visit_v1"] })
	waitFor(t, "IOC_EVENTS drained", 10*time.Second, func() bool { ok, _ := natsjs.CaughtUp(context.Background(), e.js); return ok })
	from, to := evs[0].Ev.Time.Unix(), evs[0].Ev.Time.Unix()
	for _, ex := range evs {
		from, to = min(from, ex.Ev.Time.Unix()), max(to, ex.Ev.Time.Unix())
	}
	rep.mu.Lock()
	calls := rep.calls
	rep.mu.Unlock()
	if wantCall := fmt.Sprintf("health_visit_v1 %d-%d", from, to); len(calls) != 1 || calls[0] != wantCall || a.Stats.Repairs.Load() != 1 {
		t.Fatalf("repairs %v (%d), want [%s]", calls, a.Stats.Repairs.Load(), wantCall)
	}

	// Every answer arrives: no repair.
	e2 := newEnv(t)
	rep2 := &repairs{}
	publishDirect(t, e2.js, evs, "")
	e2.run(t, e2.store, aggregator.Config{Rollups: rep2})
	waitFor(t, "every example stored", 20*time.Second, func() bool { return countAll(t, e2.store, e2.reg)["health_visit_v1"] == want["health_visit_v1"] })
	waitFor(t, "IOC_EVENTS drained", 10*time.Second, func() bool { ok, _ := natsjs.CaughtUp(context.Background(), e2.js); return ok })
	if len(rep2.calls) != 0 {
		t.Fatalf("repairs %v without a lost answer", rep2.calls)
	}
}

func TestClickHouseDownIsRetriedNeverDeadLettered(t *testing.T) {
	e := newEnv(t)
	evs := examples(t, "*/examples/*.valid.json")
	// Down for longer than the ack wait: InProgress must hold the batch.
	fs := &flakyStore{Store: e.store, downUntil: time.Now().Add(3 * time.Second)}
	publishDirect(t, e.js, evs, "")
	a := e.run(t, fs, aggregator.Config{})
	waitFor(t, "every example stored", 30*time.Second, func() bool { return equal(countAll(t, e.store, e.reg), expected(evs, 1)) })
	waitFor(t, "IOC_EVENTS drained", 10*time.Second, func() bool { ok, _ := natsjs.CaughtUp(context.Background(), e.js); return ok })
	if a.Stats.DeadLettered.Load() != 0 || streamMsgs(t, e.js, natsjs.DLQStream) != 0 {
		t.Fatal("ClickHouse being down dead-lettered events")
	}
	if fs.calls.Load() < 5 {
		t.Fatalf("only %d insert attempts while down", fs.calls.Load())
	}
}

func TestRowClickHouseKeepsRejectingIsDeadLettered(t *testing.T) {
	e := newEnv(t)
	evs := examples(t, "*/examples/*.valid.json")
	poison := evs[0].Ev.ID
	fs := &flakyStore{Store: e.store, rejectEvent: poison}
	publishDirect(t, e.js, evs, "")
	a := e.run(t, fs, aggregator.Config{MaxAttempts: 2})
	want := expected(evs, 1)
	want[mustTable(evs[0].Type)]--
	waitFor(t, "the other events stored", 20*time.Second, func() bool { return equal(countAll(t, e.store, e.reg), want) })
	waitFor(t, "the poison row dead-lettered", 20*time.Second, func() bool { return streamMsgs(t, e.js, natsjs.DLQStream) == 1 })
	s, _ := e.js.Stream(context.Background(), natsjs.DLQStream)
	rm, err := s.GetMsg(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rm.Header.Get(natsjs.HeaderDLQReason), "clickhouse rejected the row") || !strings.Contains(string(rm.Data), poison) {
		t.Fatalf("dead letter: %v %s", rm.Header, rm.Data)
	}
	if a.Stats.DeadLettered.Load() != 1 {
		t.Fatalf("dead-lettered %d", a.Stats.DeadLettered.Load())
	}
}

func mustTable(typ string) string { tn, _ := event.ParseType(typ); return tn.Table() }

// A stop that comes while the aggregator is still starting (a hub stopped
// in its first second) is a stop: Run returns nil, not the canceled start
// step's error.
func TestStoppedWhileStartingIsNoError(t *testing.T) {
	e := newEnv(t)
	a := aggregator.New(aggregator.Config{Producers: anyProducer}, e.js, e.store, e.reg, e.p, zaptest.NewLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Run(ctx); err != nil {
		t.Fatalf("Run with its context ended before the start: %v, want nil", err)
	}
}

// An aggregator whose start JetStream does not answer yet (here: its
// consumer not declared, as a cluster in election does not answer) tries
// again, and consumes once it can; it does not give up and stop the hub.
func TestStartIsTriedAgainUntilJetStreamAnswers(t *testing.T) {
	e := newEnv(t)
	srv := natsjstest.Run(t)
	_, js := srv.Connect(t)
	a := aggregator.New(aggregator.Config{Producers: anyProducer, BatchMaxWait: 20 * time.Millisecond, BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond},
		js, e.store, e.reg, e.p, zaptest.NewLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	select {
	case err := <-done:
		t.Fatalf("Run returned before its consumer existed: %v", err)
	case <-time.After(300 * time.Millisecond): // an absence: it is still trying
	}
	_, djs := srv.Declared(t, natsjs.StreamLimits{AckWait: 2 * time.Second})
	evs := examples(t, "health/examples/visit.v1.valid.json")
	publishDirect(t, djs, evs, "")
	waitFor(t, "the examples stored", 20*time.Second, func() bool {
		return countAll(t, e.store, e.reg)["health_visit_v1"] == uint64(len(evs))
	})
}
