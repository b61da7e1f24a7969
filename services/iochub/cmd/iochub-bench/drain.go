package main

// Phase: the drain of a backlog published straight onto JetStream — what a
// stream processor in the hub's place would be measured on: validate,
// pseudonymize, check the identity and insert events already in the log.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/bcrypt"

	"github.com/iochub/iochub/pkg/eventgen"
	"github.com/iochub/iochub/pkg/natsjs"
)

const drainPassword = "bench-direct-producer-password"

// drainFigures are the drain phase's results.
type drainFigures struct {
	published, publishPerS     float64
	perS                       float64
	hubCPUus, clickhouseCPUus  float64
	hubPeakRSSMB, drainSeconds float64
}

// benchDrain publishes o.drainEvents events in clear, as a direct NATS
// producer would, onto a hub running only its gateway (the streams, no
// aggregator); then starts the hub again with only its aggregator on the
// same store and times it until every event is a row.
func benchDrain(o options) (f drainFigures, err error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "iochub-bench-drain")
	if err != nil {
		return f, err
	}
	db := fmt.Sprintf("iochub_bench_drain_%d", time.Now().UnixNano())
	hash, err := bcrypt.GenerateFromPassword([]byte(drainPassword), bcrypt.MinCost)
	if err != nil {
		return f, err
	}
	natsAddr, err := freeAddr()
	if err != nil {
		return f, err
	}
	spec := hubSpec{dir: dir, db: db, keep: true, natsListen: natsAddr, services: "gateway",
		yaml: fmt.Sprintf("nats:\n  users:\n    - name: bench-direct\n      role: producer\n      password_bcrypt: %q\n      sources: [\"*\"]\n      types: [\"vn.ioc.*\"]\n", hash)}
	defer func() {
		os.RemoveAll(dir)
		if s, err := openStore(ctx, o.chServer, db); err == nil {
			_ = s.DropDatabase(ctx, db)
			s.Close()
		}
	}()

	// The backlog.
	h, err := startHubSpec(o, spec)
	if err != nil {
		return f, err
	}
	nc, err := nats.Connect("nats://"+natsAddr, nats.UserInfo("bench-direct", drainPassword), nats.CustomInboxPrefix(natsjs.ProducerInbox("bench-direct")))
	if err != nil {
		h.stop()
		return f, fmt.Errorf("connect as a direct producer: %w", err)
	}
	js, err := natsjs.NewJetStream(nc)
	if err != nil {
		nc.Close()
		h.stop()
		return f, err
	}
	g := eventgen.New(4, fmt.Sprintf("drain-%d", time.Now().UnixNano()))
	start := time.Now()
	const chunk = 5000
	for i := 0; i < o.drainEvents; i += chunk {
		msgs := make([]*nats.Msg, 0, chunk)
		for range min(chunk, o.drainEvents-i) {
			e := g.Next()
			body, _ := json.Marshal(e)
			m, err := natsjs.EventMsg(e, body)
			if err != nil {
				nc.Close()
				h.stop()
				return f, err
			}
			msgs = append(msgs, m)
		}
		for _, out := range natsjs.PublishAll(ctx, js, msgs) {
			if out.Err != nil {
				nc.Close()
				h.stop()
				return f, fmt.Errorf("publish the backlog: %w", out.Err)
			}
		}
	}
	f.published = float64(o.drainEvents)
	f.publishPerS = f.published / time.Since(start).Seconds()
	nc.Close()
	h.stop()

	// The drain.
	spec.services, spec.natsListen = "aggregator", ""
	ch0 := clickhouseCPUSeconds()
	h, err = startHubSpec(o, spec)
	if err != nil {
		return f, err
	}
	defer h.stop()
	cpu0 := h.cpuSeconds()
	start = time.Now()
	for {
		n, err := h.rows(ctx)
		if err != nil {
			return f, err
		}
		if n >= uint64(o.drainEvents) {
			break
		}
		if time.Since(start) > 30*time.Minute {
			return f, fmt.Errorf("drain: %d of %d events are rows after 30 minutes", n, o.drainEvents)
		}
		time.Sleep(250 * time.Millisecond)
	}
	f.drainSeconds = time.Since(start).Seconds()
	f.perS = f.published / f.drainSeconds
	f.hubCPUus = (h.cpuSeconds() - cpu0) / f.published * 1e6
	f.clickhouseCPUus = (clickhouseCPUSeconds() - ch0) / f.published * 1e6
	f.hubPeakRSSMB = h.peakRSSMB()
	return f, nil
}

// clickhouseCPUSeconds is the user+system CPU time so far of every
// ClickHouse server process on the machine (0 when none is visible).
func clickhouseCPUSeconds() float64 {
	entries, _ := os.ReadDir("/proc")
	var total float64
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if !strings.Contains(filepath.Base(args[0]), "clickhouse") || !strings.Contains(string(cmdline), "server") {
			continue
		}
		total += procCPUSeconds(pid)
	}
	return total
}
