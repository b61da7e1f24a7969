package monitor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/zap/zaptest"

	"github.com/iochub/iochub/internal/burn"
	"github.com/iochub/iochub/internal/polltest"
	"github.com/iochub/iochub/pkg/admit"
	"github.com/iochub/iochub/pkg/alertlog"
	"github.com/iochub/iochub/pkg/audit"
	"github.com/iochub/iochub/pkg/chstore/chstoretest"
	"github.com/iochub/iochub/pkg/dlq"
	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/eventgen"
	"github.com/iochub/iochub/pkg/httpedge"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/natsjs/natsjstest"
	"github.com/iochub/iochub/pkg/pii"
	"github.com/iochub/iochub/pkg/schema"
	"github.com/iochub/iochub/schemas"
	"github.com/iochub/iochub/services/aggregator"
	"github.com/iochub/iochub/services/monitor"
)

func setup(t *testing.T, cfg monitor.Config) (*monitor.Monitor, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	srv := natsjstest.Run(t)
	nc, js := srv.Declared(t, natsjs.StreamLimits{AckWait: 2 * time.Second})
	cfg.Admins = append(cfg.Admins, monitor.Admin{Name: "ops", TokenSHA256: httpedge.HashToken(adminToken)})
	if cfg.AlertMinDuration == 0 { // at once, unless the test is about them
		cfg.AlertMinDuration = time.Nanosecond
	}
	if cfg.AlertResolveDelay == 0 {
		cfg.AlertResolveDelay = time.Nanosecond
	}
	return monitor.New(cfg, monitor.Deps{NC: nc, JS: js, Log: zaptest.NewLogger(t)}), nc, js
}

const adminToken = "ops-admin-token"

func publish(t *testing.T, js jetstream.JetStream, evs ...event.Event) {
	t.Helper()
	var msgs []*nats.Msg
	for _, e := range evs {
		m, err := natsjs.EventMsg(e, e.AppendJSON(nil))
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	for _, o := range natsjs.PublishAll(context.Background(), js, msgs) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
	}
}

func firingOn(m *monitor.Monitor, name, subject string) *monitor.Alert {
	alerts, _ := m.Alerts()
	for _, a := range alerts {
		if a.Name == name && a.Subject == subject {
			return &a
		}
	}
	return nil
}

func firing(m *monitor.Monitor, name string) *monitor.Alert {
	alerts, _ := m.Alerts()
	for _, a := range alerts {
		if a.Name == name {
			return &a
		}
	}
	return nil
}

// TestStalledAggregatorRaisesLagAlert: nothing consumes IOC_EVENTS while
// events keep coming; the aggregator's pending count grows and, after the
// lag window, lag_growing fires; once the backlog is taken, it resolves.
func TestStalledAggregatorRaisesLagAlert(t *testing.T) {
	m, _, js := setup(t, monitor.Config{LagWindow: 400 * time.Millisecond})
	ctx := context.Background()
	g := eventgen.New(1, "lag")
	var pend []uint64
	for range 6 {
		publish(t, js, g.Next(), g.Next(), g.Next())
		m.Sample(ctx)
		for _, c := range m.Snapshot().Consumers {
			if c.Name == natsjs.AggregatorConsumer {
				pend = append(pend, c.Pending)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(pend) != 6 || pend[5] != 18 || pend[0] != 3 {
		t.Fatalf("pending over the samples: %v", pend)
	}
	a := firing(m, monitor.AlertLagGrowing)
	if a == nil || !strings.Contains(a.Message, "grew") {
		t.Fatalf("lag_growing not firing: %+v", a)
	}
	// The aggregator catches up: pending drops, the alert resolves.
	c, _ := js.Consumer(ctx, natsjs.EventsStream, natsjs.AggregatorConsumer)
	batch, _ := c.Fetch(18, jetstream.FetchMaxWait(2*time.Second))
	for msg := range batch.Messages() {
		_ = msg.Ack()
	}
	time.Sleep(100 * time.Millisecond)
	m.Sample(ctx)
	if firing(m, monitor.AlertLagGrowing) != nil {
		t.Error("lag_growing still firing after the backlog was taken")
	}
	_, hist := m.Alerts()
	if len(hist) < 2 || hist[len(hist)-1].State != "resolved" {
		t.Errorf("history %+v", hist)
	}
}

// TestSilentSourceRaisesFreshnessAlert: a source expected every 300 ms
// sends once, then falls silent. A source never heard from is silent only
// once its interval has passed since the start: the hourly one is
// "starting", the 400 ms one fires after 400 ms.
func TestSilentSourceRaisesFreshnessAlert(t *testing.T) {
	notified := make(chan []byte, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b bytes.Buffer
		_, _ = b.ReadFrom(r.Body)
		notified <- b.Bytes()
	}))
	defer hook.Close()
	m, _, js := setup(t, monitor.Config{Sources: map[string]time.Duration{"/health/his/": 300 * time.Millisecond, "/education/sms": time.Hour,
		"/traffic/cam": 400 * time.Millisecond},
		AlertWebhook: hook.URL})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = m.Run(ctx) }()
	waitReady(t, m)
	g := eventgen.New(2, "fresh")
	publish(t, js, g.Of("vn.ioc.health.visit.v1"))
	polltest.True(t, "the hospital's event counted", 10*time.Second, func() bool {
		m.Sample(context.Background())
		return sourceEvents(m, "/health/his/") == 1
	})
	for _, s := range m.Snapshot().Sources {
		if strings.HasPrefix(s.Source, "/health/his/") && (s.Freshness != "ok" || s.Events != 1) {
			t.Fatalf("just after its event: %+v", s)
		}
	}
	for _, s := range m.Snapshot().Sources {
		if s.Source == "/education/sms" && s.Freshness != "starting" {
			t.Fatalf("an hourly source never heard from, seconds after the start: %+v, want starting", s)
		}
	}
	polltest.True(t, "the camera never heard from, late once 400 ms have passed since the start", 10*time.Second, func() bool {
		m.Sample(context.Background())
		return firingOn(m, monitor.AlertSourceSilent, "/traffic/cam") != nil
	})
	alerts, _ := m.Alerts()
	for _, a := range alerts {
		if a.Subject == "/education/sms" {
			t.Fatalf("the hourly source is reported silent before its first hour: %+v", a)
		}
	}
	polltest.True(t, "the hospital silent past its 300 ms", 10*time.Second, func() bool {
		m.Sample(context.Background())
		alerts, _ := m.Alerts()
		for _, x := range alerts {
			if x.Name == monitor.AlertSourceSilent && strings.HasPrefix(x.Subject, "/health/his/") {
				return true
			}
		}
		return false
	})
	alerts, _ = m.Alerts()
	silent := 0
	for _, a := range alerts {
		if a.Name == monitor.AlertSourceSilent && strings.HasPrefix(a.Subject, "/health/his/") {
			silent++
		}
	}
	if silent != 1 {
		t.Fatalf("source_silent for the hospital: %+v", alerts)
	}
	select {
	case b := <-notified:
		if !bytes.Contains(b, []byte(monitor.AlertSourceSilent)) {
			t.Errorf("the alert webhook got %s", b)
		}
	case <-time.After(5 * time.Second):
		t.Error("the alert webhook got nothing")
	}
}

// fixedRegistry is the schemas with health.visit's kind allowing
// "telehealth": the schema fix the dead letters wait for.
func fixedRegistry(t *testing.T) *schema.Registry {
	t.Helper()
	mfs := fstest.MapFS{}
	_ = fs.WalkDir(schemas.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := fs.ReadFile(schemas.FS, p)
		if p == "health/visit.v1.json" {
			b = bytes.Replace(b, []byte(`"emergency"`), []byte(`"emergency", "telehealth"`), 1)
		}
		mfs[p] = &fstest.MapFile{Data: b}
		return nil
	})
	reg, err := schema.Load(mfs)
	if err != nil {
		t.Fatal(err)
	}
	ty, _ := reg.Lookup("vn.ioc.health.visit.v1")
	data, _ := schema.DecodeData([]byte(`{"visit_id":"x","facility_code":"F","area_code":"27256","kind":"telehealth","age_band":"25-44","sex":"male","insured":true,"started_at":"2026-11-23T01:00:00Z"}`))
	if err := ty.Validate(data); err != nil {
		t.Fatalf("the fixed schema does not take telehealth: %v", err)
	}
	return reg
}

// TestDeadLettersReplayedExactlyOnceAfterASchemaFix: visits of a kind the
// schema does not know are dead-lettered by the aggregator with the
// reason; after the schema is fixed, a replay puts each into ClickHouse
// once and a second replay adds nothing.
func TestDeadLettersReplayedExactlyOnceAfterASchemaFix(t *testing.T) {
	m, _, js := setup(t, monitor.Config{})
	ctx := context.Background()
	store := chstoretest.Open(t)
	strict, _ := schema.Load(schemas.FS)
	fixed := fixedRegistry(t)
	if err := store.Migrate(ctx, fixed); err != nil {
		t.Fatal(err)
	}
	ps, _ := pii.New([]byte("monitor-test-pii-key-0123456789abcdef"))
	runAgg := func(reg *schema.Registry) (stop func()) {
		actx, cancel := context.WithCancel(ctx)
		agg := aggregator.New(aggregator.Config{Producers: []event.Scope{{Sources: []string{"*"}, Types: []string{"vn.ioc.*"}}}, BatchMaxEvents: 100, BatchMaxWait: 20 * time.Millisecond, AckWait: 2 * time.Second}, js, store, reg, ps, zaptest.NewLogger(t))
		done := make(chan struct{})
		go func() { _ = agg.Run(actx); close(done) }()
		return func() { cancel(); <-done }
	}
	m.Sample(ctx)
	stop := runAgg(strict)
	g := eventgen.New(3, "tele")
	var evs []event.Event
	for i := range 5 {
		e := g.Of("vn.ioc.health.visit.v1")
		var d map[string]any
		_ = json.Unmarshal(e.Data, &d)
		d["kind"] = "telehealth"
		e.Data, _ = json.Marshal(d)
		e.ID = "tele-" + string(rune('a'+i))
		evs = append(evs, e)
	}
	publish(t, js, evs...)
	polltest.True(t, "five dead letters", 20*time.Second, func() bool { return len(m.ListDLQ(ctx, 100)) >= 5 })
	stop()
	letters := m.ListDLQ(ctx, 100)
	if len(letters) != 5 {
		t.Fatalf("%d dead letters, want 5", len(letters))
	}
	for _, d := range letters {
		if !strings.Contains(d.Reason, "/kind") || d.Stage != "aggregator" || !d.Replayable || d.Type != "vn.ioc.health.visit.v1" {
			t.Errorf("dead letter %+v", d)
		}
	}
	m.Sample(ctx)
	if firing(m, monitor.AlertDeadLetters) == nil {
		t.Error("dead_letters_arriving not firing")
	}
	if s := m.Snapshot().DLQ; s.Depth != 5 || s.ByType["health.visit.v1"] != 5 {
		t.Errorf("dlq stats %+v", s)
	}
	// Before the fix a replay is refused and the letter stays.
	if err := m.Replay(ctx, monitor.Who{Actor: "test", Role: "operator", Via: "test"}, letters[0].Seq, admit.New(strict, ps, 0)); !errors.Is(err, dlq.ErrStillInvalid) {
		t.Fatalf("replay before the fix: %v", err)
	}
	stop = runAgg(fixed)
	defer stop()
	// Over the API, with the admin token.
	api := http.NewServeMux()
	m.Register(api, admit.New(fixed, ps, 0))
	hs := httptest.NewServer(api)
	defer hs.Close()
	replay := func() map[string]any {
		req, _ := http.NewRequest(http.MethodPost, hs.URL+"/v1/ops/dlq/replay", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(res.Body).Decode(&out)
		return out
	}
	if out := replay(); out["replayed"] != float64(5) {
		t.Fatalf("first replay: %v", out)
	}
	count := func() uint64 {
		var n uint64
		_ = store.QueryRow(ctx, "SELECT count() FROM "+store.Qualified("health_visit_v1")+" WHERE kind = 'telehealth'").Scan(&n)
		return n
	}
	polltest.True(t, "five telehealth rows", 20*time.Second, func() bool { return count() >= 5 })
	if out := replay(); out["replayed"] != float64(0) {
		t.Fatalf("second replay: %v", out)
	}
	// Replaying the same event again straight onto NATS is a duplicate too.
	time.Sleep(500 * time.Millisecond)
	if n := count(); n != 5 {
		t.Fatalf("%d telehealth rows after two replays, want 5", n)
	}
	req, _ := http.NewRequest(http.MethodPost, hs.URL+"/v1/ops/dlq/replay", nil)
	if res, _ := http.DefaultClient.Do(req); res.StatusCode != 401 {
		t.Errorf("replay without a token: %d", res.StatusCode)
	}
}

// TestMetricsParseAndMatchTheJSON: /metrics is valid Prometheus text and
// its figures are the JSON view's.
func TestMetricsParseAndMatchTheJSON(t *testing.T) {
	m, _, js := setup(t, monitor.Config{Sources: map[string]time.Duration{"/traffic/": time.Hour}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = m.Run(ctx) }()
	waitReady(t, m)
	g := eventgen.New(4, "metrics")
	for range 7 {
		publish(t, js, g.Next())
	}
	publish(t, js, g.Of("vn.ioc.traffic.flow.v1"))
	polltest.True(t, "the eight events counted", 10*time.Second, func() bool {
		m.Sample(context.Background())
		var n uint64
		for _, s := range m.Snapshot().Sources {
			n += s.Events
		}
		return n == 8
	})
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", monitor.MetricsHandler([]monitor.Admin{{Name: "ops", TokenSHA256: httpedge.HashToken(adminToken)}}, reg))
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("/metrics without a token: %d, want 401 (it names every source)", rec.Code)
	}
	rec = httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	mux.ServeHTTP(rec, req)
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(rec.Body.String()))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, rec.Body.String())
	}
	snap := m.Snapshot()
	value := func(fam string, labels map[string]string) (float64, bool) {
		f, ok := fams[fam]
		if !ok {
			return 0, false
		}
	next:
		for _, mt := range f.GetMetric() {
			for _, l := range mt.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue next
				}
			}
			if mt.GetGauge() != nil {
				return mt.GetGauge().GetValue(), true
			}
			return mt.GetCounter().GetValue(), true
		}
		return 0, false
	}
	checked := 0
	for _, st := range snap.Streams {
		if v, ok := value("iochub_stream_messages", map[string]string{"stream": st.Name}); !ok || v != float64(st.Messages) {
			t.Errorf("iochub_stream_messages{stream=%s} = %v, JSON %d", st.Name, v, st.Messages)
		}
		checked++
	}
	for _, c := range snap.Consumers {
		if v, ok := value("iochub_consumer_pending_messages", map[string]string{"consumer": c.Name}); !ok || v != float64(c.Pending) || c.Pending != 8 {
			t.Errorf("iochub_consumer_pending_messages{consumer=%s} = %v, JSON %d (want 8)", c.Name, v, c.Pending)
		}
		checked++
	}
	total := 0.0
	for _, s := range snap.Sources {
		v, ok := value("iochub_source_events_total", map[string]string{"source": s.Source})
		if !ok || v != float64(s.Events) {
			t.Errorf("iochub_source_events_total{source=%s} = %v, JSON %d", s.Source, v, s.Events)
		}
		total += v
		checked++
	}
	if total != 8 || checked < 4 {
		t.Errorf("%v events counted over the sources (want 8), %d figures checked", total, checked)
	}
}

// TestDiskNearlyFullWatchesTheStoreFilesystem: with no account limit, the
// store directory's filesystem is measured; a threshold it exceeds fires
// once it has held for the minimum duration (two samples apart).
func TestDiskNearlyFullWatchesTheStoreFilesystem(t *testing.T) {
	m, _, _ := setup(t, monitor.Config{StoreDir: t.TempDir(), DiskFullPercent: 0.0001, AlertMinDuration: 50 * time.Millisecond})
	m.Sample(context.Background())
	if a := firing(m, monitor.AlertDiskNearlyFull); a != nil {
		t.Fatalf("fired at the first sample, before its minimum duration: %+v", a)
	}
	time.Sleep(60 * time.Millisecond)
	m.Sample(context.Background())
	st := m.Snapshot().Storage
	if st.Of != "filesystem" || st.Limit <= 0 || st.Used == 0 {
		t.Fatalf("storage %+v", st)
	}
	if a := firing(m, monitor.AlertDiskNearlyFull); a == nil || !strings.Contains(a.Message, "filesystem") {
		t.Fatalf("disk_nearly_full: %+v", a)
	}
	m2, _, _ := setup(t, monitor.Config{StoreDir: t.TempDir()}) // default 90%
	m2.Sample(context.Background())
	if a := firing(m2, monitor.AlertDiskNearlyFull); a != nil && m2.Snapshot().Storage.Used*100 < uint64(m2.Snapshot().Storage.Limit)*90 {
		t.Errorf("fires under the threshold: %+v", a)
	}
}

// waitReady waits until the monitor's Run listens.
func waitReady(t *testing.T, m *monitor.Monitor) {
	t.Helper()
	select {
	case <-m.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("the monitor did not start listening")
	}
}

// sourceEvents is the events counted of the sources under prefix.
func sourceEvents(m *monitor.Monitor, prefix string) uint64 {
	var n uint64
	for _, s := range m.Snapshot().Sources {
		if strings.HasPrefix(s.Source, prefix) {
			n += s.Events
		}
	}
	return n
}

// TestAdminActionsNeedAnOperatorAndAreRecorded (finding M7): a viewer
// reads the dead letters and may not purge or replay them; an operator's
// purge is recorded in the audit log with its name before it is done, and
// without the log nothing is done.
func TestAdminActionsNeedAnOperatorAndAreRecorded(t *testing.T) {
	const viewerToken = "ops-viewer-token"
	m, _, js := setup(t, monitor.Config{Admins: []monitor.Admin{{Name: "xem", TokenSHA256: httpedge.HashToken(viewerToken), Role: monitor.RoleViewer}}})
	ctx := context.Background()
	for i := range 2 {
		if _, err := js.PublishMsg(ctx, dlq.ForEvent("ioc.health.visit.v1", nil, []byte(`{}`), uint64(i+1), "aggregator", "test", time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	api := http.NewServeMux()
	m.Register(api, nil)
	hs := httptest.NewServer(api)
	defer hs.Close()
	do := func(method, path, token string) int {
		req, _ := http.NewRequest(method, hs.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	letters := m.ListDLQ(ctx, 10)
	if len(letters) != 2 {
		t.Fatalf("%d dead letters", len(letters))
	}
	first := fmt.Sprintf("/v1/ops/dlq/%d", letters[0].Seq)
	for _, tc := range []struct {
		method, path, token string
		want                int
	}{
		{"GET", "/v1/ops/dlq", viewerToken, 200},
		{"GET", first, viewerToken, 200},
		{"DELETE", first, viewerToken, 403},
		{"POST", first + "/replay", viewerToken, 403},
		{"POST", "/v1/ops/dlq/replay", viewerToken, 403},
		{"DELETE", "/v1/ops/dlq?confirm=all", viewerToken, 403},
		{"DELETE", first, adminToken, 200},
	} {
		if got := do(tc.method, tc.path, tc.token); got != tc.want {
			t.Errorf("%s %s as %s: %d, want %d", tc.method, tc.path, tc.token, got, tc.want)
		}
	}
	log := audit.Log{JS: js}
	var recs []audit.Record
	var v audit.Verifier
	if err := log.Records(ctx, func(_ uint64, raw []byte) error {
		r, err := v.Next(raw)
		recs = append(recs, r)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Actor != "ops" || recs[0].Role != monitor.RoleOperator || recs[0].Action != "dlq.purge" || recs[0].Target != fmt.Sprint(letters[0].Seq) || recs[0].Via != "http" {
		t.Fatalf("audit records %+v, want the operator's one purge", recs)
	}
	// Without the audit log, nothing is done.
	if err := js.DeleteStream(ctx, audit.Stream); err != nil {
		t.Fatal(err)
	}
	second := fmt.Sprintf("/v1/ops/dlq/%d", letters[1].Seq)
	if got := do("DELETE", second, adminToken); got != 503 {
		t.Fatalf("purge without the audit log: %d, want 503", got)
	}
	if n := len(m.ListDLQ(ctx, 10)); n != 1 {
		t.Fatalf("%d dead letters after a purge that could not be recorded, want 1", n)
	}
}

// TestSourcesAreBoundedAndForgotten (finding M4): a producer inventing
// sources cannot grow the ops page or /metrics: sources silent past the TTL
// are forgotten, and only the most recently heard max_sources are kept
// (expected ones are always shown).
func TestSourcesAreBoundedAndForgotten(t *testing.T) {
	srv := natsjstest.Run(t)
	nc, js := srv.Declared(t, natsjs.StreamLimits{})
	now := time.Now()
	totals := map[string]monitor.SourceTotal{"/old/a": {Events: 5, Last: now.Add(-2 * time.Hour)}}
	for i := range 50 {
		totals[fmt.Sprintf("/s/%02d", i)] = monitor.SourceTotal{Events: 1, Last: now.Add(-time.Duration(i) * time.Second)}
	}
	m := monitor.New(monitor.Config{MaxSources: 3, SourceTTL: time.Hour, Sources: map[string]time.Duration{"/expected/": time.Hour},
		Admins: []monitor.Admin{{Name: "ops", TokenSHA256: httpedge.HashToken(adminToken)}}},
		monitor.Deps{NC: nc, JS: js, Log: zaptest.NewLogger(t), Sources: func() map[string]monitor.SourceTotal { return totals }})
	m.Sample(context.Background())
	var got []string
	for _, s := range m.Snapshot().Sources {
		got = append(got, s.Source)
	}
	if want := []string{"/expected/", "/s/00", "/s/01", "/s/02"}; !slices.Equal(got, want) {
		t.Fatalf("sources %v, want %v", got, want)
	}
	mux := http.NewServeMux()
	m.Register(mux, nil)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	mux.ServeHTTP(rec, req)
	if n := strings.Count(rec.Body.String(), "iochub_source_events_total{"); n > 4 {
		t.Fatalf("%d source series on /metrics, want at most 4", n)
	}
}

// TestSilentSubscriberRaisesAnAlert: a partner agency's subscription with
// events waiting that takes none for longer than subscriber_silent fires
// the alert; once it takes them, it resolves. A subscription with nothing
// waiting is never silent.
func TestSilentSubscriberRaisesAnAlert(t *testing.T) {
	m, _, js := setup(t, monitor.Config{SubscriberSilent: 300 * time.Millisecond})
	ctx := context.Background()
	for _, name := range []string{"yte-incidents", "idle"} {
		if _, err := js.CreateOrUpdateConsumer(ctx, natsjs.EventsStream, jetstream.ConsumerConfig{Durable: natsjs.SubscriptionConsumerPrefix + name,
			AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: map[string]string{"yte-incidents": "ioc.traffic.>", "idle": "ioc.education.>"}[name]}); err != nil {
			t.Fatal(err)
		}
	}
	g := eventgen.New(3, "silent-sub")
	for range 50 {
		if e := g.Next(); strings.HasPrefix(e.Type, "vn.ioc.traffic.") {
			publish(t, js, e)
		}
	}
	m.Sample(ctx)
	if a := firing(m, monitor.AlertSubscriberSilent); a != nil {
		t.Fatalf("fired at once: %+v", a)
	}
	time.Sleep(400 * time.Millisecond)
	m.Sample(ctx)
	a := firing(m, monitor.AlertSubscriberSilent)
	if a == nil || a.Subject != "yte-incidents" || !strings.Contains(a.Message, "last taken: never") {
		t.Fatalf("subscriber_silent: %+v, want it for yte-incidents", a)
	}
	c, _ := js.Consumer(ctx, natsjs.EventsStream, natsjs.SubscriptionConsumerPrefix+"yte-incidents")
	batch, _ := c.Fetch(100, jetstream.FetchMaxWait(time.Second))
	for msg := range batch.Messages() {
		_ = msg.DoubleAck(ctx)
	}
	m.Sample(ctx)
	if a := firing(m, monitor.AlertSubscriberSilent); a != nil {
		t.Errorf("still firing after the subscriber took everything: %+v", a)
	}
}

// deadLetters puts n dead letters of visits in IOC_DLQ.
func deadLetters(t *testing.T, js jetstream.JetStream, g *eventgen.Generator, n int) {
	t.Helper()
	for range n {
		e := g.Of("vn.ioc.health.visit.v1")
		msg := dlq.ForEvent("ioc.health.visit.v1", nil, e.AppendJSON(nil), 0, "gateway", "schema: /kind: not in enum", time.Now())
		if _, err := js.PublishMsg(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDeadLetterBurstRaisesOneAlert: the odd broken record among many
// events raises nothing; a burst over several samples raises
// dead_letters_arriving once, and it stays firing through the samples
// without new letters (its resolve delay, an hour here).
func TestDeadLetterBurstRaisesOneAlert(t *testing.T) {
	burn.CPU(t)
	m, _, js := setup(t, monitor.Config{AlertResolveDelay: time.Hour})
	g := eventgen.New(5, "burst")
	m.Sample(context.Background())
	for range 300 {
		publish(t, js, g.Next())
	}
	deadLetters(t, js, g, 1)
	m.Sample(context.Background())
	if a := firing(m, monitor.AlertDeadLetters); a != nil {
		t.Fatalf("one dead letter among 300 events fired: %+v", a)
	}
	for _, n := range []int{20, 0, 15, 0, 0, 30, 0} {
		deadLetters(t, js, g, n)
		m.Sample(context.Background())
		if firing(m, monitor.AlertDeadLetters) == nil {
			t.Fatalf("after a burst of %d: not firing", n)
		}
	}
	a := firing(m, monitor.AlertDeadLetters)
	if !strings.Contains(a.Text.VI, "thư chết") || !strings.Contains(a.Text.EN, "dead letters") {
		t.Errorf("texts %+v", a.Text)
	}
	_, hist := m.Alerts()
	fired := 0
	for _, e := range hist {
		if e.Name == monitor.AlertDeadLetters {
			fired++
		}
	}
	if fired != 1 {
		t.Errorf("dead_letters_arriving changed %d times over the burst, want once: %+v", fired, hist)
	}
}

// TestAlertHistorySurvivesARestart: a monitor fires an alert and stops; a
// new one on the same JetStream shows the history and the alert firing
// until its condition is found gone.
func TestAlertHistorySurvivesARestart(t *testing.T) {
	burn.CPU(t)
	srv := natsjstest.Run(t)
	nc, js := srv.Declared(t, natsjs.StreamLimits{})
	cfg := monitor.Config{StoreDir: t.TempDir(), DiskFullPercent: 0.0001, AlertMinDuration: time.Nanosecond, AlertResolveDelay: time.Nanosecond}
	first := monitor.New(cfg, monitor.Deps{NC: nc, JS: js, Log: zaptest.NewLogger(t)})
	first.Sample(context.Background())
	first.Sample(context.Background())
	if firing(first, monitor.AlertDiskNearlyFull) == nil {
		t.Fatal("disk_nearly_full not firing")
	}
	cfg.DiskFullPercent = 100 // the disk was cleaned while the hub was down
	second := monitor.New(cfg, monitor.Deps{NC: nc, JS: js, Log: zaptest.NewLogger(t)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = second.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitReady(t, second)
	_, hist := second.Alerts()
	if len(hist) == 0 || hist[0].Name != monitor.AlertDiskNearlyFull || hist[0].State != "firing" || hist[0].Text.VI == "" {
		t.Fatalf("history after the restart: %+v", hist)
	}
	polltest.True(t, "the alert resolved by the new monitor once its condition is gone", 10*time.Second, func() bool {
		second.Sample(context.Background())
		_, hist := second.Alerts()
		return firing(second, monitor.AlertDiskNearlyFull) == nil && len(hist) == 2 && hist[1].State == "resolved"
	})
}

// TestWebhookReceiverDownGetsTheAlertWhenBack: the receiver refuses the
// first requests (down); the change is sent again with backoff until it is
// taken, then the next change follows in order.
func TestWebhookReceiverDownGetsTheAlertWhenBack(t *testing.T) {
	burn.CPU(t)
	var mu sync.Mutex
	refused, got := 0, []string{}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if refused < 2 {
			refused++
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var body struct{ Alerts []monitor.AlertEvent }
		_ = json.NewDecoder(r.Body).Decode(&body)
		for _, a := range body.Alerts {
			got = append(got, a.Name+":"+a.State)
		}
	}))
	defer hook.Close()
	m, _, _ := setup(t, monitor.Config{StoreDir: t.TempDir(), DiskFullPercent: 0.0001, AlertWebhook: hook.URL})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitReady(t, m)
	polltest.True(t, "disk_nearly_full firing", 10*time.Second, func() bool {
		m.Sample(context.Background())
		return firing(m, monitor.AlertDiskNearlyFull) != nil
	})
	polltest.True(t, "the receiver, back after two refusals, has the alert", 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 1
	})
	mu.Lock()
	defer mu.Unlock()
	if refused != 2 || got[0] != "disk_nearly_full:firing" {
		t.Errorf("refused %d, received %v", refused, got)
	}
}

// TestConnectorDeadLettersAreCountedUnderTheConnector: a connector's dead
// letter holds its raw record (encrypted), not an event: it is counted
// under the connector's name, not as an unknown source.
func TestConnectorDeadLettersAreCountedUnderTheConnector(t *testing.T) {
	m, _, js := setup(t, monitor.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitReady(t, m)
	if _, err := js.Publish(context.Background(), dlq.ConnectorSubjectPrefix+"health-beds", []byte("sealed record")); err != nil {
		t.Fatal(err)
	}
	polltest.True(t, "the letter counted under its connector", 10*time.Second, func() bool {
		m.Sample(context.Background())
		for _, s := range m.Snapshot().Sources {
			if s.Source == "(connector health-beds)" && s.Rejected == 1 {
				return true
			}
		}
		return false
	})
	for _, s := range m.Snapshot().Sources {
		if s.Source == "(unknown)" {
			t.Errorf("a source counted as unknown: %+v", s)
		}
	}
}

// TestMonitorRunsWhileTheAlertStreamIsMissing: JetStream cannot give the
// alert record (a cluster electing its leader, here the stream missing):
// the monitor starts without its history and makes the webhook's consumer
// once it can; the alerts after that reach the webhook.
func TestMonitorRunsWhileTheAlertStreamIsMissing(t *testing.T) {
	got := make(chan []byte, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b bytes.Buffer
		_, _ = b.ReadFrom(r.Body)
		got <- b.Bytes()
	}))
	defer hook.Close()
	m, _, js := setup(t, monitor.Config{StoreDir: t.TempDir(), DiskFullPercent: 0.0001, AlertWebhook: hook.URL})
	ctx, cancel := context.WithCancel(context.Background())
	if err := js.DeleteStream(ctx, natsjs.AlertsStream); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitReady(t, m)
	if err := natsjs.Declare(ctx, js, natsjs.StreamLimits{}); err != nil {
		t.Fatal(err)
	}
	polltest.True(t, "the webhook's consumer made once the stream is there", 30*time.Second, func() bool {
		_, err := js.Consumer(ctx, natsjs.AlertsStream, natsjs.AlertWebhookConsumer)
		return err == nil
	})
	m.Sample(ctx)
	m.Sample(ctx)
	select {
	case b := <-got:
		if !bytes.Contains(b, []byte(monitor.AlertDiskNearlyFull)) {
			t.Errorf("the webhook got %s", b)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the webhook got nothing")
	}
}

// TestAlertFiringAtTheStopWaitsItsResolveDelay: an alert firing when the
// hub stopped, its condition gone at the start, resolves only after the
// resolve delay counted from the start, not at the first sample (which
// cannot see every condition yet: dead letters arriving need two).
func TestAlertFiringAtTheStopWaitsItsResolveDelay(t *testing.T) {
	srv := natsjstest.Run(t)
	nc, js := srv.Declared(t, natsjs.StreamLimits{})
	// Fired two hours before the stop, and recorded.
	fired := alertlog.Event{At: time.Now().Add(-2 * time.Hour), Name: monitor.AlertDiskNearlyFull, Subject: "jetstream", State: alertlog.Firing,
		Message: "full", Text: alertlog.Texts{VI: "đầy", EN: "full"}}
	if err := alertlog.Append(context.Background(), js, fired); err != nil {
		t.Fatal(err)
	}
	m := monitor.New(monitor.Config{StoreDir: t.TempDir(), DiskFullPercent: 100, AlertResolveDelay: time.Hour},
		monitor.Deps{NC: nc, JS: js, Log: zaptest.NewLogger(t)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitReady(t, m)
	m.Sample(context.Background())
	a := firing(m, monitor.AlertDiskNearlyFull)
	if a == nil || a.Clearing == nil || !a.Since.Equal(fired.At) {
		t.Fatalf("after the restart, its condition gone: %+v, want still firing since %s, clearing", a, fired.At)
	}
}
