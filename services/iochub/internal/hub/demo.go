package hub

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/iochub/iochub/pkg/eventgen"
	"github.com/iochub/iochub/pkg/natsjs"
)

// runDemo publishes the demo province's events onto JetStream: the last
// seven days at start, then what happened since every 15 seconds. The
// aggregator validates and pseudonymizes them like any event published on
// NATS. How far it got is kept in <data-dir>/demo-until, so a restart sends
// only what is new (the events are deterministic; resending would be a
// retry anyway).
func (h *Hub) runDemo(ctx context.Context) {
	demo := &eventgen.Demo{Location: h.cfg.File.IOCAPI.Timezone.Loc()}
	mark := filepath.Join(h.cfg.NATS.DataDir, "demo-until")
	from := time.Now().Add(-7 * 24 * time.Hour).Truncate(time.Hour)
	if b, err := os.ReadFile(mark); err == nil {
		if sec, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && time.Unix(sec, 0).After(from) {
			from = time.Unix(sec, 0)
		}
	}
	tick := time.NewTicker(15 * time.Second)
	defer tick.Stop()
	for {
		to := time.Now().Truncate(time.Second)
		evs := demo.Between(from, to)
		published := 0
		for i := 0; i < len(evs); i += 1000 {
			batch := evs[i:min(i+1000, len(evs))]
			msgs := make([]*nats.Msg, 0, len(batch))
			for _, e := range batch {
				m, err := natsjs.EventMsg(e, e.AppendJSON(nil))
				if err != nil {
					continue
				}
				msgs = append(msgs, m)
			}
			for _, o := range natsjs.PublishAll(ctx, h.js, msgs) {
				if o.Err != nil {
					h.log.Warn("demo: publish failed; will retry", zap.Error(o.Err))
					goto wait
				}
				published++
			}
		}
		if published > 0 {
			h.log.Info("demo: events published", zap.Int("events", published), zap.Time("until", to))
		}
		from = to
		_ = os.WriteFile(mark, []byte(strconv.FormatInt(to.Unix(), 10)), 0o644)
	wait:
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
