package main

// Phase 4: throughput through the gateway.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

func bodies(n, batch int, seed uint64) [][]byte {
	evs, _ := messages(n, seed)
	var out [][]byte
	for i := 0; i < len(evs); i += batch {
		b, _ := json.Marshal(evs[i:min(i+batch, len(evs))])
		out = append(out, b)
	}
	return out
}

func benchThroughput(o options, h *hubProc) (accepted, materialized float64, err error) {
	ctx := context.Background()
	base, err := h.rows(ctx)
	if err != nil {
		return 0, 0, err
	}
	bs := bodies(o.events, o.batch, 3)
	if o.profile != "" {
		// The profile is saved before the hub is stopped, however short
		// the run.
		profiled := make(chan struct{})
		defer func() { <-profiled }()
		go func() {
			defer close(profiled)
			if err := h.cpuProfile(time.Duration(o.profileSeconds)*time.Second, o.profile); err != nil {
				fmt.Fprintln(os.Stderr, "iochub-bench: profile:", err)
			}
		}()
	}
	var next atomic.Int64
	var firstErr firstError
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < o.clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(bs) {
					return
				}
				if err := h.post(bs[i]); err != nil {
					firstErr.set(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if e := firstErr.get(); e != nil {
		return 0, 0, e
	}
	accepted = float64(o.events) / time.Since(start).Seconds()
	for {
		n, err := h.rows(ctx)
		if err != nil {
			return 0, 0, err
		}
		if n-base >= uint64(o.events) {
			break
		}
		if time.Since(start) > 10*time.Minute {
			return 0, 0, fmt.Errorf("only %d of %d events materialized after 10 minutes", n-base, o.events)
		}
		time.Sleep(250 * time.Millisecond)
	}
	materialized = float64(o.events) / time.Since(start).Seconds()
	return accepted, materialized, nil
}
