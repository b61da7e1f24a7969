package main

// Phase 3: freshness at a steady rate.

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"
)

// benchFreshness posts batches of rate/100 events every 10ms (each post in its
// own goroutine, so a slow answer does not lower the rate) and records, for
// batch i, the time from its post to the first poll (every 50ms, as each poll is a query that costs the server CPU the hub would otherwise get; latencies are thus up to 50ms pessimistic) at which the
// raw tables hold (i+1)·batch rows more than before the run.
func benchFreshness(o options, h *hubProc) (p50, p99, achieved float64, err error) {
	ctx := context.Background()
	base, err := h.rows(ctx)
	if err != nil {
		return 0, 0, 0, err
	}
	per := max(1, o.rate/100)
	nb := o.rateSecs * 100
	bs := bodies(per*nb, per, 4)
	sent := make([]time.Time, len(bs))
	var mu sync.Mutex
	sentCount := 0
	var lat []float64
	done := make(chan error, 1)
	go func() { // the poller
		seen := 0
		for seen < len(bs) {
			n, err := h.rows(ctx)
			if err != nil {
				done <- err
				return
			}
			now := time.Now()
			visible := int((n - base) / uint64(per))
			mu.Lock()
			for seen < visible && seen < sentCount {
				lat = append(lat, float64(now.Sub(sent[seen]).Microseconds())/1000)
				seen++
			}
			mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
		done <- nil
	}()
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	var posts sync.WaitGroup
	var postErr firstError
	for i, b := range bs {
		<-tick.C
		mu.Lock()
		sent[i] = time.Now()
		sentCount = i + 1
		mu.Unlock()
		// Each tick's batch is posted at once, whatever the previous ones are
		// doing: the rate stays the one asked for, as with many producers.
		posts.Add(1)
		go func() {
			defer posts.Done()
			if err := h.post(b); err != nil {
				postErr.set(err)
			}
		}()
		if e := postErr.get(); e != nil {
			return 0, 0, 0, e
		}
	}
	tick.Stop()
	posts.Wait()
	if e := postErr.get(); e != nil {
		return 0, 0, 0, e
	}
	achieved = float64(per*nb) / time.Since(start).Seconds()
	select {
	case err := <-done:
		if err != nil {
			return 0, 0, 0, err
		}
	case <-time.After(2 * time.Minute):
		return 0, 0, 0, errors.New("rows did not all become queryable within 2 minutes")
	}
	sort.Float64s(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100], achieved, nil
}
