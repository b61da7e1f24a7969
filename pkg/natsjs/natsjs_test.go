package natsjs_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/natsjs/natsjstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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

func TestClassifyPublishError(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"stalled async publishes", jetstream.ErrTooManyStalledMsgs, natsjs.ErrUnavailable},
		{"ack timeout", jetstream.ErrAsyncPublishTimeout, natsjs.ErrUnavailable},
		{"no stream response", jetstream.ErrNoStreamResponse, natsjs.ErrUnavailable},
		{"disconnected", nats.ErrDisconnected, natsjs.ErrUnavailable},
		{"store full", &jetstream.APIError{Code: 503, ErrorCode: 10077}, natsjs.ErrStreamFull},
		{"other API error", &jetstream.APIError{Code: 400, ErrorCode: 10060}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := natsjs.ClassifyPublishError(fmt.Errorf("publish x: %w", tc.err))
			if !errors.Is(got, tc.err) {
				t.Fatalf("%v lost its cause", got)
			}
			for _, sentinel := range []error{natsjs.ErrUnavailable, natsjs.ErrStreamFull} {
				if errors.Is(got, sentinel) != (sentinel == tc.want) {
					t.Fatalf("errors.Is(%v, %v) = %v", got, sentinel, errors.Is(got, sentinel))
				}
			}
		})
	}
}
