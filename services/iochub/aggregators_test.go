package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/iochub/iochub/pkg/chstore"
	"github.com/iochub/iochub/pkg/chstore/chstoretest"
	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/eventgen"
	"github.com/iochub/iochub/pkg/httpedge"
	"github.com/iochub/iochub/pkg/natsjs/natsjstest"
)

// clusterProcess starts `iochub run --services services` with more
// flags against cl as a child process, and waits until it is ready; its
// log is shown if the test fails.
func clusterProcess(t *testing.T, cl *natsjstest.Cluster, dir, conf, pw, dsn, services string, more ...string) (*exec.Cmd, string) {
	t.Helper()
	addr := "127.0.0.1:" + freePort(t)
	cmd := exec.Command(iochubBinary(t), append([]string{"run", "--config", conf, "--services", services, "--data-dir", filepath.Join(dir, services+"-"+addr),
		"--nats-url", cl.URL(), "--nats-user", natsjstest.ClusterUser, "--nats-password-file", pw,
		"--clickhouse-dsn", dsn, "--http-addr", addr, "--areas", "../../deploy/areas/bac-ninh.csv", "--log-level", "info"}, more...)...)
	logFile, err := os.Create(filepath.Join(dir, services+"-"+strings.ReplaceAll(addr, ":", "-")+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	base := "http://" + addr
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("%s's log (last 3000 bytes):\n%s", services, b[max(0, len(b)-3000):])
		}
	})
	waitFor(t, services+" ready", 2*time.Minute, func() bool {
		res, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
	return cmd, base
}

// TestTwoAggregatorsOneKilledLeaveCountsExact: two gateway and two
// aggregator processes against a three-node JetStream cluster, streams
// R3, a duplicate window of 100 ms so that resends are second messages on
// the log. Producers post through both gateways, resending batches; one
// aggregator is SIGKILLed mid-stream. Every identity is in ClickHouse once:
// the aggregators never check and insert one table at once (decision 0013).
func TestTwoAggregatorsOneKilledLeaveCountsExact(t *testing.T) {
	cl := natsjstest.RunCluster(t, 3)
	dsn := chstoretest.NewDatabase(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "iochub.yaml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("pii_key: %q\ngateway:\n  producers:\n    - {name: e2e, token_sha256: %q, sources: [\"*\"], types: [\"vn.ioc.*\"]}\n",
		e2ePIIKey, httpedge.HashToken(e2eToken))), 0o600); err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(dir, "nats-password")
	if err := os.WriteFile(pw, []byte(natsjstest.ClusterPassword), 0o600); err != nil {
		t.Fatal(err)
	}
	flags := []string{"--stream-replicas", "3", "--lease-ttl", "2s", "--dedup-window", "100ms", "--batch-max-wait", "50ms", "--ack-wait", "5s"}
	agg1, _ := clusterProcess(t, cl, dir, conf, pw, dsn, "aggregator", flags...)
	clusterProcess(t, cl, dir, conf, pw, dsn, "aggregator", flags...)
	_, gw1 := clusterProcess(t, cl, dir, conf, pw, dsn, "gateway", flags...)
	_, gw2 := clusterProcess(t, cl, dir, conf, pw, dsn, "gateway", flags...)
	burnCPU(t)

	producers := []*producer{{base: gw1}, {base: gw2}}
	g := eventgen.New(22, "aggregators")
	var sent [][]event.Event
	ctx := t.Context()
	for i := range 60 {
		batch := make([]event.Event, 50)
		for j := range batch {
			batch[j] = g.Next()
		}
		sent = append(sent, batch)
		producers[i%2].post(ctx, batch)
		if i%3 == 2 { // a resend of an earlier batch, through the other gateway, past the window
			time.Sleep(150 * time.Millisecond)
			producers[(i+1)%2].post(ctx, sent[i-1])
		}
		if i == 25 {
			_ = agg1.Process.Signal(syscall.SIGKILL)
			t.Log("SIGKILLed one aggregator")
		}
	}
	distinct := map[string]bool{}
	for _, p := range producers {
		if len(p.bad) > 0 {
			t.Fatalf("a producer saw %d answers that are neither 202 nor 503 with Retry-After, first: %s", len(p.bad), p.bad[0])
		}
		for _, id := range p.accepted {
			distinct[id] = true
		}
	}
	want := uint64(len(distinct))

	store, err := chstore.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	waitFor(t, "every identity in ClickHouse", 3*time.Minute, func() bool {
		c, err := storeCounts(store)
		return err == nil && total(c) >= want
	})
	// A second row of an identity would come with its resend's batch, long
	// before now; the settle of each table waits for any insert running.
	for _, tb := range tables {
		if err := store.SettleAll(ctx, tb); err != nil {
			t.Fatal(err)
		}
	}
	c, err := storeCounts(store)
	if err != nil {
		t.Fatal(err)
	}
	if total(c) != want {
		t.Fatalf("ClickHouse holds %d rows for %d identities accepted: doubled or lost (%v)", total(c), want, c)
	}
	var n uint64
	for _, tb := range tables {
		var d uint64
		if err := store.QueryRow(context.Background(), "SELECT uniqExact(source, event_id) FROM "+store.Qualified(tb)).Scan(&d); err != nil {
			t.Fatal(err)
		}
		n += d
	}
	if n != want {
		t.Errorf("%d distinct identities stored, %d accepted", n, want)
	}
	t.Logf("%d identities, %d rows; resends: %s", want, total(c), strconv.Itoa(len(sent)/3))
}
