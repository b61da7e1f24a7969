// Package hub is iochub's composition root: it opens the infrastructure
// (the schema registry, the personal-data key, ClickHouse, the embedded or a
// remote JetStream) and builds the services --services names — gateway,
// aggregator, connectors, iocapi, monitor — into one process with /healthz
// and /readyz.
package hub

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/iochub/iochub/pkg/configfile"
	"github.com/iochub/iochub/pkg/httpedge"
	"github.com/iochub/iochub/pkg/lease"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/pii"
	"github.com/iochub/iochub/services/aggregator"
	"github.com/iochub/iochub/services/connectors"
	"github.com/iochub/iochub/services/gateway"
	"github.com/iochub/iochub/services/iocapi"
	"github.com/iochub/iochub/services/monitor"
	"github.com/iochub/iochub/services/sharing"
)

// Service names for --services.
const (
	ServiceGateway    = "gateway"
	ServiceAggregator = "aggregator"
	ServiceConnectors = "connectors"
	ServiceIOCAPI     = "iocapi"
	ServiceMonitor    = "monitor"
	ServiceSharing    = "sharing"
)

// Services are every service a process can run, in --services' default.
var Services = []string{ServiceGateway, ServiceAggregator, ServiceConnectors, ServiceIOCAPI, ServiceMonitor, ServiceSharing}

// Config is everything `iochub run` takes: flags (each with an IOCHUB_*
// twin), grouped by the component they configure, and the config file they
// point at. Each component registers its own flags with its own defaults.
type Config struct {
	HTTPAddr      string
	ConfigFile    string
	LogLevel      string
	Services      string
	DebugAddr     string
	ClickHouseDSN string
	// ClickHouseCluster, when set, lays the tables out on that cluster of
	// the servers' remote_servers (decision 0014).
	ClickHouseCluster string
	PIIKey            string // from IOCHUB_PII_KEY, --pii-key-file, or the config file, in that order
	PIIKeyFile        string // --pii-key-file
	AreasFile         string
	KPIDir            string
	CompactEvery      time.Duration
	LeaseTTL          time.Duration // --lease-ttl
	Demo              bool

	NATS       natsjs.Config       // --nats-url, --nats-listen, --data-dir, --nats-sync, --mqtt-listen
	Streams    natsjs.StreamLimits // --dedup-window, --events-max-age, --events-max-bytes, --ack-wait
	Aggregator aggregator.Config   // --batch-max-events, --batch-max-wait

	File File // from ConfigFile, over DefaultFile
}

// File is the YAML config file.
type File struct {
	// PIIKeyFile names a file holding the key (mode 0600), instead of
	// PIIKey; PIIKeyID is the id the pseudonyms carry (pii.DefaultKeyID
	// when empty): change both together to rotate the key.
	PIIKeyFile string `yaml:"pii_key_file"`
	PIIKeyID   string `yaml:"pii_key_id"`
	// PIIKey is the key of the personal-data HMAC (32 bytes or more). The
	// IOCHUB_PII_KEY variable overrides it.
	PIIKey  string         `yaml:"pii_key"`
	Gateway gateway.Config `yaml:"gateway"`
	IOCAPI  iocapi.Config  `yaml:"iocapi"`
	// Connectors are the sector systems the hub reads itself (see
	// services/connectors and deploy/iochub.example.yaml).
	Connectors connectors.Config `yaml:"connectors"`
	// Monitor: expected source intervals, alert webhook, admin tokens.
	Monitor monitor.Config `yaml:"monitor"`
	// Sharing: the partner agencies, their tokens and grants.
	Sharing sharing.Config `yaml:"sharing"`
	// HTTP bounds every listener's connections (timeouts, header size).
	HTTP httpedge.ServerConfig `yaml:"http"`
	// NATS: the embedded server's users (operators, direct producers, MQTT
	// sensors), TLS and storage limits.
	NATS natsjs.Access `yaml:"nats"`
}

// DefaultFile is what a config file that sets nothing means.
func DefaultFile() File {
	return File{Gateway: gateway.DefaultConfig(), IOCAPI: iocapi.DefaultConfig(), Monitor: monitor.DefaultConfig(), HTTP: httpedge.DefaultServerConfig()}
}

// DefaultConfig is `iochub run` with no flag and no config file.
func DefaultConfig() Config {
	var c Config
	c.RegisterFlags(flag.NewFlagSet("defaults", flag.ContinueOnError))
	c.File = DefaultFile()
	return c
}

// RegisterFlags binds the flags to c with their defaults: loopback only.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.HTTPAddr, "http-addr", "127.0.0.1:8080", "HTTP listen address of the gateway, /healthz and /readyz")
	fs.StringVar(&c.ClickHouseDSN, "clickhouse-dsn", "clickhouse://127.0.0.1:9000/iochub", "ClickHouse DSN; the database is created if missing")
	fs.StringVar(&c.ClickHouseCluster, "clickhouse-cluster", "", "ClickHouse cluster (a name in the servers' remote_servers): every table Replicated…MergeTree made ON CLUSTER, inserts with a quorum of every replica, and over several shards Distributed tables sharded by area_code; needs the macros {shard} and {replica} and ZooKeeper or ClickHouse Keeper (see docs/scaling.md)")
	fs.StringVar(&c.ConfigFile, "config", "", "YAML config file: producer tokens, personal-data key, gateway limits (see deploy/iochub.example.yaml)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.Services, "services", strings.Join(Services, ","), "services to run in this process, comma-separated: gateway, aggregator, connectors (the sector systems of the config file), iocapi (KPI API and dashboard), monitor (/metrics, /v1/ops, alerts), sharing (partner agencies' subscriptions, /v1/subscriptions)")
	fs.StringVar(&c.AreasFile, "areas", "deploy/areas/bac-ninh.csv", "iocapi: CSV of the province's administrative units (code,name_vi,level,parent; see deploy/areas/README.md)")
	fs.DurationVar(&c.LeaseTTL, "lease-ttl", lease.DefaultTTL, "connectors: each poller runs in one process at a time, and aggregators: each raw table is written by one process at a time — the holder of a key in the KV bucket IOC_LEASES; a holder that dies is replaced once its key expires, after this long")
	fs.DurationVar(&c.CompactEvery, "rollup-compact-interval", 10*time.Minute, "aggregator: how often the entity rollups are compacted (OPTIMIZE … FINAL of partitions with several parts) so KPI queries stay fast; 0 never")
	fs.BoolVar(&c.Demo, "demo", false, "publish a demo province's events (the last 7 days, then live) so every dashboard tile has data; for trying the hub, never for production")
	fs.StringVar(&c.KPIDir, "kpi-dir", "", "directory of KPI definitions and rollups (layout of kpis/); empty: the ones built in")
	fs.StringVar(&c.DebugAddr, "debug-addr", "", "if set, serve Go's /debug/pprof profiles on this address (loopback only, e.g. 127.0.0.1:6060)")
	fs.StringVar(&c.PIIKeyFile, "pii-key-file", "", "file (mode 0600) holding the key of the personal-data HMAC, 32 bytes or more; or the IOCHUB_PII_KEY variable, or pii_key / pii_key_file in the config file (never a flag value: it would show in the process list)")
	c.NATS.RegisterFlags("", fs)
	c.Streams.RegisterFlags("", fs)
	c.Aggregator.RegisterFlags("", fs)
}

// Load reads the config file over c.File (which holds the defaults), once,
// then checks everything once, reporting every problem.
func (c *Config) Load() error {
	if c.ConfigFile != "" {
		if err := configfile.Decode(c.ConfigFile, c.NATS.DataDir, &c.File, true); err != nil {
			return err
		}
	}
	if err := c.loadPIIKey(); err != nil {
		return err
	}
	c.NATS.Access = c.File.NATS
	c.File.Gateway.Reserved = c.File.Connectors.Reserved()
	c.Aggregator.Producers = c.File.NATS.Producers()
	return c.Validate()
}

// MaxLeaseTTL bounds --lease-ttl: a restarted aggregator waits for the
// migration key of the process it replaces within startTimeout.
const MaxLeaseTTL = 10 * time.Second

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	svcs := c.ServiceList()
	if len(svcs) == 0 {
		errs = append(errs, fmt.Errorf("--services: name at least one of %s", strings.Join(Services, ", ")))
	}
	for _, s := range svcs {
		if !slices.Contains(Services, s) {
			errs = append(errs, fmt.Errorf("--services: unknown service %q (want %s)", s, strings.Join(Services, ", ")))
		}
	}
	if err := c.NATS.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.ClickHouseDSN == "" && (c.Runs(ServiceAggregator) || c.Runs(ServiceIOCAPI)) {
		errs = append(errs, errors.New("--clickhouse-dsn is required"))
	}
	if id := c.File.PIIKeyID; id != "" {
		if err := pii.CheckKeyID(id); err != nil {
			errs = append(errs, fmt.Errorf("pii_key_id: %w", err))
		}
	}
	if len(c.PIIKey) < pii.MinKeyLen {
		errs = append(errs, fmt.Errorf("personal-data key: set IOCHUB_PII_KEY, --pii-key-file, or pii_key or pii_key_file in the config file (%d random bytes or more)", pii.MinKeyLen))
	}
	if err := c.Streams.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("--events-max-age, --dedup-window, --stream-replicas: %w", err))
	}
	if c.LeaseTTL < time.Second || c.LeaseTTL > MaxLeaseTTL {
		errs = append(errs, fmt.Errorf("--lease-ttl %s: want 1s to %s (a hub restarted after a crash waits up to this long for its dead predecessor's keys, within its %s start)", c.LeaseTTL, MaxLeaseTTL, startTimeout))
	}
	if c.NATS.Embedded() && c.Streams.Replicas > 1 {
		errs = append(errs, fmt.Errorf("--stream-replicas %d: the embedded NATS server is one node; give --nats-url of a JetStream cluster (several URLs, comma-separated)", c.Streams.Replicas))
	}
	if err := c.Aggregator.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.File.Gateway.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.File.Connectors.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Runs(ServiceConnectors) && c.File.Connectors.UsesSensors() && c.NATS.Embedded() && c.NATS.MQTTListen == "" {
		errs = append(errs, errors.New("connectors.traffic.sensors: the embedded server needs --mqtt-listen for the sensors to publish to"))
	}
	if err := c.File.Monitor.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.File.IOCAPI.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.File.Sharing.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.checkSecrets(); err != nil {
		errs = append(errs, err)
	}
	if err := c.checkNATSUsers(); err != nil {
		errs = append(errs, err)
	}
	for i, u := range c.NATS.Access.Users {
		if u.Role == natsjs.RoleSubscriber && !slices.ContainsFunc(c.File.Sharing.Agencies, func(a sharing.Agency) bool { return a.Name == u.Agency }) {
			errs = append(errs, fmt.Errorf("nats.users[%d] (%s): agency %q is not in sharing.agencies", i, u.Name, u.Agency))
		}
	}
	if err := c.checkDebugAddr(); err != nil {
		errs = append(errs, err)
	}
	if c.Runs(ServiceIOCAPI) && len(c.File.IOCAPI.Readers) == 0 {
		errs = append(errs, errors.New("iocapi: no readers in the config file: no one could read KPIs (see deploy/iochub.example.yaml)"))
	}
	if c.Runs(ServiceGateway) && len(c.File.Gateway.Producers) == 0 {
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

// Runs reports whether --services names service.
func (c *Config) Runs(service string) bool { return slices.Contains(c.ServiceList(), service) }

// streamLimits are the limits of the streams as declared: the operator's,
// with the gateway's largest event as the largest message.
func (c *Config) streamLimits() natsjs.StreamLimits {
	l := c.Streams
	l.MaxMsgSize = int32(c.File.Gateway.MaxEventBytes)
	return l
}

// loadPIIKey takes the personal-data key from IOCHUB_PII_KEY, --pii-key-file,
// pii_key_file or pii_key, the first set. A file holding the key, the
// config file included, must be readable by its owner only.
func (c *Config) loadPIIKey() error {
	if c.PIIKey != "" {
		return nil // set by the caller
	}
	if v := os.Getenv("IOCHUB_PII_KEY"); v != "" {
		c.PIIKey = v
		return nil
	}
	for _, f := range []struct{ where, path string }{{"--pii-key-file", c.PIIKeyFile}, {"pii_key_file", c.File.PIIKeyFile}} {
		if f.path == "" {
			continue
		}
		if err := ownerOnly(f.path); err != nil {
			return fmt.Errorf("%s: %w", f.where, err)
		}
		b, err := os.ReadFile(f.path)
		if err != nil {
			return fmt.Errorf("%s: %w", f.where, err)
		}
		c.PIIKey = strings.TrimRight(string(b), "\r\n")
		return nil
	}
	c.PIIKey = c.File.PIIKey
	// The development key is public and the example's placeholder refused
	// anyway (checkSecrets): only a real key's file must be private.
	if c.PIIKey != "" && !strings.Contains(c.PIIKey, "not-for-production") && !strings.HasPrefix(c.PIIKey, "replace-with") {
		if err := ownerOnly(c.ConfigFile); err != nil {
			return fmt.Errorf("--config holds pii_key: %w (or move the key to IOCHUB_PII_KEY or a pii_key_file)", err)
		}
	}
	return nil
}

// ownerOnly refuses a secret's file that its group or others may read.
func ownerOnly(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		return fmt.Errorf("%s is readable by others (mode %04o): chmod 600 %s", path, m, path)
	}
	return nil
}
