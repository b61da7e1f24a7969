// Package dlq is the one home of dead letters: it builds them (an event the
// aggregator cannot store, a connector's record that cannot be mapped),
// reads, lists and purges them, and replays them with one identity rule.
//
// Identity rule: a dead letter of an event has Nats-Msg-Id
// "dlq:<the event's identity>", so the same event dead-lettered twice inside
// the duplicate window is one letter; a replay publishes the event again
// under "replay:<the event's identity>" with its mark kept, and the
// aggregator's identity check stores it at most once however often it is
// replayed. A connector's letter holds the raw record and is not replayed:
// the connector reads the record again once its mapping or source is fixed.
package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/iochub/iochub/pkg/admit"
	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/natsjs"
)

// HeaderRecordKey names the record of a connector's dead letter.
const HeaderRecordKey = "Iochub-Record-Key"

// ConnectorSubjectPrefix starts the subject of a connector's dead letters.
const ConnectorSubjectPrefix = "dlq.connector."

// SubscriptionSubjectPrefix starts the subject of a subscription's dead
// letters: dlq.subscription.<name>.
const SubscriptionSubjectPrefix = "dlq.subscription."

// HeaderSubscription names the subscription of a delivery's dead letter.
const HeaderSubscription = "Iochub-Subscription"

// Sentinel errors callers branch on.
var (
	ErrNotFound      = errors.New("not found")
	ErrNotReplayable = errors.New("not replayable")
	// ErrStillInvalid is matched when a replayed letter still fails the current schema.
	ErrStillInvalid = errors.New("still fails the current schema")
)

// ForEvent is the dead letter of an event read from IOC_EVENTS at seq: the
// message as it was (body and headers, the mark included) on the type's
// dlq subject, with the reason, stage and time in headers.
func ForEvent(subject string, h nats.Header, data []byte, seq uint64, stage, reason string, now time.Time) *nats.Msg {
	dsubj := natsjs.DLQUnknownSubject
	if tn, err := event.TypeFromSubject(subject); err == nil {
		dsubj = tn.DLQSubject()
	}
	m := nats.NewMsg(dsubj)
	m.Data = data
	for k, v := range h {
		if !strings.HasPrefix(k, "Nats-") { // JetStream's own (Nats-Msg-Id, Nats-Expected-*) are set anew
			m.Header[k] = v
		}
	}
	id := natsjs.EventsStream + ":" + strconv.FormatUint(seq, 10)
	if e, _, err := admit.FromMsg(h, data); err == nil {
		id = e.DedupID()
	}
	m.Header.Set(jetstream.MsgIDHeader, "dlq:"+id)
	m.Header.Set(natsjs.HeaderDLQReason, truncate(reason, 4000))
	m.Header.Set(natsjs.HeaderDLQSubject, subject)
	m.Header.Set(natsjs.HeaderDLQSequence, strconv.FormatUint(seq, 10))
	m.Header.Set(natsjs.HeaderDLQStage, stage)
	m.Header.Set(natsjs.HeaderDLQTime, now.UTC().Format(time.RFC3339))
	return m
}

// ForRecord is the dead letter of a connector's record that could not be
// mapped or validated: the raw record encrypted with c (nothing of it when
// c is nil), its key, the reason with the values it quotes dropped. id is
// the event id the record would have had.
func ForRecord(connector, recordKey, id string, data []byte, reason string, now time.Time, c *RecordCipher) *nats.Msg {
	m := nats.NewMsg(ConnectorSubjectPrefix + connector)
	if c != nil {
		m.Data = c.Seal(connector, data)
		m.Header.Set(HeaderEncrypted, recordCipherID)
	}
	reason = RedactReason(reason)
	m.Header.Set(jetstream.MsgIDHeader, "dlq-"+id)
	m.Header.Set(natsjs.HeaderDLQReason, truncate(reason, 4000))
	m.Header.Set(natsjs.HeaderDLQStage, "connector:"+connector)
	m.Header.Set(natsjs.HeaderDLQTime, now.UTC().Format(time.RFC3339))
	m.Header.Set(HeaderRecordKey, recordKey)
	return m
}

// ForDelivery is the dead letter of an event subscription could not
// deliver within its give-up time: body is the event as the agency would
// have received it (a CloudEvent in JSON, personal data as its grant
// says), from IOC_EVENTS at seq on subject. Its Nats-Msg-Id carries the
// subscription and the event's identity, so the same event given up twice
// inside the duplicate window is one letter. Only the subscription
// replays it (DeliveryLetters, then Purge of each delivered).
func ForDelivery(subscription, subject string, seq uint64, dedupID string, body []byte, reason string, now time.Time) *nats.Msg {
	m := nats.NewMsg(SubscriptionSubjectPrefix + subscription)
	m.Data = body
	m.Header.Set(jetstream.MsgIDHeader, "dlq:"+subscription+":"+dedupID)
	m.Header.Set(HeaderSubscription, subscription)
	m.Header.Set(natsjs.HeaderDLQReason, truncate(reason, 4000))
	m.Header.Set(natsjs.HeaderDLQSubject, subject)
	m.Header.Set(natsjs.HeaderDLQSequence, strconv.FormatUint(seq, 10))
	m.Header.Set(natsjs.HeaderDLQStage, "subscription:"+subscription)
	m.Header.Set(natsjs.HeaderDLQTime, now.UTC().Format(time.RFC3339))
	return m
}

// DeliveryLetter is one of a subscription's dead letters, with the event
// as it is delivered.
type DeliveryLetter struct {
	Letter
	Event []byte `json:"-"`
}

// DeliveryLetters are up to max of subscription's dead letters from
// sequence after+1 on, oldest first.
func (q Queue) DeliveryLetters(ctx context.Context, subscription string, after uint64, max int) ([]DeliveryLetter, error) {
	st, err := q.stream(ctx)
	if err != nil {
		return nil, err
	}
	var out []DeliveryLetter
	for seq := after + 1; len(out) < max; {
		msg, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(SubscriptionSubjectPrefix+subscription))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		out = append(out, DeliveryLetter{Letter: toLetter(msg.Sequence, msg.Subject, msg.Header, msg.Data, false), Event: msg.Data})
		seq = msg.Sequence + 1
	}
	return out, nil
}

// PurgeDeliveryLetters deletes every dead letter of subscription (deleted).
func (q Queue) PurgeDeliveryLetters(ctx context.Context, subscription string) error {
	st, err := q.stream(ctx)
	if err != nil {
		return err
	}
	return st.Purge(ctx, jetstream.WithPurgeSubject(SubscriptionSubjectPrefix+subscription))
}

// CountDeliveryLetters is how many dead letters subscription has.
func (q Queue) CountDeliveryLetters(ctx context.Context, subscription string) (uint64, error) {
	st, err := q.stream(ctx)
	if err != nil {
		return 0, err
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(SubscriptionSubjectPrefix+subscription))
	if err != nil {
		return 0, err
	}
	return info.State.Subjects[SubscriptionSubjectPrefix+subscription], nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Letter is one message of IOC_DLQ.
type Letter struct {
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
	// Subscription: a delivery's letter, replayed by its subscription
	// (POST /v1/subscriptions/{name}/dead-letters/replay), not onto the log.
	Subscription string `json:"subscription,omitempty"`
	// Encrypted: the body is a connector's record, encrypted with the hub's
	// key (RecordCipher); it is not shown.
	Encrypted bool   `json:"encrypted,omitempty"`
	Body      string `json:"body,omitempty"` // in Show only
}

func toLetter(seq uint64, subject string, h nats.Header, data []byte, body bool) Letter {
	d := Letter{Seq: seq, Subject: subject, Reason: h.Get(natsjs.HeaderDLQReason), Stage: h.Get(natsjs.HeaderDLQStage),
		OriginalSubject: h.Get(natsjs.HeaderDLQSubject), OriginalSeq: h.Get(natsjs.HeaderDLQSequence)}
	d.Time, _ = time.Parse(time.RFC3339, h.Get(natsjs.HeaderDLQTime))
	switch {
	case strings.HasPrefix(subject, SubscriptionSubjectPrefix):
		d.Subscription = h.Get(HeaderSubscription)
		var e event.Event
		if json.Unmarshal(data, &e) == nil {
			d.Source, d.ID, d.Type = e.Source, e.ID, e.Type
		}
	case !strings.HasPrefix(subject, ConnectorSubjectPrefix):
		if e, _, err := admit.FromMsg(h, data); err == nil {
			d.Source, d.ID, d.Type = e.Source, e.ID, e.Type
			d.Replayable = true
		}
	}
	d.Encrypted = h.Get(HeaderEncrypted) != ""
	if body && !d.Encrypted {
		d.Body = string(data)
	}
	return d
}

// Queue is IOC_DLQ seen through a JetStream context.
type Queue struct {
	JS jetstream.JetStream
}

func (q Queue) stream(ctx context.Context) (jetstream.Stream, error) {
	return q.JS.Stream(ctx, natsjs.DLQStream)
}

// List returns up to max dead letters, newest last.
func (q Queue) List(ctx context.Context, max int) ([]Letter, error) {
	st, err := q.stream(ctx)
	if err != nil {
		return nil, err
	}
	info, err := st.Info(ctx)
	if err != nil || info.State.Msgs == 0 {
		return nil, err
	}
	var out []Letter
	first := info.State.FirstSeq
	if span := info.State.LastSeq - first + 1; span > uint64(max) {
		first = info.State.LastSeq - uint64(max) + 1
	}
	for seq := first; seq <= info.State.LastSeq; seq++ {
		msg, err := st.GetMsg(ctx, seq)
		if err != nil {
			continue // deleted (replayed or purged)
		}
		out = append(out, toLetter(seq, msg.Subject, msg.Header, msg.Data, false))
	}
	return out, nil
}

// Show is one dead letter with its original body.
func (q Queue) Show(ctx context.Context, seq uint64) (Letter, error) {
	st, err := q.stream(ctx)
	if err != nil {
		return Letter{}, err
	}
	msg, err := st.GetMsg(ctx, seq)
	if err != nil {
		return Letter{}, fmt.Errorf("dead letter %d: %w", seq, ErrNotFound)
	}
	return toLetter(seq, msg.Subject, msg.Header, msg.Data, true), nil
}

// Replay checks dead letter seq against the current schemas of adm and, if
// it passes, publishes the event again on its subject and deletes the letter
// (so a second replay later finds nothing). An event the hub admitted keeps
// its mark and its pseudonymized data as they are: it is checked again
// except in its personal-data fields, and never pseudonymized twice. An
// event that arrived unmarked (published straight onto NATS) is put back as
// it came, for the aggregator to admit.
func (q Queue) Replay(ctx context.Context, seq uint64, adm *admit.Admitter) error {
	st, err := q.stream(ctx)
	if err != nil {
		return err
	}
	msg, err := st.GetMsg(ctx, seq)
	if err != nil {
		return fmt.Errorf("dead letter %d: %w", seq, ErrNotFound)
	}
	if strings.HasPrefix(msg.Subject, ConnectorSubjectPrefix) {
		return fmt.Errorf("dead letter %d is a connector's raw record: %w (fix the mapping or the source; the connector reads it again)", seq, ErrNotReplayable)
	}
	if sub, ok := strings.CutPrefix(msg.Subject, SubscriptionSubjectPrefix); ok {
		return fmt.Errorf("dead letter %d is subscription %s's: %w onto the log (every subscriber would receive it again); its agency replays it with POST /v1/subscriptions/%s/dead-letters/replay", seq, sub, ErrNotReplayable, sub)
	}
	e, marked, err := admit.FromMsg(msg.Header, msg.Data)
	if err != nil {
		return fmt.Errorf("dead letter %d is not an event: %w: %v", seq, ErrNotReplayable, err)
	}
	tn, err := event.ParseType(e.Type)
	if err != nil {
		return fmt.Errorf("dead letter %d: %w", seq, err)
	}
	// The letter goes back as it was stored, on its type's subject, with
	// its headers: a seal stays valid, and the aggregator is where a mark is
	// believed or not (admit.Admitter.Sealed).
	out := nats.NewMsg(tn.Subject())
	out.Data = msg.Data
	for k, v := range msg.Header {
		if !strings.HasPrefix(k, "Nats-") && !strings.HasPrefix(k, "Iochub-Dlq-") {
			out.Header[k] = v
		}
	}
	if marked {
		if _, err := adm.Marked(e, true); err != nil {
			return fmt.Errorf("dead letter %d %w: %w", seq, ErrStillInvalid, err)
		}
		if msg.Header.Get(natsjs.HeaderAdmitSeal) == "" {
			// Marked before the hub sealed its marks: admitted by the hub if
			// it was stored then, and then sealed now, with the hub's key.
			orig, _ := strconv.ParseUint(msg.Header.Get(natsjs.HeaderDLQSequence), 10, 64)
			until, err := natsjs.UnsealedUntil(ctx, q.JS)
			if err != nil {
				return fmt.Errorf("dead letter %d: %w", seq, err)
			}
			switch {
			case orig == 0 || orig > until:
				out.Header.Del(natsjs.HeaderPseudonymized) // a claim nobody sealed: admitted again
			case !adm.CanSeal():
				return fmt.Errorf("dead letter %d was admitted before marks were sealed: replay it from the ops page, which holds the hub's key: %w", seq, ErrNotReplayable)
			default:
				adm.Seal(out)
			}
		}
	} else if _, _, err := adm.Validate(e); err != nil {
		return fmt.Errorf("dead letter %d %w: %w", seq, ErrStillInvalid, err)
	}
	out.Header.Set(jetstream.MsgIDHeader, "replay:"+e.DedupID())
	if _, err := q.JS.PublishMsg(ctx, out); err != nil {
		return fmt.Errorf("replay %d: %w", seq, natsjs.ClassifyPublishError(err))
	}
	if err := st.DeleteMsg(ctx, seq); err != nil {
		return fmt.Errorf("replayed %d, but could not remove it from %s: %w", seq, natsjs.DLQStream, err)
	}
	return nil
}

// ReplayAll replays every replayable dead letter; it returns how many went
// back and the errors of the others.
func (q Queue) ReplayAll(ctx context.Context, adm *admit.Admitter) (int, []error) {
	letters, err := q.List(ctx, 100000)
	if err != nil {
		return 0, []error{err}
	}
	n := 0
	var errs []error
	for _, d := range letters {
		if !d.Replayable {
			continue
		}
		if err := q.Replay(ctx, d.Seq, adm); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errs
}

// Purge deletes dead letter seq, or every one when seq is 0.
func (q Queue) Purge(ctx context.Context, seq uint64) error {
	st, err := q.stream(ctx)
	if err != nil {
		return err
	}
	if seq == 0 {
		return st.Purge(ctx)
	}
	if err := st.DeleteMsg(ctx, seq); err != nil {
		return fmt.Errorf("dead letter %d: %w", seq, ErrNotFound)
	}
	return nil
}
