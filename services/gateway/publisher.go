package gateway

import (
	"context"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/iochub/iochub/pkg/natsjs"
)

// JetStreamPublisher publishes through a JetStream context.
type JetStreamPublisher struct{ JS jetstream.JetStream }

// PublishAll implements Publisher.
func (p JetStreamPublisher) PublishAll(ctx context.Context, msgs []*nats.Msg) []natsjs.Outcome {
	return natsjs.PublishAll(ctx, p.JS, msgs)
}

// ProducerOf implements Publisher.
func (p JetStreamPublisher) ProducerOf(ctx context.Context, seq uint64) (string, error) {
	return natsjs.ProducerOf(ctx, p.JS, seq)
}
