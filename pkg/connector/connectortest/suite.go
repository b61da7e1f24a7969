// Package connectortest is the conformance suite every connector passes on a
// real JetStream server: restart mid-stream leaves no gap and no duplicate,
// an unavailable source is backed off from and recovered, a malformed
// record is dead-lettered with the reason while the rest flows, and the
// checkpoint survives a restart of the server.
package connectortest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/iochub/iochub/internal/polltest"
	"github.com/iochub/iochub/pkg/connector"
	"github.com/iochub/iochub/pkg/dlq"
	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/natsjs/natsjstest"
	"github.com/iochub/iochub/pkg/pii"
	"github.com/iochub/iochub/pkg/schema"
	"github.com/iochub/iochub/schemas"
)

// System is the sector system a connector reads, as a test drives it.
type System interface {
	// Source returns a new source over the system: one per (re)start.
	Source(t *testing.T) connector.Source
	// Map is the connector's mapping.
	Map() connector.Mapper
	// Add puts n new good records into the system; each becomes one event.
	Add(t *testing.T, n int)
	// AddMalformed puts one record the mapping or validation rejects.
	AddMalformed(t *testing.T)
	// SetAvailable makes the system answer, or fail as if down.
	SetAvailable(t *testing.T, up bool)
}

// Run runs the suite; newSystem makes a fresh system for each case.
func Run(t *testing.T, name string, newSystem func(t *testing.T) System) {
	t.Run("RestartMidStreamNoGapNoDuplicate", func(t *testing.T) {
		sys := newSystem(t)
		h := start(t, name, natsjstest.Run(t))
		sys.Add(t, 40)
		stop := h.run(t, sys)
		h.waitEvents(t, 15, 30*time.Second, true)
		stop()
		sys.Add(t, 25)
		stop = h.run(t, sys)
		h.waitEvents(t, 65, 30*time.Second, false)
		stop()
		time.Sleep(300 * time.Millisecond) // a wrong extra event would show up: an absence cannot be polled
		h.assertExactly(t, 65)
	})
	t.Run("UnavailableSourceBacksOffThenRecovers", func(t *testing.T) {
		sys := newSystem(t)
		h := start(t, name, natsjstest.Run(t))
		sys.Add(t, 10)
		sys.SetAvailable(t, false)
		stop := h.run(t, sys)
		defer stop()
		time.Sleep(1500 * time.Millisecond)
		if n := h.count(t, natsjs.EventsStream); n != 0 {
			t.Fatalf("%d events published while the source was down", n)
		}
		sys.SetAvailable(t, true)
		h.waitEvents(t, 10, 30*time.Second, false)
		h.assertExactly(t, 10)
	})
	t.Run("MalformedRecordIsDeadLetteredAndTheRestFlows", func(t *testing.T) {
		sys := newSystem(t)
		h := start(t, name, natsjstest.Run(t))
		sys.Add(t, 5)
		sys.AddMalformed(t)
		sys.Add(t, 5)
		stop := h.run(t, sys)
		defer stop()
		h.waitEvents(t, 10, 30*time.Second, false)
		polltest.True(t, "the malformed record dead-lettered", 10*time.Second, func() bool { return h.count(t, natsjs.DLQStream) >= 1 })
		s, _ := h.js.Stream(context.Background(), natsjs.DLQStream)
		msg, err := s.GetLastMsgForSubject(context.Background(), "dlq.connector."+name)
		if err != nil {
			t.Fatalf("no dead letter on dlq.connector.%s: %v", name, err)
		}
		if reason := msg.Header.Get(natsjs.HeaderDLQReason); reason == "" || len(msg.Data) == 0 {
			t.Errorf("dead letter without reason (%q) or raw record (%d bytes)", reason, len(msg.Data))
		} else {
			t.Logf("dead letter: %s (record %s, %d bytes)", reason, msg.Header.Get(connector.HeaderRecordKey), len(msg.Data))
		}
		// The record is kept encrypted (finding H2): the hub's key opens it,
		// and nothing personal is in the stream in clear.
		c, _ := dlq.NewRecordCipher(h.ps)
		if msg.Header.Get(dlq.HeaderEncrypted) == "" {
			t.Error("the dead-lettered record is not encrypted")
		} else if _, err := c.Open(name, msg.Data); err != nil {
			t.Errorf("the hub's key does not open the record: %v", err)
		}
		if p, ok := sys.(interface{ PersonalData() []string }); ok {
			all := dumpStream(t, h.js, natsjs.DLQStream)
			for _, v := range p.PersonalData() {
				if bytes.Contains(all, []byte(v)) {
					t.Errorf("IOC_DLQ holds %q in clear", v)
				}
			}
		}
		h.assertExactly(t, 10)
	})
	t.Run("CheckpointSurvivesServerRestart", func(t *testing.T) {
		sys := newSystem(t)
		dir := t.TempDir()
		srv := natsjstest.RunInDir(t, dir)
		h := start(t, name, srv)
		sys.Add(t, 10)
		stop := h.run(t, sys)
		h.waitEvents(t, 10, 30*time.Second, false)
		stop()
		before := h.checkpoint(t)
		if before == "" {
			t.Fatal("no checkpoint after 10 records")
		}
		srv.Shutdown()
		srv.WaitForShutdown()
		h = start(t, name, natsjstest.RunInDir(t, dir))
		if after := h.checkpoint(t); after != before {
			t.Fatalf("checkpoint %q after the server restart, %q before", after, before)
		}
		sys.Add(t, 5)
		stop = h.run(t, sys)
		defer stop()
		h.waitEvents(t, 15, 30*time.Second, false)
		time.Sleep(300 * time.Millisecond)
		h.assertExactly(t, 15)
	})
}

type harness struct {
	name string
	js   jetstream.JetStream
	reg  *schema.Registry
	ps   *pii.Pseudonymizer
}

func start(t *testing.T, name string, srv *natsjstest.Server) *harness {
	t.Helper()
	_, js := srv.Declared(t, natsjs.StreamLimits{})
	reg, err := schema.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := pii.New([]byte("connector-test-key-0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	return &harness{name: name, js: js, reg: reg, ps: ps}
}

// run starts a runner over a new source; stop cancels it and waits.
func (h *harness) run(t *testing.T, sys System) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &connector.Runner{Name: h.name, Source: sys.Source(t), Map: sys.Map(), Registry: h.reg, Pseudo: h.ps, JS: h.js,
		Log: zaptest.NewLogger(t), MinBackoff: 50 * time.Millisecond, MaxBackoff: 400 * time.Millisecond}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := r.Run(ctx); err != nil {
			t.Errorf("runner: %v", err)
		}
	}()
	return func() { cancel(); wg.Wait() }
}

func (h *harness) count(t *testing.T, stream string) uint64 {
	s, err := h.js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// waitEvents waits until IOC_EVENTS holds n events (at least n when atLeast).
func (h *harness) waitEvents(t *testing.T, n uint64, timeout time.Duration, atLeast bool) {
	t.Helper()
	polltest.Until(t, fmt.Sprintf("%d events in IOC_EVENTS", n), timeout, func() error {
		if got := h.count(t, natsjs.EventsStream); got != n && !(atLeast && got >= n) {
			return fmt.Errorf("IOC_EVENTS holds %d events", got)
		}
		return nil
	})
}

// assertExactly reads every event in IOC_EVENTS: n of them, each id once,
// each valid, none with personal data in clear.
func (h *harness) assertExactly(t *testing.T, n int) {
	t.Helper()
	ctx := context.Background()
	s, err := h.js.Stream(ctx, natsjs.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq) // a work queue: read it without consuming
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		e, err := event.Parse(m.Data)
		if err != nil {
			t.Fatalf("event in IOC_EVENTS: %v", err)
		}
		if seen[e.Source+" "+e.ID] {
			t.Errorf("event %s %s twice", e.Source, e.ID)
		}
		seen[e.Source+" "+e.ID] = true
		if !strings.HasPrefix(e.ID, h.name+"-") {
			t.Errorf("event id %q is not derived from the record", e.ID)
		}
		if m.Header.Get(natsjs.HeaderPseudonymized) == "" {
			t.Errorf("event %s not marked as validated and pseudonymized", e.ID)
		}
	}
	if len(seen) != n {
		t.Fatalf("IOC_EVENTS holds %d distinct events, want %d", len(seen), n)
	}
}

func (h *harness) checkpoint(t *testing.T) string {
	t.Helper()
	kv, err := connector.Checkpoints(context.Background(), h.js)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(context.Background(), h.name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(e.Value())
}

// dumpStream is every message of a stream, headers and body, as bytes.
func dumpStream(t *testing.T, js jetstream.JetStream, stream string) []byte {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		for k, vs := range m.Header {
			out.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
		}
		out.Write(m.Data)
	}
	return out.Bytes()
}
