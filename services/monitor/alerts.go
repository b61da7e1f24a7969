package monitor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/iochub/iochub/pkg/alertlog"
	"github.com/iochub/iochub/pkg/backoff"
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

// Texts is an alert's text in Vietnamese and English, its times in the
// IOC's time zone.
type Texts = alertlog.Texts

// Alert is one alert that is firing.
type Alert struct {
	Name    string    `json:"name"`
	Subject string    `json:"subject,omitempty"` // the source, consumer, … it is about
	Since   time.Time `json:"since"`
	Message string    `json:"message"` // Text.EN
	Text    Texts     `json:"text"`
	// Clearing is when its condition last held, once it no longer does:
	// it resolves when the condition has stayed away for the resolve delay.
	Clearing *time.Time `json:"clearing_since,omitempty"`
	held     time.Time
}

// AlertEvent is a change of an alert, kept in the history (IOC_ALERTS).
type AlertEvent = alertlog.Event

// DeadLetterWindow is how far back the share of dead letters is taken.
const DeadLetterWindow = 5 * time.Minute

// seqSample is where IOC_EVENTS and IOC_DLQ were at a sample.
type seqSample struct {
	at              time.Time
	events, letters uint64
}

// MaxHistory bounds the alert history kept in memory and shown.
const MaxHistory = 500

// condition is an alert whose condition holds at a sample.
type condition struct {
	name, subject string
	text          Texts
	// sustained: fire only once it has held for the minimum duration
	// (conditions that carry no duration of their own).
	sustained bool
}

func (m *Monitor) evaluate(ctx context.Context, s Snapshot) {
	var holds []condition
	tf := m.textFormat()
	for _, src := range s.Sources {
		if src.Freshness == "late" {
			last := tf.never()
			if src.LastEventTime != nil {
				last = tf.time(*src.LastEventTime)
			}
			every := src.expected
			holds = append(holds, condition{name: AlertSourceSilent, subject: src.Source, text: Texts{
				VI: fmt.Sprintf("Nguồn %s không gửi dữ liệu quá %s (sự kiện gần nhất: %s)", src.Source, durVI(every), last.VI),
				EN: fmt.Sprintf("source %s sent nothing for longer than %s (last event: %s)", src.Source, durEN(every), last.EN)}})
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
		since, last := c.Created, tf.never()
		if c.LastAck != nil {
			since, last = *c.LastAck, tf.time(*c.LastAck)
		}
		if s.At.Sub(since) > m.cfg.SubscriberSilent {
			n := c.Pending + uint64(c.AckPending)
			holds = append(holds, condition{name: AlertSubscriberSilent, subject: sub, text: Texts{
				VI: fmt.Sprintf("Thuê bao %s có %d sự kiện đang chờ và không nhận sự kiện nào quá %s (lần nhận gần nhất: %s)", sub, n, durVI(m.cfg.SubscriberSilent), last.VI),
				EN: fmt.Sprintf("subscription %s has %d events waiting and took none for longer than %s (last taken: %s)", sub, n, durEN(m.cfg.SubscriberSilent), last.EN)}})
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
			from, to, over := m.lag[0].pending, m.lag[n-1].pending, s.At.Sub(m.lag[0].at)
			holds = append(holds, condition{name: AlertLagGrowing, subject: natsjs.AggregatorConsumer, text: Texts{
				VI: fmt.Sprintf("Độ trễ của bộ tổng hợp tăng từ %d lên %d sự kiện trong %s", from, to, durVI(over)),
				EN: fmt.Sprintf("the aggregator's lag grew from %d to %d events over %s", from, to, durEN(over))}})
		}
	}
	var dlqLast, evLast uint64
	for _, st := range s.Streams {
		switch st.Name {
		case natsjs.DLQStream:
			dlqLast = st.LastSeq
		case natsjs.EventsStream:
			evLast = st.LastSeq
		}
	}
	// The share of dead letters among everything that arrived over the
	// last DeadLetterWindow: a province's systems send the odd broken
	// record all day; an alert is for a burst.
	m.dlqWindow = append(m.dlqWindow, seqSample{at: s.At, events: evLast, letters: dlqLast})
	for len(m.dlqWindow) > 2 && s.At.Sub(m.dlqWindow[1].at) >= DeadLetterWindow {
		m.dlqWindow = m.dlqWindow[1:]
	}
	// The first sample only learns where the stream is: letters already
	// there are not arriving.
	if first := m.dlqWindow[0]; m.dlqInit && dlqLast > m.dlqSeen {
		n := dlqLast - m.dlqSeen
		letters, events := dlqLast-min(first.letters, dlqLast), evLast-min(first.events, evLast)
		if float64(letters)*100 >= m.cfg.DeadLetterPercent*float64(letters+events) {
			pct := float64(letters) * 100 / float64(max(letters+events, 1))
			holds = append(holds, condition{name: AlertDeadLetters, subject: natsjs.DLQStream, text: Texts{
				VI: fmt.Sprintf("%d thư chết mới kể từ lần lấy mẫu trước (%.0f%% số sự kiện đến trong %s); %d thư đang chờ trong %s", n, pct, durVI(DeadLetterWindow), s.DLQ.Depth, natsjs.DLQStream),
				EN: fmt.Sprintf("%d new dead letters since the last sample (%.0f%% of what arrived over %s); %d in %s", n, pct, durEN(DeadLetterWindow), s.DLQ.Depth, natsjs.DLQStream)}})
		}
	}
	m.dlqSeen, m.dlqInit = max(m.dlqSeen, dlqLast), true
	m.mu.Unlock()
	if m.store != nil && !s.Store.Reachable {
		holds = append(holds, condition{name: AlertStoreDown, subject: "clickhouse", sustained: true, text: Texts{
			VI: "ClickHouse không phản hồi: " + s.Store.Error, EN: "ClickHouse does not answer: " + s.Store.Error}})
	}
	if s.Storage.Limit > 0 && float64(s.Storage.Used)*100/float64(s.Storage.Limit) >= m.cfg.DiskFullPercent {
		pct := float64(s.Storage.Used) * 100 / float64(s.Storage.Limit)
		of := map[string]string{"account": "hạn mức tài khoản", "filesystem": "hệ thống tệp"}[s.Storage.Of]
		holds = append(holds, condition{name: AlertDiskNearlyFull, subject: "jetstream", sustained: true, text: Texts{
			VI: fmt.Sprintf("Bộ lưu trữ JetStream đã dùng %.0f%% %s (%d/%d byte)", pct, of, s.Storage.Used, s.Storage.Limit),
			EN: fmt.Sprintf("the JetStream store's %s is %.0f%% full (%d of %d bytes)", s.Storage.Of, pct, s.Storage.Used, s.Storage.Limit)}})
	}
	changes := m.apply(s.At, holds)
	for _, c := range changes {
		m.log.Info("alert "+c.State, zap.String("alert", c.Name), zap.String("subject", c.Subject), zap.String("message", c.Message))
		m.record(ctx, c)
	}
}

// apply moves the alerts on by the conditions holding at now: a condition
// fires at once, or (sustained) once it has held for the minimum
// duration; a firing alert whose condition went away resolves once it has
// stayed away for the resolve delay. It returns the changes.
func (m *Monitor) apply(now time.Time, holds []condition) []AlertEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	keep := map[string]bool{}
	var changes []AlertEvent
	for _, c := range holds {
		key := c.name + "|" + c.subject
		keep[key] = true
		if a, ok := m.alerts[key]; ok {
			a.Message, a.Text, a.Clearing, a.held = c.text.EN, c.text, nil, now
			continue
		}
		if c.sustained {
			first, ok := m.pending[key]
			if !ok {
				m.pending[key], first = now, now
			}
			if now.Sub(first) < m.cfg.AlertMinDuration {
				continue
			}
		}
		delete(m.pending, key)
		m.alerts[key] = &Alert{Name: c.name, Subject: c.subject, Since: now, Message: c.text.EN, Text: c.text, held: now}
		changes = append(changes, AlertEvent{At: now, Name: c.name, Subject: c.subject, State: "firing", Message: c.text.EN, Text: c.text})
	}
	for key := range m.pending {
		if !keep[key] {
			delete(m.pending, key)
		}
	}
	keys := make([]string, 0, len(m.alerts))
	for key := range m.alerts {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		a := m.alerts[key]
		if keep[key] {
			continue
		}
		if a.Clearing == nil {
			t := a.held
			a.Clearing = &t
		}
		if now.Sub(a.held) >= m.cfg.AlertResolveDelay {
			delete(m.alerts, key)
			changes = append(changes, AlertEvent{At: now, Name: a.Name, Subject: a.Subject, State: "resolved", Message: a.Message, Text: a.Text})
		}
	}
	m.history = append(m.history, changes...)
	if len(m.history) > MaxHistory {
		m.history = m.history[len(m.history)-MaxHistory:]
	}
	return changes
}

// record appends a change to IOC_ALERTS: the history after a restart,
// what the webhook sender sends and the dashboard's banner reads.
func (m *Monitor) record(ctx context.Context, c AlertEvent) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := alertlog.Append(ctx, m.js, c); err != nil {
		m.log.Warn("alert change not recorded in "+natsjs.AlertsStream+": the history after a restart, the webhook and the dashboard miss it",
			zap.String("alert", c.Name), zap.Error(err))
	}
}

// loadHistory reads the last MaxHistory changes from IOC_ALERTS: the
// history, and the alerts that were firing when the hub stopped (they
// resolve as any other once their condition has been gone for the resolve
// delay, counted from this start).
func (m *Monitor) loadHistory(ctx context.Context) error {
	hist, err := alertlog.Read(ctx, m.js, MaxHistory)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.history = append(hist, m.history...)
	// When their conditions last held before the stop is not recorded: the
	// resolve delay counts from the start, so a condition the first
	// samples cannot see yet (dead letters arriving) makes no flap.
	now := m.now()
	for _, e := range alertlog.FiringIn(hist) {
		m.alerts[e.Name+"|"+e.Subject] = &Alert{Name: e.Name, Subject: e.Subject, Since: e.At, Message: e.Message, Text: e.Text, held: now}
	}
	return nil
}

// sendWebhook POSTs every alert change recorded in IOC_ALERTS after the
// webhook was configured to AlertWebhook, in order, each until the
// receiver answers 2xx (with backoff); a receiver down for a while gets
// them all when it is back, from whichever process runs the monitor.
func (m *Monitor) sendWebhook(ctx context.Context, c jetstream.Consumer) {
	b := backoff.Backoff{Min: time.Second, Max: time.Minute}
	for ctx.Err() == nil {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		batch, err := c.Fetch(1, jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			m.log.Warn("alert webhook: reading "+natsjs.AlertsStream, zap.Error(err))
			if !b.Wait(ctx) {
				return
			}
			continue
		}
		for msg := range batch.Messages() {
			for {
				err := m.post(ctx, msg.Data())
				if err == nil {
					_ = msg.Ack()
					b.Reset()
					break
				}
				m.log.Warn("alert webhook: sent again after a pause", zap.Error(err))
				_ = msg.InProgress()
				if !b.Wait(ctx) {
					cancel()
					return
				}
			}
		}
		cancel()
	}
}

// webhookConsumer is the durable consumer the webhook is sent from; made
// before the first sample, so it misses no change. A new one starts at
// the changes after it (not the whole history).
func (m *Monitor) webhookConsumer(ctx context.Context) (jetstream.Consumer, error) {
	c, err := m.js.CreateOrUpdateConsumer(ctx, natsjs.AlertsStream, jetstream.ConsumerConfig{
		Durable: natsjs.AlertWebhookConsumer, Description: "iochub monitor: alert changes to monitor.alert_webhook",
		DeliverPolicy: jetstream.DeliverNewPolicy, AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute,
		MaxAckPending: 1, MaxDeliver: -1})
	if err != nil {
		return nil, fmt.Errorf("%s consumer %s: %w", natsjs.AlertsStream, natsjs.AlertWebhookConsumer, err)
	}
	return c, nil
}

// post sends one change as {"alerts": [change]}.
func (m *Monitor) post(ctx context.Context, change []byte) error {
	body := append(append([]byte(`{"alerts":[`), change...), "]}"...)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.cfg.AlertWebhook, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		return errors.New("the receiver answered " + res.Status)
	}
	return nil
}

// Alerts returns the alerts firing now (those clearing included) and the
// history of changes.
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

// textFormat writes times in the IOC's zone.
type textFormat struct{ loc *time.Location }

func (m *Monitor) textFormat() textFormat { return textFormat{loc: m.cfg.Location} }

func (f textFormat) time(t time.Time) Texts {
	s := t.In(f.loc).Format("15:04:05 02/01/2006")
	return Texts{VI: s, EN: s}
}

func (textFormat) never() Texts { return Texts{VI: "chưa có", EN: "never"} }

// durVI and durEN write a duration as people do: "2 phút", "1 h 30 min".
func durVI(d time.Duration) string {
	return strings.Replace(dur(d, "giờ", "phút", "giây"), ".", ",", 1)
}
func durEN(d time.Duration) string { return dur(d, "h", "min", "s") }

func dur(d time.Duration, h, m, s string) string {
	if d > 0 && d < 10*time.Second {
		return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.1f", d.Seconds()), "0"), ".") + " " + s
	}
	d = d.Round(time.Second)
	var parts []string
	if x := d / time.Hour; x > 0 {
		parts = append(parts, fmt.Sprintf("%d %s", x, h))
	}
	if x := d % time.Hour / time.Minute; x > 0 {
		parts = append(parts, fmt.Sprintf("%d %s", x, m))
	}
	if x := d % time.Minute / time.Second; x > 0 || len(parts) == 0 {
		parts = append(parts, fmt.Sprintf("%d %s", x, s))
	}
	return strings.Join(parts, " ")
}
