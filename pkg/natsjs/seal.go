package natsjs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/iochub/iochub/pkg/backoff"
)

// HubBucket is the key-value bucket of the hub's own state.
const HubBucket = "IOC_HUB"

// keyUnsealedUntil is the last IOC_EVENTS sequence stored before the hub
// sealed what it admits (admit.Admitter.Sealed).
const keyUnsealedUntil = "events-unsealed-until"

// UnsealedUntil is the last sequence of IOC_EVENTS stored by a version of
// the hub that marked admitted events without sealing them: a marked event
// up to it is taken as admitted, so that its pseudonyms are not hashed
// again after the upgrade. It is recorded once, by Declare at the first
// start that seals, before the hub takes any event (the stream's last
// sequence then; 0 on a new store), and never moves: an event stored later
// must carry a seal to be taken as admitted.
func UnsealedUntil(ctx context.Context, js jetstream.JetStream) (uint64, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: HubBucket, Storage: jetstream.FileStorage,
		Description: "the hub's own state"})
	if err != nil {
		return 0, fmt.Errorf("%s: %w", HubBucket, err)
	}
	var e jetstream.KeyValueEntry
	err = untilAnswered(ctx, func() (err error) { e, err = kv.Get(ctx, keyUnsealedUntil); return err })
	if err == nil {
		return strconv.ParseUint(string(e.Value()), 10, 64)
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, fmt.Errorf("%s %s: %w", HubBucket, keyUnsealedUntil, err)
	}
	st, err := js.Stream(ctx, EventsStream)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", EventsStream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", EventsStream, err)
	}
	last := info.State.LastSeq
	if err := untilAnswered(ctx, func() error {
		_, err := kv.Create(ctx, keyUnsealedUntil, []byte(strconv.FormatUint(last, 10)))
		return err
	}); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) { // another process recorded it first
			return UnsealedUntil(ctx, js)
		}
		return 0, fmt.Errorf("%s %s: %w", HubBucket, keyUnsealedUntil, err)
	}
	return last, nil
}

// untilAnswered runs op again while it finds no responder: a stream just
// made on a cluster answers once its replicas have elected a leader (a
// process started beside the one that made it asks before then). It
// returns op's last error, or ctx's.
func untilAnswered(ctx context.Context, op func() error) error {
	wait := backoff.Backoff{Min: 50 * time.Millisecond, Max: time.Second}
	for {
		err := op()
		if !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, jetstream.ErrNoStreamResponse) {
			return err
		}
		if !wait.Wait(ctx) {
			return fmt.Errorf("%w (%w)", err, ctx.Err())
		}
	}
}
