// Package backoff is the one retry delay of the hub: exponential from Min to
// Max, with jitter so that many retriers after one outage do not come back
// in step. The connector runner, the aggregator, the ClickHouse store's
// wait for unsettled inserts and the simulated webhook senders use it.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is the state of one retry loop; the zero value with Min and Max
// set is ready. It is not safe for concurrent use.
type Backoff struct {
	Min, Max time.Duration
	// NoJitter waits exactly the current delay (for polls whose delay is no
	// contention: nobody else retries in step).
	NoJitter bool

	cur time.Duration
}

// Current is the delay the next wait is drawn from, before jitter.
func (b *Backoff) Current() time.Duration {
	if b.cur == 0 {
		return max(b.Min, 1)
	}
	return b.cur
}

// Next returns the next delay, between half the current delay and the
// whole of it ("equal jitter"), and doubles the current delay up to Max.
func (b *Backoff) Next() time.Duration {
	d := b.Current()
	b.cur = d * 2
	if b.Max > 0 && b.cur > b.Max {
		b.cur = b.Max
	}
	if b.NoJitter {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// Wait sleeps the next delay; it reports false when ctx ended first.
func (b *Backoff) Wait(ctx context.Context) bool {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Reset starts again from Min, after a success.
func (b *Backoff) Reset() { b.cur = 0 }
