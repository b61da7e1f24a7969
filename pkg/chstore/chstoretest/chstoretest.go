// Package chstoretest gives each test its own database on the local
// ClickHouse server that `make test` starts.
package chstoretest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/iochub/iochub/pkg/chstore"
)

// EnvDSN names the variable that points tests at a ClickHouse server; its
// database part is ignored. Default: clickhouse://127.0.0.1:9000.
const EnvDSN = "IOCHUB_TEST_CLICKHOUSE_DSN"

// ServerDSN is the test server's DSN without a database.
func ServerDSN() string {
	if v := os.Getenv(EnvDSN); v != "" {
		return strings.TrimRight(v, "/")
	}
	return "clickhouse://127.0.0.1:9000"
}

var unsafe = regexp.MustCompile(`[^a-z0-9_]+`)

// NewDatabase returns the DSN of a fresh, empty database for this test,
// dropped when the test ends. A test that needs ClickHouse fails here, loudly,
// when no server answers: it never skips.
func NewDatabase(t testing.TB) string {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := unsafe.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(name) > 40 {
		name = name[:40]
	}
	db := "t_" + name + "_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := chstore.Open(ctx, ServerDSN())
	if err != nil {
		t.Fatalf("ClickHouse is needed at %s (set %s, or run `make test`, which starts one with deploy/clickhouse/ensure.sh): %v", ServerDSN(), EnvDSN, err)
	}
	if err := s.CreateDatabase(ctx, db); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = s.DropDatabase(ctx, db)
		_ = s.Close()
	})
	return ServerDSN() + "/" + db
}

// Open opens a Store on a fresh database for this test.
func Open(t testing.TB) *chstore.Store {
	t.Helper()
	s, err := chstore.Open(context.Background(), NewDatabase(t))
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
