package monitor

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"go.uber.org/zap"

	"github.com/iochub/iochub/pkg/audit"

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

// Who is the administrator asking for an action: its name, role and way
// in (http, cli); the action and its target are filled by the monitor.
type Who = audit.Entry

// ErrNotRecorded is returned when the audit log cannot be written: the
// action is then not done.
var ErrNotRecorded = errors.New("the audit log could not be written; nothing was done")

// act records who asks for action on target in the audit log, then does
// it, and records its failure if it fails. Nothing is done unrecorded.
func (m *Monitor) act(ctx context.Context, who Who, action, target string, do func() error) error {
	who.Action, who.Target, who.Outcome = action, target, ""
	log := audit.Log{JS: m.js}
	if _, err := log.Append(ctx, who); err != nil {
		return fmt.Errorf("%w: %v", ErrNotRecorded, err)
	}
	err := do()
	if err != nil {
		who.Outcome = "failed: " + err.Error()
		if _, aerr := log.Append(ctx, who); aerr != nil {
			m.log.Error("audit log: the failure of an action is not recorded", zap.String("action", action), zap.Error(aerr))
		}
	}
	return err
}

// Replay checks dead letter seq against adm's current schemas and publishes
// it again with its identity and mark kept (dlq.Queue.Replay), on record.
func (m *Monitor) Replay(ctx context.Context, who Who, seq uint64, adm *admit.Admitter) error {
	return m.act(ctx, who, "dlq.replay", strconv.FormatUint(seq, 10), func() error { return m.queue().Replay(ctx, seq, adm) })
}

// ReplayAll replays every replayable dead letter; it returns how many went
// back and the errors of the others (or the audit log's, with none replayed).
func (m *Monitor) ReplayAll(ctx context.Context, who Who, adm *admit.Admitter) (int, []error) {
	var n int
	var errs []error
	err := m.act(ctx, who, "dlq.replay", "all", func() error {
		n, errs = m.queue().ReplayAll(ctx, adm)
		if len(errs) > 0 {
			return fmt.Errorf("%d replayed, %d not", n, len(errs))
		}
		return nil
	})
	if errors.Is(err, ErrNotRecorded) {
		return 0, []error{err}
	}
	return n, errs
}

// Purge deletes dead letter seq, or every one when seq is 0, on record.
func (m *Monitor) Purge(ctx context.Context, who Who, seq uint64) error {
	target := strconv.FormatUint(seq, 10)
	if seq == 0 {
		target = "all"
	}
	return m.act(ctx, who, "dlq.purge", target, func() error { return m.queue().Purge(ctx, seq) })
}

func parseSeq(s string) (uint64, error) { return strconv.ParseUint(s, 10, 64) }
