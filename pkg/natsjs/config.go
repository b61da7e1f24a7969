package natsjs

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Config says where the hub's JetStream is: a NATS server at URL, or, when
// URL is empty, the embedded server with its store under DataDir.
type Config struct {
	URL        string // a NATS cluster to use; empty starts the embedded server
	Listen     string // client port of the embedded server; empty: in-process only
	DataDir    string // the embedded server's store is <DataDir>/jetstream
	Sync       string // how often the embedded store is fsynced: a duration, or "always"
	MQTTListen string // MQTT listener of the embedded server; empty: none
	// Auth is the hub's identity at URL; Access (the config file's
	// `nats:`) is who may use the embedded server.
	Auth   ClientAuth
	Access Access
}

// RegisterFlags binds the flags of c, each named prefix+name, with their
// defaults (loopback only).
func (c *Config) RegisterFlags(prefix string, fs *flag.FlagSet) {
	fs.StringVar(&c.URL, prefix+"nats-url", "", "NATS server URL; empty starts the embedded JetStream server")
	fs.StringVar(&c.Listen, prefix+"nats-listen", "127.0.0.1:4222", "client listen address of the embedded NATS server; empty for in-process only")
	fs.StringVar(&c.DataDir, prefix+"data-dir", "data", "directory of the embedded JetStream store (<data-dir>/jetstream)")
	fs.StringVar(&c.Sync, prefix+"nats-sync", "2m", "embedded JetStream disk sync: an interval (e.g. 2m, 1s) or \"always\" to fsync every write (see docs/performance.md)")
	fs.StringVar(&c.MQTTListen, prefix+"mqtt-listen", "", "MQTT listener of the embedded NATS server for traffic sensors (e.g. 127.0.0.1:1883); empty: none")
	c.Auth.RegisterFlags(prefix, fs)
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
	if err := c.Access.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Embedded() {
		if c.Auth != (ClientAuth{}) {
			errs = append(errs, errors.New("--nats-creds, --nats-nkey, --nats-user and --nats-tls-*: for --nats-url; the hub connects to its embedded server in-process"))
		}
	} else if _, err := c.Auth.Options(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// EmbeddedConfig is the embedded server's configuration.
func (c Config) EmbeddedConfig() (EmbeddedConfig, error) {
	e := EmbeddedConfig{Listen: c.Listen, StoreDir: c.StoreDir(), MQTTListen: c.MQTTListen, Access: c.Access}
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
	fs.IntVar(&l.Replicas, prefix+"stream-replicas", d.Replicas, "replicas of every stream and KV bucket the hub declares: 1, or 3 (or 5) on a JetStream cluster at --nats-url")
}

// ClientAuth is how the hub (against --nats-url) or `iochub dlq` proves who
// it is to a NATS server. A user and password may also be in the URL
// (nats://user:password@host:4222).
type ClientAuth struct {
	Creds        string // a .creds file (JWT and NKey seed), from nsc
	NKey         string // a file holding a user's NKey seed (SU…)
	User         string
	PasswordFile string // a file holding User's password
	TLSCA        string // CA of the server's certificate
	TLSCert      string // client certificate, when the server asks for one
	TLSKey       string
}

// RegisterFlags binds the flags of a, each named prefix+name.
func (a *ClientAuth) RegisterFlags(prefix string, fs *flag.FlagSet) {
	fs.StringVar(&a.Creds, prefix+"nats-creds", "", "NATS credentials file (JWT and NKey seed) for --nats-url")
	fs.StringVar(&a.NKey, prefix+"nats-nkey", "", "file holding the NKey seed (SU…) of the NATS user for --nats-url")
	fs.StringVar(&a.User, prefix+"nats-user", "", "NATS user for --nats-url (with --nats-password-file)")
	fs.StringVar(&a.PasswordFile, prefix+"nats-password-file", "", "file holding the password of --nats-user")
	fs.StringVar(&a.TLSCA, prefix+"nats-tls-ca", "", "CA certificate (PEM) the NATS server's certificate must chain to")
	fs.StringVar(&a.TLSCert, prefix+"nats-tls-cert", "", "client certificate (PEM) for a NATS server that asks for one")
	fs.StringVar(&a.TLSKey, prefix+"nats-tls-key", "", "key (PEM) of --nats-tls-cert")
}

// Options are the nats.go options of a; the files are read now, so a
// missing one is named before any connection is tried.
func (a ClientAuth) Options() ([]nats.Option, error) {
	var opts []nats.Option
	var errs []error
	n := 0
	if a.Creds != "" {
		n++
		if _, err := os.Stat(a.Creds); err != nil {
			errs = append(errs, fmt.Errorf("--nats-creds: %w", err))
		}
		opts = append(opts, nats.UserCredentials(a.Creds))
	}
	if a.NKey != "" {
		n++
		o, err := nats.NkeyOptionFromSeed(a.NKey)
		if err != nil {
			errs = append(errs, fmt.Errorf("--nats-nkey %s: %w", a.NKey, err))
		}
		opts = append(opts, o)
	}
	if a.User != "" || a.PasswordFile != "" {
		n++
		if a.User == "" || a.PasswordFile == "" {
			errs = append(errs, errors.New("--nats-user and --nats-password-file go together"))
		} else if b, err := os.ReadFile(a.PasswordFile); err != nil {
			errs = append(errs, fmt.Errorf("--nats-password-file: %w", err))
		} else {
			opts = append(opts, nats.UserInfo(a.User, strings.TrimRight(string(b), "\r\n")))
		}
	}
	if n > 1 {
		errs = append(errs, errors.New("--nats-creds, --nats-nkey and --nats-user: give one"))
	}
	if a.TLSCA != "" {
		opts = append(opts, nats.RootCAs(a.TLSCA))
	}
	if a.TLSCert != "" || a.TLSKey != "" {
		if a.TLSCert == "" || a.TLSKey == "" {
			errs = append(errs, errors.New("--nats-tls-cert and --nats-tls-key go together"))
		}
		opts = append(opts, nats.ClientCert(a.TLSCert, a.TLSKey))
	}
	return opts, errors.Join(errs...)
}

// DisplayURL is a NATS URL (or a comma-separated list) fit for a log or an
// error: passwords and tokens hidden; "embedded" for none.
func DisplayURL(u string) string {
	if u == "" {
		return "embedded"
	}
	parts := strings.Split(u, ",")
	for i, p := range parts {
		if pu, err := url.Parse(strings.TrimSpace(p)); err == nil && pu.User != nil {
			if _, has := pu.User.Password(); has {
				pu.User = url.UserPassword(pu.User.Username(), "xxxxx")
			} else {
				pu.User = url.User("xxxxx") // a token
			}
			parts[i] = pu.String()
		}
	}
	return strings.Join(parts, ",")
}
