package monitor

import (
	"time"

	"github.com/iochub/iochub/pkg/opsstats"
)

// StreamStat is one stream.
type StreamStat struct {
	Name       string    `json:"name"`
	Messages   uint64    `json:"messages"`
	Bytes      uint64    `json:"bytes"`
	FirstTime  time.Time `json:"first_time"`
	LastTime   time.Time `json:"last_time"`
	LastSeq    uint64    `json:"last_seq"`
	RatePerSec float64   `json:"rate_per_sec"` // new messages per second over the last interval
}

// ConsumerStat is one durable consumer.
type ConsumerStat struct {
	Stream      string     `json:"stream"`
	Name        string     `json:"name"`
	Pending     uint64     `json:"pending"` // the lag: messages not yet delivered
	AckPending  int        `json:"ack_pending"`
	Redelivered int        `json:"redelivered"`
	LastActive  *time.Time `json:"last_active"`
	LastAck     *time.Time `json:"last_ack"` // the last message acked: taken by the consumer's reader
	Created     time.Time  `json:"created"`
}

// SourceStat is one event source.
type SourceStat struct {
	Source           string     `json:"source"`
	Events           uint64     `json:"events_total"`
	EventsPerMin     float64    `json:"events_per_min"`
	Rejected         uint64     `json:"rejected_total"`
	RejectedPerMin   float64    `json:"rejected_per_min"`
	LastEventTime    *time.Time `json:"last_event_time"`
	ExpectedInterval string     `json:"expected_interval,omitempty"`
	// Freshness: ok, late, starting (expected, and its first interval
	// since the monitor started has not passed), unknown (no expectation).
	Freshness string `json:"freshness"`
	expected  time.Duration
}

// SubscriptionStat is a partner agency's subscription: what the sharing
// service in this process delivered, with its lag and dead letters from
// the streams.
type SubscriptionStat struct {
	Name         string     `json:"name"`
	Agency       string     `json:"agency"`
	Mode         string     `json:"mode"` // pull, push or nats
	Paused       bool       `json:"paused"`
	Delivered    uint64     `json:"delivered_total"` // since the hub started
	Pending      uint64     `json:"pending"`         // on the log (and, mode nats, in the agency's stream) not yet taken
	LastDelivery *time.Time `json:"last_delivery"`
	LastError    string     `json:"last_error,omitempty"`
	Retries      uint64     `json:"retries_total"`
	DeadLettered uint64     `json:"dead_lettered_total"` // moved to its dead letters since the hub started
	DeadLetters  uint64     `json:"dead_letters"`        // waiting there now
}

// DLQStat is the dead-letter stream.
type DLQStat struct {
	Depth    uint64            `json:"depth"`
	ByReason map[string]uint64 `json:"by_reason"`
	ByType   map[string]uint64 `json:"by_type"`
}

// StoreStat is ClickHouse as the monitor sees it.
type StoreStat struct {
	Reachable        bool                 `json:"reachable"`
	Error            string               `json:"error,omitempty"`
	RowsInserted     uint64               `json:"rows_inserted_total"`
	InsertRatePerSec float64              `json:"insert_rate_per_sec"`
	InsertErrors     uint64               `json:"insert_errors_total"`
	Batches          uint64               `json:"batches_total"`
	LastBatchMs      float64              `json:"last_batch_ms"`
	Tables           map[string]TableSize `json:"tables,omitempty"`
}

// TableSize is one ClickHouse table's active parts.
type TableSize struct {
	Rows  uint64 `json:"rows"`
	Bytes uint64 `json:"bytes"`
}

// StoreCounters are an in-process aggregator's insert figures.
type StoreCounters struct {
	RowsInserted, InsertErrors, Batches uint64
	LastBatch                           time.Duration
}

// Snapshot is one sample of everything.
type Snapshot struct {
	At        time.Time      `json:"at"`
	Streams   []StreamStat   `json:"streams"`
	Consumers []ConsumerStat `json:"consumers"`
	Sources   []SourceStat   `json:"sources"`
	// Subscriptions: with the sharing service in this process.
	Subscriptions []SubscriptionStat `json:"subscriptions"`
	DLQ           DLQStat            `json:"dlq"`
	// Producers: what the gateway processes took and refused of each
	// producer since they started, summed over their reports.
	Producers []opsstats.Producer `json:"producers"`
	Store     StoreStat           `json:"clickhouse"`
	Storage   struct {
		Used  uint64 `json:"used_bytes"`
		Limit int64  `json:"limit_bytes"`
		Of    string `json:"of"` // "account" (JetStream's limit) or "filesystem" (of the store directory)
	} `json:"jetstream_storage"`
}

// SourceTotal is what an in-process aggregator counted of a source.
type SourceTotal struct {
	Events uint64
	Last   time.Time
}

// RatePoint is the events accepted and dead-lettered per second at a sample.
type RatePoint struct {
	At          time.Time `json:"t"`
	Events      float64   `json:"events_per_sec"`
	DeadLetters float64   `json:"dead_letters_per_sec"`
}
