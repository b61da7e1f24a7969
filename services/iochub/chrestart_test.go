package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/iochub/iochub/internal/polltest"
	"github.com/iochub/iochub/pkg/chstore"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/natsjs/natsjstest"
	"github.com/iochub/iochub/pkg/pii"
	"github.com/iochub/iochub/pkg/schema"
	"github.com/iochub/iochub/schemas"
	"github.com/iochub/iochub/services/aggregator"
)

// ownClickHouse starts a ClickHouse server of this test's own (so stopping
// it does not disturb the other tests), with deploy/clickhouse/ensure.sh.
type ownClickHouse struct {
	dir, port string
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func startOwnClickHouse(t *testing.T) *ownClickHouse {
	t.Helper()
	dir, err := os.MkdirTemp("", "iochub-ch")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o755) // the server runs as the clickhouse user
	ch := &ownClickHouse{dir: dir, port: freePort(t)}
	t.Cleanup(func() {
		ch.kill(t)
		_ = os.RemoveAll(dir)
	})
	ch.start(t)
	return ch
}

func (c *ownClickHouse) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command("bash", "../../deploy/clickhouse/ensure.sh", c.dir)
	cmd.Env = append(os.Environ(), "IOCHUB_CH_TCP_PORT="+c.port, "IOCHUB_CH_HTTP_PORT="+freePort(t))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("start ClickHouse: %v\n%s", err, out)
	}
}

// kill stops the server hard, as a crash or a power cut would.
func (c *ownClickHouse) kill(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.dir, "clickhouse", "clickhouse.pid"))
	if err != nil {
		return
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 0 {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	polltest.True(t, "the killed ClickHouse gone", time.Minute, func() bool { return syscall.Kill(pid, 0) != nil || zombie(pid) })
	_ = os.Remove(filepath.Join(c.dir, "clickhouse", "clickhouse.pid"))
}

func (c *ownClickHouse) dsn(db string) string { return "clickhouse://127.0.0.1:" + c.port + "/" + db }

func TestClickHouseKilledMidStreamLosesAndDuplicatesNothing(t *testing.T) {
	burnCPU(t)
	ch := startOwnClickHouse(t)
	ctx := context.Background()
	store, err := chstore.Open(ctx, ch.dsn("iochub_restart"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	reg, _ := schema.Load(schemas.FS)
	if err := store.Migrate(ctx, reg); err != nil {
		t.Fatal(err)
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

	const n = 30_000
	want, published := publishGenerated(t, js, n, 6000, 23)
	for _, at := range []uint64{4000, 15000} {
		waitFor(t, fmt.Sprintf("%d rows", at), 60*time.Second, func() bool {
			c, err := storeCounts(store)
			return err == nil && total(c) >= at
		})
		ch.kill(t)
		t.Logf("ClickHouse killed at %d rows inserted", agg.Stats.Inserted.Load())
		time.Sleep(3 * time.Second) // down for longer than the ack wait
		if d := agg.Stats.DeadLettered.Load(); d != 0 {
			t.Fatalf("%d events dead-lettered while ClickHouse was down", d)
		}
		ch.start(t)
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
}

// zombie reports a process that has exited and waits to be reaped (its
// parent may be a PID 1 that never reaps).
func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	_, after, ok := strings.Cut(string(b), ") ")
	return ok && strings.HasPrefix(after, "Z")
}
