package kpi_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/iochub/iochub/pkg/chstore"
	"github.com/iochub/iochub/pkg/chstore/chstoretest"
	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/kpi"
	"github.com/iochub/iochub/pkg/kpi/kpitest"
	"github.com/iochub/iochub/pkg/schema"
)

func insert(t *testing.T, s *chstore.Store, reg *schema.Registry, evs []event.Event, seq *uint64) {
	t.Helper()
	for _, e := range evs {
		ty, err := reg.Lookup(e.Type)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := schema.DecodeData(e.Data)
		if err := ty.Validate(data); err != nil {
			t.Fatalf("fixture event %s: %v", e.ID, err)
		}
		*seq++
		row, err := chstore.Row(ty, e, *seq, time.Now(), data)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Insert(context.Background(), ty.Name.Table(), chstore.Columns(ty), [][]any{row}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestEveryKPIMatchesHandComputedValues writes the kpitest events (retries
// removed, as JetStream does; resends under new ids, late and out-of-order
// changes kept) half before the rollups exist and half after, then checks
// every KPI against the values worked out by hand.
//
// It does so on one server, and on the two cluster layouts of
// --clickhouse-cluster (decision 0014): one shard of two replicas, and two
// shards, each with its own ZooKeeper and servers. The answers are the same
// hand-computed values on each.
func TestEveryKPIMatchesHandComputedValues(t *testing.T) {
	for _, layout := range []struct {
		name             string
		shards, replicas int
	}{{"one server", 0, 0}, {"one shard of two replicas", 1, 2}, {"two shards", 2, 1}} {
		t.Run(layout.name, func(t *testing.T) {
			if layout.shards == 0 {
				everyKPIMatches(t, chstoretest.Open(t))
				return
			}
			c := chstoretest.StartCluster(t, layout.shards, layout.replicas)
			everyKPIMatches(t, c.Open(t, 0, "iochub_kpi"))
			// Every server holds its part: the second replica a copy of
			// each row, the second shard some of them.
			other := c.Open(t, 1, "iochub_kpi")
			var n uint64
			q := "SELECT count() FROM " + other.Qualified(other.Local("publicservice_dossier_v1"))
			if err := other.QueryRow(context.Background(), q).Scan(&n); err != nil || n == 0 {
				t.Fatalf("%s on the second server: %d rows (%v)", other.Local("publicservice_dossier_v1"), n, err)
			}
			t.Logf("%s on the second server: %d rows", other.Local("publicservice_dossier_v1"), n)
		})
	}
}

func everyKPIMatches(t *testing.T, s *chstore.Store) {
	ctx := context.Background()
	reg, cat := rawTables(t, s)
	evs := kpitest.Unique()
	var seq uint64
	insert(t, s, reg, evs[:len(evs)/2], &seq) // before the rollups: filled by Migrate
	if err := cat.MigrateAndFill(ctx, s, zaptest.NewLogger(t)); err != nil {
		t.Fatalf("Migrate rollups: %v", err)
	}
	if names, err := cat.Migrate(ctx, s); err != nil || len(names) != 0 {
		t.Fatalf("Migrate rollups twice: %v, %v to fill again", err, names)
	}
	insert(t, s, reg, evs[len(evs)/2:], &seq) // after: through the views
	e := &kpi.Engine{Catalog: cat, Store: s, Location: kpitest.Location}
	covered := map[string]bool{}
	check := func(when string) {
		for _, x := range kpitest.Expectations {
			t.Run(when+"/"+x.String(), func(t *testing.T) {
				covered[x.KPI] = true
				_, res, err := e.Run(ctx, kpi.Request{Name: x.KPI, From: kpitest.From, To: kpitest.To, Granularity: x.Granularity, Filters: x.Filters, By: x.By})
				if err != nil {
					t.Fatal(err)
				}
				CheckResult(t, x, res)
			})
		}
	}
	check("unmerged")
	// Compacting the rollups (one row per entity again) changes no value.
	n, err := cat.Compact(ctx, s)
	if err != nil || (n == 0) != s.Sharded() { // a sharded layout leaves merges to its servers
		t.Fatalf("Compact merged %d partitions: %v", n, err)
	}
	check("compacted")
	for _, n := range cat.Names() {
		if !covered[n] {
			t.Errorf("KPI %s has no hand-computed expectation in kpitest", n)
		}
	}
}

// CheckResult compares a result with an expectation, to 1e-9.
func CheckResult(t *testing.T, x kpitest.Expect, res *kpi.Result) {
	t.Helper()
	if len(res.Series) != len(x.Series) {
		t.Fatalf("series has %d points, want %d", len(res.Series), len(x.Series))
	}
	for i, want := range x.Series {
		if !same(res.Series[i].Value, want) {
			t.Errorf("series[%d] (%s) = %s, want %s", i, res.Series[i].T.Format(time.DateOnly), show(res.Series[i].Value), show(want))
		}
	}
	if !same(res.Total, x.Total) {
		t.Errorf("total = %s, want %s", show(res.Total), show(x.Total))
	}
	if x.By != "" {
		got := map[string]float64{}
		for _, p := range res.Breakdown {
			if p.Value != nil {
				got[p.Key] = *p.Value
			}
		}
		if len(got) != len(x.Breakdown) {
			t.Errorf("breakdown = %v, want %v", got, x.Breakdown)
		}
		for k, want := range x.Breakdown {
			if g, ok := got[k]; !ok || math.Abs(g-want) > 1e-9 {
				t.Errorf("breakdown[%s] = %v, want %v", k, g, want)
			}
		}
	}
}

func same(a, b *float64) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return math.Abs(*a-*b) < 1e-9
}

func show(p *float64) string {
	if p == nil {
		return "null"
	}
	return formatFloat(*p)
}

// TestRepairRebuildsWhatAViewMissed: raw rows written while the rollups'
// views were missing (as an insert that failed between the raw part and
// its views leaves them) make the KPIs wrong; Repair over their event
// times makes every KPI match the hand-computed values again.
func TestRepairRebuildsWhatAViewMissed(t *testing.T) {
	ctx := context.Background()
	s, reg, cat := rawStore(t)
	if err := cat.MigrateAndFill(ctx, s, zaptest.NewLogger(t)); err != nil {
		t.Fatal(err)
	}
	evs := kpitest.Unique()
	var seq uint64
	insert(t, s, reg, evs[:len(evs)/2], &seq)
	for _, r := range cat.Rollups { // the second half reaches the raw tables only
		if err := s.Exec(ctx, "DROP TABLE "+s.Qualified(r.Table+"_mv")); err != nil {
			t.Fatal(err)
		}
	}
	insert(t, s, reg, evs[len(evs)/2:], &seq)
	if names, err := cat.Migrate(ctx, s); err != nil || len(names) != 0 { // the views back, the rollups kept
		t.Fatalf("Migrate: %v, %v to fill", err, names)
	}
	e := &kpi.Engine{Catalog: cat, Store: s, Location: kpitest.Location}
	wrong := 0
	for _, x := range kpitest.Expectations {
		_, res, err := e.Run(ctx, kpi.Request{Name: x.KPI, From: kpitest.From, To: kpitest.To, Granularity: x.Granularity, Filters: x.Filters, By: x.By})
		if err != nil {
			t.Fatal(err)
		}
		if !same(res.Total, x.Total) {
			wrong++
		}
	}
	if wrong == 0 {
		t.Fatal("no KPI is wrong before the repair: the test repairs nothing")
	}
	from, to := evs[0].Time, evs[0].Time
	tables := map[string]bool{}
	for _, ev := range evs {
		from, to = minTime(from, ev.Time), maxTime(to, ev.Time)
		tn, _ := event.ParseType(ev.Type)
		tables[tn.Table()] = true
	}
	for table := range tables {
		if err := cat.Repair(ctx, s, table, from, to, func() error { return nil }); err != nil {
			t.Fatalf("repair %s: %v", table, err)
		}
	}
	for _, x := range kpitest.Expectations {
		t.Run(x.String(), func(t *testing.T) {
			_, res, err := e.Run(ctx, kpi.Request{Name: x.KPI, From: kpitest.From, To: kpitest.To, Granularity: x.Granularity, Filters: x.Filters, By: x.By})
			if err != nil {
				t.Fatal(err)
			}
			CheckResult(t, x, res)
		})
	}
	// A repair stopped before it changes anything leaves no table behind.
	stop := errors.New("the lock lapsed")
	if err := cat.Repair(ctx, s, "health_visit_v1", from, to, func() error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("repair with fresh failing: %v, want its error", err)
	}
	if ok, err := s.TableExists(ctx, "kpi_visit_hourly_repair"); err != nil || ok {
		t.Fatalf("the repair's table left behind: %v, %v", ok, err)
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
