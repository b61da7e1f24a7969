package monitor

import (
	"context"
	"strconv"

	"github.com/iochub/iochub/pkg/admit"
	"github.com/iochub/iochub/pkg/dlq"
)

// DeadLetter is one message of IOC_DLQ (see pkg/dlq).
type DeadLetter = dlq.Letter

// ErrNotReplayable is matched by replays of dead letters that are not
// events (a connector's raw record is re-read from its source instead).
var ErrNotReplayable = dlq.ErrNotReplayable

func (m *Monitor) queue() dlq.Queue { return dlq.Queue{JS: m.js} }

// ListDLQ is the dead-letter view: the newest max letters, newest last.
func (m *Monitor) ListDLQ(ctx context.Context, max int) []DeadLetter {
	out, _ := m.queue().List(ctx, max)
	return out
}

// ShowDLQ is one dead letter with its original body.
func (m *Monitor) ShowDLQ(ctx context.Context, seq uint64) (DeadLetter, error) {
	return m.queue().Show(ctx, seq)
}

// Replay checks dead letter seq against adm's current schemas and publishes
// it again with its identity and mark kept (dlq.Queue.Replay).
func (m *Monitor) Replay(ctx context.Context, seq uint64, adm *admit.Admitter) error {
	return m.queue().Replay(ctx, seq, adm)
}

// ReplayAll replays every replayable dead letter; it returns how many went
// back and the errors of the others.
func (m *Monitor) ReplayAll(ctx context.Context, adm *admit.Admitter) (int, []error) {
	return m.queue().ReplayAll(ctx, adm)
}

// Purge deletes dead letter seq, or every one when seq is 0.
func (m *Monitor) Purge(ctx context.Context, seq uint64) error { return m.queue().Purge(ctx, seq) }

func parseSeq(s string) (uint64, error) { return strconv.ParseUint(s, 10, 64) }
