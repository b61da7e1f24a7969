package gateway

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/iochub/iochub/pkg/opsstats"
)

// Unauthenticated is the producer label of a request without a valid token.
const Unauthenticated = "(unauthenticated)"

// counts tallies every request's outcome: the metric, the report to the
// monitor, and one log line per refused request.
type counts struct {
	process string
	events  *prometheus.CounterVec
	mu      sync.Mutex
	by      map[string]*opsstats.Producer
}

func newCounts() *counts {
	return &counts{process: nuid.Next(), by: map[string]*opsstats.Producer{},
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iochub_gateway_events_total",
			Help: "Events the gateway took (outcome accepted) or refused (outcome rejected, with the rule broken or the request's problem as reason), by producer.",
		}, []string{"producer", "outcome", "reason"})}
}

// tally is one request's outcome.
type tally struct {
	producer string
	status   int
	events   int // in the request, once parsed
	accepted int
	rejected map[string]int // reason → events
}

func (t *tally) reject(reason string, n int) {
	if t.rejected == nil {
		t.rejected = map[string]int{}
	}
	t.rejected[reason] += n
}

// record counts t and logs a refused request at info: producer, status and
// reasons, never the payload.
func (c *counts) record(log *zap.Logger, t *tally) {
	if t.producer == "" {
		t.producer = Unauthenticated
	}
	if t.accepted > 0 {
		c.events.WithLabelValues(t.producer, "accepted", "").Add(float64(t.accepted))
	}
	reasons := make([]string, 0, len(t.rejected))
	for r, n := range t.rejected {
		c.events.WithLabelValues(t.producer, "rejected", r).Add(float64(n))
		reasons = append(reasons, r)
	}
	slices.Sort(reasons)
	c.mu.Lock()
	pc := c.by[t.producer]
	if pc == nil {
		pc = &opsstats.Producer{Producer: t.producer, Rejected: map[string]uint64{}}
		c.by[t.producer] = pc
	}
	pc.Accepted += uint64(t.accepted)
	for r, n := range t.rejected {
		pc.Rejected[r] += uint64(n)
	}
	if len(reasons) > 0 {
		now := time.Now()
		pc.LastRejected, pc.LastStatus = &now, t.status
	}
	c.mu.Unlock()
	if len(reasons) > 0 {
		n := 0
		for _, k := range t.rejected {
			n += k
		}
		log.Info("events refused", zap.String("producer", t.producer), zap.Int("status", t.status),
			zap.String("rules", strings.Join(reasons, ",")), zap.Int("refused", n), zap.Int("accepted", t.accepted))
	}
}

func (c *counts) snapshot() opsstats.GatewayReport {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := opsstats.GatewayReport{Process: c.process, At: time.Now()}
	for _, pc := range c.by {
		cp := *pc
		cp.Rejected = make(map[string]uint64, len(pc.Rejected))
		for r, n := range pc.Rejected {
			cp.Rejected[r] = n
		}
		out.Producers = append(out.Producers, cp)
	}
	slices.SortFunc(out.Producers, func(a, b opsstats.Producer) int { return strings.Compare(a.Producer, b.Producer) })
	return out
}

// Counts is what this process took and refused of each producer.
func (h *Handler) Counts() opsstats.GatewayReport { return h.counts.snapshot() }

// RegisterMetrics adds iochub_gateway_events_total to reg.
func (h *Handler) RegisterMetrics(reg prometheus.Registerer) error {
	return reg.Register(h.counts.events)
}

// Report publishes Counts on opsstats.GatewaySubject every interval until ctx is
// done, for the monitor (in this process or another).
func (h *Handler) Report(ctx context.Context, nc *nats.Conn, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if b, err := json.Marshal(h.Counts()); err == nil {
			if err := nc.Publish(opsstats.GatewaySubject, b); err != nil {
				h.log.Debug("gateway stats not published", zap.Error(err))
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// reasonOf is the reason label of a request refused whole: its problem
// type's last part (urn:iochub:problem:rate-limited → rate-limited).
func reasonOf(typ string) string {
	if i := strings.LastIndexByte(typ, ':'); i >= 0 {
		return typ[i+1:]
	}
	return typ
}
