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
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/iochub/iochub/pkg/backoff"
	"github.com/iochub/iochub/pkg/dlq"
	"github.com/iochub/iochub/pkg/httpedge"
	"github.com/iochub/iochub/pkg/opsstats"
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
	// SubscriberSilent: a partner agency's subscription with events waiting
	// that takes none for this long fires subscriber_silent (default 1 h).
	SubscriberSilent time.Duration `yaml:"subscriber_silent"`
	// DeadLetterPercent: dead_letters_arriving fires when new dead letters
	// are at least this share of what arrived (events and dead letters)
	// over the last DeadLetterWindow (default 1; the odd broken record of
	// a busy province is no alert, the page still counts it).
	DeadLetterPercent float64 `yaml:"dead_letter_percent"`
	// DiskFullPercent of the JetStream store's limit fires disk_nearly_full
	// (default 90).
	DiskFullPercent float64 `yaml:"disk_full_percent"`
	// StoreDir is the JetStream store's directory (set by iochub run for the
	// embedded server): without an account storage limit, disk_nearly_full
	// watches this filesystem instead.
	StoreDir string `yaml:"-"`
	// AlertWebhook, if set, gets a POST of every alert change, in order,
	// each sent again with backoff until it answers 2xx.
	AlertWebhook string `yaml:"alert_webhook"`
	// AlertMinDuration: an alert whose condition carries no duration of
	// its own (clickhouse_unreachable, disk_nearly_full) fires once the
	// condition has held this long (default 30 s). AlertResolveDelay: a
	// firing alert resolves once its condition has been gone this long
	// (default 5 min), so a burst of dead letters is one alert, not one
	// per sample.
	AlertMinDuration  time.Duration `yaml:"alert_min_duration"`
	AlertResolveDelay time.Duration `yaml:"alert_resolve_delay"`
	// Location writes the alerts' times (set by iochub run from
	// iocapi.timezone; default Asia/Ho_Chi_Minh).
	Location *time.Location `yaml:"-"`
	// Admins may replay and purge dead letters over the API.
	Admins []Admin `yaml:"admins"`
	// MaxSources bounds the sources watched (the ops page, /metrics): the
	// most recently heard are kept (default 1000). SourceTTL forgets a
	// source not heard from for that long (default 24 h), unless Sources
	// expects it.
	MaxSources int           `yaml:"max_sources"`
	SourceTTL  time.Duration `yaml:"source_ttl"`
}

// Roles of an admin token.
const (
	RoleViewer   = "viewer"   // reads /v1/ops and the ops page, dead letters included
	RoleOperator = "operator" // also replays and purges dead letters
)

// Admin is a token (its SHA-256) for /v1/ops and the ops page.
type Admin struct {
	Name        string `yaml:"name"`
	TokenSHA256 string `yaml:"token_sha256"`
	// Role is viewer or operator; empty is operator (the one role before
	// roles were introduced).
	Role string `yaml:"role"`
}

// role is a's role, operator when unset.
func (a Admin) role() string {
	if a.Role == "" {
		return RoleOperator
	}
	return a.Role
}

// Pinger checks the event store answers; chstore.Store is one.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Monitor samples and alerts.
type Monitor struct {
	cfg    Config
	admins *httpedge.Keyring[Admin]
	ready  chan struct{} // closed once Run has subscribed

	sampling sync.Mutex // held by Sample from start to end
	nc       *nats.Conn
	js       jetstream.JetStream
	store    Pinger
	log      *zap.Logger
	now      func() time.Time

	mu        sync.Mutex
	snap      Snapshot
	prev      map[string]uint64 // stream -> last seq at the previous sample
	lag       []lagSample
	sources   map[string]*sourceCounter
	dlqSeen   uint64
	dlqInit   bool
	dlqWindow []seqSample
	alerts    map[string]*Alert
	pending   map[string]time.Time // sustained conditions not yet held for AlertMinDuration
	history   []AlertEvent
	started   time.Time
	gateway   map[string]opsstats.GatewayReport // by process
	rates     []RatePoint
	counts    func() map[string]SourceTotal
	subs      func(context.Context) ([]SubscriptionStat, error)
	storeC    func() StoreCounters
	sizes     func(context.Context) (map[string]TableSize, error)
	prevIns   uint64
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
	return Config{Interval: 5 * time.Second, LagWindow: time.Minute, DiskFullPercent: 90, MaxSources: 1000, SourceTTL: 24 * time.Hour,
		AlertMinDuration: 30 * time.Second, AlertResolveDelay: 5 * time.Minute, DeadLetterPercent: 1}
}

// Validate names every problem of the monitor part of the config file.
func (c Config) Validate() error {
	var errs []error
	if c.AlertMinDuration < 0 || c.AlertResolveDelay < 0 {
		errs = append(errs, fmt.Errorf("monitor: alert_min_duration %s and alert_resolve_delay %s must not be negative", c.AlertMinDuration, c.AlertResolveDelay))
	}
	if c.Interval < 0 || c.LagWindow < 0 || c.SubscriberSilent < 0 {
		errs = append(errs, fmt.Errorf("monitor: interval %s, lag_window %s and subscriber_silent %s must not be negative", c.Interval, c.LagWindow, c.SubscriberSilent))
	}
	if c.MaxSources < 0 || c.SourceTTL < 0 {
		errs = append(errs, fmt.Errorf("monitor: max_sources %d and source_ttl %s must not be negative", c.MaxSources, c.SourceTTL))
	}
	if c.DeadLetterPercent < 0 || c.DeadLetterPercent > 100 {
		errs = append(errs, fmt.Errorf("monitor.dead_letter_percent: want 0 to 100, got %g", c.DeadLetterPercent))
	}
	if c.DiskFullPercent < 0 || c.DiskFullPercent > 100 {
		errs = append(errs, fmt.Errorf("monitor.disk_full_percent: want 1 to 100, got %g", c.DiskFullPercent))
	}
	for src, every := range c.Sources {
		if every <= 0 {
			errs = append(errs, fmt.Errorf("monitor.sources[%q]: want a positive interval, got %s", src, every))
		}
	}
	for i, a := range c.Admins {
		if b, err := hex.DecodeString(a.TokenSHA256); err != nil || len(b) != sha256.Size {
			errs = append(errs, fmt.Errorf("monitor.admins[%d] (%s): token_sha256 must be 64 hex digits (the SHA-256 of the token)", i, a.Name))
		}
		if r := a.role(); r != RoleViewer && r != RoleOperator {
			errs = append(errs, fmt.Errorf("monitor.admins[%d] (%s): role must be %s or %s, got %q", i, a.Name, RoleViewer, RoleOperator, a.Role))
		}
	}
	return errors.Join(errs...)
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
	// Subscriptions gives the partner agencies' subscriptions as the
	// sharing service in this process delivers them (Name, Agency, Mode,
	// Paused, Delivered, LastDelivery, LastError, Retries, DeadLettered);
	// the monitor adds their lag and dead letters.
	Subscriptions func(context.Context) ([]SubscriptionStat, error)
}

// New makes a monitor; unset fields of cfg take DefaultConfig's.
func New(cfg Config, d Deps) *Monitor {
	def := DefaultConfig()
	if cfg.Interval <= 0 {
		cfg.Interval = def.Interval
	}
	if cfg.SubscriberSilent <= 0 {
		cfg.SubscriberSilent = time.Hour
	}
	if cfg.LagWindow <= 0 {
		cfg.LagWindow = def.LagWindow
	}
	if cfg.DiskFullPercent <= 0 {
		cfg.DiskFullPercent = def.DiskFullPercent
	}
	if cfg.MaxSources <= 0 {
		cfg.MaxSources = def.MaxSources
	}
	if cfg.SourceTTL <= 0 {
		cfg.SourceTTL = def.SourceTTL
	}
	if cfg.DeadLetterPercent <= 0 {
		cfg.DeadLetterPercent = def.DeadLetterPercent
	}
	if cfg.AlertMinDuration <= 0 {
		cfg.AlertMinDuration = def.AlertMinDuration
	}
	if cfg.AlertResolveDelay <= 0 {
		cfg.AlertResolveDelay = def.AlertResolveDelay
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
		if loc, err := time.LoadLocation("Asia/Ho_Chi_Minh"); err == nil {
			cfg.Location = loc
		}
	}
	return &Monitor{cfg: cfg, nc: d.NC, js: d.JS, store: d.Store, log: d.Log, now: time.Now, prev: map[string]uint64{},
		sources: map[string]*sourceCounter{}, alerts: map[string]*Alert{}, pending: map[string]time.Time{}, started: time.Now(),
		gateway: map[string]opsstats.GatewayReport{},
		counts:  d.Sources, storeC: d.StoreStats, sizes: d.TableSizes, subs: d.Subscriptions, ready: make(chan struct{}),
		admins: httpedge.NewKeyring("admin", cfg.Admins, func(a Admin) string { return a.TokenSHA256 })}
}

// Ready is closed once Run listens: every event and dead letter published
// after it is counted.
func (m *Monitor) Ready() <-chan struct{} { return m.ready }

// Run samples every interval until ctx is done. It also counts events per
// source by listening to the event subjects (a plain subscription: it takes
// nothing from the stream; Deps.Sources avoids it) and dead letters
// as they arrive, takes the gateways' reports, and sends the alert webhook.
func (m *Monitor) Run(ctx context.Context) error {
	// Neither the history nor the webhook stops the monitor: JetStream
	// may be electing a leader (a cluster starting). Without the history
	// it starts from none; the webhook's consumer is made again until it
	// can be.
	if err := m.loadHistory(ctx); err != nil {
		m.log.Warn("monitor: the alert history could not be read; starting without it", zap.Error(err))
	}
	if m.cfg.AlertWebhook != "" {
		c, err := m.webhookConsumer(ctx)
		done := make(chan struct{})
		wctx, stop := context.WithCancel(ctx)
		go func() {
			defer close(done)
			for b := (backoff.Backoff{Min: time.Second, Max: time.Minute}); err != nil; c, err = m.webhookConsumer(wctx) {
				m.log.Warn("monitor: the alert webhook's consumer, tried again", zap.Error(err))
				if !b.Wait(wctx) {
					return
				}
			}
			m.sendWebhook(wctx, c)
		}()
		defer func() { stop(); <-done }()
	}
	gsub, err := m.nc.Subscribe(opsstats.GatewaySubject, func(msg *nats.Msg) {
		var r opsstats.GatewayReport
		if json.Unmarshal(msg.Data, &r) == nil && r.Process != "" {
			m.mu.Lock()
			m.gateway[r.Process] = r
			m.mu.Unlock()
		}
	})
	if err != nil {
		return err
	}
	defer gsub.Unsubscribe()
	if m.counts == nil {
		sub, err := m.nc.Subscribe("ioc.>", func(msg *nats.Msg) { m.count(sourceOf(msg.Data), false) })
		if err != nil {
			return err
		}
		defer sub.Unsubscribe()
	}
	dsub, err := m.nc.Subscribe("dlq.>", func(msg *nats.Msg) { m.count(letterSource(msg), true) })
	if err != nil {
		return err
	}
	defer dsub.Unsubscribe()
	if err := m.nc.Flush(); err != nil { // the server has the subscriptions
		return err
	}
	close(m.ready)
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

// letterSource is the source a dead letter is counted under: a connector's
// letter holds its raw record, encrypted, and is counted under the
// connector's name; any other holds the event.
func letterSource(msg *nats.Msg) string {
	if name, ok := strings.CutPrefix(msg.Subject, dlq.ConnectorSubjectPrefix); ok {
		return "(connector " + name + ")"
	}
	return sourceOf(msg.Data)
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
