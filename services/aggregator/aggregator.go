// Package aggregator materializes the events of IOC_EVENTS into ClickHouse's
// raw tables, exactly once.
//
// Message outcomes (the one table of how a message leaves IOC_EVENTS):
//
//	row written to ClickHouse (Send returned)        → Ack
//	row already in ClickHouse (a redelivery)         → Ack, no second insert
//	cannot decode, unknown type, fails validation    → publish to IOC_DLQ with the reason, then Ack
//	ClickHouse keeps rejecting the row (MaxAttempts) → publish to IOC_DLQ with the reason, then Ack
//	dead-letter publish fails                        → NakWithDelay: redelivered, nothing lost
//	ClickHouse unreachable                           → keep the batch, back off, retry; InProgress
//	                                                   keeps JetStream from redelivering meanwhile
//
// Exactly once: every row carries its stream sequence. A message delivered
// for the first time (NumDelivered == 1) in a batch tried for the first time
// cannot be in ClickHouse yet and is inserted directly. Any other — a
// redelivery after a crash or a lost ack, or a batch retried after an insert
// error whose outcome is unknown — is first looked up by (table, stream_seq)
// and inserted only if absent. See docs/decisions/0002-exactly-once.md.
package aggregator

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iochub/iochub/pkg/chstore"
	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/pii"
	"github.com/iochub/iochub/pkg/schema"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Store is what the aggregator needs of ClickHouse.
type Store interface {
	Insert(ctx context.Context, table string, cols []string, rows [][]any) error
	ExistingSeqs(ctx context.Context, table string, seqs []uint64, from, to time.Time) (map[uint64]bool, error)
}

// Config tunes batching and retries.
type Config struct {
	BatchMaxEvents int           // flush at this many events; default 5000
	BatchMaxBytes  int           // or this many bytes of events; default 8 MiB
	BatchMaxWait   time.Duration // or this long after the first event; default 200ms
	MaxAttempts    int           // inserts of a row ClickHouse rejects before it is dead-lettered; default 5
	BackoffMin     time.Duration // first retry delay; default 100ms
	BackoffMax     time.Duration // longest retry delay; default 10s
	AckWait        time.Duration // the consumer's ack wait; InProgress is sent at a third of it; default natsjs.DefaultAckWait
}

func (c *Config) defaults() {
	if c.BatchMaxEvents == 0 {
		c.BatchMaxEvents = 5000
	}
	if c.BatchMaxBytes == 0 {
		c.BatchMaxBytes = 8 << 20
	}
	if c.BatchMaxWait == 0 {
		c.BatchMaxWait = 200 * time.Millisecond
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
	}
	if c.BackoffMin == 0 {
		c.BackoffMin = 100 * time.Millisecond
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = 10 * time.Second
	}
	if c.AckWait == 0 {
		c.AckWait = natsjs.DefaultAckWait
	}
}

// Stats are running totals, safe to read while the aggregator runs.
type Stats struct {
	Inserted     atomic.Uint64 // rows written
	Skipped      atomic.Uint64 // redelivered rows found already written
	DeadLettered atomic.Uint64
	Retries      atomic.Uint64 // failed insert attempts
	Batches      atomic.Uint64 // batches written
	LastBatchNs  atomic.Int64  // how long the last batch's inserts took
}

// SourceCount is how many events of a source the aggregator has taken, and
// when the latest arrived.
type SourceCount struct {
	Events uint64
	Last   time.Time
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
	cfg    Config
	js     jetstream.JetStream
	store  Store
	reg    *schema.Registry
	pseudo *pii.Pseudonymizer
	log    *zap.Logger
	now    func() time.Time
	cols   map[string][]string // raw-table columns by event type

	srcMu   sync.Mutex
	sources map[string]SourceCount // events taken per source, for the monitor
	Stats   Stats
}

// New builds an aggregator. The streams and consumer must have been declared
// (natsjs.Declare).
func New(cfg Config, js jetstream.JetStream, store Store, reg *schema.Registry, pseudo *pii.Pseudonymizer, log *zap.Logger) *Aggregator {
	cfg.defaults()
	a := &Aggregator{cfg: cfg, js: js, store: store, reg: reg, pseudo: pseudo,
		log: log.With(zap.String("component", "aggregator")), now: time.Now, cols: map[string][]string{}}
	for _, t := range reg.Types() {
		a.cols[t.Name.String()] = chstore.Columns(t)
	}
	return a
}

// Run consumes until ctx is done, then stops fetching, writes and acks what
// it holds, and returns nil. It returns an error only if it cannot start.
func (a *Aggregator) Run(ctx context.Context) error {
	cons, err := a.js.Consumer(ctx, natsjs.EventsStream, natsjs.AggregatorConsumer)
	if err != nil {
		return fmt.Errorf("aggregator consumer: %w", err)
	}
	in := make(chan jetstream.Msg, a.cfg.BatchMaxEvents)
	cc, err := cons.Consume(func(m jetstream.Msg) { in <- m },
		jetstream.PullMaxMessages(2*a.cfg.BatchMaxEvents),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			a.log.Warn("consume", zap.Error(err))
		}))
	if err != nil {
		return fmt.Errorf("aggregator consume: %w", err)
	}
	a.log.Info("started", zap.Int("batch_max_events", a.cfg.BatchMaxEvents), zap.Duration("batch_max_wait", a.cfg.BatchMaxWait))

	var (
		batch   []jetstream.Msg
		bytes   int
		timer   = time.NewTimer(time.Hour)
		pending bool
	)
	timer.Stop()
	flush := func(fctx context.Context) {
		if len(batch) == 0 {
			return
		}
		a.flush(fctx, batch)
		batch, bytes, pending = nil, 0, false
		timer.Stop()
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
			if len(batch) >= a.cfg.BatchMaxEvents || bytes >= a.cfg.BatchMaxBytes {
				flush(ctx)
			}
		case <-timer.C:
			flush(ctx)
		case <-ctx.Done():
			cc.Stop()
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
			flush(sctx)
			cancel()
			a.log.Info("stopped", zap.Uint64("inserted", a.Stats.Inserted.Load()))
			return nil
		}
	}
}

// pendingRow is one decoded message waiting for its insert.
type pendingRow struct {
	msg      jetstream.Msg
	seq      uint64
	redeliv  bool
	time     time.Time
	row      []any
	attempts int
}

type tableBatch struct {
	cols []string
	rows []*pendingRow
}

// flush writes one batch and settles every message in it. It returns only
// when each message is acked (written, already written or dead-lettered) or
// nakked (dead-letter publish failed), or when ctx ends (the rest is then
// redelivered by JetStream).
func (a *Aggregator) flush(ctx context.Context, msgs []jetstream.Msg) {
	tables := map[string]*tableBatch{}
	var dead []deadLetter
	ingest := a.now()
	perSource := map[string]uint64{}
	defer func() {
		a.srcMu.Lock()
		if a.sources == nil {
			a.sources = map[string]SourceCount{}
		}
		for src, n := range perSource {
			c := a.sources[src]
			c.Events += n
			c.Last = ingest
			a.sources[src] = c
		}
		a.srcMu.Unlock()
	}()
	for _, m := range msgs {
		meta, err := m.Metadata()
		if err != nil {
			a.log.Error("message without metadata", zap.Error(err))
			continue
		}
		table, cols, row, evTime, reason := a.decode(m, meta.Sequence.Stream, ingest)
		if reason != "" {
			dead = append(dead, deadLetter{msg: m, seq: meta.Sequence.Stream, reason: reason})
			continue
		}
		if src, ok := row[1].(string); ok { // the envelope's source column
			perSource[src]++
		}
		tb := tables[table]
		if tb == nil {
			tb = &tableBatch{cols: cols}
			tables[table] = tb
		}
		tb.rows = append(tb.rows, &pendingRow{msg: m, seq: meta.Sequence.Stream, redeliv: meta.NumDelivered > 1, time: evTime, row: row})
	}
	// Tables are independent: write them at once (one INSERT each, as
	// before), so a batch costs the slowest insert, not the sum of seven.
	var mu sync.Mutex
	var wg sync.WaitGroup
	started := time.Now()
	defer func() {
		if len(tables) > 0 {
			a.Stats.Batches.Add(1)
			a.Stats.LastBatchNs.Store(int64(time.Since(started)))
		}
	}()
	for table, tb := range tables {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if d := a.writeTable(ctx, table, tb); len(d) > 0 {
				mu.Lock()
				dead = append(dead, d...)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	a.deadLetter(ctx, dead)
}

// decode turns a message into a row of its table, or a reason to dead-letter it.
func (a *Aggregator) decode(m jetstream.Msg, seq uint64, ingest time.Time) (table string, cols []string, row []any, evTime time.Time, reason string) {
	tn, err := event.TypeFromSubject(m.Subject())
	if err != nil {
		return "", nil, nil, time.Time{}, "subject: " + err.Error()
	}
	e, err := event.Parse(m.Data())
	if err != nil {
		return "", nil, nil, time.Time{}, "envelope: " + err.Error()
	}
	if e.Type != tn.String() {
		return "", nil, nil, time.Time{}, fmt.Sprintf("envelope: type %q does not match subject %q", e.Type, m.Subject())
	}
	ty, err := a.reg.Lookup(e.Type)
	if err != nil {
		return "", nil, nil, time.Time{}, "type: " + err.Error()
	}
	data, err := schema.DecodeData(e.Data)
	if err != nil {
		return "", nil, nil, time.Time{}, "data: " + err.Error()
	}
	if m.Headers().Get(natsjs.HeaderPseudonymized) == "" {
		// Published straight onto NATS: validate and pseudonymize here.
		if err := ty.Validate(data); err != nil {
			return "", nil, nil, time.Time{}, "schema: " + err.Error()
		}
		a.pseudo.Apply(ty, data)
	}
	row, err = chstore.Row(ty, e, seq, ingest, data)
	if err != nil {
		return "", nil, nil, time.Time{}, "row: " + err.Error()
	}
	return tn.Table(), a.cols[ty.Name.String()], row, e.Time, ""
}

// writeTable inserts the rows of one table, retrying until they are written,
// and returns the rows ClickHouse keeps rejecting, to be dead-lettered.
func (a *Aggregator) writeTable(ctx context.Context, table string, tb *tableBatch) []deadLetter {
	retried := false
	backoff := a.cfg.BackoffMin
	lastProgress := a.now()
	for attempt := 1; ; attempt++ {
		if ctx.Err() != nil {
			return nil // not acked: JetStream redelivers
		}
		rows, err := a.missing(ctx, table, tb.rows, retried)
		if err == nil {
			err = a.store.Insert(ctx, table, tb.cols, values(rows))
		}
		if err == nil {
			a.Stats.Inserted.Add(uint64(len(rows)))
			a.Stats.Skipped.Add(uint64(len(tb.rows) - len(rows)))
			for _, r := range tb.rows {
				_ = r.msg.Ack()
			}
			return nil
		}
		retried = true
		a.Stats.Retries.Add(1)
		if !errors.Is(err, chstore.ErrUnavailable) && attempt >= a.cfg.MaxAttempts {
			a.log.Warn("clickhouse keeps rejecting the batch; inserting row by row", zap.String("table", table), zap.Error(err))
			return a.writeRowByRow(ctx, table, tb)
		}
		a.log.Warn("insert failed; will retry", zap.String("table", table), zap.Int("rows", len(tb.rows)),
			zap.Int("attempt", attempt), zap.Duration("backoff", backoff), zap.Error(err))
		if a.now().Sub(lastProgress) > a.cfg.AckWait/3 {
			for _, r := range tb.rows {
				_ = r.msg.InProgress()
			}
			lastProgress = a.now()
		}
		a.sleep(ctx, backoff)
		backoff = min(backoff*2, a.cfg.BackoffMax)
	}
}

// writeRowByRow isolates the rows ClickHouse rejects: each row is inserted on
// its own; one rejected MaxAttempts times is returned to be dead-lettered.
// Unavailability is still retried forever.
func (a *Aggregator) writeRowByRow(ctx context.Context, table string, tb *tableBatch) []deadLetter {
	var dead []deadLetter
	for _, r := range tb.rows {
		backoff := a.cfg.BackoffMin
		for attempt := 1; ; attempt++ {
			if ctx.Err() != nil {
				return dead
			}
			rows, err := a.missing(ctx, table, []*pendingRow{r}, true)
			if err == nil {
				err = a.store.Insert(ctx, table, tb.cols, values(rows))
			}
			if err == nil {
				a.Stats.Inserted.Add(uint64(len(rows)))
				_ = r.msg.Ack()
				break
			}
			if !errors.Is(err, chstore.ErrUnavailable) && attempt >= a.cfg.MaxAttempts {
				dead = append(dead, deadLetter{msg: r.msg, seq: r.seq, reason: fmt.Sprintf("clickhouse rejected the row %d times: %v", attempt, err)})
				break
			}
			_ = r.msg.InProgress()
			a.sleep(ctx, backoff)
			backoff = min(backoff*2, a.cfg.BackoffMax)
		}
	}
	return dead
}

// missing returns the rows not yet in ClickHouse. Rows delivered for the
// first time in a first attempt cannot be there; the others are looked up.
func (a *Aggregator) missing(ctx context.Context, table string, rows []*pendingRow, retried bool) ([]*pendingRow, error) {
	var check []uint64
	var from, to time.Time
	for _, r := range rows {
		if retried || r.redeliv {
			check = append(check, r.seq)
			t := r.time.UTC().Truncate(time.Second)
			if from.IsZero() || t.Before(from) {
				from = t
			}
			if t.After(to) {
				to = t
			}
		}
	}
	if len(check) == 0 {
		return rows, nil
	}
	found, err := a.store.ExistingSeqs(ctx, table, check, from, to)
	if err != nil {
		return nil, err
	}
	if len(found) == 0 {
		return rows, nil
	}
	out := make([]*pendingRow, 0, len(rows)-len(found))
	for _, r := range rows {
		if !found[r.seq] {
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

func (a *Aggregator) sleep(ctx context.Context, d time.Duration) {
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

type deadLetter struct {
	msg    jetstream.Msg
	seq    uint64
	reason string
}

// deadLetter publishes each message to IOC_DLQ with the reason, then acks
// it; if the publish fails the message is nakked, so it comes back.
func (a *Aggregator) deadLetter(ctx context.Context, dead []deadLetter) {
	if len(dead) == 0 {
		return
	}
	msgs := make([]*nats.Msg, len(dead))
	for i, d := range dead {
		subject := natsjs.DLQUnknownSubject
		if tn, err := event.TypeFromSubject(d.msg.Subject()); err == nil {
			subject = tn.DLQSubject()
		}
		m := nats.NewMsg(subject)
		m.Data = d.msg.Data()
		for k, v := range d.msg.Headers() {
			m.Header[k] = v
		}
		m.Header.Set(natsjs.HeaderMsgID, "dlq:"+natsjs.EventsStream+":"+strconv.FormatUint(d.seq, 10))
		m.Header.Set(natsjs.HeaderDLQReason, truncate(d.reason, 4000))
		m.Header.Set(natsjs.HeaderDLQSubject, d.msg.Subject())
		m.Header.Set(natsjs.HeaderDLQSequence, strconv.FormatUint(d.seq, 10))
		m.Header.Set(natsjs.HeaderDLQStage, "aggregator")
		m.Header.Set(natsjs.HeaderDLQTime, a.now().UTC().Format(time.RFC3339))
		msgs[i] = m
	}
	outs := natsjs.PublishAll(ctx, a.js, msgs)
	for i, o := range outs {
		d := dead[i]
		if o.Err != nil {
			a.log.Error("dead-letter publish failed; the event will be redelivered", zap.Uint64("seq", d.seq), zap.Error(o.Err))
			_ = d.msg.NakWithDelay(a.cfg.BackoffMax)
			continue
		}
		a.Stats.DeadLettered.Add(1)
		a.log.Info("dead-lettered", zap.Uint64("seq", d.seq), zap.String("subject", d.msg.Subject()), zap.String("reason", d.reason))
		_ = d.msg.Ack()
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
