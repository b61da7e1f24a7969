package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/iochub/iochub/pkg/chstore"
	"github.com/iochub/iochub/pkg/chstore/chstoretest"
	"github.com/iochub/iochub/pkg/kpi"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/natsjs/natsjstest"
	"github.com/iochub/iochub/pkg/pii"
	"github.com/iochub/iochub/pkg/schema"
	"github.com/iochub/iochub/schemas"
	"github.com/iochub/iochub/services/aggregator"
)

// freePort is a TCP port on 127.0.0.1 that nothing listens on now.
func freePort(t testing.TB) string { return chstoretest.FreePort(t) }

func TestClickHouseKilledMidStreamLosesAndDuplicatesNothing(t *testing.T) {
	burnCPU(t)
	ch := chstoretest.StartServer(t, "")
	ctx := context.Background()
	store, err := chstore.Open(ctx, ch.DSN("iochub_restart"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	cat := builtinCatalog(t)
	js, agg := aggregatorOn(t, store, cat, natsjs.StreamLimits{AckWait: 2 * time.Second}, 1000)
	// The same events into the test server, undisturbed: the KPIs to match.
	single := chstoretest.Open(t)
	singleJS, _ := aggregatorOn(t, single, cat, natsjs.StreamLimits{AckWait: 2 * time.Second}, 1000)

	const n = 30_000
	want, published := publishGeneratedTo(t, []jetstream.JetStream{js, singleJS}, n, 6000, 23)
	for _, at := range []uint64{4000, 15000} {
		waitFor(t, fmt.Sprintf("%d rows", at), 60*time.Second, func() bool {
			c, err := storeCounts(store)
			return err == nil && total(c) >= at
		})
		ch.Kill(t)
		t.Logf("ClickHouse killed at %d rows inserted", agg.Stats.Inserted.Load())
		time.Sleep(3 * time.Second) // down for longer than the ack wait
		if d := agg.Stats.DeadLettered.Load(); d != 0 {
			t.Fatalf("%d events dead-lettered while ClickHouse was down", d)
		}
		ch.Start(t)
	}
	<-published
	waitFor(t, "every event stored after the restarts", 120*time.Second, func() bool {
		c, err := storeCounts(store)
		return err == nil && total(c) >= n
	})
	waitFor(t, "the aggregator caught up", 30*time.Second, func() bool {
		ok, _ := natsjs.CaughtUp(ctx, js)
		return ok
	})
	assertExact(t, store, want)
	if agg.Stats.Retries.Load() == 0 {
		t.Fatal("no insert failed: the kill did not hit the stream")
	}
	if s, _ := js.Stream(ctx, natsjs.DLQStream); s.CachedInfo().State.Msgs != 0 {
		t.Fatal("events dead-lettered because ClickHouse was down")
	}
	sameAsUndisturbed(t, cat, singleJS, single, want, map[string]*chstore.Store{"the restarted server": store})
}

// aggregatorOn makes store's raw tables, starts an embedded JetStream with
// the limits l, and runs an aggregator of batches of batch events from it
// into store until the test ends.
//
// With cat, the catalog's rollups are made first and the aggregator
// rebuilds them after an insert of unknown outcome, as the hub's does.
func aggregatorOn(t *testing.T, store *chstore.Store, cat *kpi.Catalog, l natsjs.StreamLimits, batch int) (jetstream.JetStream, *aggregator.Aggregator) {
	t.Helper()
	reg, _ := schema.Load(schemas.FS)
	if err := store.Migrate(context.Background(), reg); err != nil {
		t.Fatal(err)
	}
	cfg := aggregator.Config{Producers: anyDirectProducer, BatchMaxEvents: batch, BatchMaxWait: 50 * time.Millisecond, AckWait: l.AckWait,
		BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond}
	if cat != nil {
		if err := cat.MigrateAndFill(context.Background(), store, zaptest.NewLogger(t)); err != nil {
			t.Fatal(err)
		}
		cfg.Rollups = repairFunc(func(ctx context.Context, table string, from, to time.Time, fresh func() error) error {
			return cat.Repair(ctx, store, table, from, to, fresh)
		})
	}
	_, js := natsjstest.Run(t).Declared(t, l)
	p, _ := pii.New([]byte(e2ePIIKey))
	agg := aggregator.New(cfg, js, store, reg, p, zaptest.NewLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agg.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("aggregator: %v", err)
		}
	})
	return js, agg
}

// repairFunc is an aggregator.RollupRepairer.
type repairFunc func(ctx context.Context, table string, from, to time.Time, fresh func() error) error

func (f repairFunc) Repair(ctx context.Context, table string, from, to time.Time, fresh func() error) error {
	return f(ctx, table, from, to, fresh)
}
