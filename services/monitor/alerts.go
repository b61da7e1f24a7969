package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/iochub/iochub/pkg/natsjs"
)

// The alerts the monitor evaluates.
const (
	AlertSourceSilent   = "source_silent"
	AlertLagGrowing     = "lag_growing"
	AlertDeadLetters    = "dead_letters_arriving"
	AlertStoreDown      = "clickhouse_unreachable"
	AlertDiskNearlyFull = "disk_nearly_full"
	// AlertSubscriberSilent: a partner agency's subscription has events
	// waiting and took none for longer than subscriber_silent.
	AlertSubscriberSilent = "subscriber_silent"
)

// Alert is one alert that is firing.
type Alert struct {
	Name    string    `json:"name"`
	Subject string    `json:"subject,omitempty"` // the source, consumer, … it is about
	Since   time.Time `json:"since"`
	Message string    `json:"message"`
}

// AlertEvent is a change of an alert, kept in the history.
type AlertEvent struct {
	At      time.Time `json:"at"`
	Name    string    `json:"name"`
	Subject string    `json:"subject,omitempty"`
	State   string    `json:"state"` // firing, resolved
	Message string    `json:"message"`
}

// MaxHistory bounds the alert history kept in memory.
const MaxHistory = 500

func (m *Monitor) evaluate(ctx context.Context, s Snapshot) {
	type want struct{ name, subject, msg string }
	var firing []want
	for _, src := range s.Sources {
		if src.Freshness == "late" {
			last := "never"
			if src.LastEventTime != nil {
				last = src.LastEventTime.UTC().Format(time.RFC3339)
			}
			firing = append(firing, want{AlertSourceSilent, src.Source,
				fmt.Sprintf("source %s sent nothing for longer than %s (last event: %s)", src.Source, src.ExpectedInterval, last)})
		}
	}
	for _, c := range s.Consumers {
		// A subscription's consumer on the log, or (mode nats) the one
		// its agency reads in its own stream.
		sub, ok := strings.CutPrefix(c.Name, natsjs.SubscriptionConsumerPrefix)
		ok = ok && c.Stream == natsjs.EventsStream
		if strings.HasPrefix(c.Stream, natsjs.ShareStream("")) {
			sub, ok = c.Name, true
		}
		if !ok || c.Pending+uint64(c.AckPending) == 0 {
			continue
		}
		since, last := c.Created, "never"
		if c.LastAck != nil {
			since, last = *c.LastAck, c.LastAck.UTC().Format(time.RFC3339)
		}
		if s.At.Sub(since) > m.cfg.SubscriberSilent {
			firing = append(firing, want{AlertSubscriberSilent, sub,
				fmt.Sprintf("subscription %s has %d events waiting and took none for longer than %s (last taken: %s)", sub, c.Pending+uint64(c.AckPending), m.cfg.SubscriberSilent, last)})
		}
	}
	m.mu.Lock()
	for _, c := range s.Consumers {
		if c.Stream == natsjs.EventsStream && c.Name == natsjs.AggregatorConsumer {
			m.lag = append(m.lag, lagSample{at: s.At, pending: c.Pending})
		}
	}
	for len(m.lag) > 2 && s.At.Sub(m.lag[1].at) >= m.cfg.LagWindow {
		m.lag = m.lag[1:]
	}
	if n := len(m.lag); n >= 2 && s.At.Sub(m.lag[0].at) >= m.cfg.LagWindow {
		growing := m.lag[n-1].pending > m.lag[0].pending
		for i := 1; i < n && growing; i++ {
			growing = m.lag[i].pending >= m.lag[i-1].pending
		}
		if growing {
			firing = append(firing, want{AlertLagGrowing, natsjs.AggregatorConsumer,
				fmt.Sprintf("the aggregator's lag grew from %d to %d events over %s", m.lag[0].pending, m.lag[n-1].pending, s.At.Sub(m.lag[0].at).Round(time.Second))})
		}
	}
	var dlqLast uint64
	for _, st := range s.Streams {
		if st.Name == natsjs.DLQStream {
			dlqLast = st.LastSeq
		}
	}
	// The first sample only learns where the stream is: letters already
	// there are not arriving.
	if m.dlqInit && dlqLast > m.dlqSeen {
		firing = append(firing, want{AlertDeadLetters, natsjs.DLQStream,
			fmt.Sprintf("%d new dead letters since the last sample; %d in %s", dlqLast-m.dlqSeen, s.DLQ.Depth, natsjs.DLQStream)})
	}
	m.dlqSeen, m.dlqInit = max(m.dlqSeen, dlqLast), true
	m.mu.Unlock()
	if m.store != nil && !s.Store.Reachable {
		firing = append(firing, want{AlertStoreDown, "clickhouse", "ClickHouse does not answer: " + s.Store.Error})
	}
	if s.Storage.Limit > 0 && float64(s.Storage.Used)*100/float64(s.Storage.Limit) >= m.cfg.DiskFullPercent {
		firing = append(firing, want{AlertDiskNearlyFull, "jetstream", fmt.Sprintf("the JetStream store's %s is %.0f%% full (%d of %d bytes)",
			s.Storage.Of, float64(s.Storage.Used)*100/float64(s.Storage.Limit), s.Storage.Used, s.Storage.Limit)})
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	now := s.At
	keep := map[string]bool{}
	var changes []AlertEvent
	for _, w := range firing {
		key := w.name + "|" + w.subject
		keep[key] = true
		if a, ok := m.alerts[key]; ok {
			a.Message = w.msg
			continue
		}
		m.alerts[key] = &Alert{Name: w.name, Subject: w.subject, Since: now, Message: w.msg}
		changes = append(changes, AlertEvent{At: now, Name: w.name, Subject: w.subject, State: "firing", Message: w.msg})
	}
	for key, a := range m.alerts {
		if !keep[key] {
			delete(m.alerts, key)
			changes = append(changes, AlertEvent{At: now, Name: a.Name, Subject: a.Subject, State: "resolved", Message: a.Message})
		}
	}
	m.history = append(m.history, changes...)
	if len(m.history) > MaxHistory {
		m.history = m.history[len(m.history)-MaxHistory:]
	}
	for _, c := range changes {
		m.log.Info("alert "+c.State, zap.String("alert", c.Name), zap.String("subject", c.Subject), zap.String("message", c.Message))
	}
	if m.cfg.AlertWebhook != "" && len(changes) > 0 {
		go m.notify(changes)
	}
}

func (m *Monitor) notify(changes []AlertEvent) {
	b, _ := json.Marshal(map[string]any{"alerts": changes})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.cfg.AlertWebhook, bytes.NewReader(b))
	if err != nil {
		m.log.Warn("alert webhook", zap.Error(err))
		return
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		m.log.Warn("alert webhook", zap.Error(err))
		return
	}
	res.Body.Close()
}

// Alerts returns the alerts firing now and the history of changes.
func (m *Monitor) Alerts() ([]Alert, []AlertEvent) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var firing []Alert
	for _, a := range m.alerts {
		firing = append(firing, *a)
	}
	sort.Slice(firing, func(i, j int) bool { return firing[i].Name+firing[i].Subject < firing[j].Name+firing[j].Subject })
	return firing, append([]AlertEvent(nil), m.history...)
}
