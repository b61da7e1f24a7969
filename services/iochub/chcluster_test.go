package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/iochub/iochub/kpis"
	"github.com/iochub/iochub/pkg/chstore"
	"github.com/iochub/iochub/pkg/chstore/chstoretest"
	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/eventgen"
	"github.com/iochub/iochub/pkg/kpi"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/services/iochub/internal/hub"
)

// A replicated ClickHouse (--clickhouse-cluster, one shard of two replicas
// coordinated by ZooKeeper) loses a replica twice while the aggregator
// writes: first the replica it does not talk to (its quorum inserts answer
// "unknown status" and "too few live replicas" until the replica is back),
// then the one it talks to (an outage, as on one server). Every raw table
// ends exact on both replicas: 0 lost, 0 doubled, nothing dead-lettered.
func TestClickHouseReplicaKilledMidStreamLeavesBothReplicasExact(t *testing.T) {
	burnCPU(t)
	c := chstoretest.StartCluster(t, 1, 2)
	ctx := context.Background()
	const db = "iochub_replicated"
	store := c.Open(t, 0, db)
	if cl := store.Cluster(); cl.Shards != 1 || cl.Replicas != 2 {
		t.Fatalf("cluster layout %+v, want one shard of two replicas", cl)
	}
	cat := builtinCatalog(t)
	js, agg := aggregatorOn(t, store, cat, natsjs.StreamLimits{AckWait: 2 * time.Second}, 1000)
	// The same events into one server, undisturbed: the KPIs to match.
	single := chstoretest.Open(t)
	singleJS, _ := aggregatorOn(t, single, cat, natsjs.StreamLimits{AckWait: 2 * time.Second}, 1000)

	const n = 20_000
	want, published := publishGeneratedTo(t, []jetstream.JetStream{js, singleJS}, n, 4000, 29)
	for _, step := range []struct {
		at   uint64
		node int
	}{{3000, 1}, {12000, 0}} {
		waitFor(t, fmt.Sprintf("%d rows", step.at), 2*time.Minute, func() bool {
			c, err := storeCounts(store)
			return err == nil && total(c) >= step.at
		})
		retries := agg.Stats.Retries.Load()
		c.Nodes[step.node].Kill(t)
		t.Logf("replica %d killed at %d rows inserted", step.node+1, agg.Stats.Inserted.Load())
		waitFor(t, "an insert refused while the replica is down", 2*time.Minute, func() bool { return agg.Stats.Retries.Load() > retries })
		if d := agg.Stats.DeadLettered.Load(); d != 0 {
			t.Fatalf("%d events dead-lettered while a replica was down", d)
		}
		c.Nodes[step.node].Start(t)
	}
	<-published
	waitFor(t, "every event stored after the restarts", 3*time.Minute, func() bool {
		c, err := storeCounts(store)
		return err == nil && total(c) >= n
	})
	waitFor(t, "the aggregator caught up", time.Minute, func() bool {
		ok, _ := natsjs.CaughtUp(ctx, js)
		return ok
	})
	assertExact(t, store, want)
	other := c.Open(t, 1, db)
	waitFor(t, "the second replica caught up", time.Minute, func() bool {
		c, err := storeCounts(other)
		return err == nil && total(c) >= n
	})
	assertExact(t, other, want)
	if s, _ := js.Stream(ctx, natsjs.DLQStream); s.CachedInfo().State.Msgs != 0 {
		t.Fatal("events dead-lettered because a replica was down")
	}
	// Every KPI, on each replica, answers what the single server answers.
	sameAsUndisturbed(t, cat, singleJS, single, want, map[string]*chstore.Store{"replica 1": store, "replica 2": other})
}

// sameAsUndisturbed waits for the undisturbed server of a fault test to
// hold every event once, then compares every KPI of each of got with it.
func sameAsUndisturbed(t *testing.T, cat *kpi.Catalog, js jetstream.JetStream, undisturbed *chstore.Store, want map[string]uint64, got map[string]*chstore.Store) {
	t.Helper()
	waitFor(t, "the undisturbed server caught up", time.Minute, func() bool {
		ok, _ := natsjs.CaughtUp(context.Background(), js)
		return ok
	})
	assertExact(t, undisturbed, want)
	for what, s := range got {
		sameKPIs(t, cat, undisturbed, s, what)
	}
}

// builtinCatalog is the KPI catalog the hub ships.
func builtinCatalog(t *testing.T) *kpi.Catalog {
	t.Helper()
	cat, err := kpi.Load(kpis.FS)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// sameKPIs compares every KPI of cat, by day over the last 30 days and
// broken down by area, between want and got.
func sameKPIs(t *testing.T, cat *kpi.Catalog, want, got *chstore.Store, what string) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	to := now.Truncate(24 * time.Hour).Add(48 * time.Hour)
	from := to.Add(-30 * 24 * time.Hour)
	we := &kpi.Engine{Catalog: cat, Store: want, Location: time.UTC}
	ge := &kpi.Engine{Catalog: cat, Store: got, Location: time.UTC}
	nonEmpty := 0
	for _, name := range cat.Names() {
		r := kpi.Request{Name: name, From: from, To: to, Granularity: "day", By: "area", Now: now}
		_, w, err := we.Run(ctx, r)
		if err != nil {
			t.Fatalf("%s on the single server: %v", name, err)
		}
		_, g, err := ge.Run(ctx, r)
		if err != nil {
			t.Fatalf("%s on %s: %v", name, what, err)
		}
		if diff := resultDiff(w, g); diff != "" {
			t.Errorf("%s on %s: %s", name, what, diff)
		}
		if w.Total != nil && *w.Total != 0 {
			nonEmpty++
		}
	}
	if nonEmpty == 0 {
		t.Fatal("every KPI is empty: the comparison compared nothing")
	}
}

// A cluster the servers do not know, or a server without the macros or a
// coordinator, is refused at the start with what is missing.
func TestAClusterTheServersCannotHoldIsNamed(t *testing.T) {
	ctx := context.Background()
	_, err := chstore.Open(ctx, chstoretest.ServerDSN()+"/default", chstore.WithCluster("no_such_cluster"))
	if !errors.Is(err, chstore.ErrCluster) || !strings.Contains(err.Error(), `"no_such_cluster" is not in the server's remote_servers`) {
		t.Fatalf("open with an unknown cluster: %v", err)
	}
	// A server whose remote_servers names the cluster, but no macros and no
	// ZooKeeper.
	port := chstoretest.FreePort(t)
	srv := chstoretest.StartServerOn(t, `<?xml version="1.0"?>
<yandex><remote_servers><bare><shard><replica><host>127.0.0.1</host><port>`+port+`</port></replica></shard></bare></remote_servers></yandex>`, port)
	_, err = chstore.Open(ctx, srv.DSN("default"), chstore.WithCluster("bare"))
	if !errors.Is(err, chstore.ErrCluster) || !strings.Contains(err.Error(), "macros {shard} and {replica}") {
		t.Fatalf("open on a server without macros: %v", err)
	}
}

// On a sharded ClickHouse (two shards: Distributed tables over local ones,
// sharded by area_code) every identity is stored once: events resent past
// JetStream's duplicate window are found on whichever shard holds them and
// skipped, and both shards hold rows.
func TestShardedClickHouseStoresEachIdentityOnce(t *testing.T) {
	c := chstoretest.StartCluster(t, 2, 1)
	ctx := context.Background()
	const db = "iochub_sharded"
	store := c.Open(t, 0, db)
	js, agg := aggregatorOn(t, store, nil, natsjs.StreamLimits{AckWait: 2 * time.Second, DedupWindow: 200 * time.Millisecond}, 500)

	const n = 3000
	gen := eventgen.New(31, "shard")
	want := map[string]uint64{}
	var msgs []*nats.Msg
	for range n {
		e := gen.Next()
		tn, _ := event.ParseType(e.Type)
		want[tn.Table()]++
		body, _ := json.Marshal(e)
		m, _ := natsjs.EventMsg(e, body)
		msgs = append(msgs, m)
	}
	publish := func(ms []*nats.Msg) (dups int) {
		for i, o := range natsjs.PublishAll(ctx, js, ms) {
			if o.Err != nil {
				t.Fatalf("publish %d: %v", i, o.Err)
			}
			if o.Duplicate {
				dups++
			}
		}
		return dups
	}
	publish(msgs)
	waitFor(t, "every event stored", 2*time.Minute, func() bool {
		c, err := storeCounts(store)
		return err == nil && total(c) >= n
	})
	waitFor(t, "a resend past the duplicate window", time.Minute, func() bool { return publish(msgs[:1]) == 0 })
	if d := publish(msgs[1:]); d != 0 {
		t.Fatalf("%d of the resends answered duplicate past the window", d)
	}
	waitFor(t, "the aggregator caught up", time.Minute, func() bool {
		ok, _ := natsjs.CaughtUp(ctx, js)
		return ok
	})
	assertExact(t, store, want)
	if s := agg.Stats.Skipped.Load(); s < n {
		t.Fatalf("skipped %d resent events, want %d", s, n)
	}
	for i := range c.Nodes {
		s := c.Open(t, i, db)
		local, err := s.Count(ctx, s.Local("traffic_flow_v1"))
		if err != nil || local == 0 || local == want["traffic_flow_v1"] {
			t.Fatalf("shard %d holds %d of %d traffic_flow_v1 rows (%v): want a part of them", i+1, local, want["traffic_flow_v1"], err)
		}
	}
}

// iochub run --clickhouse-cluster on one shard of two replicas: the hub makes
// its tables and rollups on the cluster, stores what the gateway takes once
// on both replicas, its rollups replicate too, and a restart (on the other
// replica, with the same NATS data) finds its tables as they are and stores
// the first start's events, sent again, once.
func TestHubOnAClusterStoresOnEveryReplica(t *testing.T) {
	c := chstoretest.StartCluster(t, 1, 2)
	const db = "iochub_hub"
	natsDir := t.TempDir() // the same retained log across the restart
	onCluster := func(cfg *hub.Config) {
		cfg.ClickHouseCluster, cfg.NATS.DataDir = chstoretest.ClusterName, natsDir
		cfg.Streams.DedupWindow = time.Second // the resends after the restart reach the identity check
	}
	gen := eventgen.New(37, "cluster")
	want := map[string]uint64{}
	var sent []event.Event
	for round := range 2 { // the second round after a restart of the hub
		t.Run(fmt.Sprintf("start %d", round+1), func(t *testing.T) {
			_, base := startHubInProcess(t, c.Nodes[round].DSN(db), onCluster)
			// After the restart, the events of the first start again: each
			// is stored once still.
			if len(sent) > 0 {
				waitFor(t, "past the duplicate window", time.Minute, func() bool { return !postBatch(t, base, sent[:1]).Accepted[0].Duplicate })
				for _, a := range postBatch(t, base, sent[1:]).Accepted {
					if a.Duplicate {
						t.Fatal("a resend answered duplicate by JetStream: it never reached the identity check")
					}
				}
			}
			var evs []event.Event
			for range 1000 {
				e := gen.Next()
				tn, _ := event.ParseType(e.Type)
				want[tn.Table()]++
				evs = append(evs, e)
			}
			postBatch(t, base, evs)
			sent = append(sent, evs...)
			for i := range c.Nodes {
				s := c.Open(t, i, db)
				waitFor(t, fmt.Sprintf("every event on replica %d", i+1), time.Minute, func() bool { return total(counts(t, s)) >= total(want) })
				assertExact(t, s, want)
				// The rollup's rows come with the insert's quorum, which a busy
				// replica may answer after the raw rows are visible.
				waitFor(t, fmt.Sprintf("kpi_visit_hourly on replica %d", i+1), time.Minute, func() bool {
					var rolled uint64
					err := s.QueryRow(context.Background(), "SELECT count() FROM "+s.Qualified("kpi_visit_hourly")).Scan(&rolled)
					return err == nil && rolled > 0
				})
			}
		})
	}
}

// resultDiff names where got differs from want: the total, a day, an area.
// Values agree to 1e-9 of their size (a sum over other parts adds in
// another order).
func resultDiff(want, got *kpi.Result) string {
	show := func(p *float64) string {
		if p == nil {
			return "null"
		}
		return strconv.FormatFloat(*p, 'g', -1, 64)
	}
	near := func(a, b *float64) bool {
		if a == nil || b == nil {
			return a == nil && b == nil
		}
		return math.Abs(*a-*b) <= 1e-9*math.Max(1, math.Max(math.Abs(*a), math.Abs(*b)))
	}
	var out []string
	if !near(want.Total, got.Total) {
		out = append(out, "total "+show(got.Total)+", want "+show(want.Total))
	}
	if len(want.Series) != len(got.Series) {
		out = append(out, fmt.Sprintf("%d points, want %d", len(got.Series), len(want.Series)))
	}
	for i := range min(len(want.Series), len(got.Series)) {
		if !near(want.Series[i].Value, got.Series[i].Value) {
			out = append(out, want.Series[i].T.Format(time.DateOnly)+" "+show(got.Series[i].Value)+", want "+show(want.Series[i].Value))
		}
	}
	parts := map[string]*float64{}
	for _, p := range got.Breakdown {
		parts[p.Key] = p.Value
	}
	if len(want.Breakdown) != len(got.Breakdown) {
		out = append(out, fmt.Sprintf("%d areas, want %d", len(got.Breakdown), len(want.Breakdown)))
	}
	for _, p := range want.Breakdown {
		if g, ok := parts[p.Key]; !ok || !near(p.Value, g) {
			out = append(out, "area "+p.Key+" "+show(g)+", want "+show(p.Value))
		}
	}
	return strings.Join(out, "; ")
}
