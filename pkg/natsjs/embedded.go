package natsjs

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// EmbeddedConfig configures the JetStream server that `iochub run` starts in
// its own process when no --nats-url is given.
type EmbeddedConfig struct {
	Listen   string // host:port for NATS clients; "" to accept in-process connections only
	StoreDir string // JetStream file store
	// SyncInterval is how often the store is fsynced to disk (the server's
	// default is 2 minutes); SyncAlways fsyncs every write. See docs/performance.md.
	SyncInterval time.Duration
	SyncAlways   bool
	MaxPayload   int32
	// MQTTListen, when set (host:port, port -1 for a random one), opens the
	// server's MQTT listener: traffic sensors publish there, and their
	// messages are NATS subjects (topic a/b/c is subject a.b.c).
	MQTTListen string
	// Access: the users, TLS and storage limits. Nobody connects
	// anonymously; the hub connects in-process (Embedded.HubOptions).
	Access Access
}

// Embedded is a running embedded server.
type Embedded struct {
	*server.Server
	hubPassword string
}

// HubOptions connect the hub's own client: in-process, as HubUser.
func (e *Embedded) HubOptions() []nats.Option {
	return []nats.Option{nats.InProcessServer(e.Server), nats.UserInfo(HubUser, e.hubPassword)}
}

// RunEmbedded starts a JetStream server and waits until it is ready. Connect
// to it in-process with nats.InProcessServer(srv).
func RunEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("embedded nats: a store directory is required")
	}
	if err := cfg.Access.Validate(); err != nil {
		return nil, err
	}
	if err := moveGlobalStore(cfg.StoreDir); err != nil {
		return nil, err
	}
	password, err := newPassword()
	if err != nil {
		return nil, err
	}
	accounts, err := cfg.Access.serverConfig(password)
	if err != nil {
		return nil, err
	}
	opts := &server.Options{}
	if err := opts.ProcessConfigString(accounts); err != nil {
		return nil, fmt.Errorf("embedded nats: accounts: %w", err)
	}
	opts.ServerName, opts.JetStream, opts.StoreDir = "iochub", true, cfg.StoreDir
	opts.SyncInterval, opts.SyncAlways = cfg.SyncInterval, cfg.SyncAlways
	opts.NoSigs, opts.NoLog, opts.MaxPayload = true, true, cfg.MaxPayload
	if t := cfg.Access.TLS; t.On() {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: t.Cert, KeyFile: t.Key, CaFile: t.CA, Verify: t.CA != ""})
		if err != nil {
			return nil, fmt.Errorf("embedded nats: nats.tls: %w", err)
		}
		opts.TLSConfig, opts.TLSVerify, opts.TLSTimeout = tc, t.CA != "", 2
		opts.MQTT.TLSConfig, opts.MQTT.TLSTimeout = tc, 2
	}
	if opts.MaxPayload == 0 {
		opts.MaxPayload = 8 << 20
	}
	if cfg.Listen == "" {
		opts.DontListen = true
	} else {
		host, port, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("embedded nats: listen address %q: %w", cfg.Listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("embedded nats: listen port %q: %w", port, err)
		}
		opts.Host, opts.Port = host, p
	}
	if cfg.MQTTListen != "" {
		host, port, err := net.SplitHostPort(cfg.MQTTListen)
		if err != nil {
			return nil, fmt.Errorf("embedded nats: mqtt listen address %q: %w", cfg.MQTTListen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("embedded nats: mqtt listen port %q: %w", port, err)
		}
		opts.MQTT.Host, opts.MQTT.Port = host, p
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded nats: not ready within 30s (is %s already in use?)", cfg.Listen)
	}
	return &Embedded{Server: srv, hubPassword: password}, nil
}
