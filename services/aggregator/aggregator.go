// Package aggregator materializes the events of IOC_EVENTS into ClickHouse's
// raw tables, exactly once.
//
// Message outcomes (the one table of how a message is settled):
//
//	row written to ClickHouse (Send returned)           → Ack
//	identity (source, id) already in its raw table       → Ack, no second row (a redelivery, a
//	                                                       resend after the dedup window, a replay)
//	the same identity twice in one batch                 → one row; every copy acked with it
//	cannot decode, unknown type, fails validation        → publish to IOC_DLQ with the reason, then Ack
//	ClickHouse keeps rejecting the row (MaxAttempts)     → publish to IOC_DLQ with the reason, then Ack
//	dead-letter publish fails                            → NakWithDelay: redelivered, nothing lost
//	ClickHouse unreachable                               → keep the batch, back off, retry; InProgress
//	                                                       keeps JetStream from redelivering meanwhile
//
// Exactly once (docs/decisions/0005-permanent-identity.md): before every
// insert, the batch's identities are looked up in their raw table (by event
// second and (source, id), so only a few granules are read), and only the
// absent ones are inserted. The raw table is the one record of what is
// stored, so the answer does not depend on timing: not on the ack wait, on
// redeliveries arriving while a batch is retried, on JetStream's duplicate
// window, or on how loaded the machine is. An insert whose outcome is unknown
// is waited for (chstore) before the lookup of its retry. Events published
// straight onto NATS in either content mode of the CloudEvents NATS binding,
// without the hub's mark, are admitted here (validated, pseudonymized) by
// pkg/admit like an HTTP event.
package aggregator

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/iochub/iochub/pkg/admit"
	"github.com/iochub/iochub/pkg/backoff"
	"github.com/iochub/iochub/pkg/chstore"
	"github.com/iochub/iochub/pkg/dlq"
	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/pii"
	"github.com/iochub/iochub/pkg/schema"
)

// Store is what the aggregator needs of ClickHouse.
type Store interface {
	Insert(ctx context.Context, table string, cols []string, rows [][]any) error
	Existing(ctx context.Context, table string, ids []chstore.Identity) (map[chstore.Identity]bool, error)
}

// RollupRepairer rebuilds the rollups fed by a raw table from its rows, over
// the partitions that raw rows with event times in [from, to] reach, calling
// fresh before each change it makes (kpi.Catalog.Repair on the store).
type RollupRepairer interface {
	Repair(ctx context.Context, table string, from, to time.Time, fresh func() error) error
}

// TableLocks serialize the writes of a table among several aggregator
// processes (decision 0013; *lease.Leases).
type TableLocks interface {
	Lock(ctx context.Context, key string) (taken time.Time, unlock func(), err error)
	TTL() time.Duration
}

// Config tunes batching and retries.
type Config struct {
	// Locks, when set, serialize each table's identity check and insert
	// with the other aggregator processes'; nil: this is the only one.
	Locks TableLocks `yaml:"-"`
	// Rollups, when set, are rebuilt for the rows an insert wrote when its
	// outcome was unknown (the retry finds them and skips them, and their
	// rollup rows may be missing: decision 0014).
	Rollups        RollupRepairer `yaml:"-"`
	BatchMaxEvents int            // flush at this many events; default 5000
	BatchMaxBytes  int            // or this many bytes of events; default 8 MiB
	BatchMaxWait   time.Duration  // or this long after the first event; default 200ms
	// BacklogBatchMaxEvents is the batch while a backlog waits (the
	// consumer has at least BatchMaxEvents more to deliver): fewer, larger
	// inserts make fewer parts for ClickHouse to merge, its largest cost
	// per event in a drain. Its bytes are 4 × BatchMaxBytes, its wait 4 ×
	// BatchMaxWait. Default 25,000; at most BatchMaxEvents turns it off.
	BacklogBatchMaxEvents int
	MaxAttempts           int           // inserts of a row ClickHouse rejects before it is dead-lettered; default 5
	BackoffMin            time.Duration // first retry delay; default 100ms
	BackoffMax            time.Duration // longest retry delay; default 10s
	AckWait               time.Duration // the consumer's ack wait; InProgress is sent at a third of it; default natsjs.DefaultAckWait
	// Producers are the scopes of the direct NATS producers (the config
	// file's nats.users of role producer): an event the hub did not admit
	// is stored only within one of them, so no NATS user can write into a
	// source it does not own.
	Producers []event.Scope
}

// DefaultConfig is the aggregator's configuration when nothing is set.
func DefaultConfig() Config {
	return Config{
		BatchMaxEvents:        5000,
		BatchMaxBytes:         8 << 20,
		BatchMaxWait:          200 * time.Millisecond,
		MaxAttempts:           5,
		BacklogBatchMaxEvents: 25_000,
		BackoffMin:            100 * time.Millisecond,
		BackoffMax:            10 * time.Second,
		AckWait:               natsjs.DefaultAckWait,
	}
}

// RegisterFlags binds the flags an operator tunes, each named prefix+name,
// with the defaults of DefaultConfig. The ack wait is the consumer's
// (natsjs.StreamLimits registers --ack-wait).
func (c *Config) RegisterFlags(prefix string, fs *flag.FlagSet) {
	d := DefaultConfig()
	fs.IntVar(&c.BatchMaxEvents, prefix+"batch-max-events", d.BatchMaxEvents, "aggregator: events per ClickHouse insert at most")
	fs.DurationVar(&c.BatchMaxWait, prefix+"batch-max-wait", d.BatchMaxWait, "aggregator: longest wait before a partial batch is written")
	fs.IntVar(&c.BacklogBatchMaxEvents, prefix+"backlog-batch-max-events", d.BacklogBatchMaxEvents, "aggregator: events per ClickHouse insert at most while a backlog waits (at most --batch-max-events: off)")
}

// Validate names every problem.
func (c Config) Validate() error {
	var errs []error
	if c.BatchMaxEvents < 1 {
		errs = append(errs, fmt.Errorf("--batch-max-events must be at least 1, got %d", c.BatchMaxEvents))
	}
	if c.BacklogBatchMaxEvents < 0 {
		errs = append(errs, fmt.Errorf("--backlog-batch-max-events must not be negative, got %d", c.BacklogBatchMaxEvents))
	}
	if c.BatchMaxWait < 0 {
		errs = append(errs, fmt.Errorf("--batch-max-wait must not be negative, got %s", c.BatchMaxWait))
	}
	return errors.Join(errs...)
}

// defaults fills the zero fields from DefaultConfig.
func (c *Config) defaults() {
	d := DefaultConfig()
	for _, f := range []struct {
		v *time.Duration
		d time.Duration
	}{{&c.BatchMaxWait, d.BatchMaxWait}, {&c.BackoffMin, d.BackoffMin}, {&c.BackoffMax, d.BackoffMax}, {&c.AckWait, d.AckWait}} {
		if *f.v == 0 {
			*f.v = f.d
		}
	}
	if c.BatchMaxEvents == 0 {
		c.BatchMaxEvents = d.BatchMaxEvents
	}
	if c.BatchMaxBytes == 0 {
		c.BatchMaxBytes = d.BatchMaxBytes
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = d.MaxAttempts
	}
	if c.BacklogBatchMaxEvents < c.BatchMaxEvents {
		c.BacklogBatchMaxEvents = c.BatchMaxEvents
	}
}

// Stats are running totals, safe to read while the aggregator runs.
type Stats struct {
	Inserted     atomic.Uint64 // rows written
	Skipped      atomic.Uint64 // redelivered rows found already written
	DeadLettered atomic.Uint64
	Retries      atomic.Uint64 // failed insert attempts
	Batches      atomic.Uint64 // batches written
	Repairs      atomic.Uint64 // rollup repairs after an insert of unknown outcome
	LastBatchNs  atomic.Int64  // how long the last batch's inserts took
}

// SourceCount is how many events of a source the aggregator has taken, and
// when the latest arrived.
type SourceCount struct {
	Events uint64
	Last   time.Time
}

// maxSources bounds the per-source counts the aggregator keeps: beyond
// it, the least recently heard tenth is forgotten (a producer inventing
// sources cannot grow the process).
const maxSources = 20000

// forgetSources drops the least recently heard tenth of the sources. Called
// with srcMu held, only when over maxSources.
func (a *Aggregator) forgetSources() {
	srcs := make([]string, 0, len(a.sources))
	for src := range a.sources {
		srcs = append(srcs, src)
	}
	slices.SortFunc(srcs, func(x, y string) int { return a.sources[x].Last.Compare(a.sources[y].Last) })
	for _, src := range srcs[:len(srcs)-maxSources*9/10] {
		delete(a.sources, src)
	}
}

// SourceCounts returns the events taken per source since the start (counted
// once per batch, so the monitor need not look at every event itself).
func (a *Aggregator) SourceCounts() map[string]SourceCount {
	a.srcMu.Lock()
	defer a.srcMu.Unlock()
	out := make(map[string]SourceCount, len(a.sources))
	for k, v := range a.sources {
		out[k] = v
	}
	return out
}

// Aggregator reads IOC_EVENTS with the durable consumer and writes raw tables.
type Aggregator struct {
	cfg   Config
	js    jetstream.JetStream
	store Store
	adm   *admit.Admitter
	log   *zap.Logger
	now   func() time.Time
	cols  map[string][]string // raw-table columns by event type
	// unsealedUntil: events up to this sequence were stored before the hub
	// sealed its mark; a marked one among them is taken as admitted.
	unsealedUntil uint64

	srcMu   sync.Mutex
	sources map[string]SourceCount // events taken per source, for the monitor
	Stats   Stats
}

// New builds an aggregator. The streams and consumer must have been declared
// (natsjs.Declare).
func New(cfg Config, js jetstream.JetStream, store Store, reg *schema.Registry, pseudo *pii.Pseudonymizer, log *zap.Logger) *Aggregator {
	cfg.defaults()
	a := &Aggregator{cfg: cfg, js: js, store: store, adm: admit.New(reg, pseudo, 0),
		log: log.With(zap.String("component", "aggregator")), now: time.Now, cols: map[string][]string{}}
	for _, t := range reg.Types() {
		a.cols[t.Name.String()] = chstore.Columns(t)
	}
	return a
}

// start reads the sealing mark and starts consuming IOC_EVENTS into in.
func (a *Aggregator) start(ctx context.Context) (jetstream.ConsumeContext, chan jetstream.Msg, error) {
	var err error
	if a.unsealedUntil, err = natsjs.UnsealedUntil(ctx, a.js); err != nil {
		return nil, nil, fmt.Errorf("aggregator: %w", err)
	}
	cons, err := a.js.Consumer(ctx, natsjs.EventsStream, natsjs.AggregatorConsumer)
	if err != nil {
		return nil, nil, fmt.Errorf("aggregator consumer: %w", err)
	}
	in := make(chan jetstream.Msg, a.cfg.BatchMaxEvents)
	cc, err := cons.Consume(func(m jetstream.Msg) { in <- m },
		jetstream.PullMaxMessages(2*a.cfg.BatchMaxEvents),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			a.log.Warn("consume", zap.Error(err))
		}))
	if err != nil {
		return nil, nil, fmt.Errorf("aggregator consume: %w", err)
	}
	return cc, in, nil
}

// Run consumes until ctx is done, then stops fetching, writes and acks what
// it holds, and returns nil. Its start (the sealing mark, the consumer) is
// tried again while JetStream does not answer, as during a cluster's
// election: the streams were declared before, so a failure there passes.
func (a *Aggregator) Run(ctx context.Context) error {
	var (
		cc   jetstream.ConsumeContext
		in   chan jetstream.Msg
		err  error
		wait = a.backoff()
	)
	for {
		if cc, in, err = a.start(ctx); err == nil {
			break
		}
		a.log.Warn("cannot start consuming; will try again", zap.Duration("backoff", wait.Current()), zap.Error(err))
		if !wait.Wait(ctx) {
			return nil // stopped while starting
		}
	}
	a.log.Info("started", zap.Int("batch_max_events", a.cfg.BatchMaxEvents), zap.Duration("batch_max_wait", a.cfg.BatchMaxWait))

	// One batch is decoded while the one before it is written: the writer
	// takes batches one at a time, in order, so a batch's identity check
	// sees every row of the batches before it.
	work := make(chan *prepared)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for p := range work {
			a.write(ctx, p)
		}
	}()
	var (
		batch   []jetstream.Msg
		bytes   int
		timer   = time.NewTimer(time.Hour)
		pending bool
		waits   int         // BatchMaxWaits this batch has waited
		grow    bool        // a backlog waits: the batch grows to the backlog's size
		left    []*prepared // prepared when the context ended, never handed over
	)
	timer.Stop()
	// backlogged: a backlog waits behind the batch's newest message, and
	// the batch may grow to the backlog's size.
	backlogged := func() bool {
		if len(batch) == 0 || a.cfg.BacklogBatchMaxEvents <= a.cfg.BatchMaxEvents || len(batch) >= a.cfg.BacklogBatchMaxEvents || bytes >= 4*a.cfg.BatchMaxBytes {
			return false
		}
		meta, err := batch[len(batch)-1].Metadata()
		return err == nil && meta.NumPending >= uint64(a.cfg.BatchMaxEvents)
	}
	flush := func() {
		if len(batch) == 0 {
			return
		}
		p := a.prepare(batch)
		batch, bytes, pending, waits, grow = nil, 0, false, 0, false
		timer.Stop()
		select {
		case work <- p:
		case <-ctx.Done():
			left = append(left, p)
		}
	}
	for {
		select {
		case m := <-in:
			batch = append(batch, m)
			bytes += len(m.Data())
			if !pending {
				pending = true
				timer.Reset(a.cfg.BatchMaxWait)
			}
			full := len(batch) >= a.cfg.BatchMaxEvents || bytes >= a.cfg.BatchMaxBytes
			switch {
			case full && !grow: // the normal size: grow only over a backlog
				if grow = backlogged(); !grow {
					flush()
				}
			case grow && (len(batch) >= a.cfg.BacklogBatchMaxEvents || bytes >= 4*a.cfg.BatchMaxBytes):
				flush()
			}
		case <-timer.C:
			if waits++; waits < 4 && backlogged() {
				timer.Reset(a.cfg.BatchMaxWait)
				continue
			}
			flush()
		case <-ctx.Done():
			cc.Stop()
			close(work)
			<-writerDone
			// Write what was fetched; anything left unacked is redelivered later.
			for drained := false; !drained; {
				select {
				case m := <-in:
					batch = append(batch, m)
				default:
					drained = true
				}
			}
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			for _, p := range left {
				a.write(sctx, p)
			}
			if len(batch) > 0 {
				a.write(sctx, a.prepare(batch))
			}
			cancel()
			a.log.Info("stopped", zap.Uint64("inserted", a.Stats.Inserted.Load()))
			return nil
		}
	}
}

// pendingRow is one event waiting for its insert, with every message of
// the batch that carries its identity.
type pendingRow struct {
	msgs     []jetstream.Msg
	seq      uint64
	id       chstore.Identity
	row      []any
	attempts int
}

func (r *pendingRow) ack() {
	for _, m := range r.msgs {
		_ = m.Ack()
	}
}

func (r *pendingRow) inProgress() {
	for _, m := range r.msgs {
		_ = m.InProgress()
	}
}

type tableBatch struct {
	cols  []string
	rows  []*pendingRow
	byID  map[chstore.Identity]*pendingRow
	dupes int // copies folded into a row of the batch
}

// prepared is a batch decoded and grouped by table, ready to be written.
type prepared struct {
	ingest    time.Time
	tables    map[string]*tableBatch
	dead      []deadLetter
	perSource map[string]uint64
}

// decoded is one message of a batch after decode.
type decoded struct {
	seq    uint64
	table  string
	cols   []string
	row    []any
	id     chstore.Identity
	reason string
	ok     bool // it had metadata
}

// decodeChunk is how many messages one goroutine decodes at a time.
const decodeChunk = 256

// prepare decodes a batch (validation, pseudonymization, the row) on every
// core, then groups it by table in message order, folding copies of one
// identity into one row.
func (a *Aggregator) prepare(msgs []jetstream.Msg) *prepared {
	p := &prepared{ingest: a.now(), tables: map[string]*tableBatch{}, perSource: map[string]uint64{}}
	res := make([]decoded, len(msgs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), (len(msgs)+decodeChunk-1)/decodeChunk) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				start := int(next.Add(decodeChunk)) - decodeChunk
				if start >= len(msgs) {
					return
				}
				for i := start; i < min(start+decodeChunk, len(msgs)); i++ {
					meta, err := msgs[i].Metadata()
					if err != nil {
						a.log.Error("message without metadata", zap.Error(err))
						continue
					}
					d := &res[i]
					d.seq, d.ok = meta.Sequence.Stream, true
					d.table, d.cols, d.row, d.id, d.reason = a.decode(msgs[i], d.seq, p.ingest)
				}
			}
		}()
	}
	wg.Wait()
	for i, m := range msgs {
		d := &res[i]
		if !d.ok {
			continue
		}
		if d.reason != "" {
			p.dead = append(p.dead, deadLetter{msgs: []jetstream.Msg{m}, seq: d.seq, reason: d.reason})
			continue
		}
		tb := p.tables[d.table]
		if tb == nil {
			tb = &tableBatch{cols: d.cols, byID: map[chstore.Identity]*pendingRow{}}
			p.tables[d.table] = tb
		}
		if r := tb.byID[d.id]; r != nil { // a redelivered copy, or a resend, in the same batch
			r.msgs = append(r.msgs, m)
			tb.dupes++
			continue
		}
		p.perSource[d.id.Source]++
		r := &pendingRow{msgs: []jetstream.Msg{m}, seq: d.seq, id: d.id, row: d.row}
		tb.byID[d.id] = r
		tb.rows = append(tb.rows, r)
	}
	return p
}

// write writes one prepared batch and settles every message in it. It
// returns only when each message is acked (written, already written or
// dead-lettered) or nakked (dead-letter publish failed), or when ctx ends
// (the rest is then redelivered by JetStream).
func (a *Aggregator) write(ctx context.Context, p *prepared) {
	dead := p.dead
	defer func() {
		a.srcMu.Lock()
		if a.sources == nil {
			a.sources = map[string]SourceCount{}
		}
		for src, n := range p.perSource {
			c := a.sources[src]
			c.Events += n
			c.Last = p.ingest
			a.sources[src] = c
		}
		if len(a.sources) > maxSources {
			a.forgetSources()
		}
		a.srcMu.Unlock()
	}()
	// Tables are independent: write them at once (one INSERT each, as
	// before), so a batch costs the slowest insert, not the sum of seven.
	var mu sync.Mutex
	var wg sync.WaitGroup
	started := time.Now()
	defer func() {
		if len(p.tables) > 0 {
			a.Stats.Batches.Add(1)
			a.Stats.LastBatchNs.Store(int64(time.Since(started)))
		}
	}()
	for table, tb := range p.tables {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.Stats.Skipped.Add(uint64(tb.dupes))
			for _, part := range byPartitions(tb, MaxPartitionsPerInsert) {
				if d := a.writeTable(ctx, table, part); len(d) > 0 {
					mu.Lock()
					dead = append(dead, d...)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	a.deadLetter(ctx, dead)
}

// MaxPartitionsPerInsert bounds the partitions (months of event time) one
// INSERT writes: ClickHouse refuses an insert over
// max_partitions_per_insert_block (100 by default) and makes a part per
// partition, so a batch spread over years is written in several inserts.
const MaxPartitionsPerInsert = 50

// month is r's partition of its raw table, a month of event time.
func month(r *pendingRow) int {
	t := time.Unix(r.id.Time, 0).UTC()
	return t.Year()*12 + int(t.Month())
}

// byMonth groups tb's rows by partition.
func byMonth(tb *tableBatch) map[int][]*pendingRow {
	months := map[int][]*pendingRow{}
	for _, r := range tb.rows {
		m := month(r)
		months[m] = append(months[m], r)
	}
	return months
}

// partitions is the number of months of event time tb's rows span.
func partitions(tb *tableBatch) int { return len(byMonth(tb)) }

// byPartitions splits tb into batches of at most max months of event time
// each (the raw tables' partitions), in month order; most batches are one.
func byPartitions(tb *tableBatch, max int) []*tableBatch {
	months := byMonth(tb)
	if len(months) <= max {
		return []*tableBatch{tb}
	}
	keys := make([]int, 0, len(months))
	for m := range months {
		keys = append(keys, m)
	}
	slices.Sort(keys)
	var out []*tableBatch
	for i := 0; i < len(keys); i += max {
		part := &tableBatch{cols: tb.cols}
		for _, m := range keys[i:min(i+max, len(keys))] {
			part.rows = append(part.rows, months[m]...)
		}
		out = append(out, part)
	}
	return out
}

// decode turns a message into a row of its table and the event's identity,
// or a reason to dead-letter it. An event without the hub's mark (published
// straight onto NATS) is admitted here: validated and pseudonymized.
func (a *Aggregator) decode(m jetstream.Msg, seq uint64, ingest time.Time) (table string, cols []string, row []any, id chstore.Identity, reason string) {
	tn, err := event.TypeFromSubject(m.Subject())
	if err != nil {
		return "", nil, nil, id, "subject: " + err.Error()
	}
	e, marked, err := admit.FromMsg(m.Headers(), m.Data())
	if err != nil {
		return "", nil, nil, id, "envelope: " + err.Error()
	}
	// The mark counts only sealed by the hub (or stored before the hub
	// sealed): a header anyone may set proves nothing.
	marked = marked && a.admitted(m, seq)
	if e.Type != tn.String() {
		return "", nil, nil, id, fmt.Sprintf("envelope: type %q does not match subject %q", e.Type, m.Subject())
	}
	if !marked && !slices.ContainsFunc(a.cfg.Producers, func(s event.Scope) bool { return s.AllowsType(e.Type) && s.AllowsSource(e.Source) }) {
		return "", nil, nil, id, fmt.Sprintf("source: no direct NATS producer may publish %s under source %q (nats.users of role producer, their types and sources)", e.Type, e.Source)
	}
	var ad admit.Admitted
	if marked {
		ad, err = a.adm.Marked(e, false)
	} else {
		ad, err = a.adm.Clear(e)
	}
	if err != nil {
		var ve *schema.ValidationError
		switch {
		case errors.As(err, &ve):
			return "", nil, nil, id, "schema: " + ve.Redacted()
		case errors.Is(err, schema.ErrUnknownType):
			return "", nil, nil, id, "type: " + err.Error()
		}
		return "", nil, nil, id, err.Error()
	}
	row, err = chstore.Row(ad.Type, ad.Event, seq, ingest, ad.Data)
	if err != nil {
		return "", nil, nil, id, "row: " + err.Error()
	}
	id = chstore.Identity{Source: e.Source, ID: e.ID, Time: e.Time.Unix()}
	return tn.Table(), a.cols[ad.Type.Name.String()], row, id, ""
}

// writeTable inserts the rows of one table, retrying until they are written,
// and returns the rows ClickHouse keeps rejecting, to be dead-lettered.
func (a *Aggregator) writeTable(ctx context.Context, table string, tb *tableBatch) []deadLetter {
	b := a.backoff()
	lastProgress := a.now()
	var uncertain bool // the last insert's outcome is unknown
	for attempt := 1; ; attempt++ {
		if ctx.Err() != nil {
			return nil // not acked: JetStream redelivers
		}
		n, err := a.insertMissing(ctx, table, tb.cols, tb.rows, &uncertain)
		if err == nil {
			a.Stats.Inserted.Add(uint64(n))
			a.Stats.Skipped.Add(uint64(len(tb.rows) - n))
			for _, r := range tb.rows {
				r.ack()
			}
			return nil
		}
		a.Stats.Retries.Add(1)
		if errors.Is(err, chstore.ErrTooManyPartitions) {
			// The server's partition limit is below ours: halve the months
			// of the insert until it fits; one month left is a row error.
			if n := partitions(tb); n > 1 {
				a.log.Warn("clickhouse refused an insert over its partition limit; splitting it",
					zap.String("table", table), zap.Int("months", n), zap.Error(err))
				var dead []deadLetter
				for _, part := range byPartitions(tb, n/2) {
					dead = append(dead, a.writeTable(ctx, table, part)...)
				}
				return dead
			}
		}
		if !errors.Is(err, chstore.ErrUnavailable) && attempt >= a.cfg.MaxAttempts {
			a.log.Warn("clickhouse keeps rejecting the batch; inserting row by row", zap.String("table", table), zap.Error(err))
			return a.writeRowByRow(ctx, table, tb)
		}
		a.log.Warn("insert failed; will retry", zap.String("table", table), zap.Int("rows", len(tb.rows)),
			zap.Int("attempt", attempt), zap.Duration("backoff", b.Current()), zap.Error(err))
		if a.now().Sub(lastProgress) > a.cfg.AckWait/3 {
			for _, r := range tb.rows {
				r.inProgress()
			}
			lastProgress = a.now()
		}
		b.Wait(ctx)
	}
}

// writeRowByRow isolates the rows ClickHouse rejects: each row is inserted on
// its own; one rejected MaxAttempts times is returned to be dead-lettered.
// Unavailability is still retried forever.
func (a *Aggregator) writeRowByRow(ctx context.Context, table string, tb *tableBatch) []deadLetter {
	var dead []deadLetter
	for _, r := range tb.rows {
		b := a.backoff()
		var uncertain bool
		for attempt := 1; ; attempt++ {
			if ctx.Err() != nil {
				return dead
			}
			n, err := a.insertMissing(ctx, table, tb.cols, []*pendingRow{r}, &uncertain)
			if err == nil {
				a.Stats.Inserted.Add(uint64(n))
				r.ack()
				break
			}
			if !errors.Is(err, chstore.ErrUnavailable) && attempt >= a.cfg.MaxAttempts {
				dead = append(dead, deadLetter{msgs: r.msgs, seq: r.seq, reason: fmt.Sprintf("clickhouse rejected the row %d times: %v", attempt, err)})
				break
			}
			r.inProgress()
			b.Wait(ctx)
		}
	}
	return dead
}

// insertMissing inserts the rows of table whose identity is not yet in it,
// and returns how many it inserted. With Locks, it holds the table's lock
// from before the identity check until the insert is sent, having waited
// for any other process's insert into the table still running: two
// aggregators never check and insert one table at once (decision 0013).
//
// uncertain says the last insert of these rows ended with an unknown
// outcome; the rows the check then finds may lack their rollup rows, which
// Config.Rollups rebuilds before the insert. insertMissing sets it when its
// own insert ends so.
func (a *Aggregator) insertMissing(ctx context.Context, table string, cols []string, rows []*pendingRow, uncertain *bool) (int, error) {
	locks := a.cfg.Locks
	var taken time.Time
	if locks != nil {
		var unlock func()
		var err error
		taken, unlock, err = locks.Lock(ctx, "aggregator."+table)
		if err != nil {
			return 0, fmt.Errorf("%w: %v", chstore.ErrUnavailable, err)
		}
		defer unlock()
		if s, ok := a.store.(tableSettler); ok {
			if err := s.SettleAll(ctx, table); err != nil {
				return 0, err
			}
		}
	}
	missing, err := a.missing(ctx, table, rows)
	if err != nil {
		return 0, err
	}
	// fresh: the lock may lapse before the insert is sent, or before a
	// repair's change; check again under a fresh one.
	fresh := func() error {
		if locks != nil && time.Since(taken) > locks.TTL()/2 {
			return fmt.Errorf("%w: the lock of %s held too long", chstore.ErrUnavailable, table)
		}
		return nil
	}
	if *uncertain && len(missing) < len(rows) {
		if err := a.repairRollups(ctx, table, rows, missing, fresh); err != nil {
			return 0, err
		}
	}
	*uncertain = false
	if err := fresh(); err != nil {
		return 0, err
	}
	err = a.store.Insert(ctx, table, cols, values(missing))
	if errors.Is(err, chstore.ErrUnavailable) {
		*uncertain = true
	}
	return len(missing), err
}

// repairRollups rebuilds the rollups of table over the event times of the
// rows already stored (rows but not missing), which an insert of unknown
// outcome may have written without their rollup rows. A repair that cannot
// be made (a sharded layout, a statement refused) is logged and the rows go
// on: the raw rows are exact, and only the rollup may be short.
func (a *Aggregator) repairRollups(ctx context.Context, table string, rows, missing []*pendingRow, fresh func() error) error {
	if a.cfg.Rollups == nil {
		return nil
	}
	left := make(map[*pendingRow]bool, len(missing))
	for _, r := range missing {
		left[r] = true
	}
	var from, to int64
	for _, r := range rows {
		if left[r] {
			continue
		}
		if from == 0 || r.id.Time < from {
			from = r.id.Time
		}
		if r.id.Time > to {
			to = r.id.Time
		}
	}
	start := a.now()
	err := a.cfg.Rollups.Repair(ctx, table, time.Unix(from, 0), time.Unix(to, 0), fresh)
	switch {
	case err == nil:
		a.Stats.Repairs.Add(1)
		a.log.Info("rollups rebuilt after an insert of unknown outcome", zap.String("table", table),
			zap.Int("rows_found", len(rows)-len(missing)), zap.Duration("took", a.now().Sub(start)))
		return nil
	case errors.Is(err, chstore.ErrUnavailable) || ctx.Err() != nil:
		return err // tried again with the insert
	default:
		a.log.Error("rollups not rebuilt after an insert of unknown outcome: they may lack rows of the raw table",
			zap.String("table", table), zap.Time("from", time.Unix(from, 0)), zap.Time("to", time.Unix(to, 0)), zap.Error(err))
		return nil
	}
}

// tableSettler waits until no insert into a table, by any process, still
// runs on the server (*chstore.Store).
type tableSettler interface {
	SettleAll(ctx context.Context, table string) error
}

// missing returns the rows whose identity is not yet in their raw table.
func (a *Aggregator) missing(ctx context.Context, table string, rows []*pendingRow) ([]*pendingRow, error) {
	ids := make([]chstore.Identity, len(rows))
	for i, r := range rows {
		ids[i] = r.id
	}
	found, err := a.store.Existing(ctx, table, ids)
	if err != nil {
		return nil, err
	}
	if len(found) == 0 {
		return rows, nil
	}
	out := make([]*pendingRow, 0, len(rows))
	for _, r := range rows {
		if !found[r.id] {
			out = append(out, r)
		}
	}
	return out, nil
}

func values(rows []*pendingRow) [][]any {
	out := make([][]any, len(rows))
	for i, r := range rows {
		out[i] = r.row
	}
	return out
}

// backoff is a fresh retry delay for one batch or row.
func (a *Aggregator) backoff() *backoff.Backoff {
	return &backoff.Backoff{Min: a.cfg.BackoffMin, Max: a.cfg.BackoffMax}
}

type deadLetter struct {
	msgs   []jetstream.Msg // the message, and copies of its identity in the batch
	seq    uint64
	reason string
}

// admitted reports whether the hub admitted m (its seal verifies, or it was
// stored before the hub sealed): its personal data is pseudonymized.
func (a *Aggregator) admitted(m jetstream.Msg, seq uint64) bool {
	return seq <= a.unsealedUntil || a.adm.Sealed(m.Subject(), m.Headers(), m.Data())
}

// deadLetter publishes each message to IOC_DLQ with the reason (pkg/dlq),
// then acks it and the copies of its identity; if the publish fails they
// are nakked, so they come back.
func (a *Aggregator) deadLetter(ctx context.Context, dead []deadLetter) {
	if len(dead) == 0 {
		return
	}
	msgs := make([]*nats.Msg, len(dead))
	for i, d := range dead {
		m := d.msgs[0]
		h, data := m.Headers(), m.Data()
		if !a.admitted(m, d.seq) { // in clear: its dead letter keeps it redacted
			if red, err := a.adm.Redacted(h, data); err == nil {
				h, data = red.Header, red.Data
			} else {
				h, data = nats.Header{}, nil // not an event: nothing of it is kept
			}
		}
		msgs[i] = dlq.ForEvent(m.Subject(), h, data, d.seq, "aggregator", d.reason, a.now())
	}
	outs := natsjs.PublishAll(ctx, a.js, msgs)
	for i, o := range outs {
		d := dead[i]
		if o.Err != nil {
			a.log.Error("dead-letter publish failed; the event will be redelivered", zap.Uint64("seq", d.seq), zap.Error(o.Err))
			for _, m := range d.msgs {
				_ = m.NakWithDelay(a.cfg.BackoffMax)
			}
			continue
		}
		a.Stats.DeadLettered.Add(1)
		a.log.Info("dead-lettered", zap.Uint64("seq", d.seq), zap.String("subject", d.msgs[0].Subject()), zap.String("reason", d.reason))
		for _, m := range d.msgs {
			_ = m.Ack()
		}
	}
}
