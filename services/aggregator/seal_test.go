package aggregator_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/iochub/iochub/pkg/admit"
	"github.com/iochub/iochub/pkg/chstore"
	"github.com/iochub/iochub/pkg/dlq"
	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/services/aggregator"
)

// forged is a visit published straight onto NATS with the headers the hub
// sets on what it admitted, but no seal of the hub's: patient_id in clear.
func forged(id, area string, wait int, seal string) *nats.Msg {
	m := nats.NewMsg("ioc.health.visit.v1")
	m.Header.Set("content-type", "application/cloudevents+json")
	m.Header.Set(natsjs.HeaderPseudonymized, admit.Mark)
	if seal != "" {
		m.Header.Set(natsjs.HeaderAdmitSeal, seal)
	}
	m.Data = []byte(`{"specversion":"1.0","id":"` + id + `","source":"/health/his/27-bvdk","type":"vn.ioc.health.visit.v1",` +
		`"time":"2026-11-20T08:15:00+07:00","datacontenttype":"application/json","data":{"visit_id":"V-` + id + `","facility_code":"27001",` +
		`"area_code":"` + area + `","kind":"outpatient","age_band":"25-44","sex":"male","insured":true,"started_at":"2026-11-20T08:10:00+07:00",` +
		`"wait_minutes":` + itoa(wait) + `,"icd10":"J06.9","patient_id":"CCCD 001099012345 Nguyen Van A"}}`)
	return m
}

func itoa(n int) string {
	if n < 0 {
		return "-" + itoa(-n)
	}
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

// TestForgedMarkIsValidatedAndPseudonymized (finding C2): a mark header
// without the hub's seal, or with a seal of another body, proves nothing:
// the event is validated (an invalid one is dead-lettered) and its personal
// data pseudonymized, as for any event published straight onto NATS.
func TestForgedMarkIsValidatedAndPseudonymized(t *testing.T) {
	e := newEnv(t)
	e.run(t, e.store, aggregator.Config{})
	ctx := context.Background()
	// A real seal, of another body: copied from an admitted event.
	real, err := admit.New(e.reg, e.p, 0).Msg(mustClear(t, e, "sealed-elsewhere"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*nats.Msg{
		forged("forged-valid", "27256", 12, ""),
		forged("forged-copied-seal", "27256", 12, real.Header.Get(natsjs.HeaderAdmitSeal)),
		forged("forged-invalid", "99999", -5, ""),
	} {
		if _, err := e.js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the two valid forged events stored", 20*time.Second, func() bool {
		return e.rows(t, "health_visit_v1", "event_id IN ('forged-valid', 'forged-copied-seal')") == 2
	})
	waitFor(t, "the aggregator caught up", 20*time.Second, func() bool { ok, _ := natsjs.CaughtUp(ctx, e.js); return ok })
	if n := streamMsgs(t, e.js, natsjs.DLQStream); n != 1 {
		t.Fatalf("%d dead letters, want the invalid forged event", n)
	}
	// Its dead letter keeps it redacted (finding H2): the patient's id
	// pseudonymized, nothing of it in clear.
	dst, _ := e.js.Stream(ctx, natsjs.DLQStream)
	dm, err := dst.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(dm.Data, []byte("001099012345")) || !bytes.Contains(dm.Data, []byte(e.p.Hash("CCCD 001099012345 Nguyen Van A"))) {
		t.Errorf("the dead letter of an event published in clear: %s", dm.Data)
	}
	for _, id := range []string{"forged-valid", "forged-copied-seal"} {
		var got string
		if err := e.store.QueryRow(ctx, "SELECT patient_id FROM "+e.store.Qualified("health_visit_v1")+" WHERE event_id = '"+id+"'").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if want := e.p.Hash("CCCD 001099012345 Nguyen Van A"); got != want {
			t.Errorf("%s: patient_id %q stored, want its pseudonym %q", id, got, want)
		}
	}
	if n := e.rows(t, "health_visit_v1", "area_code = '99999' OR wait_minutes < 0"); n != 0 {
		t.Fatalf("%d rows with the invalid values", n)
	}
}

// TestAdmittedEventsAreSealed: what the hub admits carries a seal that
// verifies, and a change of subject or body breaks it.
func TestAdmittedEventsAreSealed(t *testing.T) {
	e := newEnv(t)
	adm := admit.New(e.reg, e.p, 0)
	m, err := adm.Msg(mustClear(t, e, "sealed"))
	if err != nil {
		t.Fatal(err)
	}
	if !adm.Sealed(m.Subject, m.Header, m.Data) {
		t.Fatal("an admitted event's seal does not verify")
	}
	if adm.Sealed("ioc.health.visit.v2", m.Header, m.Data) {
		t.Error("the seal verifies on another subject")
	}
	changed := append([]byte(nil), m.Data...)
	changed[len(changed)-3] ^= 1
	if adm.Sealed(m.Subject, m.Header, changed) {
		t.Error("the seal verifies on a changed body")
	}
	if admit.New(e.reg, nil, 0).Sealed(m.Subject, m.Header, m.Data) {
		t.Error("an admitter without the key verifies a seal")
	}
}

// mustClear is a valid visit with id, admitted in clear.
func mustClear(t *testing.T, e env, id string) admit.Admitted {
	t.Helper()
	ev, err := admitEvent(forged(id, "27256", 3, ""))
	if err != nil {
		t.Fatal(err)
	}
	ad, err := admit.New(e.reg, e.p, 0).Clear(ev)
	if err != nil {
		t.Fatal(err)
	}
	return ad
}

func admitEvent(m *nats.Msg) (event.Event, error) {
	ev, _, err := admit.FromMsg(m.Header, m.Data)
	return ev, err
}

// TestMarksStoredBeforeSealingAreKept: an event the previous version marked
// without a seal, still waiting in IOC_EVENTS at the upgrade, is taken as
// admitted (its pseudonym is not hashed again); one published after the
// upgrade with the same headers is not.
func TestMarksStoredBeforeSealingAreKept(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	old := func(id string) *nats.Msg { // as the previous version wrote it: marked, pseudonymized, no seal
		ad := mustClear(t, e, id)
		m, err := admit.New(e.reg, e.p, 0).Msg(ad)
		if err != nil {
			t.Fatal(err)
		}
		m.Header.Del(natsjs.HeaderAdmitSeal)
		return m
	}
	if _, err := e.js.PublishMsg(ctx, old("before-upgrade")); err != nil {
		t.Fatal(err)
	}
	// The upgrade: the first start of the sealing version records where
	// unsealed marks end.
	kv, err := e.js.KeyValue(ctx, natsjs.HubBucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Purge(ctx, "events-unsealed-until"); err != nil {
		t.Fatal(err)
	}
	if until, err := natsjs.UnsealedUntil(ctx, e.js); err != nil || until != 1 {
		t.Fatalf("unsealed until %d, %v; want 1", until, err)
	}
	if _, err := e.js.PublishMsg(ctx, old("after-upgrade")); err != nil {
		t.Fatal(err)
	}
	e.run(t, e.store, aggregator.Config{})
	waitFor(t, "the aggregator caught up", 20*time.Second, func() bool { ok, _ := natsjs.CaughtUp(ctx, e.js); return ok })
	once := e.p.Hash("CCCD 001099012345 Nguyen Van A")
	if n := e.rows(t, "health_visit_v1", "event_id = 'before-upgrade' AND patient_id = '"+once+"'"); n != 1 {
		t.Errorf("the event marked before the upgrade: %d rows with its pseudonym hashed once, want 1", n)
	}
	// After the upgrade the same headers are a claim: admitted again (its
	// pseudonym fails the schema's check of a clear id, or is hashed again),
	// never taken as is.
	if n := e.rows(t, "health_visit_v1", "event_id = 'after-upgrade' AND patient_id = '"+once+"'"); n != 0 {
		t.Errorf("an unsealed mark after the upgrade was believed")
	}
	if n := e.rows(t, "health_visit_v1", "event_id = 'after-upgrade'") + streamMsgs(t, e.js, natsjs.DLQStream); n != 1 {
		t.Errorf("the unsealed event after the upgrade is neither stored nor dead-lettered (%d)", n)
	}
}

// monthly publishes n admitted visits <prefix>-000…, one a month from base.
func (e env) monthly(t *testing.T, prefix string, base time.Time, n int) {
	t.Helper()
	for i := range n {
		ev, err := admitEvent(forged(fmt.Sprintf("%s-%03d", prefix, i), "27256", 3, ""))
		if err != nil {
			t.Fatal(err)
		}
		ev.Time = base.AddDate(0, i, 0)
		e.admitted(t, ev)
	}
}

// partitionCounter records the most months of event time one insert held.
// With a limit it refuses an insert over that many months as a current
// ClickHouse does over max_partitions_per_insert_block (code 252), which
// 18.16 has no setting for.
type partitionCounter struct {
	*chstore.Store
	limit   int
	mu      sync.Mutex
	most    int
	inserts int
	refused int
}

func (p *partitionCounter) Insert(ctx context.Context, table string, cols []string, rows [][]any) error {
	months := map[string]bool{}
	for _, r := range rows {
		months[r[3].(time.Time).UTC().Format("200601")] = true // event_time
	}
	p.mu.Lock()
	if p.limit > 0 && len(months) > p.limit {
		p.refused++
		p.mu.Unlock()
		return fmt.Errorf("insert into %s: %w: code: 252, message: Too many partitions for single INSERT block (more than %d)", table, chstore.ErrTooManyPartitions, p.limit)
	}
	p.most, p.inserts = max(p.most, len(months)), p.inserts+1
	p.mu.Unlock()
	return p.Store.Insert(ctx, table, cols, rows)
}

// TestABatchOverYearsIsInsertedByPartitions (finding H1): events spread over
// 130 months, taken in one batch, are written in inserts of at most
// MaxPartitionsPerInsert months each, so ClickHouse never gets an insert
// over its partition limit; every event is stored once.
func TestABatchOverYearsIsInsertedByPartitions(t *testing.T) {
	e := newEnv(t)
	e.monthly(t, "month", time.Date(2012, 1, 15, 8, 0, 0, 0, time.UTC), 130)
	pc := &partitionCounter{Store: e.store}
	e.run(t, pc, aggregator.Config{})
	waitFor(t, "the 130 events stored", 30*time.Second, func() bool {
		return e.rows(t, "health_visit_v1", "event_id LIKE 'month-%'") == 130
	})
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.most > aggregator.MaxPartitionsPerInsert || pc.inserts < 3 {
		t.Fatalf("%d inserts, the largest over %d months; want at least 3, each of at most %d", pc.inserts, pc.most, aggregator.MaxPartitionsPerInsert)
	}
}

// TestAnInsertOverTheServersPartitionLimitIsSplit (H1, "too many parts"
// is a rejection, not an outage): a server whose partition limit is below
// the aggregator's refuses the insert; the aggregator halves its months
// until each insert fits, at once, and every event is stored once with
// none dead-lettered.
func TestAnInsertOverTheServersPartitionLimitIsSplit(t *testing.T) {
	e := newEnv(t)
	e.monthly(t, "limit", time.Date(2010, 1, 15, 8, 0, 0, 0, time.UTC), 40)
	pc := &partitionCounter{Store: e.store, limit: 7}
	a := e.run(t, pc, aggregator.Config{MaxAttempts: 1000}) // row by row would take 1000 refusals
	waitFor(t, "the 40 events stored", 60*time.Second, func() bool {
		return e.rows(t, "health_visit_v1", "event_id LIKE 'limit-%'") == 40
	})
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.refused == 0 || pc.most > 7 {
		t.Fatalf("%d inserts refused, the largest written over %d months; want some refused and none written over 7", pc.refused, pc.most)
	}
	if n := a.Stats.DeadLettered.Load(); n != 0 {
		t.Fatalf("%d dead-lettered, want none", n)
	}
}

// TestReplayOfALetterMarkedBeforeSealing: a dead letter the previous
// version marked without a seal goes back sealed by a replay that holds
// the hub's key (its pseudonym hashed once), and is refused by one that
// does not (`iochub dlq replay`), rather than sent unsealed to be hashed
// again.
func TestReplayOfALetterMarkedBeforeSealing(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	m, err := admit.New(e.reg, e.p, 0).Msg(mustClear(t, e, "old-letter"))
	if err != nil {
		t.Fatal(err)
	}
	m.Header.Del(natsjs.HeaderAdmitSeal) // as the previous version wrote it
	if _, err := e.js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	kv, err := e.js.KeyValue(ctx, natsjs.HubBucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Purge(ctx, "events-unsealed-until"); err != nil {
		t.Fatal(err)
	}
	if until, err := natsjs.UnsealedUntil(ctx, e.js); err != nil || until != 1 {
		t.Fatalf("unsealed until %d, %v", until, err)
	}
	func() { // ClickHouse rejects its row: dead-lettered, marked, unsealed
		actx, cancel := context.WithCancel(ctx)
		defer cancel()
		a := aggregator.New(aggregator.Config{MaxAttempts: 2, BatchMaxWait: 20 * time.Millisecond, BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond},
			e.js, &flakyStore{Store: e.store, rejectEvent: "old-letter"}, e.reg, e.p, zaptestLogger(t))
		done := make(chan struct{})
		go func() { _ = a.Run(actx); close(done) }()
		waitFor(t, "the row dead-lettered", 20*time.Second, func() bool { return streamMsgs(t, e.js, natsjs.DLQStream) == 1 })
		cancel()
		<-done
	}()
	q := dlq.Queue{JS: e.js}
	letters, _ := q.List(ctx, 10)
	if len(letters) != 1 {
		t.Fatalf("%d letters", len(letters))
	}
	if err := q.Replay(ctx, letters[0].Seq, admit.New(e.reg, nil, 0)); !errors.Is(err, dlq.ErrNotReplayable) {
		t.Fatalf("replay without the key: %v, want ErrNotReplayable", err)
	}
	if err := q.Replay(ctx, letters[0].Seq, admit.New(e.reg, e.p, 0)); err != nil {
		t.Fatalf("replay with the key: %v", err)
	}
	e.run(t, e.store, aggregator.Config{})
	once := e.p.Hash("CCCD 001099012345 Nguyen Van A")
	waitFor(t, "the replayed letter stored", 20*time.Second, func() bool {
		return e.rows(t, "health_visit_v1", "event_id = 'old-letter'") == 1
	})
	if n := e.rows(t, "health_visit_v1", "event_id = 'old-letter' AND patient_id = '"+once+"'"); n != 1 {
		t.Fatal("the replayed letter's pseudonym was hashed again")
	}
}

// TestDirectEventsOnlyWithinAProducersScope (findings C1, H6): an event the
// hub did not admit is stored only when a direct NATS producer's scope
// holds its type and source; a NATS user cannot write into a source it
// does not own.
func TestDirectEventsOnlyWithinAProducersScope(t *testing.T) {
	e := newEnv(t)
	e.run(t, e.store, aggregator.Config{Producers: []event.Scope{{Sources: []string{"/health/his/27-bvdk"}, Types: []string{"vn.ioc.health.visit.v1"}}}})
	ctx := context.Background()
	outside := forged("outside", "27256", 3, "")
	outside.Data = bytes.Replace(outside.Data, []byte(`"/health/his/27-bvdk"`), []byte(`"/health/his/27-bvdk-2"`), 1)
	for _, m := range []*nats.Msg{forged("inside", "27256", 3, ""), outside} {
		if _, err := e.js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the aggregator caught up", 20*time.Second, func() bool { ok, _ := natsjs.CaughtUp(ctx, e.js); return ok })
	if n := e.rows(t, "health_visit_v1", "event_id = 'inside'"); n != 1 {
		t.Fatalf("the event within the producer's scope: %d rows", n)
	}
	if n := e.rows(t, "health_visit_v1", "event_id = 'outside'"); n != 0 {
		t.Fatal("an event outside every producer's scope was stored")
	}
	letters, err := dlq.Queue{JS: e.js}.List(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(letters) != 1 || letters[0].ID != "outside" || !strings.Contains(letters[0].Reason, "no direct NATS producer") {
		t.Fatalf("dead letters %+v, want the outside event with its reason", letters)
	}
}
