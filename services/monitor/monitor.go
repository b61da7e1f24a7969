// Package monitor watches the hub's streams for the operators: per stream
// (messages, bytes, first and last time, rate), per consumer (pending = lag,
// ack pending, redelivered, last active), per source (events per minute,
// dead letters per minute, last event, freshness against an expected
// interval), the dead-letter stream (depth, by reason and type) and
// ClickHouse; it evaluates alerts on them and serves it all as JSON under
// /v1/ops/ and as Prometheus metrics at /metrics.
package monitor

import (
	"bytes"
	"context"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/iochub/iochub/pkg/dlq"
	"github.com/iochub/iochub/pkg/httpedge"
	"github.com/iochub/iochub/pkg/natsjs"
)

// Config is the monitor part of the config file.
type Config struct {
	// Interval between samples (default 5 s).
	Interval time.Duration `yaml:"interval"`
	// Sources: a source prefix and how often it must send; silent longer,
	// the source_silent alert fires.
	Sources map[string]time.Duration `yaml:"sources"`
	// LagWindow: the aggregator's lag must grow for this long before
	// lag_growing fires (default 1 min).
	LagWindow time.Duration `yaml:"lag_window"`
	// DiskFullPercent of the JetStream store's limit fires disk_nearly_full
	// (default 90).
	DiskFullPercent float64 `yaml:"disk_full_percent"`
	// StoreDir is the JetStream store's directory (set by iochub run for the
	// embedded server): without an account storage limit, disk_nearly_full
	// watches this filesystem instead.
	StoreDir string `yaml:"-"`
	// AlertWebhook, if set, gets a POST of every alert change.
	AlertWebhook string `yaml:"alert_webhook"`
	// Admins may replay and purge dead letters over the API.
	Admins []Admin `yaml:"admins"`
}

// Admin is an operator token (its SHA-256) for the dead-letter API.
type Admin struct {
	Name        string `yaml:"name"`
	TokenSHA256 string `yaml:"token_sha256"`
}

// Pinger checks the event store answers; chstore.Store is one.
type Pinger interface {
	Ping(ctx context.Context) error
}

// StreamStat is one stream.
type StreamStat struct {
	Name       string    `json:"name"`
	Messages   uint64    `json:"messages"`
	Bytes      uint64    `json:"bytes"`
	FirstTime  time.Time `json:"first_time"`
	LastTime   time.Time `json:"last_time"`
	LastSeq    uint64    `json:"last_seq"`
	RatePerSec float64   `json:"rate_per_sec"` // new messages per second over the last interval
}

// ConsumerStat is one durable consumer.
type ConsumerStat struct {
	Stream      string     `json:"stream"`
	Name        string     `json:"name"`
	Pending     uint64     `json:"pending"` // the lag: messages not yet delivered
	AckPending  int        `json:"ack_pending"`
	Redelivered int        `json:"redelivered"`
	LastActive  *time.Time `json:"last_active"`
}

// SourceStat is one event source.
type SourceStat struct {
	Source           string     `json:"source"`
	Events           uint64     `json:"events_total"`
	EventsPerMin     float64    `json:"events_per_min"`
	Rejected         uint64     `json:"rejected_total"`
	RejectedPerMin   float64    `json:"rejected_per_min"`
	LastEventTime    *time.Time `json:"last_event_time"`
	ExpectedInterval string     `json:"expected_interval,omitempty"`
	Freshness        string     `json:"freshness"` // ok, late, unknown (no expectation)
}

// DLQStat is the dead-letter stream.
type DLQStat struct {
	Depth    uint64            `json:"depth"`
	ByReason map[string]uint64 `json:"by_reason"`
	ByType   map[string]uint64 `json:"by_type"`
}

// StoreStat is ClickHouse as the monitor sees it.
type StoreStat struct {
	Reachable        bool                 `json:"reachable"`
	Error            string               `json:"error,omitempty"`
	RowsInserted     uint64               `json:"rows_inserted_total"`
	InsertRatePerSec float64              `json:"insert_rate_per_sec"`
	InsertErrors     uint64               `json:"insert_errors_total"`
	Batches          uint64               `json:"batches_total"`
	LastBatchMs      float64              `json:"last_batch_ms"`
	Tables           map[string]TableSize `json:"tables,omitempty"`
}

// TableSize is one ClickHouse table's active parts.
type TableSize struct {
	Rows  uint64 `json:"rows"`
	Bytes uint64 `json:"bytes"`
}

// StoreCounters are an in-process aggregator's insert figures.
type StoreCounters struct {
	RowsInserted, InsertErrors, Batches uint64
	LastBatch                           time.Duration
}

// Snapshot is one sample of everything.
type Snapshot struct {
	At        time.Time      `json:"at"`
	Streams   []StreamStat   `json:"streams"`
	Consumers []ConsumerStat `json:"consumers"`
	Sources   []SourceStat   `json:"sources"`
	DLQ       DLQStat        `json:"dlq"`
	Store     StoreStat      `json:"clickhouse"`
	Storage   struct {
		Used  uint64 `json:"used_bytes"`
		Limit int64  `json:"limit_bytes"`
		Of    string `json:"of"` // "account" (JetStream's limit) or "filesystem" (of the store directory)
	} `json:"jetstream_storage"`
}

// Monitor samples and alerts.
type Monitor struct {
	cfg    Config
	admins *httpedge.Keyring[Admin]
	nc     *nats.Conn
	js     jetstream.JetStream
	store  Pinger
	log    *zap.Logger
	now    func() time.Time

	mu      sync.Mutex
	snap    Snapshot
	prev    map[string]uint64 // stream -> last seq at the previous sample
	lag     []lagSample
	sources map[string]*sourceCounter
	dlqSeen uint64
	dlqInit bool
	alerts  map[string]*Alert
	history []AlertEvent
	rates   []RatePoint
	counts  func() map[string]SourceTotal
	storeC  func() StoreCounters
	sizes   func(context.Context) (map[string]TableSize, error)
	prevIns uint64
}

// SourceTotal is what an in-process aggregator counted of a source.
type SourceTotal struct {
	Events uint64
	Last   time.Time
}

// RatePoint is the events accepted and dead-lettered per second at a sample.
type RatePoint struct {
	At          time.Time `json:"t"`
	Events      float64   `json:"events_per_sec"`
	DeadLetters float64   `json:"dead_letters_per_sec"`
}

type lagSample struct {
	at      time.Time
	pending uint64
}

type sourceCounter struct {
	events, rejected uint64
	last             time.Time
	window           []minuteCount // per-sample counts for the per-minute rates
}

type minuteCount struct {
	at               time.Time
	events, rejected uint64
}

// DefaultConfig is the monitor's configuration when the file sets nothing.
func DefaultConfig() Config {
	return Config{Interval: 5 * time.Second, LagWindow: time.Minute, DiskFullPercent: 90}
}

// Deps are what the monitor watches. NC, JS and Log are required; the rest
// may be nil.
type Deps struct {
	NC  *nats.Conn
	JS  jetstream.JetStream
	Log *zap.Logger
	// Store is pinged for ClickHouse's health; nil where no ClickHouse is used.
	Store Pinger
	// Sources gives the per-source event counts of an in-process aggregator;
	// nil: the monitor subscribes to every event and counts itself (the
	// costlier way, when the aggregator runs elsewhere).
	Sources func() map[string]SourceTotal
	// StoreStats gives the aggregator's insert counters, TableSizes the raw
	// tables' sizes.
	StoreStats func() StoreCounters
	TableSizes func(context.Context) (map[string]TableSize, error)
}

// New makes a monitor; unset fields of cfg take DefaultConfig's.
func New(cfg Config, d Deps) *Monitor {
	def := DefaultConfig()
	if cfg.Interval <= 0 {
		cfg.Interval = def.Interval
	}
	if cfg.LagWindow <= 0 {
		cfg.LagWindow = def.LagWindow
	}
	if cfg.DiskFullPercent <= 0 {
		cfg.DiskFullPercent = def.DiskFullPercent
	}
	return &Monitor{cfg: cfg, nc: d.NC, js: d.JS, store: d.Store, log: d.Log, now: time.Now, prev: map[string]uint64{},
		sources: map[string]*sourceCounter{}, alerts: map[string]*Alert{},
		counts: d.Sources, storeC: d.StoreStats, sizes: d.TableSizes,
		admins: httpedge.NewKeyring("admin", cfg.Admins, func(a Admin) string { return a.TokenSHA256 })}
}

// Run samples every interval until ctx is done. It also counts events per
// source by listening to the event subjects (a plain subscription: it takes
// nothing from the stream; Deps.Sources avoids it) and dead letters
// as they arrive.
func (m *Monitor) Run(ctx context.Context) error {
	if m.counts == nil {
		sub, err := m.nc.Subscribe("ioc.>", func(msg *nats.Msg) { m.count(sourceOf(msg.Data), false) })
		if err != nil {
			return err
		}
		defer sub.Unsubscribe()
	}
	dsub, err := m.nc.Subscribe("dlq.>", func(msg *nats.Msg) { m.count(sourceOf(msg.Data), true) })
	if err != nil {
		return err
	}
	defer dsub.Unsubscribe()
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		m.Sample(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// sourceOf finds the CloudEvents source in an event's JSON without decoding
// it all: the monitor must cost little per event.
func sourceOf(b []byte) string {
	i := bytes.Index(b, []byte(`"source":"`))
	if i < 0 {
		i = bytes.Index(b, []byte(`"source": "`))
		if i < 0 {
			return "(unknown)"
		}
		i++
	}
	b = b[i+10:]
	j := bytes.IndexByte(b, '"')
	if j < 0 {
		return "(unknown)"
	}
	return string(b[:j])
}

func (m *Monitor) count(source string, rejected bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.sources[source]
	if c == nil {
		c = &sourceCounter{window: []minuteCount{{at: m.now()}}} // counted from zero
		m.sources[source] = c
	}
	if rejected {
		c.rejected++
		return
	}
	c.events++
	c.last = m.now()
}

// Sample reads the streams, consumers and store, then evaluates alerts.
func (m *Monitor) Sample(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	now := m.now()
	var s Snapshot
	s.At = now
	names := []string{natsjs.EventsStream, natsjs.DLQStream, "IOC_SENSORS"}
	for _, name := range names {
		st, err := m.js.Stream(ctx, name)
		if err != nil {
			continue
		}
		info, err := st.Info(ctx)
		if err != nil {
			continue
		}
		ss := StreamStat{Name: name, Messages: info.State.Msgs, Bytes: info.State.Bytes, FirstTime: info.State.FirstTime,
			LastTime: info.State.LastTime, LastSeq: info.State.LastSeq}
		m.mu.Lock()
		if p, ok := m.prev[name]; ok && !m.snap.At.IsZero() {
			if dt := now.Sub(m.snap.At).Seconds(); dt > 0 && ss.LastSeq >= p {
				ss.RatePerSec = float64(ss.LastSeq-p) / dt
			}
		}
		m.prev[name] = ss.LastSeq
		m.mu.Unlock()
		s.Streams = append(s.Streams, ss)
		for cname := range consumersOf(ctx, st) {
			c, err := st.Consumer(ctx, cname)
			if err != nil {
				continue
			}
			ci, err := c.Info(ctx)
			if err != nil {
				continue
			}
			cs := ConsumerStat{Stream: name, Name: cname, Pending: ci.NumPending, AckPending: ci.NumAckPending, Redelivered: ci.NumRedelivered}
			if ci.Delivered.Last != nil {
				t := *ci.Delivered.Last
				cs.LastActive = &t
			}
			s.Consumers = append(s.Consumers, cs)
		}
		if name == natsjs.DLQStream {
			s.DLQ = m.dlqStats(ctx, st, info.State.LastSeq)
		}
	}
	if ai, err := m.js.AccountInfo(ctx); err == nil && ai.Limits.MaxStore > 0 {
		s.Storage.Used, s.Storage.Limit, s.Storage.Of = ai.Store, ai.Limits.MaxStore, "account"
	} else if m.cfg.StoreDir != "" {
		var fs syscall.Statfs_t
		if err := syscall.Statfs(m.cfg.StoreDir, &fs); err == nil {
			total := fs.Blocks * uint64(fs.Bsize)
			s.Storage.Used, s.Storage.Limit, s.Storage.Of = total-fs.Bavail*uint64(fs.Bsize), int64(total), "filesystem"
		}
	}
	if m.store != nil {
		if err := m.store.Ping(ctx); err != nil {
			s.Store = StoreStat{Reachable: false, Error: err.Error()}
		} else {
			s.Store.Reachable = true
		}
	}
	if m.storeC != nil {
		c := m.storeC()
		s.Store.RowsInserted, s.Store.InsertErrors, s.Store.Batches = c.RowsInserted, c.InsertErrors, c.Batches
		s.Store.LastBatchMs = float64(c.LastBatch.Microseconds()) / 1000
		m.mu.Lock()
		if dt := now.Sub(m.snap.At).Seconds(); !m.snap.At.IsZero() && dt > 0 && c.RowsInserted >= m.prevIns {
			s.Store.InsertRatePerSec = float64(c.RowsInserted-m.prevIns) / dt
		}
		m.prevIns = c.RowsInserted
		m.mu.Unlock()
	}
	if m.sizes != nil && s.Store.Reachable {
		if t, err := m.sizes(ctx); err == nil {
			s.Store.Tables = t
		}
	}
	var totals map[string]SourceTotal
	if m.counts != nil {
		totals = m.counts()
	}
	m.mu.Lock()
	for src, tot := range totals {
		c := m.sources[src]
		if c == nil {
			c = &sourceCounter{window: []minuteCount{{at: now}}}
			m.sources[src] = c
		}
		c.events, c.last = tot.Events, tot.Last
	}
	s.Sources = m.sourceStats(now)
	m.snap = s
	rp := RatePoint{At: now}
	for _, st := range s.Streams {
		switch st.Name {
		case natsjs.EventsStream:
			rp.Events = st.RatePerSec
		case natsjs.DLQStream:
			rp.DeadLetters = st.RatePerSec
		}
	}
	m.rates = append(m.rates, rp)
	for len(m.rates) > 0 && now.Sub(m.rates[0].At) > time.Hour {
		m.rates = m.rates[1:]
	}
	m.mu.Unlock()
	m.evaluate(ctx, s)
}

func consumersOf(ctx context.Context, st jetstream.Stream) map[string]bool {
	out := map[string]bool{}
	l := st.ConsumerNames(ctx)
	for n := range l.Name() {
		out[n] = true
	}
	return out
}

// dlqStats counts dead letters by reason (its first words) and type.
func (m *Monitor) dlqStats(ctx context.Context, st jetstream.Stream, last uint64) DLQStat {
	out := DLQStat{ByReason: map[string]uint64{}, ByType: map[string]uint64{}}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(">"))
	if err != nil {
		return out
	}
	out.Depth = info.State.Msgs
	for subj, n := range info.State.Subjects {
		out.ByType[strings.TrimPrefix(subj, "dlq.")] += n
	}
	for _, d := range m.listDLQ(ctx, 500) {
		out.ByReason[reasonKind(d.Reason)]++
	}
	return out
}

// reasonKind is the part of a reason before its details, to group by.
func reasonKind(r string) string {
	if i := strings.IndexAny(r, ":("); i > 0 {
		return strings.TrimSpace(r[:i])
	}
	if len(r) > 60 {
		return r[:60]
	}
	return r
}

func (m *Monitor) sourceStats(now time.Time) []SourceStat {
	var out []SourceStat
	seen := map[string]bool{}
	for src, c := range m.sources {
		c.window = append(c.window, minuteCount{at: now, events: c.events, rejected: c.rejected})
		for len(c.window) > 1 && now.Sub(c.window[0].at) > time.Minute {
			c.window = c.window[1:]
		}
		ss := SourceStat{Source: src, Events: c.events, Rejected: c.rejected, Freshness: "unknown"}
		// Over the last minute; a younger window counts as a whole minute,
		// so a burst just after start is not read as a huge rate.
		first := c.window[0]
		mins := max(now.Sub(first.at).Minutes(), 1)
		ss.EventsPerMin = float64(c.events-first.events) / mins
		ss.RejectedPerMin = float64(c.rejected-first.rejected) / mins
		if !c.last.IsZero() {
			t := c.last
			ss.LastEventTime = &t
		}
		if prefix, every, ok := m.expectation(src); ok {
			seen[prefix] = true
			ss.ExpectedInterval = every.String()
			ss.Freshness = "ok"
			if c.last.IsZero() || now.Sub(c.last) > every {
				ss.Freshness = "late"
			}
		}
		out = append(out, ss)
	}
	for prefix, every := range m.cfg.Sources { // expected and never heard from
		if !seen[prefix] {
			out = append(out, SourceStat{Source: prefix, ExpectedInterval: every.String(), Freshness: "late"})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Source < out[j].Source })
	return out
}

// expectation is the longest configured prefix of src.
func (m *Monitor) expectation(src string) (string, time.Duration, bool) {
	best, every := "", time.Duration(0)
	for p, d := range m.cfg.Sources {
		if strings.HasPrefix(src, p) && len(p) > len(best) {
			best, every = p, d
		}
	}
	return best, every, best != ""
}

// Rates are the event and dead-letter rates of the last hour's samples.
func (m *Monitor) Rates() []RatePoint {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]RatePoint(nil), m.rates...)
}

// Snapshot is the latest sample.
func (m *Monitor) Snapshot() Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.snap
}

var errNotFound = dlq.ErrNotFound
