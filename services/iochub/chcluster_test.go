package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/iochub/iochub/pkg/chstore"
	"github.com/iochub/iochub/pkg/chstore/chstoretest"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/natsjs/natsjstest"
	"github.com/iochub/iochub/pkg/pii"
	"github.com/iochub/iochub/pkg/schema"
	"github.com/iochub/iochub/schemas"
	"github.com/iochub/iochub/services/aggregator"
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
	reg, _ := schema.Load(schemas.FS)
	if err := store.Migrate(ctx, reg); err != nil {
		t.Fatal(err)
	}
	if cl := store.Cluster(); cl.Shards != 1 || cl.Replicas != 2 {
		t.Fatalf("cluster layout %+v, want one shard of two replicas", cl)
	}
	srv := natsjstest.Run(t)
	_, js := srv.Declared(t, natsjs.StreamLimits{AckWait: 2 * time.Second})
	p, _ := pii.New([]byte(e2ePIIKey))
	agg := aggregator.New(aggregator.Config{Producers: anyDirectProducer, BatchMaxEvents: 1000, BatchMaxWait: 50 * time.Millisecond, AckWait: 2 * time.Second,
		BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond}, js, store, reg, p, zaptest.NewLogger(t))
	actx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- agg.Run(actx) }()
	defer func() { cancel(); <-done }()

	const n = 20_000
	want, published := publishGenerated(t, js, n, 4000, 29)
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
