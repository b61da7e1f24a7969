package natsjs_test

import (
	"context"
	"errors"
	"testing"

	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/natsjs/natsjstest"
	"github.com/nats-io/nats.go"
)

func msg(t *testing.T, source, id string) *nats.Msg {
	t.Helper()
	m, err := natsjs.EventMsg(event.Event{Source: source, ID: id, Type: "vn.ioc.health.visit.v1"}, []byte(`{"id":"`+id+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPublishDedupAndStreamFull(t *testing.T) {
	ctx := context.Background()
	srv := natsjstest.Run(t)
	_, js := srv.Declared(t, natsjs.StreamLimits{EventsMaxBytes: 4096})

	out := natsjs.PublishAll(ctx, js, []*nats.Msg{msg(t, "/a", "1"), msg(t, "/a", "2"), msg(t, "/a", "1"), msg(t, "/b", "1")})
	for i, o := range out {
		if o.Err != nil {
			t.Fatalf("publish %d: %v", i, o.Err)
		}
	}
	if out[0].Duplicate || !out[2].Duplicate || out[3].Duplicate || out[2].Seq != out[0].Seq {
		t.Fatalf("outcomes = %+v: the retry of (/a,1) must be a duplicate of the first, (/b,1) a new event", out)
	}
	info, err := js.Stream(ctx, natsjs.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if n := info.CachedInfo().State.Msgs; n != 3 {
		t.Fatalf("stream holds %d messages, want 3", n)
	}

	// Fill the stream: publishes are refused, nothing stored is dropped.
	var full error
	for i := 0; i < 200 && full == nil; i++ {
		full = natsjs.PublishAll(ctx, js, []*nats.Msg{msg(t, "/fill", string(rune('a'+i%26))+string(rune('a'+i/26)))})[0].Err
	}
	if !errors.Is(full, natsjs.ErrStreamFull) {
		t.Fatalf("publishing into a full stream: err = %v, want ErrStreamFull", full)
	}
	info, _ = js.Stream(ctx, natsjs.EventsStream)
	if first := info.CachedInfo().State.FirstSeq; first != 1 {
		t.Fatalf("first sequence = %d: a full stream dropped old events", first)
	}
}

func TestDeclareIsIdempotent(t *testing.T) {
	srv := natsjstest.Run(t)
	srv.Declared(t, natsjs.StreamLimits{})
	srv.Declared(t, natsjs.StreamLimits{})
}
