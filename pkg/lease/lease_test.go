package lease_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/iochub/iochub/pkg/lease"
	"github.com/iochub/iochub/pkg/natsjs/natsjstest"
)

// runs records who ran the task and when.
type runs struct {
	mu      sync.Mutex
	running map[string]bool
	overlap bool
	started map[string]time.Time
	stopped map[string]time.Time
}

func (r *runs) task(who string) func(context.Context) error {
	return func(ctx context.Context) error {
		r.mu.Lock()
		r.running[who] = true
		r.overlap = r.overlap || len(r.running) > 1
		r.started[who] = time.Now()
		r.mu.Unlock()
		<-ctx.Done()
		r.mu.Lock()
		delete(r.running, who)
		r.stopped[who] = time.Now()
		r.mu.Unlock()
		return nil
	}
}

func (r *runs) has(who string) (start, stop time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.started[who], r.stopped[who]
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 30s", what)
		}
	}
}

// One of two replicas runs the task; when it stops, the other takes over
// at once (released); when its connection dies, the other takes over once
// the lease expired, and the first stops its task (a lease bounds an
// overlap there, it does not exclude one: a stalled holder may run on).
func TestOneReplicaRunsTheTask(t *testing.T) {
	srv := natsjstest.Run(t)
	const ttl = time.Second
	open := func() *lease.Leases {
		_, js := srv.Connect(t)
		l, err := lease.Open(t.Context(), js, ttl, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	a, b := open(), open()
	r := &runs{running: map[string]bool{}, started: map[string]time.Time{}, stopped: map[string]time.Time{}}

	// Released: a stops, b takes over without waiting for the TTL, and
	// never while a runs.
	actx, acancel := context.WithCancel(t.Context())
	adone := make(chan error, 1)
	go func() { adone <- a.Run(actx, "poller", r.task("a")) }()
	waitUntil(t, "a running", func() bool { s, _ := r.has("a"); return !s.IsZero() })
	bctx, bcancel := context.WithCancel(t.Context())
	bdone := make(chan error, 1)
	go func() { bdone <- b.Run(bctx, "poller", r.task("b")) }()
	time.Sleep(2 * ttl) // b waits: a renews
	if s, _ := r.has("b"); !s.IsZero() {
		t.Fatal("b ran while a held the lease")
	}
	acancel()
	<-adone
	waitUntil(t, "b running after a released", func() bool { s, _ := r.has("b"); return !s.IsZero() })
	_, astop := r.has("a")
	bstart, _ := r.has("b")
	if bstart.Before(astop) {
		t.Errorf("b started at %v, before a stopped at %v", bstart, astop)
	}
	r.mu.Lock()
	if r.overlap {
		t.Error("two replicas ran the task at once")
	}
	r.mu.Unlock()

	// Died: c holds the lease and its connection is cut; b2 takes over
	// after the TTL, and c stopped its task first.
	bcancel()
	<-bdone
	nc, js := srv.Connect(t)
	c, err := lease.Open(t.Context(), js, ttl, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	cdone := make(chan error, 1)
	cctx, ccancel := context.WithCancel(t.Context())
	go func() { cdone <- c.Run(cctx, "poller", r.task("c")) }()
	waitUntil(t, "c running", func() bool { s, _ := r.has("c"); return !s.IsZero() })
	b2done := make(chan error, 1)
	b2ctx, b2cancel := context.WithCancel(t.Context())
	defer func() { b2cancel(); <-b2done }()
	go func() { b2done <- b.Run(b2ctx, "poller", r.task("b2")) }()
	cut := time.Now()
	nc.Close()
	waitUntil(t, "b2 running after c died", func() bool { s, _ := r.has("b2"); return !s.IsZero() })
	b2start, _ := r.has("b2")
	if d := b2start.Sub(cut); d > 5*ttl {
		t.Errorf("b2 took over %s after c died, want within the TTL and a poll (bound %s)", d, 5*ttl)
	}
	waitUntil(t, "c to stop its task, its lease lost", func() bool { _, s := r.has("c"); return !s.IsZero() })
	ccancel() // c tries to take the lease again, on its closed connection
	<-cdone
}
