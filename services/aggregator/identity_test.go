package aggregator_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/iochub/iochub/pkg/admit"
	"github.com/iochub/iochub/pkg/chstore/chstoretest"
	"github.com/iochub/iochub/pkg/dlq"
	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/natsjs/natsjstest"
	"github.com/iochub/iochub/pkg/pii"
	"github.com/iochub/iochub/pkg/schema"
	"github.com/iochub/iochub/schemas"
	"github.com/iochub/iochub/services/aggregator"
)

// newEnvWith is newEnv with the stream limits of the test.
func newEnvWith(t *testing.T, l natsjs.StreamLimits) env {
	t.Helper()
	srv := natsjstest.Run(t)
	l.AckWait = 2 * time.Second
	_, js := srv.Declared(t, l)
	reg, err := schema.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	store := chstoretest.Open(t)
	if err := store.Migrate(context.Background(), reg); err != nil {
		t.Fatal(err)
	}
	p, _ := pii.New([]byte(piiKey))
	return env{js: js, store: store, reg: reg, p: p}
}

func (e env) rows(t *testing.T, table, where string) uint64 {
	t.Helper()
	var n uint64
	if err := e.store.QueryRow(context.Background(), "SELECT count() FROM "+e.store.Qualified(table)+" WHERE "+where).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// admitted publishes ev as the gateway does (validated, pseudonymized, marked).
func (e env) admitted(t *testing.T, ev event.Event) natsjs.Outcome {
	t.Helper()
	adm := admit.New(e.reg, e.p, 0)
	ad, err := adm.Clear(ev)
	if err != nil {
		t.Fatal(err)
	}
	m, err := adm.Msg(ad)
	if err != nil {
		t.Fatal(err)
	}
	o := natsjs.PublishAll(context.Background(), e.js, []*nats.Msg{m})[0]
	if o.Err != nil {
		t.Fatal(o.Err)
	}
	return o
}

// An identity is permanent: a resend after JetStream's duplicate window, and
// one after the log has aged the first copy out, add no row.
func TestResendAfterTheWindowAndAfterRetentionAddsNoRow(t *testing.T) {
	e := newEnvWith(t, natsjs.StreamLimits{DedupWindow: 200 * time.Millisecond, EventsMaxAge: 2 * time.Second})
	a := e.run(t, e.store, aggregator.Config{})
	ev := examples(t, "health/examples/visit.v1.valid.json")[0].Ev
	where := "event_id = '" + ev.ID + "'"
	e.admitted(t, ev)
	waitFor(t, "the event stored", 10*time.Second, func() bool { return e.rows(t, "health_visit_v1", where) == 1 })

	// Past the window: JetStream stores the resend as a new message.
	waitFor(t, "a resend past the duplicate window", 10*time.Second, func() bool { return !e.admitted(t, ev).Duplicate })
	waitFor(t, "the aggregator caught up", 10*time.Second, func() bool { ok, _ := natsjs.CaughtUp(context.Background(), e.js); return ok })
	// Past the retention: the log no longer holds any copy.
	waitFor(t, "the log aged out", 10*time.Second, func() bool { return streamMsgs(t, e.js, natsjs.EventsStream) == 0 })
	if o := e.admitted(t, ev); o.Duplicate {
		t.Fatal("a resend into an empty log was answered duplicate")
	}
	waitFor(t, "the aggregator caught up", 10*time.Second, func() bool { ok, _ := natsjs.CaughtUp(context.Background(), e.js); return ok })
	if n := e.rows(t, "health_visit_v1", where); n != 1 {
		t.Fatalf("%d rows after two late resends, want 1", n)
	}
	if a.Stats.Skipped.Load() < 2 {
		t.Fatalf("skipped %d, want the two resends", a.Stats.Skipped.Load())
	}
}

// Producers publishing straight onto NATS with the CloudEvents NATS protocol
// binding (version 1.0.2): binary content mode (§3.1: every attribute a
// "ce-" header, §3.1.3.1; header values percent-encoded, §3.1.3.2; the data
// as payload, §3.1.1) and structured content mode (§3.2: the JSON event
// format as payload, Content-Type application/cloudevents+json, §3). Each is
// sent twice without Nats-Msg-Id: one row each, validated and pseudonymized,
// the subject decoded, traceparent and an unknown extension kept.
func TestCloudEventsNATSBindingBothModes(t *testing.T) {
	e := newEnv(t)
	e.run(t, e.store, aggregator.Config{})
	ctx := context.Background()
	_, nc := e.js, natsConn(t, e)
	const subject = "Phường Suối Hoa"
	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	data := `{"visit_id":"BVDK27-2026-7700001","facility_code":"27001","area_code":"27256","kind":"outpatient","age_band":"25-44","sex":"female",` +
		`"insured":true,"started_at":"2026-11-20T08:10:00+07:00","wait_minutes":12,"icd10":"J06.9","patient_id":"079123456789"}`

	binary := nats.NewMsg("ioc.health.visit.v1")
	binary.Header.Set("ce-specversion", "1.0")
	binary.Header.Set("ce-id", "nats-binary-1")
	binary.Header.Set("ce-source", "/health/his/bv-27-001")
	binary.Header.Set("ce-type", "vn.ioc.health.visit.v1")
	binary.Header.Set("ce-time", "2026-11-20T08:15:00+07:00")
	binary.Header.Set("ce-datacontenttype", "application/json")
	binary.Header.Set("ce-subject", event.EncodeHeaderValue(subject))
	binary.Header.Set("ce-traceparent", traceparent)
	binary.Header.Set("ce-shift", "morning")
	binary.Data = []byte(data)

	structured := nats.NewMsg("ioc.health.visit.v1")
	structured.Header.Set("content-type", "application/cloudevents+json")
	structured.Data = []byte(`{"specversion":"1.0","id":"nats-structured-1","source":"/health/his/bv-27-001","type":"vn.ioc.health.visit.v1",` +
		`"time":"2026-11-20T08:16:00+07:00","datacontenttype":"application/json","subject":"` + subject + `","traceparent":"` + traceparent + `","shift":"evening","data":` + data + `}`)

	for range 2 {
		for _, m := range []*nats.Msg{binary, structured} {
			if _, err := e.js.PublishMsg(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	_ = nc
	waitFor(t, "both modes stored", 10*time.Second, func() bool {
		return e.rows(t, "health_visit_v1", "event_id IN ('nats-binary-1', 'nats-structured-1')") >= 2
	})
	waitFor(t, "the aggregator caught up", 10*time.Second, func() bool { ok, _ := natsjs.CaughtUp(ctx, e.js); return ok })
	for _, tc := range []struct{ id, shift string }{{"nats-binary-1", "morning"}, {"nats-structured-1", "evening"}} {
		var n uint64
		var subj, tp, ext, patient string
		q := "SELECT count(), any(subject), any(traceparent), any(extensions), any(patient_id) FROM " + e.store.Qualified("health_visit_v1") + " WHERE event_id = ?"
		if err := e.store.QueryRow(ctx, q, tc.id).Scan(&n, &subj, &tp, &ext, &patient); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("%s: %d rows, want 1 (sent twice without Nats-Msg-Id)", tc.id, n)
		}
		if subj != subject {
			t.Errorf("%s: subject %q, want %q", tc.id, subj, subject)
		}
		if tp != traceparent {
			t.Errorf("%s: traceparent %q", tc.id, tp)
		}
		var exts map[string]string
		if err := json.Unmarshal([]byte(ext), &exts); err != nil || exts["shift"] != tc.shift || exts["traceparent"] != traceparent {
			t.Errorf("%s: extensions %s (%v)", tc.id, ext, err)
		}
		if patient != e.p.Hash("079123456789") {
			t.Errorf("%s: patient_id %q, want its pseudonym", tc.id, patient)
		}
	}
	// An invalid one in binary mode is dead-lettered with the reason, and replayable.
	bad := nats.NewMsg("ioc.health.visit.v1")
	for k, v := range binary.Header {
		bad.Header[k] = v
	}
	bad.Header.Set("ce-id", "nats-binary-bad")
	bad.Data = []byte(strings.Replace(data, "outpatient", "telehealth", 1))
	if _, err := e.js.PublishMsg(ctx, bad); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the invalid event dead-lettered", 10*time.Second, func() bool { return streamMsgs(t, e.js, natsjs.DLQStream) == 1 })
	letters, err := dlq.Queue{JS: e.js}.List(ctx, 10)
	if err != nil || len(letters) != 1 || !letters[0].Replayable || letters[0].ID != "nats-binary-bad" || !strings.Contains(letters[0].Reason, "/kind") {
		t.Fatalf("dead letters %+v, %v", letters, err)
	}
}

func natsConn(t *testing.T, e env) *nats.Conn { t.Helper(); return e.js.Conn() }

// A gateway-accepted event with personal data, dead-lettered because
// ClickHouse rejected its row, replayed once the cause is fixed: one row,
// the personal data hashed once (the replay keeps the mark).
func TestReplayKeepsTheMarkAndHashesOnce(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ev := examples(t, "health/examples/visit.v1.valid.json")[0].Ev
	var clear map[string]any
	_ = json.Unmarshal(ev.Data, &clear)
	patient, _ := clear["patient_id"].(string)
	if patient == "" {
		t.Fatal("the example visit has no patient_id")
	}
	func() {
		fs := &flakyStore{Store: e.store, rejectEvent: ev.ID}
		actx, cancel := context.WithCancel(ctx)
		defer cancel()
		a := aggregator.New(aggregator.Config{Producers: anyProducer, MaxAttempts: 2, BatchMaxWait: 20 * time.Millisecond, BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond},
			e.js, fs, e.reg, e.p, zaptestLogger(t))
		done := make(chan struct{})
		go func() { _ = a.Run(actx); close(done) }()
		e.admitted(t, ev)
		waitFor(t, "the row dead-lettered", 20*time.Second, func() bool { return streamMsgs(t, e.js, natsjs.DLQStream) == 1 })
		cancel()
		<-done
	}()
	e.run(t, e.store, aggregator.Config{})
	q := dlq.Queue{JS: e.js}
	letters, _ := q.List(ctx, 10)
	if len(letters) != 1 {
		t.Fatalf("%d letters", len(letters))
	}
	if err := q.Replay(ctx, letters[0].Seq, admit.New(e.reg, e.p, 0)); err != nil {
		t.Fatalf("replay: %v", err)
	}
	where := "event_id = '" + ev.ID + "'"
	waitFor(t, "the replayed event stored", 10*time.Second, func() bool { return e.rows(t, "health_visit_v1", where) == 1 })
	var got string
	_ = e.store.QueryRow(ctx, "SELECT patient_id FROM "+e.store.Qualified("health_visit_v1")+" WHERE "+where).Scan(&got)
	if got != e.p.Hash(patient) {
		t.Fatalf("patient_id %q, want the pseudonym of the clear value %q (hashed once)", got, e.p.Hash(patient))
	}
	// The same letter published again (a second replay) adds nothing.
	m := dlqReplayCopy(t, e, ev)
	if _, err := e.js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the aggregator caught up", 10*time.Second, func() bool { ok, _ := natsjs.CaughtUp(ctx, e.js); return ok })
	if n := e.rows(t, "health_visit_v1", where); n != 1 {
		t.Fatalf("%d rows after a second replay, want 1", n)
	}
}

// dlqReplayCopy is the message a second replay of ev would publish.
func dlqReplayCopy(t *testing.T, e env, ev event.Event) *nats.Msg {
	adm := admit.New(e.reg, e.p, 0)
	ad, err := adm.Clear(ev)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := adm.Msg(ad)
	m.Header.Set(jetstream.MsgIDHeader, "replay:again:"+ev.DedupID())
	return m
}

func zaptestLogger(t *testing.T) *zap.Logger { return zaptest.NewLogger(t) }
