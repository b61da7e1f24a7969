package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/iochub/iochub/pkg/chstore"
	"github.com/iochub/iochub/pkg/chstore/chstoretest"
	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/eventgen"
	"github.com/iochub/iochub/pkg/httpedge"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/natsjs/natsjstest"
	"github.com/iochub/iochub/services/gateway"
	"github.com/iochub/iochub/services/iochub/internal/hub"
)

// onCluster points a hub's config at cl, with R3 streams.
func onCluster(t *testing.T, cl *natsjstest.Cluster, replicas int) func(*hub.Config) {
	pw := filepath.Join(t.TempDir(), "nats-password")
	if err := os.WriteFile(pw, []byte(natsjstest.ClusterPassword), 0o600); err != nil {
		t.Fatal(err)
	}
	return func(c *hub.Config) {
		c.NATS.URL, c.NATS.Auth.User, c.NATS.Auth.PasswordFile = cl.URL(), natsjstest.ClusterUser, pw
		c.Streams.Replicas = replicas
	}
}

// producer posts batches until each is taken (202), sending a batch the
// hub refused whole with 503 again after its Retry-After, as the README
// asks producers to; anything else is a failure.
type producer struct {
	base     string
	mu       sync.Mutex
	accepted []string // "source id" of every event answered 202
	refused  atomic.Int64
	bad      []string // answers that are neither 202 nor 503 with Retry-After
}

func (p *producer) post(ctx context.Context, evs []event.Event) {
	body, _ := json.Marshal(evs)
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.base+"/v1/events", bytes.NewReader(body))
		req.Header.Set("Content-Type", gateway.MediaBatch)
		req.Header.Set("Authorization", "Bearer "+e2eToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			p.fail("post: " + err.Error())
			return
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusAccepted:
			p.mu.Lock()
			for _, e := range evs {
				p.accepted = append(p.accepted, e.Source+" "+e.ID)
			}
			p.mu.Unlock()
			return
		case resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
			p.refused.Add(1)
			time.Sleep(500 * time.Millisecond) // shorter than its Retry-After: the test's patience
		default:
			p.fail(fmt.Sprintf("%d %.300s", resp.StatusCode, raw))
			return
		}
	}
}

func (p *producer) fail(s string) {
	p.mu.Lock()
	p.bad = append(p.bad, s)
	p.mu.Unlock()
}

// TestStreamLeaderKilledLosesAndDoublesNothing: a three-node JetStream
// cluster, every stream R3. Mid-stream the node leading IOC_EVENTS is
// SIGKILLed, then started again; producers keep posting throughout and see
// only 202, or 503 with Retry-After during the election. Every event
// answered 202 is in ClickHouse once: none lost, none doubled.
func TestStreamLeaderKilledLosesAndDoublesNothing(t *testing.T) {
	cl := natsjstest.RunCluster(t, 3)
	dsn := chstoretest.NewDatabase(t)
	_, base := startHubInProcess(t, dsn, onCluster(t, cl, 3))
	burnCPU(t)
	_, js := cl.Connect(t)
	for _, name := range []string{natsjs.EventsStream, natsjs.DLQStream, "IOC_AUDIT", "KV_" + natsjs.HubBucket} {
		s, err := js.Stream(t.Context(), name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		if r := s.CachedInfo().Config.Replicas; r != 3 {
			t.Errorf("stream %s has %d replicas, want 3", name, r)
		}
	}

	p := &producer{base: base}
	g := eventgen.New(21, "cluster")
	batch := func() []event.Event {
		evs := make([]event.Event, 50)
		for i := range evs {
			evs[i] = g.Next()
		}
		return evs
	}
	ctx := t.Context()
	const before, during, after = 20, 20, 20
	for range before {
		p.post(ctx, batch())
	}
	leader := cl.Leader(t, js, natsjs.EventsStream)
	killed := cl.Index(leader)
	cl.Kill(killed)
	t.Logf("SIGKILLed %s, the leader of %s", leader, natsjs.EventsStream)
	for range during {
		p.post(ctx, batch())
	}
	cl.Start(killed)
	for range after {
		p.post(ctx, batch())
	}
	if len(p.bad) > 0 {
		t.Fatalf("producers saw %d answers that are neither 202 nor 503 with Retry-After, first: %s", len(p.bad), p.bad[0])
	}
	want := len(p.accepted)
	t.Logf("%d events accepted, %d requests refused with 503 during the election", want, p.refused.Load())

	store, err := chstore.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var c map[string]uint64
	waitFor(t, "every accepted event in ClickHouse", 3*time.Minute, func() bool {
		c, err = storeCounts(store)
		return err == nil && total(c) >= uint64(want)
	})
	time.Sleep(2 * time.Second) // a double would arrive after the last event; none may
	if c, err = storeCounts(store); err != nil || total(c) != uint64(want) {
		t.Fatalf("ClickHouse holds %d events (%v), the producers' accepted %d: lost or doubled", total(c), err, want)
	}
	distinct := 0
	for _, tb := range tables {
		var n uint64
		if err := store.QueryRow(ctx, "SELECT uniqExact(source, event_id) FROM "+store.Qualified(tb)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		distinct += int(n)
	}
	if distinct != want {
		t.Errorf("%d distinct identities in ClickHouse, %d accepted", distinct, want)
	}
}

// TestReplicasTheServerCannotKeepAreNamed: --stream-replicas 3 against a
// single JetStream server stops the start with an error naming the
// flag and what it needs; against the embedded server, the config is
// refused before anything starts.
func TestReplicasTheServerCannotKeepAreNamed(t *testing.T) {
	cl := natsjstest.RunCluster(t, 1)
	cfg := hub.DefaultConfig()
	cfg.HTTPAddr, cfg.ClickHouseDSN, cfg.Services, cfg.PIIKey = "127.0.0.1:0", chstoretest.NewDatabase(t), "gateway", e2ePIIKey
	cfg.NATS.DataDir, cfg.Streams.EventsMaxBytes = t.TempDir(), 1<<30
	cfg.File.Gateway.Producers = []gateway.Producer{{Name: "e2e", TokenSHA256: httpedge.HashToken(e2eToken), Scope: event.Scope{Sources: []string{"*"}, Types: []string{"vn.ioc.*"}}}}
	embedded := cfg
	embedded.Streams.Replicas = 3
	if err := embedded.Validate(); err == nil || !strings.Contains(err.Error(), "--stream-replicas 3: the embedded NATS server is one node") {
		t.Errorf("R3 on the embedded server: %v", err)
	}
	onCluster(t, cl, 3)(&cfg)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	h, err := hub.Start(ctx, cfg, zaptest.NewLogger(t))
	if err == nil {
		cancel()
		_ = h.Run(ctx)
		t.Fatal("a hub asking for 3 replicas of a one-server cluster started")
	}
	if !errors.Is(err, natsjs.ErrReplicas) || !strings.Contains(err.Error(), "--stream-replicas") || !strings.Contains(err.Error(), "3 or more servers") {
		t.Errorf("error %q: want one naming --stream-replicas and what it needs", err)
	}
}
