package natsjs_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/natsjs/natsjstest"
)

// The retained log: an ack deletes nothing, a second durable consumer reads
// everything, and the duplicate table survives a server restart because the
// messages it is rebuilt from are still stored.
func TestRetainedLogKeepsIdentitiesAcrossARestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srv := natsjstest.RunInDir(t, dir)
	_, js := srv.Declared(t, natsjs.StreamLimits{DedupWindow: time.Hour})
	out := natsjs.PublishAll(ctx, js, []*nats.Msg{msg(t, "/a", "1"), msg(t, "/a", "2")})
	for _, o := range out {
		if o.Err != nil || o.Duplicate {
			t.Fatalf("first publish: %+v", o)
		}
	}
	// The aggregator acks both: nothing is deleted.
	cons, err := js.Consumer(ctx, natsjs.EventsStream, natsjs.AggregatorConsumer)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(2, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := js.Stream(ctx, natsjs.EventsStream)
	if info, _ := st.Info(ctx); info.State.Msgs != 2 {
		t.Fatalf("after the acks the stream holds %d messages, want 2 (a retained log)", info.State.Msgs)
	}

	srv.Shutdown()
	srv.WaitForShutdown()
	srv = natsjstest.RunInDir(t, dir)
	_, js = srv.Declared(t, natsjs.StreamLimits{DedupWindow: time.Hour})
	out = natsjs.PublishAll(ctx, js, []*nats.Msg{msg(t, "/a", "1"), msg(t, "/a", "2"), msg(t, "/a", "3")})
	if !out[0].Duplicate || !out[1].Duplicate || out[2].Duplicate {
		t.Fatalf("after a restart: %+v, want the two resends duplicates and the new event stored", out)
	}

	// A second durable consumer reads the whole log beside the aggregator.
	other, err := js.CreateConsumer(ctx, natsjs.EventsStream, jetstream.ConsumerConfig{Durable: "partner", FilterSubject: "ioc.health.>", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	got, err := other.Fetch(10, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range got.Messages() {
		n++
	}
	if n != 3 {
		t.Fatalf("a second consumer read %d events, want 3", n)
	}
}

func TestDeclareValidatesLimits(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    natsjs.StreamLimits
	}{
		{"window longer than the retention", natsjs.StreamLimits{EventsMaxAge: time.Minute, DedupWindow: time.Hour}},
		{"retention under a second", natsjs.StreamLimits{EventsMaxAge: time.Millisecond}},
		{"negative window", natsjs.StreamLimits{DedupWindow: -time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.l.Validate(); err == nil {
				t.Fatalf("Validate(%+v) = nil", tc.l)
			}
		})
	}
}

// A work-queue IOC_EVENTS of an earlier version is upgraded to the retained
// log with every waiting event kept, in order, with its identity.
func TestUpgradeFromAWorkQueueKeepsWaitingEvents(t *testing.T) {
	ctx := context.Background()
	srv := natsjstest.Run(t)
	_, js := srv.Connect(t)
	old := natsjs.EventsStreamConfig(natsjs.StreamLimits{DedupWindow: time.Hour})
	old.Retention = jetstream.WorkQueuePolicy
	if _, err := js.CreateStream(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, natsjs.EventsStream, natsjs.AggregatorConsumerConfig(time.Minute)); err != nil {
		t.Fatal(err)
	}
	var msgs []*nats.Msg
	for i := range 2500 {
		msgs = append(msgs, msg(t, "/a", fmt.Sprint(i)))
	}
	for _, o := range natsjs.PublishAll(ctx, js, msgs) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
	}
	// The old aggregator stored and acked the first 500: gone from the work queue.
	cons, _ := js.Consumer(ctx, natsjs.EventsStream, natsjs.AggregatorConsumer)
	b, err := cons.Fetch(500, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range b.Messages() {
		_ = m.DoubleAck(ctx)
	}

	if err := natsjs.Declare(ctx, js, natsjs.StreamLimits{DedupWindow: time.Hour}); err != nil {
		t.Fatalf("declare over a work queue: %v", err)
	}
	st, _ := js.Stream(ctx, natsjs.EventsStream)
	info, _ := st.Info(ctx)
	if info.Config.Retention != jetstream.LimitsPolicy || info.Config.MaxAge != natsjs.DefaultEventsMaxAge {
		t.Fatalf("after the upgrade: retention %v, max age %s", info.Config.Retention, info.Config.MaxAge)
	}
	if info.State.Msgs != 2000 {
		t.Fatalf("after the upgrade the log holds %d events, want the 2000 waiting ones", info.State.Msgs)
	}
	for i, seq := 500, info.State.FirstSeq; seq <= info.State.LastSeq; i, seq = i+1, seq+1 {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if want := (event.Event{Source: "/a", ID: fmt.Sprint(i)}).DedupID(); m.Header.Get(jetstream.MsgIDHeader) != want || m.Subject != "ioc.health.visit.v1" {
			t.Fatalf("event %d after the upgrade: id %q subject %q, want %q", seq, m.Header.Get(jetstream.MsgIDHeader), m.Subject, want)
		}
		if m.Header.Get(natsjs.HeaderUpgradedFrom) != fmt.Sprint(i+1) {
			t.Fatalf("event %d: upgraded-from %q, want %d", seq, m.Header.Get(natsjs.HeaderUpgradedFrom), i+1)
		}
	}
	if _, err := js.Stream(ctx, "IOC_EVENTS_UPGRADE"); err == nil {
		t.Fatal("the upgrade stream is left behind")
	}
	if _, err := js.Consumer(ctx, natsjs.EventsStream, natsjs.AggregatorConsumer); err != nil {
		t.Fatalf("the aggregator's consumer after the upgrade: %v", err)
	}
	// The identities moved along: a resend of a waiting event is a duplicate.
	if o := natsjs.PublishAll(ctx, js, []*nats.Msg{msg(t, "/a", "700")})[0]; !o.Duplicate {
		t.Fatalf("resend after the upgrade: %+v, want a duplicate", o)
	}
	// Declaring again changes nothing.
	if err := natsjs.Declare(ctx, js, natsjs.StreamLimits{DedupWindow: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if info, _ := st.Info(ctx); info.State.Msgs != 2000 {
		t.Fatalf("a second declare left %d events", info.State.Msgs)
	}
}
