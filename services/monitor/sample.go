package monitor

import (
	"context"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/iochub/iochub/pkg/audit"
	"github.com/iochub/iochub/pkg/dlq"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/opsstats"
)

// Sample reads the streams, consumers and store, then evaluates alerts.
// Samples run one at a time (Run's ticker and a caller's), so a slow one
// never overwrites a later one's snapshot with older figures.
func (m *Monitor) Sample(ctx context.Context) {
	m.sampling.Lock()
	defer m.sampling.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	now := m.now()
	var s Snapshot
	s.At = now
	names := []string{natsjs.EventsStream, natsjs.DLQStream, "IOC_SENSORS", audit.Stream}
	shared := m.js.StreamNames(ctx, jetstream.WithStreamListSubject("share.>")) // the agencies' streams (subscriptions of mode nats)
	for n := range shared.Name() {
		names = append(names, n)
	}
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
			if ci.AckFloor.Last != nil {
				t := *ci.AckFloor.Last
				cs.LastAck = &t
			}
			cs.Created = ci.Created
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
	if m.subs != nil {
		s.Subscriptions = m.subscriptionStats(ctx, s)
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
		if now.Sub(tot.Last) > m.cfg.SourceTTL {
			continue // forgotten below; not brought back
		}
		c := m.sources[src]
		if c == nil {
			c = &sourceCounter{window: []minuteCount{{at: now}}}
			m.sources[src] = c
		}
		c.events, c.last = tot.Events, tot.Last
	}
	m.forgetSources(now)
	s.Sources = m.sourceStats(now)
	var reports []opsstats.GatewayReport
	for p, r := range m.gateway {
		if now.Sub(r.At) > m.cfg.SourceTTL {
			delete(m.gateway, p) // a process gone for long: its figures are history
			continue
		}
		reports = append(reports, r)
	}
	sort.Slice(reports, func(i, j int) bool { return reports[i].Process < reports[j].Process })
	s.Producers = opsstats.Sum(reports)
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

// subscriptionStats are the sharing service's subscriptions with their lag
// (their consumers' on IOC_EVENTS and, mode nats, in the agency's stream)
// and the dead letters waiting.
func (m *Monitor) subscriptionStats(ctx context.Context, s Snapshot) []SubscriptionStat {
	subs, err := m.subs(ctx)
	if err != nil {
		m.log.Warn("monitor: the subscriptions", zap.Error(err))
		return nil
	}
	waiting := map[string]uint64{} // stream/consumer → not taken
	for _, c := range s.Consumers {
		waiting[c.Stream+"/"+c.Name] = c.Pending + uint64(c.AckPending)
	}
	for i := range subs {
		sub := &subs[i]
		sub.Pending = waiting[natsjs.EventsStream+"/"+natsjs.SubscriptionConsumerPrefix+sub.Name]
		if sub.Mode == "nats" {
			sub.Pending += waiting[natsjs.ShareStream(sub.Agency)+"/"+sub.Name]
		}
		sub.DeadLetters = s.DLQ.ByType[strings.TrimPrefix(dlq.SubscriptionSubjectPrefix, "dlq.")+sub.Name]
	}
	return subs
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
	for _, d := range m.ListDLQ(ctx, 500) {
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

// forgetSources drops the sources not heard from within the TTL and, over
// MaxSources, the least recently heard: a producer inventing sources cannot
// grow the monitor, its page or /metrics without bound.
func (m *Monitor) forgetSources(now time.Time) {
	heard := func(c *sourceCounter) time.Time {
		if c.last.IsZero() {
			return c.window[0].at
		}
		return c.last
	}
	for src, c := range m.sources {
		if _, _, expected := m.expectation(src); !expected && now.Sub(heard(c)) > m.cfg.SourceTTL {
			delete(m.sources, src)
		}
	}
	if len(m.sources) <= m.cfg.MaxSources {
		return
	}
	srcs := make([]string, 0, len(m.sources))
	for src := range m.sources {
		srcs = append(srcs, src)
	}
	sort.Slice(srcs, func(i, j int) bool { return heard(m.sources[srcs[i]]).After(heard(m.sources[srcs[j]])) })
	for _, src := range srcs[m.cfg.MaxSources:] {
		delete(m.sources, src)
	}
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
			ss.ExpectedInterval, ss.expected = every.String(), every
			ss.Freshness = m.freshness(now, c.last, every)
		}
		out = append(out, ss)
	}
	for prefix, every := range m.cfg.Sources { // expected and never heard from
		if !seen[prefix] {
			out = append(out, SourceStat{Source: prefix, ExpectedInterval: every.String(), expected: every, Freshness: m.freshness(now, time.Time{}, every)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Source < out[j].Source })
	return out
}

// freshness of a source expected every interval, last heard at last (zero:
// not since the monitor started): not late before one interval has passed
// since the start, for a source may simply not have had its turn yet.
func (m *Monitor) freshness(now, last time.Time, every time.Duration) string {
	switch {
	case !last.IsZero() && now.Sub(last) <= every:
		return "ok"
	case now.Sub(m.started) <= every:
		return "starting"
	}
	return "late"
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
