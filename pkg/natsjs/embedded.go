package natsjs

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
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
}

// RunEmbedded starts a JetStream server and waits until it is ready. Connect
// to it in-process with nats.InProcessServer(srv).
func RunEmbedded(cfg EmbeddedConfig) (*server.Server, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("embedded nats: a store directory is required")
	}
	opts := &server.Options{
		ServerName:   "iochub",
		JetStream:    true,
		StoreDir:     cfg.StoreDir,
		SyncInterval: cfg.SyncInterval,
		SyncAlways:   cfg.SyncAlways,
		NoSigs:       true,
		NoLog:        true,
		MaxPayload:   cfg.MaxPayload,
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
	return srv, nil
}
