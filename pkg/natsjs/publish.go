package natsjs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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

// PublishAsyncMaxPending is how many publishes a JetStream context may have
// awaiting their acks; beyond it PublishAll waits up to PublishStallWait for
// room, then reports the event as ErrUnavailable (the gateway's 503).
// Contexts made with NewJetStream use it.
const (
	PublishAsyncMaxPending = 16384
	PublishStallWait       = 5 * time.Second
)

// NewJetStream is jetstream.New with iochub's publish limits.
func NewJetStream(nc *nats.Conn) (jetstream.JetStream, error) {
	return jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(PublishAsyncMaxPending))
}

// PublishAll publishes msgs asynchronously and waits for every ack, so a
// batch costs one round trip rather than one per event. Outcomes are in msgs
// order.
func PublishAll(ctx context.Context, js jetstream.JetStream, msgs []*nats.Msg) []Outcome {
	out := make([]Outcome, len(msgs))
	futures := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		opts := []jetstream.PublishOpt{jetstream.WithStallWait(PublishStallWait)}
		if st := streamFor(m.Subject); st != "" {
			opts = append(opts, jetstream.WithExpectStream(st))
		}
		f, err := js.PublishMsgAsync(m, opts...)
		if err != nil {
			out[i].Err = ClassifyPublishError(fmt.Errorf("publish %s: %w", m.Subject, err))
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
		case err := <-f.Err():
			out[i].Err = ClassifyPublishError(fmt.Errorf("publish %s: %w", msgs[i].Subject, err))
		case <-ctx.Done():
			out[i].Err = ClassifyPublishError(fmt.Errorf("publish %s: %w", msgs[i].Subject, ctx.Err()))
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
