package chstoretest

import (
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/iochub/iochub/internal/polltest"
)

// Server is a ClickHouse server of a test's own, started with
// deploy/clickhouse/ensure.sh (so stopping it disturbs no other test).
type Server struct {
	Dir  string // its data directory (ensure.sh's DATA_DIR)
	Port string // its native TCP port on 127.0.0.1
	http string
}

// StartServer starts a server of the test's own, killed when the test ends.
// config, when not empty, is written to its config.d as extra.xml (a
// <yandex> element the server merges into its configuration).
func StartServer(t testing.TB, config string) *Server {
	t.Helper()
	return startServerOn(t, config, FreePort(t), FreePort(t))
}

// StartServerOn is StartServer on the native port port (which config may
// name, as a cluster's remote_servers do).
func StartServerOn(t testing.TB, config, port string) *Server {
	t.Helper()
	return startServerOn(t, config, port, FreePort(t))
}

// Start starts the server again after Kill.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	cmd := exec.Command("bash", filepath.Join(repoRoot(t), "deploy", "clickhouse", "ensure.sh"), s.Dir)
	cmd.Env = append(os.Environ(), "IOCHUB_CH_TCP_PORT="+s.Port, "IOCHUB_CH_HTTP_PORT="+s.http)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("start ClickHouse: %v\n%s", err, out)
	}
}

// Kill stops the server hard, as a crash or a power cut would.
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	pidFile := filepath.Join(s.Dir, "clickhouse", "clickhouse.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 0 {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	polltest.True(t, "the killed ClickHouse gone", time.Minute, func() bool { return syscall.Kill(pid, 0) != nil || Zombie(pid) })
	_ = os.Remove(pidFile)
}

// DSN is the server's DSN for database db.
func (s *Server) DSN(db string) string { return "clickhouse://127.0.0.1:" + s.Port + "/" + db }

// FreePort is a TCP port on 127.0.0.1 that nothing listens on now, below
// Linux's ephemeral range (32768 and up by default): a server started on it
// later cannot find it taken by another process's outgoing connection, as a
// port the kernel handed out for :0 can be.
func FreePort(t testing.TB) string {
	t.Helper()
	for range 1000 {
		port := 20000 + mrand.IntN(12000)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		_ = l.Close()
		return strconv.Itoa(port)
	}
	t.Fatal("no free TCP port between 20000 and 32000")
	return ""
}

// Zombie reports a process that has exited and waits to be reaped (its
// parent may be a PID 1 that never reaps).
func Zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	_, after, ok := strings.Cut(string(b), ") ")
	return ok && strings.HasPrefix(after, "Z")
}

// repoRoot is the directory of the repository's go.mod, above the test's
// working directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "deploy", "clickhouse", "ensure.sh")); err == nil {
			return dir
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatal("deploy/clickhouse/ensure.sh not found above the test's directory")
		}
		dir = up
	}
}
