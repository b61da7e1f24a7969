package natsjs_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/natsjs/natsjstest"
)

// TestPublishWindowHoldsOrRefusesWholeBatches: a batch waits for room in
// the publish window rather than failing some of its messages (the
// gateway's 207 "stalled with too many outstanding async published
// messages"); with no room within the hold it publishes none of them and
// reports each as ErrBusy; a batch over the window goes in window-sized
// parts; every publish gives its room back.
func TestPublishWindowHoldsOrRefusesWholeBatches(t *testing.T) {
	ctx := context.Background()
	srv := natsjstest.Run(t)
	_, js := srv.Declared(t, natsjs.StreamLimits{})
	stored := func() uint64 {
		t.Helper()
		s, err := js.Stream(ctx, natsjs.EventsStream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	batch := func(prefix string, n int) []*nats.Msg {
		out := make([]*nats.Msg, n)
		for i := range out {
			out[i] = msg(t, "/window", fmt.Sprintf("%s-%d", prefix, i))
		}
		return out
	}

	t.Run("held until there is room", func(t *testing.T) {
		w := natsjs.NewWindow(js, 4, time.Hour)
		if err := w.Take(3); err != nil { // three publishes in flight
			t.Fatal(err)
		}
		done := make(chan []natsjs.Outcome, 1)
		go func() { done <- natsjs.PublishAll(ctx, w.JS, batch("held", 2)) }()
		time.Sleep(200 * time.Millisecond)
		select {
		case out := <-done:
			t.Fatalf("published %+v with room for 1 of 2", out)
		default:
		}
		w.Give(3)
		for i, o := range <-done {
			if o.Err != nil {
				t.Fatalf("publish %d: %v", i, o.Err)
			}
		}
		if !w.Free() {
			t.Fatal("the window's room was not given back")
		}
	})

	t.Run("refused whole past the hold", func(t *testing.T) {
		w := natsjs.NewWindow(js, 4, 100*time.Millisecond)
		if err := w.Take(3); err != nil {
			t.Fatal(err)
		}
		before := stored()
		out := natsjs.PublishAll(ctx, w.JS, batch("refused", 2))
		for i, o := range out {
			if !errors.Is(o.Err, natsjs.ErrBusy) || !errors.Is(o.Err, natsjs.ErrUnavailable) {
				t.Fatalf("publish %d: err = %v, want ErrBusy and ErrUnavailable", i, o.Err)
			}
		}
		if after := stored(); after != before {
			t.Fatalf("%d messages stored of a refused batch", after-before)
		}
		w.Give(3)
		if !w.Free() {
			t.Fatal("a refused batch kept room")
		}
	})

	t.Run("a batch over the window goes in parts", func(t *testing.T) {
		w := natsjs.NewWindow(js, 4, time.Hour)
		before := stored()
		for i, o := range natsjs.PublishAll(ctx, w.JS, batch("parts", 10)) {
			if o.Err != nil || o.Seq == 0 {
				t.Fatalf("publish %d: %+v", i, o)
			}
		}
		if after := stored(); after-before != 10 {
			t.Fatalf("%d stored, want 10", after-before)
		}
		if !w.Free() {
			t.Fatal("the window's room was not given back")
		}
	})

	t.Run("room comes back after the caller gives up", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		w := natsjs.NewWindow(cancelOnPublish{JetStream: js, cancel: cancel}, 4, time.Hour)
		natsjs.PublishAll(cctx, w.JS, batch("cancelled", 3))
		ok := false
		for range 200 { // the acks may arrive after the caller left
			if ok = w.Free(); ok {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if !ok {
			t.Fatal("the room of publishes the caller gave up on never came back")
		}
	})
}

// cancelOnPublish ends the caller's context as soon as a message is sent:
// the caller gives up with its publishes in flight.
type cancelOnPublish struct {
	jetstream.JetStream
	cancel func()
}

func (c cancelOnPublish) PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	defer c.cancel()
	return c.JetStream.PublishMsgAsync(m, opts...)
}
