package natsjs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/semaphore"

	"github.com/iochub/iochub/pkg/event"
)

func isConnErr(err error) bool {
	return errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrDisconnected) || errors.Is(err, nats.ErrConnectionReconnecting)
}

// EventMsg builds the message for an event: its JSON on the type's subject,
// with Nats-Msg-Id set to the event's identity so a retry is stored once.
func EventMsg(e event.Event, body []byte) (*nats.Msg, error) {
	tn, err := event.ParseType(e.Type)
	if err != nil {
		return nil, err
	}
	m := nats.NewMsg(tn.Subject())
	m.Data = body
	m.Header.Set(jetstream.MsgIDHeader, e.DedupID())
	return m, nil
}

// Outcome is the result of publishing one message.
type Outcome struct {
	Seq       uint64 // stream sequence
	Duplicate bool   // JetStream already had this identity: a retry
	Err       error  // nil, or matched by ErrStreamFull / ErrUnavailable when it is one of those
}

// PublishAsyncMaxPending is how many publishes a JetStream context made with
// NewJetStream may have awaiting their acks: its publish window. PublishAll
// takes room in the window for a whole batch before publishing any of it,
// waiting up to PublishHoldWait (the caller's backpressure: a gateway
// request is held); with no room by then it publishes nothing and reports
// every message as ErrBusy (the gateway's 503 with Retry-After for the
// whole request). A batch never fails part-way for the window's sake.
// PublishAsyncTimeout bounds how long a publish awaits its ack, so room is
// always given back.
const (
	PublishAsyncMaxPending = 16384
	PublishHoldWait        = 10 * time.Second
	PublishAsyncTimeout    = 30 * time.Second
	publishStallWait       = 5 * time.Second // only reached by contexts not made by NewJetStream
)

// ErrBusy is matched, with ErrUnavailable, when PublishAll found no room in
// the publish window within PublishHoldWait: nothing of the batch was
// published.
var ErrBusy = errors.New("jetstream publish window full")

// windowed is a JetStream context whose async publishes PublishAll counts.
type windowed struct {
	jetstream.JetStream
	size     int
	hold     time.Duration
	room     *semaphore.Weighted
	replicas int // of every stream and bucket it declares (replicas.go); 0: the server's default
}

// Option is an option of NewJetStream.
type Option func(*windowed)

// WithReplicas makes every stream and KV bucket declared through the
// context (the hub's and its services') keep n replicas, unless its config
// says otherwise.
func WithReplicas(n int) Option { return func(w *windowed) { w.replicas = n } }

// NewJetStream is jetstream.New with iochub's publish window.
func NewJetStream(nc *nats.Conn, opts ...Option) (jetstream.JetStream, error) {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(PublishAsyncMaxPending),
		jetstream.WithPublishAsyncTimeout(PublishAsyncTimeout))
	if err != nil {
		return nil, err
	}
	w := newWindowed(js, PublishAsyncMaxPending, PublishHoldWait)
	for _, o := range opts {
		o(w)
	}
	return w, nil
}

func newWindowed(js jetstream.JetStream, size int, hold time.Duration) *windowed {
	return &windowed{JetStream: js, size: size, hold: hold, room: semaphore.NewWeighted(int64(size))}
}

// PublishAll publishes msgs asynchronously and waits for every ack, so a
// batch costs one round trip rather than one per event. Outcomes are in msgs
// order. Through a context of NewJetStream, a batch is published whole or
// not at all for want of room (ErrBusy).
func PublishAll(ctx context.Context, js jetstream.JetStream, msgs []*nats.Msg) []Outcome {
	w, ok := js.(*windowed)
	if !ok {
		return publishAll(ctx, js, msgs, nil)
	}
	if len(msgs) > w.size {
		out := make([]Outcome, 0, len(msgs))
		for i := 0; i < len(msgs); i += w.size {
			out = append(out, PublishAll(ctx, js, msgs[i:min(i+w.size, len(msgs))])...)
		}
		return out
	}
	hold, cancel := context.WithTimeout(ctx, w.hold)
	err := w.room.Acquire(hold, int64(len(msgs)))
	cancel()
	if err != nil {
		out := make([]Outcome, len(msgs))
		for i := range out {
			out[i].Err = fmt.Errorf("%w: %w: no room for %d messages within %s (%d publishes await their acks at most)",
				ErrUnavailable, ErrBusy, len(msgs), w.hold, w.size)
		}
		return out
	}
	return publishAll(ctx, w.JetStream, msgs, func(n int) { w.room.Release(int64(n)) })
}

// publishAll publishes msgs; release, if set, is called for every message
// whose publish is over (acked, refused, or timed out), even after ctx ends.
func publishAll(ctx context.Context, js jetstream.JetStream, msgs []*nats.Msg, release func(int)) []Outcome {
	if release == nil {
		release = func(int) {}
	}
	out := make([]Outcome, len(msgs))
	futures := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		opts := []jetstream.PublishOpt{jetstream.WithStallWait(publishStallWait)}
		if st := streamFor(m.Subject); st != "" {
			opts = append(opts, jetstream.WithExpectStream(st))
		}
		f, err := js.PublishMsgAsync(m, opts...)
		if err != nil {
			out[i].Err = ClassifyPublishError(fmt.Errorf("publish %s: %w", m.Subject, err))
			release(1)
			continue
		}
		futures[i] = f
	}
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			out[i].Seq = ack.Sequence
			out[i].Duplicate = ack.Duplicate
			release(1)
		case err := <-f.Err():
			out[i].Err = ClassifyPublishError(fmt.Errorf("publish %s: %w", msgs[i].Subject, err))
			release(1)
		case <-ctx.Done():
			out[i].Err = ClassifyPublishError(fmt.Errorf("publish %s: %w", msgs[i].Subject, ctx.Err()))
			// Still in flight: its room comes back when it is over.
			go func() {
				select {
				case <-f.Ok():
				case <-f.Err():
				}
				release(1)
			}()
		}
	}
	return out
}

// streamFor is the stream a subject must land in, or "" for none of iochub's two.
func streamFor(subject string) string {
	switch {
	case strings.HasPrefix(subject, "dlq."):
		return DLQStream
	case strings.HasPrefix(subject, "ioc."):
		return EventsStream
	}
	return ""
}

// ProducerOf is who sent the event stored at seq in IOC_EVENTS
// (HeaderProducer; "" when it does not say, or the event has aged out).
func ProducerOf(ctx context.Context, js jetstream.JetStream, seq uint64) (string, error) {
	s, err := js.Stream(ctx, EventsStream)
	if err != nil {
		return "", err
	}
	m, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return m.Header.Get(HeaderProducer), nil
}
