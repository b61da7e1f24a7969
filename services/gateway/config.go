package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/time/rate"

	"github.com/iochub/iochub/pkg/event"
)

// Config is the gateway's part of the iochub config file.
type Config struct {
	// MaxBodyBytes bounds one request body; larger requests get 413.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxBatchEvents bounds the events of one batch; more gets 413.
	MaxBatchEvents int `yaml:"max_batch_events"`
	// MaxEventBytes bounds one event as stored in JetStream; larger gets 413.
	MaxEventBytes int `yaml:"max_event_bytes"`
	// RetryAfterSeconds is the Retry-After of a 503.
	RetryAfterSeconds int `yaml:"retry_after_seconds"`
	// Producers are the credentials that may send events.
	Producers []Producer `yaml:"producers"`
	// Reserved maps source prefixes to the connector that owns them (set
	// from the config file's connectors): no producer may send under them.
	Reserved map[string]string `yaml:"-"`
}

// Producer is one sector system's credential and what it may send. The token
// itself is never stored: only its SHA-256 (tokens are long random strings,
// so a fast hash is enough; `iochub token` makes one).
type Producer struct {
	Name        string `yaml:"name"`
	TokenSHA256 string `yaml:"token_sha256"`
	// Scope: the source prefixes ("*" for any) and the types (a trailing
	// "*" matches a prefix) this producer may send.
	event.Scope `yaml:",inline"`
	// MaxEventsPerSecond is the producer's sustained rate; 0: no limit.
	// BurstEvents is how many it may send at once above it (default: one
	// second's worth, at least the largest batch). Over it: 429 with
	// Retry-After.
	MaxEventsPerSecond float64 `yaml:"max_events_per_second"`
	BurstEvents        int     `yaml:"burst_events"`
	// MaxEventsPerDay is the producer's quota over any 24 hours (a bucket
	// of that size refilled evenly over a day); 0: none.
	MaxEventsPerDay int `yaml:"max_events_per_day"`
}

// limit is one of a producer's token buckets and what it is called.
type limit struct {
	*rate.Limiter
	name string
}

// limits are the producer's token buckets: its rate and its daily quota.
func (p *Producer) limits(maxBatch int) []limit {
	var out []limit
	if p.MaxEventsPerSecond > 0 {
		burst := p.BurstEvents
		if burst <= 0 {
			burst = max(int(p.MaxEventsPerSecond+0.5), maxBatch)
		}
		out = append(out, limit{rate.NewLimiter(rate.Limit(p.MaxEventsPerSecond), burst),
			fmt.Sprintf("%g events a second (%d at once)", p.MaxEventsPerSecond, burst)})
	}
	if p.MaxEventsPerDay > 0 {
		out = append(out, limit{rate.NewLimiter(rate.Limit(float64(p.MaxEventsPerDay)/86400), p.MaxEventsPerDay),
			fmt.Sprintf("%d events a day", p.MaxEventsPerDay)})
	}
	return out
}

// DefaultConfig is the gateway's configuration when the file sets nothing.
func DefaultConfig() Config {
	return Config{MaxBodyBytes: 5 << 20, MaxBatchEvents: 10_000, MaxEventBytes: 1 << 20, RetryAfterSeconds: 5}
}

// Defaults fills the unset limits from DefaultConfig.
func (c *Config) Defaults() {
	d := DefaultConfig()
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = d.MaxBodyBytes
	}
	if c.MaxBatchEvents == 0 {
		c.MaxBatchEvents = d.MaxBatchEvents
	}
	if c.MaxEventBytes == 0 {
		c.MaxEventBytes = d.MaxEventBytes
	}
	if c.RetryAfterSeconds == 0 {
		c.RetryAfterSeconds = d.RetryAfterSeconds
	}
}

// Validate reports every problem of the config at once.
func (c *Config) Validate() error {
	var errs []error
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, fmt.Errorf("gateway.max_body_bytes must be at least 1024, got %d", c.MaxBodyBytes))
	}
	if c.MaxBatchEvents < 1 {
		errs = append(errs, fmt.Errorf("gateway.max_batch_events must be at least 1, got %d", c.MaxBatchEvents))
	}
	seen := map[string]string{}
	for i, p := range c.Producers {
		where := fmt.Sprintf("gateway.producers[%d] (%s)", i, p.Name)
		if p.Name == "" {
			errs = append(errs, fmt.Errorf("%s: name is required", where))
		}
		h := strings.ToLower(p.TokenSHA256)
		if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size {
			errs = append(errs, fmt.Errorf("%s: token_sha256 must be 64 hex digits (the SHA-256 of the token)", where))
		} else if other, dup := seen[h]; dup {
			errs = append(errs, fmt.Errorf("%s: same token as %s", where, other))
		}
		seen[h] = p.Name
		if err := p.Scope.Validate(where); err != nil {
			errs = append(errs, err)
		}
		if p.MaxEventsPerSecond < 0 || p.BurstEvents < 0 || p.MaxEventsPerDay < 0 {
			errs = append(errs, fmt.Errorf("%s: max_events_per_second, burst_events and max_events_per_day must not be negative", where))
		}
	}
	return errors.Join(errs...)
}
