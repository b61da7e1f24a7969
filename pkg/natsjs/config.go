package natsjs

import (
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"time"
)

// Config says where the hub's JetStream is: a NATS server at URL, or, when
// URL is empty, the embedded server with its store under DataDir.
type Config struct {
	URL        string // a NATS cluster to use; empty starts the embedded server
	Listen     string // client port of the embedded server; empty: in-process only
	DataDir    string // the embedded server's store is <DataDir>/jetstream
	Sync       string // how often the embedded store is fsynced: a duration, or "always"
	MQTTListen string // MQTT listener of the embedded server; empty: none
}

// RegisterFlags binds the flags of c, each named prefix+name, with their
// defaults (loopback only).
func (c *Config) RegisterFlags(prefix string, fs *flag.FlagSet) {
	fs.StringVar(&c.URL, prefix+"nats-url", "", "NATS server URL; empty starts the embedded JetStream server")
	fs.StringVar(&c.Listen, prefix+"nats-listen", "127.0.0.1:4222", "client listen address of the embedded NATS server; empty for in-process only")
	fs.StringVar(&c.DataDir, prefix+"data-dir", "data", "directory of the embedded JetStream store (<data-dir>/jetstream)")
	fs.StringVar(&c.Sync, prefix+"nats-sync", "2m", "embedded JetStream disk sync: an interval (e.g. 2m, 1s) or \"always\" to fsync every write (see docs/performance.md)")
	fs.StringVar(&c.MQTTListen, prefix+"mqtt-listen", "", "MQTT listener of the embedded NATS server for traffic sensors (e.g. 127.0.0.1:1883); empty: none")
}

// Embedded reports whether the hub starts its own server.
func (c Config) Embedded() bool { return c.URL == "" }

// StoreDir is the embedded server's JetStream store.
func (c Config) StoreDir() string { return filepath.Join(c.DataDir, "jetstream") }

// Validate names every problem.
func (c Config) Validate() error {
	var errs []error
	if c.Embedded() && c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir is required for the embedded NATS server"))
	}
	if _, err := c.EmbeddedConfig(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// EmbeddedConfig is the embedded server's configuration.
func (c Config) EmbeddedConfig() (EmbeddedConfig, error) {
	e := EmbeddedConfig{Listen: c.Listen, StoreDir: c.StoreDir(), MQTTListen: c.MQTTListen}
	if c.Sync == "always" {
		e.SyncAlways = true
		return e, nil
	}
	d, err := time.ParseDuration(c.Sync)
	if err != nil || d <= 0 {
		return e, fmt.Errorf("--nats-sync: want a duration such as 2m or \"always\", got %q", c.Sync)
	}
	e.SyncInterval = d
	return e, nil
}

// RegisterFlags binds the flags of the limits an operator sets, each named
// prefix+name, with the defaults of withDefaults.
func (l *StreamLimits) RegisterFlags(prefix string, fs *flag.FlagSet) {
	d := StreamLimits{}.withDefaults()
	fs.DurationVar(&l.DedupWindow, prefix+"dedup-window", d.DedupWindow, "how long JetStream answers a resent identity (source, id) as \"duplicate\": true at publish time (costs ~180 bytes of memory an event); a resend after it is still stored once in ClickHouse")
	fs.DurationVar(&l.EventsMaxAge, prefix+"events-max-age", d.EventsMaxAge, "retention of IOC_EVENTS, the replayable log of every accepted event")
	fs.Int64Var(&l.EventsMaxBytes, prefix+"events-max-bytes", d.EventsMaxBytes, "size limit of IOC_EVENTS; when full, new events are refused with 503, none is dropped")
	fs.DurationVar(&l.AckWait, prefix+"ack-wait", d.AckWait, "how long JetStream waits for the aggregator's ack before redelivering")
	fs.DurationVar(&l.DLQMaxAge, prefix+"dlq-max-age", d.DLQMaxAge, "how long IOC_DLQ keeps a dead letter (it may hold what an event or record carried)")
}
