// Package hub wires iochub's services into one process: the embedded (or a
// remote) JetStream, the gateway and the aggregator, with /healthz and /readyz.
package hub

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/iochub/iochub/pkg/httpedge"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/pii"
	"github.com/iochub/iochub/services/aggregator"
	"github.com/iochub/iochub/services/connectors"
	"github.com/iochub/iochub/services/gateway"
	"github.com/iochub/iochub/services/iocapi"
	"github.com/iochub/iochub/services/monitor"
)

// Service names for --services.
const (
	ServiceGateway    = "gateway"
	ServiceAggregator = "aggregator"
	ServiceIOCAPI     = "iocapi"
	ServiceMonitor    = "monitor"
)

// Config is everything `iochub run` takes: flags (each with an IOCHUB_*
// twin) and the config file they point at.
type Config struct {
	HTTPAddr       string
	NATSURL        string
	NATSListen     string
	DataDir        string
	ClickHouseDSN  string
	ConfigFile     string
	LogLevel       string
	Services       string
	NATSSync       string
	DedupWindow    time.Duration
	EventsMaxBytes int64
	EventsMaxAge   time.Duration
	AckWait        time.Duration
	BatchMaxEvents int
	BatchMaxWait   time.Duration
	PIIKey         string
	DebugAddr      string
	AreasFile      string
	Demo           bool
	Simulate       bool
	SimHistory     time.Duration
	MQTTListen     string
	CompactEvery   time.Duration
	KPIDir         string

	File File // from ConfigFile
}

// File is the YAML config file.
type File struct {
	// PIIKey is the key of the personal-data HMAC (16 bytes or more). The
	// IOCHUB_PII_KEY variable overrides it.
	PIIKey  string         `yaml:"pii_key"`
	Gateway gateway.Config `yaml:"gateway"`
	IOCAPI  iocapi.Config  `yaml:"iocapi"`
	// Connectors are the sector systems the hub reads itself (see
	// services/connectors and deploy/iochub.example.yaml).
	Connectors connectors.Config `yaml:"connectors"`
	// Monitor: expected source intervals, alert webhook, admin tokens.
	Monitor monitor.Config `yaml:"monitor"`
	// HTTP bounds every listener's connections (timeouts, header size);
	// unset fields take httpedge.DefaultServerConfig.
	HTTP httpedge.ServerConfig `yaml:"http"`
}

// Register binds the flags to c with their defaults: loopback only.
func (c *Config) Register(fs *flag.FlagSet) {
	fs.StringVar(&c.HTTPAddr, "http-addr", "127.0.0.1:8080", "HTTP listen address of the gateway, /healthz and /readyz")
	fs.StringVar(&c.NATSURL, "nats-url", "", "NATS server URL; empty starts the embedded JetStream server")
	fs.StringVar(&c.NATSListen, "nats-listen", "127.0.0.1:4222", "client listen address of the embedded NATS server; empty for in-process only")
	fs.StringVar(&c.DataDir, "data-dir", "data", "directory of the embedded JetStream store (<data-dir>/jetstream)")
	fs.StringVar(&c.ClickHouseDSN, "clickhouse-dsn", "clickhouse://127.0.0.1:9000/iochub", "ClickHouse DSN; the database is created if missing")
	fs.StringVar(&c.ConfigFile, "config", "", "YAML config file: producer tokens, personal-data key, gateway limits (see deploy/iochub.example.yaml)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.Services, "services", "gateway,aggregator,iocapi,monitor", "services to run in this process, comma-separated: gateway, aggregator, iocapi (KPI API and dashboard), monitor (/metrics, /v1/ops, alerts)")
	fs.StringVar(&c.AreasFile, "areas", "deploy/areas/bac-ninh.csv", "iocapi: CSV of the province's administrative units (code,name_vi,level,parent; see deploy/areas/README.md)")
	fs.DurationVar(&c.CompactEvery, "rollup-compact-interval", 10*time.Minute, "aggregator: how often the entity rollups are compacted (OPTIMIZE … FINAL of partitions with several parts) so KPI queries stay fast; 0 never")
	fs.StringVar(&c.MQTTListen, "mqtt-listen", "", "MQTT listener of the embedded NATS server for traffic sensors (e.g. 127.0.0.1:1883); empty: none")
	fs.BoolVar(&c.Simulate, "simulate", false, "run simulated sector systems (dossier API, FHIR server, CSV exports, MQTT sensors, webhooks) where the connectors config points, fed with a demo province; for trying the hub, never for production")
	fs.BoolVar(&c.Demo, "demo", false, "publish a demo province's events (the last 7 days, then live) so every dashboard tile has data; for trying the hub, never for production")
	fs.StringVar(&c.KPIDir, "kpi-dir", "", "directory of KPI definitions and rollups (layout of kpis/); empty: the ones built in")
	fs.StringVar(&c.NATSSync, "nats-sync", "2m", "embedded JetStream disk sync: an interval (e.g. 2m, 1s) or \"always\" to fsync every write (see docs/performance.md)")
	fs.DurationVar(&c.DedupWindow, "dedup-window", natsjs.DefaultDedupWindow, "how long JetStream answers a resent identity (source, id) as \"duplicate\": true at publish time (costs ~180 bytes of memory an event); a resend after it is still stored once in ClickHouse")
	fs.DurationVar(&c.EventsMaxAge, "events-max-age", natsjs.DefaultEventsMaxAge, "retention of IOC_EVENTS, the replayable log of every accepted event")
	fs.Int64Var(&c.EventsMaxBytes, "events-max-bytes", 10<<30, "size limit of IOC_EVENTS; when full, new events are refused with 503, none is dropped")
	fs.DurationVar(&c.AckWait, "ack-wait", 60*time.Second, "how long JetStream waits for the aggregator's ack before redelivering")
	fs.IntVar(&c.BatchMaxEvents, "batch-max-events", 5000, "aggregator: events per ClickHouse insert at most")
	fs.DurationVar(&c.BatchMaxWait, "batch-max-wait", 200*time.Millisecond, "aggregator: longest wait before a partial batch is written")
	fs.StringVar(&c.DebugAddr, "debug-addr", "", "if set, serve Go's /debug/pprof profiles on this address (loopback only, e.g. 127.0.0.1:6060)")
	fs.StringVar(&c.PIIKey, "pii-key", "", "key of the personal-data HMAC (prefer the IOCHUB_PII_KEY variable or the config file)")
}

// Load reads the config file and checks everything, reporting all problems.
func (c *Config) Load() error {
	if err := c.LoadFile(); err != nil {
		return err
	}
	return c.Validate()
}

// LoadFile reads the config file alone, with no check of the flags.
func (c *Config) LoadFile() error {
	if c.ConfigFile != "" {
		b, err := os.ReadFile(c.ConfigFile)
		if err != nil {
			return fmt.Errorf("config file: %w", err)
		}
		// ${DATA_DIR} in the file is --data-dir: where the dev config keeps
		// the simulated systems' exports.
		text := strings.ReplaceAll(string(b), "${DATA_DIR}", c.DataDir)
		dec := yaml.NewDecoder(strings.NewReader(text))
		dec.KnownFields(true)
		if err := dec.Decode(&c.File); err != nil {
			return fmt.Errorf("config file %s: %w", c.ConfigFile, err)
		}
	}
	if c.PIIKey == "" {
		c.PIIKey = c.File.PIIKey
	}
	c.File.Gateway.Defaults()
	c.File.IOCAPI.Defaults()
	return c.File.Connectors.Validate()
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	svcs := c.ServiceList()
	if len(svcs) == 0 {
		errs = append(errs, errors.New("--services: name at least one of gateway, aggregator, iocapi, monitor"))
	}
	for _, s := range svcs {
		if s != ServiceGateway && s != ServiceAggregator && s != ServiceIOCAPI && s != ServiceMonitor {
			errs = append(errs, fmt.Errorf("--services: unknown service %q (want gateway, aggregator, iocapi, monitor)", s))
		}
	}
	if c.NATSURL == "" && c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir is required for the embedded NATS server"))
	}
	if c.ClickHouseDSN == "" && (slices.Contains(svcs, ServiceAggregator) || slices.Contains(svcs, ServiceIOCAPI)) {
		errs = append(errs, errors.New("--clickhouse-dsn is required"))
	}
	if _, _, err := c.SyncSetting(); err != nil {
		errs = append(errs, err)
	}
	if len(c.PIIKey) < pii.MinKeyLen {
		errs = append(errs, fmt.Errorf("personal-data key: set pii_key in the config file or IOCHUB_PII_KEY (%d bytes or more)", pii.MinKeyLen))
	}
	if err := c.streamLimits().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("--events-max-age, --dedup-window: %w", err))
	}
	if c.BatchMaxEvents < 1 {
		errs = append(errs, fmt.Errorf("--batch-max-events must be at least 1, got %d", c.BatchMaxEvents))
	}
	if err := c.File.Gateway.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.File.Connectors.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.File.Connectors.UsesSensors() && c.NATSURL == "" && c.MQTTListen == "" {
		errs = append(errs, errors.New("connectors.traffic.sensors: the embedded server needs --mqtt-listen for the sensors to publish to"))
	}
	if err := c.File.IOCAPI.Validate(); err != nil {
		errs = append(errs, err)
	}
	if slices.Contains(svcs, ServiceIOCAPI) && len(c.File.IOCAPI.Readers) == 0 {
		errs = append(errs, errors.New("iocapi: no readers in the config file: no one could read KPIs (see deploy/iochub.example.yaml)"))
	}
	if slices.Contains(svcs, ServiceGateway) && len(c.File.Gateway.Producers) == 0 {
		errs = append(errs, errors.New("gateway: no producers in the config file: no one could send events (see deploy/iochub.example.yaml)"))
	}
	return errors.Join(errs...)
}

// ServiceList is --services split.
func (c *Config) ServiceList() []string {
	var out []string
	for _, s := range strings.Split(c.Services, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// SyncSetting parses --nats-sync.
func (c *Config) SyncSetting() (interval time.Duration, always bool, err error) {
	if c.NATSSync == "always" {
		return 0, true, nil
	}
	d, err := time.ParseDuration(c.NATSSync)
	if err != nil || d <= 0 {
		return 0, false, fmt.Errorf("--nats-sync: want a duration such as 2m or \"always\", got %q", c.NATSSync)
	}
	return d, false, nil
}

func (c *Config) storeDir() string { return filepath.Join(c.DataDir, "jetstream") }

func (c *Config) streamLimits() natsjs.StreamLimits {
	return natsjs.StreamLimits{EventsMaxBytes: c.EventsMaxBytes, EventsMaxAge: c.EventsMaxAge, DedupWindow: c.DedupWindow, AckWait: c.AckWait,
		MaxMsgSize: int32(c.File.Gateway.MaxEventBytes)}
}

func (c *Config) aggregatorConfig() aggregator.Config {
	return aggregator.Config{BatchMaxEvents: c.BatchMaxEvents, BatchMaxWait: c.BatchMaxWait, AckWait: c.AckWait}
}
