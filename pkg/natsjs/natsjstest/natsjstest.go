// Package natsjstest starts a real JetStream server for a test: nats-server
// embedded in the test process, its store in t.TempDir(), with the hub's
// accounts and an operator user the test connects as.
package natsjstest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/iochub/iochub/pkg/natsjs"
)

// Server is a running test server.
type Server struct {
	*natsjs.Embedded
	StoreDir string
	operator nkeys.KeyPair
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
	return RunWith(t, natsjs.EmbeddedConfig{Listen: "127.0.0.1:-1", StoreDir: dir})
}

// RunWith starts a server configured by cfg, with an operator user added
// to cfg.Access for Connect.
func RunWith(t testing.TB, cfg natsjs.EmbeddedConfig) *Server {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	cfg.Access.Users = append(cfg.Access.Users, natsjs.User{Name: "test-operator", Role: natsjs.RoleOperator, NKey: pub})
	srv, err := natsjs.RunEmbedded(cfg)
	if err != nil {
		t.Fatalf("start JetStream: %v", err)
	}
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return &Server{Embedded: srv, StoreDir: cfg.StoreDir, operator: kp}
}

// OperatorOptions connect as the test's operator user (every right in the
// hub's account).
func (s *Server) OperatorOptions() []nats.Option {
	pub, _ := s.operator.PublicKey()
	return []nats.Option{nats.Nkey(pub, s.operator.Sign)}
}

// OperatorSeedFile writes the operator's NKey seed to a file, for a child
// process's --nats-nkey.
func (s *Server) OperatorSeedFile(t testing.TB) string {
	t.Helper()
	seed, err := s.operator.Seed()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "operator.nk")
	if err := os.WriteFile(p, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Connect opens a client connection as the operator, closed when the test ends.
func (s *Server) Connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	opts := append(s.OperatorOptions(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	nc, err := nats.Connect(s.ClientURL(), opts...)
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
