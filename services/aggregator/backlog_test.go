package aggregator_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/services/aggregator"
)

// insertSizes records the rows of every insert.
type insertSizes struct {
	aggregator.Store
	mu    sync.Mutex
	sizes []int
}

func (s *insertSizes) Insert(ctx context.Context, table string, cols []string, rows [][]any) error {
	s.mu.Lock()
	s.sizes = append(s.sizes, len(rows))
	s.mu.Unlock()
	return s.Store.Insert(ctx, table, cols, rows)
}

// TestBatchesGrowOverABacklog (issue #13): with a backlog waiting, the
// aggregator writes batches of BacklogBatchMaxEvents rather than
// BatchMaxEvents — fewer, larger parts for ClickHouse — and every event is
// still stored once.
func TestBatchesGrowOverABacklog(t *testing.T) {
	e := newEnv(t)
	const n = 6000
	msgs := make([]*nats.Msg, n)
	for i := range msgs {
		msgs[i] = forged(fmt.Sprintf("backlog-%05d", i), "27256", i%60, "")
	}
	for i := 0; i < n; i += 1000 {
		for _, o := range natsjs.PublishAll(context.Background(), e.js, msgs[i:i+1000]) {
			if o.Err != nil {
				t.Fatal(o.Err)
			}
		}
	}
	st := &insertSizes{Store: e.store}
	// A long wait: batches end on their size, never on the clock.
	e.run(t, st, aggregator.Config{BatchMaxEvents: 500, BacklogBatchMaxEvents: 3000, BatchMaxWait: 10 * time.Second})
	waitFor(t, "the backlog stored", 2*time.Minute, func() bool {
		return e.rows(t, "health_visit_v1", "event_id LIKE 'backlog-%'") == n
	})
	st.mu.Lock()
	defer st.mu.Unlock()
	most := 0
	for _, s := range st.sizes {
		most = max(most, s)
	}
	if most <= 500 || most > 3000 || len(st.sizes) > 4 {
		t.Fatalf("inserts of %v rows; want at most 4, the largest over BatchMaxEvents (500) and at most 3000", st.sizes)
	}
}
