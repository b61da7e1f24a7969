package natsjs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The upgrade of a work-queue IOC_EVENTS (iochub before the retained log).
const (
	upgradeStream      = "IOC_EVENTS_UPGRADE"
	upgradeSubject     = "iochub.upgrade.events"
	upgradeDoneSubject = "iochub.upgrade.done"
	// HeaderUpgradeSubject keeps an event's subject while it waits in the upgrade stream.
	HeaderUpgradeSubject = "Iochub-Upgrade-Subject"
	// HeaderUpgradedFrom is the sequence an event had in the work-queue
	// IOC_EVENTS it was moved from.
	HeaderUpgradedFrom = "Iochub-Upgraded-From"
)

// upgradeWorkQueue turns an IOC_EVENTS of an earlier version, a work queue
// (retention cannot be changed in place), into the retained log. The events
// still in it are the ones the aggregator had not acked; they are kept:
//
//  1. copied, with their headers, into IOC_EVENTS_UPGRADE, closed by a
//     marker message;
//  2. IOC_EVENTS (and its consumer) deleted and declared anew as want;
//  3. republished from IOC_EVENTS_UPGRADE in their order, then
//     IOC_EVENTS_UPGRADE deleted.
//
// A crash anywhere resumes at the next start: before the marker, the copy is
// made again from the intact work queue; after it, the republishing goes on
// after the events the new stream already holds. Events moved keep their
// identity (Nats-Msg-Id) and carry HeaderUpgradedFrom; the aggregator's
// identity check keeps any that were already written once.
func upgradeWorkQueue(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig) error {
	old, err := js.Stream(ctx, EventsStream)
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("stream %s: %w", EventsStream, err)
	}
	isQueue := old != nil && old.CachedInfo().Config.Retention == jetstream.WorkQueuePolicy
	up, err := js.Stream(ctx, upgradeStream)
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("stream %s: %w", upgradeStream, err)
	}
	if up == nil && !isQueue {
		return nil // nothing to upgrade, nothing left from one
	}
	copied := false
	if up != nil {
		_, err := up.GetLastMsgForSubject(ctx, upgradeDoneSubject)
		copied = err == nil
		if !copied {
			if !isQueue {
				return fmt.Errorf("upgrade of %s: %s is incomplete but %s is no longer a work queue; inspect both streams", EventsStream, upgradeStream, EventsStream)
			}
			if err := js.DeleteStream(ctx, upgradeStream); err != nil {
				return fmt.Errorf("upgrade of %s: restart the copy: %w", EventsStream, err)
			}
		}
	}
	if !copied {
		if up, err = copyToUpgrade(ctx, js, old, want); err != nil {
			return fmt.Errorf("upgrade of %s: copy: %w", EventsStream, err)
		}
	}
	if isQueue {
		if err := js.DeleteStream(ctx, EventsStream); err != nil {
			return fmt.Errorf("upgrade of %s: delete the work queue: %w", EventsStream, err)
		}
	}
	events, err := js.CreateOrUpdateStream(ctx, want)
	if err != nil {
		return fmt.Errorf("upgrade of %s: declare: %w", EventsStream, err)
	}
	if err := republish(ctx, js, up, events.CachedInfo().State.Msgs); err != nil {
		return fmt.Errorf("upgrade of %s: republish: %w", EventsStream, err)
	}
	if err := js.DeleteStream(ctx, upgradeStream); err != nil {
		return fmt.Errorf("upgrade of %s: delete %s: %w", EventsStream, upgradeStream, err)
	}
	return nil
}

func copyToUpgrade(ctx context.Context, js jetstream.JetStream, old jetstream.Stream, want jetstream.StreamConfig) (jetstream.Stream, error) {
	up, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:        upgradeStream,
		Description: "iochub: events moved out of a work-queue IOC_EVENTS while it becomes a retained log",
		Subjects:    []string{upgradeSubject, upgradeDoneSubject},
		Retention:   jetstream.LimitsPolicy,
		MaxMsgSize:  want.MaxMsgSize + 1<<10,
		Storage:     jetstream.FileStorage,
		Replicas:    want.Replicas,
	})
	if err != nil {
		return nil, err
	}
	st := old.CachedInfo().State
	b := &batcher{js: js}
	for seq := st.FirstSeq; st.Msgs > 0 && seq <= st.LastSeq; seq++ {
		raw, err := old.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // acked, so deleted from the work queue
		}
		if err != nil {
			return nil, fmt.Errorf("read %d: %w", seq, err)
		}
		m := nats.NewMsg(upgradeSubject)
		m.Data = raw.Data
		copyHeaders(m.Header, raw.Header)
		m.Header.Set(HeaderUpgradeSubject, raw.Subject)
		m.Header.Set(HeaderUpgradedFrom, strconv.FormatUint(seq, 10))
		if err := b.add(ctx, m); err != nil {
			return nil, err
		}
	}
	if err := b.add(ctx, nats.NewMsg(upgradeDoneSubject)); err != nil {
		return nil, err
	}
	return up, b.flush(ctx)
}

// republish puts the events of the upgrade stream back on their subjects,
// skipping the first skip of them (already republished before a crash).
func republish(ctx context.Context, js jetstream.JetStream, up jetstream.Stream, skip uint64) error {
	info, err := up.Info(ctx)
	if err != nil {
		return err
	}
	b := &batcher{js: js}
	var n uint64
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		raw, err := up.GetMsg(ctx, seq)
		if err != nil {
			return fmt.Errorf("read %d: %w", seq, err)
		}
		if raw.Subject != upgradeSubject {
			continue
		}
		if n++; n <= skip {
			continue
		}
		m := nats.NewMsg(raw.Header.Get(HeaderUpgradeSubject))
		m.Data = raw.Data
		copyHeaders(m.Header, raw.Header)
		m.Header.Del(HeaderUpgradeSubject)
		if err := b.add(ctx, m); err != nil {
			return err
		}
	}
	return b.flush(ctx)
}

// batcher publishes messages a thousand at a time, each acked, in order.
type batcher struct {
	js    jetstream.JetStream
	batch []*nats.Msg
}

func (b *batcher) add(ctx context.Context, m *nats.Msg) error {
	if b.batch = append(b.batch, m); len(b.batch) < 1000 {
		return nil
	}
	return b.flush(ctx)
}

func (b *batcher) flush(ctx context.Context) error {
	for i, o := range PublishAll(ctx, b.js, b.batch) {
		if o.Err != nil {
			return fmt.Errorf("message %d of a batch: %w", i, o.Err)
		}
	}
	b.batch = b.batch[:0]
	return nil
}

// copyHeaders copies an event's headers, less the publish expectations
// (Nats-Expected-*) JetStream stored with it, which would fail a new publish.
func copyHeaders(dst, src nats.Header) {
	for k, v := range src {
		if !strings.HasPrefix(k, "Nats-Expected-") {
			dst[k] = v
		}
	}
}
