// Package opsstats is what a process reports to the monitor over core NATS
// (not stored): figures only that process has, such as what its gateway
// took and refused of each producer. The monitor sums the processes; each
// report carries the sender's totals since it started, so a lost report
// costs nothing.
package opsstats

import "time"

// GatewaySubject is where every gateway process publishes its
// GatewayReport.
const GatewaySubject = "ops.gateway.stats"

// Producer is what one gateway process took and refused of one producer
// since it started. Rejected is by reason: the rule an event broke
// ("required", "enum", "known-type", "scope", …) or, for a request refused
// whole, its problem ("malformed-request", "rate-limited", "unauthorized", …).
type Producer struct {
	Producer     string            `json:"producer"`
	Accepted     uint64            `json:"accepted_total"`
	Rejected     map[string]uint64 `json:"rejected_total"`
	LastRejected *time.Time        `json:"last_rejected,omitempty"`
	LastStatus   int               `json:"last_status,omitempty"` // of the last refused request
}

// GatewayReport is one gateway process's figures.
type GatewayReport struct {
	Process   string     `json:"process"` // an id of the process, new at each start
	At        time.Time  `json:"at"`
	Producers []Producer `json:"producers"`
}

// Sum adds the producers of several reports.
func Sum(reports []GatewayReport) []Producer {
	by := map[string]*Producer{}
	var order []string
	for _, r := range reports {
		for _, p := range r.Producers {
			s := by[p.Producer]
			if s == nil {
				s = &Producer{Producer: p.Producer, Rejected: map[string]uint64{}}
				by[p.Producer] = s
				order = append(order, p.Producer)
			}
			s.Accepted += p.Accepted
			for k, n := range p.Rejected {
				s.Rejected[k] += n
			}
			if p.LastRejected != nil && (s.LastRejected == nil || p.LastRejected.After(*s.LastRejected)) {
				t := *p.LastRejected
				s.LastRejected, s.LastStatus = &t, p.LastStatus
			}
		}
	}
	out := make([]Producer, 0, len(order))
	for _, k := range order {
		out = append(out, *by[k])
	}
	return out
}
