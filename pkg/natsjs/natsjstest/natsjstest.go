// Package natsjstest starts a real JetStream server for a test: nats-server
// embedded in the test process, its store in t.TempDir().
package natsjstest

import (
	"context"
	"testing"
	"time"

	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Server is a running test server.
type Server struct {
	*server.Server
	StoreDir string
}

// Run starts a JetStream server on a random loopback port, shut down when the test ends.
func Run(t testing.TB) *Server {
	t.Helper()
	return RunInDir(t, t.TempDir())
}

// RunInDir starts a server with its store in dir: start a second one on the
// same dir to test what survives a server restart.
func RunInDir(t testing.TB, dir string) *Server {
	t.Helper()
	srv, err := natsjs.RunEmbedded(natsjs.EmbeddedConfig{Listen: "127.0.0.1:-1", StoreDir: dir})
	if err != nil {
		t.Fatalf("start JetStream: %v", err)
	}
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return &Server{Server: srv, StoreDir: dir}
}

// Connect opens a client connection, closed when the test ends.
func (s *Server) Connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("connect to JetStream: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := natsjs.NewJetStream(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// Declared connects and declares iochub's streams and consumer with small limits.
func (s *Server) Declared(t testing.TB, limits natsjs.StreamLimits) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, js := s.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := natsjs.Declare(ctx, js, limits); err != nil {
		t.Fatalf("declare streams: %v", err)
	}
	return nc, js
}
