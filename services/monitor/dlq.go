package monitor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/schema"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DeadLetter is one message of IOC_DLQ.
type DeadLetter struct {
	Seq             uint64    `json:"seq"`
	Subject         string    `json:"subject"`
	Reason          string    `json:"reason"`
	Stage           string    `json:"stage"`
	Time            time.Time `json:"time"`
	OriginalSubject string    `json:"original_subject,omitempty"`
	OriginalSeq     string    `json:"original_seq,omitempty"`
	Source          string    `json:"source,omitempty"`
	ID              string    `json:"id,omitempty"`
	Type            string    `json:"type,omitempty"`
	Replayable      bool      `json:"replayable"`
	Body            string    `json:"body,omitempty"` // in Show only
}

// ErrNotReplayable is matched by replays of dead letters that are not
// events (a connector's raw record is re-read from its source instead).
var ErrNotReplayable = errors.New("not replayable")

func toDeadLetter(seq uint64, subject string, h nats.Header, data []byte, body bool) DeadLetter {
	d := DeadLetter{Seq: seq, Subject: subject, Reason: h.Get(natsjs.HeaderDLQReason), Stage: h.Get(natsjs.HeaderDLQStage),
		OriginalSubject: h.Get(natsjs.HeaderDLQSubject), OriginalSeq: h.Get(natsjs.HeaderDLQSequence)}
	d.Time, _ = time.Parse(time.RFC3339, h.Get(natsjs.HeaderDLQTime))
	if e, err := event.Parse(data); err == nil {
		d.Source, d.ID, d.Type = e.Source, e.ID, e.Type
		d.Replayable = !strings.HasPrefix(subject, "dlq.connector.")
	}
	if body {
		d.Body = string(data)
	}
	return d
}

func (m *Monitor) dlq(ctx context.Context) (jetstream.Stream, error) {
	return m.js.Stream(ctx, natsjs.DLQStream)
}

// listDLQ returns up to max dead letters, newest last.
func (m *Monitor) listDLQ(ctx context.Context, max int) []DeadLetter {
	st, err := m.dlq(ctx)
	if err != nil {
		return nil
	}
	info, err := st.Info(ctx)
	if err != nil || info.State.Msgs == 0 {
		return nil
	}
	var out []DeadLetter
	first := info.State.FirstSeq
	if span := info.State.LastSeq - first + 1; span > uint64(max) {
		first = info.State.LastSeq - uint64(max) + 1
	}
	for seq := first; seq <= info.State.LastSeq; seq++ {
		msg, err := st.GetMsg(ctx, seq)
		if err != nil {
			continue // deleted (replayed or purged)
		}
		out = append(out, toDeadLetter(seq, msg.Subject, msg.Header, msg.Data, false))
	}
	return out
}

// ListDLQ is the dead-letter view: the newest max letters.
func (m *Monitor) ListDLQ(ctx context.Context, max int) []DeadLetter { return m.listDLQ(ctx, max) }

// ShowDLQ is one dead letter with its original body.
func (m *Monitor) ShowDLQ(ctx context.Context, seq uint64) (DeadLetter, error) {
	st, err := m.dlq(ctx)
	if err != nil {
		return DeadLetter{}, err
	}
	msg, err := st.GetMsg(ctx, seq)
	if err != nil {
		return DeadLetter{}, fmt.Errorf("dead letter %d: %w", seq, errNotFound)
	}
	return toDeadLetter(seq, msg.Subject, msg.Header, msg.Data, true), nil
}

// Replay validates dead letter seq against reg (the current schemas) and,
// if it passes, publishes the event again on its subject with its identity
// kept (Nats-Msg-Id "replay:<source>/<id>", so a second replay within the
// dedup window is a duplicate) and deletes the dead letter (so a second
// replay later finds nothing).
func (m *Monitor) Replay(ctx context.Context, seq uint64, reg *schema.Registry) error {
	st, err := m.dlq(ctx)
	if err != nil {
		return err
	}
	msg, err := st.GetMsg(ctx, seq)
	if err != nil {
		return fmt.Errorf("dead letter %d: %w", seq, errNotFound)
	}
	if strings.HasPrefix(msg.Subject, "dlq.connector.") {
		return fmt.Errorf("dead letter %d is a connector's raw record: %w (fix the mapping or the source; the connector reads it again)", seq, ErrNotReplayable)
	}
	e, err := event.Parse(msg.Data)
	if err != nil {
		return fmt.Errorf("dead letter %d is not an event: %w: %v", seq, ErrNotReplayable, err)
	}
	ty, err := reg.Lookup(e.Type)
	if err != nil {
		return fmt.Errorf("dead letter %d: %w", seq, err)
	}
	data, err := schema.DecodeData(e.Data)
	if err == nil {
		err = ty.Validate(data)
	}
	if err != nil {
		return fmt.Errorf("dead letter %d still fails the current schema: %w", seq, err)
	}
	out, err := natsjs.EventMsg(e, msg.Data)
	if err != nil {
		return err
	}
	out.Header.Set(natsjs.HeaderMsgID, "replay:"+e.DedupID())
	if _, err := m.js.PublishMsg(ctx, out); err != nil {
		return fmt.Errorf("replay %d: %w", seq, natsjs.ClassifyPublishError(err))
	}
	if err := st.DeleteMsg(ctx, seq); err != nil {
		return fmt.Errorf("replayed %d, but could not remove it from %s: %w", seq, natsjs.DLQStream, err)
	}
	return nil
}

// ReplayAll replays every replayable dead letter; it returns how many went
// back and the errors of the others.
func (m *Monitor) ReplayAll(ctx context.Context, reg *schema.Registry) (int, []error) {
	n := 0
	var errs []error
	for _, d := range m.listDLQ(ctx, 100000) {
		if !d.Replayable {
			continue
		}
		if err := m.Replay(ctx, d.Seq, reg); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errs
}

// Purge deletes dead letter seq, or every one when seq is 0.
func (m *Monitor) Purge(ctx context.Context, seq uint64) error {
	st, err := m.dlq(ctx)
	if err != nil {
		return err
	}
	if seq == 0 {
		return st.Purge(ctx)
	}
	if err := st.DeleteMsg(ctx, seq); err != nil {
		return fmt.Errorf("dead letter %d: %w", seq, errNotFound)
	}
	return nil
}

func parseSeq(s string) (uint64, error) { return strconv.ParseUint(s, 10, 64) }
