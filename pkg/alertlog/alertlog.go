// Package alertlog is the record of the monitor's alert changes in
// JetStream (natsjs.AlertsStream): the monitor appends each change (fired,
// resolved); the history after a restart, the alert webhook and the
// dashboard's banner (in whichever process serves it) read it back.
package alertlog

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/iochub/iochub/pkg/natsjs"
)

// Texts is an alert's text in Vietnamese and English, its times in the
// IOC's time zone.
type Texts struct {
	VI string `json:"vi"`
	EN string `json:"en"`
}

// Event is a change of an alert.
type Event struct {
	At      time.Time `json:"at"`
	Name    string    `json:"name"`
	Subject string    `json:"subject,omitempty"`
	State   string    `json:"state"` // firing, resolved
	Message string    `json:"message"`
	Text    Texts     `json:"text"`
}

// The states of a change.
const (
	Firing   = "firing"
	Resolved = "resolved"
)

// Append records e.
func Append(ctx context.Context, js jetstream.JetStream, e Event) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = js.Publish(ctx, "ops.alerts."+e.Name, b)
	return err
}

// Read gives the last max changes, oldest first.
func Read(ctx context.Context, js jetstream.JetStream, max uint64) ([]Event, error) {
	st, err := js.Stream(ctx, natsjs.AlertsStream)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", natsjs.AlertsStream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", natsjs.AlertsStream, err)
	}
	if info.State.Msgs == 0 {
		return nil, nil
	}
	from := info.State.FirstSeq
	if info.State.LastSeq >= max && info.State.LastSeq-max+1 > from {
		from = info.State.LastSeq - max + 1
	}
	c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", natsjs.AlertsStream, err)
	}
	var out []Event
	for seq := from; seq <= info.State.LastSeq; {
		msg, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", natsjs.AlertsStream, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return nil, err
		}
		seq = md.Sequence.Stream + 1
		var e Event
		if json.Unmarshal(msg.Data(), &e) == nil {
			out = append(out, e)
		}
	}
	return out, nil
}

// FiringIn is what is firing after the changes, each alert with the
// change that fired it, ordered by name and subject.
func FiringIn(changes []Event) []Event {
	last := map[string]Event{}
	for _, e := range changes {
		last[e.Name+"|"+e.Subject] = e
	}
	var out []Event
	for _, e := range last {
		if e.State == Firing {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name+out[i].Subject < out[j].Name+out[j].Subject })
	return out
}
