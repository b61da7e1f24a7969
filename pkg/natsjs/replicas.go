package natsjs

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrReplicas is matched when the NATS server cannot keep the replicas
// asked for (--stream-replicas): not a cluster, or too few JetStream
// servers up in it.
var ErrReplicas = errors.New("the NATS server cannot keep the streams' replicas")

// Error codes of the server's JetStream API that say so.
const (
	errCodeClusterNoPeers        = 10005
	errCodeClusterNotActive      = 10006
	errCodeInsufficientResources = 10023
	errCodeReplicasNotSupported  = 10074
	errCodeReplicasNotUpdatable  = 10061
)

func (w *windowed) replicated(what string, n *int, err error) error {
	if err == nil || w.replicas <= 1 && *n <= 1 {
		return err
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case errCodeClusterNoPeers, errCodeClusterNotActive, errCodeInsufficientResources, errCodeReplicasNotSupported:
			return fmt.Errorf("%s with %d replicas: %w: a JetStream cluster of %d or more servers, each with room for it, must be up (--stream-replicas): %v", what, *n, ErrReplicas, *n, err)
		case errCodeReplicasNotUpdatable:
			return fmt.Errorf("%s: its replicas cannot change to %d in place on this server (--stream-replicas): %w", what, *n, err)
		}
	}
	return err
}

func (w *windowed) setReplicas(n *int) {
	if *n == 0 && w.replicas > 0 {
		*n = w.replicas
	}
}

func (w *windowed) CreateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	w.setReplicas(&cfg.Replicas)
	s, err := w.JetStream.CreateStream(ctx, cfg)
	return s, w.replicated("stream "+cfg.Name, &cfg.Replicas, err)
}

func (w *windowed) UpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	w.setReplicas(&cfg.Replicas)
	s, err := w.JetStream.UpdateStream(ctx, cfg)
	return s, w.replicated("stream "+cfg.Name, &cfg.Replicas, err)
}

func (w *windowed) CreateOrUpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	w.setReplicas(&cfg.Replicas)
	s, err := w.JetStream.CreateOrUpdateStream(ctx, cfg)
	return s, w.replicated("stream "+cfg.Name, &cfg.Replicas, err)
}

func (w *windowed) CreateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	w.setReplicas(&cfg.Replicas)
	kv, err := w.JetStream.CreateKeyValue(ctx, cfg)
	return kv, w.replicated("bucket "+cfg.Bucket, &cfg.Replicas, err)
}

func (w *windowed) UpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	w.setReplicas(&cfg.Replicas)
	kv, err := w.JetStream.UpdateKeyValue(ctx, cfg)
	return kv, w.replicated("bucket "+cfg.Bucket, &cfg.Replicas, err)
}

func (w *windowed) CreateOrUpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	w.setReplicas(&cfg.Replicas)
	kv, err := w.JetStream.CreateOrUpdateKeyValue(ctx, cfg)
	return kv, w.replicated("bucket "+cfg.Bucket, &cfg.Replicas, err)
}
